package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
)

// runTTL is how long a run may take before it expires (expires_at = created_at + 10 minutes).
const runTTL = 10 * time.Minute

// Causes of a run goroutine's context cancellation.
var (
	errRunCancelled = errors.New("run cancelled")
	errRunExpired   = errors.New("run expired")
	errThreadGone   = errors.New("thread deleted")
)

// engine owns runs and run steps and moves them through their states. Each
// active run has one goroutine (drive) that talks to the Model; handlers
// change runs only through the methods below. All run and step state is
// guarded by mu.
//
// Lock order: the engine never calls the store (Server.mu) while holding mu;
// the store side may call activeRun and forgetThread while holding Server.mu.
type engine struct {
	s *Server

	mu      sync.Mutex
	runs    map[string]*runRec
	threads map[string]*threadRuns
	closed  bool
	poll    []string // the openai-poll-after-ms header value
}

// threadRuns indexes the runs of one thread.
type threadRuns struct {
	runIDs []string // creation order
	active string   // the run holding the thread's lock, or ""
}

// runRec is a run, its steps and the engine's bookkeeping. Fields marked
// (drive) are used only by the run's goroutine; the rest is guarded by
// engine.mu.
type runRec struct {
	obj   gen.RunObject
	asst  gen.AssistantObject
	steps []gen.RunStepObject // creation order
	subs  []*subscriber       // open event streams

	// The event log (see publishLocked): seq is the id of the last event
	// published (ids are dense per run, from 1); events holds every event
	// from the first stream subscription on, so a retried stream can be
	// replayed from any point (see resubscribe).
	seq    int
	logged bool // a stream subscribed once: events are encoded and logged
	events []sseEvent

	cancel context.CancelCauseFunc // stops the goroutine; nil when it is not running
	resume chan struct{}           // cap 1: tool outputs were submitted
	gone   bool                    // dropped (thread deleted)
	enc    []byte                  // JSON of obj once it is in an end state (see getRun)

	pendingStep  string       // id of the tool_calls step awaiting outputs
	pendingCalls []ToolCall   // calls awaiting outputs
	pendingUsage Usage        // usage of the round that made them (for its step)
	outputs      []ToolOutput // calls and outputs of finished rounds
	used         Usage        // usage so far
	round        int          // number of the current model round, from 0

	msg       *gen.MessageObject // (drive) the message of the current round, if any
	msgStepID string             // (drive) its message_creation step

	includeResults bool // createRun's include[]: stream file_search results (filesearch.go)
}

func newEngine(s *Server) *engine {
	return &engine{s: s, runs: map[string]*runRec{}, threads: map[string]*threadRuns{},
		poll: []string{strconv.FormatInt(s.opts.PollAfter.Milliseconds(), 10)}}
}

// isActive reports whether a run in status st holds its thread's lock.
func isActive(st gen.RunObjectStatus) bool {
	switch st {
	case gen.RunObjectStatusQueued, gen.RunObjectStatusInProgress, gen.RunObjectStatusRequiresAction, gen.RunObjectStatusCancelling:
		return true
	}
	return false
}

// activeRun returns the run holding threadID's lock: one that is queued,
// in_progress, requires_action or cancelling.
func (e *engine) activeRun(threadID string) (runID string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.threads[threadID]
	if t == nil || t.active == "" {
		return "", false
	}
	r := e.runs[t.active]
	if r == nil {
		return "", false
	}
	e.expireIfDueLocked(r)
	if !isActive(r.obj.Status) {
		return "", false
	}
	return r.obj.Id, true
}

// forgetThread stops the runs of a deleted thread and drops them with their
// steps. Their open event streams end without a done event.
func (e *engine) forgetThread(threadID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.threads[threadID]
	if t == nil {
		return
	}
	for _, id := range t.runIDs {
		r := e.runs[id]
		if r == nil {
			continue
		}
		r.gone = true
		if r.cancel != nil {
			r.cancel(errThreadGone)
		}
		closeSubs(r)
		delete(e.runs, id)
	}
	delete(e.threads, threadID)
}

// close marks the engine closed (no new runs) and ends every open stream.
// Server.Close calls it before cancelling the goroutines.
func (e *engine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for _, r := range e.runs {
		closeSubs(r)
	}
}

// getRun returns a snapshot of a run of a thread, or a 404. For a run in an
// end state it also returns its JSON encoding, kept from an earlier call
// (such a run only changes through modifyRun, which drops it).
func (e *engine) getRun(threadID, runID string) (gen.RunObject, []byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	if r.enc == nil && !isActive(r.obj.Status) {
		if b, err := json.Marshal(r.obj); err == nil {
			r.enc = append(b, '\n')
		}
	}
	return r.obj, r.enc, nil
}

// lookupLocked finds a run of a thread and applies a due expiry.
func (e *engine) lookupLocked(threadID, runID string) (*runRec, error) {
	r := e.runs[runID]
	if r == nil || r.obj.ThreadId != threadID {
		return nil, errNotFound("run", runID)
	}
	e.expireIfDueLocked(r)
	return r, nil
}

