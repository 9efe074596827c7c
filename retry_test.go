package assistants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryStatuses(t *testing.T) {
	tests := []struct {
		status  int
		retried bool
	}{
		{http.StatusRequestTimeout, true},
		{http.StatusConflict, true},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusGatewayTimeout, true},
		{http.StatusBadRequest, false},
		{http.StatusUnauthorized, false},
		{http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			clearEnv(t)
			fail := step{status: tt.status, body: `{"error":{"message":"nope"}}`}
			srv := newScriptServer(t, fail, fail, fail, fail)
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec)

			status, _ := do(t, hc, http.MethodGet, srv.URL+"/threads/t1", "")

			assert.Equal(t, tt.status, status, "the last reply is returned")
			if tt.retried {
				assert.Len(t, srv.Attempts(), 3, "1 attempt + 2 retries")
				assert.Equal(t, []time.Duration{500 * time.Millisecond, time.Second}, rec.Waits())
			} else {
				assert.Len(t, srv.Attempts(), 1)
				assert.Empty(t, rec.Waits())
			}
		})
	}
}

func TestRetrySucceedsAfterFailures(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500}, step{status: 429})
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	status, body := do(t, hc, http.MethodGet, srv.URL+"/x", "")

	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"ok":true}`, body)
	assert.Len(t, srv.Attempts(), 3)
}

func TestMaxRetries(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			clearEnv(t)
			fail := step{status: 503}
			srv := newScriptServer(t, fail, fail, fail, fail, fail, fail, fail, fail)
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec, WithMaxRetries(n))

			status, _ := do(t, hc, http.MethodGet, srv.URL+"/x", "")

			assert.Equal(t, 503, status)
			assert.Len(t, srv.Attempts(), n+1)
			assert.Len(t, rec.Waits(), n)
		})
	}
}

func TestShouldRetryHeaderOverrides(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   string
		attempts int
	}{
		{"true on 400", 400, "true", 2},
		{"false on 503", 503, "false", 1},
		{"false on 429", 429, "FALSE", 1},
		{"true on 401", 401, " true ", 2},
		{"garbage ignored on 503", 503, "maybe", 2},
		{"garbage ignored on 400", 400, "maybe", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			srv := newScriptServer(t, step{status: tt.status, header: map[string]string{"x-should-retry": tt.header}})
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec)

			status, _ := do(t, hc, http.MethodGet, srv.URL+"/x", "")

			assert.Len(t, srv.Attempts(), tt.attempts)
			if tt.attempts == 1 {
				assert.Equal(t, tt.status, status)
			} else {
				assert.Equal(t, 200, status)
			}
		})
	}
}

func TestRetryWaitHints(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	backoff0 := 500 * time.Millisecond
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"retry-after-ms", map[string]string{"retry-after-ms": "1500"}, 1500 * time.Millisecond},
		{"retry-after-ms fractional", map[string]string{"retry-after-ms": "2.5"}, 2500 * time.Microsecond},
		{"retry-after-ms wins over Retry-After", map[string]string{"retry-after-ms": "700", "Retry-After": "9"}, 700 * time.Millisecond},
		{"Retry-After seconds", map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{"Retry-After 60s is allowed", map[string]string{"Retry-After": "60"}, 60 * time.Second},
		{"Retry-After HTTP date", map[string]string{"Retry-After": date(5 * time.Second)}, 5 * time.Second},
		{"unparsable retry-after-ms falls to Retry-After", map[string]string{"retry-after-ms": "soon", "Retry-After": "2"}, 2 * time.Second},
		{"retry-after-ms 0 backs off", map[string]string{"retry-after-ms": "0"}, backoff0},
		{"retry-after-ms negative backs off", map[string]string{"retry-after-ms": "-5"}, backoff0},
		{"retry-after-ms over 60s backs off", map[string]string{"retry-after-ms": "60001"}, backoff0},
		{"retry-after-ms NaN backs off", map[string]string{"retry-after-ms": "NaN"}, backoff0},
		{"retry-after-ms huge backs off", map[string]string{"retry-after-ms": "1e300"}, backoff0},
		{"Retry-After 0 backs off", map[string]string{"Retry-After": "0"}, backoff0},
		{"Retry-After 61 backs off", map[string]string{"Retry-After": "61"}, backoff0},
		{"Retry-After date in the past backs off", map[string]string{"Retry-After": date(-time.Minute)}, backoff0},
		{"Retry-After date too far backs off", map[string]string{"Retry-After": date(2 * time.Minute)}, backoff0},
		{"Retry-After garbage backs off", map[string]string{"Retry-After": "tomorrow"}, backoff0},
		{"no hint backs off", nil, backoff0},
		// An out-of-range or unreadable retry-after-ms falls back to
		// Retry-After, not straight to backoff.
		{"negative retry-after-ms falls back to Retry-After", map[string]string{"retry-after-ms": "-5", "Retry-After": "2"}, 2 * time.Second},
		{"zero retry-after-ms falls back to Retry-After", map[string]string{"retry-after-ms": "0", "Retry-After": "4"}, 4 * time.Second},
		{"huge retry-after-ms falls back to Retry-After", map[string]string{"retry-after-ms": "1e300", "Retry-After": "3"}, 3 * time.Second},
		{"retry-after-ms over 60s falls back to Retry-After", map[string]string{"retry-after-ms": "600000", "Retry-After": "7"}, 7 * time.Second},
		{"NaN retry-after-ms falls back to Retry-After", map[string]string{"retry-after-ms": "NaN", "Retry-After": "1"}, time.Second},
		{"Inf retry-after-ms falls back to Retry-After date", map[string]string{"retry-after-ms": "+Inf", "Retry-After": date(6 * time.Second)}, 6 * time.Second},
		{"both out of range back off", map[string]string{"retry-after-ms": "-1", "Retry-After": "3600"}, backoff0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			srv := newScriptServer(t, step{status: 429, header: tt.header})
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec, withNow(func() time.Time { return now }))

			status, _ := do(t, hc, http.MethodGet, srv.URL+"/x", "")

			assert.Equal(t, 200, status)
			assert.Equal(t, []time.Duration{tt.want}, rec.Waits())
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 12 {
		d := min(500*time.Millisecond*time.Duration(1<<n), 8*time.Second)
		lo := time.Duration(float64(d) * 0.75)
		for range 2000 {
			got := backoff(n, r.Float64())
			require.GreaterOrEqual(t, got, lo, "n=%d", n)
			require.LessOrEqual(t, got, d, "n=%d", n)
			require.LessOrEqual(t, got, 8*time.Second)
		}
	}
	// Extremes of the jitter source.
	assert.Equal(t, 500*time.Millisecond, backoff(0, 0))
	assert.Equal(t, 375*time.Millisecond, backoff(0, 1))
	assert.Equal(t, 8*time.Second, backoff(100, 0))
	assert.Equal(t, 6*time.Second, backoff(1000, 1))
	assert.Equal(t, 500*time.Millisecond, backoff(-1, 0), "negative n is treated as 0")
	assert.Equal(t, 500*time.Millisecond, backoff(0, -3), "negative jitter is treated as 0")
}

func TestBackoffThroughTransport(t *testing.T) {
	clearEnv(t)
	fail := step{status: 500}
	srv := newScriptServer(t, fail, fail, fail, fail, fail, fail)
	rec := &sleepRecorder{}
	r := rand.New(rand.NewPCG(3, 4))
	hc := newClient(t, srv.URL, rec, WithMaxRetries(6), withJitter(r.Float64))

	do(t, hc, http.MethodGet, srv.URL+"/x", "")

	waits := rec.Waits()
	require.Len(t, waits, 6)
	for n, w := range waits {
		d := min(500*time.Millisecond<<n, 8*time.Second)
		assert.GreaterOrEqual(t, w, d*3/4, "retry %d", n)
		assert.LessOrEqual(t, w, d, "retry %d", n)
	}
}

func TestRetryConnectionError(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{hijack: true})
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	status, body := do(t, hc, http.MethodPost, srv.URL+"/threads", `{"a":1}`)

	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"ok":true}`, body)
	att := srv.Attempts()
	require.Len(t, att, 2)
	assert.Equal(t, "1", att[1].Header.Get("X-Retry-Count"), "the second arrival is the SDK's retry")
	assert.Equal(t, `{"a":1}`, string(att[1].Body))
	assert.Len(t, rec.Waits(), 1)
}

