package server_test

import (
	"encoding/json"
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

// fakeClock is an injected clock for server.Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limited is one request's answer as the limiter shapes it.
type limited struct {
	code                         int
	limit, remaining, reset      string
	retryAfter, retryAfterMs     string
	errType, errCode, errMessage string
}

func limitedCall(t *testing.T, h http.Handler, key, remote string) limited {
	t.Helper()
	req := httptest.NewRequest("GET", "/v1/assistants", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	l := limited{code: rec.Code,
		limit: rec.Header().Get("x-ratelimit-limit-requests"), remaining: rec.Header().Get("x-ratelimit-remaining-requests"),
		reset: rec.Header().Get("x-ratelimit-reset-requests"), retryAfter: rec.Header().Get("Retry-After"),
		retryAfterMs: rec.Header().Get("retry-after-ms")}
	if rec.Code == http.StatusTooManyRequests {
		var e struct {
			Error struct{ Type, Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body.String())
		l.errType, l.errCode, l.errMessage = e.Error.Type, e.Error.Code, e.Error.Message
	}
	return l
}

// TestRateLimitTokenBucket: each key has a bucket of RateBurst requests
// refilled at RateLimit per second, on the injected clock; the answers
// carry the x-ratelimit-* headers, and a request over the limit gets 429
// with Retry-After and retry-after-ms naming the wait.
func TestRateLimitTokenBucket(t *testing.T) {
	const keyA, keyB = "sk-rate-key-aaaaaaaaaaaa", "sk-rate-key-bbbbbbbbbbbb"
	clock := newFakeClock()
	srv := server.New(server.WithAPIKeys(keyA, keyB), server.WithStepDelay(0), server.WithRateLimit(2, 3),
		func(o *server.Options) { o.Now = clock.Now })
	defer srv.Close()
	h := srv.Handler()

	steps := []struct {
		advance time.Duration
		key     string
		want    limited
	}{
		{key: keyA, want: limited{code: 200, limit: "3", remaining: "2", reset: "500ms"}},
		{key: keyA, want: limited{code: 200, limit: "3", remaining: "1", reset: "1s"}},
		{key: keyA, want: limited{code: 200, limit: "3", remaining: "0", reset: "1.5s"}},
		{key: keyA, want: limited{code: 429, limit: "3", remaining: "0", reset: "1.5s", retryAfter: "1", retryAfterMs: "500",
			errType: "requests", errCode: "rate_limit_exceeded",
			errMessage: "Rate limit reached for requests: 2 per second, bursts of 3. Please try again in 500ms."}},
		// Another key has its own bucket.
		{key: keyB, want: limited{code: 200, limit: "3", remaining: "2", reset: "500ms"}},
		// 200ms later: 0.4 tokens, still short by 0.6 (300ms).
		{advance: 200 * time.Millisecond, key: keyA, want: limited{code: 429, limit: "3", remaining: "0", reset: "1.3s",
			retryAfter: "1", retryAfterMs: "300", errType: "requests", errCode: "rate_limit_exceeded",
			errMessage: "Rate limit reached for requests: 2 per second, bursts of 3. Please try again in 300ms."}},
		// 300ms more: one token, taken.
		{advance: 300 * time.Millisecond, key: keyA, want: limited{code: 200, limit: "3", remaining: "0", reset: "1.5s"}},
		// Long idle: the bucket is full again, never fuller.
		{advance: time.Hour, key: keyA, want: limited{code: 200, limit: "3", remaining: "2", reset: "500ms"}},
		// A wrong key is refused by auth before it reaches any bucket.
		{key: "sk-not-a-key", want: limited{code: 401}},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		got := limitedCall(t, h, st.key, "")
		assert.Equal(t, st.want, got, "step %d", i)
		assert.NotContains(t, got.errMessage, "sk-", "step %d: the key is never repeated", i)
	}
}

// TestRateLimitByAddressWithoutAuth: with auth off the bucket is the
// client's address (its host: ports differ per connection), whatever key
// the request carries.
func TestRateLimitByAddressWithoutAuth(t *testing.T) {
	clock := newFakeClock()
	srv := server.New(server.WithStepDelay(0), server.WithRateLimit(1, 1), func(o *server.Options) { o.Now = clock.Now })
	defer srv.Close()
	h := srv.Handler()
	assert.Equal(t, 200, limitedCall(t, h, "sk-one", "10.0.0.1:1000").code)
	assert.Equal(t, 429, limitedCall(t, h, "sk-two", "10.0.0.1:2000").code, "same host, another port and key: same bucket")
	assert.Equal(t, 200, limitedCall(t, h, "", "10.0.0.2:1000").code, "another host: its own bucket")
	clock.Advance(time.Second)
	assert.Equal(t, 200, limitedCall(t, h, "", "10.0.0.1:3000").code)
}

// TestRateLimitOffByDefault: without a limit there are no x-ratelimit
// headers and no 429, however many requests.
func TestRateLimitOffByDefault(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	defer srv.Close()
	for range 200 {
		got := limitedCall(t, srv.Handler(), "", "10.0.0.1:1000")
		require.Equal(t, limited{code: 200}, got)
	}
}

// TestRateLimitDefaultBurst: RateBurst 0 means one second's worth, at least 1.
func TestRateLimitDefaultBurst(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want string
	}{{rate: 10, want: "10"}, {rate: 2.5, want: "3"}, {rate: 0.2, want: "1"}} {
		srv := server.New(server.WithStepDelay(0), server.WithRateLimit(tc.rate, 0))
		got := limitedCall(t, srv.Handler(), "", "")
		assert.Equal(t, tc.want, got.limit, "rate %v", tc.rate)
		srv.Close()
	}
}

// TestRateLimitedRequestsAreLoggedWithoutKey: a 429 is logged and counted
// like any answer, and neither the log nor the metrics hold the key.
func TestRateLimitedRequestsAreLoggedWithoutKey(t *testing.T) {
	const key = "sk-logged-key-0123456789"
	sink := &logSink{}
	clock := newFakeClock()
	srv := server.New(server.WithAPIKeys(key), server.WithStepDelay(0), server.WithRateLimit(1, 1),
		server.WithLogger(slog.New(slog.NewJSONHandler(sink, nil))), func(o *server.Options) { o.Now = clock.Now })
	defer srv.Close()
	limitedCall(t, srv.Handler(), key, "")
	require.Equal(t, 429, limitedCall(t, srv.Handler(), key, "").code)
	line := sink.request(t, "listAssistants", 1)
	assert.Equal(t, float64(429), line["status"])
	fams := scrape(t, srv.MetricsHandler())
	v, ok := sample(fams, "assistants_http_requests_total", map[string]string{"operation": "listAssistants", "status": "429"})
	assert.True(t, ok && v == 1, "%v %v", v, ok)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.False(t, strings.Contains(sink.buf.String(), key))
}
