package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeChat is a fake Chat Completions server: it records every request body
// and answers each with the next reply of its queue (the last one repeats).
type fakeChat struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  []map[string]any
	auth    []string
	replies []func(w http.ResponseWriter, r *http.Request)
}

func newFakeChat(t *testing.T, replies ...func(w http.ResponseWriter, r *http.Request)) *fakeChat {
	f := &fakeChat{replies: replies}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		n := len(f.bodies)
		f.bodies = append(f.bodies, body)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		reply := f.replies[min(n, len(f.replies)-1)]
		f.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeChat) url() string { return f.URL + "/v1" }

// requests returns the recorded request bodies.
func (f *fakeChat) requests() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.bodies...)
}

// sseReply streams chunks as `data:` lines, then [DONE].
func sseReply(chunks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range chunks {
			fmt.Fprintf(w, "data: %s\n\n", c)
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
}

// textReply streams words as content deltas, then usage.
func textReply(prompt, completion int, words ...string) func(w http.ResponseWriter, r *http.Request) {
	var chunks []string
	for _, w := range words {
		b, _ := json.Marshal(w)
		chunks = append(chunks, `{"choices":[{"index":0,"delta":{"content":`+string(b)+`}}]}`)
	}
	chunks = append(chunks, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, prompt, completion, prompt+completion))
	return sseReply(chunks...)
}

// toolReply streams one tool call split over several chunks.
func toolReply(id, name, args string) func(w http.ResponseWriter, r *http.Request) {
	half := len(args) / 2
	a1, _ := json.Marshal(args[:half])
	a2, _ := json.Marshal(args[half:])
	return sseReply(
		`{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"`+id+`","type":"function","function":{"name":"`+name+`","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`+string(a1)+`}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`+string(a2)+`}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`,
	)
}

func statusReply(code int, msg string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "error"}})
		_, _ = w.Write(b)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
