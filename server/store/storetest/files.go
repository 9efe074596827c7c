package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// trickleReader hands out at most n bytes per Read, like a slow upload.
type trickleReader struct {
	r io.Reader
	n int
}

func (t trickleReader) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), t.n)]) }

func testFiles(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 700_001) // several chunks and a short last one
	for i := range body {
		body[i] = byte(rng.UintN(256))
	}
	f := store.File{ID: newID("file-"), Purpose: "assistants", Filename: "data.bin", ContentType: "application/octet-stream", CreatedAt: 5, ExpiresAt: 99, Bytes: 1}
	got, err := s.CreateFile(ctx, f, trickleReader{bytes.NewReader(body), 10_000}, int64(len(body)), nil)
	must(t, err)
	if got.Bytes != int64(len(body)) || got.Project != store.DefaultProject {
		t.Fatalf("created %+v", got)
	}
	_, err = s.CreateFile(ctx, f, bytes.NewReader(nil), 0, nil)
	wantErr(t, err, store.ErrConflict)

	gf, err := s.GetFile(ctx, "", f.ID)
	must(t, err)
	f.Bytes, f.Project = int64(len(body)), store.DefaultProject
	if gf != f {
		t.Fatalf("got %+v, want %+v", gf, f)
	}
	rc, err := s.OpenFile(ctx, "", f.ID)
	must(t, err)
	back, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if !bytes.Equal(back, body) {
		t.Fatalf("read back %d bytes, differ from the %d written", len(back), len(body))
	}

	// Empty files are files.
	empty, err := s.CreateFile(ctx, store.File{ID: newID("file-"), Purpose: "assistants", Filename: "e"}, bytes.NewReader(nil), 10, nil)
	must(t, err)
	rc, err = s.OpenFile(ctx, "", empty.ID)
	must(t, err)
	back, err = io.ReadAll(rc)
	must(t, err)
	rc.Close()
	if empty.Bytes != 0 || len(back) != 0 {
		t.Fatalf("empty file: %d bytes, read %d", empty.Bytes, len(back))
	}

	// Too large: nothing is stored, the id stays free.
	big := store.File{ID: newID("file-"), Purpose: "assistants", Filename: "big"}
	_, err = s.CreateFile(ctx, big, bytes.NewReader(body), int64(len(body))-1, nil)
	wantErr(t, err, store.ErrTooLarge)
	_, err = s.GetFile(ctx, "", big.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.OpenFile(ctx, "", big.ID)
	wantErr(t, err, store.ErrNotFound)
	// A failing reader: nothing is stored either.
	broken := errors.New("connection reset")
	_, err = s.CreateFile(ctx, big, io.MultiReader(bytes.NewReader(body[:300_000]), errReader{broken}), 0, nil)
	if !errors.Is(err, broken) {
		t.Fatalf("failing upload: %v", err)
	}
	p, err := s.ListFiles(ctx, "", "", store.ListParams{Limit: 100})
	must(t, err)
	if ids := ids(p.Items, func(f store.File) string { return f.ID }); !slices.Equal(ids, []string{f.ID, empty.ID}) {
		t.Fatalf("files %v", ids)
	}
	got, err = s.CreateFile(ctx, big, bytes.NewReader([]byte("now it fits")), 0, nil)
	must(t, err)
	if got.Bytes != 11 {
		t.Fatalf("bytes %d", got.Bytes)
	}

	// finish sets the fields once the bytes are read (not the id), before
	// the file is visible; its error stores nothing.
	late := store.File{ID: newID("file-"), Filename: "late", CreatedAt: 1}
	finished := false
	got, err = s.CreateFile(ctx, late, bytes.NewReader(body[:1000]), 0, func(f *store.File) error {
		if _, err := s.GetFile(ctx, "", late.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("file visible before finish: %v", err)
		}
		finished = true
		f.ID, f.Purpose, f.Filename, f.ContentType, f.CreatedAt, f.ExpiresAt = "file-other", "batch", "late.txt", "text/plain", 7, 3607
		return nil
	})
	must(t, err)
	want := store.File{ID: late.ID, Project: store.DefaultProject, Purpose: "batch", Filename: "late.txt", ContentType: "text/plain", Bytes: 1000, CreatedAt: 7, ExpiresAt: 3607}
	if gf, err := s.GetFile(ctx, "", late.ID); err != nil || gf != want || got != want || !finished {
		t.Fatalf("finished file: got %+v and %+v (%v), want %+v", got, gf, err, want)
	}
	refused := errors.New("bad field")
	failed := store.File{ID: newID("file-"), Purpose: "assistants", Filename: "f"}
	_, err = s.CreateFile(ctx, failed, bytes.NewReader(body), 0, func(*store.File) error { return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("finish failed: %v", err)
	}
	_, err = s.GetFile(ctx, "", failed.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.DeleteFile(ctx, "", late.ID)
	must(t, err)

	// Deleting a file detaches it from vector stores and ends open readers.
	vs1, vs2 := newID("vs_"), newID("vs_")
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs1}, []store.VectorStoreFile{{FileID: f.ID, Status: "completed"}, {FileID: big.ID, Status: "completed"}}))
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs2}, []store.VectorStoreFile{{FileID: f.ID, Status: "in_progress"}}))
	_, err = s.UpdateVectorStoreFile(ctx, "", vs1, f.ID, func(*store.VectorStoreFile) ([]store.Chunk, error) {
		return []store.Chunk{{Text: "a"}}, nil
	})
	must(t, err)
	rc, err = s.OpenFile(ctx, "", f.ID)
	must(t, err)
	defer rc.Close()
	detached, err := s.DeleteFile(ctx, "", f.ID)
	must(t, err)
	if !slices.Equal(detached, []string{vs1, vs2}) {
		t.Fatalf("detached from %v", detached)
	}
	_, err = io.ReadAll(rc)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.DeleteFile(ctx, "", f.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetVectorStoreFile(ctx, "", vs1, f.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetVectorStoreFile(ctx, "", vs1, big.ID)
	must(t, err)
	var chunks []store.Chunk
	must(t, s.ScanChunks(ctx, "", vs1, func(c store.Chunk) error { chunks = append(chunks, c); return nil }))
	if len(chunks) != 0 {
		t.Fatalf("chunks of a deleted file remain: %+v", chunks)
	}
	counts, err := s.VectorStoreFileCounts(ctx, "", vs2)
	must(t, err)
	if len(counts) != 0 {
		t.Fatalf("counts %v", counts)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func testVectorStores(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	vs := store.VectorStore{ID: newID("vs_"), CreatedAt: 4, Data: data("v")}
	f1, f2 := newID("file-"), newID("file-")
	must(t, s.CreateVectorStore(ctx, vs, []store.VectorStoreFile{
		{FileID: f1, Status: "in_progress", Data: data("1")}, {FileID: f2, Status: "in_progress", Data: data("2")}}))
	wantErr(t, s.CreateVectorStore(ctx, vs, nil), store.ErrConflict)
	gv, err := s.GetVectorStore(ctx, "", vs.ID)
	must(t, err)
	eqData(t, gv.Data, data("v"))
	uv, err := s.UpdateVectorStore(ctx, "", vs.ID, func(v *store.VectorStore) error { v.Data = data("v2"); return nil })
	must(t, err)
	eqData(t, uv.Data, data("v2"))

	counts, err := s.VectorStoreFileCounts(ctx, "", vs.ID)
	must(t, err)
	if counts["in_progress"] != 2 || len(counts) != 1 {
		t.Fatalf("counts %v", counts)
	}

	// Processing a file: status and chunks in one write.
	chunks := []store.Chunk{{Text: "alpha"}, {Text: "beta"}, {Text: "gamma"}}
	uf, err := s.UpdateVectorStoreFile(ctx, "", vs.ID, f1, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		f.Status = "completed"
		f.Data = data("1b")
		return chunks, nil
	})
	must(t, err)
	if uf.Status != "completed" || uf.VectorStoreID != vs.ID {
		t.Fatalf("updated %+v", uf)
	}
	_, err = s.UpdateVectorStoreFile(ctx, "", vs.ID, f2, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		f.Status = "completed"
		return []store.Chunk{{Text: "delta"}}, nil
	})
	must(t, err)
	// A failing update writes neither status nor chunks.
	boom := errors.New("boom")
	_, err = s.UpdateVectorStoreFile(ctx, "", vs.ID, f2, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		f.Status = "failed"
		return []store.Chunk{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	// nil chunks keep the stored ones.
	_, err = s.UpdateVectorStoreFile(ctx, "", vs.ID, f1, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		f.Data = data("1c")
		return nil, nil
	})
	must(t, err)
	scan := func() []string {
		var out []string
		must(t, s.ScanChunks(ctx, "", vs.ID, func(c store.Chunk) error {
			if c.VectorStoreID != vs.ID {
				t.Fatalf("chunk %+v", c)
			}
			out = append(out, c.FileID[len(c.FileID)-2:]+":"+string(rune('0'+c.Index))+":"+c.Text)
			return nil
		}))
		return out
	}
	suffix := func(id string) string { return id[len(id)-2:] }
	want := []string{suffix(f1) + ":0:alpha", suffix(f1) + ":1:beta", suffix(f1) + ":2:gamma", suffix(f2) + ":0:delta"}
	if got := scan(); !slices.Equal(got, want) {
		t.Fatalf("chunks %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err = s.ScanChunks(ctx, "", vs.ID, func(store.Chunk) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stopped scan: %v after %d", err, n)
	}
	counts, _ = s.VectorStoreFileCounts(ctx, "", vs.ID)
	if counts["completed"] != 2 || len(counts) != 1 {
		t.Fatalf("counts %v", counts)
	}

	// Re-attaching a file replaces it and drops its chunks.
	must(t, s.PutVectorStoreFile(ctx, store.VectorStoreFile{VectorStoreID: vs.ID, FileID: f2, Status: "in_progress"}))
	if got := scan(); !slices.Equal(got, want[:3]) {
		t.Fatalf("chunks after re-attach %v", got)
	}
	wantErr(t, s.PutVectorStoreFile(ctx, store.VectorStoreFile{VectorStoreID: "vs_missing", FileID: f2}), store.ErrNotFound)
	must(t, s.DeleteVectorStoreFile(ctx, "", vs.ID, f1))
	wantErr(t, s.DeleteVectorStoreFile(ctx, "", vs.ID, f1), store.ErrNotFound)
	if got := scan(); len(got) != 0 {
		t.Fatalf("chunks after detach %v", got)
	}

	must(t, s.DeleteVectorStore(ctx, "", vs.ID))
	wantErr(t, s.DeleteVectorStore(ctx, "", vs.ID), store.ErrNotFound)
	_, err = s.GetVectorStoreFile(ctx, "", vs.ID, f2)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ListVectorStoreFiles(ctx, "", vs.ID, "", "", store.ListParams{})
	wantErr(t, err, store.ErrNotFound)
	err = s.ScanChunks(ctx, "", vs.ID, func(store.Chunk) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	// A new store with the old one's file shows no stale chunks.
	vs3 := newID("vs_")
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs3}, []store.VectorStoreFile{{FileID: f2, Status: "in_progress"}}))
	if err := s.ScanChunks(ctx, "", vs3, func(c store.Chunk) error { return errors.New("unexpected chunk") }); err != nil {
		t.Fatal(err)
	}
}

