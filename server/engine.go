package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// runTTL is how long a run may take before it expires (expires_at = created_at + 10 minutes).
const runTTL = 10 * time.Minute

// Causes of a round's context cancellation.
var (
	errRunCancelled = errors.New("run cancelled")
	errThreadGone   = errors.New("thread deleted")
	errRunStale     = errors.New("run changed under the round")
)

// The run engine moves runs through their states. Runs live in the store
// (Options.Store): every transition is one UpdateRun that writes the run
// with its steps, messages and events, and enqueues the job that takes the
// next transition, so a committed state always has its next job. Creating a
// run is one CreateRun with its first job.
//
// Jobs (see jobs.go) are run by a Queue: an in-process runner for the memory
// store, River for the SQL stores. A job is idempotent: it reloads the run
// and does nothing when the run has moved on (so a job run twice, or run
// again after a crash, is harmless). A run in requires_action has no job:
// submitting the outputs enqueues the next round.
//
// The engine keeps in memory only what is local to this process: the
// cancel functions of the rounds running here (so that a cancel or a
// thread's deletion stops them at once) and the open event streams (woken
// when a write here adds events to their run).
type engine struct {
	s *Server

	mu     sync.Mutex
	closed bool                     // no new runs (Shutdown, Close)
	ended  bool                     // no more streams (Close)
	poll   []string                 // the openai-poll-after-ms header value
	local  map[localKey]*localRound // rounds running in this process, by run and round
	stops  uint64                   // the cancels and thread deletions made in this process, which stop its local rounds (startnow.go)
	subs   map[string][]*subscriber // open event streams, by run id
	pg     *pgWake                  // PostgreSQL: wakes the streams of other replicas (pgwake.go)
	seen   seenRuns                 // the last row of the runs driven here (seenruns.go)
}

// localKey names a round running in this process: a run's round. Jobs of
// two rounds of one run may run here at once (a late job of a round that
// ended, rescued with the next round's job), so the round is in the key:
// keyed by run alone, the late job held the key and the next round's job,
// taking it for a duplicate, ended without running, leaving the run queued
// for ever.
type localKey struct {
	runID string
	round int
}

// localRound is a round running in this process.
type localRound struct {
	threadID string
	cancel   context.CancelCauseFunc
}

// runState is the engine's bookkeeping of a run, kept in store.Run.State.
type runState struct {
	// Assistant is the assistant as it was when the run was created.
	Assistant gen.AssistantObject `json:"assistant"`
	// Steps are the run's steps, oldest first (also stored as steps).
	Steps []gen.RunStepObject `json:"steps,omitempty"`
	// PendingStep is the tool_calls step awaiting outputs.
	PendingStep string `json:"pending_step,omitempty"`
	// PendingCalls are the calls awaiting outputs.
	PendingCalls []ToolCall `json:"pending_calls,omitempty"`
	// PendingUsage is the usage of the round that made them.
	PendingUsage Usage `json:"pending_usage"`
	// Outputs are the calls and outputs of finished rounds.
	Outputs []ToolOutput `json:"outputs,omitempty"`
	// Used is the usage so far.
	Used Usage `json:"used"`
	// Round numbers the current model round, from 0.
	Round int `json:"round"`
	// MsgID and MsgStepID are the current round's message and its
	// message_creation step, once the round wrote one. A round run again
	// after a crash writes into the same message (no duplicate).
	MsgID     string `json:"msg_id,omitempty"`
	MsgStepID string `json:"msg_step_id,omitempty"`
	// IncludeResults: createRun's include[] asks to stream file_search
	// results (filesearch.go).
	IncludeResults bool `json:"include_results,omitempty"`
}

// runRec is a run being created, before it is in the store.
type runRec struct {
	obj            gen.RunObject
	asst           gen.AssistantObject
	includeResults bool // createRun's include[]: stream file_search results (filesearch.go)
}

// liveRun is a run read from the store and decoded, to be changed inside
// an UpdateRun.
type liveRun struct {
	obj    gen.RunObject
	st     runState
	change store.RunChange
	names  []string // names of the events added, for the metrics
	final  bool     // an event added ends streams
	e      *engine
	failed error // an encoding error
	// project is the run's project (store.Run.Project).
	project string
	// slot, set by an fn of update that enqueues a round and starts it
	// at once (submitToolOutputs), is the promise of a worker for that
	// round (startnow.go): update hands it the run as written.
	slot *startSlot
}

func newEngine(s *Server) *engine {
	return &engine{s: s, local: map[localKey]*localRound{}, subs: map[string][]*subscriber{},
		poll: []string{strconv.FormatInt(s.opts.PollAfter.Milliseconds(), 10)}}
}

// isActive reports whether a run in status st holds its thread's lock.
func isActive(st gen.RunObjectStatus) bool { return store.IsActive(string(st)) }

// bg is the context of the engine's store calls that must not be cut short
// by a request or a round going away.
func (e *engine) bg() context.Context { return context.WithoutCancel(e.s.ctx) }

// ---- reading and changing runs ----

// decodeRun decodes a stored run.
func decodeRun(r store.Run) (gen.RunObject, runState, error) {
	obj, err := decodeData[gen.RunObject](r.Data)
	if err != nil {
		return obj, runState{}, err
	}
	var st runState
	if len(r.State) > 0 {
		if err := json.Unmarshal(r.State, &st); err != nil {
			return obj, st, fmt.Errorf("decode run state: %w", err)
		}
	}
	return obj, st, nil
}

// update changes a run in one UpdateRun: fn changes lr (its run, state,
// steps, messages, events, jobs) and returns an error (returned as is, and
// nothing is written). It returns the run as stored and the sequence
// number of the first event written (0: none), and wakes the run's
// streams.
func (e *engine) update(ctx context.Context, threadID, runID string, fn func(lr *liveRun) error) (gen.RunObject, int64, error) {
	return e.write(ctx, threadID, runID, nil, fn)
}

// apply runs fn on the run r (decoded), and sets r's fields from the
// result: the change of update's write.
func (e *engine) apply(ctx context.Context, r *store.Run, fn func(lr *liveRun) error) (*liveRun, error) {
	obj, st, err := decodeRun(*r)
	if err != nil {
		return nil, err
	}
	lr := &liveRun{obj: obj, st: st, e: e, project: r.Project}
	if err := fn(lr); err != nil {
		return nil, err
	}
	if lr.failed != nil {
		return nil, lr.failed
	}
	if r.Data, err = encodeData(lr.obj); err != nil {
		return nil, err
	}
	if r.State, err = encodeData(lr.st); err != nil {
		return nil, err
	}
	r.Status = string(lr.obj.Status)
	r.ExpiresAt = 0
	if lr.obj.ExpiresAt != nil {
		r.ExpiresAt = int64(*lr.obj.ExpiresAt)
	}
	if b := backupOf(ctx); b != nil && deletesBackup(lr.obj.Status) {
		lr.change.DeleteJobs = append(lr.change.DeleteJobs, b.id) // the job's last write (jobs.go)
	}
	return lr, nil
}

