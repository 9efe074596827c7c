package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// TestNewAPIKey: keys are random, prefixed, and stored only as their
// HMAC under the secret; a short secret is refused.
func TestNewAPIKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	k1, r1, err := server.NewAPIKey(isoSecret, "team-a", now)
	require.NoError(t, err)
	k2, r2, err := server.NewAPIKey(isoSecret, "team-a", now)
	require.NoError(t, err)
	require.NotEqual(t, k1, k2)
	require.True(t, strings.HasPrefix(k1, server.KeyPrefix))
	require.Len(t, k1, len(server.KeyPrefix)+43)
	require.Equal(t, server.HashAPIKey(isoSecret, k1), r1.Hash)
	require.NotEqual(t, r1.Hash, r2.Hash)
	require.NotEqual(t, server.HashAPIKey([]byte("another-secret-of-32-bytes-at-least!!"), k1), r1.Hash, "the hash depends on the secret")
	require.Equal(t, "team-a", r1.Project)
	require.Equal(t, now.Unix(), r1.CreatedAt)
	require.True(t, strings.HasPrefix(r1.ID, "key_"))
	require.NotContains(t, r1.Hint, k1[len(server.KeyPrefix)+2:len(k1)-4], "the hint is not the key")
	require.NotContains(t, string(r1.Hash), k1)
	_, _, err = server.NewAPIKey([]byte("short"), "team-a", now)
	require.ErrorIs(t, err, server.ErrKeySecretTooShort)
}

