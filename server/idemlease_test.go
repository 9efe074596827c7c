package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// The heartbeat of an Idempotency-Key's claim (idemshared.go): two
// servers on one store, in a synctest bubble (time is fake: leases of
// fake seconds pass at once). Replica A claims a keyed createRun and is
// held in its work (the store's CreateRun, gated); the client's retry of
// the same request goes to replica B.

// runCounter is the store both replicas share: it counts the runs made.
type runCounter struct {
	store.Store
	runs atomic.Int64
}

func (s *runCounter) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	r, evs, err := s.Store.CreateRun(ctx, nr)
	if err == nil {
		s.runs.Add(1)
	}
	return r, evs, err
}

// errReplicaDead is what the store answers a replica that died.
var errReplicaDead = errors.New("test: this replica is dead")

// gatedReplica is replica A's view of the store: its CreateRun waits for
// the gate, and once the replica is killed, nothing it writes reaches the
// store any more (no renewal, no answer, no run), as when its process is
// gone.
type gatedReplica struct {
	killable
	entered chan struct{} // receives when CreateRun starts waiting
	gate    chan struct{} // closed to let CreateRun go on
	release func()        // closes the gate (once)
	cutOff  atomic.Bool   // its renewals fail (and reach nothing); its other writes go on
	failRun atomic.Bool   // CreateRun fails once the gate opens (the request answers 5xx)
	// dieAfterRun: the replica dies once its CreateRun has committed (its
	// answer under the key never reaches the store).
	dieAfterRun atomic.Bool
	// hang: every other renewal (the 1st, 3rd...) gets no reply: it returns
	// only when its ctx ends, having reached the store when hangLands.
	hang, hangLands atomic.Bool
	// stall, when not nil: a renewal says so on stalled, and once its ctx
	// ends it returns only when stall is closed.
	stall, stalled chan struct{}
	renewed        atomic.Int64 // renewals that reached the store
	renews         atomic.Int64 // renewals tried
}

func newGatedReplica(st store.Store) *gatedReplica {
	s := &gatedReplica{killable: killable{Store: st}, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	s.release = sync.OnceFunc(func() { close(s.gate) })
	return s
}

func (s *gatedReplica) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.gate
	if s.dead.Load() || s.failRun.Load() {
		return store.Run{}, nil, errReplicaDead
	}
	r, evs, err := s.Store.CreateRun(ctx, nr)
	if err == nil && s.dieAfterRun.Load() {
		s.dead.Store(true)
	}
	return r, evs, err
}

func (s *gatedReplica) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	n := s.renews.Add(1)
	if s.dead.Load() || s.cutOff.Load() {
		return false, errReplicaDead
	}
	if s.stall != nil {
		s.stalled <- struct{}{}
		<-ctx.Done()
		<-s.stall
		return false, ctx.Err()
	}
	hang := s.hang.Load() && n%2 == 1
	if hang && !s.hangLands.Load() {
		<-ctx.Done()
		return false, ctx.Err()
	}
	ok, err := s.Store.RenewIdempotencyKey(ctx, key, held, until)
	if ok {
		s.renewed.Add(1)
	}
	if hang {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return ok, err
}

// killable is a replica's view of a shared store whose writes of a claim's
// record fail once the replica is dead (dead set).
type killable struct {
	store.Store
	dead atomic.Bool
}

func (s *killable) CompleteIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, held time.Time) (bool, error) {
	if s.dead.Load() {
		return false, errReplicaDead
	}
	return s.Store.CompleteIdempotencyKey(ctx, rec, held)
}

func (s *killable) DeleteIdempotencyKey(ctx context.Context, key string, held time.Time) (bool, error) {
	if s.dead.Load() {
		return false, errReplicaDead
	}
	return s.Store.DeleteIdempotencyKey(ctx, key, held)
}

// leaseFixture is replica A (gated), replica B (gated too, its gate open
// unless the test closes it: see newLeaseFixture), and an assistant and a
// thread to make runs on.
type leaseFixture struct {
	t              *testing.T
	shared         *runCounter
	a, b           *gatedReplica
	srvA, srvB     *server.Server
	logsA          *syncBuffer // replica A's log (JSON lines)
	thread, create string      // the createRun request's path and body
}