// write is update, with the change worked out ahead (pre, when not nil:
// seenruns.go) if the stored run is still the one it was worked out on.
func (e *engine) write(ctx context.Context, threadID, runID string, pre *precomputed, fn func(lr *liveRun) error) (gen.RunObject, int64, error) {
	var lr *liveRun
	out, evs, err := e.s.db.UpdateRun(ctx, projectOf(ctx), threadID, runID, func(r *store.Run) (store.RunChange, error) {
		if pre.holds(ctx, *r) {
			pre.set(r)
			lr = pre.lr
			e.seen.ahead.Add(1)
			return lr.change, nil
		}
		var err error
		if lr, err = e.apply(ctx, r, fn); err != nil {
			return store.RunChange{}, err
		}
		return lr.change, nil
	})
	if err != nil {
		e.seen.drop(runID)
		return gen.RunObject{}, 0, err
	}
	e.seen.put(out)
	if b := backupOf(ctx); b != nil && slices.Contains(lr.change.DeleteJobs, b.id) {
		b.mu.Lock()
		b.deleted = true
		b.mu.Unlock()
	}
	var started *startedRun
	if lr.slot != nil {
		started = &startedRun{round: lr.st.Round, obj: lr.obj, st: lr.st, stops: lr.slot.stops}
	}
	e.startInline(lr.change.Jobs, lr.slot, started)
	for _, n := range lr.names {
		e.s.metrics.runEvent(n)
	}
	var first int64
	if len(evs) > 0 {
		first = evs[0].Seq
		e.published(runID)
	}
	return lr.obj, first, nil
}

// publish adds an event with v as its data.
func (lr *liveRun) publish(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		lr.failed = fmt.Errorf("encode event %s: %w", name, err)
		return
	}
	lr.change.Events = append(lr.change.Events, store.Event{RunID: lr.obj.Id, Type: name, Data: data})
	lr.names = append(lr.names, name)
	if isFinalEvent(name) {
		lr.final = true
	}
}

// putStep records a new or changed step, in the state and in the store.
func (lr *liveRun) putStep(st gen.RunStepObject) {
	if i := slices.IndexFunc(lr.st.Steps, func(x gen.RunStepObject) bool { return x.Id == st.Id }); i >= 0 {
		lr.st.Steps[i] = st
	} else {
		lr.st.Steps = append(lr.st.Steps, st)
	}
	data, err := encodeData(st)
	if err != nil {
		lr.failed = err
		return
	}
	lr.change.Steps = slices.DeleteFunc(lr.change.Steps, func(x store.Step) bool { return x.ID == st.Id })
	lr.change.Steps = append(lr.change.Steps, store.Step{Project: lr.project, ID: st.Id, RunID: st.RunId,
		ThreadID: st.ThreadId, CreatedAt: int64(st.CreatedAt), Data: data})
}

// step returns a step of the run by id.
func (lr *liveRun) step(id string) (gen.RunStepObject, bool) {
	if id == "" {
		return gen.RunStepObject{}, false
	}
	for _, st := range lr.st.Steps {
		if st.Id == id {
			return st, true
		}
	}
	return gen.RunStepObject{}, false
}

// putMessage records a new or changed message of the run.
func (lr *liveRun) putMessage(m gen.MessageObject) {
	sm, err := storeMessage(lr.project, m)
	if err != nil {
		lr.failed = err
		return
	}
	lr.change.Messages = slices.DeleteFunc(lr.change.Messages, func(x store.Message) bool { return x.ID == m.Id })
	lr.change.Messages = append(lr.change.Messages, sm)
}

// enqueue adds a job.
func (lr *liveRun) enqueue(j store.Job) { lr.change.Jobs = append(lr.change.Jobs, j) }

// isFinalEvent reports whether an event ends a run's streams:
// requires_action and the end states.
func isFinalEvent(name string) bool {
	switch name {
	case "thread.run.requires_action", "thread.run.completed", "thread.run.failed",
		"thread.run.cancelled", "thread.run.expired", "thread.run.incomplete":
		return true
	}
	return false
}

// activeRun returns the run holding threadID's lock, after applying a due
// expiry.
func (e *engine) activeRun(ctx context.Context, threadID string) (runID string, ok bool) {
	r, err := e.s.db.ActiveRun(ctx, projectOf(ctx), threadID)
	if err != nil {
		return "", false
	}
	obj, _, err := decodeRun(r)
	if err != nil {
		return r.ID, true
	}
	if obj, _ = e.expireIfDue(ctx, obj); !isActive(obj.Status) {
		return "", false
	}
	return r.ID, true
}

// forgetThread stops the rounds of a deleted thread's runs running here and
// ends their open event streams (without a done event).
func (e *engine) forgetThread(threadID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, lr := range e.local {
		if lr.threadID == threadID {
			lr.cancel(errThreadGone)
		}
	}
	e.stops++
	// Streams find their run gone when they read again.
	for _, subs := range e.subs {
		for _, s := range subs {
			s.notify()
		}
	}
}

// close marks the engine closed (no new runs) and ends every open stream.
// Server.Close calls it before cancelling the rounds.
func (e *engine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed, e.ended = true, true
	for id, subs := range e.subs {
		for _, s := range subs {
			s.end()
		}
		delete(e.subs, id)
	}
}

func (e *engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// getRun returns a run of a thread (after applying a due expiry), or a 404.
func (e *engine) getRun(ctx context.Context, threadID, runID string) (gen.RunObject, error) {
	if !validID(threadID) || !validID(runID) {
		return gen.RunObject{}, errNotFound("run", runID)
	}
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), threadID, runID)
	if err != nil {
		return gen.RunObject{}, storeErr(err, "run", runID)
	}
	obj, _, err := decodeRun(r)
	if err != nil {
		return obj, err
	}
	return e.expireIfDue(ctx, obj)
}

// runDataReader is a store that reads a run's status and JSON without the
// rest of its row (the SQL stores: sqlstore.GetRunData).
type runDataReader interface {
	GetRunData(ctx context.Context, project, threadID, id string) (status string, data []byte, err error)
}

// getRunJSON is getRun for a reply: the run's JSON as stored (and a
// newline), without decoding it, when reading cannot change the run (a
// requires_action run may be due to expire: it is decoded and checked as
// getRun does).
func (e *engine) getRunJSON(ctx context.Context, threadID, runID string) ([]byte, error) {
	if !validID(threadID) || !validID(runID) {
		return nil, errNotFound("run", runID)
	}
	if rd, ok := e.s.db.(runDataReader); ok {
		status, data, err := rd.GetRunData(ctx, projectOf(ctx), threadID, runID)
		if err != nil {
			return nil, storeErr(err, "run", runID)
		}
		if status != string(gen.RunObjectStatusRequiresAction) {
			return append(data, '\n'), nil // data is the caller's (scanned for this call)
		}
	}
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), threadID, runID)
	if err != nil {
		return nil, storeErr(err, "run", runID)
	}
	if r.Status == string(gen.RunObjectStatusRequiresAction) {
		obj, _, err := decodeRun(r)
		if err != nil {
			return nil, err
		}
		if obj, err = e.expireIfDue(ctx, obj); err != nil {
			return nil, err
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	}
	out := make([]byte, len(r.Data)+1) // a copy: the store may share r.Data
	copy(out, r.Data)
	out[len(r.Data)] = '\n'
	return out, nil
}

// listRuns returns a page of a thread's runs.
func (e *engine) listRuns(ctx context.Context, threadID string, lp listParams) ([]gen.RunObject, bool, error) {
	pg, err := e.s.db.ListRuns(ctx, projectOf(ctx), threadID, storeList(lp))
	if err != nil {
		return nil, false, storeErr(err, "thread", threadID)
	}
	out := make([]gen.RunObject, 0, len(pg.Items))
	for _, r := range pg.Items {
		obj, _, err := decodeRun(r)
		if err != nil {
			return nil, false, err
		}
		if obj, err = e.expireIfDue(ctx, obj); err != nil {
			return nil, false, err
		}
		out = append(out, obj)
	}
	return out, pg.HasMore, nil
}

