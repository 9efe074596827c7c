package assistants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// maxRetryAfter is the longest server wait hint that is honoured; a
	// longer (or non-positive) hint falls back to backoff.
	maxRetryAfter = 60 * time.Second
	// initialBackoff and maxBackoff bound the exponential backoff
	// 0.5s*2^n, capped at 8s, before jitter.
	initialBackoff = 500 * time.Millisecond
	maxBackoff     = 8 * time.Second
	// maxJitter is the largest fraction taken off a backoff wait.
	maxJitter = 0.25
	// drainLimit bounds how much of a retried reply's body is read so that
	// the connection can be reused.
	drainLimit = 4 << 10
)

// retryTransport retries an attempt that failed with a connection error or
// with status 408, 409, 429 or 5xx (the reply header x-should-retry: true or
// false overrides the status), at most maxRetries times, waiting as the
// server asks (retry-after-ms, Retry-After) or with jittered exponential
// backoff. Each attempt is a clone of the request carrying X-Retry-Count and,
// for POST, the same Idempotency-Key.
type retryTransport struct {
	next       http.RoundTripper
	maxRetries int
	// cutBodyRetry reads replies to requests safe to repeat whole and
	// retries one whose body is cut; see Options.CutBodyRetry.
	cutBodyRetry bool
	log          *slog.Logger
	sleep        func(ctx context.Context, d time.Duration) error
	jitter       func() float64
	now          func() time.Time
}

func newRetryTransport(next http.RoundTripper, o *Options) *retryTransport {
	return &retryTransport{
		next:         next,
		maxRetries:   o.MaxRetries,
		cutBodyRetry: o.CutBodyRetry,
		log:          o.Logger,
		sleep:        o.sleep,
		jitter:       o.jitter,
		now:          o.now,
	}
}

// RoundTrip implements http.RoundTripper. It never modifies req.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	maxRetries := t.maxRetries
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody && req.GetBody == nil {
		// The body cannot be replayed and buffering it could be unbounded:
		// make a single attempt.
		maxRetries = 0
	}
	idem := req.Header.Get(headerIdempotency)
	if idem == "" && req.Method == http.MethodPost {
		idem = newIdempotencyKey()
	}
	// A reply is read whole here, so that a body cut short can be retried,
	// only when the request is safe to repeat: a GET or HEAD, or a request
	// that carries an Idempotency-Key (every POST does).
	readWhole := t.cutBodyRetry && (req.Method == http.MethodGet || req.Method == http.MethodHead || idem != "")
	// When the next transport is the SDK's own header transport, the clone
	// made here is handed to it as its private copy, with room for its
	// headers, instead of being cloned again.
	ht, _ := t.next.(*headerTransport)
	slots := 2
	if ht != nil {
		slots += ht.slots
	}
	for attempt := 0; ; attempt++ {
		r, free := cloneRequest(req, ctx, slots)
		if attempt > 0 && hasBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("assistants: replay request body: %w", err)
			}
			r.Body = body
		}
		free = setHeader(r.Header, headerRetryCount, free, strconv.Itoa(attempt))
		if idem != "" {
			free = setHeader(r.Header, headerIdempotency, free, idem)
		}
		var resp *http.Response
		var err error
		if ht != nil {
			resp, err = ht.roundTrip(r, free)
		} else {
			resp, err = t.next.RoundTrip(r)
		}
		retry := attempt < maxRetries && shouldRetry(ctx, resp, err)
		if !retry && err == nil && readWhole {
			if rerr := readBody(resp); rerr != nil {
				resp, err = nil, fmt.Errorf("assistants: read reply body of %s %s: %w", req.Method, req.URL.Path, rerr)
				retry = attempt < maxRetries && shouldRetry(ctx, nil, err)
			}
		}
		if !retry {
			return resp, err
		}
		wait := t.wait(attempt, resp)
		attrs := []any{
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("attempt", attempt+1),
			slog.Duration("wait", wait),
		}
		// last is what this attempt ended with, kept for the error returned
		// when the wait cannot be made: an *APIError for a reply.
		var last error
		if resp != nil {
			attrs = append(attrs, slog.Int("status", resp.StatusCode))
			last = NewAPIError(resp, drainAndClose(resp.Body))
		} else {
			attrs = append(attrs, slog.String("error", redact(err.Error())))
			last = err
		}
		t.log.DebugContext(ctx, "assistants: retrying request", attrs...)
		if deadline, ok := ctx.Deadline(); ok && t.now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("assistants: not retrying %s %s: waiting %v would pass the context's deadline: %w; last attempt: %w",
				req.Method, req.URL.Path, wait, context.DeadlineExceeded, last)
		}
		if err := t.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("assistants: waiting to retry %s %s: %w; last attempt: %w", req.Method, req.URL.Path, err, last)
		}
	}
}

