package server_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// multipartBody builds an upload body; an empty purpose is left out.
func multipartBody(t testing.TB, filename string, data []byte, purpose string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if purpose != "" {
		require.NoError(t, mw.WriteField("purpose", purpose))
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		require.NoError(t, err)
		_, err = fw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), &buf
}

func upload(t testing.TB, ctx context.Context, c *assistants.Client, name, text string) gen.OpenAIFile {
	t.Helper()
	ct, body := multipartBody(t, name, []byte(text), "assistants")
	r, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	return *r.JSON200
}

func TestFilesRoundTrip(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	data := []byte("line one\nline two\x00 binary is fine\n")
	ct, body := multipartBody(t, "notes.txt", data, "assistants")
	r, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	f := r.JSON200
	assert.True(t, strings.HasPrefix(f.Id, "file-"))
	assert.Equal(t, gen.OpenAIFileObject("file"), f.Object)
	assert.Equal(t, "notes.txt", f.Filename)
	assert.Equal(t, len(data), f.Bytes)
	assert.Equal(t, gen.OpenAIFilePurpose("assistants"), f.Purpose)

	g, err := c.RetrieveFileWithResponse(ctx, f.Id)
	require.NoError(t, err)
	require.NotNil(t, g.JSON200)
	assert.Equal(t, *f, *g.JSON200)

	d, err := c.DownloadFileWithResponse(ctx, f.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, d.StatusCode())
	assert.Equal(t, data, d.Body)
	assert.Equal(t, "application/octet-stream", d.HTTPResponse.Header.Get("Content-Type"))
	assert.Contains(t, d.HTTPResponse.Header.Get("Content-Disposition"), `filename=notes.txt`)

	// A second file of another purpose, and the purpose filter.
	ct, body = multipartBody(t, "cat.png", []byte("\x89PNG"), "vision")
	r2, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
	require.NoError(t, err)
	require.NotNil(t, r2.JSON200, "body: %s", r2.Body)
	l, err := c.ListFilesWithResponse(ctx, nil)
	require.NoError(t, err)
	require.NotNil(t, l.JSON200)
	require.Len(t, l.JSON200.Data, 2)
	assert.Equal(t, r2.JSON200.Id, l.JSON200.Data[0].Id, "newest first")
	purpose := "assistants"
	l, err = c.ListFilesWithResponse(ctx, &gen.ListFilesParams{Purpose: &purpose})
	require.NoError(t, err)
	require.Len(t, l.JSON200.Data, 1)
	assert.Equal(t, f.Id, l.JSON200.Data[0].Id)

	del, err := c.DeleteFileWithResponse(ctx, f.Id)
	require.NoError(t, err)
	require.NotNil(t, del.JSON200)
	assert.Equal(t, gen.DeleteFileResponse{Id: f.Id, Object: "file", Deleted: true}, *del.JSON200)
	g, err = c.RetrieveFileWithResponse(ctx, f.Id)
	require.NoError(t, err)
	requireAPIError(t, g, g.Body, http.StatusNotFound, "file_id")
}

func TestFileUploadErrors(t *testing.T) {
	srv, ctx := newTestServer(t, server.WithMaxFileBytes(1024))
	c := srv.Client
	cases := []struct {
		name     string
		filename string
		data     []byte
		purpose  string
		status   int
		param    string
	}{
		{"too large", "big.txt", bytes.Repeat([]byte("x"), 2048), "assistants", http.StatusBadRequest, "file"},
		{"no file", "", nil, "assistants", http.StatusBadRequest, "file"},
		{"no purpose", "a.txt", []byte("x"), "", http.StatusBadRequest, "purpose"},
		{"bad purpose", "a.txt", []byte("x"), "homework", http.StatusBadRequest, "purpose"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.filename, tc.data, tc.purpose)
			r, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
			require.NoError(t, err)
			requireAPIError(t, r, r.Body, tc.status, tc.param)
		})
	}
	t.Run("body far over the limit", func(t *testing.T) {
		ct, body := multipartBody(t, "huge.txt", bytes.Repeat([]byte("x"), 3<<20), "assistants")
		r, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
		require.NoError(t, err)
		requireAPIError(t, r, r.Body, http.StatusRequestEntityTooLarge, "")
	})
	t.Run("not multipart", func(t *testing.T) {
		r, err := c.CreateFileWithBodyWithResponse(ctx, "multipart/form-data", strings.NewReader("garbage"))
		require.NoError(t, err)
		requireAPIError(t, r, r.Body, http.StatusBadRequest, "")
	})
}