// listSteps returns a page of a run's steps.
func (e *engine) listSteps(ctx context.Context, threadID, runID string, lp listParams) ([]gen.RunStepObject, bool, error) {
	if _, err := e.getRun(ctx, threadID, runID); err != nil {
		return nil, false, err
	}
	pg, err := e.s.db.ListSteps(ctx, projectOf(ctx), runID, storeList(lp))
	if err != nil {
		return nil, false, storeErr(err, "run", runID)
	}
	steps, err := decodeAll[store.Step, gen.RunStepObject](pg.Items, func(s store.Step) []byte { return s.Data })
	return steps, pg.HasMore, err
}

// getStep returns one step, or a 404.
func (e *engine) getStep(ctx context.Context, threadID, runID, stepID string) (gen.RunStepObject, error) {
	if _, err := e.getRun(ctx, threadID, runID); err != nil {
		return gen.RunStepObject{}, err
	}
	notFound := &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
		Param: "step_id", Message: "No run step found with id '" + truncateForMessage(stepID) + "'."}
	if !validID(stepID) {
		return gen.RunStepObject{}, notFound
	}
	st, err := e.s.db.GetStep(ctx, projectOf(ctx), runID, stepID)
	if errors.Is(err, store.ErrNotFound) {
		return gen.RunStepObject{}, notFound
	}
	if err != nil {
		return gen.RunStepObject{}, storeErr(err, "step", stepID)
	}
	return decodeData[gen.RunStepObject](st.Data)
}

// modifyRun replaces a run's metadata (when md is not nil).
func (e *engine) modifyRun(ctx context.Context, threadID, runID string, md *gen.Metadata) (gen.RunObject, error) {
	if !validID(threadID) || !validID(runID) {
		return gen.RunObject{}, errNotFound("run", runID)
	}
	if md == nil {
		return e.getRun(ctx, threadID, runID)
	}
	obj, _, err := e.update(ctx, threadID, runID, func(lr *liveRun) error {
		lr.obj.Metadata = emptyMetadata(md)
		return nil
	})
	return obj, storeErr(err, "run", runID)
}

// create writes a new queued run (with the thread it starts, when th is
// not nil, and the messages it adds) and its first jobs in one
// transaction: in_progress already when its round starts at once
// (startnow.go). It returns the run as written. With stream, the
// subscriber sees every event of the run from thread.run.created on.
func (e *engine) create(ctx context.Context, r *runRec, th *store.Thread, msgs []store.Message, stream bool) (gen.RunObject, *subscriber, error) {
	if e.isClosed() {
		return gen.RunObject{}, nil, errShuttingDown()
	}
	if in := intentFrom(ctx); in != nil && in.ThreadID == r.obj.ThreadId {
		r.obj.Id = in.RunID // the id the request's Idempotency-Key claim names (idemshared.go)
	}
	st := runState{Assistant: r.asst, IncludeResults: r.includeResults}
	runData, err := encodeData(r.obj)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	stData, err := encodeData(st)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	var evs []store.Event
	for _, name := range []string{"thread.run.created", "thread.run.queued"} {
		evs = append(evs, store.Event{RunID: r.obj.Id, Type: name, Data: runData})
	}
	// The run starts at once: it is written in_progress, its events
	// thread.run.in_progress after the queued ones (startnow.go).
	run := r.obj
	slot := e.reserveStart()
	defer slot.release() // unless the round got it
	if slot != nil {
		lr := &liveRun{obj: run, e: e}
		e.startLocked(lr)
		if lr.failed != nil {
			return gen.RunObject{}, nil, lr.failed
		}
		run = lr.obj
		evs = append(evs, lr.change.Events...)
		if runData, err = encodeData(run); err != nil {
			return gen.RunObject{}, nil, err
		}
	}
	sr := store.Run{Project: projectOf(ctx), ID: run.Id, ThreadID: run.ThreadId, AssistantID: run.AssistantId,
		Status: string(run.Status), CreatedAt: int64(run.CreatedAt), Data: runData, State: stData}
	// The expiry job is enqueued when the run first waits for tool outputs
	// (requireActionLocked): only a run in requires_action expires by it.
	jobs := []store.Job{e.roundJob(sr.Project, r.obj.ThreadId, r.obj.Id, 0)}
	if r.obj.ExpiresAt != nil {
		sr.ExpiresAt = int64(*r.obj.ExpiresAt)
	}
	nr := store.NewRun{Thread: th, Messages: msgs, Run: sr, Events: evs, Jobs: jobs, Claim: runClaimFence(ctx, sr.ID)}
	// The round may start as soon as the run is stored (the memory queue
	// runs it from the commit, before CreateRun returns): the row it will
	// find is recorded before the write, then replaced by the row stored.
	stored := sr
	stored.Project, stored.LastSeq = store.ProjectOr(sr.Project), int64(len(evs))
	e.seen.put(stored)
	var created store.Run
	for attempt := 0; ; attempt++ {
		created, _, err = e.s.db.CreateRun(ctx, nr)
		if !errors.Is(err, store.ErrThreadLocked) || attempt > 0 {
			break
		}
		// The active run may be due to expire: apply it, and try once more.
		if _, active := e.activeRun(ctx, r.obj.ThreadId); active {
			break
		}
	}
	if err != nil {
		e.seen.drop(sr.ID)
	}
	if errors.Is(err, store.ErrThreadLocked) {
		other, _ := e.activeRun(ctx, r.obj.ThreadId)
		return gen.RunObject{}, nil, errBadRequest("", "Thread %s already has an active run %s.", r.obj.ThreadId, other)
	}
	if err != nil {
		return gen.RunObject{}, nil, storeErr(err, "thread", r.obj.ThreadId)
	}
	e.seen.put(created)
	var started *startedRun
	if slot != nil {
		started = &startedRun{round: 0, obj: run, st: st, stops: slot.stops}
		if th != nil {
			started.msgs = msgs
		}
	}
	e.startInline(nr.Jobs, slot, started)
	for _, ev := range evs {
		e.s.metrics.runEvent(ev.Type)
	}
	e.published(run.Id)
	var sub *subscriber
	if stream {
		sub = e.subscribe(run.Id, 0)
	}
	return run, sub, nil
}

// cancelRun moves a queued, in_progress or requires_action run to
// cancelling, stops its round when it runs here, and enqueues the job that
// marks it cancelled after the step delay.
func (e *engine) cancelRun(ctx context.Context, threadID, runID string) (gen.RunObject, error) {
	if !validID(threadID) || !validID(runID) {
		return gen.RunObject{}, errNotFound("run", runID)
	}
	if _, err := e.getRun(ctx, threadID, runID); err != nil { // applies a due expiry
		return gen.RunObject{}, err
	}
	obj, _, err := e.update(ctx, threadID, runID, func(lr *liveRun) error {
		switch lr.obj.Status {
		case gen.RunObjectStatusQueued, gen.RunObjectStatusInProgress, gen.RunObjectStatusRequiresAction:
		default:
			return errBadRequest("", "Cannot cancel run with status '%s'.", lr.obj.Status)
		}
		lr.obj.Status = gen.RunObjectStatusCancelling
		lr.publish("thread.run.cancelling", lr.obj)
		lr.enqueue(e.cancelJob(lr.project, threadID, runID))
		return nil
	})
	if err != nil {
		return gen.RunObject{}, storeErr(err, "run", runID)
	}
	e.mu.Lock()
	for k, lr := range e.local {
		if k.runID == runID {
			lr.cancel(errRunCancelled)
		}
	}
	e.stops++
	e.mu.Unlock()
	return obj, nil
}

