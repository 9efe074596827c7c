package helpers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
)

// StreamToolClient is what StreamToolLoop calls: SubmitToolOutputsToRunWithBody
// with "stream": true (the stream's raw reply), and the typed calls GetRun to
// read the run back after a cut stream and CancelRun on cancellation.
// *assistants.Client satisfies it.
type StreamToolClient interface {
	ToolOutputsStreamer
	poller.RunGetter
	RunCanceller
}

// StreamRunToolsClient is StreamToolClient plus CreateRunWithBody (the
// stream's raw reply). *assistants.Client satisfies it.
type StreamRunToolsClient interface {
	RunStreamer
	StreamToolClient
}

// StreamRunTools starts a run on threadID with body as a stream (see
// StreamRun; body.Tools is sent as given: set it to reg.Tools() to give the
// run the registry's tools, or leave it nil to use the assistant's) and
// drives it with StreamToolLoop. A failed start returns nil and its error
// (an *assistants.APIError for a non-2xx reply).
//
// The createRun request carries one Idempotency-Key for all its attempts
// (a key set by a request editor in o.Poll wins). When its stream is cut
// before the run is known (no thread.run.* event arrived: a proxy cut it,
// the connection was reset), the request is sent again with that key, at
// most StreamStartAttempts times in all: the server reattaches it to the
// same run's events, so no second run is made. A stream cut after the run
// is known is handled as StreamToolLoop does (the run is read back).
func StreamRunTools(ctx context.Context, c StreamRunToolsClient, threadID string, body gen.CreateRunRequest, reg *Registry, acc *Accumulator, opts ...func(*ToolLoopOptions)) (*gen.RunObject, error) {
	o := loopOptions(opts)
	editors := append([]gen.RequestEditorFn{withIdempotencyKey(newIdempotencyKey())}, pollOptions(o).RequestEditors...)
	s, err := StreamRun(ctx, c, threadID, body, editors...)
	if err != nil {
		return nil, err
	}
	l := newStreamLoop(c, reg, acc, o)
	l.reopen = func(ctx context.Context) (*Stream, error) { return StreamRun(ctx, c, threadID, body, editors...) }
	return l.loop(ctx, s)
}

// StreamStartAttempts is how many times StreamRunTools sends its createRun
// request when the streams it gets are cut before the run is known.
const StreamStartAttempts = 5

// withIdempotencyKey sets the Idempotency-Key header of a request that has
// none, so that every attempt of one logical request carries the same key
// (the client's retry transport keeps a key it finds).
func withIdempotencyKey(key string) gen.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		if req.Header.Get("Idempotency-Key") == "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return nil
	}
}

// newIdempotencyKey returns "idem_" and 32 random hex digits.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "idem_" + hex.EncodeToString(b[:])
}

// streamCut reports whether err ended a stream because the connection or
// the body broke (not an error event, a bad event or a limit), so that the
// same request may be sent again.
func streamCut(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET)
}

// StreamToolLoop is the streaming form of RunToolLoop, with the same
// Registry, options and rules. It reads the run stream s (from StreamRun,
// StreamThreadAndRun or StreamSubmitToolOutputs; it owns s and closes it),
// feeding every event to acc, and drives the run to a final state: on
// thread.run.requires_action it runs the requested calls with reg.Execute
// (concurrently, bounded by Exec.Concurrency; failing or panicking handlers,
// unknown functions and bad arguments become error outputs), submits all
// the outputs with "stream": true (StreamSubmitToolOutputs) and goes on
// with the new stream.
//
// acc may be nil. When set it receives every event of every stream, so its
// hooks (OnTextDelta, OnToolCallDelta, OnEvent) show the run live and its
// Messages and RunSteps hold the results. Runs read back after a cut stream
// are given to it as synthetic thread.run.<status> events; messages written
// while no stream was open are then missing from it (list them with
// ListMessages).
//
// End states, as for RunToolLoop: a completed run is returned with a nil
// error; a failed, cancelled, expired or incomplete one with a
// *poller.RunError. When ctx ends, the loop cancels the run (best effort, on
// a fresh context bounded by CancelTimeout) and returns the last known run
// and an error wrapping ctx.Err(). Past MaxRounds rounds it cancels the run
// likewise and returns a *MaxRoundsError. If the first stream fails before
// the run's id is known, its error is returned with a nil run; any later
// error comes with the last known run, so the run is never lost.
//
// Cut streams: when a stream ends before its done event (a read error, an
// error event, a bad event, a stalled server cut by a deadline of the
// transport) or ends while the run is still queued or in progress, the loop
// reads the run back with the poller (options o.Poll; transient errors are
// polled through) until it is terminal, and carries on from there: a final
// run is returned, a required action is answered with a new stream.
//
// Exactly once: a tool call id's handler runs at most once per loop. When a
// submission fails, or its stream is cut, the loop reads the run back: if
// the run no longer waits on those calls it carries on; if it still does,
// the cached outputs are submitted again (at most SubmitAttempts failed
// submissions in a row, and SubmitAttempts replays of one required action).
func StreamToolLoop(ctx context.Context, c StreamToolClient, s *Stream, reg *Registry, acc *Accumulator, opts ...func(*ToolLoopOptions)) (*gen.RunObject, error) {
	return streamToolLoop(ctx, c, s, reg, acc, loopOptions(opts))
}

