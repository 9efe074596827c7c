package server_test

import (
	"bytes"
	"encoding/json"
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
