package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// openSQLiteAt opens (or reopens) the SQLite store of dir.
func openSQLiteAt(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.OpenDir(t.Context(), dir, func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	require.NoError(t, err)
	return st
}

// serveOn starts a server on st behind an HTTP test server and returns it
// with a client; stop closes both (the store stays open).
func serveOn(t *testing.T, st store.Store, opts ...server.Option) (s *server.Server, c *assistants.Client, stop func()) {
	t.Helper()
	s = server.New(append([]server.Option{server.WithStore(st), server.WithStepDelay(time.Millisecond)}, opts...)...)
	ts := httptest.NewServer(s)
	c, err := assistants.New(assistants.WithBaseURL(ts.URL+"/v1"), assistants.WithAPIKey("sk-test"), assistants.WithMaxRetries(0))
	require.NoError(t, err)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ts.Close()
			require.NoError(t, s.Close())
		})
	}
	t.Cleanup(stop)
	return s, c, stop
}

// batchCounts checks that a batch's and its vector store's file counts
// are those of the batch's files as listed, and returns them.
func batchCounts(t *testing.T, ctx context.Context, c *assistants.Client, vsID, batchID string) gen.VectorStoreFileBatchObject {
	t.Helper()
	b, err := assistants.Result[gen.VectorStoreFileBatchObject](c.GetVectorStoreFileBatchWithResponse(ctx, vsID, batchID))
	require.NoError(t, err)
	limit := 100
	files, err := assistants.Result[gen.ListVectorStoreFilesResponse](c.ListFilesInVectorStoreBatchWithResponse(ctx, vsID, batchID, &gen.ListFilesInVectorStoreBatchParams{Limit: &limit}))
	require.NoError(t, err)
	var listed gen.VectorStoreFileBatchFileCounts
	for _, f := range files.Data {
		listed.Total++
		switch f.Status {
		case gen.VectorStoreFileObjectStatusInProgress:
			listed.InProgress++
		case gen.VectorStoreFileObjectStatusCompleted:
			listed.Completed++
		case gen.VectorStoreFileObjectStatusFailed:
			listed.Failed++
		case gen.VectorStoreFileObjectStatusCancelled:
			listed.Cancelled++
		}
	}
	vs, err := assistants.Result[gen.VectorStoreObject](c.GetVectorStoreWithResponse(ctx, vsID))
	require.NoError(t, err)
	// Read in three requests while files may finish: the counts of one
	// read are consistent, and they only move forward.
	assert.Equal(t, b.FileCounts.Total, b.FileCounts.InProgress+b.FileCounts.Completed+b.FileCounts.Failed+b.FileCounts.Cancelled, "batch counts add up")
	assert.Equal(t, listed.Total, b.FileCounts.Total)
	assert.GreaterOrEqual(t, listed.Completed+listed.Failed, b.FileCounts.Completed+b.FileCounts.Failed, "the files listed after the batch are at least as far")
	assert.GreaterOrEqual(t, vs.FileCounts.Completed+vs.FileCounts.Failed, listed.Completed+listed.Failed, "the store read last is at least as far")
	assert.Equal(t, b.FileCounts.Total, vs.FileCounts.Total)
	return *b
}

