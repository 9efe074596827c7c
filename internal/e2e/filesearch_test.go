package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// includeContent is the include[] value that shows file_search results
// with their content in run steps.
const includeContent = "step_details.tool_calls[*].file_search.results[*].content"

// The documents of the file_search flows.
const (
	penguinText = "# Penguins\n\nEmperor penguins eat krill and fish. They breed in the Antarctic winter."
	whaleText   = "Blue whales are the largest animals. They eat krill from the sea."
)

// TestFileSearchFlow runs the node-style file_search flow on every store:
// an assistant with file_search and a vector store of uploaded files, a
// question, a completed run whose answer cites the right file with
// indices that match the text, a run step that shows the search (its
// results and their content with include[]), and bad files in a batch
// that end failed with a last_error while the others complete.
func TestFileSearchFlow(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			srv := startServer(t, s.open(t))
			c := newClient(t, srv.URL)
			penguins := uploadFile(t, ctx, c, "penguins.md", []byte(penguinText))
			whales := uploadFile(t, ctx, c, "whales.txt", []byte(whaleText))
			vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("animals"), FileIds: &[]string{penguins.Id, whales.Id}}))
			require.NoError(t, err)
			done := waitVectorStore(t, ctx, c, vs.Id)
			require.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, done.FileCounts)
			flowFileSearchRun(t, ctx, c, vs.Id, penguins.Id)
			flowThreadAttachment(t, ctx, c)
			flowBadFiles(t, ctx, c)
		})
	}
}

// fileSearchAssistant creates an assistant with file_search over vsID.
func fileSearchAssistant(t testing.TB, ctx context.Context, c *assistants.Client, vsID string) gen.AssistantObject {
	t.Helper()
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFileSearch(gen.AssistantToolsFileSearch{Type: "file_search"}))
	a, err := assistants.Result[gen.AssistantObject](c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{
		Model: "gpt-4o", Name: assistants.Ptr("librarian"), Tools: &[]gen.AssistantTool{tool},
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vsID}}},
	}))
	require.NoError(t, err)
	return *a
}

// flowFileSearchRun asks about penguins and checks the cited answer and
// the run's steps.
func flowFileSearchRun(t *testing.T, ctx context.Context, c *assistants.Client, vsID, penguinsID string) {
	t.Helper()
	a := fileSearchAssistant(t, ctx, c, vsID)
	th := createThread(t, ctx, c, "What do emperor penguins eat?")
	r := createRun(t, ctx, c, th.Id, a.Id)
	end := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), end.Status, "last error: %+v", end.LastError)
	assert.Nil(t, end.RequiredAction, "the server runs file_search itself")

	msgs, err := assistants.Result[gen.ListMessagesResponse](c.ListMessagesWithResponse(ctx, th.Id, &gen.ListMessagesParams{Order: assistants.Ptr(gen.ListMessagesParamsOrder("asc"))}))
	require.NoError(t, err)
	require.Len(t, msgs.Data, 2)
	require.Len(t, msgs.Data[1].Content, 1)
	text := msgs.Data[1].Content[0]
	require.Equal(t, gen.MessageContentTypeText, text.Type)
	assert.Equal(t, "Emperor penguins eat krill and fish. 【0:0†penguins.md】", text.Text.Value)
	require.Len(t, text.Text.Annotations, 1)
	runes := []rune(text.Text.Value)
	for i, fc := range text.Text.Annotations {
		require.Equal(t, gen.MessageContentTextAnnotationTypeFileCitation, fc.Type, "annotation %d", i)
		require.True(t, 0 <= fc.StartIndex && fc.StartIndex < fc.EndIndex && fc.EndIndex <= len(runes), "annotation %d: [%d,%d)", i, fc.StartIndex, fc.EndIndex)
		assert.Equal(t, fc.Text, string(runes[fc.StartIndex:fc.EndIndex]), "the annotation's indices frame its marker")
		assert.Equal(t, penguinsID, fc.FileCitation.FileId)
	}

	asc := gen.ListRunStepsParamsOrder("asc")
	steps, err := assistants.Result[gen.ListRunStepsResponse](c.ListRunStepsWithResponse(ctx, th.Id, r.Id, &gen.ListRunStepsParams{Order: &asc}))
	require.NoError(t, err)
	require.Len(t, steps.Data, 2)
	assert.Equal(t, gen.RunStepObjectTypeToolCalls, steps.Data[0].Type)
	assert.Equal(t, gen.RunStepObjectStatusCompleted, steps.Data[0].Status)
	call := fileSearchCall(t, steps.Data[0])
	require.NotNil(t, call.FileSearch.RankingOptions)
	assert.Nil(t, call.FileSearch.Results, "results only with include[]")
	assert.Equal(t, gen.RunStepObjectTypeMessageCreation, steps.Data[1].Type)

	inc := []gen.ListRunStepsParamsInclude{includeContent}
	steps, err = assistants.Result[gen.ListRunStepsResponse](c.ListRunStepsWithResponse(ctx, th.Id, r.Id, &gen.ListRunStepsParams{Order: &asc, Include: &inc}))
	require.NoError(t, err)
	call = fileSearchCall(t, steps.Data[0])
	require.NotNil(t, call.FileSearch.Results)
	res := *call.FileSearch.Results
	require.NotEmpty(t, res)
	assert.Equal(t, penguinsID, res[0].FileId)
	assert.Equal(t, "penguins.md", res[0].FileName)
	require.NotNil(t, res[0].Content)
	require.NotEmpty(t, *res[0].Content)
	assert.Contains(t, *(*res[0].Content)[0].Text, "Emperor penguins eat krill")
}

