package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/assistants-go/assistants/gen"
)

// Panics in background work (a run's goroutine, the model it calls, vector
// store processing) are recovered: the object being worked on fails with a
// server_error, the panic is logged with its stack, and the process lives.

// errModelPanicked is the last_error of a run whose model panicked.
var errModelPanicked = &ModelError{Code: ModelErrServer, Message: "The model failed unexpectedly."}

// panicRunMessage is the last_error message of a run whose goroutine
// panicked outside the model.
const panicRunMessage = "The server had an error while processing the run."

// respond calls the model, turning a panic into errModelPanicked.
func (e *engine) respond(ctx context.Context, runID string, in *ModelInput, emit func(string)) (out *ModelOutput, err error) {
	defer e.s.metrics.modelRound(ctx, time.Now(), &out, &err) // runs last: sees a recovered panic (metrics.go)
	defer func() {
		if p := recover(); p != nil {
			e.s.logPanic("model panicked", p, "run_id", runID)
			out, err = nil, errModelPanicked
		}
	}()
	return e.s.opts.Model.Respond(ctx, in, emit)
}

// recoverRun is deferred by a round: after a panic the run fails with
// server_error (its in-progress steps and message too) unless it has
// already ended.
func (e *engine) recoverRun(a roundArgs) {
	p := recover()
	if p == nil {
		return
	}
	e.s.logPanic("run round panicked", p, "run_id", a.RunID)
	e.failPanicked(a)
}

// failPanicked fails the run of a round that panicked with server_error
// (its in-progress steps and message too), unless it has already ended.
func (e *engine) failPanicked(a roundArgs) {
	ctx := withProject(e.bg(), a.Project) // the run's project (project.go)
	m := e.currentMessage(ctx, a.ThreadID, a.RunID)
	_, _, _ = e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !isActive(lr.obj.Status) {
			return errRunStale
		}
		e.closeMessageLocked(lr, m, gen.MessageObjectIncompleteDetailsReasonRunFailed)
		lr.st.PendingCalls, lr.st.PendingStep = nil, ""
		e.failLocked(lr, gen.RunObjectLastErrorCodeServerError, panicRunMessage)
		return nil
	})
}

// logPanic logs a recovered panic with its stack.
func (s *Server) logPanic(msg string, p any, args ...any) {
	s.log.Error(msg, append(args, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
}
