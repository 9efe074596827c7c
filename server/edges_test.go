package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

func TestAuth(t *testing.T) {
	const key = "sk-right-key-123"
	var logs bytes.Buffer
	srv, ctx := newTestServer(t, server.WithAPIKeys("sk-other", key), server.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

	t.Run("right key", func(t *testing.T) {
		c, err := srv.NewClient(assistants.WithAPIKey(key))
		require.NoError(t, err)
		r, err := c.ListAssistantsWithResponse(ctx, nil)
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
	})
	t.Run("api-key header", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/assistants", nil)
		req.Header.Set("api-key", key)
		resp, err := srv.HTTP.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	for _, tc := range []struct{ name, header, value string }{
		{"wrong bearer", "Authorization", "Bearer sk-wrong-key-456"},
		{"wrong api-key", "api-key", "sk-wrong-key-456"},
		{"missing", "", ""},
		{"not bearer", "Authorization", "Basic c2stcmlnaHQ="},
		{"prefix of the key", "Authorization", "Bearer sk-right"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/assistants", strings.NewReader(`{"model":"m"}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			resp, err := srv.HTTP.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "body: %s", b)
			var e gen.ErrorResponse
			require.NoError(t, json.Unmarshal(b, &e))
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			require.NotNil(t, e.Error.Code)
			assert.Equal(t, "invalid_api_key", *e.Error.Code)
			assert.NotContains(t, string(b), "wrong-key", "the key is not echoed")
		})
	}
	// Nothing was created by the refused requests, and no key reached the logs.
	c, _ := srv.NewClient(assistants.WithAPIKey(key))
	r, _ := c.ListAssistantsWithResponse(ctx, nil)
	assert.Empty(t, r.JSON200.Data)
	assert.NotContains(t, logs.String(), "wrong-key")
	assert.NotContains(t, logs.String(), key)
	assert.Contains(t, logs.String(), `"status":401`)
}

func TestRequestLogAndID(t *testing.T) {
	var logs bytes.Buffer
	srv, ctx := newTestServer(t, server.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	r, err := srv.Client.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
	require.NoError(t, err)
	id := r.HTTPResponse.Header.Get("x-request-id")
	assert.True(t, strings.HasPrefix(id, "req_"), "x-request-id %q", id)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &rec), "log: %s", logs.String())
	assert.Equal(t, "POST", rec["method"])
	assert.Equal(t, "POST /v1/assistants", rec["route"])
	assert.Equal(t, "createAssistant", rec["op"])
	assert.Equal(t, float64(200), rec["status"])
	assert.Equal(t, id, rec["request_id"])
	assert.Contains(t, rec, "duration")
	assert.NotContains(t, logs.String(), assistantstest.DefaultAPIKey)
}

func TestIdempotency(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	key := func(k string) gen.RequestEditorFn {
		return func(_ context.Context, req *http.Request) error {
			req.Header.Set("Idempotency-Key", k)
			return nil
		}
	}
	count := func() int {
		r, err := c.ListAssistantsWithResponse(ctx, nil)
		require.NoError(t, err)
		return len(r.JSON200.Data)
	}

	first, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("k1"))
	require.NoError(t, err)
	require.NotNil(t, first.JSON200)
	again, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("k1"))
	require.NoError(t, err)
	require.NotNil(t, again.JSON200)
	assert.Equal(t, first.Body, again.Body, "the same response is replayed")
	assert.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))
	assert.NotEqual(t, first.HTTPResponse.Header.Get("x-request-id"), again.HTTPResponse.Header.Get("x-request-id"), "each request has its own id")
	assert.Equal(t, 1, count(), "no second assistant")

	conflict, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "other"}, key("k1"))
	require.NoError(t, err)
	e := requireAPIError(t, conflict, conflict.Body, http.StatusConflict, "")
	require.NotNil(t, e.Code)
	assert.Equal(t, "idempotency_key_reused", *e.Code)
	assert.Equal(t, 1, count())

	// A 4xx is remembered too; a different key does the work.
	_, err = c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("k2"))
	require.NoError(t, err)
	assert.Equal(t, 2, count())

	t.Run("racing requests do the work once", func(t *testing.T) {
		before := count()
		var wg sync.WaitGroup
		bodies := make([][]byte, 8)
		for i := range bodies {
			wg.Go(func() {
				r, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{}, key("race"))
				if assert.NoError(t, err) && assert.NotNil(t, r.JSON200) {
					bodies[i] = r.Body
				}
			})
		}
		wg.Wait()
		for _, b := range bodies[1:] {
			assert.Equal(t, bodies[0], b)
		}
		assert.Equal(t, before, count(), "threads are not assistants")
	})
}

