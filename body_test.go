package assistants

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cutServer answers every request with 200 and full, but cuts the first
// `cuts` replies half-way through the body: the headers and part of the
// body arrive, then the connection closes.
type cutServer struct {
	*httptest.Server
	full        string
	contentType string
	withLength  bool // declare Content-Length (else the body is chunked)

	mu       sync.Mutex
	cuts     int
	attempts []attempt
}

func newCutServer(t *testing.T, cuts int, contentType string, withLength bool) *cutServer {
	t.Helper()
	s := &cutServer{full: `{"id":"thread_1","object":"thread","created_at":1,"metadata":{}}`,
		contentType: contentType, withLength: withLength, cuts: cuts}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *cutServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.attempts = append(s.attempts, attempt{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	cut := s.cuts > 0
	s.cuts--
	s.mu.Unlock()
	w.Header().Set("Content-Type", s.contentType)
	if s.withLength {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.full)))
	}
	w.WriteHeader(http.StatusOK)
	if !cut {
		_, _ = io.WriteString(w, s.full)
		return
	}
	_, _ = io.WriteString(w, s.full[:len(s.full)/2])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *cutServer) Attempts() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]attempt(nil), s.attempts...)
}

// A reply whose body is cut is retried, with the same Idempotency-Key, when
// the request is safe to repeat; never for a stream, a request that is not
// safe to repeat, or with WithCutBodyRetry(false).
func TestCutBodyRetry(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		header      map[string]string // set on the request
		contentType string
		withLength  bool
		cuts        int
		opts        []Option
		retried     bool // the call succeeds after cuts retries
	}{
		{name: "GET with Content-Length", method: "GET", contentType: "application/json", withLength: true, cuts: 1, retried: true},
		{name: "GET chunked", method: "GET", contentType: "application/json", cuts: 2, retried: true},
		{name: "POST (our Idempotency-Key)", method: "POST", contentType: "application/json", withLength: true, cuts: 2, retried: true},
		{name: "DELETE carrying an Idempotency-Key", method: "DELETE", header: map[string]string{"Idempotency-Key": "idem_mine"},
			contentType: "application/json", cuts: 1, retried: true},
		{name: "octet-stream download", method: "GET", contentType: "application/octet-stream", withLength: true, cuts: 1, retried: true},
		{name: "DELETE without a key is not safe to repeat", method: "DELETE", contentType: "application/json", cuts: 1},
		{name: "event stream is never retried mid-way", method: "POST", contentType: "text/event-stream", cuts: 1},
		{name: "switched off", method: "GET", contentType: "application/json", withLength: true, cuts: 1,
			opts: []Option{WithCutBodyRetry(false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			srv := newCutServer(t, tt.cuts, tt.contentType, tt.withLength)
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec, tt.opts...)

			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(`{"metadata":{}}`)
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+"/threads", body)
			require.NoError(t, err)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}

			att := srv.Attempts()
			if !tt.retried {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the cut reaches the caller")
				assert.Len(t, att, 1)
				assert.Empty(t, rec.Waits())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, srv.full, string(got))
			require.Len(t, att, tt.cuts+1)
			assert.Len(t, rec.Waits(), tt.cuts, "a cut body waits like a connection error")
			key := att[0].Header.Get("Idempotency-Key")
			for i, a := range att {
				assert.Equal(t, strconv.Itoa(i), a.Header.Get("X-Retry-Count"))
				assert.Equal(t, key, a.Header.Get("Idempotency-Key"), "the same key on every attempt")
				if tt.method == "POST" {
					assert.JSONEq(t, `{"metadata":{}}`, string(a.Body))
				}
			}
			if v := tt.header["Idempotency-Key"]; v != "" {
				assert.Equal(t, v, key)
			}
			if tt.method == "POST" {
				assert.NotEmpty(t, key)
			}
		})
	}
}

// A body cut on every attempt fails the call once the retries are spent,
// with an error that says so and matches io.ErrUnexpectedEOF.
func TestCutBodyExhaustsRetries(t *testing.T) {
	clearEnv(t)
	srv := newCutServer(t, 10, "application/json", true)
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/threads/thread_1", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)

	require.Error(t, err)
	assert.Nil(t, resp)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Contains(t, err.Error(), "read reply body of GET /threads/thread_1")
	assert.NotContains(t, err.Error(), testKey)
	assert.Len(t, srv.Attempts(), 3)
}