func testFileBatches(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	vs := newID("vs_")
	must(t, s.CreateVectorStore(ctx, store.VectorStore{ID: vs}, nil))
	b := store.FileBatch{ID: newID("vsfb_"), VectorStoreID: vs, CreatedAt: 8, Data: data("b")}
	files := []store.VectorStoreFile{{FileID: newID("file-"), Status: "in_progress"}, {FileID: newID("file-"), Status: "in_progress"}}
	must(t, s.CreateFileBatch(ctx, b, files))
	wantErr(t, s.CreateFileBatch(ctx, b, nil), store.ErrConflict)
	wantErr(t, s.CreateFileBatch(ctx, store.FileBatch{ID: newID("vsfb_"), VectorStoreID: "vs_missing"}, nil), store.ErrNotFound)
	gb, err := s.GetFileBatch(ctx, "", vs, b.ID)
	must(t, err)
	if gb.Project != store.DefaultProject || gb.CreatedAt != 8 {
		t.Fatalf("batch %+v", gb)
	}
	eqData(t, gb.Data, data("b"))
	gf, err := s.GetVectorStoreFile(ctx, "", vs, files[0].FileID)
	must(t, err)
	if gf.BatchID != b.ID {
		t.Fatalf("file's batch %q", gf.BatchID)
	}
	ub, err := s.UpdateFileBatch(ctx, "", vs, b.ID, func(b *store.FileBatch) error { b.Data = data("cancelled"); return nil })
	must(t, err)
	eqData(t, ub.Data, data("cancelled"))
	_, err = s.GetFileBatch(ctx, "", "vs_other", b.ID)
	wantErr(t, err, store.ErrNotFound)
	// Batches keep their data when their files leave.
	must(t, s.DeleteVectorStoreFile(ctx, "", vs, files[0].FileID))
	gb, err = s.GetFileBatch(ctx, "", vs, b.ID)
	must(t, err)
	eqData(t, gb.Data, data("cancelled"))
	must(t, s.DeleteVectorStore(ctx, "", vs))
	_, err = s.GetFileBatch(ctx, "", vs, b.ID)
	wantErr(t, err, store.ErrNotFound)
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	rec := store.IdempotencyRecord{Key: "k1", Fingerprint: []byte("fp"), ExpiresAt: now.Add(time.Minute)}
	_, claimed, err := s.ClaimIdempotencyKey(ctx, rec, now)
	must(t, err)
	if !claimed {
		t.Fatal("first claim not claimed")
	}
	old, claimed, err := s.ClaimIdempotencyKey(ctx, rec, now.Add(time.Second))
	must(t, err)
	if claimed || old.State != store.IdemPending || !bytes.Equal(old.Fingerprint, []byte("fp")) || old.Project != store.DefaultProject {
		t.Fatalf("second claim: %+v %v", old, claimed)
	}
	done := rec
	done.State, done.Status, done.Header, done.Body, done.ExpiresAt = store.IdemDone, 200, []byte(`{"A":["b"]}`), []byte("body"), now.Add(time.Hour)
	mustCAS(t, "complete")(s.CompleteIdempotencyKey(ctx, done, rec.ExpiresAt))
	old, claimed, err = s.ClaimIdempotencyKey(ctx, rec, now.Add(30*time.Minute))
	must(t, err)
	if claimed || old.State != store.IdemDone || old.Status != 200 || string(old.Body) != "body" || string(old.Header) != `{"A":["b"]}` || !old.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("replay record: %+v %v", old, claimed)
	}
	// Expired: claimable again; the claim returns the record it replaced.
	rec.ExpiresAt = now.Add(2 * time.Hour)
	old, claimed, err = s.ClaimIdempotencyKey(ctx, rec, now.Add(time.Hour))
	must(t, err)
	if !claimed {
		t.Fatal("expired key not claimable")
	}
	if old.State != store.IdemDone || string(old.Body) != "body" || !old.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("the replaced record: %+v", old)
	}
	// A lapsed claim replaced: returned with its body (what it names).
	_, _, err = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "lapsed", Body: []byte(`{"id":"a"}`), ExpiresAt: now.Add(time.Second)}, now)
	must(t, err)
	old, claimed, err = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "lapsed", Body: []byte(`{"id":"b"}`), ExpiresAt: now.Add(10 * time.Hour)}, now.Add(time.Second))
	must(t, err)
	if !claimed || old.State != store.IdemPending || string(old.Body) != `{"id":"a"}` || old.Key != "lapsed" {
		t.Fatalf("the lapsed claim replaced: %+v %v", old, claimed)
	}
	// No record before: the zero record.
	old, claimed, err = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "fresh", ExpiresAt: now.Add(10 * time.Hour)}, now)
	must(t, err)
	if !claimed || old.Key != "" || old.Body != nil {
		t.Fatalf("a fresh claim: %+v %v", old, claimed)
	}
	if ok, err := s.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: "nope"}, now); err != nil || ok {
		t.Fatalf("an unknown key was completed: %v %v", ok, err)
	}

	// TTL cleanup.
	for i, d := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Hour} {
		_, _, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "ttl" + string(rune('a'+i)), ExpiresAt: now.Add(d)}, now)
		must(t, err)
	}
	n, err := s.DeleteExpiredIdempotencyKeys(ctx, now.Add(2*time.Minute), now.Add(2*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("cleanup removed %d, want 2", n)
	}
	_, claimed, _ = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "ttlc", ExpiresAt: now.Add(time.Hour)}, now.Add(3*time.Minute))
	if claimed {
		t.Fatal("cleanup removed a live key")
	}
	_, claimed, _ = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "ttla", ExpiresAt: now.Add(time.Hour)}, now)
	if !claimed {
		t.Fatal("a removed key is not claimable")
	}
	mustCAS(t, "delete")(s.DeleteIdempotencyKey(ctx, "ttla", now.Add(time.Hour)))
	if ok, err := s.DeleteIdempotencyKey(ctx, "ttla", now.Add(time.Hour)); err != nil || ok {
		t.Fatalf("a deleted key was deleted again: %v %v", ok, err)
	}
	_, claimed, _ = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "ttla", ExpiresAt: now.Add(time.Hour)}, now)
	if !claimed {
		t.Fatal("a deleted key is not claimable")
	}
}

