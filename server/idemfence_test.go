package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
)

// Keyed creates whose claimant is alive but loses its lease mid-create
// (idemshared.go, claimFence): replica A claims a keyed createThread,
// createMessage, createAssistant, createVectorStore or
// createVectorStoreFileBatch and stalls in its store's create (cut off
// from the store for longer than a lease: its renewals fail), after every
// check the handler makes and before the write. The client's retry on
// replica B takes the key over once A's lease lapsed, and makes the
// object. When A's write then goes on, it must make nothing (it is fenced
// on A's claim, which is B's now): A's client gets a 409 it retries
// (idempotency_key_in_flux), and there is one object for the key, B's,
// which A's retry is answered with. On memory, SQLite and PostgreSQL,
// sharing the fake clock of the upload tests (uploadClock).

// stallingReplica is replica A's view of the shared store: once armed,
// its next create of a thread, message, assistant, vector store or file
// batch (fenced or not) says so on entered and waits for gate before it
// writes; with diesAfter, A dies once that create has committed (nothing
// it writes of its claim reaches the store any more). Its renewals never
// reach the store.
type stallingReplica struct {
	killable
	armed, diesAfter atomic.Bool
	entered          chan struct{}
	gate             chan struct{}
}

// stalled runs create, after the gate when armed.
func (s *stallingReplica) stalled(create func() error) error {
	if !s.armed.Swap(false) {
		return create()
	}
	s.entered <- struct{}{}
	<-s.gate
	err := create()
	if err == nil && s.diesAfter.Load() {
		s.dead.Store(true)
		return errReplicaDead
	}
	return err
}

func (s *stallingReplica) RenewIdempotencyKey(context.Context, string, time.Time, time.Time) (bool, error) {
	return false, errReplicaDead
}

func (s *stallingReplica) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	return s.stalled(func() error { return s.Store.CreateThread(ctx, t, msgs) })
}

func (s *stallingReplica) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	return s.stalled(func() error { return s.Store.CreateThreadClaimed(ctx, t, msgs, c) })
}

func (s *stallingReplica) CreateMessage(ctx context.Context, m store.Message) error {
	return s.stalled(func() error { return s.Store.CreateMessage(ctx, m) })
}

func (s *stallingReplica) CreateMessageClaimed(ctx context.Context, m store.Message, c store.Claim) error {
	return s.stalled(func() error { return s.Store.CreateMessageClaimed(ctx, m, c) })
}

func (s *stallingReplica) CreateAssistant(ctx context.Context, a store.Assistant) error {
	return s.stalled(func() error { return s.Store.CreateAssistant(ctx, a) })
}

func (s *stallingReplica) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	return s.stalled(func() error { return s.Store.CreateAssistantClaimed(ctx, a, c) })
}

func (s *stallingReplica) CreateVectorStore(ctx context.Context, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.stalled(func() error { return s.Store.CreateVectorStore(ctx, vs, files, jobs...) })
}

func (s *stallingReplica) CreateVectorStoreClaimed(ctx context.Context, c store.Claim, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.stalled(func() error { return s.Store.CreateVectorStoreClaimed(ctx, c, vs, files, jobs...) })
}

func (s *stallingReplica) CreateFileBatch(ctx context.Context, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.stalled(func() error { return s.Store.CreateFileBatch(ctx, b, files, jobs...) })
}

func (s *stallingReplica) CreateFileBatchClaimed(ctx context.Context, c store.Claim, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.stalled(func() error { return s.Store.CreateFileBatchClaimed(ctx, c, b, files, jobs...) })
}

func (s *stallingReplica) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	var r store.Run
	var evs []store.Event
	err := s.stalled(func() (err error) {
		r, evs, err = s.Store.CreateRun(ctx, nr)
		return err
	})
	return r, evs, err
}

// postKeyed sends a keyed POST to srv; a request that is not answered
// within a few seconds (one waiting for a lease that lapses only when the
// test moves the clock) gives up and answers 0.
func postKeyed(t *testing.T, srv http.Handler, path, body, key string) (int, string, http.Header) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Body.Len() == 0 {
		return 0, "", w.Result().Header
	}
	return w.Code, w.Body.String(), w.Result().Header
}

