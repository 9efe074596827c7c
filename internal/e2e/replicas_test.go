package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/internal/pgtest"
)

// pickupWithin bounds how long a replica may take to pick up a run whose
// driver was killed, with pickupFlags: the rescue time (10s), the dead
// leader's lease (about 15s), River's rescuer period (30s), a retry's
// backoff and the test machine's load.
const pickupWithin = 90 * time.Second

// withKey sends an Idempotency-Key: the same streamed createRun sent to
// another replica with the same key is reattached to the run's events.
func withKey(key string) gen.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Idempotency-Key", key)
		return nil
	}
}

// streamed is what a stream delivered.
type streamed struct {
	names []string
	acc   *helpers.Accumulator
	err   error
}

// consume reads s to its end in a goroutine.
func consume(s *helpers.Stream) <-chan streamed {
	out := make(chan streamed, 1)
	go func() {
		var r streamed
		r.acc = &helpers.Accumulator{OnEvent: func(ev helpers.StreamEvent) { r.names = append(r.names, ev.Name) }}
		r.err = r.acc.Consume(s)
		out <- r
	}()
	return out
}

// TestTwoReplicasPostgres runs two serve processes on one PostgreSQL
// database. A run created (streamed) on A is followed on B: B's stream,
// reattached to the run by the request's Idempotency-Key, and B's polls see
// the events and states A drives. A is killed with SIGKILL mid-reply; B
// picks the run up within pickupWithin and completes it, with one
// assistant message. Then a run that waits in requires_action on A is
// answered on B after A is killed again, and a run whose creation A
// answered just before being killed is run by B.
func TestTwoReplicasPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	u := pgtest.Schema(t)
	serveArgs := append([]string{"--database-url", u, "--step-delay", "20ms"}, pickupFlags...)

	// Only A runs while the run starts, so A's worker takes its job.
	a := startServe(t, serveArgs...)
	ca := newClient(t, a.URL)
	asst := createAssistant(t, ctx, ca, "replicated")
	long := longText(150) // 150 words at 20ms: about 3s of streaming
	th := createThread(t, ctx, ca, long)
	body := gen.CreateRunRequest{AssistantId: asst.Id}
	key := "two-replicas-" + th.Id
	sa, err := helpers.StreamRun(ctx, ca, th.Id, body, withKey(key))
	require.NoError(t, err)
	var runID string
	for sa.Next() { // on A: until its reply streams
		ev := sa.Event()
		if ev.Run != nil {
			runID = ev.Run.Id
		}
		if ev.Name == helpers.EventMessageDelta {
			break
		}
	}
	require.NoError(t, sa.Err())
	require.NotEmpty(t, runID)

	b := startServe(t, serveArgs...)
	cb := newClient(t, b.URL)
	sb, err := helpers.StreamRun(ctx, cb, th.Id, body, withKey(key))
	require.NoError(t, err, "the same streamed request on B is reattached to the run")
	fromB := consume(sb)
	onB, err := assistants.Result[gen.RunObject](cb.GetRunWithResponse(ctx, th.Id, runID))
	require.NoError(t, err)
	require.Equal(t, gen.RunObjectStatus("in_progress"), onB.Status, "B sees the run A drives")

	require.NoError(t, a.Kill())
	_ = sa.Close()
	killed := time.Now()

	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	end := waitRun(t, pctx, cb, th.Id, runID)
	require.Equal(t, gen.RunObjectStatus("completed"), end.Status, "last error: %+v", end.LastError)
	t.Logf("the run completed on B %s after A was killed", time.Since(killed).Round(time.Millisecond))

	var got streamed
	select {
	case got = <-fromB:
	case <-pctx.Done():
		t.Fatal("B's stream did not end after the run completed")
	}
	require.NoError(t, got.err, "B's stream ends with done; events: %v", got.names)
	require.NotEmpty(t, got.names)
	assert.Equal(t, helpers.EventRunCompleted, got.names[len(got.names)-1], "events: %v", got.names)
	require.NotNil(t, got.acc.Run())
	assert.Equal(t, gen.RunObjectStatus("completed"), got.acc.Run().Status)
	assistantMsgs := 0
	for _, m := range got.acc.Messages() {
		if m.Role == gen.MessageObjectRoleAssistant {
			assistantMsgs++
			assert.Equal(t, "You said: "+long, helpers.MessageText(m), "the streamed message")
		}
	}
	assert.Equal(t, 1, assistantMsgs, "one assistant message in B's stream")
	assert.Equal(t, []string{"user: " + long, "assistant: You said: " + long}, messageTexts(t, ctx, cb, th.Id),
		"the dead attempt's partial message is not duplicated")
	steps, err := assistants.Result[gen.ListRunStepsResponse](cb.ListRunStepsWithResponse(ctx, th.Id, runID, nil))
	require.NoError(t, err)
	assert.Len(t, steps.Data, 1, "one message_creation step")

	// A tool call waiting on a killed replica is answered on the other.
	a = startServe(t, serveArgs...)
	ca = newClient(t, a.URL)
	tools := createThread(t, ctx, ca, `please get_weather {"city":"Rome"}`)
	r := createRun(t, ctx, ca, tools.Id, asst.Id)
	waiting := waitRun(t, ctx, ca, tools.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), waiting.Status)
	require.NoError(t, a.Kill())
	onB2 := waitRun(t, ctx, cb, tools.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), onB2.Status)
	assert.Equal(t, waiting.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id, onB2.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id,
		"the call keeps its id on the other replica")
	submit(t, ctx, cb, onB2, func(gen.RunToolCallObject) string { return `{"temp_c":25}` })
	fctx, fcancel := context.WithTimeout(ctx, pickupWithin)
	defer fcancel()
	fin := waitRun(t, fctx, cb, tools.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), fin.Status, "last error: %+v", fin.LastError)
	assert.Equal(t, []string{`user: please get_weather {"city":"Rome"}`, `assistant: get_weather returned: {"temp_c":25}`}, messageTexts(t, ctx, cb, tools.Id))

	// A run whose replica is killed right after answering its creation:
	// its job was committed with it, and B runs it.
	a = startServe(t, serveArgs...)
	ca = newClient(t, a.URL)
	quick := createThread(t, ctx, ca, "created just before the kill")
	rq := createRun(t, ctx, ca, quick.Id, asst.Id)
	require.NoError(t, a.Kill())
	qctx, qcancel := context.WithTimeout(ctx, pickupWithin)
	defer qcancel()
	endq := waitRun(t, qctx, cb, quick.Id, rq.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), endq.Status, "last error: %+v", endq.LastError)
	assert.Equal(t, []string{"user: created just before the kill", "assistant: You said: created just before the kill"}, messageTexts(t, ctx, cb, quick.Id))
}

