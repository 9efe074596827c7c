package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

// refPage is the list rule every store follows, written plainly: all is
// every matching id in ascending order.
func refPage(all []string, lp store.ListParams) ([]string, bool) {
	lp = lp.Normalize()
	ordered := slices.Clone(all)
	if lp.Desc {
		slices.Reverse(ordered)
	}
	var window []string
	for _, id := range ordered {
		if lp.After != "" && (!lp.Desc && id <= lp.After || lp.Desc && id >= lp.After) {
			continue
		}
		if lp.Before != "" && (!lp.Desc && id >= lp.Before || lp.Desc && id <= lp.Before) {
			continue
		}
		window = append(window, id)
	}
	if len(window) <= lp.Limit {
		return window, false
	}
	if lp.Before != "" && lp.After == "" {
		return window[len(window)-lp.Limit:], true
	}
	return window[:lp.Limit], true
}

// listFunc lists one page of ids.
type listFunc func(lp store.ListParams) ([]string, bool, error)

// checkList compares a list with refPage over a table of parameters. all
// holds the ids the list should show, ascending; deleted an id that was
// deleted from the middle (a cursor that no longer exists); prefix the
// ids' prefix.
func checkList(t *testing.T, name string, all []string, deleted, prefix string, list listFunc) {
	t.Helper()
	if len(all) < 22 {
		t.Fatalf("%s: need at least 22 ids", name)
	}
	type cur struct{ after, before string }
	cursors := []cur{
		{},
		{after: all[5]},
		{after: all[len(all)-2]},
		{before: all[5]},
		{before: all[20]},
		{after: all[3], before: all[15]},
		{after: all[15], before: all[3]},
		{after: deleted},
		{before: deleted},
		{after: prefix},        // before every id
		{before: prefix + "~"}, // after every id
		{after: prefix + "~"},
	}
	for _, desc := range []bool{false, true} {
		for _, limit := range []int{0, 1, 7, 100} {
			for _, c := range cursors {
				lp := store.ListParams{Limit: limit, Desc: desc, After: c.after, Before: c.before}
				want, wantMore := refPage(all, lp)
				got, more, err := list(lp)
				if err != nil {
					t.Fatalf("%s %+v: %v", name, lp, err)
				}
				if !slices.Equal(got, want) || more != wantMore {
					t.Fatalf("%s %+v:\n got %v more=%v\nwant %v more=%v", name, lp, got, more, want, wantMore)
				}
			}
		}
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

// testPaging checks every list against refPage.
func testPaging(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 26
	const del = 10 // index of the object deleted

	t.Run("assistants", func(t *testing.T) {
		var all []string
		var deleted string
		for i := range n {
			id := newID("asst_")
			must(t, s.CreateAssistant(ctx, store.Assistant{ID: id, Data: data(id)}))
			if i == del {
				deleted = id
				continue
			}
			all = append(all, id)
		}
		must(t, s.DeleteAssistant(ctx, "", deleted))
		checkList(t, "assistants", all, deleted, "asst_", func(lp store.ListParams) ([]string, bool, error) {
			p, err := s.ListAssistants(ctx, "", lp)
			for _, a := range p.Items {
				if !bytes.Equal(a.Data, data(a.ID)) {
					return nil, false, fmt.Errorf("assistant %s has data %q", a.ID, a.Data)
				}
			}
			return ids(p.Items, func(a store.Assistant) string { return a.ID }), p.HasMore, err
		})
	})

	t.Run("messages", func(t *testing.T) {
		th := store.Thread{ID: newID("thread_")}
		must(t, s.CreateThread(ctx, th, nil))
		runID := newID("run_")
		var all, ofRun []string
		var deleted string
		for i := range 3 * n {
			m := store.Message{ID: newID("msg_"), ThreadID: th.ID, Data: data("m")}
			if i%3 == 0 {
				m.RunID = runID
			}
			must(t, s.CreateMessage(ctx, m))
			if i == del {
				deleted = m.ID
				continue
			}
			all = append(all, m.ID)
			if m.RunID != "" {
				ofRun = append(ofRun, m.ID)
			}
		}
		must(t, s.DeleteMessage(ctx, "", th.ID, deleted))
		list := func(runID string) listFunc {
			return func(lp store.ListParams) ([]string, bool, error) {
				p, err := s.ListMessages(ctx, "", th.ID, runID, lp)
				return ids(p.Items, func(m store.Message) string { return m.ID }), p.HasMore, err
			}
		}
		checkList(t, "messages", all, deleted, "msg_", list(""))
		checkList(t, "messages of a run", ofRun, deleted, "msg_", list(runID))
		_, err := s.ListMessages(ctx, "", "thread_missing", "", store.ListParams{})
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("runs and steps", func(t *testing.T) {
		th := store.Thread{ID: newID("thread_")}
		must(t, s.CreateThread(ctx, th, nil))
		var all []string
		for range n {
			r := store.Run{ID: newID("run_"), ThreadID: th.ID, Status: "completed", Data: data("r")}
			_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
			must(t, err)
			all = append(all, r.ID)
		}
		// Runs are not deleted one by one: use a cursor that never existed.
		gap := all[del] + "0"
		checkList(t, "runs", all, gap, "run_", func(lp store.ListParams) ([]string, bool, error) {
			p, err := s.ListRuns(ctx, "", th.ID, lp)
			return ids(p.Items, func(r store.Run) string { return r.ID }), p.HasMore, err
		})

		runID := all[0]
		var steps []string
		for range n {
			st := store.Step{ID: newID("step_"), Data: data("s")}
			_, _, err := s.UpdateRun(ctx, "", th.ID, runID, func(r *store.Run) (store.RunChange, error) {
				return store.RunChange{Steps: []store.Step{st}}, nil
			})
			must(t, err)
			steps = append(steps, st.ID)
		}
		checkList(t, "steps", steps, steps[del]+"0", "step_", func(lp store.ListParams) ([]string, bool, error) {
			p, err := s.ListSteps(ctx, "", runID, lp)
			return ids(p.Items, func(s store.Step) string { return s.ID }), p.HasMore, err
		})
	})

	t.Run("files", func(t *testing.T) {
		var all, vision []string
		var deleted string
		for i := range 2 * n {
			purpose := "assistants"
			if i%2 == 1 {
				purpose = "vision"
			}
			f, err := s.CreateFile(ctx, store.File{ID: newID("file-"), Purpose: purpose, Filename: "f.txt"}, bytes.NewReader([]byte("x")), 0, nil)
			must(t, err)
			if i == del {
				deleted = f.ID
				continue
			}
			all = append(all, f.ID)
			if purpose == "vision" {
				vision = append(vision, f.ID)
			}
		}
		_, err := s.DeleteFile(ctx, "", deleted)
		must(t, err)
		list := func(purpose string) listFunc {
			return func(lp store.ListParams) ([]string, bool, error) {
				p, err := s.ListFiles(ctx, "", purpose, lp)
				return ids(p.Items, func(f store.File) string { return f.ID }), p.HasMore, err
			}
		}
		checkList(t, "files", all, deleted, "file-", list(""))
		checkList(t, "vision files", vision, deleted, "file-", list("vision"))
	})

	t.Run("vector stores and their files", func(t *testing.T) {
		var all []string
		var deleted string
		for i := range n {
			id := newID("vs_")
			must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: id, Data: data("v")}, nil))
			if i == del {
				deleted = id
				continue
			}
			all = append(all, id)
		}
		must(t, s.DeleteVectorStore(ctx, "", deleted))
		checkList(t, "vector stores", all, deleted, "vs_", func(lp store.ListParams) ([]string, bool, error) {
			p, err := s.ListVectorStores(ctx, "", lp)
			return ids(p.Items, func(v store.VectorStore) string { return v.ID }), p.HasMore, err
		})

		vsID := all[0]
		batch := store.FileBatch{ID: newID("vsfb_"), VectorStoreID: vsID}
		var files, done, inBatch []string
		var batchFiles []store.VectorStoreFile
		deleted = ""
		for i := range 3 * n {
			f := store.VectorStoreFile{VectorStoreID: vsID, FileID: newID("file-"), Status: "in_progress", Data: data("f")}
			if i%3 == 1 {
				f.Status = "completed"
			}
			if i%3 == 2 {
				batchFiles = append(batchFiles, f)
			} else {
				must(t, s.PutVectorStoreFile(ctx, f))
			}
			if i == del {
				deleted = f.FileID
				continue
			}
			files = append(files, f.FileID)
			if f.Status == "completed" {
				done = append(done, f.FileID)
			}
			if i%3 == 2 {
				inBatch = append(inBatch, f.FileID)
			}
		}
		must(t, s.CreateFileBatch(ctx, batch, batchFiles))
		must(t, s.DeleteVectorStoreFile(ctx, "", vsID, deleted))
		list := func(batchID, status string) listFunc {
			return func(lp store.ListParams) ([]string, bool, error) {
				p, err := s.ListVectorStoreFiles(ctx, "", vsID, batchID, status, lp)
				return ids(p.Items, func(f store.VectorStoreFile) string { return f.FileID }), p.HasMore, err
			}
		}
		checkList(t, "vector store files", files, deleted, "file-", list("", ""))
		checkList(t, "completed vector store files", done, deleted, "file-", list("", "completed"))
		checkList(t, "batch files", inBatch, deleted, "file-", list(batch.ID, ""))
		p, err := s.ListVectorStoreFiles(ctx, "", vsID, batch.ID, "completed", store.ListParams{})
		must(t, err)
		if len(p.Items) != 0 {
			t.Fatalf("batch files that are completed: %d, want 0", len(p.Items))
		}
	})
}
