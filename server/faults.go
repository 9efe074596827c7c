package server

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Faults configures seeded, reproducible fault injection. Each request draws
// from a random source of its route, seeded from Seed and the route, so a
// given sequence of requests to a route meets the same faults on every run.
//
// For each request the rates of the route's FaultRates (Routes) apply, or
// Global's when the route has no entry. A single draw picks at most one of
// the faults that strike before the work: a 429 (RateLimit), a 500
// (ServerError), a 503 (Unavailable) or a dropped connection (Drop); or of
// the faults that strike once the work is done or under way: the reply
// dropped (DropAfter), the reply cut mid-body (CutBody), or the connection
// reset while the handler runs (Reset). The rest of the requests are served
// normally, after the added Latency (plus up to Jitter). A streamed response
// may also be cut short (CutStream). The zero value injects nothing.
type Faults struct {
	// Seed makes the faults reproducible. Default 0 (itself a fixed seed).
	Seed int64
	// Global applies to every route without an entry in Routes.
	Global FaultRates
	// Routes holds per-route rates, keyed by operationId ("createRun") or by
	// method and path pattern ("POST /v1/threads/{thread_id}/runs").
	// Default: none.
	Routes map[string]FaultRates

	mu   sync.Mutex
	rngs map[string]*rand.Rand // per route key
}

// FaultRates are the fault probabilities (each 0..1; their sum should not
// exceed 1) and latencies of one route. The zero value injects nothing.
type FaultRates struct {
	// RateLimit is the share of requests answered 429 rate_limit_exceeded,
	// with Retry-After and retry-after-ms headers.
	RateLimit float64
	// ServerError is the share answered 500 server_error.
	ServerError float64
	// Unavailable is the share answered 503 with Retry-After.
	Unavailable float64
	// Drop is the share whose connection is closed without an answer.
	Drop float64
	// Latency is added before every request is served. Default 0.
	Latency time.Duration
	// Jitter adds a random extra latency in [0, Jitter). Default 0.
	Jitter time.Duration
	// DropAfter is the share of requests that are served (the handler does
	// its work) and whose reply is then lost: the connection is closed
	// without an answer. A stream is lost as soon as it starts (its run
	// goes on).
	DropAfter float64
	// CutBody is the share of requests that are served and whose reply is
	// cut mid-body: a JSON reply after its headers and half its bytes, an
	// event stream after a number of events drawn like CutStream's and half
	// of the next event. The connection is then closed.
	CutBody float64
	// Reset is the share of requests whose connection is reset while the
	// handler runs: the client sees it closed at once, and the handler runs
	// on with a cancelled context and a reply that cannot be written.
	// Multipart uploads are not reset (their body would have to be held).
	Reset float64
	// CutStream is the share of requests whose event stream, if they
	// stream, is cut after CutAfter events (the connection is closed
	// without the done event).
	CutStream float64
	// CutAfter is the number of events sent before a cut (CutStream and
	// the streams of CutBody); a negative value cuts the stream before its
	// first event. Default (0): a random number from 1 to 8.
	CutAfter int
	// CutAfterMax, when above CutAfter, makes the number of events before
	// a cut a random number from max(CutAfter, 0) to CutAfterMax (0 cuts
	// before the first event). Default 0: unused.
	CutAfterMax int
	// RetryAfter is the wait advertised on 429 and 503. Default: 1s.
	RetryAfter time.Duration
}

// faultDecision is what the middleware decided for one request.
type faultDecision struct {
	status     int // 429, 500, 503, or 0
	drop       bool
	after      afterFault // a fault that strikes once the handler has run (or while it runs)
	bodyCut    int        // CutBody: events of a stream before its cut
	delay      time.Duration
	cutAfter   int // -1: never
	retryAfter time.Duration
}

type streamCutKey struct{}

// streamCutFrom returns the number of SSE events after which the response
// stream of this request must be cut (the connection closed, no done
// event), or -1 when it must not be cut. The faults middleware decides it.
func streamCutFrom(ctx context.Context) int {
	if n, ok := ctx.Value(streamCutKey{}).(int); ok {
		return n
	}
	return -1
}

// withStreamCut returns ctx carrying a stream cut point (for tests of the
// streaming side).
func withStreamCut(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, streamCutKey{}, n)
}