// listRuns returns snapshots of a thread's runs, oldest first.
func (e *engine) listRuns(threadID string) []gen.RunObject {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.threads[threadID]
	if t == nil {
		return nil
	}
	out := make([]gen.RunObject, 0, len(t.runIDs))
	for _, id := range t.runIDs {
		if r := e.runs[id]; r != nil {
			e.expireIfDueLocked(r)
			out = append(out, r.obj)
		}
	}
	return out
}

// listSteps returns snapshots of a run's steps, oldest first.
func (e *engine) listSteps(threadID, runID string) ([]gen.RunStepObject, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return nil, err
	}
	return slices.Clone(r.steps), nil
}

// getStep returns a snapshot of one step, or a 404.
func (e *engine) getStep(threadID, runID, stepID string) (gen.RunStepObject, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return gen.RunStepObject{}, err
	}
	if i := stepIndex(r, stepID); i >= 0 {
		return r.steps[i], nil
	}
	return gen.RunStepObject{}, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
		Param: "step_id", Message: "No run step found with id '" + truncateForMessage(stepID) + "'."}
}

// modifyRun replaces a run's metadata (when md is not nil).
func (e *engine) modifyRun(threadID, runID string, md *gen.Metadata) (gen.RunObject, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return gen.RunObject{}, err
	}
	if md != nil {
		r.obj.Metadata = emptyMetadata(md)
		r.enc = nil
	}
	return r.obj, nil
}

// register adds a new queued run and takes its thread's lock, or returns the
// API's 400 when another run holds it.
func (e *engine) register(r *runRec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errShuttingDown()
	}
	t := e.threads[r.obj.ThreadId]
	if t == nil {
		t = &threadRuns{}
		e.threads[r.obj.ThreadId] = t
	}
	if t.active != "" {
		if other := e.runs[t.active]; other != nil {
			e.expireIfDueLocked(other)
			if isActive(other.obj.Status) {
				return errBadRequest("", "Thread %s already has an active run %s.", r.obj.ThreadId, other.obj.Id)
			}
		}
	}
	t.runIDs = append(t.runIDs, r.obj.Id)
	t.active = r.obj.Id
	r.resume = make(chan struct{}, 1)
	e.runs[r.obj.Id] = r
	return nil
}

// unregister drops a run whose creation failed half way.
func (e *engine) unregister(r *runRec) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLocked(r)
}

func (e *engine) dropLocked(r *runRec) {
	r.gone = true
	closeSubs(r)
	delete(e.runs, r.obj.Id)
	if t := e.threads[r.obj.ThreadId]; t != nil {
		if i := slices.Index(t.runIDs, r.obj.Id); i >= 0 {
			t.runIDs = slices.Delete(t.runIDs, i, i+1)
		}
		if t.active == r.obj.Id {
			t.active = ""
		}
		if len(t.runIDs) == 0 {
			delete(e.threads, r.obj.ThreadId)
		}
	}
}

// start publishes the run's first events, subscribes a stream when asked
// (before any event, so it misses none) and starts the run's goroutine.
func (e *engine) start(r *runRec, stream bool) (gen.RunObject, *subscriber, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.gone {
		return gen.RunObject{}, nil, errNotFound("thread", r.obj.ThreadId)
	}
	if e.closed {
		e.dropLocked(r)
		return gen.RunObject{}, nil, errShuttingDown()
	}
	var sub *subscriber
	if stream {
		sub = e.subscribeLocked(r)
	}
	e.publishLocked(r, "thread.run.created", r.obj, false)
	e.publishLocked(r, "thread.run.queued", r.obj, false)
	ctx, cancel := context.WithCancelCause(e.s.ctx)
	r.cancel = cancel
	e.s.goBackground(func(context.Context) {
		defer cancel(nil)
		defer e.recoverRun(r) // a panic fails the run (recover.go)
		e.drive(ctx, r)
	})
	return r.obj, sub, nil
}

// cancelRun moves a queued, in_progress or requires_action run to
// cancelling and stops its goroutine, which then marks it cancelled.
func (e *engine) cancelRun(threadID, runID string) (gen.RunObject, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return gen.RunObject{}, err
	}
	switch r.obj.Status {
	case gen.RunObjectStatusQueued, gen.RunObjectStatusInProgress, gen.RunObjectStatusRequiresAction:
	default:
		return gen.RunObject{}, errBadRequest("", "Cannot cancel run with status '%s'.", r.obj.Status)
	}
	r.obj.Status = gen.RunObjectStatusCancelling
	e.publishLocked(r, "thread.run.cancelling", r.obj, false)
	if r.cancel != nil {
		r.cancel(errRunCancelled)
	} // else start has not run yet: the goroutine it starts finds the run cancelling
	return r.obj, nil
}

