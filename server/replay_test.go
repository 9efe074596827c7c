package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// brokenWriter is a client that reset the connection: headers are taken,
// every body write fails.
type brokenWriter struct {
	h      http.Header
	status int
	writes int
	got    bytes.Buffer // what was written after the failure began (must stay empty)
}

func (w *brokenWriter) Header() http.Header { return w.h }
func (w *brokenWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *brokenWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > 1 {
		w.got.Write(p)
	}
	return 0, errors.New("write tcp: connection reset by peer")
}

// TestReplayAfterFailedWriteIsTheHandlersReply: the first answer to a keyed
// POST could not be written (the client reset the connection mid-body).
// Nothing more is written on that connection, and the retry with the same
// key gets the handler's whole reply, one JSON object, without a second
// assistant being made.
func TestReplayAfterFailedWriteIsTheHandlersReply(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	t.Cleanup(func() { _ = srv.Close() })
	body := `{"model":"gpt-4o","name":"once"}`
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/assistants", bytes.NewBufferString(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", "k-reset")
		return r
	}

	bw := &brokenWriter{h: http.Header{}}
	srv.ServeHTTP(bw, req())
	assert.Equal(t, http.StatusOK, bw.status)
	assert.Equal(t, 1, bw.writes, "nothing is written after the failed body write; got %q", bw.got.String())

	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req())
	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
	dec := json.NewDecoder(rec.Body)
	var a gen.AssistantObject
	require.NoError(t, dec.Decode(&a))
	assert.Equal(t, "once", *a.Name)
	assert.False(t, dec.More(), "the replay is exactly one JSON value")

	list := httptest.NewRecorder()
	srv.ServeHTTP(list, httptest.NewRequest(http.MethodGet, "/v1/assistants", nil))
	var page gen.ListAssistantsResponse
	require.NoError(t, json.Unmarshal(list.Body.Bytes(), &page))
	assert.Len(t, page.Data, 1, "the retry made no second assistant")
}
