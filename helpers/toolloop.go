package helpers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/editors"
	"github.com/assistants-go/assistants/poller"
)

// DefaultMaxRounds is the number of tool rounds (required actions with new
// tool calls) a tool loop answers when its MaxRounds option is 0.
const DefaultMaxRounds = 10

// ErrMaxRounds is matched (errors.Is) by the error a tool loop returns when
// the run asks for tool outputs more than MaxRounds times.
var ErrMaxRounds = errors.New("helpers: too many tool rounds")

// MaxRoundsError is the error RunToolLoop returns when the run requires
// action with new tool calls after MaxRounds rounds. errors.Is(err,
// ErrMaxRounds) is true for it.
type MaxRoundsError struct {
	// RunID is the run that kept asking.
	RunID string
	// Rounds is the limit that was reached.
	Rounds int
}

// Error returns "helpers: run RUN: too many tool rounds (limit N)".
func (e *MaxRoundsError) Error() string {
	return fmt.Sprintf("helpers: run %s: too many tool rounds (limit %d)", e.RunID, e.Rounds)
}

// Unwrap returns ErrMaxRounds.
func (e *MaxRoundsError) Unwrap() error { return ErrMaxRounds }

// callLedger is the exactly-once bookkeeping shared by the polling and the
// streaming tool loops: it keeps the output of every tool call id it has
// executed, so a call id's handler runs at most once per loop and a
// resubmission sends the cached output.
type callLedger struct {
	mu      sync.Mutex
	outputs map[string]string
}

func newCallLedger() *callLedger { return &callLedger{outputs: map[string]string{}} }

// hasNew reports whether any of calls has not been executed yet.
func (l *callLedger) hasNew(calls []gen.RunToolCallObject) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range calls {
		if _, ok := l.outputs[c.Id]; !ok {
			return true
		}
	}
	return false
}

// cached returns the outputs for calls when every one of them has been
// executed, in the calls' order.
func (l *callLedger) cached(calls []gen.RunToolCallObject) ([]gen.SubmitToolOutputsRunRequestToolOutput, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]gen.SubmitToolOutputsRunRequestToolOutput, len(calls))
	for i, c := range calls {
		s, ok := l.outputs[c.Id]
		if !ok {
			return nil, false
		}
		out[i] = toolOutput(c.Id, s)
	}
	return out, true
}

// execute runs the calls not executed before (each distinct id once, even
// when it appears twice in calls), records their outputs, and returns the
// outputs of all calls in order, cached ones included. On ctx cancellation
// it records nothing and returns ctx.Err().
func (l *callLedger) execute(ctx context.Context, r *Registry, calls []gen.RunToolCallObject, opts ExecOptions) ([]gen.SubmitToolOutputsRunRequestToolOutput, error) {
	l.mu.Lock()
	var todo []gen.RunToolCallObject
	seen := map[string]bool{}
	for _, c := range calls {
		if _, done := l.outputs[c.Id]; done || seen[c.Id] {
			continue
		}
		seen[c.Id] = true
		todo = append(todo, c)
	}
	l.mu.Unlock()
	if len(todo) > 0 {
		res, err := r.Execute(ctx, todo, opts)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		for i, o := range res {
			l.outputs[todo[i].Id] = *o.Output
		}
		l.mu.Unlock()
	}
	out, _ := l.cached(calls)
	return out, nil
}

// Defaults of ToolLoopOptions.
const (
	// DefaultSubmitAttempts is ToolLoopOptions.SubmitAttempts's default.
	DefaultSubmitAttempts = 3
	// DefaultCancelTimeout is ToolLoopOptions.CancelTimeout's default.
	DefaultCancelTimeout = 10 * time.Second
)