// submitToolOutputs checks and applies the outputs of a requires_action run:
// every pending call must get exactly one output. The tool_calls step
// completes with the outputs, the run goes back to queued and its next
// round is enqueued; when that round starts at once, the run goes on to
// in_progress in the same write (startnow.go). With stream, the returned
// subscriber sees every event from the run's queued event on.
func (e *engine) submitToolOutputs(ctx context.Context, threadID, runID string, outs []gen.SubmitToolOutputsRunRequestToolOutput, stream bool) (gen.RunObject, *subscriber, error) {
	if !validID(threadID) || !validID(runID) {
		return gen.RunObject{}, nil, errNotFound("run", runID)
	}
	if _, err := e.getRun(ctx, threadID, runID); err != nil { // applies a due expiry
		return gen.RunObject{}, nil, err
	}
	slot := e.reserveStart()
	defer slot.release() // unless the round got it
	obj, first, err := e.update(ctx, threadID, runID, func(lr *liveRun) error {
		if lr.obj.Status != gen.RunObjectStatusRequiresAction {
			return errBadRequest("", "Runs in status \"%s\" do not accept tool outputs.", lr.obj.Status)
		}
		got, err := checkOutputs(lr, outs)
		if err != nil {
			return err
		}
		now := e.s.now()
		round := lr.st.Round
		calls := make([]gen.RunStepDetailsToolCall, 0, len(lr.st.PendingCalls))
		for _, c := range lr.st.PendingCalls {
			out := got[c.ID]
			lr.st.Outputs = append(lr.st.Outputs, ToolOutput{Call: c, Output: out, Round: round})
			calls = append(calls, functionCallDetail(c, &out))
		}
		lr.st.PendingCalls = nil
		lr.obj.Status = gen.RunObjectStatusQueued
		lr.obj.RequiredAction = nil
		lr.publish("thread.run.queued", lr.obj)
		if st, ok := lr.step(lr.st.PendingStep); ok {
			st.StepDetails = toolCallsDetails(calls)
			st.Status = gen.RunStepObjectStatusCompleted
			st.CompletedAt = &now
			st.Usage = stepUsage(lr.st.PendingUsage)
			lr.putStep(st)
			lr.publish("thread.run.step.completed", st)
		}
		lr.st.PendingStep = ""
		lr.st.Round++
		lr.enqueue(e.roundJob(lr.project, threadID, runID, lr.st.Round))
		if slot != nil {
			e.startLocked(lr)
			lr.slot = slot
		}
		return nil
	})
	if err != nil {
		return gen.RunObject{}, nil, storeErr(err, "run", runID)
	}
	var sub *subscriber
	if stream {
		sub = e.subscribe(runID, int(first-1))
	}
	return obj, sub, nil
}

// submitted reports whether the outputs of calls were applied to a run (a
// submitToolOutputs committed), and returns the run and the round the
// calls belong to.
func (e *engine) submitted(ctx context.Context, threadID, runID string, calls []string) (gen.RunObject, int, bool) {
	if !validID(threadID) || !validID(runID) || len(calls) == 0 {
		return gen.RunObject{}, 0, false
	}
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), threadID, runID)
	if err != nil {
		return gen.RunObject{}, 0, false
	}
	obj, st, err := decodeRun(r)
	if err != nil {
		return gen.RunObject{}, 0, false
	}
	round := -1
	for _, id := range calls {
		i := slices.IndexFunc(st.Outputs, func(o ToolOutput) bool { return o.Call.ID == id })
		if i < 0 || round >= 0 && st.Outputs[i].Round != round {
			return gen.RunObject{}, 0, false
		}
		round = st.Outputs[i].Round
	}
	if obj, err = e.expireIfDue(ctx, obj); err != nil {
		return gen.RunObject{}, 0, false
	}
	return obj, round, true
}

// submitFrom returns where the stream of the submitToolOutputs that
// answered round began: the id of the round's requires_action event (the
// submit's first event, thread.run.queued, follows it), or 0 when it is
// not found.
func (e *engine) submitFrom(ctx context.Context, runID string, round int) int {
	seen := 0
	var after int64
	for {
		evs, err := e.s.db.ListRunEvents(ctx, runID, after, 1000)
		if err != nil || len(evs) == 0 {
			return 0
		}
		for _, ev := range evs {
			if ev.Type != "thread.run.requires_action" {
				continue
			}
			if seen == round {
				return int(ev.Seq)
			}
			seen++
		}
		after = evs[len(evs)-1].Seq
	}
}

// checkOutputs checks submitted outputs against the pending calls.
func checkOutputs(lr *liveRun, outs []gen.SubmitToolOutputsRunRequestToolOutput) (map[string]string, error) {
	pending := map[string]int{}
	for i, c := range lr.st.PendingCalls {
		pending[c.ID] = i
	}
	got := make(map[string]string, len(outs))
	var gotIDs []string
	for i, o := range outs {
		if o.ToolCallId == nil || *o.ToolCallId == "" {
			return nil, errBadRequest("tool_outputs", "Missing required parameter: 'tool_outputs[%d].tool_call_id'.", i)
		}
		id := *o.ToolCallId
		if _, ok := pending[id]; !ok {
			return nil, errBadRequest("tool_outputs", "Invalid 'tool_outputs[%d].tool_call_id': no pending tool call with id '%s' on run %s.", i, truncateForMessage(id), lr.obj.Id)
		}
		if _, dup := got[id]; dup {
			return nil, errBadRequest("tool_outputs", "Invalid 'tool_outputs[%d].tool_call_id': duplicate output for tool call '%s'.", i, truncateForMessage(id))
		}
		out := ""
		if o.Output != nil {
			out = *o.Output
		}
		got[id] = out
		gotIDs = append(gotIDs, id)
	}
	if len(got) != len(pending) {
		want := make([]string, 0, len(lr.st.PendingCalls))
		for _, c := range lr.st.PendingCalls {
			want = append(want, c.ID)
		}
		return nil, errBadRequest("tool_outputs", "Expected tool outputs for call_ids %s, got %s.", quoteIDs(want), quoteIDs(gotIDs))
	}
	return got, nil
}

func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + truncateForMessage(id) + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// expireIfDue moves a requires_action run whose expires_at has passed to
// expired, and returns the run as it is now.
func (e *engine) expireIfDue(ctx context.Context, obj gen.RunObject) (gen.RunObject, error) {
	if obj.Status != gen.RunObjectStatusRequiresAction || obj.ExpiresAt == nil || e.s.now() < *obj.ExpiresAt {
		return obj, nil
	}
	got, _, err := e.update(withProject(e.bg(), projectOf(ctx)), obj.ThreadId, obj.Id, func(lr *liveRun) error {
		if lr.obj.Status != gen.RunObjectStatusRequiresAction || lr.obj.ExpiresAt == nil || e.s.now() < *lr.obj.ExpiresAt {
			return nil
		}
		e.expireLocked(lr)
		return nil
	})
	if err != nil {
		return obj, storeErr(err, "run", obj.Id)
	}
	return got, nil
}

// expireLocked ends a run as expired, with its in-progress steps.
func (e *engine) expireLocked(lr *liveRun) {
	now := e.s.now()
	for _, st := range lr.st.Steps {
		if st.Status == gen.RunStepObjectStatusInProgress {
			st.Status = gen.RunStepObjectStatusExpired
			st.ExpiredAt = &now
			lr.putStep(st)
			lr.publish("thread.run.step.expired", st)
		}
	}
	lr.st.PendingCalls, lr.st.PendingStep = nil, ""
	lr.obj.Status = gen.RunObjectStatusExpired
	lr.obj.RequiredAction = nil
	e.endLocked(lr, "thread.run.expired")
}

// endLocked sets the run's usage and publishes its final event.
func (e *engine) endLocked(lr *liveRun, event string) {
	u := lr.st.Used
	lr.obj.Usage = &gen.RunCompletionUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
	if lr.obj.Status != gen.RunObjectStatusExpired {
		lr.obj.ExpiresAt = nil
	}
	lr.st.MsgID, lr.st.MsgStepID = "", ""
	lr.publish(event, lr.obj)
}