// testIdempotencySweepKeepsLapsed: the TTL cleanup removes expired
// answers at once, and claims whose lease lapsed (they name what their
// claimant may have made) only once they lapsed before lapsedBefore; a
// lapsed claim kept is returned to the request that claims the key over
// it.
func testIdempotencySweepKeepsLapsed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_900_000_000, 0)
	lease := 10 * time.Second
	claim := func(key string, at time.Time, body string) (store.IdempotencyRecord, bool) {
		t.Helper()
		old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, Body: []byte(body), ExpiresAt: at.Add(lease)}, at)
		must(t, err)
		return old, claimed
	}
	claim("lapsed", now, `{"id":"made"}`)
	claim("answered", now, "")
	mustCAS(t, "complete")(s.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: "answered", State: store.IdemDone, Status: 200,
		Body: []byte("answer"), ExpiresAt: now.Add(lease)}, now.Add(lease)))
	claim("live", now.Add(time.Minute), "")

	sweep := now.Add(time.Minute)
	n, err := s.DeleteExpiredIdempotencyKeys(ctx, sweep, sweep.Add(-time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("cleanup removed %d, want 1 (the expired answer)", n)
	}
	if old, claimed := claim("answered", sweep, ""); !claimed || old.Key != "" {
		t.Fatalf("the expired answer was kept: %+v %v", old, claimed)
	}
	if _, claimed := claim("live", sweep, ""); claimed {
		t.Fatal("cleanup removed a live claim")
	}
	// Past the grace: removed.
	n, err = s.DeleteExpiredIdempotencyKeys(ctx, sweep, now.Add(lease))
	must(t, err)
	if n != 1 {
		t.Fatalf("cleanup past the grace removed %d, want 1 (the lapsed claim)", n)
	}
	if old, claimed := claim("lapsed", sweep, ""); !claimed || old.Key != "" {
		t.Fatalf("the lapsed claim past the grace was kept: %+v %v", old, claimed)
	}

	// Within the grace, a request that claims the key over the lapsed
	// claim learns what it names.
	claim("lapsed2", now, `{"id":"made"}`)
	_, err = s.DeleteExpiredIdempotencyKeys(ctx, sweep, sweep.Add(-time.Hour))
	must(t, err)
	old, claimed := claim("lapsed2", sweep, "")
	if !claimed || old.State != store.IdemPending || string(old.Body) != `{"id":"made"}` {
		t.Fatalf("the lapsed claim within the grace: %+v %v", old, claimed)
	}
}