func searchQuery(q string) gen.VectorStoreSearchQuery {
	var out gen.VectorStoreSearchQuery
	_ = out.FromVectorStoreSearchQueryText(q)
	return out
}

func attr(v any) gen.VectorStoreFileAttributeValue {
	var a gen.VectorStoreFileAttributeValue
	switch v := v.(type) {
	case string:
		_ = a.FromVectorStoreFileAttributeString(v)
	case float64:
		_ = a.FromVectorStoreFileAttributeNumber(v)
	case bool:
		_ = a.FromVectorStoreFileAttributeBoolean(v)
	}
	return a
}

// The lifecycle runs in a synctest bubble on the in-process server, so the
// step delay passes on the fake clock.
func TestVectorStoreLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const step = 50 * time.Millisecond
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(step))
		ctx, c := t.Context(), srv.Client
		good := upload(t, ctx, c, "guide.md", "Penguins live in Antarctica.\n\nThey eat krill and fish.")
		empty := upload(t, ctx, c, "empty.txt", "")

		name := "docs"
		cr, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: &name, FileIds: &[]string{good.Id, empty.Id}})
		require.NoError(t, err)
		require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
		vs := cr.JSON200
		assert.True(t, strings.HasPrefix(vs.Id, "vs_"))
		assert.Equal(t, gen.VectorStoreObjectStatus("in_progress"), vs.Status)
		assert.Equal(t, gen.VectorStoreFileCounts{InProgress: 2, Total: 2}, vs.FileCounts)

		time.Sleep(step)
		synctest.Wait()
		g, err := c.GetVectorStoreWithResponse(ctx, vs.Id)
		require.NoError(t, err)
		require.NotNil(t, g.JSON200)
		assert.Equal(t, gen.VectorStoreObjectStatus("completed"), g.JSON200.Status)
		assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Failed: 1, Total: 2}, g.JSON200.FileCounts)
		// usage: the text and its one chunk's vector (256 float32s).
		assert.Equal(t, good.Bytes+256*4, g.JSON200.UsageBytes)

		// The empty file failed with a reason.
		ef, err := c.GetVectorStoreFileWithResponse(ctx, vs.Id, empty.Id)
		require.NoError(t, err)
		require.NotNil(t, ef.JSON200)
		assert.Equal(t, gen.VectorStoreFileObjectStatus("failed"), ef.JSON200.Status)
		require.NotNil(t, ef.JSON200.LastError)
		assert.Equal(t, gen.VectorStoreFileObjectLastErrorCode("invalid_file"), ef.JSON200.LastError.Code)

		// filter on the file list.
		completed := gen.ListVectorStoreFilesParamsFilter("completed")
		lf, err := c.ListVectorStoreFilesWithResponse(ctx, vs.Id, &gen.ListVectorStoreFilesParams{Filter: &completed})
		require.NoError(t, err)
		require.NotNil(t, lf.JSON200)
		require.Len(t, lf.JSON200.Data, 1)
		assert.Equal(t, good.Id, lf.JSON200.Data[0].Id)
		lf, err = c.ListVectorStoreFilesWithResponse(ctx, vs.Id, nil)
		require.NoError(t, err)
		assert.Len(t, lf.JSON200.Data, 2)

		// Content, split in parts.
		content, err := c.RetrieveVectorStoreFileContentWithResponse(ctx, vs.Id, good.Id)
		require.NoError(t, err)
		require.NotNil(t, content.JSON200, "body: %s", content.Body)
		require.Len(t, content.JSON200.Data, 2)
		assert.Equal(t, "Penguins live in Antarctica.", *content.JSON200.Data[0].Text)
		assert.Equal(t, "text", *content.JSON200.Data[0].Type)

		// Attributes.
		ua, err := c.UpdateVectorStoreFileAttributesWithResponse(ctx, vs.Id, good.Id, gen.UpdateVectorStoreFileAttributesRequest{
			Attributes: &gen.VectorStoreFileAttributes{"topic": attr("birds"), "year": attr(2024.0)},
		})
		require.NoError(t, err)
		require.NotNil(t, ua.JSON200, "body: %s", ua.Body)
		assert.Len(t, *ua.JSON200.Attributes, 2)

		// A single file attached later goes through the same states.
		late := upload(t, ctx, c, "late.txt", "Krill are small crustaceans.")
		vf, err := c.CreateVectorStoreFileWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileRequest{FileId: late.Id})
		require.NoError(t, err)
		require.NotNil(t, vf.JSON200, "body: %s", vf.Body)
		assert.Equal(t, gen.VectorStoreFileObjectStatus("in_progress"), vf.JSON200.Status)
		g, _ = c.GetVectorStoreWithResponse(ctx, vs.Id)
		assert.Equal(t, gen.VectorStoreObjectStatus("in_progress"), g.JSON200.Status)
		assert.Equal(t, gen.VectorStoreFileCounts{InProgress: 1, Completed: 1, Failed: 1, Total: 3}, g.JSON200.FileCounts)
		time.Sleep(step)
		synctest.Wait()
		g, _ = c.GetVectorStoreWithResponse(ctx, vs.Id)
		assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Failed: 1, Total: 3}, g.JSON200.FileCounts)

		// Modify.
		newName := "penguin docs"
		mv, err := c.ModifyVectorStoreWithResponse(ctx, vs.Id, gen.UpdateVectorStoreRequest{Name: &newName, Metadata: &gen.Metadata{"a": "b"},
			ExpiresAfter: &gen.VectorStoreExpirationAfter{Anchor: "last_active_at", Days: 7}})
		require.NoError(t, err)
		require.NotNil(t, mv.JSON200, "body: %s", mv.Body)
		assert.Equal(t, newName, mv.JSON200.Name)
		require.NotNil(t, mv.JSON200.ExpiresAt)
		assert.Equal(t, *mv.JSON200.LastActiveAt+7*86400, *mv.JSON200.ExpiresAt)

		// Detach a file; deleting the uploaded file detaches it too.
		dvf, err := c.DeleteVectorStoreFileWithResponse(ctx, vs.Id, empty.Id)
		require.NoError(t, err)
		require.NotNil(t, dvf.JSON200)
		assert.Equal(t, gen.DeleteVectorStoreFileResponse{Id: empty.Id, Object: "vector_store.file.deleted", Deleted: true}, *dvf.JSON200)
		_, err = c.DeleteFileWithResponse(ctx, late.Id)
		require.NoError(t, err)
		g, _ = c.GetVectorStoreWithResponse(ctx, vs.Id)
		assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Total: 1}, g.JSON200.FileCounts)
		assert.Equal(t, good.Bytes+256*4, g.JSON200.UsageBytes)

		// List and delete.
		lv, err := c.ListVectorStoresWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, lv.JSON200.Data, 1)
		dv, err := c.DeleteVectorStoreWithResponse(ctx, vs.Id)
		require.NoError(t, err)
		require.NotNil(t, dv.JSON200)
		assert.Equal(t, gen.DeleteVectorStoreResponse{Id: vs.Id, Object: "vector_store.deleted", Deleted: true}, *dv.JSON200)
		g, _ = c.GetVectorStoreWithResponse(ctx, vs.Id)
		requireAPIError(t, g, g.Body, http.StatusNotFound, "vector_store_id")
	})
}

func TestFileBatchLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const step = 50 * time.Millisecond
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(step))
		ctx, c := t.Context(), srv.Client
		a := upload(t, ctx, c, "a.txt", "alpha")
		b := upload(t, ctx, c, "b.txt", "beta")
		vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
		require.NoError(t, err)
		store := vs.JSON200.Id

		// A batch with one good file, one unknown file: one completes, one fails.
		br, err := c.CreateVectorStoreFileBatchWithResponse(ctx, store, gen.CreateVectorStoreFileBatchRequest{
			FileIds:    &[]string{a.Id, "file-doesnotexist"},
			Attributes: &gen.VectorStoreFileAttributes{"source": attr("batch")},
		})
		require.NoError(t, err)
		require.NotNil(t, br.JSON200, "body: %s", br.Body)
		batch := br.JSON200
		assert.True(t, strings.HasPrefix(batch.Id, "vsfb_"))
		assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("in_progress"), batch.Status)
		assert.Equal(t, gen.VectorStoreFileBatchFileCounts{InProgress: 2, Total: 2}, batch.FileCounts)

		time.Sleep(step)
		synctest.Wait()
		gb, err := c.GetVectorStoreFileBatchWithResponse(ctx, store, batch.Id)
		require.NoError(t, err)
		require.NotNil(t, gb.JSON200)
		assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), gb.JSON200.Status)
		assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: 1, Failed: 1, Total: 2}, gb.JSON200.FileCounts)

		lb, err := c.ListFilesInVectorStoreBatchWithResponse(ctx, store, batch.Id, nil)
		require.NoError(t, err)
		require.NotNil(t, lb.JSON200)
		require.Len(t, lb.JSON200.Data, 2)
		failed := gen.ListFilesInVectorStoreBatchParamsFilter("failed")
		lb, err = c.ListFilesInVectorStoreBatchWithResponse(ctx, store, batch.Id, &gen.ListFilesInVectorStoreBatchParams{Filter: &failed})
		require.NoError(t, err)
		require.Len(t, lb.JSON200.Data, 1)
		assert.Equal(t, "file-doesnotexist", lb.JSON200.Data[0].Id)
		require.NotNil(t, lb.JSON200.Data[0].LastError)

		// A completed batch cannot be cancelled.
		cb, err := c.CancelVectorStoreFileBatchWithResponse(ctx, store, batch.Id)
		require.NoError(t, err)
		requireAPIError(t, cb, cb.Body, http.StatusBadRequest, "batch_id")

		// A batch cancelled before processing: its files end cancelled.
		br2, err := c.CreateVectorStoreFileBatchWithResponse(ctx, store, gen.CreateVectorStoreFileBatchRequest{
			Files: &[]gen.CreateVectorStoreFileRequest{{FileId: b.Id}},
		})
		require.NoError(t, err)
		require.NotNil(t, br2.JSON200, "body: %s", br2.Body)
		g, _ := c.GetVectorStoreWithResponse(ctx, store)
		assert.Equal(t, gen.VectorStoreFileCounts{InProgress: 1, Completed: 1, Failed: 1, Total: 3}, g.JSON200.FileCounts)
		cb, err = c.CancelVectorStoreFileBatchWithResponse(ctx, store, br2.JSON200.Id)
		require.NoError(t, err)
		require.NotNil(t, cb.JSON200, "body: %s", cb.Body)
		assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("cancelled"), cb.JSON200.Status)
		assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Cancelled: 1, Total: 1}, cb.JSON200.FileCounts)
		time.Sleep(step)
		synctest.Wait()
		g, _ = c.GetVectorStoreWithResponse(ctx, store)
		assert.Equal(t, gen.VectorStoreFileCounts{Cancelled: 1, Completed: 1, Failed: 1, Total: 3}, g.JSON200.FileCounts)
		assert.Equal(t, gen.VectorStoreObjectStatus("completed"), g.JSON200.Status)
		gb, _ = c.GetVectorStoreFileBatchWithResponse(ctx, store, br2.JSON200.Id)
		assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("cancelled"), gb.JSON200.Status, "stays cancelled")
		cb, err = c.CancelVectorStoreFileBatchWithResponse(ctx, store, br2.JSON200.Id)
		require.NoError(t, err)
		require.NotNil(t, cb.JSON200, "cancelling twice is fine")
	})
}

