package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// Runs that start at once (startnow.go): the write that enqueues a round
// records the run in_progress when the round will start at once, and
// the round neither reads the run again nor writes in_progress.

// runIO is a store that counts the run writes (CreateRun, UpdateRun) and
// run reads (GetRun) that reach it.
type runIO struct {
	store.Store
	creates, updates, gets atomic.Int64
}

func (s *runIO) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	s.creates.Add(1)
	return s.Store.CreateRun(ctx, nr)
}

func (s *runIO) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	s.updates.Add(1)
	return s.Store.UpdateRun(ctx, project, threadID, id, fn)
}

func (s *runIO) GetRun(ctx context.Context, project, threadID, id string) (store.Run, error) {
	s.gets.Add(1)
	return s.Store.GetRun(ctx, project, threadID, id)
}

func (s *runIO) reset() { s.creates.Store(0); s.updates.Store(0); s.gets.Store(0) }

// slotsUsed is the number of the inline pool's slots held (tests only).
func (q *riverQueue[TTx]) slotsUsed() int { return len(q.slots) }

// startStores opens each store (PostgreSQL when reachable, see pgtest).
func startStores() map[string]func(t *testing.T) store.Store {
	quiet := slog.New(slog.DiscardHandler)
	return map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return memory.New() },
		"SQLite": func(t *testing.T) store.Store {
			st, err := sqlite.OpenDir(t.Context(), t.TempDir(), func(o *sqlite.Options) { o.Logger = quiet })
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
		"PostgreSQL": func(t *testing.T) store.Store {
			st, err := postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = quiet })
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// startFixture is a server on a counting view (io) of a store (raw),
// with the store's queue (q), an assistant with one function (lookup) and
// a model that calls it once when told to ("call lookup"), answers only
// when its context ends when told to ("wait"), and otherwise answers
// "done".
type startFixture struct {
	t    *testing.T
	ctx  context.Context
	raw  store.Store
	io   *runIO
	q    Queue
	s    *Server
	asst string
}

func newStartFixture(t *testing.T, raw store.Store, delay time.Duration, ro RiverOptions) *startFixture {
	t.Helper()
	return newStartFixtureOn(t, raw, nil, delay, ro)
}

// newStartFixtureOn is newStartFixture with the server's view of the
// store (under the counting view) made by view from raw; nil is raw.
func newStartFixtureOn(t *testing.T, raw store.Store, view func(store.Store) store.Store, delay time.Duration, ro RiverOptions) *startFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	quiet := slog.New(slog.DiscardHandler)
	q := defaultQueue(raw, ro, quiet) // on raw: the counting view hides what the queue needs of the store
	model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
		last := ""
		if len(in.Messages) > 0 {
			last = MessageText(in.Messages[len(in.Messages)-1])
		}
		switch {
		case last == "call lookup" && len(in.ToolOutputs) == 0:
			return &ModelOutput{ToolCalls: []ToolCall{{Name: "lookup", Arguments: "{}"}}}, nil
		case last == "wait":
			<-ctx.Done() // until the run is cancelled
			return nil, ctx.Err()
		}
		return &ModelOutput{Text: "done"}, nil
	})
	seen := raw
	if view != nil {
		seen = view(raw)
	}
	f := &startFixture{t: t, ctx: ctx, raw: raw, io: &runIO{Store: seen}, q: q}
	f.s = New(WithStore(f.io), WithQueue(q), WithStepDelay(delay), WithModel(model), WithLogger(quiet))
	t.Cleanup(func() { f.s.Close() })
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "lookup"}}))
	tools := []gen.AssistantTool{tool}
	ar, err := f.s.CreateAssistant(ctx, genserver.CreateAssistantRequestObject{Body: &gen.CreateAssistantRequest{Model: "m", Tools: &tools}})
	require.NoError(t, err)
	f.asst = ar.(genserver.CreateAssistant200JSONResponse).Id
	return f
}

// thread makes a thread with one user message.
func (f *startFixture) thread(text string) string {
	f.t.Helper()
	msgs := []gen.CreateMessageRequest{{Role: "user", Content: userText(f.t, text)}}
	th, err := f.s.insertThread(f.ctx, &gen.CreateThreadRequest{Messages: &msgs})
	require.NoError(f.t, err)
	return th.Id
}

func userText(t *testing.T, text string) gen.CreateMessageRequest_Content {
	var c gen.CreateMessageRequest_Content
	require.NoError(t, c.FromCreateMessageText(text))
	return c
}

// createRun starts a run on thread, as createRun does.
func (f *startFixture) createRun(thread string) (gen.RunObject, error) {
	rr, err := f.s.CreateRun(f.ctx, genserver.CreateRunRequestObject{ThreadId: thread, Body: &gen.CreateRunRequest{AssistantId: f.asst}})
	if err != nil {
		return gen.RunObject{}, err
	}
	return rr.(runReply).run, nil
}

