package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

func newThread(t *testing.T, s store.Store) store.Thread {
	t.Helper()
	th := store.Thread{ID: newID("thread_"), CreatedAt: 1, Data: data("t")}
	must(t, s.CreateThread(ctxT(t), th, nil))
	return th
}

func queuedRun(threadID string) store.Run {
	return store.Run{ID: newID("run_"), ThreadID: threadID, AssistantID: "asst_x", Status: store.RunQueued,
		CreatedAt: 2, ExpiresAt: 600, Data: data("r"), State: []byte(`{"round":0}`)}
}

func setStatus(status string) func(*store.Run) (store.RunChange, error) {
	return func(r *store.Run) (store.RunChange, error) {
		r.Status = status
		return store.RunChange{}, nil
	}
}

func testThreadsAndMessages(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := store.Thread{ID: newID("thread_"), CreatedAt: 3, Data: data("t")}
	m1 := store.Message{ID: newID("msg_"), ThreadID: "ignored", CreatedAt: 3, Data: data("m1")}
	m2 := store.Message{ID: newID("msg_"), CreatedAt: 3, Data: data("m2")}
	must(t, s.CreateThread(ctx, th, []store.Message{m1, m2}))
	wantErr(t, s.CreateThread(ctx, th, nil), store.ErrConflict)

	got, err := s.GetThread(ctx, "", th.ID)
	must(t, err)
	eqData(t, got.Data, data("t"))
	p, err := s.ListMessages(ctx, "", th.ID, "", store.ListParams{})
	must(t, err)
	if len(p.Items) != 2 || p.Items[0].ID != m1.ID || p.Items[0].ThreadID != th.ID || p.HasMore {
		t.Fatalf("messages %+v", p)
	}

	// A thread and its messages are created together or not at all.
	th2 := store.Thread{ID: newID("thread_")}
	dup := newID("msg_")
	wantErr(t, s.CreateThread(ctx, th2, []store.Message{{ID: newID("msg_")}, {ID: dup}, {ID: dup}}), store.ErrConflict)
	_, err = s.GetThread(ctx, "", th2.ID)
	wantErr(t, err, store.ErrNotFound)

	m3 := store.Message{ID: newID("msg_"), ThreadID: th.ID, Data: data("m3")}
	must(t, s.CreateMessage(ctx, m3))
	wantErr(t, s.CreateMessage(ctx, m3), store.ErrConflict)
	wantErr(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: "thread_missing"}), store.ErrNotFound)

	up, err := s.UpdateMessage(ctx, "", th.ID, m3.ID, func(m *store.Message) error {
		m.Data = data("m3b")
		m.ThreadID = "elsewhere"
		return nil
	})
	must(t, err)
	if up.ThreadID != th.ID {
		t.Fatalf("update moved the message to %q", up.ThreadID)
	}
	gm, err := s.GetMessage(ctx, "", th.ID, m3.ID)
	must(t, err)
	eqData(t, gm.Data, data("m3b"))
	_, err = s.GetMessage(ctx, "", "thread_other", m3.ID)
	wantErr(t, err, store.ErrNotFound)

	must(t, s.DeleteMessage(ctx, "", th.ID, m3.ID))
	wantErr(t, s.DeleteMessage(ctx, "", th.ID, m3.ID), store.ErrNotFound)

	ut, err := s.UpdateThread(ctx, "", th.ID, func(t *store.Thread) error { t.Data = data("t2"); return nil })
	must(t, err)
	eqData(t, ut.Data, data("t2"))
}

