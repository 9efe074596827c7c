package server

import (
	"context"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Runs that start at once. A write that enqueues a round (createRun,
// createThreadAndRun, submitToolOutputs) leaves the run queued, and the
// round's first write moves it to in_progress: one more commit per round.
// When the round will start at once in this process anyway (no step delay,
// and the queue promises a worker before the write), the enqueuing write
// records the run in_progress itself, with the events a stream would have
// seen (thread.run.queued then thread.run.in_progress), and the round,
// handed the run as committed, neither reads it again nor writes
// in_progress.
//
// Should this process die after the commit, the round's backup (River)
// finds the run in_progress in the same round and runs the round again,
// as for a round whose worker died (runRound). A cancel (or a thread's
// deletion) in this process between the write and the round's start,
// which found no local round to stop, makes the round read the run as
// before instead of taking the one handed to it (engine.stops).

// startSlot is the promise, taken before a write that enqueues a round,
// that this process starts that round at once: a slot of the River
// queue's inline pool, held from before the write until the round is
// handed to it, or given back (release) when the write fails.
type startSlot struct {
	r     inlineRunner // the River queue whose slot is held; nil: the memory queue, which runs each job at once
	done  bool         // the slot went to the round, or back to the pool
	stops uint64       // engine.stops before the write
}

// reserveStart returns a startSlot when a round enqueued now would start
// at once in this process, else nil: step delay 0, and a slot free in the
// River queue's inline pool, or the memory queue running (it starts every
// job due now in a goroutine of its own, with no bound). Other queues
// make no such promise.
func (e *engine) reserveStart() *startSlot {
	if e.s.opts.StepDelay > 0 {
		return nil
	}
	e.mu.Lock()
	stops := e.stops
	e.mu.Unlock()
	switch q := e.s.opts.Queue.(type) {
	case inlineRunner:
		if q.reserve() {
			return &startSlot{r: q, stops: stops}
		}
	case *memoryQueue:
		if q.running() == nil {
			return &startSlot{stops: stops}
		}
	}
	return nil
}

// stoppedSince reports whether a cancel or a thread's deletion stopped the
// local rounds since engine.stops was n: one may have come for a round
// not yet in e.local.
func (e *engine) stoppedSince(n uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stops != n
}

// release gives the slot back unless it went to a round: a write that
// failed, or did not enqueue its round inline. It may be deferred on a nil
// slot.
func (s *startSlot) release() {
	if s == nil || s.done {
		return
	}
	s.done = true
	if s.r != nil {
		s.r.unreserve()
	}
}

// startLocked moves a queued run to in_progress (started_at set on its
// first start) and publishes thread.run.in_progress: the first write of a
// round, or the write that enqueues it when the round starts at once.
func (e *engine) startLocked(lr *liveRun) {
	now := e.s.now()
	lr.obj.Status = gen.RunObjectStatusInProgress
	if lr.obj.StartedAt == nil {
		lr.obj.StartedAt = &now
	}
	lr.publish("thread.run.in_progress", lr.obj)
}

// startedRun is a run as the write that started its round committed it
// (in_progress, in round), handed to that round (runRound).
type startedRun struct {
	round int
	obj   gen.RunObject
	st    runState
	stops uint64 // engine.stops before the write (startSlot.stops)
	// msgs, when not nil, are the thread's messages as the write stored
	// them: a thread created with its run (createThreadAndRun), which no
	// message joins while the run is active, so the round needs not read
	// them back. (A message modified or deleted meanwhile, which the API
	// allows during a run, is seen as it was stored with the run, as if
	// the round had read it just before the change.)
	msgs []store.Message
}

type startedKey struct{}

// withStarted returns ctx for the inline round job of run s.
func withStarted(ctx context.Context, s *startedRun) context.Context {
	return context.WithValue(ctx, startedKey{}, s)
}

// startedFor returns the run handed to round a in ctx, or nil.
func startedFor(ctx context.Context, a roundArgs) *startedRun {
	s, _ := ctx.Value(startedKey{}).(*startedRun)
	if s == nil || s.obj.Id != a.RunID || s.round != a.Round {
		return nil
	}
	return s
}