// A file batch cut by a restart resumes: the server is closed while two
// of the batch's files are being processed (and others wait), and a new
// server on the same SQLite database finishes the batch from its durable
// jobs, with the right statuses and counts (good files completed and
// searchable, bad ones failed with a last_error). The same scenario with
// durable ingestion turned off (the test hook DisableDurableIngest:
// processing in the closed server's goroutines) leaves the batch in progress for good,
// with no job to finish it: what the test would see if ingestion were not
// durable.
func TestIngestBatchResumesAfterRestart(t *testing.T) {
	for _, durable := range []bool{true, false} {
		name := "durable"
		if !durable {
			name = "not durable (control)"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			st := openSQLiteAt(t, dir)
			s1, c, stop := serveOn(t, st)
			if !durable {
				s1.DisableDurableIngest()
			}

			type doc struct{ name, text, status string }
			docs := []doc{
				{"krill.txt", "Krill are small crustaceans that whales eat.", "completed"},
				{"empty.txt", "", "failed"},
				{"penguins.md", "Emperor penguins huddle in the polar winter.", "completed"},
				{"junk.bin", "\x00\x01\x02 binary", "failed"},
				{"albatross.txt", "Albatrosses glide over the southern ocean.", "completed"},
				{"seals.txt", "Leopard seals hunt penguins near the ice.", "completed"},
			}
			ids := map[string]string{}
			var fileIDs []string
			for _, d := range docs {
				f := upload(t, ctx, c, d.name, d.text)
				ids[d.name] = f.Id
				fileIDs = append(fileIDs, f.Id)
			}
			// The third file processed and every one after it wait until
			// the server stops.
			var started atomic.Int32
			blocked := make(chan struct{})
			var blockedOnce sync.Once
			s1.SetIngestHook(func(ctx context.Context, fileID string) {
				if started.Add(1) >= 3 {
					blockedOnce.Do(func() { close(blocked) })
					<-ctx.Done()
				}
			})
			vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("restart")}))
			require.NoError(t, err)
			b, err := assistants.Result[gen.VectorStoreFileBatchObject](c.CreateVectorStoreFileBatchWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileBatchRequest{FileIds: &fileIDs}))
			require.NoError(t, err)
			assert.Equal(t, gen.VectorStoreFileBatchObjectStatusInProgress, b.Status)
			assert.Equal(t, len(docs), b.FileCounts.Total)
			select {
			case <-blocked:
			case <-ctx.Done():
				t.Fatal("processing did not reach the third file")
			}
			mid := batchCounts(t, ctx, c, vs.Id, b.Id)
			require.Equal(t, gen.VectorStoreFileBatchObjectStatusInProgress, mid.Status)
			require.Positive(t, mid.FileCounts.InProgress)
			stop() // mid-batch: the running files' contexts end
			jobs, err := st.ListJobs(ctx, server.KindIngestFile)
			require.NoError(t, err)
			require.NoError(t, st.Close())

			st2 := openSQLiteAt(t, dir)
			t.Cleanup(func() { st2.Close() })
			if !durable {
				assert.Empty(t, jobs, "without durable ingestion no job is left to finish the batch")
				_, c2, _ := serveOn(t, st2)
				after := batchCounts(t, ctx, c2, vs.Id, b.Id)
				assert.Equal(t, gen.VectorStoreFileBatchObjectStatusInProgress, after.Status, "the batch is stuck")
				assert.Positive(t, after.FileCounts.InProgress)
				return
			}
			require.NotEmpty(t, jobs, "the unfinished files' jobs are in the database")
			for _, j := range jobs {
				assert.Contains(t, []string{"available", "retryable", "running", "scheduled"}, j.State)
			}
			_, c2, _ := serveOn(t, st2)
			var end gen.VectorStoreFileBatchObject
			for {
				end = batchCounts(t, ctx, c2, vs.Id, b.Id)
				if end.Status != gen.VectorStoreFileBatchObjectStatusInProgress {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the batch did not resume: %+v", end.FileCounts)
				case <-time.After(20 * time.Millisecond):
				}
			}
			assert.Equal(t, gen.VectorStoreFileBatchObjectStatusCompleted, end.Status)
			assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: 4, Failed: 2, Total: len(docs)}, end.FileCounts)
			got, err := assistants.Result[gen.VectorStoreObject](c2.GetVectorStoreWithResponse(ctx, vs.Id))
			require.NoError(t, err)
			assert.Equal(t, gen.VectorStoreObjectStatusCompleted, got.Status)
			assert.Equal(t, gen.VectorStoreFileCounts{Completed: 4, Failed: 2, Total: len(docs)}, got.FileCounts)
			for _, d := range docs {
				f, err := assistants.Result[gen.VectorStoreFileObject](c2.GetVectorStoreFileWithResponse(ctx, vs.Id, ids[d.name]))
				require.NoError(t, err)
				assert.Equal(t, d.status, string(f.Status), d.name)
				if d.status == "failed" {
					require.NotNil(t, f.LastError, d.name)
					assert.NotEmpty(t, f.LastError.Message)
					continue
				}
				var q gen.VectorStoreSearchQuery
				require.NoError(t, q.FromVectorStoreSearchQueryText(d.text))
				one := 1
				res, err := assistants.Result[gen.VectorStoreSearchResultsPage](c2.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q, MaxNumResults: &one}))
				require.NoError(t, err)
				require.Len(t, res.Data, 1, d.name)
				assert.Equal(t, d.name, res.Data[0].Filename, fmt.Sprintf("%s is found by its own words", d.name))
			}
			for { // River records a finished job a moment after it ends
				left, err := st2.ListJobs(ctx, server.KindIngestFile)
				require.NoError(t, err)
				if len(left) == 0 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("ingest jobs left unfinished: %d", len(left))
				case <-time.After(20 * time.Millisecond):
				}
			}
			// usage_bytes is summed by the job that ends the store's last
			// file in progress, after that file's status is written.
			got, err = assistants.Result[gen.VectorStoreObject](c2.GetVectorStoreWithResponse(ctx, vs.Id))
			require.NoError(t, err)
			assert.Positive(t, got.UsageBytes)
		})
	}
}