// newLeaseFixture starts replicas A and B; B's CreateRun waits for its
// gate only with gateB.
func newLeaseFixture(t *testing.T, gateB ...bool) *leaseFixture {
	f := &leaseFixture{t: t, shared: &runCounter{Store: memory.New()}, logsA: &syncBuffer{}}
	f.a, f.b = newGatedReplica(f.shared), newGatedReplica(f.shared)
	if len(gateB) == 0 || !gateB[0] {
		f.b.release()
	}
	f.srvA = server.New(server.WithStore(f.a), server.WithStepDelay(0),
		server.WithLogger(slog.New(slog.NewJSONHandler(f.logsA, nil))))
	f.srvB = server.New(server.WithStore(f.b), server.WithStepDelay(0))
	t.Cleanup(func() {
		f.a.release()
		f.b.release()
		_ = f.srvA.Close()
		_ = f.srvB.Close()
	})
	code, out, _ := f.post(f.srvB, "/v1/assistants", `{"model":"m"}`, "")
	require.Equal(t, http.StatusOK, code, out)
	var asst gen.AssistantObject
	require.NoError(t, json.Unmarshal([]byte(out), &asst))
	code, out, _ = f.post(f.srvB, "/v1/threads", `{}`, "")
	require.Equal(t, http.StatusOK, code, out)
	var th gen.ThreadObject
	require.NoError(t, json.Unmarshal([]byte(out), &th))
	f.thread = "/v1/threads/" + th.Id + "/runs"
	f.create = `{"assistant_id":"` + asst.Id + `"}`
	return f
}

func (f *leaseFixture) post(h http.Handler, path, body, key string) (int, string, http.Header) {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Result().Header
}

// keyedReply is a request's answer and when it came.
type keyedReply struct {
	code    int
	body    string
	header  http.Header
	at      time.Time
	arrived chan struct{}
}

// goPost sends the keyed createRun to h in a goroutine of the bubble.
func (f *leaseFixture) goPost(wg *sync.WaitGroup, h http.Handler, key string) *keyedReply {
	rp := &keyedReply{arrived: make(chan struct{})}
	wg.Go(func() {
		rp.code, rp.body, rp.header = f.post(h, f.thread, f.create, key)
		rp.at = time.Now()
		close(rp.arrived)
	})
	return rp
}

func answered(rp *keyedReply) bool {
	select {
	case <-rp.arrived:
		return true
	default:
		return false
	}
}

func runID(t *testing.T, body string) string {
	t.Helper()
	var run gen.RunObject
	require.NoError(t, json.Unmarshal([]byte(body), &run), body)
	require.NotEmpty(t, run.Id, body)
	return run.Id
}

// TestIdempotencyClaimOfDeadReplicaLapsesWithinLease: replica A claims a
// keyed createRun, works on it for 30 s (three leases: it renews its
// claim), and dies before making the run. The client's retry on replica B
// waits while A is alive, and does the work itself within one lease (10
// s, plus a poll) of A's death, not the two minutes of the lease before
// heartbeats: one run, made by B.
//
// The durations are written out, not derived from IdempotencyLease, so
// that the test fails with a long lease (the retry waits until two minutes
// after the claim) as well as without heartbeats (the retry does the work
// while A is alive).
func TestIdempotencyClaimOfDeadReplicaLapsesWithinLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaseFixture(t)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer f.a.release() // before waiting for A's request, also when the test fails
		first := f.goPost(&wg, f.srvA, "dead-claimant")
		<-f.a.entered // A claimed the key and works
		retry := f.goPost(&wg, f.srvB, "dead-claimant")

		// A is alive for 30 s: its claim is renewed and the retry waits.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		assert.False(t, answered(retry), "the retry did the work while the claimant was alive: %s", retry.body)
		assert.Positive(t, f.a.renewed.Load(), "the claimant renewed its claim")
		assert.Zero(t, f.shared.runs.Load())

		// A dies: nothing it writes reaches the store any more.
		died := time.Now()
		f.a.dead.Store(true)
		f.a.release()
		<-first.arrived
		select {
		case <-retry.arrived:
		case <-time.After(3 * time.Minute):
			t.Fatal("the retry was never answered")
		}
		require.Equal(t, http.StatusOK, retry.code, retry.body)
		assert.Empty(t, retry.header.Get("Idempotent-Replayed"), "B did the work")
		waited := retry.at.Sub(died)
		t.Logf("the retry was answered %v after the claimant died (lease %v)", waited, server.IdempotencyLease)
		assert.LessOrEqual(t, waited, 10*time.Second+time.Second, "the dead claim lapses within one lease (10 s) and a poll")
		assert.Equal(t, int64(1), f.shared.runs.Load(), "one run")

		// A repeat now is replayed from B's answer.
		code, again, h := f.post(f.srvB, f.thread, f.create, "dead-claimant")
		require.Equal(t, http.StatusOK, code, again)
		assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
		assert.Equal(t, runID(t, retry.body), runID(t, again))
	})
}