// closeMessageLocked ends the round's in-progress message as incomplete
// with reason and publishes thread.message.incomplete. msg is the message
// as it was read before the write (see currentMessage): a store's update
// function must not call the store.
func (e *engine) closeMessageLocked(lr *liveRun, msg *gen.MessageObject, reason gen.MessageObjectIncompleteDetailsReason) {
	if lr.st.MsgID == "" || msg == nil || msg.Id != lr.st.MsgID || msg.Status != gen.MessageObjectStatusInProgress {
		return
	}
	m := *msg
	now := e.s.now()
	m.Status = gen.MessageObjectStatusIncomplete
	m.IncompleteAt = &now
	m.IncompleteDetails = &gen.MessageIncompleteDetails{Reason: reason}
	lr.putMessage(m)
	lr.publish("thread.message.incomplete", m)
}

// currentMessage reads the message of a run's current round, or nil.
func (e *engine) currentMessage(ctx context.Context, threadID, runID string) *gen.MessageObject {
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), threadID, runID)
	if err != nil {
		return nil
	}
	_, st, err := decodeRun(r)
	if err != nil || st.MsgID == "" {
		return nil
	}
	sm, err := e.s.db.GetMessage(ctx, projectOf(ctx), threadID, st.MsgID)
	if err != nil {
		return nil
	}
	m, err := decodeData[gen.MessageObject](sm.Data)
	if err != nil {
		return nil
	}
	return &m
}

// finishCancelLocked ends a cancelling run: in-progress steps are cancelled
// and the run is cancelled.
func (e *engine) finishCancelLocked(lr *liveRun) {
	now := e.s.now()
	for _, st := range lr.st.Steps {
		if st.Status == gen.RunStepObjectStatusInProgress {
			st.Status = gen.RunStepObjectStatusCancelled
			st.CancelledAt = &now
			lr.putStep(st)
			lr.publish("thread.run.step.cancelled", st)
		}
	}
	lr.st.PendingCalls, lr.st.PendingStep = nil, ""
	lr.obj.Status = gen.RunObjectStatusCancelled
	lr.obj.CancelledAt = &now
	lr.obj.RequiredAction = nil
	e.endLocked(lr, "thread.run.cancelled")
}

func errShuttingDown() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: "The server is shutting down."}
}

func stepUsage(u Usage) *gen.RunStepCompletionUsage {
	return &gen.RunStepCompletionUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.Total()}
}

// ---- the jobs ----

// pause waits the step delay; false when ctx ended first.
func (e *engine) pause(ctx context.Context) bool { return sleep(ctx, e.s.opts.StepDelay) }

// runRound is the round job: it moves a queued run to in_progress (after
// the step delay) and runs one model round, which ends the run or moves it
// to requires_action. A run found in_progress in the same round is a round
// whose worker died: it runs again, into the same message. A run in any
// other state, or in another round, is left alone (the job ran already).
func (e *engine) runRound(ctx context.Context, a roundArgs) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !e.addLocal(a, cancel) {
		return nil // the same round runs here already
	}
	defer e.dropLocal(a)
	if s := startedFor(ctx, a); s != nil && !e.stoppedSince(s.stops) {
		return e.roundOf(ctx, a, s.obj, s.st, s.msgs) // started by the write that enqueued it (startnow.go)
	}

	r, err := e.s.db.GetRun(ctx, projectOf(ctx), a.ThreadID, a.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the thread was deleted
	}
	if err != nil {
		return err
	}
	obj, st, err := decodeRun(r)
	if err != nil {
		return err
	}
	if st.Round != a.Round {
		return nil
	}
	switch obj.Status {
	case gen.RunObjectStatusQueued:
		if !e.pause(ctx) {
			return e.stopped(ctx)
		}
		var written *liveRun
		_, _, err := e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
			if lr.obj.Status != gen.RunObjectStatusQueued || lr.st.Round != a.Round {
				return errRunStale
			}
			e.startLocked(lr)
			written = lr
			return nil
		})
		if errors.Is(err, errRunStale) || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		obj, st = written.obj, written.st // the run as just stored: no need to read it again
	case gen.RunObjectStatusInProgress:
		// A round whose worker stopped: run it again.
	default:
		return nil
	}
	return e.roundOf(ctx, a, obj, st, nil)
}

// stopped is what a job returns when its context ended: nothing when the
// run was cancelled or its thread deleted, else the error (the job runs
// again: the server is closing).
func (e *engine) stopped(ctx context.Context) error {
	switch context.Cause(ctx) {
	case errRunCancelled, errThreadGone, errRunStale:
		return nil
	}
	return ctx.Err()
}

// addLocal records round a running here; false when it runs already.
func (e *engine) addLocal(a roundArgs, cancel context.CancelCauseFunc) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := localKey{runID: a.RunID, round: a.Round}
	if e.local[k] != nil {
		return false
	}
	e.local[k] = &localRound{threadID: a.ThreadID, cancel: cancel}
	return true
}

func (e *engine) dropLocal(a roundArgs) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.local, localKey{runID: a.RunID, round: a.Round})
}

// runCancel is the cancel job: after the step delay, a cancelling run's
// message is closed, its in-progress steps cancelled and the run cancelled.
func (e *engine) runCancel(ctx context.Context, a runArgs) error {
	if !e.pause(ctx) {
		return ctx.Err()
	}
	m := e.currentMessage(ctx, a.ThreadID, a.RunID)
	_, _, err := e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if lr.obj.Status != gen.RunObjectStatusCancelling {
			return errRunStale
		}
		e.closeMessageLocked(lr, m, gen.MessageObjectIncompleteDetailsReasonRunCancelled)
		e.finishCancelLocked(lr)
		return nil
	})
	if errors.Is(err, errRunStale) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// runExpire is the expiry job, scheduled at the run's expires_at: a run
// still waiting for tool outputs expires. (A round in progress expires by
// its own deadline.)
func (e *engine) runExpire(ctx context.Context, a runArgs) error {
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), a.ThreadID, a.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	obj, _, err := decodeRun(r)
	if err != nil {
		return err
	}
	if _, err := e.expireIfDue(ctx, obj); err != nil && !errors.Is(err, store.ErrNotFound) {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil
		}
		return err
	}
	return nil
}

// modelInput builds the input of the next model round. handed, when not
// nil, are the thread's messages as stored by the write that started the
// round (startedRun.msgs); otherwise they are read.
func (e *engine) modelInput(ctx context.Context, obj gen.RunObject, st runState, handed []store.Message) (*ModelInput, error) {
	in := &ModelInput{Assistant: st.Assistant, Run: obj, ToolOutputs: slices.Clone(st.Outputs), Used: st.Used}
	var msgs []gen.MessageObject
	var err error
	if handed != nil {
		msgs, err = decodeAll[store.Message, gen.MessageObject](handed, func(m store.Message) []byte { return m.Data })
	} else {
		msgs, err = e.s.threadMessages(ctx, obj.ThreadId)
	}
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
	in.FileSearch = e.s.fileSearchTool(ctx, in) // filesearch.go
	return in, nil
}

// inRound reports whether lr is still in round a, in progress: the only
// state a round may write in.
func inRound(lr *liveRun, a roundArgs) bool {
	return lr.obj.Status == gen.RunObjectStatusInProgress && lr.st.Round == a.Round
}