// lostClaimReplicas is replica A (stalling: see stallingReplica) and
// replica B on one shared store, with a fake clock both read.
type lostClaimReplicas struct {
	clock      *uploadClock
	shared     *creations
	a          *stallingReplica
	srvA, srvB *server.Server
}

func newLostClaimReplicas(t *testing.T, st store.Store, stepDelay time.Duration) *lostClaimReplicas {
	r := &lostClaimReplicas{clock: &uploadClock{now: time.Unix(1_800_000_000, 0)}, shared: &creations{Store: st, ids: map[string][]string{}}}
	r.a = &stallingReplica{killable: killable{Store: r.shared}, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	now := func(o *server.Options) { o.Now = r.clock.Now }
	r.srvA = server.New(server.WithStore(r.a), server.WithStepDelay(stepDelay), now)
	r.srvB = server.New(server.WithStore(r.shared), server.WithStepDelay(stepDelay), now)
	t.Cleanup(func() { _ = r.srvA.Close(); _ = r.srvB.Close() })
	return r
}

// stallA sends the keyed POST to A and waits until A's create stalls
// (after every check the handler makes, before its write). The returned
// finish lets the write go on and returns A's reply; it runs at the end
// of the test too.
func (r *lostClaimReplicas) stallA(t *testing.T, path, body, key string) (finish func() (int, string)) {
	t.Helper()
	r.a.gate = make(chan struct{})
	gate := sync.OnceFunc(func() { close(r.a.gate) })
	r.a.armed.Store(true)
	var code int
	var out string
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, out, _ = postKeyed(t, r.srvA, path, body, key)
	}()
	finish = func() (int, string) {
		r.a.armed.Store(false)
		gate()
		<-done
		return code, out
	}
	t.Cleanup(func() { finish() })
	select {
	case <-r.a.entered: // A checked everything; its write waits
	case <-done:
		t.Fatalf("A answered without stalling: %d %s", code, out)
	}
	return finish
}

// TestKeyedCreateOfLostClaimNeverAppears: see above. Without the fence
// (claimFence returning nil), A's object is made next to B's and A
// answers 200.
func TestKeyedCreateOfLostClaimNeverAppears(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			r := newLostClaimReplicas(t, open(t), 0)
			fx := newIntentFixture(t, &leaseFixture{t: t}, r.srvB)

			for _, tc := range intentCases {
				t.Run(tc.kind, func(t *testing.T) {
					key := "lost-claim-" + tc.kind
					before := len(r.shared.of(tc.kind))
					finishA := r.stallA(t, tc.path(fx), tc.body(fx), key)

					// A's lease lapses; the retry on B takes the key over and
					// makes the object (A's claim names one that does not
					// exist).
					r.clock.advance(server.IdempotencyLease + time.Second)
					code, out, h := postKeyed(t, r.srvB, tc.path(fx), tc.body(fx), key)
					require.Equal(t, http.StatusOK, code, out)
					assert.Empty(t, h.Get("Idempotent-Replayed"), "B made the %s", tc.kind)
					var got struct{ ID string }
					require.NoError(t, json.Unmarshal([]byte(out), &got), out)

					// A's write goes on: it makes nothing.
					codeA, outA := finishA()
					assert.Equal(t, http.StatusConflict, codeA, outA)
					assert.Contains(t, outA, "idempotency_key_in_flux")
					assert.Equal(t, []string{got.ID}, r.shared.of(tc.kind)[before:], "one %s for the key: B's", tc.kind)
					w := httptest.NewRecorder()
					r.srvB.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.get(fx, got.ID), nil))
					assert.Equal(t, http.StatusOK, w.Code, w.Body.String())

					// A's client retries (on A): answered with B's object.
					code, again, h := postKeyed(t, r.srvA, tc.path(fx), tc.body(fx), key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.JSONEq(t, out, again)
					assert.Len(t, r.shared.of(tc.kind)[before:], 1, "the retry made a %s", tc.kind)
				})
			}
		})
	}
}