// TestKeyedRunRetryAfterLeaseFindsTheRun: replica A commits a keyed
// createRun (or createThreadAndRun) and dies before recording the answer
// under the key. The client's retry comes after the dead claim's lease
// (and, with another key, after the replicas swept the expired records
// too): it claims the key over the lapsed claim and is answered with A's
// run (Idempotent-Replayed), not a second run, and repeats replay that.
func TestKeyedRunRetryAfterLeaseFindsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		path, body func(f *leaseFixture) string
	}{
		{"createRun", func(f *leaseFixture) string { return f.thread }, func(f *leaseFixture) string { return f.create }},
		{"createThreadAndRun", func(*leaseFixture) string { return "/v1/threads/runs" },
			func(f *leaseFixture) string { return strings.TrimSuffix(f.create, "}") + `,"thread":{}}` }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newLeaseFixture(t)
				f.a.release()
				for i, wait := range []time.Duration{server.IdempotencyLease + time.Second, 2*time.Minute + server.IdempotencyLease} {
					key := fmt.Sprintf("late-retry-%d", i)
					if i > 0 && tc.name == "createRun" {
						// The thread's run is still active on the dead replica's
						// store view: another thread for the next one.
						code, out, _ := f.post(f.srvB, "/v1/threads", `{}`, "")
						require.Equal(t, http.StatusOK, code, out)
						var th gen.ThreadObject
						require.NoError(t, json.Unmarshal([]byte(out), &th))
						f.thread = "/v1/threads/" + th.Id + "/runs"
					}
					f.a.dead.Store(false)
					f.a.dieAfterRun.Store(true)
					code, out, _ := f.post(f.srvA, tc.path(f), tc.body(f), key)
					require.True(t, f.a.dead.Load(), "A made no run: %d %s", code, out)
					require.Equal(t, http.StatusOK, code, out)
					made := runID(t, out)
					runs := f.shared.runs.Load()

					time.Sleep(wait)
					synctest.Wait()
					code, again, h := f.post(f.srvB, tc.path(f), tc.body(f), key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, made, runID(t, again), "A's run, %v after A died", wait)
					assert.Equal(t, runs, f.shared.runs.Load(), "the retry made a run")
					code, third, h := f.post(f.srvB, tc.path(f), tc.body(f), key)
					require.Equal(t, http.StatusOK, code, third)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, made, runID(t, third))
				}
			})
		})
	}
}

// TestKeyedStreamRetryAfterLeaseReattaches: A commits a keyed, streamed
// createThreadAndRun and dies before recording anything of its reply
// under the key. The client's retry after the lease is reattached to A's
// run, its stream opening with A's thread (thread.created) as the first
// stream did, and no second run is made.
func TestKeyedStreamRetryAfterLeaseReattaches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaseFixture(t)
		f.a.release()
		f.a.dieAfterRun.Store(true)
		path, body := "/v1/threads/runs", strings.TrimSuffix(f.create, "}")+`,"thread":{},"stream":true}`
		stream := func(srv *server.Server) (string, http.Header) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second) // the run waits on dead A: end the stream
			defer cancel()
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Idempotency-Key", "streamed")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			return w.Body.String(), w.Result().Header
		}
		first, _ := stream(f.srvA)
		require.True(t, f.a.dead.Load(), "A made no run: %s", first)
		runs := f.shared.runs.Load()
		time.Sleep(server.IdempotencyLease + time.Second)
		synctest.Wait()

		again, h := stream(f.srvB)
		assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
		assert.Equal(t, runs, f.shared.runs.Load(), "the retry made a run")
		event := func(s string) string { // the first event's name and data
			t.Helper()
			name, rest, _ := strings.Cut(strings.TrimPrefix(s, "event: "), "\n")
			data, _, _ := strings.Cut(strings.TrimPrefix(rest, "data: "), "\n")
			return name + " " + data
		}
		assert.True(t, strings.HasPrefix(again, "event: thread.created\n"), "the stream opens with the thread: %.200s", again)
		assert.Equal(t, event(first), event(again))
	})
}

