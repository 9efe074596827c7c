package server

import (
	"fmt"
	"net/http"
	"strconv"
)

// Concurrent-run limit (Options.MaxConcurrentRuns; serve
// --max-concurrent-runs). A project may have at most MaxConcurrentRuns
// active runs (queued, in_progress, requires_action, cancelling); a
// createRun or createThreadAndRun over it is answered 429 (type
// "requests", code "rate_limit_exceeded") with Retry-After: 1 and
// retry-after-ms, so the SDKs retry a moment later, and with
//
//	x-ratelimit-limit-runs      MaxConcurrentRuns
//	x-ratelimit-remaining-runs  the runs the project may still start
//
// on every createRun and createThreadAndRun answer. The limit is the
// project's, shared by all its keys (every key of a project acts on the
// same runs), and it holds across replicas: the active runs are counted in
// the store (one indexed count), not in process memory. The count and the
// run's creation are not one transaction, so runs created at the same
// instant on several replicas may overshoot the limit by that many.
// submitToolOuputsToRun is not limited: a run waiting for tool outputs is
// already counted. The check runs inside the idempotency middleware: a
// retried createRun whose run exists gets its answer replayed, and a 429
// is never remembered for a key.

// runCreatingOps are the operations that start a run.
var runCreatingOps = map[string]bool{"createRun": true, "createThreadAndRun": true}

// runLimitMiddleware applies Options.MaxConcurrentRuns; with no limit it is
// not in the chain at all.
func (s *Server) runLimitMiddleware(next http.Handler) http.Handler {
	maxRuns := s.opts.MaxConcurrentRuns
	if maxRuns <= 0 {
		return next
	}
	limit := strconv.Itoa(maxRuns)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		if _, op := s.routeOf(r); !runCreatingOps[op] {
			next.ServeHTTP(w, r)
			return
		}
		project := projectOf(r.Context())
		n, err := s.db.CountActiveRuns(r.Context(), project)
		if err != nil {
			s.writeError(w, r, storeErr(err, "project", project))
			return
		}
		h := w.Header()
		h.Set("x-ratelimit-limit-runs", limit)
		h.Set("x-ratelimit-remaining-runs", strconv.Itoa(max(0, maxRuns-n-1)))
		if n < maxRuns {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("x-ratelimit-remaining-runs", "0")
		h.Set("retry-after-ms", "1000")
		h.Set("Retry-After", "1")
		writeAPIError(w, &apiError{Status: http.StatusTooManyRequests, Type: "requests", Code: "rate_limit_exceeded",
			Message: fmt.Sprintf("Rate limit reached for concurrent runs: %d active runs of at most %d. Please try again when a run has ended.", n, maxRuns)})
	})
}

// WithMaxConcurrentRuns bounds the active runs of each project (default 0:
// no limit). See Options.MaxConcurrentRuns.
func WithMaxConcurrentRuns(n int) Option { return func(o *Options) { o.MaxConcurrentRuns = n } }
