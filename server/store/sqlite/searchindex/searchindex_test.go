package searchindex

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) }

func openStore(t testing.TB, path string, opts ...func(*sqlite.Options)) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, append([]func(*sqlite.Options){quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newIndex(t testing.TB, s *sqlite.Store, opts ...func(*Options)) *Index {
	t.Helper()
	x, err := New(context.Background(), s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

func TestConformance(t *testing.T) {
	indextest.Run(t, indextest.Harness{New: func(t *testing.T, refs []index.Ref) index.Index {
		s := openStore(t, filepath.Join(t.TempDir(), sqlite.FileName))
		indextest.Attach(t, s, refs)
		return newIndex(t, s)
	}, NewReplicas: func(t *testing.T, refs []index.Ref) (index.Index, index.Index) {
		s := openStore(t, filepath.Join(t.TempDir(), sqlite.FileName))
		indextest.Attach(t, s, refs)
		return newIndex(t, s), newIndex(t, s)
	}, CacheSize: func(x index.Index) int64 { return x.(*Index).cache.Size() }})
}

var (
	ref1 = index.Ref{VectorStoreID: "vs_1", FileID: "file-1"}
	ref2 = index.Ref{VectorStoreID: "vs_1", FileID: "file-2"}
)

func chunksOf(t testing.TB, dim int, ref index.Ref, texts ...string) []index.Chunk {
	h, err := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = dim })
	if err != nil {
		t.Fatal(err)
	}
	out := make([]index.Chunk, len(texts))
	for i, text := range texts {
		out[i] = index.Chunk{Ref: ref, Index: i, Text: text, Vector: h.EmbedOne(text)}
	}
	return out
}

// TestModels: the database never holds vectors of two models or
// dimensions; a refused write changes nothing.
func TestModels(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s := openStore(t, path)
	indextest.Attach(t, s, []index.Ref{ref1, ref2})
	other := newIndex(t, s, func(o *Options) { o.Model = "text-embedding-3-small"; o.Dimension = 256 })
	builtin := newIndex(t, s)
	if err := builtin.Put(ctx, ref1, chunksOf(t, 256, ref1, "battery warranty for two years")); err != nil {
		t.Fatal(err)
	}
	if err := builtin.Put(ctx, ref2, chunksOf(t, 256, ref2, "courier collects")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		put  func() error
		want error
	}{
		{"another model, same dimension", func() error {
			return other.Put(ctx, ref2, chunksOf(t, 256, ref2, "parcel refund"))
		}, ErrModel},
		{"another model replacing one of the files", func() error {
			return other.Put(ctx, ref1, chunksOf(t, 256, ref1, "parcel refund"))
		}, ErrModel},
		{"the model at another dimension", func() error {
			return builtin.Put(ctx, ref2, chunksOf(t, 32, ref2, "parcel refund"))
		}, index.ErrDimension},
		{"mixed dimensions in one put", func() error {
			cs := append(chunksOf(t, 256, ref2, "parcel refund"), chunksOf(t, 32, ref2, "x", "courier")[1])
			cs[1].Index = 1
			return builtin.Put(ctx, ref2, cs)
		}, index.ErrDimension},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.put()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
			hits, err := builtin.SearchKeyword(ctx, "battery parcel", index.Scope{VectorStoreIDs: []string{"vs_1"}}, 5)
			if err != nil || len(hits) != 1 || hits[0].Chunk.Ref != ref1 || hits[0].Chunk.Text != "battery warranty for two years" {
				t.Fatalf("after a refused put: %+v %v", hits, err)
			}
		})
	}
	// Opening an index of another model on this database is refused.
	_, err := New(ctx, s, func(o *Options) { o.Model = "text-embedding-3-small"; o.Dimension = 1536 })
	if !errors.Is(err, ErrModel) {
		t.Fatalf("New with another model: %v, want ErrModel", err)
	}
	// Once the store drops the other file, another model may replace
	// the last one (re-embedding it).
	if err := s.DeleteVectorStoreFile(ctx, "", ref1.VectorStoreID, ref1.FileID); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, ref2, chunksOf(t, 256, ref2, "parcel refund")); err != nil {
		t.Fatalf("another model on an emptied store: %v", err)
	}
}