// waitStatus waits until the run's status (read from the raw store: not
// counted) is want.
func (f *startFixture) waitStatus(thread, run string, want gen.RunObjectStatus) {
	f.t.Helper()
	for {
		r, err := f.raw.GetRun(f.ctx, store.DefaultProject, thread, run)
		require.NoError(f.t, err)
		if r.Status == string(want) {
			return
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatalf("run %s is %s, want %s", run, r.Status, want)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// runEvent is an event's name and the status of the run it carries ("" for
// events of steps and messages).
type runEvent struct{ name, status string }

func (f *startFixture) events(run string) []runEvent {
	f.t.Helper()
	evs, err := f.raw.ListRunEvents(f.ctx, run, 0, 1000)
	require.NoError(f.t, err)
	out := make([]runEvent, 0, len(evs))
	for _, ev := range evs {
		var v struct {
			Object string `json:"object"`
			Status string `json:"status"`
		}
		require.NoError(f.t, json.Unmarshal(ev.Data, &v))
		if v.Object != "thread.run" {
			v.Status = ""
		}
		out = append(out, runEvent{ev.Type, v.Status})
	}
	return out
}

// runEvents are the events of the run itself (thread.run.*), in order.
func runEvents(evs []runEvent) []runEvent {
	var out []runEvent
	for _, ev := range evs {
		if ev.status != "" {
			out = append(out, ev)
		}
	}
	return out
}

var (
	evCreated        = runEvent{"thread.run.created", "queued"}
	evQueued         = runEvent{"thread.run.queued", "queued"}
	evInProgress     = runEvent{"thread.run.in_progress", "in_progress"}
	evRequiresAction = runEvent{"thread.run.requires_action", "requires_action"}
	evCompleted      = runEvent{"thread.run.completed", "completed"}
)

// TestStartAtOnce: with no step delay and a worker free, createRun,
// createThreadAndRun and submitToolOutputs write the run in_progress
// (their answer says so), with the events created, queued, in_progress
// in that order and in_progress once; a tool-less run costs two writes
// (the create, the completion) and, on the SQL stores, no read of the run
// (the round is handed the run as committed; the memory queue's round
// reads it, in memory). Without the fast path the answer is queued and a
// run takes a third write (in_progress): the test fails.
func TestStartAtOnce(t *testing.T) {
	for name, open := range startStores() {
		t.Run(name, func(t *testing.T) {
			f := newStartFixture(t, open(t), 0, RiverOptions{})
			reads := int64(0)
			if name == "memory" {
				reads = 1 // the memory queue's round reads the run (in memory)
			}
			for _, tc := range []struct {
				name  string
				start func() gen.RunObject // starts the run, with the counters reset before the write that starts its round
				want  []runEvent           // the run's events
				// the writes (CreateRun, UpdateRun) and reads from that
				// write to the run's completion
				creates, updates, gets int64
			}{
				{name: "createRun", start: func() gen.RunObject {
					th := f.thread("hello")
					f.io.reset()
					r, err := f.createRun(th)
					require.NoError(t, err)
					return r
				}, want: []runEvent{evCreated, evQueued, evInProgress, evCompleted}, creates: 1, updates: 1, gets: reads},
				{name: "createThreadAndRun", start: func() gen.RunObject {
					f.io.reset()
					rr, err := f.s.CreateThreadAndRun(f.ctx, genserver.CreateThreadAndRunRequestObject{Body: &gen.CreateThreadAndRunRequest{AssistantId: f.asst}})
					require.NoError(t, err)
					return rr.(runReply).run
				}, want: []runEvent{evCreated, evQueued, evInProgress, evCompleted}, creates: 1, updates: 1, gets: reads},
				{name: "submitToolOutputs", start: func() gen.RunObject {
					th := f.thread("call lookup")
					r, err := f.createRun(th)
					require.NoError(t, err)
					assert.Equal(t, gen.RunObjectStatusInProgress, r.Status)
					f.waitStatus(th, r.Id, gen.RunObjectStatusRequiresAction)
					got, err := f.s.eng.getRun(f.ctx, th, r.Id)
					require.NoError(t, err)
					require.NotNil(t, got.RequiredAction)
					call := got.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id
					out := "42"
					f.io.reset()
					sr, err := f.s.SubmitToolOutputsToRun(f.ctx, genserver.SubmitToolOutputsToRunRequestObject{ThreadId: th, RunId: r.Id,
						Body: &gen.SubmitToolOutputsToRunJSONRequestBody{ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &call, Output: &out}}}})
					require.NoError(t, err)
					return sr.(runReply).run
				}, want: []runEvent{evCreated, evQueued, evInProgress, evRequiresAction, evQueued, evInProgress, evCompleted},
					creates: 0, updates: 2, gets: reads + 1}, // + submitToolOutputs' own check of the run (getRun)
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := tc.start()
					assert.Equal(t, gen.RunObjectStatusInProgress, r.Status, "the answer is the run as written")
					assert.NotNil(t, r.StartedAt)
					f.waitStatus(r.ThreadId, r.Id, gen.RunObjectStatusCompleted)
					assert.Equal(t, tc.want, runEvents(f.events(r.Id)))
					assert.Equal(t, tc.creates, f.io.creates.Load(), "CreateRun")
					assert.Equal(t, tc.updates, f.io.updates.Load(), "UpdateRun")
					assert.Equal(t, tc.gets, f.io.gets.Load(), "GetRun")
					if tc.name == "submitToolOutputs" {
						evs := f.events(r.Id)
						i := 0
						for evs[i] != evRequiresAction {
							i++
						}
						assert.Equal(t, []string{"thread.run.queued", "thread.run.step.completed", "thread.run.in_progress"},
							[]string{evs[i+1].name, evs[i+2].name, evs[i+3].name}, "the events a stream saw before")
					}
				})
			}
		})
	}
}

