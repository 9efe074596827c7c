package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// logSink collects JSON log lines; safe for concurrent use.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// request waits (bounded) for the request log line of the given op and
// reply status, and returns the n-th such line (from 0).
func (s *logSink) request(t *testing.T, op string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		lines := strings.Split(s.buf.String(), "\n")
		s.mu.Unlock()
		seen := 0
		for _, l := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "request" || m["op"] != op {
				continue
			}
			if seen == n {
				return m
			}
			seen++
		}
		require.True(t, time.Now().Before(deadline), "no request log line for %s", op)
		time.Sleep(time.Millisecond) // the line is written once the handler returns
	}
}

// TestRequestLogCarriesObjectIDs: each request's log line names the
// objects of its path and the objects its reply made, so that a user can
// find the thread or run they just created.
func TestRequestLogCarriesObjectIDs(t *testing.T) {
	sink := &logSink{}
	srv := server.New(server.WithStepDelay(0), server.WithLogger(slog.New(slog.NewJSONHandler(sink, nil))))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	var raw []byte // the last reply's body
	call := func(method, path, body string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+"/v1"+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Less(t, resp.StatusCode, 300, "%s %s: %s", method, path, b)
		raw = b
		var m map[string]any
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			require.NoError(t, json.Unmarshal(b, &m))
		}
		return m
	}
	asst := call("POST", "/assistants", `{"model":"gpt-4o"}`)["id"].(string)
	thread := call("POST", "/threads", `{}`)["id"].(string)
	msg := call("POST", "/threads/"+thread+"/messages", `{"role":"user","content":"hi"}`)["id"].(string)
	run := call("POST", "/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`"}`)["id"].(string)
	call("GET", "/threads/"+thread+"/runs/"+run, "")
	tar := call("POST", "/threads/runs", `{"assistant_id":"`+asst+`"}`)
	call("POST", "/threads/runs", `{"assistant_id":"`+asst+`","stream":true}`)
	var streamed struct {
		ID       string `json:"id"`
		ThreadID string `json:"thread_id"`
	}
	_, data, ok := strings.Cut(string(raw), "event: thread.run.created\ndata: ")
	require.True(t, ok, "%s", raw)
	data, _, _ = strings.Cut(data, "\n")
	require.NoError(t, json.Unmarshal([]byte(data), &streamed))

	tests := []struct {
		op   string
		n    int
		want map[string]string // attributes that must be there
	}{
		{op: "createAssistant", want: map[string]string{"assistant_id": asst}},
		{op: "createThread", want: map[string]string{"thread_id": thread}},
		{op: "createMessage", want: map[string]string{"thread_id": thread, "message_id": msg}},
		{op: "createRun", want: map[string]string{"thread_id": thread, "run_id": run}},
		{op: "getRun", want: map[string]string{"thread_id": thread, "run_id": run}},
		{op: "createThreadAndRun", want: map[string]string{"thread_id": tar["thread_id"].(string), "run_id": tar["id"].(string)}},
		{op: "createThreadAndRun", n: 1, want: map[string]string{"thread_id": streamed.ThreadID, "run_id": streamed.ID}}, // the stream
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			line := sink.request(t, tt.op, tt.n)
			for k, v := range tt.want {
				require.NotEmpty(t, v)
				got, _ := line[k].(string)
				assert.Equal(t, v, got, "%s in %v", k, line)
			}
		})
	}
}

// TestInfoLogsHoldNoKeyNorText: through a whole conversation (auth on, a
// tool call and its output, a streamed run, a refused key, a failed
// model round), the logs at INFO carry each request's id, project, thread
// and run ids, and never the key, a refused key, nor any message or tool
// output text.
func TestInfoLogsHoldNoKeyNorText(t *testing.T) {
	const key = "sk-info-log-key-5d1e0b7c"
	sink := &logSink{}
	var fail atomic.Bool
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		if fail.Load() {
			return nil, &server.ModelError{Code: server.ModelErrServer, Message: "backend said aardvark"}
		}
		return server.Scripted().Respond(ctx, in, emit)
	})
	srv := server.New(server.WithAPIKeys(key), server.WithStepDelay(0), server.WithModel(model),
		server.WithLogger(slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := apiClient{t: t, base: hs.URL, key: key}

	_, asst := c.do("POST", "/v1/assistants", map[string]any{"model": "gpt-4o", "instructions": "be a wombat",
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}}})
	_, th := c.do("POST", "/v1/threads", map[string]any{"metadata": map[string]string{"team": "platypus"}})
	tid := th["id"].(string)
	c.do("POST", "/v1/threads/"+tid+"/messages", map[string]any{"role": "user", "content": `echidna get_weather {"city":"Numbat"}`})
	code, run := c.do("POST", "/v1/threads/"+tid+"/runs", map[string]any{"assistant_id": asst["id"]})
	require.Equal(t, 200, code, "%v", run)
	rid := run["id"].(string)
	run = c.waitRun(tid, rid, "requires_action")
	call := run["required_action"].(map[string]any)["submit_tool_outputs"].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)
	c.do("POST", "/v1/threads/"+tid+"/runs/"+rid+"/submit_tool_outputs", map[string]any{
		"tool_outputs": []any{map[string]any{"tool_call_id": call["id"], "output": "quoll"}}})
	c.waitRun(tid, rid, "completed")
	c.do("POST", "/v1/threads/"+tid+"/messages", map[string]any{"role": "user", "content": "bilby dingo"})
	resp := c.raw("POST", "/v1/threads/"+tid+"/runs", map[string]any{"assistant_id": asst["id"], "stream": true})
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	c.do("GET", "/v1/threads/"+tid+"/messages", nil)
	fail.Store(true)
	c.do("POST", "/v1/threads/"+tid+"/messages", map[string]any{"role": "user", "content": "kookaburra"})
	_, run = c.do("POST", "/v1/threads/"+tid+"/runs", map[string]any{"assistant_id": asst["id"]})
	c.waitRun(tid, run["id"].(string), "failed")
	bad := apiClient{t: t, base: hs.URL, key: "sk-refused-key-9f8e7d"}
	code, _ = bad.do("GET", "/v1/threads/"+tid, nil)
	require.Equal(t, 401, code)

	line := sink.request(t, "createRun", 0)
	assert.Equal(t, "default", line["project"])
	assert.Equal(t, tid, line["thread_id"])
	assert.Equal(t, rid, line["run_id"])
	assert.Regexp(t, `^req_[0-9a-f]{32}$`, line["request_id"])
	stream := sink.request(t, "createRun", 1)
	assert.Equal(t, tid, stream["thread_id"])
	assert.NotEmpty(t, stream["run_id"])

	sink.mu.Lock()
	logs := sink.buf.String()
	sink.mu.Unlock()
	for _, secret := range []string{key, "sk-refused", "wombat", "platypus", "echidna", "Numbat", "quoll", "bilby", "dingo", "kookaburra", "aardvark"} {
		assert.False(t, strings.Contains(logs, secret), "the logs hold %q", secret)
	}
}
