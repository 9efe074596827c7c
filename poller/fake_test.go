package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
)

// errDropped stands for a connection dropped by the server.
var errDropped = errors.New("connection reset by fake")

// reply is one scripted answer of the fake API.
type reply struct {
	status    string            // run status; "" with code != 200 for an error body
	code      int               // HTTP status, default 200
	pollAfter string            // openai-poll-after-ms header, "" for none
	header    map[string]string // more reply headers
	drop      bool              // fail the round trip instead of answering
	run       func(map[string]any)
}

// request is one request the fake API saw.
type request struct {
	at     time.Time // time.Now() when it arrived (virtual in a bubble)
	method string
	path   string
	body   map[string]any
}

// fakeAPI answers requests from a script, in process (an http.RoundTripper
// calling an http.Handler with httptest.ResponseRecorder), so it works in a
// synctest bubble; the last reply is repeated when the script runs out.
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex
	script []reply
	n      int
	reqs   []request
	block  bool // hold every request until its context is done
}

func newFake(t *testing.T, script ...reply) (*fakeAPI, *assistants.Client) {
	t.Helper()
	f := &fakeAPI{t: t, script: script}
	c, err := assistants.New(
		assistants.WithBaseURL("http://fake.test/v1"),
		assistants.WithAPIKey("sk-test-key"),
		assistants.WithMaxRetries(0),
		assistants.WithHTTPClient(&http.Client{Transport: f}),
	)
	require.NoError(t, err)
	return f, c
}

func runMap(id, status string) map[string]any {
	return map[string]any{
		"id": id, "object": "thread.run", "created_at": 1, "assistant_id": "asst_1", "thread_id": "thread_1",
		"status": status, "model": "m", "instructions": "", "tools": []any{}, "parallel_tool_calls": true,
		"response_format": "auto",
	}
}

func (f *fakeAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	var body map[string]any
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if len(b) > 0 {
			_ = json.Unmarshal(b, &body)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, request{at: time.Now(), method: req.Method, path: req.URL.Path, body: body})
	var r reply
	if len(f.script) > 0 {
		r = f.script[min(f.n, len(f.script)-1)]
	}
	f.n++
	block := f.block
	f.mu.Unlock()
	if block {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	if r.drop {
		return nil, errDropped
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	if r.pollAfter != "" {
		rec.Header().Set("openai-poll-after-ms", r.pollAfter)
	}
	for k, v := range r.header {
		rec.Header().Set(k, v)
	}
	code := r.code
	if code == 0 {
		code = http.StatusOK
	}
	rec.WriteHeader(code)
	if code != http.StatusOK {
		_, _ = rec.WriteString(`{"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}`)
	} else {
		m := runMap("run_1", r.status)
		if r.run != nil {
			r.run(m)
		}
		b, _ := json.Marshal(m)
		_, _ = rec.Write(b)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// requests returns a copy of the requests seen so far.
func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// gaps returns the virtual time between consecutive requests.
func (f *fakeAPI) gaps() []time.Duration {
	rs := f.requests()
	var out []time.Duration
	for i := 1; i < len(rs); i++ {
		out = append(out, rs[i].at.Sub(rs[i-1].at))
	}
	return out
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

var _ = context.Background
