package assistants_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
)

// TestReplyHeader: the editor hands back the header of a 2xx reply, of an
// error reply (next to the *APIError), of a raw download, and leaves the
// destination alone when no reply arrived.
func TestReplyHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-request-id", "req_"+r.URL.Path[len(r.URL.Path)-1:])
		switch r.URL.Path {
		case "/v1/threads/thread_1/runs/run_1":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("openai-poll-after-ms", "25")
			_, _ = io.WriteString(w, `{"id":"run_1","object":"thread.run","thread_id":"thread_1","status":"queued"}`)
		case "/v1/files/file_2/content":
			_, _ = io.WriteString(w, "bytes")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"no such run","type":"invalid_request_error"}}`)
		}
	}))
	defer srv.Close()
	c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-test"), assistants.WithMaxRetries(0))
	require.NoError(t, err)
	ctx := context.Background()

	var h http.Header
	run, err := c.GetRun(ctx, "thread_1", "run_1", assistants.ReplyHeader(&h))
	require.NoError(t, err)
	assert.Equal(t, "run_1", run.Id)
	assert.Equal(t, "25", h.Get("openai-poll-after-ms"))
	assert.Equal(t, "req_1", h.Get("x-request-id"))

	h = nil
	_, err = c.GetRun(ctx, "thread_1", "run_9", assistants.ReplyHeader(&h))
	var apiErr *assistants.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, "req_9", h.Get("x-request-id"))

	h = nil
	body, err := c.DownloadFile(ctx, "file_2", assistants.ReplyHeader(&h))
	require.NoError(t, err)
	_ = body.Close()
	assert.Equal(t, "req_t", h.Get("x-request-id"))

	// No reply: the destination keeps what it held.
	h = http.Header{"Kept": {"yes"}}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.GetRun(cancelled, "thread_1", "run_1", assistants.ReplyHeader(&h))
	require.Error(t, err)
	assert.Equal(t, "yes", h.Get("Kept"))

	// Without the editor nothing is recorded anywhere: a second call's
	// header does not leak into the first destination.
	h = nil
	_, err = c.GetRun(ctx, "thread_1", "run_1")
	require.NoError(t, err)
	assert.Nil(t, h)
}

// TestApplyReplyHeader: a fake hands its header to ReplyHeader editors; other
// editors run too, and their error is returned.
func TestApplyReplyHeader(t *testing.T) {
	var h http.Header
	ran := false
	other := func(context.Context, *http.Request) error { ran = true; return nil }
	require.NoError(t, assistants.ApplyReplyHeader(context.Background(), http.Header{"Openai-Poll-After-Ms": {"7"}}, other, assistants.ReplyHeader(&h)))
	assert.True(t, ran)
	assert.Equal(t, "7", h.Get("openai-poll-after-ms"))

	boom := errors.New("boom")
	err := assistants.ApplyReplyHeader(context.Background(), nil, func(context.Context, *http.Request) error { return boom })
	assert.ErrorIs(t, err, boom)
}