func TestBodyLimit(t *testing.T) {
	srv, ctx := newTestServer(t, server.WithMaxBodyBytes(1024))
	big := `{"model":"m","instructions":"` + strings.Repeat("x", 2048) + `"}`
	r, err := srv.Client.CreateAssistantWithBodyWithResponse(ctx, "application/json", strings.NewReader(big))
	require.NoError(t, err)
	e := requireAPIError(t, r, r.Body, http.StatusRequestEntityTooLarge, "")
	assert.Equal(t, "invalid_request_error", e.Type)

	// Without a declared length (chunked), the limit holds while reading.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/assistants", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := srv.HTTP.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	ok, err := srv.Client.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
	require.NoError(t, err)
	require.NotNil(t, ok.JSON200)
}

func TestBadPathIDs(t *testing.T) {
	srv, ctx := newTestServer(t)
	ids := []string{"..%2Fx", "%2F", "%00", "a%00b", strings.Repeat("a", 10<<10), "%E2%80%AE", "a.b", "%25", "x%20y"}
	routes := []struct{ method, path string }{
		{"GET", "/assistants/{id}"},
		{"POST", "/assistants/{id}"},
		{"DELETE", "/threads/{id}"},
		{"GET", "/threads/{id}/messages"},
		{"GET", "/threads/thread_x/messages/{id}"},
		{"GET", "/files/{id}/content"},
		{"GET", "/vector_stores/{id}/files"},
		{"POST", "/vector_stores/{id}/search"},
		{"GET", "/threads/{id}/runs/{id}/steps"},
	}
	for _, rt := range routes {
		for _, id := range ids {
			path := strings.ReplaceAll(rt.path, "{id}", id)
			req, err := http.NewRequestWithContext(ctx, rt.method, srv.URL+path, strings.NewReader(`{}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.HTTP.Client().Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Contains(t, []int{400, 404}, resp.StatusCode, "%s %s: %s", rt.method, path[:min(len(path), 80)], b)
			var e gen.ErrorResponse
			assert.NoError(t, json.Unmarshal(b, &e), "%s", b)
			assert.Less(t, len(b), 2048, "the error does not echo a huge id")
		}
	}
}

func TestRecoveryFromPanic(t *testing.T) {
	var logs bytes.Buffer
	srv := server.New(server.WithStepDelay(0), server.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	t.Cleanup(func() { _ = srv.Close() })
	// A request body whose Read panics makes the request's handling panic.
	req := httptest.NewRequest(http.MethodPost, "/v1/assistants", panicReader{})
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	var e gen.ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body)
	assert.Equal(t, "server_error", e.Error.Type)
	assert.Contains(t, logs.String(), "panic serving request")

	// The server still works.
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/assistants", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("boom") }

func TestFaults(t *testing.T) {
	t.Run("rate limit with retry hints", func(t *testing.T) {
		srv := assistantstest.NewServer(t, server.WithStepDelay(0), assistantstest.WithoutResponseValidation(),
			server.WithFaults(&server.Faults{Seed: 1, Routes: map[string]server.FaultRates{"listAssistants": {RateLimit: 1, RetryAfter: 2 * time.Second}}}))
		ctx := t.Context()
		r, err := srv.Client.ListAssistantsWithResponse(ctx, nil)
		require.NoError(t, err)
		e := requireAPIError(t, r, r.Body, http.StatusTooManyRequests, "")
		require.NotNil(t, e.Code)
		assert.Equal(t, "rate_limit_exceeded", *e.Code)
		assert.Equal(t, "2", r.HTTPResponse.Header.Get("Retry-After"))
		assert.Equal(t, "2000", r.HTTPResponse.Header.Get("retry-after-ms"))
		// Other routes are untouched.
		cr, err := srv.Client.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
		require.NoError(t, err)
		require.NotNil(t, cr.JSON200)
	})
	t.Run("server errors and drops", func(t *testing.T) {
		for _, tc := range []struct {
			rates  server.FaultRates
			status int
		}{
			{server.FaultRates{ServerError: 1}, 500},
			{server.FaultRates{Unavailable: 1}, 503},
			{server.FaultRates{Drop: 1}, 0},
		} {
			srv := assistantstest.NewServer(t, server.WithStepDelay(0), assistantstest.WithoutResponseValidation(),
				server.WithFaults(&server.Faults{Global: tc.rates}))
			r, err := srv.Client.ListAssistantsWithResponse(t.Context(), nil)
			if tc.status == 0 {
				require.Error(t, err, "the connection is dropped")
				continue
			}
			require.NoError(t, err)
			requireAPIError(t, r, r.Body, tc.status, "")
		}
	})
	t.Run("seeded and reproducible", func(t *testing.T) {
		pattern := func() []int {
			srv := server.New(server.WithStepDelay(0), server.WithFaults(&server.Faults{Seed: 42, Global: server.FaultRates{ServerError: 0.3, RateLimit: 0.2}}))
			defer srv.Close()
			var out []int
			for range 40 {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/assistants", nil))
				out = append(out, rec.Code)
			}
			return out
		}
		a, b := pattern(), pattern()
		assert.Equal(t, a, b)
		assert.Contains(t, a, 500)
		assert.Contains(t, a, 429)
		assert.Contains(t, a, 200)
	})
}

func TestUnknownRoute(t *testing.T) {
	srv, ctx := newTestServer(t)
	for _, tc := range []struct{ method, path string }{{"GET", "/nothing"}, {"PUT", "/assistants"}, {"GET", "/"}} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL+tc.path, nil)
		resp, err := srv.HTTP.Client().Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Contains(t, string(b), "Invalid URL")
	}
}

func TestIdempotencyExpiresAndStreams(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, ctx := newTestServer(t, func(o *server.Options) { o.Now = clock; o.IdempotencyTTL = time.Minute })
	c := srv.Client
	key := func(k string) gen.RequestEditorFn {
		return func(_ context.Context, req *http.Request) error {
			req.Header.Set("Idempotency-Key", k)
			return nil
		}
	}
	a1, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("ttl"))
	require.NoError(t, err)
	a2, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("ttl"))
	require.NoError(t, err)
	assert.Equal(t, a1.JSON200.Id, a2.JSON200.Id)
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	a3, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key("ttl"))
	require.NoError(t, err)
	require.NotNil(t, a3.JSON200)
	assert.NotEqual(t, a1.JSON200.Id, a3.JSON200.Id, "an expired key does the work again")

	long, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"}, key(strings.Repeat("k", 256)))
	require.NoError(t, err)
	requireAPIError(t, long, long.Body, http.StatusBadRequest, "Idempotency-Key")

	// A streamed run is reattached, not run again (see reattach_test.go).
	th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{Messages: &[]gen.CreateMessageRequest{{Role: "user", Content: strContent("hi")}}})
	require.NoError(t, err)
	stream := true
	body := gen.CreateRunRequest{AssistantId: a1.JSON200.Id, Stream: &stream}
	first, err := c.CreateRunWithResponse(ctx, th.JSON200.Id, nil, body, key("stream"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, first.StatusCode(), "body: %s", first.Body)
	require.Contains(t, first.HTTPResponse.Header.Get("Content-Type"), "text/event-stream")
	second, err := c.CreateRunWithResponse(ctx, th.JSON200.Id, nil, body, key("stream"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, second.StatusCode(), "body: %s", second.Body)
	assert.Equal(t, string(first.Body), string(second.Body), "the same run's events")
	runs, err := c.ListRunsWithResponse(ctx, th.JSON200.Id, nil)
	require.NoError(t, err)
	require.NotNil(t, runs.JSON200)
	assert.Len(t, runs.JSON200.Data, 1)
}

func TestFaultsCutStreams(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0), assistantstest.WithoutResponseValidation(),
		server.WithFaults(&server.Faults{Routes: map[string]server.FaultRates{"createRun": {CutStream: 1, CutAfter: 2}}}))
	ctx, c := t.Context(), srv.Client
	a, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m"})
	require.NoError(t, err)
	th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{Messages: &[]gen.CreateMessageRequest{{Role: "user", Content: strContent("tell me a long story please")}}})
	require.NoError(t, err)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/threads/"+th.JSON200.Id+"/runs",
		strings.NewReader(`{"assistant_id":"`+a.JSON200.Id+`","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.HTTP.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, _ := io.ReadAll(resp.Body) // ends early, possibly with an error
	assert.Equal(t, 2, strings.Count(string(b), "event: "), "stream: %s", b)
	assert.NotContains(t, string(b), "event: done")
}

// BenchmarkMiddlewareChain measures one createAssistant through the whole
// chain (recovery, logging, auth, body limit, validation, idempotency) and
// the handler, without the network.
func BenchmarkMiddlewareChain(b *testing.B) {
	srv := server.New(server.WithStepDelay(0), server.WithAPIKeys("sk-bench"))
	b.Cleanup(func() { _ = srv.Close() })
	body := []byte(`{"model":"gpt-4o","name":"bench","metadata":{"k":"v"}}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodPost, "/v1/assistants", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-bench")
		req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