// flowThreadAttachment: a file attached to a message for file_search goes
// into a new thread vector store (7-day expiry) when the run starts, and
// the run's answer cites it.
func flowThreadAttachment(t *testing.T, ctx context.Context, c *assistants.Client) {
	t.Helper()
	f := uploadFile(t, ctx, c, "refunds.md", []byte("Refunds are paid within 14 days. Contact support for help."))
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFileSearch(gen.AssistantToolsFileSearch{Type: "file_search"}))
	a, err := assistants.Result[gen.AssistantObject](c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &[]gen.AssistantTool{tool}}))
	require.NoError(t, err)
	at := gen.MessageAttachmentTool{Type: gen.MessageAttachmentToolTypeFileSearch}
	var content gen.CreateMessageRequest_Content
	require.NoError(t, content.FromCreateMessageText("When are refunds paid?"))
	msgs := []gen.CreateMessageRequest{{Role: "user", Content: content, Attachments: &[]gen.MessageAttachment{{FileId: &f.Id, Tools: &[]gen.MessageAttachmentTool{at}}}}}
	th, err := assistants.Result[gen.ThreadObject](c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{Messages: &msgs}))
	require.NoError(t, err)
	r := createRun(t, ctx, c, th.Id, a.Id)
	end := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), end.Status, "last error: %+v", end.LastError)
	texts := messageTexts(t, ctx, c, th.Id)
	require.NotEmpty(t, texts)
	assert.Equal(t, "assistant: Refunds are paid within 14 days. 【0:0†refunds.md】", texts[len(texts)-1])
	got, err := assistants.Result[gen.ThreadObject](c.GetThreadWithResponse(ctx, th.Id))
	require.NoError(t, err)
	require.NotNil(t, got.ToolResources)
	require.NotNil(t, got.ToolResources.FileSearch)
	require.NotNil(t, got.ToolResources.FileSearch.VectorStoreIds)
	require.Len(t, *got.ToolResources.FileSearch.VectorStoreIds, 1)
	vs, err := assistants.Result[gen.VectorStoreObject](c.GetVectorStoreWithResponse(ctx, (*got.ToolResources.FileSearch.VectorStoreIds)[0]))
	require.NoError(t, err)
	require.NotNil(t, vs.ExpiresAfter)
	assert.Equal(t, 7, vs.ExpiresAfter.Days)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Total: 1}, vs.FileCounts)
}