// ToolLoopOptions configures RunToolLoop and RunTools. Pass functions that
// modify it; the zero value is the default.
type ToolLoopOptions struct {
	// MaxRounds is how many required actions with new tool calls the loop
	// answers. One more ends the loop: it cancels the run (best effort) and
	// returns a *MaxRoundsError (errors.Is(err, ErrMaxRounds)). Default
	// (0): DefaultMaxRounds (10).
	MaxRounds int
	// Exec is passed to Registry.Execute: handler concurrency (default 8),
	// the per-call timeout (default DefaultCallTimeout, 5 minutes), the
	// format of error outputs (default {"error": "..."}) and the
	// OnToolCall/OnToolResult hooks (default none).
	Exec ExecOptions
	// Poll configures the poller that waits for the run between rounds
	// (interval, backoff, request editors; see package poller). Default:
	// none, i.e. the server's openai-poll-after-ms hint or 1s.
	Poll []func(*poller.Options)
	// SubmitAttempts is how many times the outputs of one required action
	// are submitted before the loop gives up with the submission's error.
	// Default (0): DefaultSubmitAttempts (3).
	SubmitAttempts int
	// CancelTimeout bounds the best-effort CancelRun made when ctx ends or
	// MaxRounds is reached; it runs on a fresh context. Default (0):
	// DefaultCancelTimeout (10s).
	CancelTimeout time.Duration
}

// WithMaxRounds returns an option setting ToolLoopOptions.MaxRounds.
func WithMaxRounds(n int) func(*ToolLoopOptions) {
	return func(o *ToolLoopOptions) { o.MaxRounds = n }
}

// WithExecOptions returns an option setting ToolLoopOptions.Exec.
func WithExecOptions(e ExecOptions) func(*ToolLoopOptions) {
	return func(o *ToolLoopOptions) { o.Exec = e }
}

// WithPollOptions returns an option appending to ToolLoopOptions.Poll.
func WithPollOptions(opts ...func(*poller.Options)) func(*ToolLoopOptions) {
	return func(o *ToolLoopOptions) { o.Poll = append(o.Poll, opts...) }
}

// ToolLoopClient is what RunToolLoop calls, the typed calls of
// *assistants.Client: GetRun to poll, SubmitToolOutputsToRun to answer,
// CancelRun on cancellation.
type ToolLoopClient interface {
	poller.RunGetter
	poller.ToolOutputsSubmitter
	RunCanceller
}

// RunCanceller cancels a run: the typed call of *assistants.Client.
type RunCanceller interface {
	CancelRun(ctx context.Context, threadID string, runID string, reqEditors ...gen.RequestEditorFn) (*gen.RunObject, error)
}

// RunToolsClient is ToolLoopClient plus CreateRun. *assistants.Client
// satisfies it.
type RunToolsClient interface {
	ToolLoopClient
	poller.RunCreator
}

// RunTools creates a run on threadID with body (body.Stream is cleared;
// body.Tools is sent as given: set it to reg.Tools() to give the run the
// registry's tools, or leave it nil to use the assistant's) and drives it
// with the tool loop described at RunToolLoop. A failed creation returns
// nil and its error.
func RunTools(ctx context.Context, client RunToolsClient, threadID string, body gen.CreateRunRequest, reg *Registry, opts ...func(*ToolLoopOptions)) (*gen.RunObject, error) {
	o := loopOptions(opts)
	var po poller.Options
	for _, f := range o.Poll {
		if f != nil {
			f(&po)
		}
	}
	body.Stream = nil
	var h http.Header
	run, err := client.CreateRun(ctx, threadID, nil, body, editors.WithReplyHeader(po.RequestEditors, &h)...)
	if err != nil {
		return nil, fmt.Errorf("helpers: tool loop: create run: %w", err)
	}
	l := &toolLoop{c: client, reg: reg, o: o, po: po, ledger: newCallLedger(), run: run, threadID: run.ThreadId, runID: run.Id}
	return l.loop(ctx, poller.NewFromRun(client, run, poller.PollAfter(h), o.Poll...))
}

