package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// testConcurrentRunCreate: writers racing to start a run on one thread;
// exactly one wins each round.
func testConcurrentRunCreate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	const writers, rounds = 8, 4
	for round := range rounds {
		start := make(chan struct{})
		errs := make([]error, writers)
		runs := make([]store.Run, writers)
		var wg sync.WaitGroup
		for i := range writers {
			runs[i] = queuedRun(th.ID)
			wg.Go(func() {
				<-start
				_, _, errs[i] = s.CreateRun(ctx, store.NewRun{Run: runs[i], Jobs: []store.Job{{Args: testJob{RunID: runs[i].ID}}}})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: two runs started on one thread: %s and %s", round, runs[winner].ID, runs[i].ID)
				}
				winner = i
			case !errors.Is(err, store.ErrThreadLocked):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no run started", round)
		}
		ar, err := s.ActiveRun(ctx, "", th.ID)
		must(t, err)
		if ar.ID != runs[winner].ID {
			t.Fatalf("round %d: active run %s, want %s", round, ar.ID, runs[winner].ID)
		}
		_, _, err = s.UpdateRun(ctx, "", th.ID, ar.ID, setStatus("completed"))
		must(t, err)
	}
	jobs, err := s.ListJobs(ctx, testJob{}.Kind())
	must(t, err)
	if len(jobs) != rounds {
		t.Fatalf("%d jobs for %d runs", len(jobs), rounds)
	}
	p, err := s.ListRuns(ctx, "", th.ID, store.ListParams{Limit: 100})
	must(t, err)
	if len(p.Items) != rounds {
		t.Fatalf("%d runs stored, want %d", len(p.Items), rounds)
	}
}

// testConcurrentRunLifecycles: workers each start runs on one thread
// (retrying while it is locked), check that the lock holds, and end them.
// The periods in which each saw its run active never overlap.
func testConcurrentRunLifecycles(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	th := newThread(t, s)
	const workers, each = 4, 4
	type span struct {
		from, to time.Time
		id       string
	}
	var mu sync.Mutex
	var spans []span
	errc := make(chan error, workers)
	fail := func(err error) { errc <- err; cancel() } // the others stop retrying
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				var r store.Run
				for {
					r = queuedRun(th.ID)
					_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrThreadLocked) {
						fail(err)
						return
					}
					if ctx.Err() != nil {
						fail(ctx.Err())
						return
					}
					time.Sleep(time.Millisecond) // another worker holds the thread
				}
				from := time.Now()
				err := s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID})
				if !errors.Is(err, store.ErrThreadLocked) {
					fail(fmt.Errorf("message while run %s is active: %v", r.ID, err))
					return
				}
				ownErr := s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID, RunID: r.ID})
				if ownErr != nil {
					fail(ownErr)
					return
				}
				to := time.Now()
				if _, _, err := s.UpdateRun(ctx, "", th.ID, r.ID, setStatus("completed")); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				spans = append(spans, span{from, to, r.ID})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if len(spans) != workers*each {
		t.Fatalf("%d runs, want %d", len(spans), workers*each)
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Fatalf("runs %s and %s were active at the same time", spans[i-1].id, spans[i].id)
		}
	}
	p, err := s.ListMessages(ctx, "", th.ID, "", store.ListParams{Limit: 100})
	must(t, err)
	if len(p.Items) != workers*each {
		t.Fatalf("%d messages, want %d (one per run)", len(p.Items), workers*each)
	}
}

// testConcurrentEvents: writers appending events to one run get dense,
// distinct sequence numbers.
func testConcurrentEvents(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
	must(t, err)
	const writers, each = 6, 15
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, evs, err := s.UpdateRun(ctx, "", th.ID, r.ID, func(*store.Run) (store.RunChange, error) {
					return store.RunChange{Events: []store.Event{
						{Type: "a", Data: fmt.Appendf(nil, `"%d-%d-a"`, w, i)},
						{Type: "b", Data: fmt.Appendf(nil, `"%d-%d-b"`, w, i)}}}, nil
				})
				if err != nil {
					errc <- err
					return
				}
				if evs[1].Seq != evs[0].Seq+1 {
					errc <- fmt.Errorf("events of one write got seqs %d and %d", evs[0].Seq, evs[1].Seq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	var all []store.Event
	for {
		evs, err := s.ListRunEvents(ctx, r.ID, int64(len(all)), 50)
		must(t, err)
		if len(evs) == 0 {
			break
		}
		all = append(all, evs...)
	}
	if len(all) != 2*writers*each {
		t.Fatalf("%d events, want %d", len(all), 2*writers*each)
	}
	seen := map[string]bool{}
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if seen[string(e.Data)] {
			t.Fatalf("event %s twice", e.Data)
		}
		seen[string(e.Data)] = true
		if e.Type == "b" && (i == 0 || string(all[i-1].Data[:len(all[i-1].Data)-2]) != string(e.Data[:len(e.Data)-2])) {
			t.Fatalf("the events of one write are not adjacent: %s, %s", all[i-1].Data, e.Data)
		}
	}
}

// testConcurrentMessages: writers adding messages to one thread lose none.
func testConcurrentMessages(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	const writers, each = 6, 20
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				if err := s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	n := 0
	lp := store.ListParams{Limit: 17}
	for {
		p, err := s.ListMessages(ctx, "", th.ID, "", lp)
		must(t, err)
		n += len(p.Items)
		if !p.HasMore {
			break
		}
		lp.After = p.Items[len(p.Items)-1].ID
	}
	if n != writers*each {
		t.Fatalf("%d messages, want %d", n, writers*each)
	}
}