// round runs one model round of an in_progress run and applies its
// outcome.
func (e *engine) round(ctx context.Context, a roundArgs) (err error) {
	r, err := e.s.db.GetRun(ctx, projectOf(ctx), a.ThreadID, a.RunID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	obj, st, err := decodeRun(r)
	if err != nil {
		return err
	}
	e.seen.put(r)
	return e.roundOf(ctx, a, obj, st, nil)
}

// roundOf is round on the run as stored (obj, st), already read; handed
// are the thread's messages when the write that started the round gave
// them (modelInput).
func (e *engine) roundOf(ctx context.Context, a roundArgs, obj gen.RunObject, st runState, handed []store.Message) (err error) {
	defer e.recoverRun(a) // a panic fails the run (recover.go)
	in, err := e.modelInput(ctx, obj, st, handed)
	if err != nil {
		return nil // the thread is gone: the run went with it
	}
	left := time.Duration(0)
	if in.Run.ExpiresAt != nil {
		left = time.Duration(*in.Run.ExpiresAt-e.s.now()) * time.Second
	}
	mctx, cancel := context.WithTimeout(ctx, max(left, 0))
	defer cancel()

	w := newWriter(mctx, e, a, st)
	out, err := e.respond(mctx, a.RunID, in, w.emit) // a panic is a server_error (recover.go)
	// The model returned: the deltas not stored yet go in the round's next write.
	w.hold()
	if ctx.Err() != nil {
		return e.stopped(ctx)
	}
	if errors.Is(w.err, errWriterPanicked) {
		e.failPanicked(a)
		return nil
	}
	if err == nil && out == nil {
		err = &ModelError{Code: ModelErrServer, Message: "The model returned no output."}
	}
	if mctx.Err() != nil {
		// The run's time ran out, whatever the model returned: deltas
		// emitted after it were not stored, so its output is not used.
		return e.expireRunning(ctx, a, w)
	}
	if err != nil {
		return e.fail(ctx, a, w, err)
	}
	// file_search calls run here, then the model is asked again (filesearch.go).
	if searches(in, out) {
		w.flush() // the reply's deltas before the search's step, as the model made them
		if w.err != nil {
			return e.writeErr(ctx, w.err)
		}
	}
	rest, searched, err := e.runFileSearch(ctx, a, in, out)
	if err != nil {
		return e.writeErr(ctx, err)
	}
	if searched && len(rest) == 0 && !w.started() {
		return e.round(ctx, a)
	}
	out.ToolCalls = rest
	calls, err := e.checkCalls(in, out.ToolCalls)
	if err != nil {
		return e.fail(ctx, a, w, err)
	}
	text := out.Text
	if text == "" {
		text = w.text()
	} else if !w.started() {
		w.emitLater(text) // a model that does not stream: one delta, in the final write
	}
	if w.err != nil {
		return e.writeErr(ctx, w.err)
	}

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
	if w.flushBefore(e.s.opts.StepDelay) {
		return e.writeErr(ctx, w.err)
	}
	if !e.pause(ctx) {
		return e.stopped(ctx)
	}
	tail := w.tail()
	// Worked out before the write when it can be (seenruns.go): the
	// function changes nothing but lr.
	_, _, err = e.updateSeen(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !inRound(lr, a) || ctx.Err() != nil {
			return errRunStale
		}
		msg, err := w.applyLocked(lr, tail) // the deltas the drainer did not store
		if err != nil {
			return err
		}
		lr.st.Used = used
		now := e.s.now()
		if msg != nil {
			m := *msg
			m.Content = []gen.MessageContent{answerPart(in, text)} // citations: filesearch.go
			if reason != "" {
				m.Status = gen.MessageObjectStatusIncomplete
				m.IncompleteAt = &now
				m.IncompleteDetails = &gen.MessageIncompleteDetails{Reason: gen.MessageObjectIncompleteDetailsReasonMaxTokens}
				lr.putMessage(m)
				lr.publish("thread.message.incomplete", m)
			} else {
				m.Status = gen.MessageObjectStatusCompleted
				m.CompletedAt = &now
				lr.putMessage(m)
				lr.publish("thread.message.completed", m)
			}
			if st, ok := lr.step(lr.st.MsgStepID); ok {
				st.Status = gen.RunStepObjectStatusCompleted
				st.CompletedAt = &now
				st.Usage = stepUsage(msgUsage)
				lr.putStep(st)
				lr.publish("thread.run.step.completed", st)
			}
		}
		lr.st.MsgID, lr.st.MsgStepID = "", ""
		switch {
		case reason != "":
			lr.obj.Status = gen.RunObjectStatusIncomplete
			lr.obj.IncompleteDetails = &gen.RunIncompleteDetails{Reason: &reason}
			e.endLocked(lr, "thread.run.incomplete")
		case len(calls) > 0:
			e.requireActionLocked(lr, calls, out.Usage)
		default:
			lr.obj.Status = gen.RunObjectStatusCompleted
			lr.obj.CompletedAt = &now
			e.endLocked(lr, "thread.run.completed")
		}
		return nil
	})
	return e.writeErr(ctx, err)
}

// writeErr is what a round returns after a write failed: nothing when the
// run moved on (cancelled, deleted), else the error (the job runs again).
func (e *engine) writeErr(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, errRunStale) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if ctx.Err() != nil {
		return e.stopped(ctx)
	}
	return err
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
// calls as step deltas and moves the run to requires_action. The calls are
// handed out in this one write: a round run again after a crash before it
// makes new calls that nobody saw; after it, the run is no longer in
// progress and the round does not run again.
func (e *engine) requireActionLocked(lr *liveRun, calls []ToolCall, u Usage) {
	st := e.newStepLocked(lr, gen.RunStepObjectTypeToolCalls, toolCallsDetails([]gen.RunStepDetailsToolCall{}))
	full := make([]gen.RunStepDetailsToolCall, 0, len(calls))
	pending := make([]gen.RunToolCallObject, 0, len(calls))
	for i, c := range calls {
		id, name, empty := c.ID, c.Name, ""
		first := functionDelta{Index: i, ID: &id, Type: "function"}
		first.Function.Name, first.Function.Arguments = &name, &empty
		e.publishStepDeltaLocked(lr, st.Id, first)
		for _, frag := range fragments(c.Arguments, 16) {
			d := functionDelta{Index: i, Type: "function"}
			d.Function.Arguments = &frag
			e.publishStepDeltaLocked(lr, st.Id, d)
		}
		full = append(full, functionCallDetail(c, nil))
		pending = append(pending, gen.RunToolCallObject{Id: c.ID, Type: "function", Function: gen.RunToolCallFunction{Name: c.Name, Arguments: c.Arguments}})
	}
	st.StepDetails = toolCallsDetails(full)
	lr.putStep(st)
	lr.st.PendingStep = st.Id
	lr.st.PendingCalls = calls
	lr.st.PendingUsage = u
	lr.obj.Status = gen.RunObjectStatusRequiresAction
	lr.obj.RequiredAction = &gen.RunRequiredAction{Type: "submit_tool_outputs", SubmitToolOutputs: gen.RunSubmitToolOutputs{ToolCalls: pending}}
	lr.publish("thread.run.requires_action", lr.obj)
	if lr.st.Round == 0 && lr.obj.ExpiresAt != nil {
		// The first wait (rounds move on only by a submit): the job that
		// expires the run at expires_at if it still waits then. A run
		// that never waits needs none, and a queue without it is one job
		// per run lighter.
		lr.enqueue(e.expireJob(lr.project, lr.obj.ThreadId, lr.obj.Id, *lr.obj.ExpiresAt))
	}
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

func (e *engine) publishStepDeltaLocked(lr *liveRun, stepID string, call functionDelta) {
	b, err := json.Marshal(call)
	if err != nil {
		lr.failed = err
		return
	}
	var tc gen.RunStepDeltaStepDetailsToolCall
	if err := tc.UnmarshalJSON(b); err != nil {
		lr.failed = err
		return
	}
	var details gen.RunStepDeltaStepDetails
	if err := details.FromRunStepDeltaStepDetailsToolCallsObject(gen.RunStepDeltaStepDetailsToolCallsObject{
		Type: "tool_calls", ToolCalls: &[]gen.RunStepDeltaStepDetailsToolCall{tc},
	}); err != nil {
		lr.failed = err
		return
	}
	d := gen.RunStepDeltaObject{Id: stepID, Object: "thread.run.step.delta"}
	d.Delta.StepDetails = &details
	lr.publish("thread.run.step.delta", d)
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

// flushBefore stores the reply's queued deltas when the round waits a step
// delay (pause) before its final write: the reply is then seen, in
// progress, before the run ends, as it was before deltas were coalesced.
// With no delay they go in the final write. It reports whether the write
// failed (w.err; the round returns writeErr of it).
func (w *writer) flushBefore(pause time.Duration) bool {
	if pause <= 0 {
		return false
	}
	w.flush()
	return w.err != nil
}

// fail ends a run as failed with the model error's last_error.
func (e *engine) fail(ctx context.Context, a roundArgs, w *writer, err error) error {
	code, msg, known := modelFailure(err)
	if !known {
		e.s.log.Warn("model failed", "project", projectOr(a.Project), "thread_id", a.ThreadID, "run_id", a.RunID, "err", err.Error())
	}
	if w.flushBefore(e.s.opts.StepDelay) {
		return e.writeErr(ctx, w.err)
	}
	if !e.pause(ctx) {
		return e.stopped(ctx)
	}
	tail := w.tail()
	_, _, werr := e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !inRound(lr, a) || ctx.Err() != nil {
			return errRunStale
		}
		m, err := w.applyLocked(lr, tail) // the deltas emitted before the failure
		if err != nil {
			return err
		}
		e.closeMessageLocked(lr, m, gen.MessageObjectIncompleteDetailsReasonRunFailed)
		e.failLocked(lr, code, msg)
		return nil
	})
	return e.writeErr(ctx, werr)
}