// RunToolLoop drives the run runID on thread threadID to a final state,
// answering its tool calls with reg. It polls the run (package poller);
// each time the run requires action it runs every requested call with
// reg.Execute (concurrently, bounded by Exec.Concurrency; a failing or
// panicking handler or OnToolCall hook, a handler that has not returned
// within Exec.CallTimeout (default 5 minutes), an unknown function and bad
// arguments become error outputs the model can read), submits all the
// outputs in one request and polls again.
//
// End states: a completed run is returned with a nil error; a failed,
// cancelled, expired or incomplete one with a *poller.RunError. When ctx
// ends, the loop cancels the run (best effort, on a fresh context bounded by
// CancelTimeout) and returns the last known run (the cancelling run when
// CancelRun answered) and an error wrapping ctx.Err() and, when the last
// request had failed, that request's error too (errors.As finds its
// *assistants.APIError). Past MaxRounds rounds it cancels the run likewise
// and returns a *MaxRoundsError. A permanent request error (see
// poller.IsTransient: e.g. a 404, an untrusted TLS certificate, a failing
// credential) ends the loop at once with that error. Whenever it returns an
// error after the run was read it also returns the last known run.
//
// Exactly once: a tool call id's handler runs at most once per loop. When a
// submission fails in a way that leaves its fate unknown (a timeout, a 5xx
// or a dropped connection after the transport's retries), or is refused,
// the loop reads the run back: if the run no longer waits on those call ids
// the submission went through and the loop carries on; if it still does,
// the cached outputs are submitted again, up to SubmitAttempts times.
//
// A nil reg answers every call with an unknown-tool error output.
func RunToolLoop(ctx context.Context, client ToolLoopClient, threadID, runID string, reg *Registry, opts ...func(*ToolLoopOptions)) (*gen.RunObject, error) {
	o := loopOptions(opts)
	var po poller.Options
	for _, f := range o.Poll {
		if f != nil {
			f(&po)
		}
	}
	l := &toolLoop{c: client, reg: reg, o: o, po: po, ledger: newCallLedger(), threadID: threadID, runID: runID}
	return l.loop(ctx, poller.New(client, threadID, runID, o.Poll...))
}

// loopOptions applies opts and fills the defaults.
func loopOptions(opts []func(*ToolLoopOptions)) ToolLoopOptions {
	var o ToolLoopOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.MaxRounds <= 0 {
		o.MaxRounds = DefaultMaxRounds
	}
	if o.SubmitAttempts <= 0 {
		o.SubmitAttempts = DefaultSubmitAttempts
	}
	if o.CancelTimeout <= 0 {
		o.CancelTimeout = DefaultCancelTimeout
	}
	return o
}

// toolLoop is the state of one RunToolLoop call.
type toolLoop struct {
	c      ToolLoopClient
	reg    *Registry
	o      ToolLoopOptions
	po     poller.Options
	ledger *callLedger
	run    *gen.RunObject // last known state; nil until read

	threadID, runID string
	rounds          int
}

func (l *toolLoop) loop(ctx context.Context, p *poller.Poller) (*gen.RunObject, error) {
	if l.reg == nil {
		l.reg = &Registry{}
	}
	replays := 0 // consecutive answers of a required action with no new calls
	for {
		run, err := p.PollUntilDone(ctx)
		if run != nil {
			l.run = run
		}
		if ctx.Err() != nil {
			return l.cancel(ctx, withCtxErr(ctx, err))
		}
		if err != nil {
			var runErr *poller.RunError
			if errors.As(err, &runErr) {
				return l.run, err
			}
			return l.run, fmt.Errorf("helpers: tool loop: %w", err)
		}
		if run.Status != gen.RunObjectStatusRequiresAction {
			return run, nil
		}
		if run.RequiredAction == nil || len(run.RequiredAction.SubmitToolOutputs.ToolCalls) == 0 {
			return run, fmt.Errorf("helpers: tool loop: run %s requires action %q without tool calls", run.Id, requiredActionType(run))
		}
		calls := run.RequiredAction.SubmitToolOutputs.ToolCalls
		if l.ledger.hasNew(calls) {
			if l.rounds >= l.o.MaxRounds {
				return l.cancel(ctx, &MaxRoundsError{RunID: run.Id, Rounds: l.o.MaxRounds})
			}
			l.rounds++
			replays = 0
		} else {
			// The run asks again for outputs already submitted.
			replays++
			if replays > l.o.SubmitAttempts {
				return run, fmt.Errorf("helpers: tool loop: run %s keeps asking for the outputs of calls already answered", run.Id)
			}
		}
		outputs, err := l.ledger.execute(ctx, l.reg, calls, l.o.Exec)
		if err != nil {
			return l.cancel(ctx, err)
		}
		next, hint, err := l.submit(ctx, outputs)
		if err != nil {
			if ctx.Err() != nil {
				return l.cancel(ctx, withCtxErr(ctx, err))
			}
			return l.run, err
		}
		l.run = next
		p = poller.NewFromRun(l.c, next, hint, l.o.Poll...)
	}
}

// requiredActionType names the required action for an error message.
func requiredActionType(run *gen.RunObject) string {
	if run.RequiredAction == nil {
		return ""
	}
	return string(run.RequiredAction.Type)
}