// testIdempotencyRewriteClaim: CompleteIdempotencyKey with a pending
// record rewrites the caller's claim (its body and lease), which stays a
// claim: renewable at its new lease, live until it, and returned, as it
// was rewritten, to the request that claims the key over it.
func testIdempotencyRewriteClaim(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_900_000_000, 0)
	lease := 10 * time.Second
	_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "rw", Body: []byte("first"), ExpiresAt: now.Add(lease)}, now)
	must(t, err)
	if !claimed {
		t.Fatal("not claimed")
	}
	mustCAS(t, "rewrite")(s.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: "rw", State: store.IdemPending, Body: []byte("second"), ExpiresAt: now.Add(lease)}, now.Add(lease)))
	mustCAS(t, "renew")(s.RenewIdempotencyKey(ctx, "rw", now.Add(lease), now.Add(2*lease)))
	old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "rw", ExpiresAt: now.Add(3 * lease)}, now.Add(lease))
	must(t, err)
	if claimed || old.State != store.IdemPending || string(old.Body) != "second" {
		t.Fatalf("the rewritten claim, live: %+v %v", old, claimed)
	}
	// Rewritten already expired (a marker): claimable at once.
	mustCAS(t, "expire")(s.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: "rw", State: store.IdemPending, Body: []byte("marker"), ExpiresAt: now.Add(lease)}, now.Add(2*lease)))
	old, claimed, err = s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "rw", ExpiresAt: now.Add(3 * lease)}, now.Add(lease))
	must(t, err)
	if !claimed || old.State != store.IdemPending || string(old.Body) != "marker" {
		t.Fatalf("the marker replaced: %+v %v", old, claimed)
	}
}

