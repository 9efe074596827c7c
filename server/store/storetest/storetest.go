// Package storetest is the conformance suite of store.Store: every
// implementation runs the same cases through Run.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
//	}
//
// The factory returns a new, empty store for each case (it may register
// t.Cleanup to close it; Run does not close it).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// Factory returns a new, empty store for one case.
type Factory func(t *testing.T) store.Store

// Run runs the whole suite against the stores newStore returns.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Projects", testProjects},
		{"Assistants", testAssistants},
		{"ProjectScope", testProjectScope},
		{"Paging", testPaging},
		{"ThreadsAndMessages", testThreadsAndMessages},
		{"DeleteThreadCascades", testDeleteThreadCascades},
		{"RunLock", testRunLock},
		{"RunUpdate", testRunUpdate},
		{"RunEvents", testRunEvents},
		{"RunEventsOfWrites", testRunEventsOfWrites},
		{"CreateThreadAndRunIsAtomic", testCreateThreadAndRunAtomic},
		{"Jobs", testJobs},
		{"CountJobs", testCountJobs},
		{"JobIDs", testJobIDs},
		{"Files", testFiles},
		{"VectorStores", testVectorStores},
		{"FileBatches", testFileBatches},
		{"VectorStoreJobs", testVectorStoreJobs},
		{"Idempotency", testIdempotency},
		{"IdempotencyRenew", testIdempotencyRenew},
		{"IdempotencyCompareAndSet", testIdempotencyCompareAndSet},
		{"IdempotencySweepKeepsLapsed", testIdempotencySweepKeepsLapsed},
		{"IdempotencyRewriteClaim", testIdempotencyRewriteClaim},
		{"CreateMessageClaimed", testCreateMessageClaimed},
		{"CreateFileClaimed", testCreateFileClaimed},
		{"CreateClaimed", testCreateClaimed},
		{"CreateClaimedRace", testCreateClaimedRace},
		{"CreateRunClaimedLockedThread", testCreateRunClaimedLockedThread},
		{"ConcurrentRunCreate", testConcurrentRunCreate},
		{"ConcurrentRunLifecycles", testConcurrentRunLifecycles},
		{"ConcurrentEvents", testConcurrentEvents},
		{"ConcurrentMessages", testConcurrentMessages},
		{"APIKeys", testAPIKeys},
		{"CountActiveRuns", testCountActiveRuns},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			c.fn(t, s)
		})
	}
}

// idSeq makes ids that sort by creation, like the server's.
var idSeq atomic.Int64

func init() { idSeq.Store(time.Now().UnixNano()) }

func newID(prefix string) string { return fmt.Sprintf("%s%020d", prefix, idSeq.Add(1)) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func data(s string) []byte { return []byte(`{"v":"` + s + `"}`) }

func eqData(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("data %q, want %q", got, want)
	}
}

// testJob is the job the suite enqueues.
type testJob struct {
	RunID string `json:"run_id"`
	Step  string `json:"step"`
}

func (testJob) Kind() string { return "storetest_job" }