// failsGetRun is a replica's view of the shared store whose next fails
// reads of a run fail (not with ErrNotFound).
type failsGetRun struct {
	store.Store
	fails atomic.Int64
}

func (s *failsGetRun) GetRun(ctx context.Context, project, threadID, id string) (store.Run, error) {
	if s.fails.Add(-1) >= 0 {
		return store.Run{}, errors.New("test: the database is unreachable")
	}
	return s.Store.GetRun(ctx, project, threadID, id)
}

// TestKeyedRunRetryAfterLeaseUnreadable: as
// TestKeyedRunRetryAfterLeaseFindsTheRun, but the retry that claims the
// key over A's lapsed claim (on replica C) cannot read A's run (the read
// fails): it must not do the work (the run may exist, and does), but answer
// 409 idempotency_key_in_flux, and put A's claim back, so that the
// client's next retry (on B) is answered with A's run. Without the first,
// C makes a second run; without the second, C's 409 drops the key and B
// makes one.
func TestKeyedRunRetryAfterLeaseUnreadable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaseFixture(t)
		f.a.release()
		f.a.dieAfterRun.Store(true)
		path, body := "/v1/threads/runs", strings.TrimSuffix(f.create, "}")+`,"thread":{}}`
		code, out, _ := f.post(f.srvA, path, body, "unreadable")
		require.True(t, f.a.dead.Load(), "A made no run: %d %s", code, out)
		made, runs := runID(t, out), f.shared.runs.Load()
		time.Sleep(server.IdempotencyLease + time.Second)
		synctest.Wait()

		c := &failsGetRun{Store: f.shared}
		c.fails.Store(1)
		srvC := server.New(server.WithStore(c), server.WithStepDelay(0))
		t.Cleanup(func() { _ = srvC.Close() })
		code, out, _ = f.post(srvC, path, body, "unreadable")
		assert.Equal(t, http.StatusConflict, code, out)
		assert.Contains(t, out, "idempotency_key_in_flux")
		assert.Equal(t, runs, f.shared.runs.Load(), "C made a run")

		code, out, h := f.post(f.srvB, path, body, "unreadable")
		require.Equal(t, http.StatusOK, code, out)
		assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
		assert.Equal(t, made, runID(t, out), "A's run")
		assert.Equal(t, runs, f.shared.runs.Load(), "B made a run")
	})
}

// TestIdempotencyClaimOfSlowReplicaIsRenewed: replica A claims a keyed
// createRun and works on it for five leases (50 s). Its heartbeat keeps the
// claim alive, so the client's retry on replica B keeps waiting and never
// makes a run of its own; once A answers, the retry is answered with A's
// run.
//
// Also when every other renewal A sends gets no reply (the store call
// returns only when its context ends), having reached the store or not:
// each renewal is given until the next tick, its outcome is then unknown,
// and the next renewal also matches the lease it may have written.
// (Without a deadline per renewal, the first one hangs until the request
// ends, the lease lapses and B does the work again.)
func TestIdempotencyClaimOfSlowReplicaIsRenewed(t *testing.T) {
	for _, tt := range []struct {
		name        string
		hang, lands bool
	}{
		{name: "store answers"},
		{name: "renewals hang, lost", hang: true},
		{name: "renewals hang, landed", hang: true, lands: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newLeaseFixture(t)
				var wg sync.WaitGroup
				defer wg.Wait()
				defer f.a.release() // before waiting for A's request, also when the test fails
				f.a.hang.Store(tt.hang)
				f.a.hangLands.Store(tt.lands)
				first := f.goPost(&wg, f.srvA, "slow-claimant")
				<-f.a.entered
				retry := f.goPost(&wg, f.srvB, "slow-claimant")

				for range 5 {
					time.Sleep(server.IdempotencyLease)
					synctest.Wait()
					require.False(t, answered(retry), "the retry did not wait for the live claimant: %d %s", retry.code, retry.body)
					require.Zero(t, f.shared.runs.Load(), "the retry made a run while the claimant was alive")
				}
				if tt.hang {
					assert.GreaterOrEqual(t, f.a.renews.Load(), int64(5*3-1), "a renewal every third of a lease")
				} else {
					assert.GreaterOrEqual(t, f.a.renewed.Load(), int64(5*3), "renewed every third of a lease")
				}

				f.a.release() // A's work ends
				<-first.arrived
				<-retry.arrived
				require.Equal(t, http.StatusOK, first.code, first.body)
				require.Equal(t, http.StatusOK, retry.code, retry.body)
				assert.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
				assert.Equal(t, runID(t, first.body), runID(t, retry.body), "the retry is answered with A's run")
				assert.Equal(t, int64(1), f.shared.runs.Load(), "the work was done once")

				// A's request ended: its heartbeat stopped (no renewal after the
				// answer), and the answer is kept for the TTL.
				n := f.a.renews.Load()
				time.Sleep(3 * server.IdempotencyLease)
				synctest.Wait()
				assert.Equal(t, n, f.a.renews.Load(), "renewals tried after the request ended")
				code, again, h := f.post(f.srvB, f.thread, f.create, "slow-claimant")
				require.Equal(t, http.StatusOK, code, again)
				assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
				assert.Equal(t, runID(t, first.body), runID(t, again))
			})
		})
	}
}