// submitToolOutputs checks and applies the outputs of a requires_action run:
// every pending call must get exactly one output. The tool_calls step
// completes with the outputs, the run goes back to queued and its goroutine
// resumes. With stream, the returned subscriber sees every event from the
// run's queued event on.
func (e *engine) submitToolOutputs(threadID, runID string, outs []gen.SubmitToolOutputsRunRequestToolOutput, stream bool) (gen.RunObject, *subscriber, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookupLocked(threadID, runID)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	if r.obj.Status != gen.RunObjectStatusRequiresAction {
		return gen.RunObject{}, nil, errBadRequest("", "Runs in status \"%s\" do not accept tool outputs.", r.obj.Status)
	}
	pending := map[string]int{}
	for i, c := range r.pendingCalls {
		pending[c.ID] = i
	}
	got := make(map[string]string, len(outs))
	var gotIDs []string
	for i, o := range outs {
		if o.ToolCallId == nil || *o.ToolCallId == "" {
			return gen.RunObject{}, nil, errBadRequest("tool_outputs", "Missing required parameter: 'tool_outputs[%d].tool_call_id'.", i)
		}
		id := *o.ToolCallId
		if _, ok := pending[id]; !ok {
			return gen.RunObject{}, nil, errBadRequest("tool_outputs", "Invalid 'tool_outputs[%d].tool_call_id': no pending tool call with id '%s' on run %s.", i, truncateForMessage(id), r.obj.Id)
		}
		if _, dup := got[id]; dup {
			return gen.RunObject{}, nil, errBadRequest("tool_outputs", "Invalid 'tool_outputs[%d].tool_call_id': duplicate output for tool call '%s'.", i, truncateForMessage(id))
		}
		out := ""
		if o.Output != nil {
			out = *o.Output
		}
		got[id] = out
		gotIDs = append(gotIDs, id)
	}
	if len(got) != len(pending) {
		want := make([]string, 0, len(r.pendingCalls))
		for _, c := range r.pendingCalls {
			want = append(want, c.ID)
		}
		return gen.RunObject{}, nil, errBadRequest("tool_outputs", "Expected tool outputs for call_ids %s, got %s.", quoteIDs(want), quoteIDs(gotIDs))
	}

	var sub *subscriber
	if stream {
		sub = e.subscribeLocked(r)
	}
	now := e.s.now()
	round := r.round
	calls := make([]gen.RunStepDetailsToolCall, 0, len(r.pendingCalls))
	for _, c := range r.pendingCalls {
		out := got[c.ID]
		r.outputs = append(r.outputs, ToolOutput{Call: c, Output: out, Round: round})
		calls = append(calls, functionCallDetail(c, &out))
	}
	r.pendingCalls = nil
	r.obj.Status = gen.RunObjectStatusQueued
	r.obj.RequiredAction = nil
	e.publishLocked(r, "thread.run.queued", r.obj, false)
	if i := stepIndex(r, r.pendingStep); i >= 0 {
		st := r.steps[i]
		st.StepDetails = toolCallsDetails(calls)
		st.Status = gen.RunStepObjectStatusCompleted
		st.CompletedAt = &now
		st.Usage = stepUsage(r.pendingUsage)
		r.steps[i] = st
		e.publishLocked(r, "thread.run.step.completed", st, false)
	}
	r.pendingStep = ""
	select {
	case r.resume <- struct{}{}:
	default:
	}
	return r.obj, sub, nil
}

func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + truncateForMessage(id) + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// expireIfDueLocked moves a requires_action run whose expires_at has passed
// to expired (its tool_calls step too) and stops its goroutine.
func (e *engine) expireIfDueLocked(r *runRec) {
	if r.obj.Status != gen.RunObjectStatusRequiresAction || r.obj.ExpiresAt == nil || e.s.now() < *r.obj.ExpiresAt {
		return
	}
	e.expireLocked(r)
}

// expireLocked ends a run as expired, with its in-progress steps.
func (e *engine) expireLocked(r *runRec) {
	now := e.s.now()
	for i := range r.steps {
		if r.steps[i].Status == gen.RunStepObjectStatusInProgress {
			st := r.steps[i]
			st.Status = gen.RunStepObjectStatusExpired
			st.ExpiredAt = &now
			r.steps[i] = st
			e.publishLocked(r, "thread.run.step.expired", st, false)
		}
	}
	r.pendingCalls, r.pendingStep = nil, ""
	r.obj.Status = gen.RunObjectStatusExpired
	r.obj.RequiredAction = nil
	e.endLocked(r, "thread.run.expired")
	if r.cancel != nil {
		r.cancel(errRunExpired)
	}
}

// endLocked sets the run's usage, releases the thread's lock and publishes
// the run's final event (which ends its streams).
func (e *engine) endLocked(r *runRec, event string) {
	u := r.used
	r.obj.Usage = &gen.RunCompletionUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
	if r.obj.Status != gen.RunObjectStatusExpired {
		r.obj.ExpiresAt = nil
	}
	if t := e.threads[r.obj.ThreadId]; t != nil && t.active == r.obj.Id {
		t.active = ""
	}
	e.publishLocked(r, event, r.obj, true)
}