// shouldRetry reports whether an attempt that ended with resp or err may be
// retried. A done context is never retried.
func shouldRetry(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		return !IsPermanent(err)
	}
	switch strings.ToLower(strings.TrimSpace(resp.Header.Get(headerShouldRetry))) {
	case "true":
		return true
	case "false":
		return false
	}
	switch c := resp.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusConflict, c == http.StatusTooManyRequests:
		return true
	case c >= 500:
		return true
	}
	return false
}

// wait returns how long to wait before retry number attempt+1: the server's
// hint when it is in (0, 60s], else backoff.
func (t *retryTransport) wait(attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header, t.now()); ok {
			return d
		}
	}
	return backoff(attempt, t.jitter())
}

// retryAfter is RetryAfter bounded by maxRetryAfter.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	return RetryAfter(h, now, maxRetryAfter)
}

// RetryAfter returns the wait a reply's header h asks for before the next
// request: retry-after-ms (milliseconds, fractions allowed) when it is a
// number in (0, limit], else Retry-After (delta-seconds, or an HTTP date
// taken relative to now) when it is in (0, limit]. A retry-after-ms that is
// absent, not a number, not positive or above limit is ignored in favour of
// Retry-After. ok is false when neither gives a usable wait.
func RetryAfter(h http.Header, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms <= float64(limit)/float64(time.Millisecond) {
			if d := time.Duration(ms * float64(time.Millisecond)); d > 0 {
				return d, true
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs > 0 && secs <= limit.Seconds()) {
			return 0, false
		}
		d = time.Duration(secs * float64(time.Second))
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 || d > limit {
		return 0, false
	}
	return d, true
}

// backoff returns the wait before retry number n+1 when the server gave no
// hint: 0.5s*2^n capped at 8s, less jitter*25% (jitter is in [0, 1)), so the
// result lies in [0.75d, d].
func backoff(n int, jitter float64) time.Duration {
	d := maxBackoff
	if n < 5 {
		d = min(initialBackoff<<max(n, 0), maxBackoff)
	}
	if math.IsNaN(jitter) || jitter < 0 {
		jitter = 0
	}
	jitter = min(jitter, 1)
	return time.Duration(float64(d) * (1 - maxJitter*jitter))
}

// sleepContext waits for d or until ctx is done, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// drainAndClose reads at most drainLimit bytes of body, so that a small
// reply's connection can be reused, closes it and returns what it read
// (never nil, so that NewAPIError does not read the closed body again).
func drainAndClose(body io.ReadCloser) []byte {
	if body == nil {
		return []byte{}
	}
	b, _ := io.ReadAll(io.LimitReader(body, drainLimit))
	_ = body.Close()
	if b == nil {
		b = []byte{}
	}
	return b
}

// newIdempotencyKey returns "idem_" and 32 random hex digits.
func newIdempotencyKey() string {
	const prefix = "idem_"
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	var key [len(prefix) + 2*len(b)]byte
	copy(key[:], prefix)
	hex.Encode(key[len(prefix):], b[:])
	return string(key[:])
}
