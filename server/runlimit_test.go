package server_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// TestConcurrentRunLimit: a project may have MaxConcurrentRuns active
// runs; one more is answered 429 with Retry-After and the x-ratelimit-*
// headers, another project is not affected, and once a run ends (here:
// cancelled) the project may start one again.
func TestConcurrentRunLimit(t *testing.T) {
	st := memory.New()
	keyA, keyB := newKey(t, st, "team-a"), newKey(t, st, "team-b")
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0), server.WithMaxConcurrentRuns(2))
	defer srv.Close()
	x := &isoEnv{h: srv.Handler(), srv: srv}

	tool := `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather"}}]}`
	asstA, asstB := x.create(t, keyA, "/v1/assistants", tool), x.create(t, keyB, "/v1/assistants", tool)
	// Runs that wait for tool outputs stay active.
	startRun := func(key, asst string) *httptest.ResponseRecorder {
		thread := x.create(t, key, "/v1/threads", `{"messages":[{"role":"user","content":"please get_weather"}]}`)
		r := httptest.NewRequest("POST", "/v1/threads/"+thread+"/runs", strings.NewReader(`{"assistant_id":"`+asst+`"}`))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		x.h.ServeHTTP(w, r)
		return w
	}
	first := startRun(keyA, asstA)
	require.Equal(t, 200, first.Code, first.Body.String())
	require.Equal(t, "2", first.Header().Get("x-ratelimit-limit-runs"))
	require.Equal(t, "1", first.Header().Get("x-ratelimit-remaining-runs"))
	second := startRun(keyA, asstA)
	require.Equal(t, 200, second.Code, second.Body.String())
	require.Equal(t, "0", second.Header().Get("x-ratelimit-remaining-runs"))

	third := startRun(keyA, asstA)
	require.Equal(t, http.StatusTooManyRequests, third.Code, third.Body.String())
	require.Equal(t, "1", third.Header().Get("Retry-After"))
	require.Equal(t, "1000", third.Header().Get("retry-after-ms"))
	require.Equal(t, "2", third.Header().Get("x-ratelimit-limit-runs"))
	require.Equal(t, "0", third.Header().Get("x-ratelimit-remaining-runs"))
	require.Contains(t, third.Body.String(), `"code":"rate_limit_exceeded"`)
	require.Contains(t, third.Body.String(), "concurrent runs: 2 active runs of at most 2")

	// createThreadAndRun counts too.
	c, body := x.do(t, keyA, "POST", "/v1/threads/runs", `{"assistant_id":"`+asstA+`"}`)
	require.Equal(t, http.StatusTooManyRequests, c, "%s", body)

	require.Equal(t, 200, startRun(keyB, asstB).Code, "another project has its own limit")

	// End one of A's runs: A may start one again.
	thread, run := jsonField(t, first.Body.Bytes(), "thread_id"), jsonField(t, first.Body.Bytes(), "id")
	x.waitStatus(t, keyA, thread, run, "requires_action")
	c, body = x.do(t, keyA, "POST", "/v1/threads/"+thread+"/runs/"+run+"/cancel", "")
	require.Equal(t, 200, c, "%s", body)
	x.waitStatus(t, keyA, thread, run, "cancelled")
	require.Equal(t, 200, startRun(keyA, asstA).Code)
}

// TestConcurrentRunLimitAcrossReplicas: on PostgreSQL the limit is the
// project's across replicas: a run started on one replica counts on the
// other.
func TestConcurrentRunLimitAcrossReplicas(t *testing.T) {
	u := pgtest.Schema(t)
	quiet := slog.New(slog.DiscardHandler)
	var xs []*isoEnv
	var key string
	for i := range 2 {
		st, err := postgres.Open(t.Context(), u, func(o *postgres.Options) { o.Logger = quiet })
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		if i == 0 {
			key = newKey(t, st, "team-a")
		}
		srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0), server.WithMaxConcurrentRuns(1))
		t.Cleanup(func() { _ = srv.Close() })
		xs = append(xs, &isoEnv{h: srv.Handler(), srv: srv})
	}
	asst := xs[0].create(t, key, "/v1/assistants", `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather"}}]}`)
	thread := xs[0].create(t, key, "/v1/threads", `{"messages":[{"role":"user","content":"please get_weather"}]}`)
	run := xs[0].create(t, key, "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`"}`)
	xs[0].waitStatus(t, key, thread, run, "requires_action")

	other := xs[1].create(t, key, "/v1/threads", `{"messages":[{"role":"user","content":"please get_weather"}]}`)
	code, body := xs[1].do(t, key, "POST", "/v1/threads/"+other+"/runs", `{"assistant_id":"`+asst+`"}`)
	require.Equal(t, http.StatusTooManyRequests, code, "the other replica counts the first one's run: %s", body)
}

// TestConcurrentRunLimitReplay: a createRun retried with its
// Idempotency-Key gets its run back even when the project is at its limit
// (that run is one of them).
func TestConcurrentRunLimitReplay(t *testing.T) {
	st := memory.New()
	key := newKey(t, st, "team-a")
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0), server.WithMaxConcurrentRuns(1))
	defer srv.Close()
	x := &isoEnv{h: srv.Handler(), srv: srv}
	asst := x.create(t, key, "/v1/assistants", `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather"}}]}`)
	thread := x.create(t, key, "/v1/threads", `{"messages":[{"role":"user","content":"please get_weather"}]}`)
	post := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/threads/"+thread+"/runs", strings.NewReader(`{"assistant_id":"`+asst+`"}`))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", "replay-me")
		w := httptest.NewRecorder()
		x.h.ServeHTTP(w, r)
		return w
	}
	first := post()
	require.Equal(t, 200, first.Code, first.Body.String())
	again := post()
	require.Equal(t, 200, again.Code, "the retry is replayed, not limited: %s", again.Body.String())
	require.Equal(t, jsonField(t, first.Body.Bytes(), "id"), jsonField(t, again.Body.Bytes(), "id"))
}