// failLocked ends a run as failed, with its in-progress steps.
func (e *engine) failLocked(lr *liveRun, code gen.RunObjectLastErrorCode, msg string) {
	now := e.s.now()
	stepCode := gen.RunStepObjectLastErrorCodeServerError
	if code == gen.RunObjectLastErrorCodeRateLimitExceeded {
		stepCode = gen.RunStepObjectLastErrorCodeRateLimitExceeded
	}
	for _, st := range lr.st.Steps {
		if st.Status == gen.RunStepObjectStatusInProgress {
			st.Status = gen.RunStepObjectStatusFailed
			st.FailedAt = &now
			st.LastError = &gen.RunStepLastError{Code: stepCode, Message: msg}
			lr.putStep(st)
			lr.publish("thread.run.step.failed", st)
		}
	}
	lr.obj.Status = gen.RunObjectStatusFailed
	lr.obj.FailedAt = &now
	lr.obj.RequiredAction = nil
	lr.obj.LastError = &gen.RunLastError{Code: code, Message: msg}
	e.endLocked(lr, "thread.run.failed")
}

// expireRunning ends an in-progress run whose model round outlived
// expires_at. Its message keeps the text stored: the deltas still queued
// are dropped with the model's context.
func (e *engine) expireRunning(ctx context.Context, a roundArgs, w *writer) error {
	m := w.message()
	_, _, err := e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !inRound(lr, a) || ctx.Err() != nil {
			return errRunStale
		}
		e.closeMessageLocked(lr, m, gen.MessageObjectIncompleteDetailsReasonRunExpired)
		e.expireLocked(lr)
		return nil
	})
	return e.writeErr(ctx, err)
}

// newStepLocked adds an in_progress step and publishes its created and
// in_progress events.
func (e *engine) newStepLocked(lr *liveRun, typ gen.RunStepObjectType, details gen.RunStepDetails) gen.RunStepObject {
	st := gen.RunStepObject{
		Id:          newID(prefixStep),
		Object:      "thread.run.step",
		CreatedAt:   e.s.now(),
		AssistantId: lr.obj.AssistantId,
		ThreadId:    lr.obj.ThreadId,
		RunId:       lr.obj.Id,
		Type:        typ,
		Status:      gen.RunStepObjectStatusInProgress,
		StepDetails: details,
		Metadata:    &gen.Metadata{},
	}
	lr.putStep(st)
	lr.publish("thread.run.step.created", st)
	lr.publish("thread.run.step.in_progress", st)
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
	return gen.MessageContent{Type: gen.MessageContentTypeText,
		Text: gen.MessageContentText{Value: text, Annotations: []gen.MessageContentTextAnnotation{}}}
}

// writer receives the model's deltas for one round and stores each with
// its own thread.message.delta event, in order. The first write creates
// the message_creation step and the in-progress message (or, in a round
// run again after a crash, goes on in the message the dead attempt began,
// from an empty text). The model does not wait for the store: emit queues
// the delta and wakes the drainer, a goroutine that stores all the queued
// deltas in one write and again while more came in meanwhile. When the
// model returns, the round holds the writer (the drainer ends after its
// write in flight) and stores the deltas still queued with its own next
// write (see tail and applyLocked), so a fast reply costs one or two
// writes, not one per delta. The message stored at any moment holds the
// text of the delta events stored so far.
type writer struct {
	e   *engine
	a   roundArgs
	ctx context.Context // the round's model context; the drainer writes nothing after it ends

	mu       sync.Mutex
	idle     sync.Cond       // broadcast when the drainer ends (L is &mu)
	buf      strings.Builder // the text emitted
	pending  []string        // deltas emitted and not stored yet, oldest first
	draining bool            // the drainer runs
	msgID    string
	resumed  bool               // msgID is the message of a dead attempt, not read yet
	msg      *gen.MessageObject // the message as last written
	stopped  bool               // deltas are no longer queued, nor stored by the drainer
	err      error              // a write failed (other than the run moving on)
}

func newWriter(ctx context.Context, e *engine, a roundArgs, st runState) *writer {
	w := &writer{e: e, a: a, ctx: ctx, msgID: st.MsgID, resumed: st.MsgID != ""}
	w.idle.L = &w.mu
	return w
}

// emit queues a delta and wakes the drainer.
func (w *writer) emit(delta string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if delta == "" || w.stopped || w.ctx.Err() != nil {
		return
	}
	w.queueLocked(delta)
	if !w.draining {
		w.draining = true
		go w.drain()
	}
}

func (w *writer) queueLocked(delta string) {
	w.buf.WriteString(delta)
	w.pending = append(w.pending, delta)
}

// drain stores the queued deltas, all of them in each write, until none
// is left or the writer stops.
func (w *writer) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) > 0 && !w.stopped && w.ctx.Err() == nil {
		b := w.takeLocked()
		w.mu.Unlock()
		m, err := w.drainWrite(b)
		w.mu.Lock()
		w.wroteLocked(m, err)
	}
	w.draining = false
	w.idle.Broadcast()
}

// errWriterPanicked is the error of a drainer's write that panicked: the
// round then fails the run as a panic in the round would (failPanicked).
var errWriterPanicked = errors.New("run engine: a write of the reply's deltas panicked")

// drainWrite is the drainer's write of b, with a panic (the store, an
// event's encoding) logged and turned into errWriterPanicked: the drainer
// runs in a goroutine of its own, out of the round's recoverRun.
func (w *writer) drainWrite(b batch) (m *gen.MessageObject, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.e.s.logPanic("run round: writing the reply panicked", p, "run_id", w.a.RunID)
			m, err = nil, errWriterPanicked
		}
	}()
	w.load(&b)
	return w.write(b)
}

// batch is deltas stored in one write.
type batch struct {
	deltas []string
	text   string             // the whole text, up to the last delta
	base   *gen.MessageObject // the message to go on in; nil: a new one
	resume string             // the dead attempt's message, for load to read into base
}