func testDeleteThreadCascades(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	m := store.Message{ID: newID("msg_"), ThreadID: th.ID}
	must(t, s.CreateMessage(ctx, m))
	r := queuedRun(th.ID)
	st := store.Step{ID: newID("step_")}
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r, Steps: []store.Step{st}, Events: []store.Event{{Type: "thread.run.created"}}})
	must(t, err)
	other := newThread(t, s)
	om := store.Message{ID: newID("msg_"), ThreadID: other.ID}
	must(t, s.CreateMessage(ctx, om))

	// Even with an active run.
	must(t, s.DeleteThread(ctx, "", th.ID))
	wantErr(t, s.DeleteThread(ctx, "", th.ID), store.ErrNotFound)
	_, err = s.GetMessage(ctx, "", th.ID, m.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetRun(ctx, "", th.ID, r.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetStep(ctx, "", r.ID, st.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ListSteps(ctx, "", r.ID, store.ListParams{})
	wantErr(t, err, store.ErrNotFound)
	evs, err := s.ListRunEvents(ctx, r.ID, 0, 0)
	if err == nil && len(evs) != 0 {
		t.Fatalf("events of a deleted run: %v", evs)
	}
	// The other thread is untouched.
	_, err = s.GetMessage(ctx, "", other.ID, om.ID)
	must(t, err)
}

// testRunLock: one active run per thread, and no message from outside
// while it is active.
func testRunLock(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r1 := queuedRun(th.ID)
	got, evs, err := s.CreateRun(ctx, store.NewRun{Run: r1})
	must(t, err)
	if got.Project != store.DefaultProject || got.Status != store.RunQueued || got.ExpiresAt != 600 || string(got.State) != `{"round":0}` || len(evs) != 0 {
		t.Fatalf("created %+v %v", got, evs)
	}
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r1})
	if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrThreadLocked) {
		t.Fatalf("same run twice: %v", err)
	}

	ar, err := s.ActiveRun(ctx, "", th.ID)
	must(t, err)
	if ar.ID != r1.ID {
		t.Fatalf("active run %s, want %s", ar.ID, r1.ID)
	}

	for _, st := range store.ActiveRunStatuses {
		_, _, err := s.UpdateRun(ctx, "", th.ID, r1.ID, setStatus(st))
		must(t, err)
		r2 := queuedRun(th.ID)
		_, _, err = s.CreateRun(ctx, store.NewRun{Run: r2})
		wantErr(t, err, store.ErrThreadLocked)
		_, err = s.GetRun(ctx, "", th.ID, r2.ID)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID}), store.ErrThreadLocked)
		wantErr(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID, RunID: "run_other"}), store.ErrThreadLocked)
		// A run created with messages on a locked thread: neither is written.
		r3 := queuedRun(th.ID)
		r3.Status = "completed"
		mid := newID("msg_")
		_, _, err = s.CreateRun(ctx, store.NewRun{Run: r3, Messages: []store.Message{{ID: mid}}})
		wantErr(t, err, store.ErrThreadLocked)
		_, err = s.GetMessage(ctx, "", th.ID, mid)
		wantErr(t, err, store.ErrNotFound)
	}
	// The active run itself may write messages to its thread.
	must(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID, RunID: r1.ID}))

	// Other threads are not locked.
	th2 := newThread(t, s)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: queuedRun(th2.ID)})
	must(t, err)

	// An end state frees the thread.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r1.ID, setStatus("completed"))
	must(t, err)
	_, err = s.ActiveRun(ctx, "", th.ID)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID}))
	r4 := queuedRun(th.ID)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r4})
	must(t, err)
	// An old run cannot become active again while another one is.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r1.ID, setStatus(store.RunQueued))
	wantErr(t, err, store.ErrThreadLocked)
	gr, err := s.GetRun(ctx, "", th.ID, r1.ID)
	must(t, err)
	if gr.Status != "completed" {
		t.Fatalf("status %q after a refused update", gr.Status)
	}
	// A run that is created in an end state does not lock.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r4.ID, setStatus("cancelled"))
	must(t, err)
	r5 := queuedRun(th.ID)
	r5.Status = "failed"
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r5})
	must(t, err)
	must(t, s.CreateMessage(ctx, store.Message{ID: newID("msg_"), ThreadID: th.ID}))

	_, _, err = s.CreateRun(ctx, store.NewRun{Run: queuedRun("thread_missing")})
	wantErr(t, err, store.ErrNotFound)
}

func testRunUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
	must(t, err)

	st := store.Step{ID: newID("step_"), CreatedAt: 9, Data: data("s1")}
	msg := store.Message{ID: newID("msg_"), CreatedAt: 9, Data: data("partial")}
	got, evs, err := s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		if run.Status != store.RunQueued || string(run.State) != `{"round":0}` {
			t.Errorf("fn got %+v", run)
		}
		run.Status = store.RunInProgress
		run.Data = data("r2")
		run.State = []byte(`{"round":1}`)
		run.ID, run.ThreadID, run.Project = "x", "y", "z"
		return store.RunChange{Steps: []store.Step{st}, Messages: []store.Message{msg},
			Events: []store.Event{{Type: "thread.run.in_progress", Data: data("e")}}}, nil
	})
	must(t, err)
	if got.ID != r.ID || got.ThreadID != th.ID || got.Project != store.DefaultProject || got.Status != store.RunInProgress || got.LastSeq != 1 {
		t.Fatalf("updated %+v", got)
	}
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].RunID != r.ID || evs[0].Type != "thread.run.in_progress" {
		t.Fatalf("events %+v", evs)
	}
	gs, err := s.GetStep(ctx, "", r.ID, st.ID)
	must(t, err)
	if gs.ThreadID != th.ID || gs.RunID != r.ID {
		t.Fatalf("step %+v", gs)
	}
	gm, err := s.GetMessage(ctx, "", th.ID, msg.ID)
	must(t, err)
	if gm.RunID != r.ID {
		t.Fatalf("message of the run has run id %q", gm.RunID)
	}
	eqData(t, gm.Data, data("partial"))

	// Replacing the step and the message by id.
	st.Data, msg.Data = data("s2"), data("whole")
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		return store.RunChange{Steps: []store.Step{st}, Messages: []store.Message{msg}}, nil
	})
	must(t, err)
	gs, _ = s.GetStep(ctx, "", r.ID, st.ID)
	eqData(t, gs.Data, data("s2"))
	gm, _ = s.GetMessage(ctx, "", th.ID, msg.ID)
	eqData(t, gm.Data, data("whole"))
	ps, err := s.ListSteps(ctx, "", r.ID, store.ListParams{})
	must(t, err)
	if len(ps.Items) != 1 {
		t.Fatalf("%d steps after a replace", len(ps.Items))
	}
	pm, err := s.ListMessages(ctx, "", th.ID, r.ID, store.ListParams{})
	must(t, err)
	if len(pm.Items) != 1 {
		t.Fatalf("%d messages of the run after a replace", len(pm.Items))
	}

	// An error from fn writes nothing.
	boom := errors.New("boom")
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		run.Status = "failed"
		return store.RunChange{Steps: []store.Step{{ID: newID("step_")}}, Events: []store.Event{{Type: "x"}},
			Jobs: []store.Job{{Args: testJob{RunID: r.ID}}}}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	gr, err := s.GetRun(ctx, "", th.ID, r.ID)
	must(t, err)
	if gr.Status != store.RunInProgress || gr.LastSeq != 1 || string(gr.State) != `{"round":1}` {
		t.Fatalf("run after a failed update: %+v", gr)
	}
	ps, _ = s.ListSteps(ctx, "", r.ID, store.ListParams{})
	if len(ps.Items) != 1 {
		t.Fatalf("%d steps after a failed update", len(ps.Items))
	}
	jobs, err := s.ListJobs(ctx, testJob{}.Kind())
	must(t, err)
	if len(jobs) != 0 {
		t.Fatalf("jobs after a failed update: %+v", jobs)
	}

	_, _, err = s.UpdateRun(ctx, "", th.ID, "run_missing", setStatus("failed"))
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.UpdateRun(ctx, "", "thread_other", r.ID, setStatus("failed"))
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetStep(ctx, "", "run_other", st.ID)
	wantErr(t, err, store.ErrNotFound)
}

func testRunEvents(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, evs, err := s.CreateRun(ctx, store.NewRun{Run: r, Events: []store.Event{
		{Type: "thread.run.created", Data: data("1")}, {Type: "thread.run.queued", Data: data("2")}}})
	must(t, err)
	if len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 {
		t.Fatalf("events %+v", evs)
	}
	for i := 3; i <= 12; i++ {
		_, evs, err := s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
			return store.RunChange{Events: []store.Event{{Type: "thread.message.delta", Data: data("d")}}}, nil
		})
		must(t, err)
		if len(evs) != 1 || evs[0].Seq != int64(i) {
			t.Fatalf("event %d got %+v", i, evs)
		}
	}
	all, err := s.ListRunEvents(ctx, r.ID, 0, 0)
	must(t, err)
	if len(all) != 12 {
		t.Fatalf("%d events", len(all))
	}
	for i, e := range all {
		if e.Seq != int64(i+1) || e.RunID != r.ID {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	eqData(t, all[1].Data, data("2"))
	tail, err := s.ListRunEvents(ctx, r.ID, 10, 0)
	must(t, err)
	if len(tail) != 2 || tail[0].Seq != 11 {
		t.Fatalf("after 10: %+v", tail)
	}
	mid, err := s.ListRunEvents(ctx, r.ID, 3, 4)
	must(t, err)
	if len(mid) != 4 || mid[0].Seq != 4 || mid[3].Seq != 7 {
		t.Fatalf("after 3 limit 4: %+v", mid)
	}
	none, err := s.ListRunEvents(ctx, r.ID, 12, 0)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("after the last: %+v", none)
	}
	gr, _ := s.GetRun(ctx, "", th.ID, r.ID)
	if gr.LastSeq != 12 {
		t.Fatalf("last seq %d", gr.LastSeq)
	}
	// Each run numbers its own events from 1.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, setStatus("completed"))
	must(t, err)
	_, evs, err = s.CreateRun(ctx, store.NewRun{Run: queuedRun(th.ID), Events: []store.Event{{Type: "thread.run.created"}}})
	must(t, err)
	if evs[0].Seq != 1 {
		t.Fatalf("second run's first event has seq %d", evs[0].Seq)
	}
}