// fileSearchCall returns the one file_search call of a tool_calls step.
func fileSearchCall(t *testing.T, st gen.RunStepObject) gen.RunStepDetailsToolCallsFileSearchObject {
	t.Helper()
	d, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
	require.NoError(t, err)
	require.Len(t, d.ToolCalls, 1)
	fs, err := d.ToolCalls[0].AsRunStepDetailsToolCallsFileSearchObject()
	require.NoError(t, err)
	require.Equal(t, "file_search", string(fs.Type))
	return fs
}

// flowBadFiles attaches bad files in one batch beside a good one: each
// bad file ends failed with a last_error, the good one completes and is
// found, and the counts are right. No request fails (the client's Result
// turns any error reply, a 500 included, into a test failure).
func flowBadFiles(t *testing.T, ctx context.Context, c *assistants.Client) {
	t.Helper()
	junk := make([]byte, 2048)
	for i := range junk {
		junk[i] = byte(i*7 + i/3)
	}
	files := []struct {
		name, status, code string
		data               []byte
	}{
		{"good.txt", "completed", "", []byte("Albatrosses glide over the southern ocean.")},
		{"empty.txt", "failed", "invalid_file", nil},
		{"junk.bin", "failed", "unsupported_file", junk},
		{"junk.txt", "failed", "invalid_file", junk},
		{"broken.pdf", "failed", "invalid_file", []byte("%PDF-1.7 this is not a PDF at all")},
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, uploadFile(t, ctx, c, f.name, f.data).Id)
	}
	vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("bad input")}))
	require.NoError(t, err)
	b, err := assistants.Result[gen.VectorStoreFileBatchObject](c.CreateVectorStoreFileBatchWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileBatchRequest{FileIds: &ids}))
	require.NoError(t, err)
	got := waitVectorStore(t, ctx, c, vs.Id)
	want := gen.VectorStoreFileCounts{Completed: 1, Failed: len(files) - 1, Total: len(files)}
	assert.Equal(t, want, got.FileCounts)
	gb, err := assistants.Result[gen.VectorStoreFileBatchObject](c.GetVectorStoreFileBatchWithResponse(ctx, vs.Id, b.Id))
	require.NoError(t, err)
	assert.Equal(t, gen.VectorStoreFileBatchFileCounts(want), gb.FileCounts)
	assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), gb.Status)
	for i, f := range files {
		vf, err := assistants.Result[gen.VectorStoreFileObject](c.GetVectorStoreFileWithResponse(ctx, vs.Id, ids[i]))
		require.NoError(t, err)
		assert.Equal(t, f.status, string(vf.Status), f.name)
		if f.code == "" {
			assert.Nil(t, vf.LastError, f.name)
			continue
		}
		require.NotNil(t, vf.LastError, f.name)
		assert.Equal(t, f.code, string(vf.LastError.Code), f.name)
		assert.Contains(t, vf.LastError.Message, f.name)
	}
	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("albatrosses glide"))
	res, err := assistants.Result[gen.VectorStoreSearchResultsPage](c.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q}))
	require.NoError(t, err)
	require.Len(t, res.Data, 1)
	assert.Equal(t, "good.txt", res.Data[0].Filename)
}

