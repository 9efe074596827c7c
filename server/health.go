package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// Health endpoints. They live outside /v1 and outside the middleware chain:
// no auth, no rate limit, no request log, no fault injection, so that a
// load balancer's or orchestrator's probes are cheap and always answered.
//
//	GET /healthz  200 {"status":"ok"} while the process serves HTTP.
//	GET /readyz   200 {"status":"ready","checks":[...]} when every check
//	              passes, else 503 {"status":"unready","checks":[...]}.
//
// Each entry of checks is {"name":..., "status":"ok"} or {"name":...,
// "status":"error","error":...}. The first check is always "server": it
// fails once Shutdown or Close began, so a replica that is draining leaves
// the load balancer's pool. Then the server's own checks of its parts:
//
//	store       the store answers a one-row read (PostgreSQL or SQLite reachable)
//	migrations  the database's schema is at this binary's last migration (SQL stores)
//	queue       the job queue's workers are running (River's client started and not stopped)
//
// and Options.ReadyChecks after them; all are asked concurrently, each
// bounded by ReadyCheckTimeout. A failing store check shows a fixed text
// (the driver's error, which may name hosts and users, goes to the log).
// HEAD is answered like GET without a body; other methods get 405.

// ReadyCheckTimeout bounds each readiness check: a check still running then
// counts as failed ("timed out after 2s").
const ReadyCheckTimeout = 2 * time.Second

// ReadyCheck is one readiness check asked by GET /readyz: a store's ping,
// "migrations applied", "queue workers running".
type ReadyCheck struct {
	// Name names the check in /readyz's answer, e.g. "store". Required.
	Name string
	// Check returns nil when the part it checks is ready. It must honour
	// ctx (ReadyCheckTimeout). Its error's text is shown in /readyz's
	// answer, which needs no key: it must not carry secrets (a password,
	// a key, a full connection string).
	Check func(ctx context.Context) error
}

// WithReadyCheck adds a readiness check to GET /readyz (default: only the
// server's own check).
func WithReadyCheck(name string, check func(ctx context.Context) error) Option {
	return func(o *Options) { o.ReadyChecks = append(o.ReadyChecks, ReadyCheck{Name: name, Check: check}) }
}

// ReadyState is one check's entry in /readyz's answer.
type ReadyState struct {
	// Name is the check's name ("server" for the server's own).
	Name string `json:"name"`
	// Status is "ok" or "error".
	Status string `json:"status"`
	// Error is the check's error text when Status is "error".
	Error string `json:"error,omitempty"`
}

// healthRoutes serves /healthz and /readyz, and passes every other request
// to next.
func (s *Server) healthRoutes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if allowProbe(w, r) {
				writeProbe(w, r, http.StatusOK, map[string]any{"status": "ok"})
			}
		case "/readyz":
			if allowProbe(w, r) {
				s.readyz(w, r)
			}
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// allowProbe answers 405 to methods other than GET and HEAD.
func allowProbe(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeProbe(w, r, http.StatusMethodNotAllowed, map[string]any{"status": "error", "error": "method not allowed: use GET"})
	return false
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	states := s.Ready(r.Context())
	status, code := "ready", http.StatusOK
	for _, c := range states {
		if c.Status != "ok" {
			status, code = "unready", http.StatusServiceUnavailable
		}
	}
	writeProbe(w, r, code, map[string]any{"status": status, "checks": states})
}

// errNotServing is the server check's error once Shutdown or Close began.
var errNotServing = errors.New("the server is shutting down")

// Ready asks every readiness check, the server's own first, and returns
// their states in order; the server is ready when every state is "ok". It
// is what GET /readyz answers.
func (s *Server) Ready(ctx context.Context) []ReadyState {
	checks := append([]ReadyCheck{{Name: "server", Check: s.serving}}, s.builtinChecks()...)
	checks = append(checks, s.opts.ReadyChecks...)
	states := make([]ReadyState, len(checks))
	done := make(chan int, len(checks)) // buffered: a late check never blocks
	errs := make([]error, len(checks))
	ctx, cancel := context.WithTimeout(ctx, ReadyCheckTimeout)
	defer cancel()
	for i, c := range checks {
		states[i] = ReadyState{Name: c.Name, Status: "error", Error: "timed out after " + ReadyCheckTimeout.String()}
		go func() {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = errors.New("the check panicked")
					}
				}()
				if c.Check == nil {
					err = errors.New("no check function")
					return
				}
				err = c.Check(ctx)
			}()
			errs[i] = err
			done <- i
		}()
	}
	for range checks {
		select {
		case i := <-done:
			if errs[i] == nil {
				states[i] = ReadyState{Name: checks[i].Name, Status: "ok"}
			} else {
				states[i].Error = truncateForMessage(errs[i].Error())
			}
		case <-ctx.Done():
			s.log.Warn("readiness checks timed out", "timeout", ReadyCheckTimeout)
			return states
		}
	}
	return states
}

// serving is the server's own readiness check: ready from New until
// Shutdown or Close is called.
func (s *Server) serving(context.Context) error {
	if s.ctx.Err() != nil {
		return errNotServing
	}
	s.drain.mu.Lock()
	draining := s.drain.draining
	s.drain.mu.Unlock()
	if draining {
		return errNotServing
	}
	return nil
}

func writeProbe(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

// migrationChecker is a store that can tell whether its schema is the
// binary's (store/sqlite, store/postgres).
type migrationChecker interface {
	CheckMigrations(ctx context.Context) error
}

// runningQueue is a Queue that can tell whether its workers run.
type runningQueue interface {
	running() error
}

// errStoreUnreachable is the store check's error in /readyz.
var errStoreUnreachable = errors.New("the store did not answer (the server's log has the error)")

// builtinChecks are the readiness checks of the server's own parts.
func (s *Server) builtinChecks() []ReadyCheck {
	checks := []ReadyCheck{{Name: "store", Check: func(ctx context.Context) error {
		if _, err := s.db.GetProject(ctx, store.DefaultProject); err != nil {
			s.log.Warn("readiness: the store did not answer", "err", err.Error())
			return errStoreUnreachable
		}
		return nil
	}}}
	if mc, ok := s.db.(migrationChecker); ok {
		checks = append(checks, ReadyCheck{Name: "migrations", Check: func(ctx context.Context) error {
			if err := mc.CheckMigrations(ctx); err != nil {
				s.log.Warn("readiness: migrations", "err", err.Error())
				if errors.Is(err, store.ErrSchemaTooNew) || errors.Is(err, store.ErrSchemaMismatch) {
					return err
				}
				return errStoreUnreachable
			}
			return nil
		}})
	}
	checks = append(checks, ReadyCheck{Name: "queue", Check: func(context.Context) error {
		q := s.opts.Queue
		if q == nil {
			return errors.New("no job queue: runs stay queued")
		}
		if rq, ok := q.(runningQueue); ok {
			return rq.running()
		}
		return nil
	}})
	return checks
}
