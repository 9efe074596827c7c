package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// apiClient makes raw API calls against a test server, with a key.
type apiClient struct {
	t    *testing.T
	base string
	key  string
}

func (c apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	resp := c.raw(method, path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(c.t, json.Unmarshal(b, &m), "%s", b)
	}
	return resp.StatusCode, m
}

func (c apiClient) raw(method, path string, body any) *http.Response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	return resp
}

// waitRun polls a run until it reaches one of the statuses (bounded).
func (c apiClient) waitRun(threadID, runID string, statuses ...string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, run := c.do("GET", "/v1/threads/"+threadID+"/runs/"+runID, nil)
		require.Equal(c.t, http.StatusOK, code, "%v", run)
		for _, s := range statuses {
			if run["status"] == s {
				return run
			}
		}
		require.True(c.t, time.Now().Before(deadline), "run %s stuck in %v", runID, run["status"])
		time.Sleep(2 * time.Millisecond)
	}
}

// scrape reads a metrics page and parses it with the Prometheus text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	require.NoError(t, err, "the metrics page must parse as the Prometheus text format")
	return fams
}

// sample returns the value of the family's series whose labels include
// want (a counter's or gauge's value, a histogram's count), and whether
// there is one; with several, their sum.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			ok := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, found
}

// TestMetricsAfterConversation: after a full conversation (auth on, ids in
// paths, a tool call, a streamed run, a 404), the metrics page parses with
// the Prometheus text parser, has the expected families with the values the
// conversation implies, and no label value holds the key, an object id or
// message text.
func TestMetricsAfterConversation(t *testing.T) {
	const key = "sk-metrics-test-7f3a9c1d2e"
	srv := server.New(server.WithAPIKeys(key), server.WithStepDelay(0))
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := apiClient{t: t, base: hs.URL, key: key}

	code, asst := c.do("POST", "/v1/assistants", map[string]any{"model": "gpt-4o",
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}}})
	require.Equal(t, 200, code, "%v", asst)
	code, th := c.do("POST", "/v1/threads", map[string]any{})
	require.Equal(t, 200, code)
	tid := th["id"].(string)
	code, _ = c.do("POST", "/v1/threads/"+tid+"/messages", map[string]any{"role": "user",
		"content": `Zanzibar marmalade, please get_weather {"city":"Zanzibar"}`})
	require.Equal(t, 200, code)
	code, run := c.do("POST", "/v1/threads/"+tid+"/runs", map[string]any{"assistant_id": asst["id"]})
	require.Equal(t, 200, code, "%v", run)
	rid := run["id"].(string)
	run = c.waitRun(tid, rid, "requires_action")
	calls := run["required_action"].(map[string]any)["submit_tool_outputs"].(map[string]any)["tool_calls"].([]any)
	require.Len(t, calls, 1)
	code, _ = c.do("POST", "/v1/threads/"+tid+"/runs/"+rid+"/submit_tool_outputs", map[string]any{
		"tool_outputs": []any{map[string]any{"tool_call_id": calls[0].(map[string]any)["id"], "output": `{"temp":"quokka"}`}}})
	require.Equal(t, 200, code)
	c.waitRun(tid, rid, "completed")

	// A streamed run, read to its end.
	code, _ = c.do("POST", "/v1/threads/"+tid+"/messages", map[string]any{"role": "user", "content": "xylophone tangerine"})
	require.Equal(t, 200, code)
	resp := c.raw("POST", "/v1/threads/"+tid+"/runs", map[string]any{"assistant_id": asst["id"], "stream": true})
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), "event: done")

	code, _ = c.do("GET", "/v1/threads/"+tid+"/messages", nil)
	require.Equal(t, 200, code)
	code, _ = c.do("GET", "/v1/threads/"+tid+"/runs/"+rid+"/steps", nil)
	require.Equal(t, 200, code)
	code, _ = c.do("GET", "/v1/threads/thread_doesnotexist", nil)
	require.Equal(t, 404, code)
	code, _ = c.do("GET", "/v1/nowhere/thread_abc/run_def", nil)
	require.Equal(t, 404, code)
	bad := apiClient{t: t, base: hs.URL, key: "sk-wrong-key-should-not-show"}
	code, _ = bad.do("GET", "/v1/threads/"+tid, nil)
	require.Equal(t, 401, code)

	// A stream's client sees its last event before the handler returns and
	// the request is counted: wait (bounded) for the count.
	fams := scrape(t, srv.MetricsHandler())
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if v, _ := sample(fams, "assistants_http_requests_total", map[string]string{"operation": "createRun"}); v == 2 {
			break
		}
		time.Sleep(time.Millisecond)
		fams = scrape(t, srv.MetricsHandler())
	}

	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
		max    float64
	}{
		{"assistants_http_requests_total", map[string]string{"operation": "createAssistant", "status": "200"}, 1, 1},
		{"assistants_http_requests_total", map[string]string{"operation": "createRun", "status": "200"}, 2, 2},
		{"assistants_http_requests_total", map[string]string{"operation": "submitToolOuputsToRun", "status": "200"}, 1, 1},
		{"assistants_http_requests_total", map[string]string{"operation": "getThread", "status": "404"}, 1, 1},
		{"assistants_http_requests_total", map[string]string{"operation": "getThread", "status": "401"}, 1, 1},
		{"assistants_http_requests_total", map[string]string{"operation": "unmatched", "status": "404"}, 1, 1},
		{"assistants_http_requests_total", map[string]string{"operation": "getRun", "status": "200"}, 2, 1e9},
		{"assistants_http_request_duration_seconds", map[string]string{"operation": "createRun"}, 2, 2},
		{"assistants_sse_subscribers", nil, 0, 0},
		{"assistants_runs_total", map[string]string{"status": "queued"}, 3, 3}, // two runs, and once after the outputs
		{"assistants_runs_total", map[string]string{"status": "in_progress"}, 3, 3},
		{"assistants_runs_total", map[string]string{"status": "requires_action"}, 1, 1},
		{"assistants_runs_total", map[string]string{"status": "completed"}, 2, 2},
		{"assistants_model_round_duration_seconds", map[string]string{"outcome": "ok"}, 3, 3},
		{"assistants_model_tokens_total", map[string]string{"kind": "prompt"}, 1, 1e9},
		{"assistants_model_tokens_total", map[string]string{"kind": "completion"}, 1, 1e9},
		{"assistants_job_duration_seconds", map[string]string{"kind": "round", "outcome": "ok"}, 3, 1e9},
		{"assistants_job_wait_seconds", map[string]string{"kind": "round"}, 3, 1e9},
		{"assistants_queue_jobs", map[string]string{"state": "available"}, 0, 1e9},
		{"go_goroutines", nil, 1, 1e9},
	} {
		v, ok := sample(fams, tc.name, tc.labels)
		if assert.True(t, ok, "no series %s%v", tc.name, tc.labels) {
			assert.True(t, v >= tc.min && v <= tc.max, "%s%v = %v, want in [%v, %v]", tc.name, tc.labels, v, tc.min, tc.max)
		}
	}
	_, ok := sample(fams, "assistants_runs_total", map[string]string{"status": "failed"})
	assert.False(t, ok, "no run failed")

	// Every family of ours is documented, and no label value leaks.
	ids := []string{"thread_", "run_", "msg_", "asst_", "step_", "call_", "file-", "req_"}
	texts := []string{"Zanzibar", "marmalade", "xylophone", "tangerine", "quokka", "doesnotexist", "nowhere", key, "sk-wrong"}
	for name, f := range fams {
		if strings.HasPrefix(name, "assistants_") {
			assert.NotEmpty(t, f.GetHelp(), "%s has no help text", name)
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				for _, p := range ids {
					assert.False(t, strings.Contains(v, p), "%s{%s=%q} holds an object id", name, lp.GetName(), v)
				}
				for _, s := range texts {
					assert.False(t, strings.Contains(strings.ToLower(v), strings.ToLower(s)), "%s{%s=%q} holds %q", name, lp.GetName(), v, s)
				}
			}
		}
	}
}

