package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// claimedKind is a kind of object whose create can be fenced on an
// Idempotency-Key claim (store.Claim): create makes an object with id
// (of prefix), fenced on c when c is not nil, with jobs jobs; exists
// reads it back.
type claimedKind struct {
	name, prefix string
	jobs         int
	create       func(ctx context.Context, s store.Store, id string, c *store.Claim) error
	exists       func(ctx context.Context, s store.Store, id string) (bool, error)
}

// found turns a read's error into whether the object exists.
func found(err error) (bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// claimedKinds are the creates fenced with the same Claim as messages and
// files (testCreateMessageClaimed, testCreateFileClaimed): threads (with a
// first message), assistants, vector stores (with a file and a job), file
// batches (with a file and a job, on vs), and runs (with a job), on a
// thread made for each (createRun) or with their thread
// (createThreadAndRun).
func claimedKinds(vs string) []claimedKind {
	job := func(id string) store.Job { return store.Job{Args: testJob{RunID: "claimed", Step: id}} }
	var mu sync.Mutex
	threadOf := map[string]string{} // run id -> its thread
	run := func(ctx context.Context, s store.Store, id string, c *store.Claim, withThread bool) error {
		th := store.Thread{ID: newID("thread_"), CreatedAt: 1, Data: data("t")}
		nr := store.NewRun{Run: queuedRun(th.ID), Jobs: []store.Job{job(id)}, Claim: c,
			Messages: []store.Message{{ID: newID("msg_"), CreatedAt: 1, Data: data("m")}}}
		nr.Run.ID = id
		if withThread {
			nr.Thread = &th
		} else if err := s.CreateThread(ctx, th, nil); err != nil {
			return err
		}
		mu.Lock()
		threadOf[id] = th.ID
		mu.Unlock()
		_, _, err := s.CreateRun(ctx, nr)
		return err
	}
	runExists := func(ctx context.Context, s store.Store, id string) (bool, error) {
		mu.Lock()
		th := threadOf[id]
		mu.Unlock()
		_, err := s.GetRun(ctx, "", th, id)
		return found(err)
	}
	return []claimedKind{
		{name: "run", prefix: "run_", jobs: 1,
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				return run(ctx, s, id, c, false)
			},
			exists: runExists},
		{name: "thread_and_run", prefix: "run_", jobs: 1,
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				return run(ctx, s, id, c, true)
			},
			exists: runExists},
		{name: "thread", prefix: "thread_",
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				t := store.Thread{ID: id, CreatedAt: 1, Data: data("t")}
				msgs := []store.Message{{ID: newID("msg_"), CreatedAt: 1, Data: data("m")}}
				if c == nil {
					return s.CreateThread(ctx, t, msgs)
				}
				return s.CreateThreadClaimed(ctx, t, msgs, *c)
			},
			exists: func(ctx context.Context, s store.Store, id string) (bool, error) {
				_, err := s.GetThread(ctx, "", id)
				return found(err)
			}},
		{name: "assistant", prefix: "asst_",
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				a := store.Assistant{ID: id, CreatedAt: 1, Data: data("a")}
				if c == nil {
					return s.CreateAssistant(ctx, a)
				}
				return s.CreateAssistantClaimed(ctx, a, *c)
			},
			exists: func(ctx context.Context, s store.Store, id string) (bool, error) {
				_, err := s.GetAssistant(ctx, "", id)
				return found(err)
			}},
		{name: "vector_store", prefix: "vs_", jobs: 1,
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				v := store.VectorStore{ID: id, CreatedAt: 1, Data: data("v")}
				files := []store.VectorStoreFile{{FileID: newID("file-"), Status: "in_progress"}}
				if c == nil {
					return s.CreateVectorStore(ctx, v, files, job(id))
				}
				return s.CreateVectorStoreClaimed(ctx, *c, v, files, job(id))
			},
			exists: func(ctx context.Context, s store.Store, id string) (bool, error) {
				_, err := s.GetVectorStore(ctx, "", id)
				return found(err)
			}},
		{name: "file_batch", prefix: "vsfb_", jobs: 1,
			create: func(ctx context.Context, s store.Store, id string, c *store.Claim) error {
				b := store.FileBatch{ID: id, VectorStoreID: vs, CreatedAt: 1, Data: data("b")}
				files := []store.VectorStoreFile{{FileID: newID("file-"), Status: "in_progress"}}
				if c == nil {
					return s.CreateFileBatch(ctx, b, files, job(id))
				}
				return s.CreateFileBatchClaimed(ctx, *c, b, files, job(id))
			},
			exists: func(ctx context.Context, s store.Store, id string) (bool, error) {
				_, err := s.GetFileBatch(ctx, "", vs, id)
				return found(err)
			}},
	}
}

