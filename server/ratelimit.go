package server

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Per-key request rate limit (Options.RateLimit, Options.RateBurst; serve
// --rate-limit, --rate-burst). Off by default: the embedded server mostly
// serves tests and one developer, where a limit only gets in the way; an
// operator who shares a deployment between teams turns it on.
//
// Each key has a token bucket that holds up to RateBurst tokens and refills
// at RateLimit tokens per second; a request takes one token. A request that
// finds the bucket empty is answered 429 (type "requests", code
// rate_limit_exceeded) with Retry-After (whole seconds, rounded up) and
// retry-after-ms (the exact wait), so the SDKs' retries wait just long
// enough. Every answer carries the API's headers:
//
//	x-ratelimit-limit-requests      RateBurst: the requests a full bucket allows
//	x-ratelimit-remaining-requests  the whole tokens left after this request
//	x-ratelimit-reset-requests      the time until the bucket is full again ("1.5s")
//
// The bucket of a request is that of its key (by the key's id: a store
// key's "key_..." id, or which of Options.APIKeys; keys.go), hashed with a
// secret made at start; with auth off, it is the client's address (the TCP
// peer: behind a proxy, the proxy's). Buckets live in process memory: the
// limit is per replica, so N replicas behind a load balancer allow up to N
// times the rate. Why not across replicas: a shared bucket costs a write
// to the store on every request (a row lock on PostgreSQL, the one writer
// on SQLite), which would make the store the bottleneck of every call to
// guard against a burst; an operator divides the rate by the replica
// count instead. (The concurrent-run limit, runlimit.go, does hold across
// replicas: it counts runs in the store, which a run creation writes
// anyway.) Requests to /healthz and /readyz are never limited.

// rateLimiter holds the buckets. Buckets that have refilled are forgotten
// when the map grows, so memory stays bounded by the keys active recently.
type rateLimiter struct {
	rate   float64 // tokens per second
	burst  float64 // bucket size
	now    func() time.Time
	secret [32]byte // hashed before each id: bucket keys cannot be matched to keys

	mu      sync.Mutex
	buckets map[[32]byte]*bucket
	sweepAt int // sweep full buckets once the map reaches this size
}

type bucket struct {
	tokens float64
	last   time.Time
}

// minSweep is the map size below which buckets are never swept.
const minSweep = 1024

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rate)))
	}
	l := &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[[32]byte]*bucket{}, sweepAt: minSweep}
	_, _ = rand.Read(l.secret[:])
	return l
}

// decision is the outcome of one take.
type decision struct {
	ok        bool
	remaining int           // whole tokens left
	reset     time.Duration // until the bucket is full
	wait      time.Duration // until one token is there (when !ok)
}

// take takes one token from key's bucket.
func (l *rateLimiter) take(key [32]byte) decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweepLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	var d decision
	if b.tokens >= 1 {
		b.tokens--
		d.ok = true
	} else {
		d.wait = l.secondsToDuration((1 - b.tokens) / l.rate)
	}
	d.remaining = int(math.Floor(b.tokens))
	d.reset = l.secondsToDuration((l.burst - b.tokens) / l.rate)
	return d
}

func (l *rateLimiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
}

// sweepLocked forgets the buckets that are full again (a new bucket starts
// full, so nothing changes for their keys), and sets the next sweep for
// when the map has doubled.
func (l *rateLimiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.buckets))
}

func (l *rateLimiter) secondsToDuration(s float64) time.Duration {
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// keyOf returns the bucket key of a request: the keyed hash of its key's
// id when auth is on (auth ran first and put the key in the context),
// else of its client address.
func (l *rateLimiter) keyOf(r *http.Request) [32]byte {
	var id string
	if p, ok := principalOf(r.Context()); ok && p.keyID != "" {
		id = "key:" + p.keyID
	} else {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		id = "addr:" + host
	}
	// A SHA-256 of the secret and the id: the bucket key of a key that
	// cannot be guessed back, at a fifth of an HMAC's cost (measured).
	buf := make([]byte, 0, len(l.secret)+len(id))
	buf = append(append(buf, l.secret[:]...), id...)
	return sha256.Sum256(buf)
}

// rateLimitMiddleware applies Options.RateLimit (see above); with no limit
// set it is not in the chain at all.
func (s *Server) rateLimitMiddleware(next http.Handler) http.Handler {
	if s.opts.RateLimit <= 0 {
		return next
	}
	l := newRateLimiter(s.opts.RateLimit, s.opts.RateBurst, s.opts.Now)
	limit := strconv.Itoa(int(l.burst))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := l.take(l.keyOf(r))
		h := w.Header()
		h.Set("x-ratelimit-limit-requests", limit)
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(d.remaining))
		h.Set("x-ratelimit-reset-requests", formatReset(d.reset))
		if d.ok {
			next.ServeHTTP(w, r)
			return
		}
		ms := max(1, int64(math.Ceil(float64(d.wait)/float64(time.Millisecond))))
		h.Set("retry-after-ms", strconv.FormatInt(ms, 10))
		h.Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(d.wait.Seconds()))), 10))
		writeAPIError(w, &apiError{Status: http.StatusTooManyRequests, Type: "requests", Code: "rate_limit_exceeded",
			Message: fmt.Sprintf("Rate limit reached for requests: %s per second, bursts of %s. Please try again in %s.",
				formatRate(l.rate), limit, formatReset(d.wait))})
	})
}

// formatReset writes a wait as the API does ("1s", "1.5s", "20ms"): a Go
// duration rounded to the millisecond (up, so it is never 0 while a wait
// is needed).
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

// WithRateLimit limits each API key (with auth off, each client address) to
// rate requests per second with bursts of burst (0: rate rounded up, at
// least 1). Default: no limit.
func WithRateLimit(rate float64, burst int) Option {
	return func(o *Options) { o.RateLimit, o.RateBurst = rate, burst }
}
