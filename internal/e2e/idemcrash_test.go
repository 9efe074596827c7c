package e2e

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/internal/servetest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// TestRetryAfterCrashBetweenRunAndAnswer: replica A creates a run for a
// createRun request with an Idempotency-Key and dies after the run is
// committed but before the answer is recorded under the key (the test
// makes the database hold every answer's write (holdAnswers) to stop A
// there, and River's job table locked until that is in place; the run's
// write, fenced on the claim, still reads the claim's row). The client's retry of the same
// request, on replica B, must answer with that run (the run is the
// request's work), not do the work again: that would fail with "thread
// already has an active run" (400), or make a second run.
//
// This is the window the chaos harness with restarts found (a polling
// conversation's createRun, retried after a kill, got the 400 after the
// dead claim's lease ran out).
func TestRetryAfterCrashBetweenRunAndAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	f := startKeyedRunOnA(t, ctx, "crash-between-")
	u, a, cb, th, key, body, jtx := f.u, f.a, f.cb, f.th, f.key, f.body, f.jtx

	// A waits on the job table: hold the answers, then let the run commit;
	// A then waits to record its answer.
	release := holdAnswers(t, ctx, u)
	require.NoError(t, jtx.Rollback(ctx))
	var seen string
	for deadline := time.Now().Add(20 * time.Second); seen == ""; time.Sleep(10 * time.Millisecond) {
		runs, err := assistants.Result[gen.ListRunsResponse](cb.ListRunsWithResponse(ctx, th.Id, nil))
		require.NoError(t, err)
		if len(runs.Data) > 0 {
			seen = runs.Data[0].Id
		}
		require.True(t, time.Now().Before(deadline), "the run was never committed")
	}
	require.NoError(t, a.Kill())
	release()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	var state string
	require.NoError(t, conn.QueryRow(ctx, `SELECT state FROM idempotency_keys WHERE `+idemKeyIs, idemKeyArg(key)).Scan(&state))
	require.Equal(t, "pending", state, "A recorded its answer before it was killed")

	// The client retries on B with the same key.
	r, err := cb.CreateRunWithResponse(ctx, th.Id, nil, body, withKey(key))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.StatusCode(), "the retry must be answered with the run A made: %s", r.Body)
	require.NotNil(t, r.JSON200)
	assert.Equal(t, seen, r.JSON200.Id, "the same run")
	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	assert.Equal(t, gen.RunObjectStatus("completed"), waitRun(t, pctx, cb, th.Id, seen).Status)
	runs, err := assistants.Result[gen.ListRunsResponse](cb.ListRunsWithResponse(ctx, th.Id, nil))
	require.NoError(t, err)
	var ids []string
	for _, r := range runs.Data {
		ids = append(ids, r.Id+" ("+string(r.Status)+")")
	}
	assert.Len(t, ids, 1, "no second run: %v", ids)
}

// TestRetryAfterCrashBetweenSubmitAndAnswer: the same window for
// submitToolOutputs. Replica A applies a keyed submit (the run leaves
// requires_action) and dies before recording the answer under the key.
// The client's retry on replica B must be answered with the run at once
// (the outputs are applied: the submit is done), not wait out the dead
// claim's lease (10 s; 2 minutes before claims had heartbeats) and then
// fail with "Runs in status ... do not accept tool outputs" (400).
func TestRetryAfterCrashBetweenSubmitAndAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	u := pgtest.Schema(t)
	serveArgs := append([]string{"--database-url", u, "--step-delay", "5ms"}, pickupFlags...)
	a, b := startServe(t, serveArgs...), startServe(t, serveArgs...)
	ca, cb := newClient(t, a.URL), newClient(t, b.URL)
	asst := createAssistant(t, ctx, ca, "tools")
	th := createThread(t, ctx, ca, `please get_weather {"city":"Paris"}`)
	run := createRun(t, ctx, ca, th.Id, asst.Id)
	waiting := waitRun(t, ctx, ca, th.Id, run.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), waiting.Status, "last error: %+v", waiting.LastError)
	calls := waiting.RequiredAction.SubmitToolOutputs.ToolCalls
	require.Len(t, calls, 1)
	key := "crash-between-submit-" + run.Id
	body := gen.SubmitToolOutputsRunRequest{ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{
		{ToolCallId: assistants.Ptr(calls[0].Id), Output: assistants.Ptr(`{"temp_c":21}`)}}}

	// River's job table locked: A's submit (which enqueues the next
	// round) waits after claiming the key.
	jtx := lockJobTable(t, ctx, u)

	go func() { // A's reply never comes: A is killed
		_, _ = ca.SubmitToolOutputsToRunWithResponse(ctx, th.Id, run.Id, body, withKey(key))
	}()

	// A has claimed the key: lock the claim, so A cannot record its answer.
	ktx := lockClaim(t, ctx, u, key)
	// Let the submit commit; A now waits to record its answer.
	require.NoError(t, jtx.Rollback(ctx))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cur, err := assistants.Result[gen.RunObject](cb.GetRunWithResponse(ctx, th.Id, run.Id))
		require.NoError(t, err)
		if cur.Status != "requires_action" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the submit was never committed")
	}
	require.NoError(t, a.Kill())
	require.NoError(t, ktx.Rollback(ctx))

	// The client retries on B with the same key; the claim's lease must
	// not be waited out (a retry that did would get a 400).
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	r, err := cb.SubmitToolOutputsToRunWithResponse(rctx, th.Id, run.Id, body, withKey(key))
	require.NoError(t, err, "the retry waited for the dead claim")
	require.Equal(t, http.StatusOK, r.StatusCode(), "the retry must be answered with the run: %s", r.Body)
	require.NotNil(t, r.JSON200)
	assert.Equal(t, run.Id, r.JSON200.Id)
	assert.Equal(t, "true", r.HTTPResponse.Header.Get("Idempotent-Replayed"))
	assert.NotEqual(t, gen.RunObjectStatus("requires_action"), r.JSON200.Status)

	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	done := waitRun(t, pctx, cb, th.Id, run.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), done.Status, "last error: %+v", done.LastError)
	assert.Equal(t, []string{`user: please get_weather {"city":"Paris"}`, `assistant: get_weather returned: {"temp_c":21}`}, messageTexts(t, ctx, cb, th.Id))
}