// testRunEventsOfWrites: events written several to a write (as a round
// writes them), one to a write, and with empty data read back whole and in
// order from every point, in pages of every size.
func testRunEventsOfWrites(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	var want []store.Event
	add := func(evs []store.Event, err error) {
		t.Helper()
		must(t, err)
		want = append(want, evs...)
	}
	events := func(n int) []store.Event {
		evs := make([]store.Event, n)
		for i := range evs {
			evs[i] = store.Event{Type: fmt.Sprintf("thread.run.e%d", len(want)+i), Data: data(fmt.Sprint(len(want) + i))}
		}
		if n > 1 {
			evs[n-1].Data = nil // an event without data among others
		}
		return evs
	}
	_, evs, err := s.CreateRun(ctx, store.NewRun{Run: r, Events: events(3)})
	add(evs, err)
	for _, n := range []int{13, 1, 0, 2, 1, 7} {
		_, evs, err := s.UpdateRun(ctx, "", th.ID, r.ID, func(*store.Run) (store.RunChange, error) {
			return store.RunChange{Events: events(n)}, nil
		})
		add(evs, err)
	}
	for i, e := range want {
		if e.Seq != int64(i+1) {
			t.Fatalf("written event %d has seq %d", i, e.Seq)
		}
	}
	for after := 0; after <= len(want); after++ {
		for limit := 1; limit <= len(want)+1; limit++ {
			got, err := s.ListRunEvents(ctx, r.ID, int64(after), limit)
			must(t, err)
			exp := want[after:min(len(want), after+limit)]
			if len(got) != len(exp) {
				t.Fatalf("after %d limit %d: %d events, want %d", after, limit, len(got), len(exp))
			}
			for i := range got {
				if got[i].Seq != exp[i].Seq || got[i].Type != exp[i].Type || got[i].RunID != r.ID || !bytes.Equal(got[i].Data, exp[i].Data) {
					t.Fatalf("after %d limit %d: event %d is %+v, want %+v", after, limit, i, got[i], exp[i])
				}
			}
		}
	}
}