// TestMetricsSSESubscribers: the gauge counts the event streams open now.
func TestMetricsSSESubscribers(t *testing.T) {
	release := make(chan struct{})
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &server.ModelOutput{Text: "ok"}, nil
	})
	srv := server.New(server.WithStepDelay(0), server.WithModel(model))
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := apiClient{t: t, base: hs.URL}
	_, asst := c.do("POST", "/v1/assistants", map[string]any{"model": "gpt-4o"})

	gauge := func() float64 {
		v, ok := sample(scrape(t, srv.MetricsHandler()), "assistants_sse_subscribers", nil)
		require.True(t, ok)
		return v
	}
	require.Zero(t, gauge())
	var resps []*http.Response
	for range 2 {
		resp := c.raw("POST", "/v1/threads/runs", map[string]any{"assistant_id": asst["id"], "stream": true,
			"thread": map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}})
		require.Equal(t, 200, resp.StatusCode)
		resps = append(resps, resp)
	}
	assert.Equal(t, 2.0, gauge(), "two streams are open")
	close(release)
	for _, resp := range resps {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for gauge() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the handler returns just after the last byte
	}
	assert.Zero(t, gauge(), "both streams ended")
}

// TestMetricsBackendErrors: failed model rounds are counted by class, and
// their message text is in no label.
func TestMetricsBackendErrors(t *testing.T) {
	errs := []error{
		&server.ModelError{Code: server.ModelErrRateLimit, Message: "slow down, pelican"},
		&server.ModelError{Code: server.ModelErrInvalidPrompt, Message: "no pelicans"},
		errors.New("pelican exploded"),
	}
	n := 0
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		err := errs[n%len(errs)]
		n++
		return nil, err
	})
	srv := server.New(server.WithStepDelay(0), server.WithModel(model))
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := apiClient{t: t, base: hs.URL}
	_, asst := c.do("POST", "/v1/assistants", map[string]any{"model": "gpt-4o"})
	for range errs {
		code, run := c.do("POST", "/v1/threads/runs", map[string]any{"assistant_id": asst["id"],
			"thread": map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}})
		require.Equal(t, 200, code, "%v", run)
		c.waitRun(run["thread_id"].(string), run["id"].(string), "failed")
	}
	fams := scrape(t, srv.MetricsHandler())
	for class, want := range map[string]float64{"rate_limit": 1, "invalid_prompt": 1, "other": 1} {
		v, ok := sample(fams, "assistants_backend_errors_total", map[string]string{"class": class})
		assert.True(t, ok && v == want, "backend_errors_total{class=%q} = %v (found %v), want %v", class, v, ok, want)
	}
	v, _ := sample(fams, "assistants_runs_total", map[string]string{"status": "failed"})
	assert.Equal(t, 3.0, v)
	v, _ = sample(fams, "assistants_model_round_duration_seconds", map[string]string{"outcome": "error"})
	assert.Equal(t, 3.0, v)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				assert.NotContains(t, lp.GetValue(), "pelican")
			}
		}
	}
}