// testIdempotencyRenew: a claimant's heartbeat extends its own pending
// claim, so the key stays held past the first lease; it cannot extend a
// claim that was answered, deleted, or taken over after it expired.
func testIdempotencyRenew(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	const lease = 10 * time.Second
	// Sub-microsecond parts are not stored: renewals match at the microsecond.
	held := now.Add(lease + 700*time.Nanosecond)
	claim := func(key string, exp, at time.Time) bool {
		t.Helper()
		_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, Fingerprint: []byte("fp"), Body: []byte("intent"), ExpiresAt: exp}, at)
		must(t, err)
		return claimed
	}
	renew := func(key string, held, until time.Time) bool {
		t.Helper()
		ok, err := s.RenewIdempotencyKey(ctx, key, held, until)
		must(t, err)
		return ok
	}
	if !claim("r1", held, now) {
		t.Fatal("first claim not claimed")
	}
	// Renewed twice: the key is held past the first lease (and the second).
	next := now.Add(2 * lease)
	if !renew("r1", held, next) {
		t.Fatal("the claimant's renewal was refused")
	}
	if !renew("r1", next, now.Add(3*lease)) {
		t.Fatal("the second renewal was refused")
	}
	if claim("r1", now.Add(5*lease), now.Add(2*lease)) {
		t.Fatal("a renewed claim was taken over before its renewed lease ended")
	}
	old, _, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "r1", ExpiresAt: now.Add(5 * lease)}, now.Add(2*lease))
	must(t, err)
	if old.State != store.IdemPending || !old.ExpiresAt.Equal(now.Add(3*lease)) || string(old.Body) != "intent" || string(old.Fingerprint) != "fp" {
		t.Fatalf("renewed record: %+v", old)
	}
	// A stale lease (not the one the record holds) renews nothing.
	if renew("r1", next, now.Add(4*lease)) {
		t.Fatal("a renewal with a stale lease was accepted")
	}
	// Expired and taken over by another request: the old claimant's
	// renewal is refused and the new claim keeps its own lease.
	if !claim("r1", now.Add(5*lease), now.Add(3*lease)) {
		t.Fatal("an expired claim was not claimable")
	}
	if renew("r1", now.Add(3*lease), now.Add(6*lease)) {
		t.Fatal("the old claimant renewed a claim taken over")
	}
	if !renew("r1", now.Add(5*lease), now.Add(6*lease)) {
		t.Fatal("the new claimant's renewal was refused")
	}
	// Answered: nothing to renew, the answer's expiry stays.
	done := store.IdempotencyRecord{Key: "r1", Fingerprint: []byte("fp"), State: store.IdemDone, Status: 200, Body: []byte("body"), ExpiresAt: now.Add(6 * lease)}
	mustCAS(t, "complete")(s.CompleteIdempotencyKey(ctx, done, now.Add(6*lease)))
	if renew("r1", now.Add(6*lease), now.Add(time.Hour)) {
		t.Fatal("an answered record was renewed")
	}
	if !claim("r1", now.Add(time.Hour), now.Add(6*lease)) {
		t.Fatal("a renewal kept an answered record past its expiry")
	}
	// Gone: nothing to renew.
	mustCAS(t, "delete")(s.DeleteIdempotencyKey(ctx, "r1", now.Add(time.Hour)))
	if renew("r1", now.Add(time.Hour), now.Add(2*time.Hour)) {
		t.Fatal("a deleted claim was renewed")
	}
	if renew("nope", now, now.Add(time.Hour)) {
		t.Fatal("an unknown key was renewed")
	}
}

