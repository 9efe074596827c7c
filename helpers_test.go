package assistants

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testKey is a fake OpenAI key; no test output may contain it.
const testKey = "sk-proj-TESTKEYdoNotLeak0123456789abcdef"

// clearEnv empties every environment variable the package reads, so tests do
// not depend on the machine's.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "AZURE_OPENAI_API_KEY"} {
		t.Setenv(k, "")
	}
}

// sleepRecorder stands in for the retry wait: it records the wait and
// returns at once (with the context's error if it is done).
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// withSleep injects a retry wait; withJitter a jitter source; withNow a
// clock for Retry-After dates.
func withSleep(f func(context.Context, time.Duration) error) Option {
	return func(o *Options) { o.sleep = f }
}

func withJitter(f func() float64) Option { return func(o *Options) { o.jitter = f } }

func withNow(f func() time.Time) Option { return func(o *Options) { o.now = f } }

// noJitter makes every backoff wait exactly 0.5s*2^n (capped).
var noJitter = withJitter(func() float64 { return 0 })

// attempt is what a scriptServer saw of one request.
type attempt struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// step is one scripted reply; a zero status means 200 {"ok":true}.
type step struct {
	status int
	header map[string]string
	body   string
	hijack bool // close the connection without replying
}

// scriptServer replies to successive requests with its steps, then with
// 200 {"ok":true}, and records every request.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	steps    []step
	attempts []attempt
}

func newScriptServer(t *testing.T, steps ...step) *scriptServer {
	t.Helper()
	s := &scriptServer{steps: steps}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.attempts = append(s.attempts, attempt{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	var st step
	if len(s.steps) > 0 {
		st = s.steps[0]
		s.steps = s.steps[1:]
	}
	s.mu.Unlock()
	if st.hijack {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	for k, v := range st.header {
		w.Header().Set(k, v)
	}
	if st.status == 0 {
		st.status = http.StatusOK
		st.body = `{"ok":true}`
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(st.status)
	_, _ = io.WriteString(w, st.body)
}

func (s *scriptServer) Attempts() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]attempt(nil), s.attempts...)
}

// newClient builds a client for base with the recorder as its retry wait and
// no jitter, plus opts.
func newClient(t *testing.T, base string, rec *sleepRecorder, opts ...Option) *http.Client {
	t.Helper()
	all := append([]Option{WithBaseURL(base), WithAPIKey(testKey), withSleep(rec.sleep), noJitter}, opts...)
	hc, _, err := NewHTTPClient(all...)
	require.NoError(t, err)
	return hc
}

// do sends method to url with an optional body and returns the status and
// body; the body is read and closed.
func do(t *testing.T, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// rtFunc is an in-memory RoundTripper.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeResponse builds a reply to req.
func fakeResponse(req *http.Request, status int, header map[string]string, body string) *http.Response {
	h := make(http.Header)
	for k, v := range header {
		h.Set(k, v)
	}
	return &http.Response{
		StatusCode: status,
		Status:     http.StatusText(status),
		Header:     h,
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	}
}