func streamToolLoop(ctx context.Context, c StreamToolClient, s *Stream, reg *Registry, acc *Accumulator, o ToolLoopOptions) (*gen.RunObject, error) {
	return newStreamLoop(c, reg, acc, o).loop(ctx, s)
}

func newStreamLoop(c StreamToolClient, reg *Registry, acc *Accumulator, o ToolLoopOptions) *streamLoop {
	if acc == nil {
		acc = &Accumulator{}
	}
	if reg == nil {
		reg = &Registry{}
	}
	return &streamLoop{c: c, reg: reg, o: o, po: pollOptions(o), acc: acc, ledger: newCallLedger()}
}

// pollOptions applies o.Poll to a poller.Options.
func pollOptions(o ToolLoopOptions) poller.Options {
	var po poller.Options
	for _, f := range o.Poll {
		if f != nil {
			f(&po)
		}
	}
	return po
}

// errNoRun is reported when a stream ends without any thread.run.* event.
var errNoRun = errors.New("the stream ended without a run event")

// streamLoop is the state of one StreamToolLoop call.
type streamLoop struct {
	c      StreamToolClient
	reg    *Registry
	o      ToolLoopOptions
	po     poller.Options
	acc    *Accumulator
	ledger *callLedger

	run    *gen.RunObject // last known state of the run; nil until known
	rounds int

	// reopen sends the request of the first stream again (same key), or is
	// nil; starts counts the first stream's attempts.
	reopen func(ctx context.Context) (*Stream, error)
	starts int
}

