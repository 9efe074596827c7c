package server

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// A vector store kept as a snapshot by an earlier version (on SQLite) (its object,
// files and batch in its Data) is moved onto the store's rows when a
// server starts: its completed and in-progress files are processed again
// and searchable, its failed file keeps its last_error, its batch counts
// its files, and a second start changes nothing.
func TestUpgradeSnapshottedVectorStore(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.OpenDir(ctx, t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	require.NoError(t, err)
	defer st.Close()
	for id, text := range map[string]string{"file-a": "Penguins eat krill.", "file-b": "Whales sing.", "file-c": "Seals swim."} {
		_, err := st.CreateFile(ctx, store.File{ID: id, Filename: id + ".txt", Purpose: "assistants"}, strings.NewReader(text), 0, nil)
		require.NoError(t, err)
	}
	snap := `{"obj":{"id":"vs_old","object":"vector_store","created_at":5,"last_active_at":5,"name":"old","metadata":{},"status":"completed","usage_bytes":99,"file_counts":{"in_progress":0,"completed":2,"failed":1,"cancelled":0,"total":3}},
		"files":[
			{"obj":{"id":"file-a","object":"vector_store.file","created_at":5,"vector_store_id":"vs_old","status":"completed","usage_bytes":40}},
			{"obj":{"id":"file-b","object":"vector_store.file","created_at":5,"vector_store_id":"vs_old","status":"in_progress","usage_bytes":0},"batch_id":"vsfb_old"},
			{"obj":{"id":"file-c","object":"vector_store.file","created_at":5,"vector_store_id":"vs_old","status":"failed","usage_bytes":0,"last_error":{"code":"invalid_file","message":"it was bad"}},"batch_id":"vsfb_old"}],
		"batches":[{"obj":{"id":"vsfb_old","object":"vector_store.files_batch","created_at":5,"vector_store_id":"vs_old","status":"in_progress","file_counts":{"in_progress":1,"completed":0,"failed":1,"cancelled":0,"total":2}},"file_ids":["file-b","file-c"]}]}`
	require.NoError(t, st.CreateVectorStore(ctx, store.VectorStore{ID: "vs_old", CreatedAt: 5, Data: []byte(snap)}, nil))
	has, err := st.HasLegacyVectorStores(ctx)
	require.NoError(t, err)
	require.True(t, has, "the snapshot is found")

	for range 2 { // the second start finds nothing to upgrade
		s := New(WithStepDelay(0), WithStore(st))
		r, err := s.GetVectorStore(ctx, genserver.GetVectorStoreRequestObject{VectorStoreId: "vs_old"})
		require.NoError(t, err)
		vs := gen.VectorStoreObject(r.(genserver.GetVectorStore200JSONResponse))
		assert.Equal(t, "vs_old", vs.Id)
		assert.Equal(t, "old", vs.Name)
		assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Failed: 1, Total: 3}, vs.FileCounts)
		assert.Equal(t, gen.VectorStoreObjectStatusCompleted, vs.Status)
		assert.Positive(t, vs.UsageBytes)

		br, err := s.GetVectorStoreFileBatch(ctx, genserver.GetVectorStoreFileBatchRequestObject{VectorStoreId: "vs_old", BatchId: "vsfb_old"})
		require.NoError(t, err)
		b := gen.VectorStoreFileBatchObject(br.(genserver.GetVectorStoreFileBatch200JSONResponse))
		assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: 1, Failed: 1, Total: 2}, b.FileCounts)
		assert.Equal(t, gen.VectorStoreFileBatchObjectStatusCompleted, b.Status)

		fr, err := s.GetVectorStoreFile(ctx, genserver.GetVectorStoreFileRequestObject{VectorStoreId: "vs_old", FileId: "file-c"})
		require.NoError(t, err)
		f := gen.VectorStoreFileObject(fr.(genserver.GetVectorStoreFile200JSONResponse))
		require.NotNil(t, f.LastError)
		assert.Equal(t, "it was bad", f.LastError.Message)

		var q gen.VectorStoreSearchQuery
		require.NoError(t, q.FromVectorStoreSearchQueryText("penguins krill"))
		sr, err := s.SearchVectorStore(ctx, genserver.SearchVectorStoreRequestObject{VectorStoreId: "vs_old", Body: &gen.VectorStoreSearchRequest{Query: q}})
		require.NoError(t, err)
		res := gen.VectorStoreSearchResultsPage(sr.(genserver.SearchVectorStore200JSONResponse))
		require.NotEmpty(t, res.Data)
		assert.Equal(t, "file-a", res.Data[0].FileId)
		assert.Equal(t, "file-a.txt", res.Data[0].Filename)
		require.NoError(t, s.Close())
	}
}

