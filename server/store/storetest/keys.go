package storetest

import (
	"bytes"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	must(t, s.CreateProject(ctx, store.Project{ID: "team-a", CreatedAt: 1}))
	k1 := store.APIKey{ID: newID("key_"), Project: "team-a", Hash: []byte("hash-one-32-bytes-long-xxxxxxxxx"), Hint: "sk-a…0001", CreatedAt: 10}
	k2 := store.APIKey{ID: newID("key_"), Project: store.DefaultProject, Hash: []byte("hash-two-32-bytes-long-xxxxxxxxx"), Hint: "sk-a…0002", CreatedAt: 11}
	must(t, s.CreateAPIKey(ctx, k1))
	must(t, s.CreateAPIKey(ctx, k2))

	// Unknown project, duplicate id, duplicate hash, no hash.
	wantErr(t, s.CreateAPIKey(ctx, store.APIKey{ID: newID("key_"), Project: "nope", Hash: []byte("h3")}), store.ErrNotFound)
	wantErr(t, s.CreateAPIKey(ctx, store.APIKey{ID: k1.ID, Project: "team-a", Hash: []byte("other")}), store.ErrConflict)
	wantErr(t, s.CreateAPIKey(ctx, store.APIKey{ID: newID("key_"), Project: "team-a", Hash: k1.Hash}), store.ErrConflict)
	wantErr(t, s.CreateAPIKey(ctx, store.APIKey{ID: newID("key_"), Project: "team-a"}), store.ErrInvalid)

	got, err := s.GetAPIKeyByHash(ctx, k1.Hash)
	must(t, err)
	if got.ID != k1.ID || got.Project != "team-a" || got.Hint != k1.Hint || got.CreatedAt != 10 || got.RevokedAt != 0 || !bytes.Equal(got.Hash, k1.Hash) {
		t.Fatalf("GetAPIKeyByHash = %+v, want %+v", got, k1)
	}
	got.Hash[0] = 'X' // a copy
	if again, _ := s.GetAPIKeyByHash(ctx, k1.Hash); again.ID != k1.ID {
		t.Fatal("changing a returned key changed the store")
	}
	_, err = s.GetAPIKeyByHash(ctx, []byte("no-such-hash"))
	wantErr(t, err, store.ErrNotFound)

	pg, err := s.ListAPIKeys(ctx, store.ListParams{})
	must(t, err)
	if len(pg.Items) != 2 || pg.Items[0].ID != k1.ID || pg.Items[1].ID != k2.ID || pg.HasMore {
		t.Fatalf("ListAPIKeys = %+v", pg)
	}
	pg, err = s.ListAPIKeys(ctx, store.ListParams{Limit: 1})
	must(t, err)
	if len(pg.Items) != 1 || !pg.HasMore {
		t.Fatalf("ListAPIKeys(limit 1) = %+v", pg)
	}

	r, err := s.RevokeAPIKey(ctx, k1.ID, 100)
	must(t, err)
	if r.RevokedAt != 100 {
		t.Fatalf("revoked key: RevokedAt %d, want 100", r.RevokedAt)
	}
	r, err = s.RevokeAPIKey(ctx, k1.ID, 200) // again: keeps the first time
	must(t, err)
	if r.RevokedAt != 100 {
		t.Fatalf("revoked twice: RevokedAt %d, want 100", r.RevokedAt)
	}
	got, err = s.GetAPIKeyByHash(ctx, k1.Hash)
	must(t, err)
	if got.RevokedAt != 100 {
		t.Fatalf("looked up after revoke: RevokedAt %d, want 100", got.RevokedAt)
	}
	if other, _ := s.GetAPIKeyByHash(ctx, k2.Hash); other.RevokedAt != 0 {
		t.Fatal("revoking one key revoked another")
	}
	_, err = s.RevokeAPIKey(ctx, "key_unknown", 1)
	wantErr(t, err, store.ErrNotFound)
}

func testCountActiveRuns(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	must(t, s.CreateProject(ctx, store.Project{ID: "team-b", CreatedAt: 1}))
	count := func(project string) int {
		t.Helper()
		n, err := s.CountActiveRuns(ctx, project)
		must(t, err)
		return n
	}
	if n := count(store.DefaultProject); n != 0 {
		t.Fatalf("empty store: %d active runs", n)
	}
	var runs []store.Run
	for range 3 {
		th := newThread(t, s)
		r := queuedRun(th.ID)
		_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
		must(t, err)
		runs = append(runs, r)
	}
	bt := store.Thread{Project: "team-b", ID: newID("thread_"), CreatedAt: 1, Data: data("b")}
	must(t, s.CreateThread(ctx, bt, nil))
	br := queuedRun(bt.ID)
	br.Project = "team-b"
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: br})
	must(t, err)
	if a, b := count(store.DefaultProject), count("team-b"); a != 3 || b != 1 {
		t.Fatalf("active runs: default %d, team-b %d; want 3 and 1", a, b)
	}
	_, _, err = s.UpdateRun(ctx, "", runs[0].ThreadID, runs[0].ID, setStatus("completed"))
	must(t, err)
	_, _, err = s.UpdateRun(ctx, "", runs[1].ThreadID, runs[1].ID, setStatus(store.RunRequiresAction))
	must(t, err)
	if n := count(store.DefaultProject); n != 2 {
		t.Fatalf("after one run completed: %d active runs, want 2", n)
	}
}
