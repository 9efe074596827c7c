package searchindex

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
	"github.com/assistants-go/assistants/server/store/postgres"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet(o *postgres.Options) { o.Logger = slog.New(slog.DiscardHandler) }

func openStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newIndex(t testing.TB, s *postgres.Store, opts ...func(*Options)) *Index {
	t.Helper()
	x, err := New(context.Background(), s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestConformance(t *testing.T) {
	indextest.Run(t, indextest.Harness{New: func(t *testing.T, refs []index.Ref) index.Index {
		s := openStore(t, pgtest.Schema(t))
		indextest.Attach(t, s, refs)
		return newIndex(t, s)
	}, NewReplicas: func(t *testing.T, refs []index.Ref) (index.Index, index.Index) {
		url := pgtest.Schema(t)
		s := openStore(t, url)
		indextest.Attach(t, s, refs)
		return newIndex(t, s), newIndex(t, openStore(t, url))
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
	s := openStore(t, pgtest.Schema(t))
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

// TestModelsRace: two writers of different models into an empty store,
// at the same time: exactly one model ends up in it.
func TestModelsRace(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, pgtest.Schema(t))
	refs := []index.Ref{ref1, ref2}
	indextest.Attach(t, s, refs)
	for round := range 5 {
		if _, err := s.Pool().Exec(ctx, `DELETE FROM vector_store_chunks`); err != nil {
			t.Fatal(err)
		}
		a := newIndex(t, s, func(o *Options) { o.Model = "model-a"; o.Dimension = 256 })
		b := newIndex(t, s, func(o *Options) { o.Model = "model-b"; o.Dimension = 256 })
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, x := range []*Index{a, b} {
			wg.Go(func() { errs[i] = x.Put(ctx, refs[i], chunksOf(t, 256, refs[i], "parcel refund")) })
		}
		wg.Wait()
		var models int
		if err := s.Pool().QueryRow(ctx, `SELECT count(DISTINCT model) FROM vector_store_file_vectors`).Scan(&models); err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, err := range errs {
			if err != nil {
				if !errors.Is(err, ErrModel) {
					t.Fatalf("round %d: %v", round, err)
				}
				failed++
			}
		}
		if models != 1 || failed != 1 {
			t.Fatalf("round %d: %d models stored, %d puts refused (%v); want 1 and 1", round, models, failed, errs)
		}
	}
}

// TestStoreDeletes: the store's own deletes remove the chunks' terms and
// vectors.
func TestStoreDeletes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, pgtest.Schema(t))
	indextest.Attach(t, s, []index.Ref{ref1, ref2})
	x := newIndex(t, s)
	for _, ref := range []index.Ref{ref1, ref2} {
		if err := x.Put(ctx, ref, chunksOf(t, 256, ref, "battery warranty", "parcel refund")); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (terms, vectors int) {
		t.Helper()
		if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM vector_store_postings) + (SELECT count(*) FROM vector_store_file_terms),
			(SELECT count(*) FROM vector_store_file_vectors)`).Scan(&terms, &vectors); err != nil {
			t.Fatal(err)
		}
		return terms, vectors
	}
	// Per file: 4 postings rows (battery, warranty, parcel, refund) and
	// its statistics.
	if f, v := count(); f != 10 || v != 2 {
		t.Fatalf("%d term rows, %d vector rows; want 10, 2", f, v)
	}
	// The store replacing ref2's chunks by itself drops its index rows.
	_, err := s.UpdateVectorStoreFile(ctx, "", ref2.VectorStoreID, ref2.FileID, func(*store.VectorStoreFile) ([]store.Chunk, error) {
		return []store.Chunk{{Text: "other"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, v := count(); f != 5 || v != 1 {
		t.Fatalf("after the store replaced a file's chunks: %d term rows, %d vector rows; want 5, 1", f, v)
	}
	if err := x.Put(ctx, ref2, chunksOf(t, 256, ref2, "battery warranty", "parcel refund")); err != nil {
		t.Fatal(err)
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
	s := openStore(t, pgtest.Schema(t))
	x := newIndex(t, s)
	err := x.Put(context.Background(), ref1, chunksOf(t, 256, ref1, "battery"))
	if !errors.Is(err, ErrNoFile) {
		t.Fatalf("put of an unattached file: %v, want ErrNoFile", err)
	}
}

// TestMovesTSVectors: chunks indexed before migration 4 (their terms in
// the tsvector column) are found by keyword once the index opens, which
// moves their terms to the postings; chunks the store wrote alone stay
// unfound.
func TestMovesTSVectors(t *testing.T) {
	ctx := context.Background()
	all, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.Schema(t)
	old, err := postgres.Open(ctx, url, quiet, func(o *postgres.Options) { o.Migrations = all[:4] })
	if err != nil {
		t.Fatal(err)
	}
	indextest.Attach(t, old, []index.Ref{ref1, ref2})
	// ref1 as migration 2's index wrote it; ref2 by the store alone.
	for i, text := range []string{"battery warranty for two years", "parcel refund"} {
		tsv, _ := chunkindex.TSVector(text)
		if _, err := old.Pool().Exec(ctx, `INSERT INTO vector_store_chunks (vector_store_id, file_id, n, text, terms)
			VALUES ($1, $2, $3, $4, $5::tsvector)`, ref1.VectorStoreID, ref1.FileID, i, text, tsv); err != nil {
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
	s := openStore(t, url)
	x := newIndex(t, s)
	hits, err := x.SearchKeyword(ctx, "battery parcel", index.Scope{VectorStoreIDs: []string{"vs_1"}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].Chunk.Ref != ref1 || hits[1].Chunk.Ref != ref1 {
		t.Fatalf("after moving: %+v, want ref1's two chunks", hits)
	}
	var left int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM vector_store_chunks WHERE terms IS NOT NULL`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d tsvectors left (%v)", left, err)
	}
}