func TestConnectionErrorExhaustsRetries(t *testing.T) {
	clearEnv(t)
	h := step{hijack: true}
	srv := newScriptServer(t, h, h, h)
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", nil)
	require.NoError(t, err)
	_, err = hc.Do(req)

	require.Error(t, err)
	assert.Len(t, srv.Attempts(), 3)
	assert.NotContains(t, err.Error(), testKey)
}

func TestRetryReplaysBodies(t *testing.T) {
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	require.NoError(t, mw.WriteField("purpose", "assistants"))
	fw, err := mw.CreateFormFile("file", "notes.txt")
	require.NoError(t, err)
	_, _ = fw.Write(bytes.Repeat([]byte("line of text\n"), 500))
	require.NoError(t, mw.Close())
	mpBody := mp.Bytes()

	tests := []struct {
		name        string
		contentType string
		body        []byte
		reader      func() io.Reader
	}{
		{"json", "application/json", []byte(`{"model":"gpt-4o","name":"x"}`), nil},
		{"multipart", mw.FormDataContentType(), mpBody, nil},
	}
	tests[0].reader = func() io.Reader { return bytes.NewReader(tests[0].body) }
	tests[1].reader = func() io.Reader { return bytes.NewBuffer(append([]byte(nil), mpBody...)) }

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			srv := newScriptServer(t, step{status: 500}, step{status: 502})
			rec := &sleepRecorder{}
			hc := newClient(t, srv.URL, rec)

			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/files", tt.reader())
			require.NoError(t, err)
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := hc.Do(req)
			require.NoError(t, err)
			resp.Body.Close()

			assert.Equal(t, 200, resp.StatusCode)
			att := srv.Attempts()
			require.Len(t, att, 3)
			for i, a := range att {
				assert.Equal(t, tt.body, a.Body, "attempt %d body", i)
				assert.Equal(t, tt.contentType, a.Header.Get("Content-Type"), "attempt %d", i)
				assert.Equal(t, strconv.Itoa(len(tt.body)), a.Header.Get("Content-Length"), "attempt %d", i)
			}
			if tt.name == "multipart" {
				_, params, err := mime.ParseMediaType(att[2].Header.Get("Content-Type"))
				require.NoError(t, err)
				mr := multipart.NewReader(bytes.NewReader(att[2].Body), params["boundary"])
				form, err := mr.ReadForm(1 << 20)
				require.NoError(t, err)
				assert.Equal(t, []string{"assistants"}, form.Value["purpose"])
			}
		})
	}
}