// finishCancelLocked ends a cancelling run: in-progress steps are cancelled
// and the run is cancelled. The caller handles the round's message.
func (e *engine) finishCancelLocked(r *runRec) {
	now := e.s.now()
	for i := range r.steps {
		if r.steps[i].Status == gen.RunStepObjectStatusInProgress {
			st := r.steps[i]
			st.Status = gen.RunStepObjectStatusCancelled
			st.CancelledAt = &now
			r.steps[i] = st
			e.publishLocked(r, "thread.run.step.cancelled", st, false)
		}
	}
	r.pendingCalls, r.pendingStep = nil, ""
	r.obj.Status = gen.RunObjectStatusCancelled
	r.obj.CancelledAt = &now
	r.obj.RequiredAction = nil
	e.endLocked(r, "thread.run.cancelled")
}

func errShuttingDown() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: "The server is shutting down."}
}

func stepIndex(r *runRec, id string) int {
	if id == "" {
		return -1
	}
	for i := range r.steps {
		if r.steps[i].Id == id {
			return i
		}
	}
	return -1
}

func stepUsage(u Usage) *gen.RunStepCompletionUsage {
	return &gen.RunStepCompletionUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
}

// ---- the run goroutine ----

// drive moves one run from queued to a final state (or to requires_action
// and, after the outputs, on). ctx is cancelled, with a cause, when the run
// is cancelled, expires while waiting, its thread is deleted, or the server
// closes.
func (e *engine) drive(ctx context.Context, r *runRec) {
	if !e.pause(ctx) {
		e.interrupted(r)
		return
	}
	if !e.transition(ctx, r, gen.RunObjectStatusQueued, func() {
		now := e.s.now()
		r.obj.Status = gen.RunObjectStatusInProgress
		if r.obj.StartedAt == nil {
			r.obj.StartedAt = &now
		}
		e.publishLocked(r, "thread.run.in_progress", r.obj, false)
	}) {
		e.interrupted(r)
		return
	}
	for {
		if !e.round(ctx, r) {
			return
		}
		// requires_action: wait for the outputs, a cancel or the expiry.
		e.mu.Lock()
		exp := time.Duration(0)
		if r.obj.ExpiresAt != nil {
			exp = time.Duration(*r.obj.ExpiresAt-e.s.now()) * time.Second
		}
		e.mu.Unlock()
		timer := time.NewTimer(max(exp, 0))
		select {
		case <-r.resume:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			e.interrupted(r)
			return
		case <-timer.C:
			e.mu.Lock()
			due := !r.gone && r.obj.Status == gen.RunObjectStatusRequiresAction
			if due {
				e.expireLocked(r)
			}
			e.mu.Unlock()
			if due {
				return
			}
			// The outputs came just in time: go on, and drop their signal.
			select {
			case <-r.resume:
			default:
			}
		}
		if !e.pause(ctx) {
			e.interrupted(r)
			return
		}
		if !e.transition(ctx, r, gen.RunObjectStatusQueued, func() {
			r.round++
			r.obj.Status = gen.RunObjectStatusInProgress
			e.publishLocked(r, "thread.run.in_progress", r.obj, false)
		}) {
			e.interrupted(r)
			return
		}
	}
}

// pause waits the step delay; false when ctx ended first.
func (e *engine) pause(ctx context.Context) bool { return sleep(ctx, e.s.opts.StepDelay) }

// transition applies f under the lock when the run is still in status from
// and its goroutine has not been stopped; it reports whether it did.
func (e *engine) transition(ctx context.Context, r *runRec, from gen.RunObjectStatus, f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.gone || ctx.Err() != nil || r.obj.Status != from {
		return false
	}
	f()
	return true
}

// interrupted finishes a run whose goroutine was stopped or found it changed:
// a cancelling run becomes cancelled after the step delay (and its message
// incomplete); an expiry, a deleted thread or a closing server leave it as
// it is.
func (e *engine) interrupted(r *runRec) {
	e.mu.Lock()
	cancelling := !r.gone && r.obj.Status == gen.RunObjectStatusCancelling
	e.mu.Unlock()
	if !cancelling {
		return
	}
	if !sleep(e.s.ctx, e.s.opts.StepDelay) {
		return
	}
	e.closeMessage(r, gen.MessageObjectIncompleteDetailsReasonRunCancelled)
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.gone || r.obj.Status != gen.RunObjectStatusCancelling {
		return
	}
	e.finishCancelLocked(r)
}