// A file uploaded under a larger limit than the server that processes it
// has ends failed with a last_error naming the limit; the batch's other
// file completes (every store: the first server is closed before the
// second starts, so the second's workers take the jobs).
func TestOversizedStoredFile(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			ctx := t.Context()
			st := s.open(t)
			t.Cleanup(func() { require.NoError(t, st.Close()) })
			a, err := assistantstest.Start(server.WithStepDelay(time.Millisecond), server.WithStore(st))
			require.NoError(t, err)
			c := newClient(t, a.URL)
			big := uploadFile(t, ctx, c, "big.txt", bytes.Repeat([]byte("penguin "), 1024))
			small := uploadFile(t, ctx, c, "small.txt", []byte("Penguins eat krill."))
			require.NoError(t, a.Close())

			b := assistantstest.NewServer(t, server.WithStepDelay(time.Millisecond), server.WithStore(st), server.WithMaxFileBytes(1024))
			c = newClient(t, b.URL)
			vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{big.Id, small.Id}}))
			require.NoError(t, err)
			got := waitVectorStore(t, ctx, c, vs.Id)
			assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Failed: 1, Total: 2}, got.FileCounts)
			f, err := assistants.Result[gen.VectorStoreFileObject](c.GetVectorStoreFileWithResponse(ctx, vs.Id, big.Id))
			require.NoError(t, err)
			require.NotNil(t, f.LastError)
			assert.Equal(t, "invalid_file", string(f.LastError.Code))
			assert.Contains(t, f.LastError.Message, "larger than this server's limit of 1024 bytes")
		})
	}
}

// Two replicas on one PostgreSQL database: a vector store created, and
// its files ingested, through replica A is searched through replica B,
// and a file_search run on B cites A's file. A batch attached through B
// shows the same counts on A at every poll.
func TestFileSearchTwoReplicasPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	u := pgtest.Schema(t)
	open := func() store.Store {
		st, err := postgres.Open(ctx, u, quietPostgres)
		require.NoError(t, err)
		return st
	}
	a := startServer(t, open())
	b := startServer(t, open())
	ca, cb := newClient(t, a.URL), newClient(t, b.URL)

	penguins := uploadFile(t, ctx, ca, "penguins.md", []byte(penguinText))
	whales := uploadFile(t, ctx, ca, "whales.txt", []byte(whaleText))
	vs, err := assistants.Result[gen.VectorStoreObject](ca.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{penguins.Id, whales.Id}}))
	require.NoError(t, err)
	onA := waitVectorStore(t, ctx, ca, vs.Id)
	require.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, onA.FileCounts)
	onB, err := assistants.Result[gen.VectorStoreObject](cb.GetVectorStoreWithResponse(ctx, vs.Id))
	require.NoError(t, err)
	assert.Equal(t, onA.FileCounts, onB.FileCounts, "B sees A's vector store")

	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("what do emperor penguins eat"))
	res, err := assistants.Result[gen.VectorStoreSearchResultsPage](cb.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q}))
	require.NoError(t, err)
	require.NotEmpty(t, res.Data, "B searches the chunks A's files were cut into")
	assert.Equal(t, penguins.Id, res.Data[0].FileId)
	assert.Equal(t, "penguins.md", res.Data[0].Filename)

	flowFileSearchRun(t, ctx, cb, vs.Id, penguins.Id)

	// A batch through B: A and B count the same at every poll.
	var ids []string
	for i := range 6 {
		ids = append(ids, uploadFile(t, ctx, cb, "note.txt", []byte(strings.Repeat("Seals and penguins share the ice. ", 50+i))).Id)
	}
	batch, err := assistants.Result[gen.VectorStoreFileBatchObject](cb.CreateVectorStoreFileBatchWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileBatchRequest{FileIds: &ids}))
	require.NoError(t, err)
	for {
		ga, err := assistants.Result[gen.VectorStoreFileBatchObject](ca.GetVectorStoreFileBatchWithResponse(ctx, vs.Id, batch.Id))
		require.NoError(t, err)
		gb, err := assistants.Result[gen.VectorStoreFileBatchObject](cb.GetVectorStoreFileBatchWithResponse(ctx, vs.Id, batch.Id))
		require.NoError(t, err)
		assert.Equal(t, len(ids), ga.FileCounts.Total)
		assert.GreaterOrEqual(t, gb.FileCounts.Completed, ga.FileCounts.Completed, "B, read after A, is at least as far")
		if ga.Status != "in_progress" {
			assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: len(ids), Total: len(ids)}, ga.FileCounts)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("batch still in progress: %+v", ga.FileCounts)
		case <-time.After(10 * time.Millisecond):
		}
	}
	final := waitVectorStore(t, ctx, ca, vs.Id)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2 + len(ids), Total: 2 + len(ids)}, final.FileCounts)
}