func TestVectorStoreSearch(t *testing.T) {
	srv, ctx := newTestServer(t) // StepDelay 0: files are processed at once
	c := srv.Client
	penguins := upload(t, ctx, c, "penguins.txt", "Penguins are flightless birds. Penguins eat krill.")
	whales := upload(t, ctx, c, "whales.txt", "Blue whales eat krill too, tons of it.")
	_ = upload(t, ctx, c, "cars.txt", "Engines and wheels.")
	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
	require.NoError(t, err)
	store := vs.JSON200.Id
	br, err := c.CreateVectorStoreFileBatchWithResponse(ctx, store, gen.CreateVectorStoreFileBatchRequest{
		Files: &[]gen.CreateVectorStoreFileRequest{
			{FileId: penguins.Id, Attributes: &gen.VectorStoreFileAttributes{"kind": attr("bird"), "legs": attr(2.0)}},
			{FileId: whales.Id, Attributes: &gen.VectorStoreFileAttributes{"kind": attr("mammal"), "legs": attr(0.0)}},
		},
	})
	require.NoError(t, err)
	require.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), br.JSON200.Status)

	search := func(req gen.VectorStoreSearchRequest) *gen.VectorStoreSearchResultsPage {
		t.Helper()
		r, err := c.SearchVectorStoreWithResponse(ctx, store, req)
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		assert.Equal(t, gen.VectorStoreSearchResultsPageObject("vector_store.search_results.page"), r.JSON200.Object)
		assert.False(t, r.JSON200.HasMore)
		assert.Nil(t, r.JSON200.NextPage)
		return r.JSON200
	}

	res := search(gen.VectorStoreSearchRequest{Query: searchQuery("penguins eat krill")})
	assert.Equal(t, []string{"penguins eat krill"}, res.SearchQuery)
	require.Len(t, res.Data, 2)
	assert.Equal(t, penguins.Id, res.Data[0].FileId, "all three words match")
	assert.Equal(t, "penguins.txt", res.Data[0].Filename)
	assert.LessOrEqual(t, res.Data[0].Score, float32(1))
	assert.Equal(t, whales.Id, res.Data[1].FileId)
	assert.Less(t, res.Data[1].Score, res.Data[0].Score)
	assert.Greater(t, res.Data[1].Score, float32(0))
	best, second := res.Data[0].Score, res.Data[1].Score
	require.NotEmpty(t, res.Data[0].Content)
	assert.Equal(t, gen.VectorStoreSearchResultContentObjectType("text"), res.Data[0].Content[0].Type)
	assert.Contains(t, res.Data[0].Content[0].Text, "flightless")
	require.NotNil(t, res.Data[0].Attributes)

	one := 1
	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("krill"), MaxNumResults: &one})
	assert.Len(t, res.Data, 1)

	threshold := (best + second) / 2 // between the two files' scores
	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("penguins eat krill"), RankingOptions: &gen.VectorStoreSearchRankingOptions{ScoreThreshold: &threshold}})
	require.Len(t, res.Data, 1)
	assert.Equal(t, penguins.Id, res.Data[0].FileId)

	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("engines wheels")})
	for _, d := range res.Data {
		assert.NotEqual(t, "cars.txt", d.Filename, "cars.txt is not in the store")
	}

	filter := func(f gen.ComparisonFilter) *gen.VectorStoreSearchFilter {
		var out gen.VectorStoreSearchFilter
		require.NoError(t, out.FromComparisonFilter(f))
		return &out
	}
	var mammal gen.ComparisonFilterValue
	require.NoError(t, mammal.FromComparisonFilterString("mammal"))
	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("krill"), Filters: filter(gen.ComparisonFilter{Key: "kind", Type: "eq", Value: mammal})})
	require.Len(t, res.Data, 1)
	assert.Equal(t, whales.Id, res.Data[0].FileId)

	var one1 gen.ComparisonFilterValue
	require.NoError(t, one1.FromComparisonFilterNumber(1))
	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("krill"), Filters: filter(gen.ComparisonFilter{Key: "legs", Type: "gt", Value: one1})})
	require.Len(t, res.Data, 1)
	assert.Equal(t, penguins.Id, res.Data[0].FileId)

	// Compound filter: kind in [bird] or legs lt 1 -> both.
	var in gen.ComparisonFilterValue
	var item gen.ComparisonFilterValueItem
	require.NoError(t, item.FromComparisonFilterString("bird"))
	require.NoError(t, in.FromComparisonFilterList([]gen.ComparisonFilterValueItem{item}))
	var compound gen.VectorStoreSearchFilter
	require.NoError(t, compound.FromCompoundFilter(gen.CompoundFilter{Type: "or", Filters: []gen.VectorStoreSearchFilter{
		*filter(gen.ComparisonFilter{Key: "kind", Type: "in", Value: in}),
		*filter(gen.ComparisonFilter{Key: "legs", Type: "lt", Value: one1}),
	}}))
	res = search(gen.VectorStoreSearchRequest{Query: searchQuery("krill"), Filters: &compound})
	assert.Len(t, res.Data, 2)

	// Bad requests.
	fifty1 := 51
	r, err := c.SearchVectorStoreWithResponse(ctx, store, gen.VectorStoreSearchRequest{Query: searchQuery("x"), MaxNumResults: &fifty1})
	require.NoError(t, err)
	requireAPIError(t, r, r.Body, http.StatusBadRequest, "max_num_results")
	r, err = c.SearchVectorStoreWithResponse(ctx, store, gen.VectorStoreSearchRequest{Query: searchQuery("   ")})
	require.NoError(t, err)
	requireAPIError(t, r, r.Body, http.StatusBadRequest, "query")
}

func TestToolResourcesVectorStoreCreation(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	f := upload(t, ctx, c, "doc.txt", "some text")
	r, err := c.CreateThreadWithBodyWithResponse(ctx, "application/json", strings.NewReader(
		`{"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["`+f.Id+`"],"metadata":{"k":"v"}}]},"code_interpreter":{"file_ids":["`+f.Id+`"]}}}`))
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	tr := r.JSON200.ToolResources
	require.NotNil(t, tr)
	require.NotNil(t, tr.FileSearch)
	require.Len(t, *tr.FileSearch.VectorStoreIds, 1)
	vs, err := c.GetVectorStoreWithResponse(ctx, (*tr.FileSearch.VectorStoreIds)[0])
	require.NoError(t, err)
	require.NotNil(t, vs.JSON200)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Total: 1}, vs.JSON200.FileCounts)
	assert.Equal(t, []string{f.Id}, *tr.CodeInterpreter.FileIds)
}
