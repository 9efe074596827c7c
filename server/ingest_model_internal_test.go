package server

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// v1Hashing is version 1 of the built-in embedder (servers before version 2).
func v1Hashing(t *testing.T) embed.Embedder {
	t.Helper()
	e, err := embed.NewHashing(func(o *embed.HashingOptions) { o.Version = 1 })
	require.NoError(t, err)
	return e
}

// modelServer is a server on st that processes files at once, in this
// process (no durable job another server on st could take).
func modelServer(t *testing.T, st store.Store, opts ...Option) *Server {
	t.Helper()
	s := New(append([]Option{WithStepDelay(0), WithStore(st), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	s.hooks.noDurableIngest = true
	t.Cleanup(func() { s.Close() })
	return s
}

// attachNew uploads a file with text and attaches it to a new vector
// store of s; it returns the vector store's id and the file's status.
func attachNew(t *testing.T, s *Server, fileID, text string) (string, gen.VectorStoreFileObject) {
	t.Helper()
	ctx := t.Context()
	_, err := s.db.CreateFile(ctx, store.File{ID: fileID, Filename: fileID + ".txt", Purpose: "assistants"}, strings.NewReader(text), 0, nil)
	require.NoError(t, err)
	r, err := s.CreateVectorStore(ctx, genserver.CreateVectorStoreRequestObject{Body: &gen.CreateVectorStoreRequest{FileIds: &[]string{fileID}}})
	require.NoError(t, err)
	vs := gen.VectorStoreObject(r.(genserver.CreateVectorStore200JSONResponse)).Id
	fr, err := s.GetVectorStoreFile(ctx, genserver.GetVectorStoreFileRequestObject{VectorStoreId: vs, FileId: fileID})
	require.NoError(t, err)
	return vs, gen.VectorStoreFileObject(fr.(genserver.GetVectorStoreFile200JSONResponse))
}

// storedModels returns the embedding models of the vectors st holds.
func storedModels(t *testing.T, st store.Store) []string {
	t.Helper()
	const q = `SELECT DISTINCT model FROM vector_store_file_vectors ORDER BY model`
	switch x := st.(type) {
	case *sqlite.Store:
		rows, err := x.DB().QueryContext(t.Context(), q)
		require.NoError(t, err)
		defer rows.Close()
		return scanStrings(t, rows)
	case *postgres.Store:
		rows, err := x.Pool().Query(t.Context(), q)
		require.NoError(t, err)
		defer rows.Close()
		return scanStrings(t, rows)
	}
	t.Fatalf("no search index in %T", st)
	return nil
}

// scanStrings reads one text column of every row (database/sql's rows or
// pgx's).
func scanStrings(t *testing.T, rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) []string {
	t.Helper()
	var out []string
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		out = append(out, m)
	}
	require.NoError(t, rows.Err())
	return out
}

// openModelStore opens an empty SQLite or PostgreSQL store.
func openModelStore(t *testing.T, kind string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	if kind == "postgres" {
		st, err = postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	} else {
		st, err = sqlite.OpenDir(t.Context(), t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	}
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// On a store holding version-1 vectors, a failure of the version-1 open
// that says nothing about the vectors (the database busy) is returned as
// it is and not kept: the next call opens the index with version 1,
// instead of answering 409 embedding_model_changed until a restart.
func TestEmbeddingV1OpenTransientErrorNotCached(t *testing.T) {
	st := openModelStore(t, "sqlite")
	v1 := v1Hashing(t)
	_, f := attachNew(t, modelServer(t, st, WithEmbedder(v1)), "file-a", "Emperor penguins eat krill.")
	require.Equal(t, gen.VectorStoreFileObjectStatusCompleted, f.Status)

	s := modelServer(t, st)
	busy := errors.New("database is locked")
	fails := 1
	s.hooks.onOpenIndex = func(model string) error {
		if model == v1.Model() && fails > 0 {
			fails--
			return busy
		}
		return nil
	}
	_, err := s.pipeline(t.Context())
	require.ErrorIs(t, err, busy, "the open's own error")
	var se *embedSpaceError
	assert.False(t, errors.As(err, &se), "not a model mismatch: %v", err)
	p, err := s.pipeline(t.Context())
	require.NoError(t, err, "tried again, not cached")
	assert.Equal(t, v1.Model(), p.Embedder().Model())
}

// Two replicas on one store choose the built-in embedder's version from
// the store's vectors: B started while the store held version-1 vectors
// (and chose version 1); they were deleted, and A, started on the empty
// store, chose version 2 and added a file. B's next file is refused by
// the store with version 1's vectors: B chooses again from what the
// store holds (version 2) and the file completes, instead of every file
// of B failing until a restart.
func TestEmbeddingVersionFollowsStoreAcrossReplicas(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { testVersionFollowsStore(t, openModelStore(t, kind)) })
	}
}

func testVersionFollowsStore(t *testing.T, st store.Store) {
	ctx := t.Context()
	v1 := v1Hashing(t)
	vsOld, f := attachNew(t, modelServer(t, st, WithEmbedder(v1)), "file-old", "Emperor penguins eat krill.")
	require.Equal(t, gen.VectorStoreFileObjectStatusCompleted, f.Status)

	b := modelServer(t, st)
	pb, err := b.pipeline(ctx)
	require.NoError(t, err)
	require.Equal(t, v1.Model(), pb.Embedder().Model(), "B starts on version-1 vectors")
	_, err = b.DeleteVectorStore(ctx, genserver.DeleteVectorStoreRequestObject{VectorStoreId: vsOld})
	require.NoError(t, err)
	require.Empty(t, storedModels(t, st), "the store holds no vectors")

	a := modelServer(t, st)
	_, f = attachNew(t, a, "file-a", "Whales sing long songs.")
	require.Equal(t, gen.VectorStoreFileObjectStatusCompleted, f.Status)
	pa, err := a.pipeline(ctx)
	require.NoError(t, err)
	v2 := pa.Embedder().Model()
	require.NotEqual(t, v1.Model(), v2, "A starts on an empty store: version 2")

	vsB, f := attachNew(t, b, "file-b", "Seals swim under the ice.")
	require.Equal(t, gen.VectorStoreFileObjectStatusCompleted, f.Status, "last_error: %+v", f.LastError)
	pb, err = b.pipeline(ctx)
	require.NoError(t, err)
	assert.Equal(t, v2, pb.Embedder().Model(), "B chose again from the store's vectors")
	assert.Equal(t, []string{v2}, storedModels(t, st), "one model in the store")

	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("seals swim"))
	r, err := b.SearchVectorStore(ctx, genserver.SearchVectorStoreRequestObject{VectorStoreId: vsB, Body: &gen.VectorStoreSearchRequest{Query: q}})
	require.NoError(t, err)
	res := gen.VectorStoreSearchResultsPage(r.(genserver.SearchVectorStore200JSONResponse))
	require.NotEmpty(t, res.Data)
	assert.Equal(t, "file-b", res.Data[0].FileId)
}