// rates returns the rates for a route pattern and its operationId.
func (f *Faults) rates(pattern, opID string) (string, FaultRates) {
	if r, ok := f.Routes[opID]; ok && opID != "" {
		return opID, r
	}
	if r, ok := f.Routes[pattern]; ok && pattern != "" {
		return pattern, r
	}
	return "", f.Global
}

// decide draws the faults of one request on route (its pattern and
// operationId).
func (f *Faults) decide(pattern, opID string) faultDecision {
	key, r := f.rates(pattern, opID)
	d := faultDecision{cutAfter: -1, retryAfter: r.RetryAfter}
	if d.retryAfter <= 0 {
		d.retryAfter = time.Second
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rngs == nil {
		f.rngs = map[string]*rand.Rand{}
	}
	rng := f.rngs[key]
	if rng == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		rng = rand.New(rand.NewPCG(uint64(f.Seed), h.Sum64()))
		f.rngs[key] = rng
	}
	u := rng.Float64()
	switch {
	case u < r.RateLimit:
		d.status = http.StatusTooManyRequests
	case u < r.RateLimit+r.ServerError:
		d.status = http.StatusInternalServerError
	case u < r.RateLimit+r.ServerError+r.Unavailable:
		d.status = http.StatusServiceUnavailable
	case u < r.RateLimit+r.ServerError+r.Unavailable+r.Drop:
		d.drop = true
	case u < r.RateLimit+r.ServerError+r.Unavailable+r.Drop+r.DropAfter:
		d.after = faultDropAfter
	case u < r.RateLimit+r.ServerError+r.Unavailable+r.Drop+r.DropAfter+r.CutBody:
		d.after = faultCutBody
		d.bodyCut = r.cutPoint(rng)
	case u < r.RateLimit+r.ServerError+r.Unavailable+r.Drop+r.DropAfter+r.CutBody+r.Reset:
		d.after = faultReset
	}
	d.delay = r.Latency
	if r.Jitter > 0 {
		d.delay += time.Duration(rng.Int64N(int64(r.Jitter)))
	}
	if r.CutStream > 0 && rng.Float64() < r.CutStream {
		d.cutAfter = r.cutPoint(rng)
	}
	return d
}

// cutPoint draws the number of events a stream sends before it is cut.
func (r FaultRates) cutPoint(rng *rand.Rand) int {
	lo := max(r.CutAfter, 0)
	switch {
	case r.CutAfterMax > lo:
		return lo + rng.IntN(r.CutAfterMax-lo+1)
	case r.CutAfter < 0:
		return 0
	case r.CutAfter > 0:
		return r.CutAfter
	}
	return 1 + rng.IntN(8)
}

// faultsMiddleware injects the configured faults. It sits outside auth, so
// a faulty network hits every request alike.
func (s *Server) faultsMiddleware(next http.Handler) http.Handler {
	f := s.opts.Faults
	if f == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern, opID := s.routeOf(r)
		d := f.decide(pattern, opID)
		if d.delay > 0 && !sleep(r.Context(), d.delay) {
			return
		}
		if d.drop {
			dropConnection(w)
			return
		}
		if d.status != 0 {
			writeAPIError(w, faultError(d))
			return
		}
		if d.cutAfter >= 0 {
			r = r.WithContext(withStreamCut(r.Context(), d.cutAfter))
		}
		if d.after != faultNone {
			s.serveWithFault(w, r, next, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func faultError(d faultDecision) *apiError {
	secs := max(1, int((d.retryAfter+time.Second-1)/time.Second))
	h := http.Header{}
	switch d.status {
	case http.StatusTooManyRequests:
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("retry-after-ms", strconv.FormatInt(d.retryAfter.Milliseconds(), 10))
		return &apiError{Status: d.status, Type: "requests", Code: "rate_limit_exceeded", Header: h,
			Message: "Rate limit reached (injected fault). Please try again later."}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(secs))
		return &apiError{Status: d.status, Type: "server_error", Header: h,
			Message: "The server is overloaded or not ready yet (injected fault)."}
	default:
		return &apiError{Status: http.StatusInternalServerError, Type: "server_error",
			Message: "The server had an error while processing your request (injected fault)."}
	}
}

// dropConnection closes the client connection without an answer. When the
// connection cannot be hijacked (HTTP/2), it aborts the handler, which
// resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