// submit sends the outputs for run's required action, exactly once: after a
// failed attempt it reads the run back and resubmits the same outputs only
// while the run still waits on those calls. It returns the run as the
// server last showed it and that reply's poll hint.
func (l *toolLoop) submit(ctx context.Context, outputs []gen.SubmitToolOutputsRunRequestToolOutput) (*gen.RunObject, time.Duration, error) {
	body := gen.SubmitToolOutputsRunRequest{ToolOutputs: outputs}
	ids := make([]string, len(outputs))
	for i, o := range outputs {
		ids[i] = *o.ToolCallId
	}
	var lastErr error
	var h http.Header
	hinted := editors.WithReplyHeader(l.po.RequestEditors, &h)
	for attempt := 0; attempt < l.o.SubmitAttempts; attempt++ {
		h = nil
		next, err := l.c.SubmitToolOutputsToRun(ctx, l.threadID, l.runID, body, hinted...)
		if err == nil {
			return next, poller.PollAfter(h), nil
		}
		lastErr = fmt.Errorf("submit tool outputs to run %s: %w", l.runID, err)
		if ctx.Err() != nil {
			return nil, 0, withCtxErr(ctx, lastErr)
		}
		lastErr = fmt.Errorf("helpers: tool loop: %w", lastErr)
		// Did the server take the outputs? Read the run back.
		back, err := l.readBack(ctx)
		if err != nil {
			return nil, 0, errors.Join(lastErr, err)
		}
		l.run = back
		if !waitingOn(back, ids) {
			return back, 0, nil
		}
	}
	return nil, 0, lastErr
}

// readBack reads the run, retrying transient errors (SubmitAttempts times,
// waiting the poller's interval between tries).
func (l *toolLoop) readBack(ctx context.Context) (*gen.RunObject, error) {
	p := poller.New(l.c, l.threadID, l.runID, l.o.Poll...)
	var err error
	for i := 0; i < l.o.SubmitAttempts; i++ {
		if i > 0 {
			if werr := sleepCtx(ctx, p.NextInterval()); werr != nil {
				return nil, withCtxErr(ctx, err)
			}
		}
		var back *gen.RunObject
		back, err = p.Poll(ctx)
		if back != nil && (err == nil || errors.As(err, new(*poller.RunError))) {
			return back, nil
		}
		if ctx.Err() != nil {
			return nil, withCtxErr(ctx, err)
		}
		if !poller.IsTransient(err) {
			break
		}
	}
	return nil, fmt.Errorf("helpers: tool loop: read run %s back: %w", l.runID, err)
}

// waitingOn reports whether run still requires action on any of ids.
func waitingOn(run *gen.RunObject, ids []string) bool {
	if run.Status != gen.RunObjectStatusRequiresAction || run.RequiredAction == nil {
		return false
	}
	for _, c := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		if slices.Contains(ids, c.Id) {
			return true
		}
	}
	return false
}

// cancel asks the server to cancel the run (best effort, on a fresh context
// bounded by CancelTimeout) unless it is known to be final, and returns the
// last known run with cause wrapped.
func (l *toolLoop) cancel(ctx context.Context, cause error) (*gen.RunObject, error) {
	err := fmt.Errorf("helpers: tool loop: %w", cause)
	var mr *MaxRoundsError
	if errors.As(cause, &mr) {
		err = cause
	}
	if l.runID == "" || l.threadID == "" || (l.run != nil && poller.IsTerminal(l.run.Status) && l.run.Status != gen.RunObjectStatusRequiresAction) {
		return l.run, err
	}
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), l.o.CancelTimeout)
	defer stop()
	if run, cerr := l.c.CancelRun(cctx, l.threadID, l.runID, l.po.RequestEditors...); cerr == nil {
		l.run = run
	}
	return l.run, err
}

// withCtxErr is the error for a step that ctx ended: err when it already
// matches ctx.Err() (the poller's and the client's errors then carry the
// last real error, such as an *assistants.APIError, too), else ctx.Err()
// joined with err, or ctx.Err() alone when err is nil.
func withCtxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	switch {
	case err == nil:
		return cerr
	case errors.Is(err, cerr):
		return err
	}
	return fmt.Errorf("%w; last error: %w", cerr, err)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
