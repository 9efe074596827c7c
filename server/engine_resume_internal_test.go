package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// manualQueue runs no job: the test calls the engine's work itself, as a
// queue would, to play a worker that dies and a job that runs again.
type manualQueue struct{}

func (manualQueue) Start(context.Context, func(context.Context, store.JobArgs) error) error {
	return nil
}
func (manualQueue) Stop(context.Context) error { return nil }

// resumeFixture is a server whose jobs the test runs, with a run created
// on a new thread.
type resumeFixture struct {
	s      *Server
	ctx    context.Context
	thread string
	run    string
}

func newResumeFixture(t *testing.T, model Model, tools []gen.AssistantTool, opts ...Option) *resumeFixture {
	t.Helper()
	s := New(append([]Option{WithStepDelay(0), WithModel(model), WithQueue(manualQueue{})}, opts...)...)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	ar, err := s.CreateAssistant(ctx, genserver.CreateAssistantRequestObject{Body: &gen.CreateAssistantRequest{Model: "m", Tools: &tools}})
	require.NoError(t, err)
	a := gen.AssistantObject(ar.(genserver.CreateAssistant200JSONResponse))
	th, err := s.insertThread(ctx, nil)
	require.NoError(t, err)
	rr, err := s.CreateRun(ctx, genserver.CreateRunRequestObject{ThreadId: th.Id, Body: &gen.CreateRunRequest{AssistantId: a.Id}})
	require.NoError(t, err)
	run := rr.(runReply).run
	return &resumeFixture{s: s, ctx: ctx, thread: th.Id, run: run.Id}
}

func (f *resumeFixture) round(t *testing.T) roundArgs {
	t.Helper()
	for _, j := range f.s.db.(memoryJobs).TakeJobs() {
		if a, ok := j.Args.(roundArgs); ok {
			return a
		}
	}
	t.Fatal("no round job was enqueued")
	return roundArgs{}
}

func (f *resumeFixture) get(t *testing.T) gen.RunObject {
	t.Helper()
	r, err := f.s.eng.getRun(f.ctx, f.thread, f.run)
	require.NoError(t, err)
	return r
}

func (f *resumeFixture) assistantMessages(t *testing.T) []gen.MessageObject {
	t.Helper()
	msgs, err := f.s.threadMessages(context.Background(), f.thread)
	require.NoError(t, err)
	var out []gen.MessageObject
	for _, m := range msgs {
		if m.Role == gen.MessageObjectRoleAssistant {
			out = append(out, m)
		}
	}
	return out
}

// A round whose worker dies after it began the assistant's message runs
// again (the job is delivered again) into the same message: the run ends
// with one message and one message_creation step, holding the second
// attempt's text only.
func TestRoundRunAgainDoesNotDuplicateTheMessage(t *testing.T) {
	var attempt atomic.Int32
	began := make(chan struct{})
	model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
		if attempt.Add(1) == 1 {
			emit("partial ")
			close(began)
			<-ctx.Done() // the worker dies mid-round
			return nil, ctx.Err()
		}
		emit("the ")
		emit("answer")
		return &ModelOutput{}, nil
	})
	f := newResumeFixture(t, model, nil)
	a := f.round(t)

	wctx, die := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.s.eng.work(wctx, a) }()
	select {
	case <-began:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt did not begin")
	}
	// The writer stores deltas beside the model, not in emit: the worker
	// dies once the partial message is stored.
	require.Eventually(t, func() bool { return len(f.assistantMessages(t)) == 1 }, 10*time.Second, time.Millisecond,
		"the partial message is stored")
	die()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt did not stop")
	}
	require.Equal(t, gen.RunObjectStatusInProgress, f.get(t).Status, "a dead worker leaves the run in progress")
	first := f.assistantMessages(t)
	require.Len(t, first, 1)
	assert.Equal(t, gen.MessageObjectStatusInProgress, first[0].Status)

	require.NoError(t, f.s.eng.work(f.ctx, a)) // the job, delivered again
	got := f.get(t)
	require.Equal(t, gen.RunObjectStatusCompleted, got.Status)
	msgs := f.assistantMessages(t)
	require.Len(t, msgs, 1, "the partial message of the dead attempt is not duplicated")
	assert.Equal(t, first[0].Id, msgs[0].Id)
	assert.Equal(t, "the answer", MessageText(msgs[0]))
	assert.Equal(t, gen.MessageObjectStatusCompleted, msgs[0].Status)
	steps, _, err := f.s.eng.listSteps(f.ctx, f.thread, f.run, listParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, steps, 1)
	assert.Equal(t, gen.RunStepObjectStatusCompleted, steps[0].Status)
	assert.Equal(t, int32(2), attempt.Load())
}

