package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store/memory"
)

// TestIdempotencyKeysAreShared: two servers on one store (two replicas, or
// one process before and after a restart) share Idempotency-Keys: a repeat
// on the other server is replayed (or refused with other parameters), and
// a repeat of a streamed request is reattached to the same run's events.
func TestIdempotencyKeysAreShared(t *testing.T) {
	st := memory.New()
	a := assistantstest.NewServer(t, server.WithStore(st), server.WithStepDelay(0))
	b := assistantstest.NewServer(t, server.WithStore(st), server.WithStepDelay(0))
	post := func(srv *assistantstest.Server, path, body string) (int, http.Header, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k1"+path)
		resp, err := srv.HTTP.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		bb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(bb)
	}
	s1, _, b1 := post(a, "/assistants", `{"model":"m"}`)
	s2, h2, b2 := post(b, "/assistants", `{"model":"m"}`)
	require.Equal(t, 200, s1)
	require.Equal(t, 200, s2)
	assert.Equal(t, b1, b2)
	assert.Equal(t, "true", h2.Get("Idempotent-Replayed"))
	s3, _, _ := post(b, "/assistants", `{"model":"other"}`)
	assert.Equal(t, 409, s3)
	// A streamed createThreadAndRun on a, repeated on b.
	id := b1[strings.Index(b1, `"id":"`)+6:]
	id = id[:strings.Index(id, `"`)]
	body := `{"assistant_id":"` + id + `","stream":true,"thread":{"messages":[{"role":"user","content":"hello there"}]}}`
	sa, _, ba := post(a, "/threads/runs", body)
	sb, hb, bb := post(b, "/threads/runs", body)
	require.Equal(t, 200, sa)
	require.Equal(t, 200, sb)
	assert.Equal(t, "true", hb.Get("Idempotent-Replayed"))
	assert.Equal(t, ba, bb, "the same events")

}
