package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
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

// idemSpy is the memory store that records the keys of the idempotency
// records written to it.
type idemSpy struct {
	store.Store
	mu   sync.Mutex
	keys []string
}

func (s *idemSpy) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	s.mu.Lock()
	s.keys = append(s.keys, rec.Key)
	s.mu.Unlock()
	return s.Store.ClaimIdempotencyKey(ctx, rec, now)
}

func (s *idemSpy) CompleteIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, held time.Time) (bool, error) {
	s.mu.Lock()
	s.keys = append(s.keys, rec.Key)
	s.mu.Unlock()
	return s.Store.CompleteIdempotencyKey(ctx, rec, held)
}

// TestIdempotencyRecordsHoldNoKeyHash: the idempotency records in the
// store are scoped by the API key's id, not by a hash of the key (a copy
// of the store could check a guessed key against a plain SHA-256), and
// replays still work on another replica with store keys, with a static
// key (--api-key-env) and with auth off; another key of the same project
// does not get the first key's reply.
func TestIdempotencyRecordsHoldNoKeyHash(t *testing.T) {
	const static = "sk-static-test-key-0123456789"
	tests := []struct {
		name string
		opts []server.Option
		keys func(st store.Store) (string, string) // two keys of one project
	}{
		{name: "store keys", opts: []server.Option{server.WithKeySecret(isoSecret)},
			keys: func(st store.Store) (string, string) {
				return newKey(t, st, store.DefaultProject), newKey(t, st, store.DefaultProject)
			}},
		{name: "static key", opts: []server.Option{server.WithAPIKeys(static, static+"-two")},
			keys: func(store.Store) (string, string) { return static, static + "-two" }},
		{name: "no auth", keys: func(store.Store) (string, string) { return "", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &idemSpy{Store: memory.New()}
			k1, k2 := tt.keys(st)
			replica := func() http.Handler {
				srv := server.New(append([]server.Option{server.WithStore(st), server.WithStepDelay(0)}, tt.opts...)...)
				t.Cleanup(func() { _ = srv.Close() })
				return srv.Handler()
			}
			a, b := replica(), replica()
			post := func(h http.Handler, key, body string) (int, string, string) {
				r := httptest.NewRequest("POST", "/v1/assistants", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Idempotency-Key", "idem-1")
				if key != "" {
					r.Header.Set("Authorization", "Bearer "+key)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w.Code, w.Header().Get("Idempotent-Replayed"), w.Body.String()
			}
			c1, _, b1 := post(a, k1, `{"model":"m"}`)
			require.Equal(t, http.StatusOK, c1, b1)
			c2, replayed, b2 := post(b, k1, `{"model":"m"}`)
			require.Equal(t, http.StatusOK, c2, b2)
			assert.Equal(t, "true", replayed, "a repeat on the other replica is replayed")
			assert.Equal(t, b1, b2)
			if k2 != k1 {
				c3, replayed, b3 := post(b, k2, `{"model":"m"}`)
				require.Equal(t, http.StatusOK, c3, b3)
				assert.Empty(t, replayed, "another key's repeat is its own request")
				assert.NotEqual(t, b1, b3)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			require.NotEmpty(t, st.keys)
			for _, k := range []string{k1, k2} {
				if k == "" {
					continue
				}
				sum := sha256.Sum256([]byte(k))
				for _, rk := range st.keys {
					assert.NotContains(t, rk, hex.EncodeToString(sum[:8]), "a record's key holds a plain SHA-256 of the API key")
					assert.NotContains(t, rk, string(sum[:8]))
					assert.NotContains(t, rk, k)
				}
			}
		})
	}
}