// storeWithFinder is a store that can tell whether snapshots are left.
type storeWithFinder interface {
	store.Store
	legacyVectorStoreFinder
}

// listCounter counts the vector store listings a server makes.
type listCounter struct {
	storeWithFinder
	lists atomic.Int32
}

func (c *listCounter) ListVectorStores(ctx context.Context, project string, lp store.ListParams) (store.Page[store.VectorStore], error) {
	c.lists.Add(1)
	return c.storeWithFinder.ListVectorStores(ctx, project, lp)
}

// The upgrade runs once: a start finds an earlier version's snapshot with
// one indexed lookup (HasLegacyVectorStores) and upgrades it; once none is
// left, a start lists no vector store at all, however many there are.
func TestUpgradeRunsOnce(t *testing.T) {
	quiet := func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }
	tests := []struct {
		name string
		open func(t *testing.T) storeWithFinder
	}{
		{"sqlite", func(t *testing.T) storeWithFinder {
			st, err := sqlite.OpenDir(t.Context(), t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(t *testing.T) storeWithFinder {
			st, err := postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = slog.New(slog.DiscardHandler) })
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st := tc.open(t)
			modern, err := encodeData(gen.VectorStoreObject{Id: "vs_new", Object: "vector_store", CreatedAt: 5, Status: gen.VectorStoreObjectStatusCompleted, Metadata: &gen.Metadata{}})
			require.NoError(t, err)
			require.NoError(t, st.CreateVectorStore(ctx, store.VectorStore{ID: "vs_new", CreatedAt: 5, Data: modern}, nil))
			has, err := st.HasLegacyVectorStores(ctx)
			require.NoError(t, err)
			assert.False(t, has, "a vector store on the store's rows is no snapshot")

			snap := `{"obj":{"id":"vs_old","object":"vector_store","created_at":5,"last_active_at":5,"name":"old","metadata":{},"status":"completed","usage_bytes":0,"file_counts":{"in_progress":0,"completed":0,"failed":0,"cancelled":0,"total":0}}}`
			require.NoError(t, st.CreateVectorStore(ctx, store.VectorStore{ID: "vs_old", CreatedAt: 5, Data: []byte(snap)}, nil))
			has, err = st.HasLegacyVectorStores(ctx)
			require.NoError(t, err)
			require.True(t, has, "the snapshot is found")

			first := &listCounter{storeWithFinder: st}
			s := New(WithStepDelay(0), WithStore(first), quiet)
			require.NoError(t, s.Close())
			assert.Positive(t, first.lists.Load(), "the first start lists the vector stores to upgrade them")
			has, err = st.HasLegacyVectorStores(ctx)
			require.NoError(t, err)
			assert.False(t, has, "no snapshot is left")
			v, err := st.GetVectorStore(ctx, store.DefaultProject, "vs_old")
			require.NoError(t, err)
			obj, err := decodeData[gen.VectorStoreObject](v.Data)
			require.NoError(t, err)
			assert.Equal(t, "old", obj.Name)

			second := &listCounter{storeWithFinder: st}
			s = New(WithStepDelay(0), WithStore(second), quiet)
			require.NoError(t, s.Close())
			assert.Zero(t, second.lists.Load(), "a start with no snapshot left lists no vector store")
		})
	}
}