// testIdempotencyCompareAndSet: completing or dropping a claim is a
// compare-and-set on the claimant's lease, like a renewal: a claimant
// whose lease ended and whose key another request claimed cannot replace
// or drop that request's claim, nor its answer; its own claim it can.
func testIdempotencyCompareAndSet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	const lease = 10 * time.Second
	heldA := now.Add(lease + 300*time.Nanosecond) // compared to the microsecond
	claim := func(key, body string, exp, at time.Time) {
		t.Helper()
		_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, Fingerprint: []byte("fp"), Body: []byte(body), ExpiresAt: exp}, at)
		must(t, err)
		if !claimed {
			t.Fatalf("%s: not claimed", body)
		}
	}
	record := func(key string, at time.Time) store.IdempotencyRecord {
		t.Helper()
		old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, ExpiresAt: at.Add(time.Hour)}, at)
		must(t, err)
		if claimed {
			t.Fatalf("%s: the record is gone", key)
		}
		return old
	}
	answer := func(key, body string, exp time.Time) store.IdempotencyRecord {
		return store.IdempotencyRecord{Key: key, Fingerprint: []byte("fp"), State: store.IdemDone, Status: 200, Body: []byte(body), ExpiresAt: exp}
	}
	refused := func(what string, ok bool, err error) {
		t.Helper()
		must(t, err)
		if ok {
			t.Fatalf("%s was accepted", what)
		}
	}

	// A claims; its lease ends; B claims the key.
	claim("cas1", "A", heldA, now)
	heldB := now.Add(lease + 2*time.Second)
	claim("cas1", "B", heldB, now.Add(lease+time.Second))
	// A's answer and A's delete are refused: B's claim stays.
	ok, err := s.CompleteIdempotencyKey(ctx, answer("cas1", "A's answer", now.Add(time.Hour)), heldA)
	refused("the answer of a claimant that lost its lease", ok, err)
	ok, err = s.DeleteIdempotencyKey(ctx, "cas1", heldA)
	refused("the delete of a claimant that lost its lease", ok, err)
	if r := record("cas1", now.Add(lease+time.Second)); r.State != store.IdemPending || string(r.Body) != "B" || !r.ExpiresAt.Equal(heldB) {
		t.Fatalf("B's claim: %+v", r)
	}
	// B answers (its own lease); A's late answer and delete do not touch it.
	mustCAS(t, "B's answer")(s.CompleteIdempotencyKey(ctx, answer("cas1", "B's answer", now.Add(time.Hour)), heldB))
	ok, err = s.CompleteIdempotencyKey(ctx, answer("cas1", "A's answer", now.Add(2*time.Hour)), heldA)
	refused("a late answer over another request's answer", ok, err)
	ok, err = s.DeleteIdempotencyKey(ctx, "cas1", heldA)
	refused("a late delete of another request's answer", ok, err)
	// Not even with the answer's own expiry: an answer is not a claim.
	ok, err = s.CompleteIdempotencyKey(ctx, answer("cas1", "A's answer", now.Add(2*time.Hour)), now.Add(time.Hour))
	refused("an answer over an answer", ok, err)
	ok, err = s.DeleteIdempotencyKey(ctx, "cas1", now.Add(time.Hour))
	refused("the delete of an answer", ok, err)
	if r := record("cas1", now.Add(lease+time.Second)); r.State != store.IdemDone || string(r.Body) != "B's answer" || !r.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("B's answer: %+v", r)
	}

	// A claimant whose lease ended but whose key nobody claimed still
	// answers (its record is the one it wrote), and drops its own claim.
	claim("cas2", "A", heldA, now)
	mustCAS(t, "an expired claim's own answer")(s.CompleteIdempotencyKey(ctx, answer("cas2", "A's answer", now.Add(time.Hour)), heldA))
	if r := record("cas2", now.Add(2*lease)); string(r.Body) != "A's answer" {
		t.Fatalf("A's answer: %+v", r)
	}
	claim("cas3", "A", heldA, now)
	mustCAS(t, "the claimant's delete")(s.DeleteIdempotencyKey(ctx, "cas3", heldA))
	claim("cas3", "C", now.Add(time.Hour), now) // free again at once
}