// TestKeyedRunOfLostClaimNeverAppears: as TestKeyedCreateOfLostClaimNeverAppears,
// for a keyed createRun and createThreadAndRun (runClaimFence): A stalls
// in its store's CreateRun past its lease, B takes the key over and makes
// its run; A's write then makes nothing (no run, no thread), A answers 409
// idempotency_key_in_flux, and A's retry gets B's run. Without the fence,
// A's run is made next to B's (createThreadAndRun), or A answers 400 for
// the thread's active run (createRun).
func TestKeyedRunOfLostClaimNeverAppears(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			r := newLostClaimReplicas(t, open(t), time.Hour)
			f := &leaseFixture{t: t}
			code, out, _ := f.post(r.srvB, "/v1/assistants", `{"model":"m"}`, "")
			require.Equal(t, http.StatusOK, code, out)
			var asst struct{ ID string }
			require.NoError(t, json.Unmarshal([]byte(out), &asst))
			code, out, _ = f.post(r.srvB, "/v1/threads", `{}`, "")
			require.Equal(t, http.StatusOK, code, out)
			var th struct{ ID string }
			require.NoError(t, json.Unmarshal([]byte(out), &th))

			for _, tc := range []struct{ name, path, body string }{
				{"createRun", "/v1/threads/" + th.ID + "/runs", `{"assistant_id":"` + asst.ID + `"}`},
				{"createThreadAndRun", "/v1/threads/runs", `{"assistant_id":"` + asst.ID + `","thread":{}}`},
			} {
				t.Run(tc.name, func(t *testing.T) {
					key := "lost-run-claim-" + tc.name
					runs, threads := len(r.shared.of("run")), len(r.shared.of("thread"))
					finishA := r.stallA(t, tc.path, tc.body, key)

					r.clock.advance(server.IdempotencyLease + time.Second)
					code, out, h := postKeyed(t, r.srvB, tc.path, tc.body, key)
					require.Equal(t, http.StatusOK, code, out)
					assert.Empty(t, h.Get("Idempotent-Replayed"), "B made the run")
					var madeRun struct {
						ID       string `json:"id"`
						ThreadID string `json:"thread_id"`
					}
					require.NoError(t, json.Unmarshal([]byte(out), &madeRun), out)
					made := madeRun.ID

					codeA, outA := finishA()
					assert.Equal(t, http.StatusConflict, codeA, outA)
					assert.Contains(t, outA, "idempotency_key_in_flux")
					assert.Equal(t, []string{made}, r.shared.of("run")[runs:], "one run for the key: B's")
					if tc.name == "createThreadAndRun" {
						assert.Equal(t, []string{madeRun.ThreadID}, r.shared.of("thread")[threads:], "one thread for the key: B's")
					}

					code, again, h := postKeyed(t, r.srvA, tc.path, tc.body, key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, made, runID(t, again))
				})
			}
		})
	}
}

// pollHeld is replica B's view of the shared store: once armed, the first
// read of a thread, message, assistant, vector store or file batch that
// finds none (a retry's look for the object a pending claim names, see
// answerIntent) says so on looked and returns only when gate is closed.
type pollHeld struct {
	store.Store
	armed  atomic.Bool
	looked chan struct{}
	gate   chan struct{}
}

func (s *pollHeld) held(err error) error {
	if errors.Is(err, store.ErrNotFound) && s.armed.Swap(false) {
		s.looked <- struct{}{}
		<-s.gate
	}
	return err
}

func (s *pollHeld) GetThread(ctx context.Context, project, id string) (store.Thread, error) {
	t, err := s.Store.GetThread(ctx, project, id)
	return t, s.held(err)
}

func (s *pollHeld) GetMessage(ctx context.Context, project, threadID, id string) (store.Message, error) {
	m, err := s.Store.GetMessage(ctx, project, threadID, id)
	return m, s.held(err)
}

func (s *pollHeld) GetAssistant(ctx context.Context, project, id string) (store.Assistant, error) {
	a, err := s.Store.GetAssistant(ctx, project, id)
	return a, s.held(err)
}