// jobsOf counts the test jobs (testJob) that a create of obj enqueued.
func jobsOf(t *testing.T, s store.Store, obj string) int {
	t.Helper()
	js, err := s.ListJobs(ctxT(t), testJob{}.Kind())
	must(t, err)
	n := 0
	for _, j := range js {
		var a testJob
		must(t, json.Unmarshal(j.Args, &a))
		if a.RunID == "claimed" && a.Step == obj {
			n++
		}
	}
	return n
}

// testCreateClaimed: a create fenced on a claim is written while the
// claim is the caller's (pending, with the body the caller wrote, also
// once its lease lapsed if nobody took the key over), and leaves the
// claim's body as it was (or sets it to Named); when the claim is not the
// caller's (another body: another request took the key over; answered;
// gone) nothing is written, not even its files or jobs, and the error is
// ErrClaimLost.
func testCreateClaimed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	vs := newID("vs_")
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs}, nil))
	now := time.Unix(1_800_000_000, 0)
	for _, k := range claimedKinds(vs) {
		t.Run(k.name, func(t *testing.T) {
			key := "cc-" + k.name
			claim := func(body string, at time.Time) store.IdempotencyRecord {
				t.Helper()
				old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, Fingerprint: []byte("fp"),
					Body: []byte(body), ExpiresAt: at.Add(10 * time.Second)}, at)
				must(t, err)
				if !claimed {
					t.Fatal("not claimed")
				}
				return old
			}
			body := func() string {
				t.Helper()
				old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, ExpiresAt: now.Add(time.Hour)}, now)
				must(t, err)
				if claimed {
					t.Fatal("the claim is gone")
				}
				return string(old.Body)
			}
			exists := func(id string) bool {
				t.Helper()
				ok, err := k.exists(ctx, s, id)
				must(t, err)
				return ok
			}
			create := func(c *store.Claim) (string, error) {
				id := newID(k.prefix)
				return id, k.create(ctx, s, id, c)
			}
			lost := func(c store.Claim) {
				t.Helper()
				id, err := create(&c)
				wantErr(t, err, store.ErrClaimLost)
				if exists(id) || jobsOf(t, s, id) != 0 {
					t.Fatalf("a %s for a claim not the caller's was written", k.name)
				}
			}

			claim(`{"id":"a"}`, now)
			lost(store.Claim{Key: key, Body: []byte(`{"id":"other"}`)})
			lost(store.Claim{Key: "cc-no-such-key", Body: []byte(`{"id":"a"}`)})
			if b := body(); b != `{"id":"a"}` {
				t.Fatalf("claim body %s after refused creates", b)
			}
			id, err := create(&store.Claim{Key: key, Body: []byte(`{"id":"a"}`)})
			must(t, err)
			if !exists(id) || jobsOf(t, s, id) != k.jobs || body() != `{"id":"a"}` {
				t.Fatalf("%s stored %v (jobs %d), claim body %s", k.name, exists(id), jobsOf(t, s, id), body())
			}
			// Named: the same write gives the claim its new body.
			id, err = create(&store.Claim{Key: key, Body: []byte(`{"id":"a"}`), Named: []byte(`{"id":"named"}`)})
			must(t, err)
			if !exists(id) || body() != `{"id":"named"}` {
				t.Fatalf("%s stored %v, claim body %s", k.name, exists(id), body())
			}
			lost(store.Claim{Key: key, Body: []byte(`{"id":"a"}`)}) // the claim's body is no longer a

			// A lapsed claim nobody took over is still the caller's; once
			// another request claims the key, it is not.
			later := now.Add(time.Minute)
			_, err = create(&store.Claim{Key: key, Body: []byte(`{"id":"named"}`)})
			must(t, err)
			if old := claim(`{"id":"b"}`, later); string(old.Body) != `{"id":"named"}` {
				t.Fatalf("the takeover replaced %s", old.Body)
			}
			lost(store.Claim{Key: key, Body: []byte(`{"id":"named"}`)})
			// Answered: no longer a claim.
			mustCAS(t, "complete")(s.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, State: store.IdemDone,
				Status: 200, Body: []byte(`{"id":"b"}`), ExpiresAt: later.Add(time.Hour)}, later.Add(10*time.Second)))
			lost(store.Claim{Key: key, Body: []byte(`{"id":"b"}`)})

			// Unfenced creates are unchanged.
			id, err = create(nil)
			must(t, err)
			if !exists(id) {
				t.Fatalf("unfenced %s not stored", k.name)
			}
		})
	}
}

