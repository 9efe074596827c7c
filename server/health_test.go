package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

type probeReply struct {
	Status string              `json:"status"`
	Checks []server.ReadyState `json:"checks"`
}

func probe(t *testing.T, h http.Handler, method, path string) (int, probeReply, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var p probeReply
	if method != http.MethodHead {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "%s", rec.Body.String())
	} else {
		assert.Zero(t, rec.Body.Len(), "HEAD has no body")
	}
	return rec.Code, p, rec.Header()
}

// TestHealthz: /healthz answers 200 without a key, outside /v1, for GET and
// HEAD; other methods get 405.
func TestHealthz(t *testing.T) {
	srv := server.New(server.WithAPIKeys("sk-health-key"), server.WithStepDelay(0))
	defer srv.Close()
	code, p, h := probe(t, srv.Handler(), "GET", "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", p.Status)
	assert.Equal(t, "application/json", h.Get("Content-Type"))
	code, _, _ = probe(t, srv.Handler(), "HEAD", "/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, _, h = probe(t, srv.Handler(), "POST", "/healthz")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "GET, HEAD", h.Get("Allow"))
	// The API itself still wants the key.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/assistants", nil))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
}

// TestReadyz: /readyz is ready while every check passes, names each
// check's state, answers 503 with the failing check's error when one
// fails, and goes unready once Shutdown (and so Close) began.
func TestReadyz(t *testing.T) {
	var storeDown atomic.Bool
	srv := server.New(server.WithAPIKeys("sk-ready-key"), server.WithStepDelay(0),
		server.WithReadyCheck("extra-store", func(ctx context.Context) error {
			if storeDown.Load() {
				return errors.New("store unreachable: connection refused")
			}
			return ctx.Err()
		}),
		server.WithReadyCheck("extra-queue", func(context.Context) error { return nil }))
	defer srv.Close()

	code, p, _ := probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, probeReply{Status: "ready", Checks: []server.ReadyState{
		{Name: "server", Status: "ok"}, {Name: "store", Status: "ok"}, {Name: "queue", Status: "ok"},
		{Name: "extra-store", Status: "ok"}, {Name: "extra-queue", Status: "ok"}}}, p)

	storeDown.Store(true)
	code, p, _ = probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, probeReply{Status: "unready", Checks: []server.ReadyState{
		{Name: "server", Status: "ok"}, {Name: "store", Status: "ok"}, {Name: "queue", Status: "ok"},
		{Name: "extra-store", Status: "error", Error: "store unreachable: connection refused"},
		{Name: "extra-queue", Status: "ok"}}}, p)
	code, _, _ = probe(t, srv.Handler(), "HEAD", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)

	storeDown.Store(false)
	code, _, _ = probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusOK, code, "ready again once the store is back")

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	code, p, _ = probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, server.ReadyState{Name: "server", Status: "error", Error: "the server is shutting down"}, p.Checks[0])
	code, _, _ = probe(t, srv.Handler(), "GET", "/healthz")
	assert.Equal(t, http.StatusOK, code, "a draining server is still alive")
}

// TestReadyzAfterClose: Close alone (no Shutdown) makes the server unready.
func TestReadyzAfterClose(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	code, _, _ := probe(t, srv.Handler(), "GET", "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, srv.Close())
	code, p, _ := probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "unready", p.Status)
}

// TestReadyzPanickingCheck: a check that panics is an error, not a crash.
func TestReadyzPanickingCheck(t *testing.T) {
	srv := server.New(server.WithStepDelay(0), server.WithReadyCheck("bad", func(context.Context) error { panic("boom") }))
	defer srv.Close()
	code, p, _ := probe(t, srv.Handler(), "GET", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, server.ReadyState{Name: "bad", Status: "error", Error: "the check panicked"}, p.Checks[len(p.Checks)-1])
}

// TestProbesSkipLogsAndLimits: probes are not logged, not rate limited and
// not counted in the request metrics, so frequent probing costs nothing
// and never starves the API's clients.
func TestProbesSkipLogsAndLimits(t *testing.T) {
	sink := &logSink{}
	srv := server.New(server.WithStepDelay(0), server.WithLogger(slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		func(o *server.Options) { o.RateLimit, o.RateBurst = 1, 1 })
	defer srv.Close()
	for range 20 {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, _, h := probe(t, srv.Handler(), "GET", path)
			require.Equal(t, http.StatusOK, code, path)
			assert.Empty(t, h.Get("x-ratelimit-limit-requests"))
		}
	}
	sink.mu.Lock()
	logged := sink.buf.String()
	sink.mu.Unlock()
	assert.Empty(t, logged)
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	assert.NotContains(t, string(body), "assistants_http_requests_total{")
}