// TestRunCommittedWithItsJobPostgres shows that a run is never committed
// without its job. The test holds a lock on River's job table (LOCK TABLE
// river_job IN SHARE MODE: reads go on, inserts wait) while replica A
// creates a run, watches the thread from replica B, kills A, and releases
// the lock. With the job enqueued in the transaction that creates the run,
// the creation waits on the lock with nothing committed: B never sees the
// run, and the thread takes a new run afterwards. With the job enqueued
// after the run's own commit, B sees the run, and with A dead nothing ever
// enqueues its job: the run stays queued and the test fails.
func TestRunCommittedWithItsJobPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	u := pgtest.Schema(t)
	serveArgs := append([]string{"--database-url", u, "--step-delay", "5ms"}, pickupFlags...)
	a, b := startServe(t, serveArgs...), startServe(t, serveArgs...)
	ca, cb := newClient(t, a.URL), newClient(t, b.URL)
	asst := createAssistant(t, ctx, ca, "atomic")
	th := createThread(t, ctx, ca, "hello")

	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	_, err = tx.Exec(ctx, "LOCK TABLE river_job IN SHARE MODE")
	require.NoError(t, err)

	created := make(chan *gen.RunObject, 1)
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		r, _ := assistants.Result[gen.RunObject](ca.CreateRunWithResponse(cctx, th.Id, nil, gen.CreateRunRequest{AssistantId: asst.Id}))
		created <- r
	}()
	// Watch the thread from B for 2s while A's creation waits on the lock.
	var seen *gen.RunObject
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && seen == nil; time.Sleep(20 * time.Millisecond) {
		runs, err := assistants.Result[gen.ListRunsResponse](cb.ListRunsWithResponse(ctx, th.Id, nil))
		require.NoError(t, err)
		if len(runs.Data) > 0 {
			seen = &runs.Data[0]
		}
	}
	select {
	case r := <-created:
		require.NotNil(t, r, "the creation failed while the job table was locked")
		t.Fatalf("run %s was created while River's job table was locked: its job was not written with it", r.Id)
	default:
	}
	require.NoError(t, a.Kill())
	require.NoError(t, tx.Rollback(ctx))

	if seen != nil {
		// The run was committed without its job; it must still end.
		t.Logf("B saw run %s (%s) committed while its job could not be written", seen.Id, seen.Status)
		pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
		defer pcancel()
		end := waitRun(t, pctx, cb, th.Id, seen.Id)
		require.Equal(t, gen.RunObjectStatus("completed"), end.Status)
	}
	// Nothing was committed: the thread is free and takes a run on B.
	r := createRun(t, ctx, cb, th.Id, asst.Id)
	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	assert.Equal(t, gen.RunObjectStatus("completed"), waitRun(t, pctx, cb, th.Id, r.Id).Status)
	assert.Equal(t, []string{"user: hello", "assistant: You said: hello"}, messageTexts(t, ctx, cb, th.Id))
}