// chunkDimsQuery lists the distinct vector dimensions of a database
// store's chunks (the same SQL on SQLite and PostgreSQL).
const chunkDimsQuery = `SELECT DISTINCT embedding_dim FROM vector_store_chunks ORDER BY 1`

// intRows is what database/sql's and pgx's result rows have in common.
type intRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanInts reads rows of one integer column to the end; the caller closes
// rows.
func scanInts(t *testing.T, rows intRows) []int {
	t.Helper()
	var out []int
	for rows.Next() {
		var d int
		require.NoError(t, rows.Scan(&d))
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

// Changing the embedding model of a database's server (SQLite,
// PostgreSQL) is refused clearly, and never mixes vectors: a server
// started with another model (the built-in embedder at 128 dimensions
// instead of 256) answers a search with 409 embedding_model_changed naming
// both models, fails a new file with a last_error saying so, and writes no
// vector; back on the first model, the first file is found again.
func TestEmbeddingModelChange(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var reopen func() store.Store
			var dims func(store.Store) []int
			switch name {
			case "sqlite":
				dir := t.TempDir()
				reopen = func() store.Store {
					st, err := sqlite.OpenDir(ctx, dir, quietSQLite)
					require.NoError(t, err)
					return st
				}
				dims = func(st store.Store) []int {
					rows, err := st.(*sqlite.Store).DB().QueryContext(ctx, chunkDimsQuery)
					require.NoError(t, err)
					defer rows.Close()
					return scanInts(t, rows)
				}
			default:
				u := pgtest.Schema(t)
				reopen = func() store.Store {
					st, err := postgres.Open(ctx, u, quietPostgres)
					require.NoError(t, err)
					return st
				}
				dims = func(st store.Store) []int {
					rows, err := st.(*postgres.Store).Pool().Query(ctx, chunkDimsQuery)
					require.NoError(t, err)
					defer rows.Close()
					return scanInts(t, rows)
				}
			}
			search := func(c *assistants.Client, vsID string) (*gen.SearchVectorStoreReply, error) {
				var q gen.VectorStoreSearchQuery
				require.NoError(t, q.FromVectorStoreSearchQueryText("penguins eat krill"))
				return c.SearchVectorStoreWithResponse(ctx, vsID, gen.VectorStoreSearchRequest{Query: q})
			}

			st := reopen()
			a, err := assistantstest.Start(server.WithStepDelay(time.Millisecond), server.WithStore(st))
			require.NoError(t, err)
			c := newClient(t, a.URL)
			first := uploadFile(t, ctx, c, "first.txt", []byte("Emperor penguins eat krill and fish."))
			second := uploadFile(t, ctx, c, "second.txt", []byte("Penguins also eat squid."))
			vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{first.Id}}))
			require.NoError(t, err)
			require.Equal(t, 1, waitVectorStore(t, ctx, c, vs.Id).FileCounts.Completed)
			require.NoError(t, a.Close())
			require.NoError(t, st.Close())

			other, err := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 128 })
			require.NoError(t, err)
			st = reopen()
			b, err := assistantstest.Start(server.WithStepDelay(time.Millisecond), server.WithStore(st), server.WithEmbedder(other))
			require.NoError(t, err)
			c = newClient(t, b.URL)
			r, err := search(c, vs.Id)
			require.NoError(t, err)
			require.Equal(t, 409, r.StatusCode(), "body: %s", r.Body)
			body := string(r.Body)
			assert.Contains(t, body, "embedding_model_changed")
			assert.Contains(t, body, `builtin-lexical-hash-v2-256`)
			assert.Contains(t, body, `builtin-lexical-hash-v2-128`)
			_, err = assistants.Result[gen.VectorStoreFileObject](c.CreateVectorStoreFileWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileRequest{FileId: second.Id}))
			require.NoError(t, err)
			got := waitVectorStore(t, ctx, c, vs.Id)
			assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Failed: 1, Total: 2}, got.FileCounts)
			f, err := assistants.Result[gen.VectorStoreFileObject](c.GetVectorStoreFileWithResponse(ctx, vs.Id, second.Id))
			require.NoError(t, err)
			require.NotNil(t, f.LastError)
			assert.Contains(t, f.LastError.Message, "The embedding model changed")
			assert.Contains(t, f.LastError.Message, `builtin-lexical-hash-v2-128`)
			assert.Equal(t, []int{256}, dims(st), "no vector of the other model was written")
			require.NoError(t, b.Close())
			require.NoError(t, st.Close())

			st = reopen()
			t.Cleanup(func() { st.Close() })
			c = newClient(t, assistantstest.NewServer(t, server.WithStepDelay(time.Millisecond), server.WithStore(st)).URL)
			r, err = search(c, vs.Id)
			require.NoError(t, err)
			require.NotNil(t, r.JSON200, "body: %s", r.Body)
			require.NotEmpty(t, r.JSON200.Data)
			assert.Equal(t, first.Id, r.JSON200.Data[0].FileId, "the first model's vectors are intact")
		})
	}
}