func (s *pollHeld) GetVectorStore(ctx context.Context, project, id string) (store.VectorStore, error) {
	v, err := s.Store.GetVectorStore(ctx, project, id)
	return v, s.held(err)
}

func (s *pollHeld) GetFileBatch(ctx context.Context, project, vectorStoreID, id string) (store.FileBatch, error) {
	b, err := s.Store.GetFileBatch(ctx, project, vectorStoreID, id)
	return b, s.held(err)
}

// TestKeyedCreateMadeWhileRetryPolls: the retry on B finds A's claim
// pending and polls it; B looks for the object A's claim names and finds
// none, and then, before B's next probe of the claim, A (alive, its lease
// lapsing) makes it and dies before recording its answer. B's probe finds
// the lease lapsed and takes the key over: B must answer with A's object
// (the probe keeps what A's claim named, for the claim B then makes over
// it: lapsedCreate), not make a second one. Without that (the probe
// dropped, as before), B makes a second object.
func TestKeyedCreateMadeWhileRetryPolls(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &uploadClock{now: time.Unix(1_800_000_000, 0)}
			shared := &creations{Store: open(t), ids: map[string][]string{}}
			a := &stallingReplica{killable: killable{Store: shared}, entered: make(chan struct{}, 1)}
			a.diesAfter.Store(true)
			b := &pollHeld{Store: shared, looked: make(chan struct{}, 1)}
			now := func(o *server.Options) { o.Now = clock.Now }
			srvA := server.New(server.WithStore(a), server.WithStepDelay(0), now)
			srvB := server.New(server.WithStore(b), server.WithStepDelay(0), now)
			t.Cleanup(func() { _ = srvA.Close(); _ = srvB.Close() })
			fx := newIntentFixture(t, &leaseFixture{t: t}, srvB)

			for _, tc := range intentCases {
				t.Run(tc.kind, func(t *testing.T) {
					key := "polled-" + tc.kind
					before := len(shared.of(tc.kind))
					a.gate, b.gate = make(chan struct{}), make(chan struct{})
					gateA := sync.OnceFunc(func() { close(a.gate) })
					gateB := sync.OnceFunc(func() { close(b.gate) })
					defer gateA()
					defer gateB()
					a.dead.Store(false)
					a.armed.Store(true)
					defer a.armed.Store(false)

					doneA := make(chan struct{})
					go func() {
						defer close(doneA)
						_, _, _ = postKeyed(t, srvA, tc.path(fx), tc.body(fx), key)
					}()
					defer func() { gateA(); <-doneA }()
					<-a.entered // A holds the claim; its write waits

					b.armed.Store(true)
					defer b.armed.Store(false)
					var code int
					var out string
					var h http.Header
					doneB := make(chan struct{})
					go func() {
						defer close(doneB)
						code, out, h = postKeyed(t, srvB, tc.path(fx), tc.body(fx), key)
					}()
					defer func() { gateB(); <-doneB }()
					select {
					case <-b.looked: // B found A's claim pending, and no object
					case <-doneB:
						t.Fatalf("B answered without polling: %d %s", code, out)
					}

					// A makes the object and dies; its lease lapses; B polls on.
					gateA()
					<-doneA
					require.True(t, a.dead.Load(), "A did not make the %s", tc.kind)
					made := shared.of(tc.kind)[before:]
					require.Len(t, made, 1)
					clock.advance(server.IdempotencyLease + time.Second)
					gateB()
					<-doneB

					require.Equal(t, http.StatusOK, code, out)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					var got struct{ ID string }
					require.NoError(t, json.Unmarshal([]byte(out), &got), out)
					assert.Equal(t, made[0], got.ID, "B answers with A's %s", tc.kind)
					assert.Equal(t, made, shared.of(tc.kind)[before:], "one %s for the key: A's", tc.kind)

					// B recorded the answer: a repeat, after any lease, replays it.
					clock.advance(server.IdempotencyLease + time.Second)
					code, again, h := postKeyed(t, srvB, tc.path(fx), tc.body(fx), key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.JSONEq(t, out, again)
					assert.Equal(t, made, shared.of(tc.kind)[before:], "one %s for the key: A's", tc.kind)
				})
			}
		})
	}
}