func TestBodyWithoutGetBodyIsNotRetried(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500}, step{status: 500})
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/x",
		io.NopCloser(strings.NewReader(`{"once":true}`)))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	assert.Equal(t, 500, resp.StatusCode)
	require.Len(t, srv.Attempts(), 1)
	assert.Equal(t, `{"once":true}`, string(srv.Attempts()[0].Body))
	assert.Empty(t, rec.Waits())
}

var idemPattern = regexp.MustCompile(`^idem_[0-9a-f]{32}$`)

func TestIdempotencyKey(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500}, step{}, step{status: 429}, step{}, step{status: 500})
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	do(t, hc, http.MethodPost, srv.URL+"/threads", `{}`)
	do(t, hc, http.MethodPost, srv.URL+"/threads", `{}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/threads", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", "mine")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	do(t, hc, http.MethodGet, srv.URL+"/threads/t", "")

	att := srv.Attempts()
	require.Len(t, att, 7)
	k1, k2 := att[0].Header.Get("Idempotency-Key"), att[2].Header.Get("Idempotency-Key")
	assert.Regexp(t, idemPattern, k1)
	assert.Regexp(t, idemPattern, k2)
	assert.Equal(t, k1, att[1].Header.Get("Idempotency-Key"), "same key across attempts")
	assert.Equal(t, k2, att[3].Header.Get("Idempotency-Key"), "same key across attempts")
	assert.NotEqual(t, k1, k2, "a new key per logical request")
	assert.Equal(t, "mine", att[4].Header.Get("Idempotency-Key"), "the caller's key is kept")
	assert.Equal(t, "mine", att[5].Header.Get("Idempotency-Key"))
	assert.Empty(t, att[6].Header.Values("Idempotency-Key"), "GET has none")
	assert.Empty(t, req.Header.Get("X-Retry-Count"), "the caller's request is untouched")
}

func TestRetryCountHeader(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500}, step{status: 500})
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec)

	do(t, hc, http.MethodGet, srv.URL+"/x", "")
	do(t, hc, http.MethodGet, srv.URL+"/y", "")

	var got []string
	for _, a := range srv.Attempts() {
		got = append(got, a.Header.Get("X-Retry-Count"))
	}
	assert.Equal(t, []string{"0", "1", "2", "0"}, got)
}

func TestRetriedBodiesAreDrainedAndClosed(t *testing.T) {
	var bodies []*trackingBody
	calls := 0
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		status := 500
		if calls == 3 {
			status = 200
		}
		b := &trackingBody{r: strings.NewReader(strings.Repeat("x", 10<<10))}
		bodies = append(bodies, b)
		resp := fakeResponse(r, status, nil, "")
		resp.Body = b
		return resp, nil
	})
	rec := &sleepRecorder{}
	hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithAPIKey(testKey),
		WithHTTPClient(&http.Client{Transport: base}), withSleep(rec.sleep), noJitter)
	require.NoError(t, err)

	resp, err := hc.Get("https://api.example.com/v1/x")
	require.NoError(t, err)
	defer resp.Body.Close()

	require.Len(t, bodies, 3)
	for _, b := range bodies[:2] {
		assert.True(t, b.closed)
		assert.Equal(t, int64(4<<10), b.read, "drained up to 4 KiB")
	}
	// The reply returned was read whole by the transport (CutBodyRetry) and
	// its connection released; the caller reads the copy.
	assert.True(t, bodies[2].closed)
	assert.Equal(t, int64(10<<10), bodies[2].read)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Len(t, got, 10<<10)

	// Without CutBodyRetry the reply is handed on unread.
	bodies, calls = nil, 0
	hc, _, err = NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithAPIKey(testKey),
		WithHTTPClient(&http.Client{Transport: base}), withSleep(rec.sleep), noJitter, WithCutBodyRetry(false))
	require.NoError(t, err)
	resp2, err := hc.Get("https://api.example.com/v1/x")
	require.NoError(t, err)
	defer resp2.Body.Close()
	require.Len(t, bodies, 3)
	assert.False(t, bodies[2].closed, "the returned body is the caller's to close")
	assert.Zero(t, bodies[2].read)
}

type trackingBody struct {
	r      io.Reader
	read   int64
	closed bool
}

func (b *trackingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

func (b *trackingBody) Close() error { b.closed = true; return nil }

func TestContextCancelledDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			return fakeResponse(r, 429, map[string]string{"Retry-After": "30"}, ""), nil
		})
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
			WithHTTPClient(&http.Client{Transport: base}))
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/v1/x", nil)
		require.NoError(t, err)
		start := time.Now()
		_, err = hc.Do(req)

		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "the 30s wait ends when the context does")
		assert.Equal(t, 1, calls)
	})
}

func TestContextCancelledDuringWaitRealNetwork(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 503, header: map[string]string{"Retry-After": "30"}})
	ctx, cancel := context.WithCancel(t.Context())
	// The retry is logged right before the wait starts: cancel there.
	logger := slog.New(handlerFunc(func(r slog.Record) { cancel() }))
	hc, _, err := NewHTTPClient(WithBaseURL(srv.URL), WithLogger(logger))
	require.NoError(t, err)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
	require.NoError(t, err)
	start := time.Now()
	_, err = hc.Do(req)

	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Len(t, srv.Attempts(), 1)
}

func TestRealWaitsUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Duration
		start := time.Now()
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			at = append(at, time.Since(start))
			switch len(at) {
			case 1:
				return fakeResponse(r, 429, map[string]string{"retry-after-ms": "1500"}, ""), nil
			case 2:
				return fakeResponse(r, 500, nil, ""), nil
			}
			return fakeResponse(r, 200, nil, "{}"), nil
		})
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
			WithHTTPClient(&http.Client{Transport: base}), noJitter)
		require.NoError(t, err)

		resp, err := hc.Get("https://api.example.com/v1/x")
		require.NoError(t, err)
		resp.Body.Close()

		// 1.5s from the hint, then 1s: backoff for the second retry.
		assert.Equal(t, []time.Duration{0, 1500 * time.Millisecond, 2500 * time.Millisecond}, at)
	})
}

func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			<-r.Context().Done() // a server that never answers
			return nil, context.Cause(r.Context())
		})
		hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
			WithHTTPClient(&http.Client{Transport: base}), WithTimeout(time.Minute), WithMaxRetries(1), noJitter)
		require.NoError(t, err)

		start := time.Now()
		_, err = hc.Get("https://api.example.com/v1/x")

		assert.ErrorIs(t, err, ErrAttemptTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 2, calls, "a timed-out attempt is retried")
		assert.Equal(t, 2*time.Minute+500*time.Millisecond, time.Since(start))
	})
}

func TestAttemptTimeoutCoversBodyButNotEventStreams(t *testing.T) {
	for _, ct := range []string{"application/json", "text/event-stream; charset=utf-8"} {
		t.Run(ct, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var attemptCtx context.Context
				base := rtFunc(func(r *http.Request) (*http.Response, error) {
					attemptCtx = r.Context()
					resp := fakeResponse(r, 200, map[string]string{"Content-Type": ct}, "")
					resp.Body = io.NopCloser(&ctxReader{ctx: r.Context()})
					return resp, nil
				})
				// Without CutBodyRetry, so that the reply reaches the
				// caller before its body is read (TestCutBodyTimeout
				// covers the default).
				hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
					WithHTTPClient(&http.Client{Transport: base}), WithTimeout(time.Minute), WithCutBodyRetry(false))
				require.NoError(t, err)

				resp, err := hc.Get("https://api.example.com/v1/x")
				require.NoError(t, err)
				time.Sleep(20 * time.Minute)
				if strings.HasPrefix(ct, "text/event-stream") {
					assert.NoError(t, attemptCtx.Err(), "a stream outlives the per-attempt timeout")
				} else {
					assert.Error(t, attemptCtx.Err())
					_, err := resp.Body.Read(make([]byte, 1))
					assert.ErrorIs(t, err, ErrAttemptTimeout)
				}
				require.NoError(t, resp.Body.Close())
				assert.Error(t, attemptCtx.Err(), "closing the body releases the attempt")
			})
		})
	}
}

func TestBodyReadToEOFStopsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attemptCtx context.Context
		base := rtFunc(func(r *http.Request) (*http.Response, error) {
			attemptCtx = r.Context()
			return fakeResponse(r, 200, nil, `{"ok":true}`), nil
		})
		for _, cutBodyRetry := range []bool{false, true} {
			hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"),
				WithHTTPClient(&http.Client{Transport: base}), WithTimeout(time.Minute), WithCutBodyRetry(cutBodyRetry))
			require.NoError(t, err)

			resp, err := hc.Get("https://api.example.com/v1/x")
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.JSONEq(t, `{"ok":true}`, string(b))
			time.Sleep(time.Hour)
			if cutBodyRetry {
				// The transport read the body and released the attempt.
				assert.ErrorIs(t, attemptCtx.Err(), context.Canceled)
				assert.NotErrorIs(t, context.Cause(attemptCtx), ErrAttemptTimeout, "the timer stopped at EOF")
			} else {
				assert.NoError(t, attemptCtx.Err(), "the timer stopped at EOF")
			}
			resp.Body.Close()
		}
	})
}

// ctxReader blocks until ctx is done, then fails with its cause.
type ctxReader struct{ ctx context.Context }

func (r *ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, context.Cause(r.ctx)
}

func TestRetryLogNeverContainsKey(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t,
		step{status: 500, body: `{"error":{"message":"bad key ` + testKey + `"}}`},
		step{hijack: true},
	)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL, rec, WithLogger(logger), WithOrganization("org-secretish"))

	status, _ := do(t, hc, http.MethodPost, srv.URL+"/threads?x=1", `{"k":"`+testKey+`"}`)

	assert.Equal(t, 200, status)
	out := buf.String()
	assert.Contains(t, out, "assistants: retrying request")
	assert.NotContains(t, out, testKey)
	assert.NotContains(t, out, "Bearer")
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first))
	assert.Equal(t, "DEBUG", first["level"])
	assert.Equal(t, "POST", first["method"])
	assert.Equal(t, "/threads", first["path"])
	assert.EqualValues(t, 500, first["status"])
	assert.EqualValues(t, 1, first["attempt"])
	assert.EqualValues(t, 500*time.Millisecond, first["wait"])
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		ms, ra string
		want   time.Duration
		ok     bool
	}{
		{"", "", 0, false},
		{"100", "", 100 * time.Millisecond, true},
		{"60000", "", time.Minute, true},
		{"60000.5", "", 0, false},
		{"", "1.5", 1500 * time.Millisecond, true},
		{"", now.Add(59 * time.Second).Format(http.TimeFormat), 59 * time.Second, true},
		{"", now.Format(http.TimeFormat), 0, false},
		{"x", "y", 0, false},
		{"Inf", "", 0, false},
		{"-100", "5", 5 * time.Second, true},
		{"9e99", "5", 5 * time.Second, true},
		{"x", "5", 5 * time.Second, true},
		{"60001", "-1", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.ms != "" {
			h.Set("retry-after-ms", tt.ms)
		}
		if tt.ra != "" {
			h.Set("Retry-After", tt.ra)
		}
		got, ok := retryAfter(h, now)
		assert.Equal(t, tt.ok, ok, "ms=%q ra=%q", tt.ms, tt.ra)
		assert.Equal(t, tt.want, got, "ms=%q ra=%q", tt.ms, tt.ra)
	}
}

func TestShouldRetryErrors(t *testing.T) {
	ctx := t.Context()
	assert.True(t, shouldRetry(ctx, nil, errors.New("connection reset")))
	assert.False(t, shouldRetry(ctx, nil, fmt.Errorf("%w: token", ErrCredentials)))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.False(t, shouldRetry(cancelled, nil, errors.New("x")))
	assert.False(t, shouldRetry(cancelled, &http.Response{StatusCode: 503, Header: http.Header{}}, nil))
}

// handlerFunc is a slog.Handler that calls f for every record.
type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }

// When the context ends during the wait before a retry, or would end before
// the wait is over, the error carries what the last attempt ended with (an
// *APIError for a reply, the connection error otherwise) joined with the
// context's error.
func TestRetryGiveUpKeepsLastError(t *testing.T) {
	errConn := errors.New("connection reset by peer")
	tests := []struct {
		name     string
		reply    func(*http.Request) (*http.Response, error)
		ctx      func(context.Context) (context.Context, context.CancelFunc)
		ctxErr   error
		returnAt time.Duration // virtual time at which Do returns
		status   int           // the *APIError's status; 0 for errConn
	}{
		{
			name: "429 whose Retry-After outlasts the deadline fails at once",
			reply: func(r *http.Request) (*http.Response, error) {
				return fakeResponse(r, 429, map[string]string{"Retry-After": "30", "Content-Type": "application/json"},
					`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`), nil
			},
			ctx: func(c context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(c, 10*time.Second)
			},
			ctxErr: context.DeadlineExceeded, returnAt: 0, status: 429,
		},
		{
			name:  "503 while the context is cancelled during the backoff",
			reply: func(r *http.Request) (*http.Response, error) { return fakeResponse(r, 503, nil, "upstream down"), nil },
			ctx: func(c context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(c)
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			ctxErr: context.Canceled, returnAt: 100 * time.Millisecond, status: 503,
		},
		{
			name:  "connection error before a backoff longer than the deadline",
			reply: func(r *http.Request) (*http.Response, error) { return nil, errConn },
			ctx: func(c context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(c, 200*time.Millisecond)
			},
			ctxErr: context.DeadlineExceeded, returnAt: 0,
		},
		{
			name: "second attempt's 500 after a first wait that fits",
			reply: func() func(r *http.Request) (*http.Response, error) {
				n := 0
				return func(r *http.Request) (*http.Response, error) {
					n++
					return fakeResponse(r, 429+71*(n-1), nil, ""), nil // 429, then 500
				}
			}(),
			ctx: func(c context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(c, 1200*time.Millisecond)
			},
			ctxErr: context.DeadlineExceeded, returnAt: 500 * time.Millisecond, status: 500,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hc, _, err := NewHTTPClient(WithBaseURL("https://api.example.com/v1"), WithAPIKey(testKey),
					WithHTTPClient(&http.Client{Transport: rtFunc(tt.reply)}), noJitter)
				require.NoError(t, err)
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/v1/threads/thread_1", nil)
				require.NoError(t, err)

				start := time.Now()
				resp, err := hc.Do(req)

				assert.Nil(t, resp)
				assert.Equal(t, tt.returnAt, time.Since(start))
				require.ErrorIs(t, err, tt.ctxErr)
				if tt.status == 0 {
					assert.ErrorIs(t, err, errConn)
				} else {
					var apiErr *APIError
					require.ErrorAs(t, err, &apiErr)
					assert.Equal(t, tt.status, apiErr.StatusCode)
				}
				assert.NotContains(t, err.Error(), testKey)
				assert.NotContains(t, err.Error(), "\n", "one line")
			})
		})
	}
}
