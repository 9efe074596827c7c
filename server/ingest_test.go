package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// A batch of good and bad files: each bad file ends failed with the
// extractor's reason, the others complete, and usage_bytes counts the
// text and the vectors of its token chunks.
func TestIngestBatchFailuresAndUsage(t *testing.T) {
	srv, ctx := newTestServer(t) // StepDelay 0: files are processed at once
	c := srv.Client
	long := strings.Repeat("Penguins dive for krill in cold water and come back to feed their chicks. ", 60)
	good := upload(t, ctx, c, "penguins.md", long)
	html := upload(t, ctx, c, "page.html", "<html><body><h1>Krill</h1><script>var x = 1;</script><p>Small crustaceans.</p></body></html>")
	bin := upload(t, ctx, c, "blob.bin", "not really binary")
	pdf := upload(t, ctx, c, "broken.pdf", "%PDF-1.7 this is not a PDF at all")
	nul := upload(t, ctx, c, "nul.txt", "text\x00with\x00zero\x00bytes")
	json := upload(t, ctx, c, "bad.json", `{"a": `)

	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
	require.NoError(t, err)
	store := vs.JSON200.Id
	static := func(maxTokens, overlap int) *gen.ChunkingStrategyRequestParam {
		var cs gen.ChunkingStrategyRequestParam
		require.NoError(t, cs.FromStaticChunkingStrategyRequestParam(gen.StaticChunkingStrategyRequestParam{
			Type: "static", Static: gen.StaticChunkingStrategy{MaxChunkSizeTokens: maxTokens, ChunkOverlapTokens: overlap}}))
		return &cs
	}
	br, err := c.CreateVectorStoreFileBatchWithResponse(ctx, store, gen.CreateVectorStoreFileBatchRequest{
		Files: &[]gen.CreateVectorStoreFileRequest{
			{FileId: good.Id, ChunkingStrategy: static(100, 20)},
			{FileId: bin.Id}, {FileId: html.Id}, {FileId: pdf.Id}, {FileId: nul.Id}, {FileId: json.Id},
		},
	})
	require.NoError(t, err)
	require.NotNil(t, br.JSON200, "body: %s", br.Body)
	assert.Equal(t, gen.VectorStoreFileBatchFileCounts{Completed: 2, Failed: 4, Total: 6}, br.JSON200.FileCounts)
	assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), br.JSON200.Status)

	tests := []struct {
		file    gen.OpenAIFile
		status  string
		code    string
		message string
	}{
		{good, "completed", "", ""},
		{html, "completed", "", ""},
		{bin, "failed", "unsupported_file", "blob.bin: binary files are not supported for retrieval."},
		{pdf, "failed", "invalid_file", "broken.pdf"},
		{nul, "failed", "invalid_file", "nul.txt looks like binary data, not text."},
		{json, "failed", "invalid_file", "bad.json is not valid JSON."},
	}
	for _, tt := range tests {
		t.Run(tt.file.Filename, func(t *testing.T) {
			g, err := c.GetVectorStoreFileWithResponse(ctx, store, tt.file.Id)
			require.NoError(t, err)
			require.NotNil(t, g.JSON200, "body: %s", g.Body)
			assert.Equal(t, tt.status, string(g.JSON200.Status))
			if tt.code == "" {
				assert.Nil(t, g.JSON200.LastError)
				return
			}
			require.NotNil(t, g.JSON200.LastError)
			assert.Equal(t, tt.code, string(g.JSON200.LastError.Code))
			assert.Contains(t, g.JSON200.LastError.Message, tt.message)
		})
	}

	// usage_bytes: the text plus 256 float32s per token chunk.
	chunks, err := chunk.Split(long, chunk.Strategy{MaxTokens: 100, OverlapTokens: 20}, tokenize.Default())
	require.NoError(t, err)
	require.Greater(t, len(chunks), 5, "a long text gives several chunks of 100 tokens")
	g, err := c.GetVectorStoreFileWithResponse(ctx, store, good.Id)
	require.NoError(t, err)
	assert.Equal(t, len(long)+len(chunks)*256*4, g.JSON200.UsageBytes)
	h, err := c.GetVectorStoreFileWithResponse(ctx, store, html.Id)
	require.NoError(t, err)
	v, err := c.GetVectorStoreWithResponse(ctx, store)
	require.NoError(t, err)
	assert.Equal(t, g.JSON200.UsageBytes+h.JSON200.UsageBytes, v.JSON200.UsageBytes)

	// The HTML file is searchable without its markup and script.
	q := "crustaceans"
	var query gen.VectorStoreSearchQuery
	require.NoError(t, query.FromVectorStoreSearchQueryText(q))
	r, err := c.SearchVectorStoreWithResponse(ctx, store, gen.VectorStoreSearchRequest{Query: query})
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	require.NotEmpty(t, r.JSON200.Data)
	assert.Equal(t, html.Id, r.JSON200.Data[0].FileId)
	assert.NotContains(t, r.JSON200.Data[0].Content[0].Text, "var x")
}