// testCreateRunClaimedLockedThread: a run fenced on a lost claim, on a
// thread that has an active run, fails with ErrClaimLost (its caller's
// answer is the run of the request that took the key over), not
// ErrThreadLocked; with its claim still the caller's, ErrThreadLocked.
func testCreateRunClaimedLockedThread(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	th := newThread(t, s)
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: queuedRun(th.ID)})
	must(t, err)
	_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "crl", Body: []byte(`{"run_id":"b"}`),
		ExpiresAt: now.Add(time.Minute)}, now)
	must(t, err)
	if !claimed {
		t.Fatal("not claimed")
	}
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: queuedRun(th.ID), Claim: &store.Claim{Key: "crl", Body: []byte(`{"run_id":"a"}`)}})
	wantErr(t, err, store.ErrClaimLost)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: queuedRun(th.ID), Claim: &store.Claim{Key: "crl", Body: []byte(`{"run_id":"b"}`)}})
	wantErr(t, err, store.ErrThreadLocked)
}

// testCreateClaimedRace: a fenced create racing with a request that takes
// the claim over once its lease lapsed (on another replica, for the
// two-replica suite). Either the create fails with ErrClaimLost and its
// object never exists, or it commits before the takeover: the takeover
// then finds the object (it read the claim after the create's commit), so
// the request that took the key over answers with it instead of making a
// second one.
func testCreateClaimedRace(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	vs := newID("vs_")
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs}, nil))
	now := time.Unix(1_800_000_000, 0)
	const rounds = 12
	for _, k := range claimedKinds(vs) {
		t.Run(k.name, func(t *testing.T) {
			won, lost := 0, 0
			for i := range rounds {
				key := fmt.Sprintf("ccr-%s-%d", k.name, i)
				_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key,
					Body: []byte(`{"id":"a"}`), ExpiresAt: now.Add(10 * time.Second)}, now)
				must(t, err)
				if !claimed {
					t.Fatal("not claimed")
				}
				id := newID(k.prefix)
				var (
					wg                 sync.WaitGroup
					createErr, takeErr error
					tookOver, seen     bool
				)
				start := make(chan struct{})
				// Either may go first: each yields in turn.
				yield := func(n int) {
					for range n {
						runtime.Gosched()
					}
				}
				wg.Go(func() {
					<-start
					yield(i % 2 * 3)
					createErr = k.create(ctx, s, id, &store.Claim{Key: key, Body: []byte(`{"id":"a"}`)})
				})
				wg.Go(func() {
					<-start
					yield((i + 1) % 2 * 3)
					later := now.Add(time.Minute)
					_, tookOver, takeErr = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key,
						Body: []byte(`{"id":"b"}`), ExpiresAt: later.Add(10 * time.Second)}, later)
					if takeErr == nil && tookOver {
						// What the request that took the key over looks for.
						seen, takeErr = k.exists(ctx, s, id)
					}
				})
				close(start)
				wg.Wait()
				must(t, takeErr)
				if !tookOver {
					t.Fatal("the takeover did not claim the lapsed key")
				}
				switch {
				case errors.Is(createErr, store.ErrClaimLost):
					lost++
					ok, err := k.exists(ctx, s, id)
					must(t, err)
					if ok {
						t.Fatalf("round %d: a %s for a lost claim exists", i, k.name)
					}
				case createErr != nil:
					t.Fatal(createErr)
				case !seen:
					t.Fatalf("round %d: the %s was made, but after the takeover looked for it", i, k.name)
				default:
					won++
				}
			}
			t.Logf("%s: the create won %d, the takeover %d of %d rounds", k.name, won, lost, rounds)
		})
	}
}