// mustCAS returns a check that fails the test unless the compare-and-set
// (what) it is given the outcome of was applied.
func mustCAS(t *testing.T, what string) func(ok bool, err error) {
	t.Helper()
	return func(ok bool, err error) {
		t.Helper()
		must(t, err)
		if !ok {
			t.Fatalf("%s: refused", what)
		}
	}
}

// testVectorStoreJobs: the writes that attach files enqueue their jobs in
// the same transaction: a committed write has them, a refused one has none.
func testVectorStoreJobs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	job := func(step string) store.Job { return store.Job{Args: testJob{RunID: "vsjobs", Step: step}} }
	vs := store.VectorStore{ID: newID("vs_"), CreatedAt: 1, Data: data("v")}
	f1, f2, f3 := newID("file-"), newID("file-"), newID("file-")
	must(t, s.CreateVectorStore(ctx, vs, []store.VectorStoreFile{{FileID: f1, Status: "in_progress", Data: data("1")}}, job("create")))
	wantErr(t, s.CreateVectorStore(ctx, vs, nil, job("lost-conflict")), store.ErrConflict)
	must(t, s.PutVectorStoreFile(ctx, store.VectorStoreFile{VectorStoreID: vs.ID, FileID: f2, Status: "in_progress", Data: data("2")}, job("put")))
	wantErr(t, s.PutVectorStoreFile(ctx, store.VectorStoreFile{VectorStoreID: "vs_missing", FileID: f2, Status: "in_progress"}, job("lost-missing")), store.ErrNotFound)
	b := store.FileBatch{ID: newID("vsfb_"), VectorStoreID: vs.ID, CreatedAt: 2, Data: data("b")}
	must(t, s.CreateFileBatch(ctx, b, []store.VectorStoreFile{{FileID: f3, Status: "in_progress", Data: data("3")}}, job("batch")))
	wantErr(t, s.CreateFileBatch(ctx, b, nil, job("lost-batch")), store.ErrConflict)
	// Args that do not encode: nothing written.
	bad := store.VectorStore{ID: newID("vs_"), CreatedAt: 3}
	if err := s.CreateVectorStore(ctx, bad, nil, store.Job{Args: badJob{C: make(chan int)}}); err == nil {
		t.Fatal("a job whose args do not encode was accepted")
	}
	wantErr(t, func() error { _, err := s.GetVectorStore(ctx, "", bad.ID); return err }(), store.ErrNotFound)

	jobs, err := s.ListJobs(ctx, testJob{}.Kind())
	must(t, err)
	var got []string
	for _, j := range jobs {
		var a testJob
		must(t, json.Unmarshal(j.Args, &a))
		if a.RunID == "vsjobs" {
			got = append(got, a.Step)
		}
	}
	if want := []string{"create", "put", "batch"}; !slices.Equal(got, want) {
		t.Fatalf("jobs %v, want %v", got, want)
	}
}

// claimToken claims key with the body {"id":"token"} and returns a
// function that reads the claim's body, failing the test when the claim is
// gone.
func claimToken(t *testing.T, s store.Store, key string, now time.Time) (body func() string) {
	t.Helper()
	ctx := ctxT(t)
	_, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, Fingerprint: []byte("fp"),
		Body: []byte(`{"id":"token"}`), ExpiresAt: now.Add(time.Minute)}, now)
	must(t, err)
	if !claimed {
		t.Fatal("not claimed")
	}
	return func() string {
		t.Helper()
		old, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: key, ExpiresAt: now.Add(time.Hour)}, now)
		must(t, err)
		if claimed {
			t.Fatal("the claim is gone")
		}
		return string(old.Body)
	}
}