// Chunking strategies follow the API's rules, with its parameter names.
func TestChunkingStrategyRules(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	tests := []struct {
		name                 string
		body                 string
		wantParam            string
		wantMax, wantOverlap int
	}{
		{"auto", `{"type":"auto"}`, "", 800, 400},
		{"static ok", `{"type":"static","static":{"max_chunk_size_tokens":100,"chunk_overlap_tokens":50}}`, "", 100, 50},
		// The spec's validator refuses sizes out of range first, naming
		// the field of the member the value was meant for.
		{"too small", `{"type":"static","static":{"max_chunk_size_tokens":99,"chunk_overlap_tokens":0}}`, "chunking_strategy.static.max_chunk_size_tokens", 0, 0},
		{"too large", `{"type":"static","static":{"max_chunk_size_tokens":4097,"chunk_overlap_tokens":0}}`, "chunking_strategy.static.max_chunk_size_tokens", 0, 0},
		{"overlap over half", `{"type":"static","static":{"max_chunk_size_tokens":200,"chunk_overlap_tokens":101}}`, "chunking_strategy.static.chunk_overlap_tokens", 0, 0},
	}
	f := upload(t, ctx, c, "a.txt", "alpha beta gamma")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := c.CreateVectorStoreWithBodyWithResponse(ctx, "application/json", strings.NewReader(
				`{"file_ids":["`+f.Id+`"],"chunking_strategy":`+tt.body+`}`))
			require.NoError(t, err)
			if tt.wantParam != "" {
				requireAPIError(t, vs, vs.Body, http.StatusBadRequest, tt.wantParam)
				return
			}
			require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
			g, err := c.GetVectorStoreFileWithResponse(ctx, vs.JSON200.Id, f.Id)
			require.NoError(t, err)
			st, err := g.JSON200.ChunkingStrategy.AsStaticChunkingStrategyResponseParam()
			require.NoError(t, err)
			assert.Equal(t, tt.wantMax, st.Static.MaxChunkSizeTokens)
			assert.Equal(t, tt.wantOverlap, st.Static.ChunkOverlapTokens)
		})
	}
}

// The attribute filter applies before ranking: with max_num_results 1, the
// best file among those the filter allows comes back, even when a file
// the filter excludes ranks above it.
func TestSearchFiltersBeforeRanking(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	best := upload(t, ctx, c, "best.txt", "Penguins eat krill. Penguins eat krill and fish every day.")
	other := upload(t, ctx, c, "other.txt", "Some whales eat krill.")
	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
	require.NoError(t, err)
	_, err = c.CreateVectorStoreFileBatchWithResponse(ctx, vs.JSON200.Id, gen.CreateVectorStoreFileBatchRequest{
		Files: &[]gen.CreateVectorStoreFileRequest{
			{FileId: best.Id, Attributes: &gen.VectorStoreFileAttributes{"lang": attr("en"), "year": attr(2020.0)}},
			{FileId: other.Id, Attributes: &gen.VectorStoreFileAttributes{"lang": attr("de"), "year": attr(2024.0)}},
		},
	})
	require.NoError(t, err)
	search := func(filters string) *gen.VectorStoreSearchResultsPage {
		t.Helper()
		body := `{"query":"penguins eat krill","max_num_results":1`
		if filters != "" {
			body += `,"filters":` + filters
		}
		r, err := c.SearchVectorStoreWithBodyWithResponse(ctx, vs.JSON200.Id, "application/json", strings.NewReader(body+`}`))
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		return r.JSON200
	}
	res := search("")
	require.Len(t, res.Data, 1)
	assert.Equal(t, best.Id, res.Data[0].FileId, "unfiltered, best.txt ranks first")
	for _, f := range []string{
		`{"type":"eq","key":"lang","value":"de"}`,
		`{"type":"gte","key":"year","value":2021}`,
		`{"type":"and","filters":[{"type":"ne","key":"lang","value":"en"},{"type":"in","key":"year","value":[2023,2024]}]}`,
	} {
		res = search(f)
		require.Len(t, res.Data, 1, f)
		assert.Equal(t, other.Id, res.Data[0].FileId, f)
	}
	res = search(`{"type":"eq","key":"lang","value":"fr"}`)
	assert.Empty(t, res.Data)
	r, err := c.SearchVectorStoreWithBodyWithResponse(ctx, vs.JSON200.Id, "application/json", strings.NewReader(`{"query":"x","filters":{"type":"in","key":"lang","value":"en"}}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, r.StatusCode(), "body: %s", r.Body)
}