func testCreateThreadAndRunAtomic(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := store.Thread{ID: newID("thread_"), Data: data("t")}
	m := store.Message{ID: newID("msg_"), Data: data("hello")}
	r := queuedRun(th.ID)
	got, evs, err := s.CreateRun(ctx, store.NewRun{Thread: &th, Messages: []store.Message{m}, Run: r,
		Events: []store.Event{{Type: "thread.created"}, {Type: "thread.run.created"}},
		Jobs:   []store.Job{{Args: testJob{RunID: r.ID}}}})
	must(t, err)
	if got.ThreadID != th.ID || len(evs) != 2 {
		t.Fatalf("created %+v %+v", got, evs)
	}
	gm, err := s.GetMessage(ctx, "", th.ID, m.ID)
	must(t, err)
	eqData(t, gm.Data, data("hello"))

	// A failure anywhere leaves no thread, message, run or job.
	bad := []struct {
		name string
		nr   func() store.NewRun
		want error
	}{
		{"run id taken", func() store.NewRun {
			th := store.Thread{ID: newID("thread_")}
			r := queuedRun(th.ID)
			r.ID = got.ID
			return store.NewRun{Thread: &th, Messages: []store.Message{{ID: newID("msg_")}}, Run: r}
		}, store.ErrConflict},
		{"message id twice", func() store.NewRun {
			th := store.Thread{ID: newID("thread_")}
			dup := newID("msg_")
			return store.NewRun{Thread: &th, Messages: []store.Message{{ID: dup}, {ID: dup}}, Run: queuedRun(th.ID)}
		}, store.ErrConflict},
		{"thread id taken", func() store.NewRun {
			th := store.Thread{ID: th.ID}
			return store.NewRun{Thread: &th, Messages: []store.Message{{ID: newID("msg_")}}, Run: queuedRun(th.ID)}
		}, store.ErrConflict},
	}
	for _, c := range bad {
		nr := c.nr()
		nr.Jobs = []store.Job{{Args: testJob{RunID: nr.Run.ID, Step: c.name}}}
		_, _, err := s.CreateRun(ctx, nr)
		wantErr(t, err, c.want)
		if nr.Thread.ID != th.ID {
			_, err = s.GetThread(ctx, "", nr.Thread.ID)
			wantErr(t, err, store.ErrNotFound)
		}
		if nr.Messages[0].ID != m.ID {
			_, err = s.GetMessage(ctx, "", nr.Thread.ID, nr.Messages[0].ID)
			wantErr(t, err, store.ErrNotFound)
		}
		jobs, err := s.ListJobs(ctx, testJob{}.Kind())
		must(t, err)
		for _, j := range jobs {
			var a testJob
			must(t, json.Unmarshal(j.Args, &a))
			if a.Step == c.name {
				t.Fatalf("%s: the failed create left its job", c.name)
			}
		}
	}
}

// testCountJobs: CountJobs counts the unfinished jobs by state, as
// ListJobs lists them.
func testCountJobs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	n, err := s.CountJobs(ctx)
	must(t, err)
	if len(n) != 0 {
		t.Fatalf("jobs of a new store: %v", n)
	}
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r, Jobs: []store.Job{
		{Args: testJob{RunID: r.ID, Step: "now"}},
		{Args: testJob{RunID: r.ID, Step: "now2"}, Queue: "runs"},
		{Args: testJob{RunID: r.ID, Step: "later"}, ScheduledAt: time.Now().Add(time.Hour)}}})
	must(t, err)
	n, err = s.CountJobs(ctx)
	must(t, err)
	if want := map[string]int{"available": 2, "scheduled": 1}; !maps.Equal(n, want) {
		t.Fatalf("CountJobs = %v, want %v", n, want)
	}
	jobs, err := s.ListJobs(ctx, "")
	must(t, err)
	listed := map[string]int{}
	for _, j := range jobs {
		listed[j.State]++
	}
	if !maps.Equal(n, listed) {
		t.Fatalf("CountJobs = %v, ListJobs by state = %v", n, listed)
	}
}