func (l *streamLoop) loop(ctx context.Context, s *Stream) (*gen.RunObject, error) {
	replays := 0        // consecutive answers of a required action with no new calls
	submitFailures := 0 // consecutive failed submissions
	var lastSubmitErr error
	for {
		var streamErr error
		sawRun := true
		if s != nil {
			sawRun, streamErr = l.consume(s)
			s = nil
		}
		if ctx.Err() != nil {
			return l.cancel(ctx, ctx.Err())
		}
		if l.run == nil {
			if streamErr == nil {
				streamErr = errNoRun
			}
			if l.reopen != nil && streamCut(streamErr) && l.starts+1 < StreamStartAttempts {
				// Cut before the run was known: send the request again with
				// its key; the server reattaches it to the same run.
				l.starts++
				next, err := l.reopen(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil, fmt.Errorf("helpers: stream tool loop: %w", ctx.Err())
					}
					return nil, fmt.Errorf("helpers: stream tool loop: %w (sending the request again after: %w)", err, streamErr)
				}
				s = next
				continue
			}
			return nil, fmt.Errorf("helpers: stream tool loop: %w", streamErr)
		}
		if streamErr != nil || lastSubmitErr != nil || !sawRun || !poller.IsTerminal(l.run.Status) {
			// The stream was cut, a submission failed, or the stream ended
			// while the run was still going (or without saying how it
			// goes): read the run back.
			if err := l.readBack(ctx); err != nil {
				if ctx.Err() != nil {
					return l.cancel(ctx, ctx.Err())
				}
				cause := streamErr
				if lastSubmitErr != nil {
					cause = lastSubmitErr
				}
				if cause == nil {
					return l.run, fmt.Errorf("helpers: stream tool loop: run %s: %w", l.run.Id, err)
				}
				return l.run, fmt.Errorf("helpers: stream tool loop: run %s: %w (reading back after: %w)", l.run.Id, err, cause)
			}
			lastSubmitErr = nil
		}
		run := l.run
		if run.Status != gen.RunObjectStatusRequiresAction {
			// Final: nil for completed, a *poller.RunError otherwise.
			return poller.NewFromRun(l.c, run, 0).Result()
		}
		if run.RequiredAction == nil || len(run.RequiredAction.SubmitToolOutputs.ToolCalls) == 0 {
			return run, fmt.Errorf("helpers: stream tool loop: run %s requires action %q without tool calls", run.Id, requiredActionType(run))
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
				return run, fmt.Errorf("helpers: stream tool loop: run %s keeps asking for the outputs of calls already answered", run.Id)
			}
		}
		outputs, err := l.ledger.execute(ctx, l.reg, calls, l.o.Exec)
		if err != nil {
			return l.cancel(ctx, err)
		}
		next, err := StreamSubmitToolOutputs(ctx, l.c, run.ThreadId, run.Id,
			gen.SubmitToolOutputsRunRequest{ToolOutputs: outputs}, l.po.RequestEditors...)
		if err != nil {
			if ctx.Err() != nil {
				return l.cancel(ctx, ctx.Err())
			}
			submitFailures++
			err = fmt.Errorf("helpers: stream tool loop: submit tool outputs to run %s: %w", run.Id, err)
			if submitFailures >= l.o.SubmitAttempts {
				return l.run, err
			}
			// The outputs may or may not have reached the server: read the
			// run back on the next turn.
			lastSubmitErr = err
			continue
		}
		submitFailures = 0
		s = next
	}
}

// consume reads s to its end, feeding the accumulator and tracking the run.
// It reports whether the stream carried a run event, and returns a nil
// error only for a stream that ended with its done event.
func (l *streamLoop) consume(s *Stream) (sawRun bool, err error) {
	defer s.Close()
	for s.Next() {
		ev := s.Event()
		if ev.Run != nil {
			r := *ev.Run
			l.run = &r
			sawRun = true
		}
		if err := l.acc.Add(ev); err != nil {
			return sawRun, err
		}
	}
	return sawRun, s.Err()
}

// readBack polls the run until it is terminal (requires_action included).
// On success l.run holds it, whatever its status; a *poller.RunError is not
// an error here.
func (l *streamLoop) readBack(ctx context.Context) error {
	p := poller.New(l.c, l.run.ThreadId, l.run.Id, l.o.Poll...)
	run, err := p.PollUntilDone(ctx)
	if run != nil {
		l.run = run
	}
	var runErr *poller.RunError
	if err != nil && !errors.As(err, &runErr) {
		return err
	}
	_ = l.acc.Add(StreamEvent{Name: "thread.run." + string(l.run.Status), Run: l.run})
	return nil
}

// cancel asks the server to cancel the run (best effort, on a fresh context
// bounded by CancelTimeout) unless it is unknown or known to be final, and
// returns the last known run with cause wrapped (a *MaxRoundsError as is).
func (l *streamLoop) cancel(ctx context.Context, cause error) (*gen.RunObject, error) {
	err := fmt.Errorf("helpers: stream tool loop: %w", cause)
	var mr *MaxRoundsError
	if errors.As(cause, &mr) {
		err = cause
	}
	if l.run == nil || l.run.Id == "" ||
		(poller.IsTerminal(l.run.Status) && l.run.Status != gen.RunObjectStatusRequiresAction) {
		return l.run, err
	}
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), l.o.CancelTimeout)
	defer stop()
	if run, cerr := l.c.CancelRun(cctx, l.run.ThreadId, l.run.Id, l.po.RequestEditors...); cerr == nil {
		l.run = run
	}
	return l.run, err
}