// TestIngestKilledMidBatchSQLite kills `serve --data` (SIGKILL) while a
// file batch is being processed, starts it again on the same data, and
// checks that the batch completes with every file completed, that its
// counts add up at every poll and never go back, and that every file is
// searchable. The killed process's running jobs are rescued (after
// --rescue-after), the others were waiting in the database.
func TestIngestKilledMidBatchSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := append([]string{"--data", dir, "--step-delay", "1ms"}, pickupFlags...)
	a1 := startServe(t, args...)
	c := newClient(t, a1.URL)
	const files = 24
	var ids []string
	for i := range files {
		var b strings.Builder
		for j := 0; b.Len() < 400<<10; j++ {
			fmt.Fprintf(&b, "Document %d (doc%02dx), line %d: emperor penguin %d dives for krill near floe %d. ", i, i, j, j*7%97, j*13%89)
		}
		ids = append(ids, uploadFile(t, ctx, c, fmt.Sprintf("doc-%02d.txt", i), []byte(b.String())).Id)
	}
	vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("killed")}))
	require.NoError(t, err)
	batch, err := assistants.Result[gen.VectorStoreFileBatchObject](c.CreateVectorStoreFileBatchWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileBatchRequest{FileIds: &ids}))
	require.NoError(t, err)
	poll := func(c *assistants.Client, last *gen.VectorStoreFileBatchFileCounts) gen.VectorStoreFileBatchObject {
		t.Helper()
		b, err := assistants.Result[gen.VectorStoreFileBatchObject](c.GetVectorStoreFileBatchWithResponse(ctx, vs.Id, batch.Id))
		require.NoError(t, err)
		fc := b.FileCounts
		require.Equal(t, files, fc.Total)
		require.Equal(t, fc.Total, fc.InProgress+fc.Completed+fc.Failed+fc.Cancelled, "counts add up: %+v", fc)
		require.Zero(t, fc.Failed+fc.Cancelled, "no file fails: %+v", fc)
		require.GreaterOrEqual(t, fc.Completed, last.Completed, "counts never go back")
		*last = fc
		return *b
	}
	var last gen.VectorStoreFileBatchFileCounts
	for { // until some files are done and some are not, then kill
		b := poll(c, &last)
		require.Equal(t, gen.VectorStoreFileBatchObjectStatus("in_progress"), b.Status, "the batch ended before the kill; make the files bigger")
		if b.FileCounts.Completed > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, a1.Kill())
	killedAt := last

	a2 := startServe(t, args...)
	c = newClient(t, a2.URL)
	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	for {
		b := poll(c, &last)
		if b.Status != "in_progress" {
			assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), b.Status)
			break
		}
		select {
		case <-pctx.Done():
			t.Fatalf("the batch did not resume after the restart: %+v", b.FileCounts)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("killed at %+v; completed after the restart", killedAt)
	assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: files, Total: files}, last)
	got := waitVectorStore(t, ctx, c, vs.Id)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: files, Total: files}, got.FileCounts)
	for _, i := range []int{0, files / 2, files - 1} {
		var q gen.VectorStoreSearchQuery
		// Each document has a word of its own (doc00x): "Document 0, line
		// 3" alone has the words of doc-03's "Document 3, line 0" too.
		require.NoError(t, q.FromVectorStoreSearchQueryText(fmt.Sprintf("Document doc%02dx, line 3", i)))
		one := 1
		res, err := assistants.Result[gen.VectorStoreSearchResultsPage](c.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q, MaxNumResults: &one}))
		require.NoError(t, err)
		require.Len(t, res.Data, 1)
		assert.Equal(t, fmt.Sprintf("doc-%02d.txt", i), res.Data[0].Filename)
	}
}