// TestStartLater: a run whose round may not start at once is born queued
// and moves to in_progress in a write of its round, as before: with a
// step delay (every store), or with the inline pool full (SQL stores: the
// backup runs on River). Either way it completes.
func TestStartLater(t *testing.T) {
	for name, open := range startStores() {
		for _, tc := range []struct {
			name  string
			delay time.Duration
			full  bool // the test holds the pool's one slot
			// the round's writes: in_progress, (with a step delay: the
			// message, stored before the delay), the completion
			updates int64
		}{
			{name: "step delay", delay: time.Millisecond, updates: 3},
			{name: "pool full", full: true, updates: 2},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				if tc.full && name == "memory" {
					t.Skip("the memory queue has no pool: it starts every job at once")
				}
				f := newStartFixture(t, open(t), tc.delay, RiverOptions{Workers: 1, PollInterval: 10 * time.Millisecond})
				if tc.full {
					r := f.q.(inlineRunner)
					require.True(t, r.reserve())
					defer r.unreserve()
				}
				th := f.thread("hello")
				f.io.reset()
				r, err := f.createRun(th)
				require.NoError(t, err)
				assert.Equal(t, gen.RunObjectStatusQueued, r.Status)
				assert.Nil(t, r.StartedAt)
				f.waitStatus(th, r.Id, gen.RunObjectStatusCompleted)
				assert.Equal(t, []runEvent{evCreated, evQueued, evInProgress, evCompleted}, runEvents(f.events(r.Id)))
				assert.Equal(t, tc.updates, f.io.updates.Load(), "UpdateRun")
			})
		}
	}
}

// TestStartSlotReleased: a create that fails (the thread is locked by a
// run waiting for tool outputs) gives back the inline slot it reserved:
// the pool holds as many slots as before. (Without the release, one slot
// leaks per failed create and the test fails.)
func TestStartSlotReleased(t *testing.T) {
	for name, open := range startStores() {
		if name == "memory" {
			continue // no pool
		}
		t.Run(name, func(t *testing.T) {
			f := newStartFixture(t, open(t), 0, RiverOptions{})
			q := f.q.(interface{ slotsUsed() int })
			th := f.thread("call lookup")
			r, err := f.createRun(th)
			require.NoError(t, err)
			f.waitStatus(th, r.Id, gen.RunObjectStatusRequiresAction)
			for q.slotsUsed() != 0 { // the round gives its slot back once it returned
				select {
				case <-f.ctx.Done():
					t.Fatalf("the round's slot is still held: %d", q.slotsUsed())
				case <-time.After(2 * time.Millisecond):
				}
			}
			for range 3 {
				_, err = f.createRun(th)
				var ae *apiError
				require.ErrorAs(t, err, &ae)
				assert.Contains(t, ae.Message, "already has an active run")
				assert.Equal(t, 0, q.slotsUsed(), "the failed create's slot is given back")
			}
		})
	}
}