func testProjects(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p, err := s.GetProject(ctx, store.DefaultProject)
	must(t, err)
	if p.ID != store.DefaultProject {
		t.Fatalf("default project id %q", p.ID)
	}
	id := newID("proj_")
	must(t, s.CreateProject(ctx, store.Project{ID: id, CreatedAt: 7, Data: data("p")}))
	wantErr(t, s.CreateProject(ctx, store.Project{ID: id}), store.ErrConflict)
	wantErr(t, s.CreateProject(ctx, store.Project{ID: store.DefaultProject}), store.ErrConflict)
	p, err = s.GetProject(ctx, id)
	must(t, err)
	if p.CreatedAt != 7 {
		t.Fatalf("created_at %d", p.CreatedAt)
	}
	eqData(t, p.Data, data("p"))
	_, err = s.GetProject(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	pg, err := s.ListProjects(ctx, store.ListParams{Limit: 10})
	must(t, err)
	var got []string
	for _, p := range pg.Items {
		got = append(got, p.ID)
	}
	if !slices.Contains(got, id) || !slices.Contains(got, store.DefaultProject) {
		t.Fatalf("projects %v", got)
	}
}

func testAssistants(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	id := newID("asst_")
	a := store.Assistant{ID: id, CreatedAt: 100, Data: data("a1")}
	must(t, s.CreateAssistant(ctx, a))
	wantErr(t, s.CreateAssistant(ctx, a), store.ErrConflict)
	wantErr(t, s.CreateAssistant(ctx, store.Assistant{}), store.ErrInvalid)

	got, err := s.GetAssistant(ctx, "", id)
	must(t, err)
	if got.Project != store.DefaultProject || got.CreatedAt != 100 || got.ID != id {
		t.Fatalf("got %+v", got)
	}
	eqData(t, got.Data, data("a1"))
	got.Data[0] = 'X' // a copy: the store does not change
	got, err = s.GetAssistant(ctx, store.DefaultProject, id)
	must(t, err)
	eqData(t, got.Data, data("a1"))

	// A failing update changes nothing.
	boom := errors.New("boom")
	_, err = s.UpdateAssistant(ctx, "", id, func(a *store.Assistant) error {
		a.Data = data("lost")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update error %v", err)
	}
	got, _ = s.GetAssistant(ctx, "", id)
	eqData(t, got.Data, data("a1"))

	// An update keeps id, project and creation time.
	up, err := s.UpdateAssistant(ctx, "", id, func(a *store.Assistant) error {
		a.Data = data("a2")
		a.ID, a.Project, a.CreatedAt = "other", "other", 5
		return nil
	})
	must(t, err)
	if up.ID != id || up.Project != store.DefaultProject || up.CreatedAt != 100 {
		t.Fatalf("update changed identity: %+v", up)
	}
	got, _ = s.GetAssistant(ctx, "", id)
	eqData(t, got.Data, data("a2"))
	_, err = s.UpdateAssistant(ctx, "", "asst_missing", func(*store.Assistant) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	must(t, s.DeleteAssistant(ctx, "", id))
	wantErr(t, s.DeleteAssistant(ctx, "", id), store.ErrNotFound)
	_, err = s.GetAssistant(ctx, "", id)
	wantErr(t, err, store.ErrNotFound)
}

// testProjectScope: an object of another project is not found, and lists
// show only the project's objects.
func testProjectScope(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const p1, p2 = "proj_one", "proj_two"
	a := store.Assistant{Project: p1, ID: newID("asst_"), Data: data("a")}
	must(t, s.CreateAssistant(ctx, a))
	th := store.Thread{Project: p1, ID: newID("thread_"), Data: data("t")}
	m := store.Message{ID: newID("msg_"), ThreadID: th.ID, Data: data("m")}
	must(t, s.CreateThread(ctx, th, []store.Message{m}))
	r := store.Run{Project: p1, ID: newID("run_"), ThreadID: th.ID, Status: store.RunQueued, Data: data("r")}
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r, Steps: []store.Step{{ID: newID("step_"), Data: data("s")}}})
	must(t, err)
	f, err := s.CreateFile(ctx, store.File{Project: p1, ID: newID("file-"), Purpose: "assistants", Filename: "a.txt"}, bytes.NewReader([]byte("hi")), 0, nil)
	must(t, err)
	vs := store.VectorStore{Project: p1, ID: newID("vs_"), Data: data("v")}
	must(t, s.CreateVectorStore(ctx, vs, []store.VectorStoreFile{{FileID: f.ID, Status: "in_progress"}}))

	// Seen in p1.
	if got, err := s.GetMessage(ctx, p1, th.ID, m.ID); err != nil || got.Project != p1 {
		t.Fatalf("message in its project: %+v %v", got, err)
	}
	checks := []struct {
		name string
		err  func(project string) error
	}{
		{"assistant", func(p string) error { _, err := s.GetAssistant(ctx, p, a.ID); return err }},
		{"thread", func(p string) error { _, err := s.GetThread(ctx, p, th.ID); return err }},
		{"message", func(p string) error { _, err := s.GetMessage(ctx, p, th.ID, m.ID); return err }},
		{"messages", func(p string) error { _, err := s.ListMessages(ctx, p, th.ID, "", store.ListParams{}); return err }},
		{"run", func(p string) error { _, err := s.GetRun(ctx, p, th.ID, r.ID); return err }},
		{"runs", func(p string) error { _, err := s.ListRuns(ctx, p, th.ID, store.ListParams{}); return err }},
		{"steps", func(p string) error { _, err := s.ListSteps(ctx, p, r.ID, store.ListParams{}); return err }},
		{"file", func(p string) error { _, err := s.GetFile(ctx, p, f.ID); return err }},
		{"file bytes", func(p string) error {
			rc, err := s.OpenFile(ctx, p, f.ID)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"vector store", func(p string) error { _, err := s.GetVectorStore(ctx, p, vs.ID); return err }},
		{"vector store file", func(p string) error { _, err := s.GetVectorStoreFile(ctx, p, vs.ID, f.ID); return err }},
		{"delete assistant", func(p string) error {
			if p == p1 {
				return nil
			}
			return s.DeleteAssistant(ctx, p, a.ID)
		}},
		{"message on thread", func(p string) error {
			if p == p1 {
				return nil
			}
			return s.CreateMessage(ctx, store.Message{Project: p, ID: newID("msg_"), ThreadID: th.ID})
		}},
	}
	for _, c := range checks {
		if err := c.err(p1); err != nil {
			t.Errorf("%s in its project: %v", c.name, err)
		}
		for _, p := range []string{p2, ""} {
			if err := c.err(p); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s from project %q: got %v, want ErrNotFound", c.name, p, err)
			}
		}
	}
	for _, p := range []string{p2, ""} {
		as, err := s.ListAssistants(ctx, p, store.ListParams{})
		must(t, err)
		fs, err := s.ListFiles(ctx, p, "", store.ListParams{})
		must(t, err)
		vss, err := s.ListVectorStores(ctx, p, store.ListParams{})
		must(t, err)
		if len(as.Items)+len(fs.Items)+len(vss.Items) != 0 {
			t.Errorf("project %q lists another project's objects", p)
		}
	}
	as, err := s.ListAssistants(ctx, p1, store.ListParams{})
	must(t, err)
	if len(as.Items) != 1 {
		t.Errorf("project p1 lists %d assistants", len(as.Items))
	}
}