// closeMessage ends the round's in-progress message as incomplete with
// reason, stores it and publishes thread.message.incomplete.
func (e *engine) closeMessage(r *runRec, reason gen.MessageObjectIncompleteDetailsReason) {
	if r.msg == nil || r.msg.Status != gen.MessageObjectStatusInProgress {
		return
	}
	m := *r.msg
	now := e.s.now()
	m.Status = gen.MessageObjectStatusIncomplete
	m.IncompleteAt = &now
	m.IncompleteDetails = &gen.MessageIncompleteDetails{Reason: reason}
	r.msg = &m
	if e.s.putMessage(m) != nil {
		return
	}
	e.mu.Lock()
	if !r.gone {
		e.publishLocked(r, "thread.message.incomplete", m, false)
	}
	e.mu.Unlock()
}

// modelInput builds the input of the next model round.
func (e *engine) modelInput(r *runRec) (*ModelInput, error) {
	e.mu.Lock()
	in := &ModelInput{Assistant: r.asst, Run: r.obj, ToolOutputs: slices.Clone(r.outputs), Used: r.used}
	e.mu.Unlock()
	msgs, err := e.s.threadMessages(in.Run.ThreadId)
	if err != nil {
		return nil, err
	}
	if ts := in.Run.TruncationStrategy; ts != nil && ts.Type == gen.TruncationObjectTypeLastMessages && ts.LastMessages != nil && *ts.LastMessages < len(msgs) {
		msgs = msgs[len(msgs)-*ts.LastMessages:]
	}
	in.Messages = msgs
	for _, t := range in.Run.Tools {
		if k, _ := t.Discriminator(); k == "function" {
			if f, err := t.AsAssistantToolsFunction(); err == nil {
				in.Functions = append(in.Functions, f.Function)
			}
		}
	}
	in.FileSearch = e.s.fileSearchTool(in) // filesearch.go
	return in, nil
}

// round runs one model round and applies its outcome. It returns true when
// the run now requires action (and drive must wait for outputs), false when
// the run ended or the goroutine must stop.
func (e *engine) round(ctx context.Context, r *runRec) bool {
	r.msg, r.msgStepID = nil, ""
	in, err := e.modelInput(r)
	if err != nil {
		// The thread is gone: the run goes with it.
		e.unregister(r)
		return false
	}
	left := time.Duration(0)
	if in.Run.ExpiresAt != nil {
		left = time.Duration(*in.Run.ExpiresAt-e.s.now()) * time.Second
	}
	mctx, cancel := context.WithTimeout(ctx, max(left, 0))
	defer cancel()

	w := &writer{e: e, r: r, ctx: mctx}
	out, err := e.respond(mctx, r, in, w.emit) // a panic is a server_error (recover.go)
	if ctx.Err() != nil {
		w.stop()
		e.interrupted(r)
		return false
	}
	if err == nil && out == nil {
		err = &ModelError{Code: ModelErrServer, Message: "The model returned no output."}
	}
	if err != nil {
		w.stop()
		if mctx.Err() != nil {
			e.expireRunning(ctx, r)
		} else {
			e.fail(ctx, r, err)
		}
		return false
	}
	// file_search calls run here, then the model is asked again (filesearch.go).
	rest, searched := e.runFileSearch(ctx, r, in, out)
	if searched && len(rest) == 0 && !w.started() {
		w.stop()
		return e.round(ctx, r)
	}
	out.ToolCalls = rest
	calls, err := e.checkCalls(in, out.ToolCalls)
	if err != nil {
		w.stop()
		e.fail(ctx, r, err)
		return false
	}
	text := out.Text
	if text == "" {
		text = w.text()
	} else if !w.started() {
		w.emit(text) // a model that does not stream: one delta
	}
	w.stop()

	used := in.Used
	used.PromptTokens += out.Usage.PromptTokens
	used.CompletionTokens += out.Usage.CompletionTokens
	var reason gen.RunObjectIncompleteDetailsReason
	switch {
	case in.Run.MaxPromptTokens != nil && used.PromptTokens > *in.Run.MaxPromptTokens:
		reason = gen.RunObjectIncompleteDetailsReasonMaxPromptTokens
	case out.Truncated || (in.Run.MaxCompletionTokens != nil && used.CompletionTokens > *in.Run.MaxCompletionTokens):
		reason = gen.RunObjectIncompleteDetailsReasonMaxCompletionTokens
	}
	if reason != "" {
		calls = nil
	}
	msgUsage := out.Usage
	if len(calls) > 0 {
		msgUsage = Usage{} // the tool_calls step carries the round's usage
	}
	if !e.pause(ctx) {
		e.interrupted(r)
		return false
	}
	// Finish the round's message.
	if r.msg != nil {
		m := *r.msg
		m.Content = []gen.MessageContent{answerPart(in, text)} // citations: filesearch.go
		now := e.s.now()
		if reason != "" {
			m.Status = gen.MessageObjectStatusIncomplete
			m.IncompleteAt = &now
			m.IncompleteDetails = &gen.MessageIncompleteDetails{Reason: gen.MessageObjectIncompleteDetailsReasonMaxTokens}
		} else {
			m.Status = gen.MessageObjectStatusCompleted
			m.CompletedAt = &now
		}
		if e.s.putMessage(m) != nil {
			e.unregister(r)
			return false
		}
		r.msg = &m
	}

	ok, needAction := false, false
	func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if r.gone || ctx.Err() != nil || r.obj.Status != gen.RunObjectStatusInProgress {
			return
		}
		ok = true
		r.used = used
		now := e.s.now()
		if r.msg != nil {
			if r.msg.Status == gen.MessageObjectStatusCompleted {
				e.publishLocked(r, "thread.message.completed", *r.msg, false)
			} else {
				e.publishLocked(r, "thread.message.incomplete", *r.msg, false)
			}
			if i := stepIndex(r, r.msgStepID); i >= 0 {
				st := r.steps[i]
				st.Status = gen.RunStepObjectStatusCompleted
				st.CompletedAt = &now
				st.Usage = stepUsage(msgUsage)
				r.steps[i] = st
				e.publishLocked(r, "thread.run.step.completed", st, false)
			}
		}
		switch {
		case reason != "":
			r.obj.Status = gen.RunObjectStatusIncomplete
			r.obj.IncompleteDetails = &gen.RunIncompleteDetails{Reason: &reason}
			e.endLocked(r, "thread.run.incomplete")
		case len(calls) > 0:
			e.requireActionLocked(r, calls, out.Usage)
			needAction = true
		default:
			r.obj.Status = gen.RunObjectStatusCompleted
			r.obj.CompletedAt = &now
			e.endLocked(r, "thread.run.completed")
		}
	}()
	if !ok {
		e.interrupted(r)
	}
	return needAction
}