// A round job delivered twice (at least once delivery) hands the tool
// calls out once: the second delivery finds the run in requires_action and
// does nothing, so the pending calls keep their ids and the model is not
// asked again.
func TestRoundDeliveredTwiceHandsCallsOutOnce(t *testing.T) {
	var calls atomic.Int32
	model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
		calls.Add(1)
		return &ModelOutput{ToolCalls: []ToolCall{{Name: "lookup", Arguments: `{"q":1}`}}}, nil // no id: the engine picks one
	})
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "lookup"}}))
	f := newResumeFixture(t, model, []gen.AssistantTool{tool})
	a := f.round(t)

	require.NoError(t, f.s.eng.work(f.ctx, a))
	first := f.get(t)
	require.Equal(t, gen.RunObjectStatusRequiresAction, first.Status)
	require.NotNil(t, first.RequiredAction)
	ids := first.RequiredAction.SubmitToolOutputs.ToolCalls

	require.NoError(t, f.s.eng.work(f.ctx, a)) // delivered again
	again := f.get(t)
	require.Equal(t, gen.RunObjectStatusRequiresAction, again.Status)
	assert.Equal(t, ids, again.RequiredAction.SubmitToolOutputs.ToolCalls, "the same calls, with the same ids")
	assert.Equal(t, int32(1), calls.Load(), "the model was asked once")
	steps, _, err := f.s.eng.listSteps(f.ctx, f.thread, f.run, listParams{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, steps, 1)
}

// A late job of an earlier round (rescued after its process died, with the
// next round's job) may run in this process while the next round's job
// does: the next round still runs. Before the fix the rounds running here
// were keyed by run alone, so the next round's job took itself for a
// duplicate of the late one and ended without running: the run stayed
// queued for ever (seen in the PostgreSQL restart chaos run, where one
// worker fetched both rescued jobs at once).
func TestRoundRunsWhileALateJobOfAnEarlierRoundRunsHere(t *testing.T) {
	var asked atomic.Int32
	model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
		if asked.Add(1) == 1 {
			return &ModelOutput{ToolCalls: []ToolCall{{Name: "lookup", Arguments: `{"q":1}`}}}, nil
		}
		return &ModelOutput{Text: "done"}, nil
	})
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "lookup"}}))
	f := newResumeFixture(t, model, []gen.AssistantTool{tool})
	round0 := f.round(t)
	require.NoError(t, f.s.eng.work(f.ctx, round0))
	ra := f.get(t)
	require.Equal(t, gen.RunObjectStatusRequiresAction, ra.Status)
	callID := ra.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id
	out := "42"
	_, _, err := f.s.eng.submitToolOutputs(f.ctx, f.thread, f.run, []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &callID, Output: &out}}, false)
	require.NoError(t, err)
	round1 := f.round(t)
	require.Equal(t, round0.Round+1, round1.Round)

	// The late round 0 job is in flight here (as runRound registers it).
	_, stop := context.WithCancelCause(f.ctx)
	defer stop(nil)
	require.True(t, f.s.eng.addLocal(round0, stop))
	defer f.s.eng.dropLocal(round0)

	require.NoError(t, f.s.eng.work(f.ctx, round1))
	assert.Equal(t, gen.RunObjectStatusCompleted, f.get(t).Status, "the next round ran")
	assert.Equal(t, int32(2), asked.Load())
	// A true duplicate (the same round, here already) still does nothing.
	_, stop1 := context.WithCancelCause(f.ctx)
	defer stop1(nil)
	require.True(t, f.s.eng.addLocal(round1, stop1))
	assert.False(t, f.s.eng.addLocal(round1, stop1), "the same round is not registered twice")
	f.s.eng.dropLocal(round1)
}