// testCreateMessageClaimed: a message stored for a claim makes the claim
// name it in the same write; when the claim is no longer the caller's
// (another body: another request claimed the key; or answered), nothing is
// written and the error is ErrClaimLost.
func testCreateMessageClaimed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	th := newThread(t, s)
	body := claimToken(t, s, "cmc1", now)
	exists := func(id string) bool {
		t.Helper()
		_, err := s.GetMessage(ctx, "", th.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		must(t, err)
		return true
	}

	m1 := store.Message{ID: newID("msg_"), ThreadID: th.ID, CreatedAt: 10, Data: data("m1")}
	wantErr(t, s.CreateMessageClaimed(ctx, m1, store.Claim{Key: "cmc1", Body: []byte(`{"id":"another"}`), Named: []byte(`{"id":"` + m1.ID + `"}`)}), store.ErrClaimLost)
	if exists(m1.ID) || body() != `{"id":"token"}` {
		t.Fatal("a message for a claim not the caller's was written")
	}
	must(t, s.CreateMessageClaimed(ctx, m1, store.Claim{Key: "cmc1", Body: []byte(`{"id":"token"}`), Named: []byte(`{"id":"` + m1.ID + `"}`)}))
	if !exists(m1.ID) || body() != `{"id":"`+m1.ID+`"}` {
		t.Fatalf("message stored %v, claim body %s", exists(m1.ID), body())
	}
	// The claim names m1 now: the old body no longer matches.
	m2 := store.Message{ID: newID("msg_"), ThreadID: th.ID, CreatedAt: 11, Data: data("m2")}
	wantErr(t, s.CreateMessageClaimed(ctx, m2, store.Claim{Key: "cmc1", Body: []byte(`{"id":"token"}`), Named: []byte(`{"id":"` + m2.ID + `"}`)}), store.ErrClaimLost)
	wantErr(t, s.CreateMessageClaimed(ctx, m2, store.Claim{Key: "no-such-key", Body: []byte(`{"id":"token"}`), Named: []byte(`{}`)}), store.ErrClaimLost)
	if exists(m2.ID) {
		t.Fatal("a message for a lost claim was written")
	}
}

// testCreateFileClaimed: a file stored for a claim becomes visible in the
// write that makes the claim name it; when the claim is no longer the
// caller's (another body: another request claimed the key; or answered),
// the file never becomes visible, its id is free again, and the error is
// ErrClaimLost.
func testCreateFileClaimed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Unix(1_800_000_000, 0)
	body := claimToken(t, s, "cfc1", now)
	exists := func(id string) bool {
		t.Helper()
		_, err := s.GetFile(ctx, "", id)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		must(t, err)
		return true
	}
	content := bytes.Repeat([]byte("claimed "), 70_000) // several chunks
	f := store.File{ID: newID("file-"), Purpose: "assistants", Filename: "c.txt", ContentType: "text/plain", CreatedAt: 5}
	_, err := s.CreateFileClaimed(ctx, f, bytes.NewReader(content), 0, nil, store.Claim{Key: "cfc1", Body: []byte(`{"id":"another"}`), Named: []byte(`{"id":"` + f.ID + `"}`)})
	wantErr(t, err, store.ErrClaimLost)
	if exists(f.ID) || body() != `{"id":"token"}` {
		t.Fatal("a file for a claim not the caller's was made visible")
	}
	got, err := s.CreateFileClaimed(ctx, f, bytes.NewReader(content), 0, nil, store.Claim{Key: "cfc1", Body: []byte(`{"id":"token"}`), Named: []byte(`{"id":"` + f.ID + `"}`)})
	must(t, err) // the id is free again after the lost claim
	if got.Bytes != int64(len(content)) || !exists(f.ID) || body() != `{"id":"`+f.ID+`"}` {
		t.Fatalf("file stored %+v %v, claim body %s", got, exists(f.ID), body())
	}
	rc, err := s.OpenFile(ctx, "", f.ID)
	must(t, err)
	read, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if !bytes.Equal(read, content) {
		t.Fatal("the claimed file's bytes differ")
	}
	// The claim names f now: the old body no longer matches.
	f2 := store.File{ID: newID("file-"), Purpose: "assistants", Filename: "d.txt", CreatedAt: 6}
	_, err = s.CreateFileClaimed(ctx, f2, bytes.NewReader(content), 0, nil, store.Claim{Key: "cfc1", Body: []byte(`{"id":"token"}`), Named: []byte(`{}`)})
	wantErr(t, err, store.ErrClaimLost)
	_, err = s.CreateFileClaimed(ctx, f2, bytes.NewReader(content), 0, nil, store.Claim{Key: "no-such-key", Body: []byte(`{"id":"token"}`), Named: []byte(`{}`)})
	wantErr(t, err, store.ErrClaimLost)
	if exists(f2.ID) {
		t.Fatal("a file for a lost claim was made visible")
	}
}