// testJobs: a committed write has its jobs; a failed one has none.
func testJobs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r, Jobs: []store.Job{{Args: testJob{RunID: r.ID, Step: "start"}}}})
	must(t, err)
	// Refused: the thread is locked.
	r2 := queuedRun(th.ID)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r2, Jobs: []store.Job{{Args: testJob{RunID: r2.ID, Step: "start"}}}})
	wantErr(t, err, store.ErrThreadLocked)
	// Refused: not found.
	_, _, err = s.UpdateRun(ctx, "", th.ID, "run_missing", func(*store.Run) (store.RunChange, error) {
		return store.RunChange{Jobs: []store.Job{{Args: testJob{RunID: "run_missing"}}}}, nil
	})
	wantErr(t, err, store.ErrNotFound)
	// Committed: a submit.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		run.Status = store.RunQueued
		return store.RunChange{Jobs: []store.Job{{Args: testJob{RunID: r.ID, Step: "submit"}, Queue: "runs", MaxAttempts: 3}}}, nil
	})
	must(t, err)
	// A write that fails after its jobs were enqueued (a step id of another
	// run) takes them with it.
	other := queuedRun(th.ID)
	other.Status = "completed"
	taken := store.Step{ID: newID("step_")}
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: other, Steps: []store.Step{taken}})
	must(t, err)
	r6 := queuedRun(newThread(t, s).ID)
	_, _, err = s.CreateRun(ctx, store.NewRun{Run: r6, Steps: []store.Step{taken},
		Jobs: []store.Job{{Args: testJob{RunID: r6.ID, Step: "lost"}}}})
	wantErr(t, err, store.ErrConflict)
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		return store.RunChange{Steps: []store.Step{taken}, Jobs: []store.Job{{Args: testJob{RunID: r.ID, Step: "lost"}}}}, nil
	})
	wantErr(t, err, store.ErrConflict)
	// Args that do not encode: nothing written.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		run.Status = "failed"
		return store.RunChange{Jobs: []store.Job{{Args: badJob{C: make(chan int)}}}}, nil
	})
	if err == nil {
		t.Fatal("a job whose args do not encode was accepted")
	}
	gr, _ := s.GetRun(ctx, "", th.ID, r.ID)
	if gr.Status != store.RunQueued {
		t.Fatalf("run status %q after a refused job", gr.Status)
	}

	jobs, err := s.ListJobs(ctx, testJob{}.Kind())
	must(t, err)
	var got []testJob
	for _, j := range jobs {
		if j.Kind != (testJob{}).Kind() || j.State == "" || j.ScheduledAt.IsZero() {
			t.Fatalf("job %+v", j)
		}
		var a testJob
		must(t, json.Unmarshal(j.Args, &a))
		got = append(got, a)
	}
	want := []testJob{{RunID: r.ID, Step: "start"}, {RunID: r.ID, Step: "submit"}}
	if !slices.Equal(got, want) {
		t.Fatalf("jobs %+v, want %+v", got, want)
	}
	if jobs[1].Queue != "runs" {
		t.Fatalf("queue %q", jobs[1].Queue)
	}
	all, err := s.ListJobs(ctx, "")
	must(t, err)
	if len(all) < 2 {
		t.Fatalf("ListJobs of every kind: %d", len(all))
	}
}

type badJob struct{ C chan int }

func (badJob) Kind() string { return "storetest_bad" }

// testJobIDs: a job that asks for its id (Job.ID) gets one in the write
// that inserts it, and RunChange.DeleteJobs deletes it with the run's
// update (the run engine's backup jobs); an unknown id is no error, and an
// update that fails deletes nothing.
func testJobIDs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	th := store.Thread{ID: newID("thread_")}
	r := queuedRun(th.ID)
	later := time.Now().Add(time.Hour)
	var backup, next int64
	_, _, err := s.CreateRun(ctx, store.NewRun{Thread: &th, Run: r, Jobs: []store.Job{
		{Args: testJob{RunID: r.ID, Step: "plain"}},
		{Args: testJob{RunID: r.ID, Step: "backup"}, ScheduledAt: later, ID: &backup},
	}})
	must(t, err)
	if backup == 0 {
		t.Fatal("the backup job got no id")
	}
	steps := func() []string {
		t.Helper()
		jobs, err := s.ListJobs(ctx, testJob{}.Kind())
		must(t, err)
		var out []string
		for _, j := range jobs {
			var a testJob
			must(t, json.Unmarshal(j.Args, &a))
			out = append(out, a.Step+"/"+j.State)
		}
		slices.Sort(out)
		return out
	}
	if got := steps(); !slices.Equal(got, []string{"backup/scheduled", "plain/available"}) {
		t.Fatalf("jobs after create: %v", got)
	}

	// An update that fails deletes nothing.
	boom := errors.New("boom")
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(*store.Run) (store.RunChange, error) {
		return store.RunChange{DeleteJobs: []int64{backup}}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if got := steps(); !slices.Equal(got, []string{"backup/scheduled", "plain/available"}) {
		t.Fatalf("jobs after a failed update: %v", got)
	}

	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		run.Status = store.RunInProgress
		return store.RunChange{DeleteJobs: []int64{backup, backup + 1_000_000},
			Jobs: []store.Job{{Args: testJob{RunID: r.ID, Step: "next"}, ScheduledAt: later, ID: &next}}}, nil
	})
	must(t, err)
	if next == 0 || next == backup {
		t.Fatalf("the next backup's id %d (the first's %d)", next, backup)
	}
	if got := steps(); !slices.Equal(got, []string{"next/scheduled", "plain/available"}) {
		t.Fatalf("jobs after deleting the backup: %v", got)
	}
	// Deleting it again is no error.
	_, _, err = s.UpdateRun(ctx, "", th.ID, r.ID, func(*store.Run) (store.RunChange, error) {
		return store.RunChange{DeleteJobs: []int64{backup}}, nil
	})
	must(t, err)
}