// TestStartedRoundAfterCancel: a cancel in this process between the write
// that started a round and the round's start (not yet a local round for
// the cancel to stop) makes the round read the run, find it cancelling
// and leave it, instead of calling the model on the run handed to it.
// (Without the check of engine.stops, the model is called: the test
// fails.)
func TestStartedRoundAfterCancel(t *testing.T) {
	var calls atomic.Int32
	model := ModelFunc(func(context.Context, *ModelInput, func(string)) (*ModelOutput, error) {
		calls.Add(1)
		return &ModelOutput{Text: "late"}, nil
	})
	f := newResumeFixture(t, model, nil) // its queue runs no job: the test runs the round
	a := f.round(t)
	r, err := f.s.db.GetRun(f.ctx, store.DefaultProject, f.thread, f.run)
	require.NoError(t, err)
	obj, st, err := decodeRun(r)
	require.NoError(t, err)
	lr := &liveRun{obj: obj, st: st, e: f.s.eng}
	f.s.eng.startLocked(lr) // the run as a write that started its round would have written it
	f.s.eng.mu.Lock()
	started := &startedRun{round: a.Round, obj: lr.obj, st: lr.st, stops: f.s.eng.stops}
	f.s.eng.mu.Unlock()

	_, err = f.s.eng.cancelRun(f.ctx, f.thread, f.run)
	require.NoError(t, err)
	require.NoError(t, f.s.eng.work(withStarted(f.ctx, started), a))
	assert.Zero(t, calls.Load(), "the model is not called for a cancelled run")
	assert.Equal(t, gen.RunObjectStatusCancelling, f.get(t).Status)
}

// TestStartThenCancel: a run started at once and cancelled right after
// its create goes in_progress -> cancelling -> cancelled, its round
// stopped (the model's call ends), each event once and in order, and on
// the SQL stores no round or cancel job is left behind.
func TestStartThenCancel(t *testing.T) {
	for name, open := range startStores() {
		t.Run(name, func(t *testing.T) {
			f := newStartFixture(t, open(t), 0, RiverOptions{})
			th := f.thread("wait")
			r, err := f.createRun(th)
			require.NoError(t, err)
			require.Equal(t, gen.RunObjectStatusInProgress, r.Status)
			c, err := f.s.eng.cancelRun(f.ctx, th, r.Id)
			require.NoError(t, err)
			assert.Equal(t, gen.RunObjectStatusCancelling, c.Status)
			f.waitStatus(th, r.Id, gen.RunObjectStatusCancelled)
			assert.Equal(t, []runEvent{evCreated, evQueued, evInProgress,
				{"thread.run.cancelling", "cancelling"}, {"thread.run.cancelled", "cancelled"}}, runEvents(f.events(r.Id)))
			for { // the round ends (its model call stopped) and deletes its backup, as the cancel job does
				jobs, err := f.raw.ListJobs(f.ctx, "")
				require.NoError(t, err)
				left := 0
				for _, j := range jobs {
					if j.Kind == kindRunRound || j.Kind == kindRunCancel {
						left++
					}
				}
				f.s.eng.mu.Lock()
				running := len(f.s.eng.local)
				f.s.eng.mu.Unlock()
				if left == 0 && running == 0 {
					break
				}
				select {
				case <-f.ctx.Done():
					t.Fatalf("%d run jobs left, %d rounds running", left, running)
				case <-time.After(2 * time.Millisecond):
				}
			}
		})
	}
}

// deadReplica is the queue of a replica that dies right after a write
// that started a round committed: it promises an inline slot and never
// runs the job, whose backup (due backupDelay after the write) runs it
// elsewhere.
type deadReplica struct{ delay time.Duration }

func (deadReplica) Start(context.Context, func(context.Context, store.JobArgs) error) error {
	return nil
}
func (deadReplica) Stop(context.Context) error                               { return nil }
func (d deadReplica) backupDelay() time.Duration                             { return d.delay }
func (deadReplica) runInline(store.JobArgs, int64, time.Time)                {}
func (deadReplica) reserve() bool                                            { return true }
func (deadReplica) unreserve()                                               {}
func (deadReplica) runReserved(store.JobArgs, int64, time.Time, *startedRun) {}

// TestStartKilledAfterCommit: replica A writes a run in_progress (its
// round to start at once) and dies before the round runs; the round's
// backup, run by replica B's queue (River on the SQL stores, the memory
// queue on memory), finds the run in_progress in round 0 and runs the
// round: the run completes, with one thread.run.in_progress event.
func TestStartKilledAfterCommit(t *testing.T) {
	for name, open := range startStores() {
		t.Run(name, func(t *testing.T) {
			raw := open(t)
			b := newStartFixture(t, raw, 0, RiverOptions{PollInterval: 10 * time.Millisecond})
			a := New(WithStore(raw), WithQueue(deadReplica{delay: 50 * time.Millisecond}), WithStepDelay(0),
				WithLogger(slog.New(slog.DiscardHandler)))
			t.Cleanup(func() { a.Close() })
			th := b.thread("hello")
			rr, err := a.CreateRun(b.ctx, genserver.CreateRunRequestObject{ThreadId: th, Body: &gen.CreateRunRequest{AssistantId: b.asst}})
			require.NoError(t, err)
			r := rr.(runReply).run
			assert.Equal(t, gen.RunObjectStatusInProgress, r.Status)
			b.waitStatus(th, r.Id, gen.RunObjectStatusCompleted)
			assert.Equal(t, []runEvent{evCreated, evQueued, evInProgress, evCompleted}, runEvents(b.events(r.Id)))
		})
	}
}
