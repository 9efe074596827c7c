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
func (e *engine) respond(ctx context.Context, r *runRec, in *ModelInput, emit func(string)) (out *ModelOutput, err error) {
	defer e.s.metrics.modelRound(ctx, time.Now(), &out, &err) // runs last: sees a recovered panic (metrics.go)
	defer func() {
		if p := recover(); p != nil {
			e.s.logPanic("model panicked", p, "run_id", r.obj.Id)
			out, err = nil, errModelPanicked
		}
	}()
	return e.s.opts.Model.Respond(ctx, in, emit)
}

// recoverRun is deferred by a run's goroutine: after a panic the run fails
// with server_error (its in-progress steps and message too) unless it has
// already ended.
func (e *engine) recoverRun(r *runRec) {
	p := recover()
	if p == nil {
		return
	}
	e.s.logPanic("run goroutine panicked", p, "run_id", r.obj.Id)
	e.closeMessage(r, gen.MessageObjectIncompleteDetailsReasonRunFailed)
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.gone || !isActive(r.obj.Status) {
		return
	}
	now := e.s.now()
	for i := range r.steps {
		if r.steps[i].Status == gen.RunStepObjectStatusInProgress {
			st := r.steps[i]
			st.Status = gen.RunStepObjectStatusFailed
			st.FailedAt = &now
			st.LastError = &gen.RunStepLastError{Code: gen.RunStepObjectLastErrorCodeServerError, Message: panicRunMessage}
			r.steps[i] = st
			e.publishLocked(r, "thread.run.step.failed", st, false)
		}
	}
	r.pendingCalls, r.pendingStep = nil, ""
	r.obj.Status = gen.RunObjectStatusFailed
	r.obj.FailedAt = &now
	r.obj.RequiredAction = nil
	r.obj.LastError = &gen.RunLastError{Code: gen.RunObjectLastErrorCodeServerError, Message: panicRunMessage}
	e.endLocked(r, "thread.run.failed")
}

// processFileSafelyLocked processes one vector store file; a panic fails
// the file with server_error instead of taking the process (or, when
// processing runs inside a request, the store's lock) down.
func (s *Server) processFileSafelyLocked(rec *vectorStoreRec, f *vsFileRec) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic("vector store file processing panicked", p, "vector_store_id", rec.obj.Id, "file_id", f.obj.Id)
			f.data = nil
			f.obj.Status = gen.VectorStoreFileObjectStatusFailed
			f.obj.LastError = &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
				Message: "The server had an error while processing the file."}
		}
	}()
	s.hooks.processFile(f.obj.Id)
	s.processFileLocked(f)
}

// logPanic logs a recovered panic with its stack.
func (s *Server) logPanic(msg string, p any, args ...any) {
	s.log.Error(msg, append(args, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
}