// TestRetryAfterClaimantKilledWithinLease: replica A claims a keyed
// createRun and is killed (SIGKILL) while the request is in flight, before
// the run is made (the test holds River's job table locked, so A's write
// of the run waits). While A lives, its heartbeat renews the claim's short
// lease (server.IdempotencyLease, 10 s) in the database. The client's
// retry on replica B finds the claim pending and no run: it must do the
// work itself as soon as the dead claim's lease lapses, within about one
// lease of the kill, not after the two minutes a claim used to hold a key
// without heartbeats. One run, made by B, which completes.
func TestRetryAfterClaimantKilledWithinLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	f := startKeyedRunOnA(t, ctx, "killed-claimant-")
	u, a, cb, th, key, body, jtx := f.u, f.a, f.cb, f.th, f.key, f.body, f.jtx

	// A's claim is in, and A's heartbeat renews its lease.
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	claim := func() (state string, expires time.Time, ok bool) {
		var micros int64
		err := conn.QueryRow(ctx, `SELECT state, expires_at FROM idempotency_keys WHERE `+idemKeyIs, idemKeyArg(key)).Scan(&state, &micros)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", time.Time{}, false
		}
		require.NoError(t, err)
		return state, time.UnixMicro(micros), true
	}
	var first time.Time
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) { // another process: no notification to wait on
		state, exp, ok := claim()
		if ok {
			require.Equal(t, "pending", state)
			first = exp
			break
		}
		require.True(t, time.Now().Before(deadline), "A never claimed the key")
	}
	for deadline := time.Now().Add(2 * claimLease); ; time.Sleep(50 * time.Millisecond) {
		state, exp, ok := claim()
		require.True(t, ok, "A's claim disappeared")
		require.Equal(t, "pending", state)
		if exp.After(first) {
			t.Logf("A renewed its claim's lease: %v later", exp.Sub(first))
			break
		}
		require.True(t, time.Now().Before(deadline), "A's claim was never renewed")
	}

	require.NoError(t, a.Kill())
	killed := time.Now()
	require.NoError(t, jtx.Rollback(ctx)) // A's transaction dies with its connection

	// The client retries on B with the same key.
	rctx, rcancel := context.WithTimeout(ctx, 2*claimLease+20*time.Second)
	defer rcancel()
	r, err := cb.CreateRunWithResponse(rctx, th.Id, nil, body, withKey(key))
	require.NoError(t, err, "the retry waited for the dead claim")
	waited := time.Since(killed)
	t.Logf("the retry on B was answered %v after A was killed (lease %v)", waited.Round(time.Millisecond), claimLease)
	require.Equal(t, http.StatusOK, r.StatusCode(), "the retry must do the work: %s", r.Body)
	require.NotNil(t, r.JSON200)
	assert.Empty(t, r.HTTPResponse.Header.Get("Idempotent-Replayed"), "B made the run")
	assert.Less(t, waited, claimLease+5*time.Second, "the dead claim lapses within one lease of the kill")

	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	assert.Equal(t, gen.RunObjectStatus("completed"), waitRun(t, pctx, cb, th.Id, r.JSON200.Id).Status)
	runs, err := assistants.Result[gen.ListRunsResponse](cb.ListRunsWithResponse(ctx, th.Id, nil))
	require.NoError(t, err)
	var ids []string
	for _, r := range runs.Data {
		ids = append(ids, r.Id+" ("+string(r.Status)+")")
	}
	assert.Len(t, ids, 1, "one run: %v", ids)
}

// claimLease is the lease of an Idempotency-Key's claim
// (server.IdempotencyLease), written out so that a longer lease fails
// TestRetryAfterClaimantKilledWithinLease.
const claimLease = 10 * time.Second