// TestIdempotencyCloseWaitsForHeartbeats: Close waits for the heartbeat
// of a claim still in flight, as for the server's other background
// goroutines: a renewal that is slow to return once the server closes
// holds Close until it returns.
func TestIdempotencyCloseWaitsForHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaseFixture(t)
		f.a.stall, f.a.stalled = make(chan struct{}), make(chan struct{}, 1)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer f.a.release()
		first := f.goPost(&wg, f.srvA, "close-waits")
		<-f.a.entered
		<-f.a.stalled // a renewal is in flight
		var closed atomic.Bool
		wg.Go(func() {
			_ = f.srvA.Close()
			closed.Store(true)
		})
		synctest.Wait()
		assert.False(t, closed.Load(), "Close returned while a heartbeat's renewal was in flight")
		close(f.a.stall)
		synctest.Wait()
		assert.True(t, closed.Load(), "Close returned once the heartbeat ended")
		f.a.release()
		<-first.arrived
	})
}

// TestIdempotencyHeartbeatsEndWithTheirRequests: a keyed request's claim
// heartbeat ends with the request (answered, refused, or streamed), not
// only when the server closes: no goroutine is left once the replies are
// in, while the server still runs.
func TestIdempotencyHeartbeatsEndWithTheirRequests(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	defer func() { _ = srv.Close() }()
	f := &leaseFixture{t: t}
	code, out, _ := f.post(srv, "/v1/assistants", `{"model":"m"}`, "")
	require.Equal(t, http.StatusOK, code, out)
	var asst gen.AssistantObject
	require.NoError(t, json.Unmarshal([]byte(out), &asst))
	// A streamed run first without a key: the engine's own goroutines
	// (queue workers) exist before the snapshot.
	code, out, _ = f.post(srv, "/v1/threads/runs", `{"assistant_id":"`+asst.Id+`","stream":true}`, "")
	require.Equal(t, http.StatusOK, code, out)
	ignore := goleak.IgnoreCurrent()

	code, out, _ = f.post(srv, "/v1/assistants", `{"model":"m"}`, "answered")
	require.Equal(t, http.StatusOK, code, out)
	code, out, h := f.post(srv, "/v1/assistants", `{"model":"m"}`, "answered")
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
	code, out, _ = f.post(srv, "/v1/assistants", `{"model":7}`, "refused")
	require.Equal(t, http.StatusBadRequest, code, out)
	code, out, _ = f.post(srv, "/v1/threads/runs", `{"assistant_id":"`+asst.Id+`","stream":true}`, "streamed")
	require.Equal(t, http.StatusOK, code, out)
	assert.Contains(t, out, "event: done")
	assert.NoError(t, goleak.Find(ignore))
}