// A database whose vectors come from version 1 of the built-in embedder
// (servers before version 2) stays searchable after an upgrade: a server
// with the default embedder finds the stored model is the built-in's
// earlier version and searches and adds files with it, instead of
// answering 409 embedding_model_changed to every search. (SQLite; the
// choice is the server's, not the store's, so PostgreSQL takes the same
// path.)
func TestBuiltinEmbedderV1StoreStaysSearchable(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	reopen := func() store.Store {
		st, err := sqlite.OpenDir(ctx, dir, quietSQLite)
		require.NoError(t, err)
		return st
	}
	v1, err := embed.NewHashing(func(o *embed.HashingOptions) { o.Version = 1 })
	require.NoError(t, err)
	st := reopen()
	a, err := assistantstest.Start(server.WithStepDelay(time.Millisecond), server.WithStore(st), server.WithEmbedder(v1))
	require.NoError(t, err)
	c := newClient(t, a.URL)
	first := uploadFile(t, ctx, c, "first.txt", []byte("Emperor penguins eat krill and fish."))
	second := uploadFile(t, ctx, c, "second.txt", []byte("Penguins also eat squid."))
	vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{first.Id}}))
	require.NoError(t, err)
	require.Equal(t, 1, waitVectorStore(t, ctx, c, vs.Id).FileCounts.Completed)
	require.NoError(t, a.Close())
	require.NoError(t, st.Close())

	st = reopen()
	t.Cleanup(func() { st.Close() })
	c = newClient(t, assistantstest.NewServer(t, server.WithStepDelay(time.Millisecond), server.WithStore(st)).URL)
	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("penguins eat krill"))
	r, err := c.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q})
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "status %d, body: %s", r.StatusCode(), r.Body)
	require.NotEmpty(t, r.JSON200.Data)
	assert.Equal(t, first.Id, r.JSON200.Data[0].FileId)
	_, err = assistants.Result[gen.VectorStoreFileObject](c.CreateVectorStoreFileWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileRequest{FileId: second.Id}))
	require.NoError(t, err)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, waitVectorStore(t, ctx, c, vs.Id).FileCounts)
	var models []string
	rows, err := st.(*sqlite.Store).DB().QueryContext(ctx, `SELECT DISTINCT model FROM vector_store_file_vectors`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		models = append(models, m)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{v1.Model()}, models, "one model in the store, version 1's")
}