// takeLocked takes the queued deltas.
func (w *writer) takeLocked() batch {
	b := batch{deltas: w.pending, text: w.buf.String(), base: w.msg}
	if len(b.deltas) == 0 {
		return b
	}
	w.pending = nil
	if b.base == nil && w.resumed {
		w.resumed = false
		b.resume = w.msgID
	}
	return b
}

// load reads the message of the dead attempt a batch goes on in (a round
// run again after a crash), before the write: the store is called neither
// under w.mu nor inside an update.
func (w *writer) load(b *batch) {
	if b.resume == "" {
		return
	}
	if sm, err := w.e.s.db.GetMessage(w.ctx, projectOf(w.ctx), w.a.ThreadID, b.resume); err == nil {
		if m, err := decodeData[gen.MessageObject](sm.Data); err == nil {
			b.base = &m
		}
	}
}

// write stores a batch in one write.
func (w *writer) write(b batch) (*gen.MessageObject, error) {
	var m *gen.MessageObject
	_, _, err := w.e.update(w.ctx, w.a.ThreadID, w.a.RunID, func(lr *liveRun) error {
		if !inRound(lr, w.a) || w.ctx.Err() != nil {
			return errRunStale
		}
		var err error
		m, err = w.applyLocked(lr, b)
		return err
	})
	return m, err
}

// wroteLocked records the outcome of a write: a failed write stops the
// writer, and drops the deltas queued.
func (w *writer) wroteLocked(m *gen.MessageObject, err error) {
	if err == nil {
		w.msg = m
		return
	}
	w.stopped, w.pending = true, nil
	if !errors.Is(err, errRunStale) && !errors.Is(err, store.ErrNotFound) && w.ctx.Err() == nil {
		w.err = err
	}
}

// applyLocked adds a batch to lr, inside an update: the round's message
// (created with its message_creation step when b.base is not the round's
// message) gets b.text, and each delta its event. It returns the message
// (b.base when the batch has no delta).
func (w *writer) applyLocked(lr *liveRun, b batch) (*gen.MessageObject, error) {
	if len(b.deltas) == 0 {
		return b.base, nil
	}
	e := w.e
	var m gen.MessageObject
	switch {
	case b.base != nil && b.base.Id == lr.st.MsgID:
		m = *b.base
	default:
		now := e.s.now()
		aid, rid := lr.obj.AssistantId, lr.obj.Id
		m = gen.MessageObject{
			Id: newID(prefixMessage), Object: "thread.message", CreatedAt: now, ThreadId: lr.obj.ThreadId,
			Status: gen.MessageObjectStatusInProgress, Role: gen.MessageObjectRoleAssistant,
			Content: []gen.MessageContent{}, AssistantId: &aid, RunId: &rid,
			Attachments: []gen.MessageAttachment{}, Metadata: &gen.Metadata{},
		}
		var d gen.RunStepDetails
		_ = d.FromRunStepDetailsMessageCreationObject(gen.RunStepDetailsMessageCreationObject{
			Type: "message_creation", MessageCreation: gen.RunStepDetailsMessageCreation{MessageId: m.Id}})
		st := e.newStepLocked(lr, gen.RunStepObjectTypeMessageCreation, d)
		lr.st.MsgID, lr.st.MsgStepID = m.Id, st.Id
		lr.putMessage(m)
		lr.publish("thread.message.created", m)
		lr.publish("thread.message.in_progress", m)
	}
	m.Content = []gen.MessageContent{textPart(b.text)}
	lr.putMessage(m)
	for _, delta := range b.deltas {
		v := delta
		c := gen.MessageDeltaContent{Index: 0, Type: gen.MessageDeltaContentTypeText,
			Text: &gen.MessageDeltaContentText{Value: &v}}
		lr.publish("thread.message.delta", gen.MessageDeltaObject{Id: m.Id, Object: "thread.message.delta",
			Delta: gen.MessageDelta{Content: &[]gen.MessageDeltaContent{c}}})
	}
	return &m, nil
}

// hold ends the drainer's work (the model returned, or the round ends):
// later deltas are dropped, and hold waits for the drainer's write in
// flight. The deltas still queued stay for tail or flush.
func (w *writer) hold() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for w.draining {
		w.idle.Wait()
	}
}

// tail returns, after hold, the deltas still queued, for the round's next
// write to store with applyLocked (nothing after a failed write).
func (w *writer) tail() batch {
	w.mu.Lock()
	b := w.takeLocked()
	w.mu.Unlock()
	w.load(&b)
	return b
}

// flush stores, after hold, the deltas still queued in a write of their
// own: before the round writes anything but its end (a file_search step),
// so that the events stay in the order the model made them.
func (w *writer) flush() {
	b := w.tail()
	if len(b.deltas) == 0 {
		return
	}
	m, err := w.write(b)
	w.mu.Lock()
	w.wroteLocked(m, err)
	w.mu.Unlock()
}

// emitLater queues the whole reply of a model that does not stream, after
// hold, as one delta for the round's final write.
func (w *writer) emitLater(text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.queueLocked(text)
	}
}

// started reports whether the model emitted text.
func (w *writer) started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Len() > 0
}

func (w *writer) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// message returns the round's message as last written, or nil.
func (w *writer) message() *gen.MessageObject {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.msg == nil {
		return nil
	}
	m := *w.msg
	return &m
}

// ---- event streams ----

// subscribe opens a stream on a run's events after from; it ends at the
// first final event (requires_action or an end state) after from.
func (e *engine) subscribe(runID string, from int) *subscriber {
	s := newSubscriber(e, runID, from)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		s.end()
		return s
	}
	e.subs[runID] = append(e.subs[runID], s)
	return s
}

// resubscribe opens a stream on runID's events again, for a retried
// request whose first stream began after event from: it gets the events
// with an id above max(from, last) and ends, as the first stream did, at
// the first final event after from. last is the resume point the client
// names (Last-Event-ID), or -1.
func (e *engine) resubscribe(runID string, from, last int) (*subscriber, error) {
	if _, err := e.s.db.ListRunEvents(e.bg(), runID, 0, 1); err != nil {
		return nil, storeErr(err, "run", runID)
	}
	s := e.subscribe(runID, from)
	after := max(from, last)
	if after > from {
		// Did the first stream end before the resume point?
		evs, err := e.s.db.ListRunEvents(e.bg(), runID, int64(from), after-from)
		if err != nil {
			e.unsubscribe(runID, s)
			return nil, storeErr(err, "run", runID)
		}
		for _, ev := range evs {
			if isFinalEvent(ev.Type) {
				s.mu.Lock()
				s.final, s.ended = true, true
				s.mu.Unlock()
				break
			}
		}
		s.cursor = int64(after)
	}
	return s, nil
}

// unsubscribe removes a stream whose client went away.
func (e *engine) unsubscribe(runID string, s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	subs := e.subs[runID]
	if i := slices.Index(subs, s); i >= 0 {
		subs = slices.Delete(subs, i, i+1)
	}
	if len(subs) == 0 {
		delete(e.subs, runID)
	} else {
		e.subs[runID] = subs
	}
	s.end()
}

// published wakes a run's streams after a write added events: here, and
// on the other replicas.
func (e *engine) published(runID string) {
	e.wake(runID)
	if e.pg != nil {
		e.pg.notify(runID)
	}
}

// wakeAll wakes every open stream.
func (e *engine) wakeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, subs := range e.subs {
		for _, s := range subs {
			s.notify()
		}
	}
}

// wake tells a run's open streams of this process that events were written.
func (e *engine) wake(runID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.subs[runID] {
		s.notify()
	}
}