// TestIdempotencyLostLeaseKeepsTakeoverClaim: replica A claims a keyed
// createThreadAndRun and is cut off from the store for its renewals (they
// fail) for more than a lease while it works; the client's retry on
// replica B takes the key over and works in turn. Then A finishes: its
// create is fenced on its claim, which is B's now, so A makes no run and
// its client gets 409 idempotency_key_in_flux (or A's own 5xx when its
// work fails first); A neither overwrites B's claim nor deletes it. So a
// third repeat (replica C) waits for B, and every later repeat, on any
// replica, gets B's answer: one run, B's. In the last case A's renewals
// reach the store again before it finishes: A learns that it lost its
// lease. A's warnings name its request and the key's hash, never the key.
func TestIdempotencyLostLeaseKeepsTakeoverClaim(t *testing.T) {
	for _, tt := range []struct {
		name     string
		aFails   bool // A's work fails (5xx): its claim is dropped, not answered
		aStatus  int
		reattach bool // A's renewals reach the store again once B holds the key
		warnings []string
	}{
		{name: "A answers", aStatus: http.StatusConflict,
			warnings: []string{"lease was not renewed"}},
		{name: "A fails", aFails: true, aStatus: http.StatusInternalServerError,
			warnings: []string{"lease was not renewed"}},
		{name: "A learns it lost", aStatus: http.StatusConflict, reattach: true,
			warnings: []string{"lease was not renewed", "lease was lost"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newLeaseFixture(t, true)
				// createThreadAndRun: A's run and B's are on threads of
				// their own (on one thread, A's run would lock B's out).
				f.thread = "/v1/threads/runs"
				srvC := server.New(server.WithStore(f.shared), server.WithStepDelay(0))
				t.Cleanup(func() { _ = srvC.Close() })
				var wg sync.WaitGroup
				defer wg.Wait()
				defer f.b.release()
				defer f.a.release()
				const key = "lost-lease"
				first := f.goPost(&wg, f.srvA, key)
				<-f.a.entered // A claimed the key and works
				f.a.cutOff.Store(true)
				f.a.failRun.Store(tt.aFails)
				retry := f.goPost(&wg, f.srvB, key)
				select {
				case <-f.b.entered: // B took the key over once A's lease ended
				case <-time.After(time.Minute):
					t.Fatal("B never took the key over")
				}
				synctest.Wait()
				assert.Positive(t, f.a.renews.Load(), "A tried to renew")
				assert.Zero(t, f.a.renewed.Load(), "no renewal of A reached the store")
				if tt.reattach {
					f.a.cutOff.Store(false)
					time.Sleep(server.IdempotencyLease / 2) // a renewal is tried
					synctest.Wait()
				}

				// A finishes while B works: A's client gets A's reply, which
				// is no run.
				f.a.release()
				<-first.arrived
				require.Equal(t, tt.aStatus, first.code, first.body)
				assert.Empty(t, first.header.Get("Idempotent-Replayed"))

				// B's claim is still there: a third repeat waits for B,
				// also past B's first lease (B renews it).
				third := f.goPost(&wg, srvC, key)
				time.Sleep(2 * server.IdempotencyLease)
				synctest.Wait()
				require.False(t, answered(third), "the third repeat did not wait for B's claim: %d %s", third.code, third.body)
				require.False(t, answered(retry))

				f.b.release()
				<-retry.arrived
				<-third.arrived
				require.Equal(t, http.StatusOK, retry.code, retry.body)
				assert.Empty(t, retry.header.Get("Idempotent-Replayed"), "B did the work")
				bRun := runID(t, retry.body)
				require.Equal(t, http.StatusOK, third.code, third.body)
				assert.Equal(t, "true", third.header.Get("Idempotent-Replayed"))
				assert.Equal(t, bRun, runID(t, third.body), "the third repeat gets B's answer")
				if !tt.aFails {
					assert.Contains(t, first.body, "idempotency_key_in_flux")
				}

				// B's answer is the one recorded: repeats on every replica,
				// A included, replay it.
				time.Sleep(server.IdempotencyLease)
				for _, srv := range []*server.Server{f.srvA, f.srvB, srvC} {
					code, again, h := f.post(srv, f.thread, f.create, key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, bRun, runID(t, again))
				}
				assert.Equal(t, int64(1), f.shared.runs.Load(), "runs made: B's")

				// A's warnings name its request and the key's hash.
				reqID := first.header.Get("X-Request-Id")
				require.NotEmpty(t, reqID)
				logs := f.logsA.String()
				assert.NotContains(t, logs, key)
				hashes := map[any]bool{}
				seen := map[string]bool{}
				for l := range strings.SplitSeq(logs, "\n") {
					var m map[string]any
					if json.Unmarshal([]byte(l), &m) != nil || m["level"] != "WARN" || !strings.HasPrefix(m["msg"].(string), "idempotency:") {
						continue
					}
					assert.Equal(t, reqID, m["request_id"], "%s", l)
					assert.NotEmpty(t, m["idem_key_hash"], "%s", l)
					hashes[m["idem_key_hash"]] = true
					for _, w := range tt.warnings {
						seen[w] = seen[w] || strings.Contains(l, w)
					}
				}
				assert.Len(t, hashes, 1, "one key")
				for _, w := range tt.warnings {
					assert.True(t, seen[w], "no warning %q in A's log:\n%s", w, logs)
				}
			})
		})
	}
}