// idemKeyIs selects the record of an Idempotency-Key in the
// idempotency_keys table, with idemKeyArg(key) as $1. A record's key is
// the hex of the API key's scope, ":" and the Idempotency-Key: the
// comparison is exact on what follows the scope (LIKE would take the
// key's "_" and "%" for wildcards).
const idemKeyIs = `right(idem_key, length($1)) = $1`

// idemKeyArg is the argument of idemKeyIs for the Idempotency-Key key.
func idemKeyArg(key string) string { return ":" + key }

// TestIdemKeyLookupIsExact: idemKeyIs selects the record of one
// Idempotency-Key only, also when the key holds a "_" (as the keys of
// these tests do: they end with ids) and when another key ends like it.
func TestIdemKeyLookupIsExact(t *testing.T) {
	ctx := t.Context()
	u := pgtest.Schema(t)
	st, err := postgres.Open(ctx, u, quietPostgres)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	const key = "killed-claimant-thread_1"
	now := time.Now()
	for _, k := range []string{"00ff:" + key, "00ff:killed-claimant-threadX1", "00ff:x" + key, "00ee:" + key + "-2"} {
		_, claimed, err := st.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: k, ExpiresAt: now.Add(time.Minute)}, now)
		require.NoError(t, err)
		require.True(t, claimed, k)
	}
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	rows, err := conn.Query(ctx, `SELECT idem_key FROM idempotency_keys WHERE `+idemKeyIs, idemKeyArg(key))
	require.NoError(t, err)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"00ff:" + key}, keys)
}

// lockJobTable locks River's job table (SHARE mode) in a transaction the
// test rolls back to let the server's writes that enqueue jobs go on.
func lockJobTable(t *testing.T, ctx context.Context, u string) pgx.Tx {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	_, err = tx.Exec(ctx, "LOCK TABLE river_job IN SHARE MODE")
	require.NoError(t, err)
	return tx
}

// lockClaim waits (bounded) until a server has claimed the
// Idempotency-Key key (a pending record) and locks that record in a
// transaction, so its claimant cannot record its answer until the test
// rolls back.
func lockClaim(t *testing.T, ctx context.Context, u, key string) pgx.Tx {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) { // another process: no notification to wait on
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM idempotency_keys WHERE `+idemKeyIs+` FOR UPDATE`, idemKeyArg(key)).Scan(&state)
		if err == nil {
			require.Equal(t, "pending", state)
			return tx
		}
		require.ErrorIs(t, err, pgx.ErrNoRows)
		require.True(t, time.Now().Before(deadline), "A never claimed the key")
	}
}

// holdAnswers makes the database hold every write that records an answer
// under an Idempotency-Key (its record leaving the pending state) until
// the returned release is called: a trigger on the schema's
// idempotency_keys waits for an advisory lock the test holds. A
// claimant's other reads and writes of its record (renewals, the check of
// a fenced create) go on.
func holdAnswers(t *testing.T, ctx context.Context, u string) (release func()) {
	t.Helper()
	const lock = 7_300_417 // this test's advisory lock
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	_, err = conn.Exec(ctx, `CREATE FUNCTION hold_answers() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_advisory_xact_lock(`+strconv.Itoa(lock)+`); RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TRIGGER hold_answers BEFORE UPDATE ON idempotency_keys FOR EACH ROW
		WHEN (OLD.state = 'pending' AND NEW.state <> 'pending') EXECUTE FUNCTION hold_answers()`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock)
	require.NoError(t, err)
	return sync.OnceFunc(func() {
		_, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lock)
		assert.NoError(t, err)
	})
}

// keyedRunOnA is two serve replicas, A and B, on one PostgreSQL schema (u),
// with a thread, and A's keyed createRun (key, body) in flight: River's
// job table is locked (jtx), so A's write of the run waits after A has
// claimed the key. A's reply never comes back to the test.
type keyedRunOnA struct {
	u      string
	a, b   *servetest.Proc
	ca, cb *assistants.Client
	th     gen.ThreadObject
	key    string
	body   gen.CreateRunRequest
	jtx    pgx.Tx
}

func startKeyedRunOnA(t *testing.T, ctx context.Context, keyPrefix string) keyedRunOnA {
	t.Helper()
	f := keyedRunOnA{u: pgtest.Schema(t)}
	serveArgs := append([]string{"--database-url", f.u, "--step-delay", "5ms"}, pickupFlags...)
	f.a, f.b = startServe(t, serveArgs...), startServe(t, serveArgs...)
	f.ca, f.cb = newClient(t, f.a.URL), newClient(t, f.b.URL)
	asst := createAssistant(t, ctx, f.ca, "answered")
	f.th = createThread(t, ctx, f.ca, "hello")
	f.key = keyPrefix + f.th.Id
	f.body = gen.CreateRunRequest{AssistantId: asst.Id}
	f.jtx = lockJobTable(t, ctx, f.u)
	go func() { // A's reply never comes: A is killed
		_, _ = f.ca.CreateRunWithResponse(ctx, f.th.Id, nil, f.body, withKey(f.key))
	}()
	return f
}