// TestShortKeySecretRefused: New refuses a key secret shorter than
// MinKeySecretBytes: it logs ErrKeySecretTooShort and refuses every store
// key (even one hashed under that secret), so auth stays on.
func TestShortKeySecretRefused(t *testing.T) {
	short := []byte("short-secret")
	st := memory.New()
	key := server.KeyPrefix + "a-key-hashed-under-the-short-secret"
	require.NoError(t, st.CreateAPIKey(t.Context(), store.APIKey{ID: "key_short", Project: store.DefaultProject,
		Hash: server.HashAPIKey(short, key), Hint: "sk-ast-a…cret", CreatedAt: time.Now().Unix()}))
	var logs bytes.Buffer
	srv := server.New(server.WithStore(st), server.WithKeySecret(short), server.WithStepDelay(0),
		server.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(func() { _ = srv.Close() })
	x := &isoEnv{h: srv.Handler()}
	code, body := x.do(t, key, "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusUnauthorized, code, "%s", body)
	require.Contains(t, logs.String(), server.ErrKeySecretTooShort.Error())
}

// TestKeyRevocationWithinTTL: a revoked key keeps working on a replica
// that looked it up for at most KeyCacheTTL (on the injected clock), then
// is refused; a replica that had not looked it up refuses it at once.
func TestKeyRevocationWithinTTL(t *testing.T) {
	ctx := t.Context()
	st := memory.New()
	key := newKey(t, st, "team-a")
	clock := newFakeClock()
	const ttl = 30 * time.Second
	newReplica := func() *isoEnv {
		srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithKeyCacheTTL(ttl),
			server.WithStepDelay(0), func(o *server.Options) { o.Now = clock.Now })
		t.Cleanup(func() { _ = srv.Close() })
		return &isoEnv{h: srv.Handler()}
	}
	r1, r2 := newReplica(), newReplica()
	code := func(x *isoEnv) int {
		c, _ := x.do(t, key, "GET", "/v1/assistants", "")
		return c
	}
	require.Equal(t, http.StatusOK, code(r1))

	pg, err := st.ListAPIKeys(ctx, store.ListParams{})
	require.NoError(t, err)
	_, err = st.RevokeAPIKey(ctx, pg.Items[0].ID, clock.Now().Unix())
	require.NoError(t, err)

	require.Equal(t, http.StatusUnauthorized, code(r2), "a replica that had not cached the key refuses it at once")
	clock.Advance(ttl - time.Millisecond)
	require.Equal(t, http.StatusOK, code(r1), "within the TTL the cached key still works (the documented bound)")
	clock.Advance(time.Millisecond)
	c, body := r1.do(t, key, "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusUnauthorized, c, "%s", body)
	require.Contains(t, string(body), "invalid_api_key")
	require.NotContains(t, string(body), key)
}

// TestKeysAuth: a store key acts in its project; a configured key
// (--api-key-env) in the default project; an unknown key gets 401 and a
// failing key store 503, neither repeating the key.
func TestKeysAuth(t *testing.T) {
	ctx := t.Context()
	st := memory.New()
	keyA := newKey(t, st, "team-a")
	const static = "sk-static-key-for-the-default-project"
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithAPIKeys(static), server.WithStepDelay(0))
	defer srv.Close()
	x := &isoEnv{h: srv.Handler()}

	x.create(t, keyA, "/v1/assistants", `{"model":"gpt-4o","name":"of team a"}`)
	x.create(t, static, "/v1/assistants", `{"model":"gpt-4o","name":"of the default project"}`)
	for project, want := range map[string]string{"team-a": "of team a", store.DefaultProject: "of the default project"} {
		pg, err := st.ListAssistants(ctx, project, store.ListParams{})
		require.NoError(t, err)
		require.Len(t, pg.Items, 1, project)
		require.Contains(t, string(pg.Items[0].Data), want, project)
	}

	for _, k := range []string{"sk-ast-unknown", keyA + "x", ""} {
		c, body := x.do(t, k, "GET", "/v1/assistants", "")
		require.Equal(t, http.StatusUnauthorized, c, "%s", body)
		if k != "" {
			require.NotContains(t, string(body), k)
		}
	}

	require.NoError(t, st.Close())
	c, body := x.do(t, keyA, "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusServiceUnavailable, c, "a key that cannot be checked is not called wrong: %s", body)
	require.NotContains(t, string(body), keyA)
}

// TestRateLimitByKey: each key of the store has its own bucket, also two
// keys of one project.
func TestRateLimitByKey(t *testing.T) {
	st := memory.New()
	k1 := newKey(t, st, "team-a")
	k2, rec, err := server.NewAPIKey(isoSecret, "team-a", time.Now())
	require.NoError(t, err)
	require.NoError(t, st.CreateAPIKey(t.Context(), rec))
	clock := newFakeClock()
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithRateLimit(1, 1), server.WithStepDelay(0),
		func(o *server.Options) { o.Now = clock.Now })
	defer srv.Close()
	h := srv.Handler()
	require.Equal(t, 200, limitedCall(t, h, k1, "").code)
	got := limitedCall(t, h, k1, "")
	require.Equal(t, 429, got.code)
	require.Equal(t, "1", got.retryAfter)
	require.Equal(t, "1", got.limit)
	require.Equal(t, 200, limitedCall(t, h, k2, "").code, "another key of the project has its own bucket")
}

// TestRequestLogCarriesProject: the request log names the key's project,
// never the key.
func TestRequestLogCarriesProject(t *testing.T) {
	st := memory.New()
	key := newKey(t, st, "team-a")
	var buf syncBuffer
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0),
		server.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	defer srv.Close()
	x := &isoEnv{h: srv.Handler()}
	x.create(t, key, "/v1/assistants", `{"model":"gpt-4o"}`)
	logs := buf.String()
	require.Contains(t, logs, `"op":"createAssistant"`)
	require.Contains(t, logs, `"project":"team-a"`)
	require.NotContains(t, logs, key)
	require.NotContains(t, logs, key[len(server.KeyPrefix):])
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countingStore counts the key lookups that reach the store.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	lookups int
}

func (c *countingStore) GetAPIKeyByHash(ctx context.Context, h []byte) (store.APIKey, error) {
	c.mu.Lock()
	c.lookups++
	c.mu.Unlock()
	return c.Store.GetAPIKeyByHash(ctx, h)
}

// TestKeyCacheLookups: a replica asks the store about a key (good or
// wrong) once per KeyCacheTTL, not once per request.
func TestKeyCacheLookups(t *testing.T) {
	st := &countingStore{Store: memory.New()}
	key := newKey(t, st.Store, "team-a")
	clock := newFakeClock()
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0),
		func(o *server.Options) { o.Now = clock.Now })
	defer srv.Close()
	x := &isoEnv{h: srv.Handler()}
	for range 5 {
		c, _ := x.do(t, key, "GET", "/v1/assistants", "")
		require.Equal(t, http.StatusOK, c)
		c, _ = x.do(t, "sk-ast-wrong", "GET", "/v1/assistants", "")
		require.Equal(t, http.StatusUnauthorized, c)
	}
	require.Equal(t, 2, st.lookups)
	clock.Advance(server.DefaultKeyCacheTTL)
	c, _ := x.do(t, key, "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusOK, c)
	require.Equal(t, 3, st.lookups, "looked up again once the TTL is over")

	// A key made after a wrong one was tried works at once.
	fresh := newKey(t, st.Store, "team-b")
	c, _ = x.do(t, fresh, "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusOK, c)
}