// checkCalls validates the model's tool calls against the run's functions
// and fills in ids and empty arguments.
func (e *engine) checkCalls(in *ModelInput, calls []ToolCall) ([]ToolCall, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	names := in.FunctionNames()
	out := make([]ToolCall, 0, len(calls))
	for _, c := range calls {
		if !slices.Contains(names, c.Name) {
			return nil, &ModelError{Code: ModelErrServer, Message: "The model called a function the run does not have: " + truncateForMessage(c.Name) + "."}
		}
		if c.ID == "" {
			c.ID = newID(prefixToolCall)
		}
		if strings.TrimSpace(c.Arguments) == "" {
			c.Arguments = "{}"
		}
		out = append(out, c)
	}
	return out, nil
}

// requireActionLocked creates the round's tool_calls step, streams the
// calls as step deltas and moves the run to requires_action.
func (e *engine) requireActionLocked(r *runRec, calls []ToolCall, u Usage) {
	st := e.newStepLocked(r, gen.RunStepObjectTypeToolCalls, toolCallsDetails([]gen.RunStepDetailsToolCall{}))
	full := make([]gen.RunStepDetailsToolCall, 0, len(calls))
	pending := make([]gen.RunToolCallObject, 0, len(calls))
	for i, c := range calls {
		id, name, empty := c.ID, c.Name, ""
		first := functionDelta{Index: i, ID: &id, Type: "function"}
		first.Function.Name, first.Function.Arguments = &name, &empty
		e.publishStepDeltaLocked(r, st.Id, first)
		for _, frag := range fragments(c.Arguments, 16) {
			d := functionDelta{Index: i, Type: "function"}
			d.Function.Arguments = &frag
			e.publishStepDeltaLocked(r, st.Id, d)
		}
		full = append(full, functionCallDetail(c, nil))
		pending = append(pending, gen.RunToolCallObject{Id: c.ID, Type: "function", Function: gen.RunToolCallFunction{Name: c.Name, Arguments: c.Arguments}})
	}
	if i := stepIndex(r, st.Id); i >= 0 {
		s := r.steps[i]
		s.StepDetails = toolCallsDetails(full)
		r.steps[i] = s
	}
	r.pendingStep = st.Id
	r.pendingCalls = calls
	r.pendingUsage = u
	r.obj.Status = gen.RunObjectStatusRequiresAction
	r.obj.RequiredAction = &gen.RunRequiredAction{Type: "submit_tool_outputs", SubmitToolOutputs: gen.RunSubmitToolOutputs{ToolCalls: pending}}
	e.publishLocked(r, "thread.run.requires_action", r.obj, true)
}

// functionDelta is the JSON of a function call fragment in a
// thread.run.step.delta event (RunStepDeltaStepDetailsToolCallsFunctionObject).
type functionDelta struct {
	Index    int     `json:"index"`
	ID       *string `json:"id,omitempty"`
	Type     string  `json:"type"`
	Function struct {
		Name      *string `json:"name,omitempty"`
		Arguments *string `json:"arguments,omitempty"`
	} `json:"function"`
}

