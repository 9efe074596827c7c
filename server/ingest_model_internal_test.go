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
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/store"
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
	_, err := s.db.CreateFile(ctx, store.File{ID: fileID, Filename: fileID + ".txt", Purpose: "assistants"}, strings.NewReader(text), 0)
	require.NoError(t, err)
	r, err := s.CreateVectorStore(ctx, genserver.CreateVectorStoreRequestObject{Body: &gen.CreateVectorStoreRequest{FileIds: &[]string{fileID}}})
	require.NoError(t, err)
	vs := gen.VectorStoreObject(r.(genserver.CreateVectorStore200JSONResponse)).Id
	fr, err := s.GetVectorStoreFile(ctx, genserver.GetVectorStoreFileRequestObject{VectorStoreId: vs, FileId: fileID})
	require.NoError(t, err)
	return vs, gen.VectorStoreFileObject(fr.(genserver.GetVectorStoreFile200JSONResponse))
}

func openModelStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.OpenDir(t.Context(), t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// On a store holding version-1 vectors, a failure of the version-1 open
// that says nothing about the vectors (the database busy) is returned as
// it is and not kept: the next call opens the index with version 1,
// instead of answering 409 embedding_model_changed until a restart.
func TestEmbeddingV1OpenTransientErrorNotCached(t *testing.T) {
	st := openModelStore(t)
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
