package server

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// Detaching a file, deleting the uploaded file and deleting the vector
// store each remove the file's chunks from the server's index.
func TestIngestUnindex(t *testing.T) {
	s := New(WithStepDelay(0))
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	put := func(id, name, text string) {
		_, err := s.db.CreateFile(ctx, store.File{ID: id, Filename: name, Purpose: "assistants"}, strings.NewReader(text), 0, nil)
		require.NoError(t, err)
	}
	put("file-a", "a.txt", "Penguins eat krill.")
	put("file-b", "b.txt", "Whales eat krill too.")
	newStore := func() string {
		r, err := s.CreateVectorStore(ctx, genserver.CreateVectorStoreRequestObject{Body: &gen.CreateVectorStoreRequest{FileIds: &[]string{"file-a", "file-b"}}})
		require.NoError(t, err)
		vs := gen.VectorStoreObject(r.(genserver.CreateVectorStore200JSONResponse))
		require.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, vs.FileCounts)
		return vs.Id
	}
	_, err := s.pipeline(ctx)
	require.NoError(t, err)
	idx := s.memIndex()
	require.NotNil(t, idx, "the memory store's index is in memory")

	one := newStore()
	assert.Equal(t, 2, idx.Len())
	_, err = s.DeleteVectorStoreFile(ctx, genserver.DeleteVectorStoreFileRequestObject{VectorStoreId: one, FileId: "file-a"})
	require.NoError(t, err)
	assert.Equal(t, 1, idx.Len(), "detached file")

	two := newStore()
	assert.Equal(t, 3, idx.Len())
	require.NoError(t, s.deleteFile(ctx, "file-b"))
	assert.Equal(t, 1, idx.Len(), "deleted file, in both stores")

	_, err = s.DeleteVectorStore(ctx, genserver.DeleteVectorStoreRequestObject{VectorStoreId: two})
	require.NoError(t, err)
	assert.Equal(t, 0, idx.Len(), "deleted vector store")
	_, err = s.DeleteVectorStore(ctx, genserver.DeleteVectorStoreRequestObject{VectorStoreId: one})
	require.NoError(t, err)
}

// Background processing holds no lock a request needs while a file is
// ingested: requests go on meanwhile, and a file detached meanwhile has
// its chunks dropped when its processing ends.
func TestIngestBackgroundUnlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(WithStepDelay(time.Millisecond))
		defer s.Close()
		ctx := t.Context()
		_, err := s.db.CreateFile(ctx, store.File{ID: "file-a", Filename: "a.txt", Purpose: "assistants"}, strings.NewReader("Penguins eat krill."), 0, nil)
		require.NoError(t, err)
		entered, release := make(chan struct{}), make(chan struct{})
		s.SetProcessFileHook(func(string) {
			close(entered)
			<-release
		})
		r, err := s.CreateVectorStore(ctx, genserver.CreateVectorStoreRequestObject{Body: &gen.CreateVectorStoreRequest{FileIds: &[]string{"file-a"}}})
		require.NoError(t, err)
		vs := gen.VectorStoreObject(r.(genserver.CreateVectorStore200JSONResponse)).Id
		<-entered

		_, err = s.DeleteVectorStoreFile(ctx, genserver.DeleteVectorStoreFileRequestObject{VectorStoreId: vs, FileId: "file-a"})
		require.NoError(t, err, "a request does not wait for the file being processed")
		close(release)
		synctest.Wait() // the job ends
		p, err := s.pipeline(ctx)
		require.NoError(t, err)
		require.NotNil(t, p)
		assert.Equal(t, 0, s.memIndex().Len(), "the detached file's chunks are dropped")
	})
}