// TestStoreDeletes: the store's own deletes remove the chunks' terms and
// vectors.
func TestStoreDeletes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), sqlite.FileName))
	indextest.Attach(t, s, []index.Ref{ref1, ref2})
	x := newIndex(t, s)
	for _, ref := range []index.Ref{ref1, ref2} {
		if err := x.Put(ctx, ref, chunksOf(t, 256, ref, "battery warranty", "parcel refund")); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (terms, vectors int) {
		t.Helper()
		if err := x.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM vector_store_postings) + (SELECT COUNT(*) FROM vector_store_file_terms),
			(SELECT COUNT(*) FROM vector_store_file_vectors)`).Scan(&terms, &vectors); err != nil {
			t.Fatal(err)
		}
		return terms, vectors
	}
	// Per file: 4 postings rows (battery, warranty, parcel, refund) and
	// its statistics.
	if f, v := count(); f != 10 || v != 2 {
		t.Fatalf("%d term rows, %d vector rows; want 10, 2", f, v)
	}
	if err := s.DeleteVectorStoreFile(ctx, "", ref1.VectorStoreID, ref1.FileID); err != nil {
		t.Fatal(err)
	}
	if f, v := count(); f != 5 || v != 1 {
		t.Fatalf("after detaching a file: %d term rows, %d vector rows; want 2, 1", f, v)
	}
	if err := s.DeleteVectorStore(ctx, "", "vs_1"); err != nil {
		t.Fatal(err)
	}
	if f, v := count(); f != 0 || v != 0 {
		t.Fatalf("after deleting the vector store: %d term rows, %d vector rows; want 0, 0", f, v)
	}
}

func TestPutUnattached(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), sqlite.FileName))
	x := newIndex(t, s)
	err := x.Put(context.Background(), ref1, chunksOf(t, 256, ref1, "battery"))
	if !errors.Is(err, ErrNoFile) {
		t.Fatalf("put of an unattached file: %v, want ErrNoFile", err)
	}
}

// TestMigrationKeepsChunks: chunks written before migration 2 are still
// the store's after it.
func TestMigrationKeepsChunks(t *testing.T) {
	ctx := context.Background()
	all, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	old := openStore(t, path, func(o *sqlite.Options) { o.Migrations = all[:1] })
	indextest.Attach(t, old, []index.Ref{ref1})
	_, err = old.UpdateVectorStoreFile(ctx, "", ref1.VectorStoreID, ref1.FileID, func(*store.VectorStoreFile) ([]store.Chunk, error) {
		return []store.Chunk{{Text: "first"}, {Text: "second"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	s := openStore(t, path)
	var got []string
	err = s.ScanChunks(ctx, "", ref1.VectorStoreID, func(c store.Chunk) error {
		got = append(got, c.Text)
		return nil
	})
	if err != nil || len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("chunks after migration: %q %v", got, err)
	}
}

// TestMovesFTSTerms: chunks indexed before migration 4 (their terms in
// the FTS5 table) are found by keyword once the index opens, which moves
// their terms to the postings; chunks the store wrote alone stay unfound.
func TestMovesFTSTerms(t *testing.T) {
	ctx := context.Background()
	all, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	old := openStore(t, path, func(o *sqlite.Options) { o.Migrations = all[:4] })
	indextest.Attach(t, old, []index.Ref{ref1, ref2})
	// ref1 as migration 2's index wrote it; ref2 by the store alone.
	for i, text := range []string{"battery warranty for two years", "parcel refund"} {
		var id int64
		if err := old.DB().QueryRowContext(ctx, `INSERT INTO vector_store_chunks (vector_store_id, file_id, n, text)
			VALUES (?, ?, ?, ?) RETURNING id`, ref1.VectorStoreID, ref1.FileID, i, text).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := old.DB().ExecContext(ctx, `INSERT INTO vector_store_chunks_fts (rowid, terms) VALUES (?, ?)`,
			id, chunkindex.Terms(text)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = old.UpdateVectorStoreFile(ctx, "", ref2.VectorStoreID, ref2.FileID, func(*store.VectorStoreFile) ([]store.Chunk, error) {
		return []store.Chunk{{Text: "battery parcel"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	s := openStore(t, path)
	x := newIndex(t, s)
	hits, err := x.SearchKeyword(ctx, "battery parcel", index.Scope{VectorStoreIDs: []string{"vs_1"}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].Chunk.Ref != ref1 || hits[1].Chunk.Ref != ref1 {
		t.Fatalf("after moving: %+v, want ref1's two chunks", hits)
	}
	var fts int
	if err := x.r.QueryRowContext(ctx, `SELECT count(*) FROM vector_store_chunks_fts`).Scan(&fts); err != nil || fts != 0 {
		t.Fatalf("%d FTS5 rows left (%v)", fts, err)
	}
}