func (e *engine) publishStepDeltaLocked(r *runRec, stepID string, call functionDelta) {
	if !r.logged {
		r.seq++ // the event exists (it has an id) but no stream ever needs it
		return
	}
	b, err := json.Marshal(call)
	if err != nil {
		return
	}
	var tc gen.RunStepDeltaStepDetailsToolCall
	if err := tc.UnmarshalJSON(b); err != nil {
		return
	}
	var details gen.RunStepDeltaStepDetails
	if err := details.FromRunStepDeltaStepDetailsToolCallsObject(gen.RunStepDeltaStepDetailsToolCallsObject{
		Type: "tool_calls", ToolCalls: &[]gen.RunStepDeltaStepDetailsToolCall{tc},
	}); err != nil {
		return
	}
	d := gen.RunStepDeltaObject{Id: stepID, Object: "thread.run.step.delta"}
	d.Delta.StepDetails = &details
	e.publishLocked(r, "thread.run.step.delta", d, false)
}

// fragments splits s into pieces of about n bytes, on rune boundaries.
func fragments(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && !utf8.RuneStart(s[k]) {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// fail ends a run as failed with the model error's last_error.
func (e *engine) fail(ctx context.Context, r *runRec, err error) {
	code, msg, known := modelFailure(err)
	if !known {
		e.s.log.Warn("model failed", "run_id", r.obj.Id, "err", err.Error())
	}
	if !e.pause(ctx) {
		e.interrupted(r)
		return
	}
	e.closeMessage(r, gen.MessageObjectIncompleteDetailsReasonRunFailed)
	if !e.transition(ctx, r, gen.RunObjectStatusInProgress, func() {
		now := e.s.now()
		stepCode := gen.RunStepObjectLastErrorCodeServerError
		if code == gen.RunObjectLastErrorCodeRateLimitExceeded {
			stepCode = gen.RunStepObjectLastErrorCodeRateLimitExceeded
		}
		for i := range r.steps {
			if r.steps[i].Status == gen.RunStepObjectStatusInProgress {
				st := r.steps[i]
				st.Status = gen.RunStepObjectStatusFailed
				st.FailedAt = &now
				st.LastError = &gen.RunStepLastError{Code: stepCode, Message: msg}
				r.steps[i] = st
				e.publishLocked(r, "thread.run.step.failed", st, false)
			}
		}
		r.obj.Status = gen.RunObjectStatusFailed
		r.obj.FailedAt = &now
		r.obj.LastError = &gen.RunLastError{Code: code, Message: msg}
		e.endLocked(r, "thread.run.failed")
	}) {
		e.interrupted(r)
	}
}

// expireRunning ends an in-progress run whose model round outlived expires_at.
func (e *engine) expireRunning(ctx context.Context, r *runRec) {
	e.closeMessage(r, gen.MessageObjectIncompleteDetailsReasonRunExpired)
	if !e.transition(ctx, r, gen.RunObjectStatusInProgress, func() { e.expireLocked(r) }) {
		e.interrupted(r)
	}
}

// newStepLocked adds an in_progress step and publishes its created and
// in_progress events.
func (e *engine) newStepLocked(r *runRec, typ gen.RunStepObjectType, details gen.RunStepDetails) gen.RunStepObject {
	st := gen.RunStepObject{
		Id:          newID(prefixStep),
		Object:      "thread.run.step",
		CreatedAt:   e.s.now(),
		AssistantId: r.obj.AssistantId,
		ThreadId:    r.obj.ThreadId,
		RunId:       r.obj.Id,
		Type:        typ,
		Status:      gen.RunStepObjectStatusInProgress,
		StepDetails: details,
		Metadata:    &gen.Metadata{},
	}
	r.steps = append(r.steps, st)
	e.publishLocked(r, "thread.run.step.created", st, false)
	e.publishLocked(r, "thread.run.step.in_progress", st, false)
	return st
}

func toolCallsDetails(calls []gen.RunStepDetailsToolCall) gen.RunStepDetails {
	var d gen.RunStepDetails
	_ = d.FromRunStepDetailsToolCallsObject(gen.RunStepDetailsToolCallsObject{Type: "tool_calls", ToolCalls: calls})
	return d
}

func functionCallDetail(c ToolCall, output *string) gen.RunStepDetailsToolCall {
	var tc gen.RunStepDetailsToolCall
	_ = tc.FromRunStepDetailsToolCallsFunctionObject(gen.RunStepDetailsToolCallsFunctionObject{
		Id: c.ID, Type: "function",
		Function: gen.RunStepDetailsFunction{Name: c.Name, Arguments: c.Arguments, Output: output},
	})
	return tc
}

func textPart(text string) gen.MessageContent {
	var c gen.MessageContent
	_ = c.FromMessageContentTextObject(gen.MessageContentTextObject{Type: "text",
		Text: gen.MessageContentText{Value: text, Annotations: []gen.MessageContentTextAnnotation{}}})
	return c
}

// writer receives the model's deltas for one round: the first creates the
// message_creation step and the in-progress message, each one is stored and
// published as a thread.message.delta.
type writer struct {
	e   *engine
	r   *runRec
	ctx context.Context // the round's model context; deltas after it ends are dropped

	mu      sync.Mutex
	buf     strings.Builder
	n       int
	stopped bool
}

func (w *writer) emit(delta string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if delta == "" || w.stopped || w.ctx.Err() != nil {
		return
	}
	e, r := w.e, w.r
	if r.msg == nil {
		now := e.s.now()
		aid, rid := r.obj.AssistantId, r.obj.Id
		m := gen.MessageObject{
			Id: newID(prefixMessage), Object: "thread.message", CreatedAt: now, ThreadId: r.obj.ThreadId,
			Status: gen.MessageObjectStatusInProgress, Role: gen.MessageObjectRoleAssistant,
			Content: []gen.MessageContent{}, AssistantId: &aid, RunId: &rid,
			Attachments: &[]gen.MessageAttachment{}, Metadata: &gen.Metadata{},
		}
		if e.s.putMessage(m) != nil {
			w.stopped = true
			return
		}
		r.msg = &m
		e.mu.Lock()
		if r.gone {
			e.mu.Unlock()
			w.stopped = true
			return
		}
		var d gen.RunStepDetails
		_ = d.FromRunStepDetailsMessageCreationObject(gen.RunStepDetailsMessageCreationObject{
			Type: "message_creation", MessageCreation: gen.RunStepDetailsMessageCreation{MessageId: m.Id}})
		st := e.newStepLocked(r, gen.RunStepObjectTypeMessageCreation, d)
		r.msgStepID = st.Id
		e.publishLocked(r, "thread.message.created", m, false)
		e.publishLocked(r, "thread.message.in_progress", m, false)
		e.mu.Unlock()
	}
	w.buf.WriteString(delta)
	w.n++
	m := *r.msg
	m.Content = []gen.MessageContent{textPart(w.buf.String())}
	r.msg = &m
	if e.s.putMessage(m) != nil {
		w.stopped = true
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.gone {
		return
	}
	if !r.logged {
		r.seq++ // see publishStepDeltaLocked
		return
	}
	var c gen.MessageDeltaContent
	v := delta
	if err := c.FromMessageDeltaContentTextObject(gen.MessageDeltaContentTextObject{Index: 0, Type: "text",
		Text: &gen.MessageDeltaContentText{Value: &v}}); err != nil {
		return
	}
	e.publishLocked(r, "thread.message.delta", gen.MessageDeltaObject{Id: m.Id, Object: "thread.message.delta",
		Delta: gen.MessageDelta{Content: &[]gen.MessageDeltaContent{c}}}, false)
}

// stop drops any later delta (a model must not emit after returning).
func (w *writer) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func (w *writer) started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.r.msg != nil
}

func (w *writer) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// ---- events ----

// publishLocked gives the next event of r its id (r.seq, dense from 1),
// appends it to the run's event log and sends it to the run's open streams;
// final events (requires_action and the end states) end them. Until a stream
// has subscribed to the run, events are only counted: nothing can ask for
// them (a retried stream replays from its own subscription on).
func (e *engine) publishLocked(r *runRec, name string, v any, final bool) {
	e.s.metrics.runEvent(name) // runs by status (metrics.go)
	r.seq++
	if !r.logged {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		e.s.log.Error("encode stream event", "event", name, "err", err.Error())
		return
	}
	ev := sseEvent{seq: r.seq, name: name, data: data, final: final}
	r.events = append(r.events, ev)
	for _, s := range r.subs {
		s.push(ev, final)
	}
	if final {
		r.subs = nil
	}
}

// subscribeLocked opens a stream on the run's next events (those with an id
// above r.seq) and turns the run's event log on.
func (e *engine) subscribeLocked(r *runRec) *subscriber {
	s := newSubscriber()
	s.from = r.seq
	r.logged = true
	r.subs = append(r.subs, s)
	return s
}

// resubscribe opens a stream on runID's events again, for a retried
// request whose first stream began after event from (see subscribeLocked):
// it gets the logged events with an id above max(from, last) and then the
// run's next events, and it ends, as the first stream did, at the first
// final event after from. last is the resume point the client names
// (Last-Event-ID), or -1.
func (e *engine) resubscribe(runID string, from, last int) (*subscriber, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.runs[runID]
	if r == nil || r.gone {
		return nil, errNotFound("run", runID)
	}
	s := newSubscriber()
	s.from = from
	after := max(from, last)
	for _, ev := range r.events {
		if ev.seq <= from {
			continue
		}
		if ev.seq > after {
			s.queue = append(s.queue, ev)
		}
		if ev.final {
			// The first stream ended here: so does this one.
			s.final, s.ended = true, true
			return s, nil
		}
	}
	r.subs = append(r.subs, s)
	return s, nil
}

// unsubscribe removes a stream whose client went away.
func (e *engine) unsubscribe(runID string, s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.runs[runID]; r != nil {
		if i := slices.Index(r.subs, s); i >= 0 {
			r.subs = slices.Delete(r.subs, i, i+1)
		}
	}
	s.end()
}

func closeSubs(r *runRec) {
	for _, s := range r.subs {
		s.end()
	}
	r.subs = nil
}