// A body that stalls past the per-attempt timeout is retried like a cut one.
func TestCutBodyTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			resp := fakeResponse(r, 200, map[string]string{"Content-Type": "application/json"}, `{"ok":true}`)
			if calls == 1 {
				resp.Body = io.NopCloser(&ctxReader{ctx: r.Context()}) // stalls until the attempt times out
			}
			return resp, nil
		})
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
			WithHTTPClient(&http.Client{Transport: base}), WithTimeout(time.Minute), noJitter)
		require.NoError(t, err)

		start := time.Now()
		resp, err := hc.Get("https://api.example.com/v1/x")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.JSONEq(t, `{"ok":true}`, string(b))
		assert.Equal(t, 2, calls)
		assert.Equal(t, time.Minute+500*time.Millisecond, time.Since(start), "one timeout, one backoff")
	})
}

// Replies are read whole up to MaxBufferedBody; a larger one is passed on
// (unread when its Content-Length says so) and arrives intact.
func TestCutBodyLimit(t *testing.T) {
	big := int64(MaxBufferedBody + 100)
	tests := []struct {
		name       string
		length     int64 // Content-Length; -1 unknown
		wantUnread bool  // the transport read nothing before handing it on
	}{
		{"large with Content-Length is not read ahead", big, true},
		{"large without length is read up to the limit", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src *countingReader
			base := rtFunc(func(r *http.Request) (*http.Response, error) {
				src = &countingReader{r: io.LimitReader(zeros{}, big)}
				resp := fakeResponse(r, 200, map[string]string{"Content-Type": "application/octet-stream"}, "")
				resp.Body, resp.ContentLength = io.NopCloser(src), tt.length
				return resp, nil
			})
			hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithHTTPClient(&http.Client{Transport: base}))
			require.NoError(t, err)

			resp, err := hc.Get("https://api.example.com/v1/files/file_1/content")
			require.NoError(t, err)
			if tt.wantUnread {
				assert.Zero(t, src.n)
			} else {
				assert.Greater(t, src.n, int64(MaxBufferedBody))
				assert.Less(t, src.n, big)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, big, n)
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A buffered body behaves as a body: reads, WriteTo, EOF, and an error
// after Close (its buffer has gone back to the pool).
func TestBufferedBody(t *testing.T) {
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		return fakeResponse(r, 200, nil, "hello, world"), nil
	})
	for _, timeout := range []time.Duration{0, time.Minute} { // without and with the per-attempt timer's body
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithHTTPClient(&http.Client{Transport: base}),
			WithTimeout(timeout))
		require.NoError(t, err)
		resp, err := hc.Get("https://api.example.com/v1/x")
		require.NoError(t, err)
		assert.EqualValues(t, 12, resp.ContentLength)
		p := make([]byte, 5)
		n, err := resp.Body.Read(p)
		require.NoError(t, err)
		assert.Equal(t, "hello", string(p[:n]))
		var rest bytes.Buffer
		_, err = io.Copy(&rest, resp.Body)
		require.NoError(t, err)
		assert.Equal(t, ", world", rest.String())
		n, err = resp.Body.Read(p)
		assert.Zero(t, n)
		assert.Equal(t, io.EOF, err)
		require.NoError(t, resp.Body.Close())
		require.NoError(t, resp.Body.Close(), "a second Close is harmless")
		_, err = resp.Body.Read(p)
		assert.Error(t, err, "read after close")
	}
}

// The caller's context ending while the body is read is not retried.
func TestCutBodyContextCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			resp := fakeResponse(r, 200, nil, "")
			resp.Body = io.NopCloser(&ctxReader{ctx: r.Context()})
			return resp, nil
		})
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithHTTPClient(&http.Client{Transport: base}))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/v1/x", nil)
		require.NoError(t, err)
		_, err = hc.Do(req)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, calls)
	})
}
