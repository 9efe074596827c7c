package server_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// Bad input through the HTTP API: every bad file, filter or chunking
// strategy gets a clear 4xx or a failed vector store file with a
// last_error saying why, never a 500, and nothing else is lost.

// pdfOf writes a PDF with one page per text (a Helvetica text line each).
func pdfOf(pages ...string) []byte {
	kids := ""
	for i := range pages {
		kids += fmt.Sprintf("%d 0 R ", 4+2*i)
	}
	objs := []string{"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", kids, len(pages)),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"}
	for i, text := range pages {
		content := fmt.Sprintf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i),
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	}
	return pdfObjects(objs...)
}

// pdfObjects writes a PDF of the given objects (1 0 R is the catalog),
// with a correct cross-reference table.
func pdfObjects(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// docxOf writes a docx whose body is one paragraph of text.
func docxOf(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("[Content_Types].xml")
	require.NoError(t, err)
	_, _ = w.Write([]byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`))
	w, err = zw.Create("word/document.xml")
	require.NoError(t, err)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>` + text + `</w:t></w:r></w:p></w:body></w:document>`))
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// jsonCall sends a JSON request to the server and returns the status and
// body.
func jsonCall(t *testing.T, srv *assistantstest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+srv.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// requireError checks a 4xx error reply in the API's shape and returns
// its message and param.
func requireError(t *testing.T, status int, body []byte, want int) (msg, param string) {
	t.Helper()
	require.Equal(t, want, status, "body: %s", body)
	var e gen.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotEmpty(t, e.Error.Message)
	if e.Error.Param != nil {
		param = *e.Error.Param
	}
	return e.Error.Message, param
}

// Bad files in one batch beside good ones: each bad file ends failed with
// a last_error saying why, the good ones complete and can be searched,
// and the batch's and the store's file counts are right.
func TestBadFilesInBatch(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + i/3)
	}
	goodPDF := pdfOf("Emperor penguins huddle in the polar winter.")
	// A page tree with a cycle: the root's kid is a Pages node whose kid
	// is the root.
	cyclic := pdfObjects("<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>")
	files := []struct {
		name    string
		data    []byte
		status  gen.VectorStoreFileObjectStatus
		code    gen.VectorStoreFileObjectLastErrorCode
		message string
	}{
		{"good.txt", []byte("Krill are small crustaceans that whales eat."), "completed", "", ""},
		{"good.pdf", goodPDF, "completed", "", ""},
		{"good.docx", docxOf(t, "Albatrosses glide over the southern ocean."), "completed", "", ""},
		{"empty.txt", nil, "failed", "invalid_file", "empty.txt is empty."},
		{"blank.md", []byte(" \n\t\n "), "failed", "invalid_file", "blank.md is empty."},
		{"junk.txt", junk, "failed", "invalid_file", "junk.txt looks like binary data, not text."},
		{"junk.bin", junk, "failed", "unsupported_file", "junk.bin: binary files are not supported for retrieval."},
		{"truncated.pdf", goodPDF[:len(goodPDF)/2], "failed", "invalid_file", "truncated.pdf is not a valid PDF"},
		{"cyclic.pdf", cyclic, "failed", "invalid_file", "cyclic.pdf is not a valid PDF: its page tree is broken."},
		{"garbage.pdf", append([]byte("%PDF-1.7\n"), junk...), "failed", "invalid_file", "garbage.pdf is not a valid PDF"},
		{"notzip.docx", []byte("plain text pretending to be a docx"), "failed", "invalid_file", "notzip.docx is not a valid docx file: it is not a zip archive."},
	}
	var entries []string
	ids := map[string]string{}
	for _, f := range files {
		up := upload(t, ctx, c, f.name, string(f.data))
		ids[f.name] = up.Id
		entries = append(entries, fmt.Sprintf(`{"file_id":%q}`, up.Id))
	}
	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
	require.NoError(t, err)
	store := vs.JSON200.Id
	status, body := jsonCall(t, srv, http.MethodPost, "/vector_stores/"+store+"/file_batches", `{"files":[`+strings.Join(entries, ",")+`]}`)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	var batch gen.VectorStoreFileBatchObject
	require.NoError(t, json.Unmarshal(body, &batch))
	got := waitStore(t, ctx, c, store)
	want := gen.VectorStoreFileCounts{Completed: 3, Failed: len(files) - 3, Total: len(files)}
	assert.Equal(t, want, got.FileCounts)
	br, err := c.GetVectorStoreFileBatchWithResponse(ctx, store, batch.Id)
	require.NoError(t, err)
	require.NotNil(t, br.JSON200, "body: %s", br.Body)
	assert.Equal(t, gen.VectorStoreFileBatchFileCounts(want), br.JSON200.FileCounts)
	assert.Equal(t, gen.VectorStoreFileBatchObjectStatus("completed"), br.JSON200.Status)

	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			g, err := c.GetVectorStoreFileWithResponse(ctx, store, ids[f.name])
			require.NoError(t, err)
			require.NotNil(t, g.JSON200, "body: %s", g.Body)
			assert.Equal(t, f.status, g.JSON200.Status)
			if f.code == "" {
				assert.Nil(t, g.JSON200.LastError)
				assert.Positive(t, g.JSON200.UsageBytes)
				return
			}
			require.NotNil(t, g.JSON200.LastError)
			assert.Equal(t, f.code, g.JSON200.LastError.Code)
			assert.Contains(t, g.JSON200.LastError.Message, f.message)
			assert.Zero(t, g.JSON200.UsageBytes)
		})
	}
	// Nothing lost: each good file is found by its own words.
	for q, name := range map[string]string{"krill crustaceans": "good.txt", "penguins huddle": "good.pdf", "albatrosses glide": "good.docx"} {
		r := searchStore(t, ctx, c, store, fmt.Sprintf(`{"query":%q,"max_num_results":1}`, q))
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		require.Len(t, r.JSON200.Data, 1, q)
		assert.Equal(t, name, r.JSON200.Data[0].Filename, q)
	}
}

// An upload over the server's file limit is refused with a 4xx naming
// the limit, and nothing is stored.
func TestOversizedUpload(t *testing.T) {
	srv, ctx := newTestServer(t, server.WithMaxFileBytes(1024))
	c := srv.Client
	small := upload(t, ctx, c, "small.txt", "Penguins eat krill.")
	ct, body := multipartBody(t, "big.txt", bytes.Repeat([]byte("penguin "), 1024), "assistants")
	r, err := c.CreateFileWithBodyWithResponse(ctx, ct, body)
	require.NoError(t, err)
	msg, _ := requireError(t, r.StatusCode(), r.Body, http.StatusBadRequest)
	assert.Contains(t, msg, "larger than the limit of 1024 bytes")
	l, err := c.ListFilesWithResponse(ctx, nil)
	require.NoError(t, err)
	require.NotNil(t, l.JSON200)
	require.Len(t, l.JSON200.Data, 1, "only the small file is stored")
	assert.Equal(t, small.Id, l.JSON200.Data[0].Id)
}

// Bad searches and bad attachments: a 4xx naming the parameter, never a
// 500; a rejected request creates nothing and the store's files and
// counts stay as they were.
func TestBadSearchAndAttachRequests(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	a := upload(t, ctx, c, "a.txt", "Penguins eat krill.")
	b := upload(t, ctx, c, "b.txt", "Whales eat krill too.")
	status, body := jsonCall(t, srv, http.MethodPost, "/vector_stores", `{"file_ids":["`+a.Id+`"]}`)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	var vs gen.VectorStoreObject
	require.NoError(t, json.Unmarshal(body, &vs))
	before := waitStore(t, ctx, c, vs.Id).FileCounts
	require.Equal(t, 1, before.Completed)

	nested := func(depth int) string {
		f := `{"type":"eq","key":"lang","value":"en"}`
		for range depth {
			f = `{"type":"and","filters":[` + f + `]}`
		}
		return f
	}
	static := func(maxTokens, overlap int) string {
		return fmt.Sprintf(`{"type":"static","static":{"max_chunk_size_tokens":%d,"chunk_overlap_tokens":%d}}`, maxTokens, overlap)
	}
	search := "/vector_stores/" + vs.Id + "/search"
	files := "/vector_stores/" + vs.Id + "/files"
	batches := "/vector_stores/" + vs.Id + "/file_batches"
	tests := []struct {
		name, path, body string
		status           int
		param            string // "" for any
		message          string // in the error's message
	}{
		{"filter deeper than allowed", search, `{"query":"krill","filters":` + nested(9) + `}`, 400, "", "deep"},
		{"filter at the depth allowed", search, `{"query":"krill","filters":` + nested(8) + `}`, 200, "", ""},
		{"filter of unknown type", search, `{"query":"krill","filters":{"type":"like","key":"lang","value":"en"}}`, 400, "", ""},
		{"filter with an unknown field", search, `{"query":"krill","filters":{"type":"eq","key":"lang","value":"en","extra":1}}`, 400, "", ""},
		{"filter value of the wrong type", search, `{"query":"krill","filters":{"type":"eq","key":"lang","value":{"a":1}}}`, 400, "", ""},
		{"in with a scalar", search, `{"query":"krill","filters":{"type":"in","key":"lang","value":"en"}}`, 400, "", ""},
		{"compound without filters", search, `{"query":"krill","filters":{"type":"and"}}`, 400, "", ""},
		{"filter without key", search, `{"query":"krill","filters":{"type":"eq","value":"en"}}`, 400, "", ""},
		{"filter on an unknown attribute matches nothing", search, `{"query":"krill","filters":{"type":"eq","key":"nosuch","value":"x"}}`, 200, "", ""},
		{"empty query", search, `{"query":""}`, 400, "query", ""},
		{"too many queries", search, `{"query":["a","b","c","d","e","f","g","h","i","j","k"]}`, 400, "query", ""},
		{"max_num_results out of range", search, `{"query":"krill","max_num_results":51}`, 400, "max_num_results", ""},
		{"score_threshold out of range", search, `{"query":"krill","ranking_options":{"score_threshold":1.5}}`, 400, "ranking_options.score_threshold", ""},
		{"unknown ranker", search, `{"query":"krill","ranking_options":{"ranker":"best"}}`, 400, "ranking_options.ranker", ""},
		{"attribute of the wrong type", files, `{"file_id":"` + b.Id + `","attributes":{"tags":["x"]}}`, 400, "", ""},
		{"attribute object", files, `{"file_id":"` + b.Id + `","attributes":{"meta":{"a":1}}}`, 400, "", ""},
		{"too many attributes", files, `{"file_id":"` + b.Id + `","attributes":{` + manyAttrs(17) + `}}`, 400, "", ""},
		{"chunk size under 100", files, `{"file_id":"` + b.Id + `","chunking_strategy":` + static(99, 0) + `}`, 400, "chunking_strategy.static.max_chunk_size_tokens", "at least 100"},
		{"chunk size over 4096", files, `{"file_id":"` + b.Id + `","chunking_strategy":` + static(4097, 0) + `}`, 400, "chunking_strategy.static.max_chunk_size_tokens", "at most 4096"},
		{"overlap over half", files, `{"file_id":"` + b.Id + `","chunking_strategy":` + static(200, 101) + `}`, 400, "chunking_strategy.static.chunk_overlap_tokens", ""},
		{"negative overlap", files, `{"file_id":"` + b.Id + `","chunking_strategy":` + static(200, -1) + `}`, 400, "", ""},
		{"static strategy without its sizes", files, `{"file_id":"` + b.Id + `","chunking_strategy":{"type":"static"}}`, 400, "chunking_strategy.static", "Missing required parameter"},
		{"unknown strategy type", files, `{"file_id":"` + b.Id + `","chunking_strategy":{"type":"semantic"}}`, 400, "", ""},
		{"batch with one bad strategy", batches, `{"files":[{"file_id":"` + b.Id + `"},{"file_id":"` + a.Id + `","chunking_strategy":` + static(5000, 0) + `}]}`, 400, "", ""},
		{"batch with a bad top-level strategy", batches, `{"file_ids":["` + b.Id + `"],"chunking_strategy":` + static(100, 60) + `}`, 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := jsonCall(t, srv, http.MethodPost, tt.path, tt.body)
			if tt.status == http.StatusOK {
				require.Equal(t, http.StatusOK, status, "body: %s", body)
				return
			}
			msg, param := requireError(t, status, body, tt.status)
			if tt.param != "" {
				assert.Equal(t, tt.param, param, "body: %s", body)
			}
			assert.Contains(t, msg, tt.message)
		})
	}
	after := waitStore(t, ctx, c, vs.Id)
	assert.Equal(t, before, after.FileCounts, "no rejected request attached a file")

	// An unknown file id attaches as a failed file that says why.
	status, body = jsonCall(t, srv, http.MethodPost, files, `{"file_id":"file-nosuch"}`)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	var f gen.VectorStoreFileObject
	require.NoError(t, json.Unmarshal(body, &f))
	assert.Equal(t, gen.VectorStoreFileObjectStatusFailed, f.Status)
	require.NotNil(t, f.LastError)
	assert.Contains(t, f.LastError.Message, "No file found with id 'file-nosuch'.")
	after = waitStore(t, ctx, c, vs.Id)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Failed: 1, Total: 2}, after.FileCounts)
	r := searchStore(t, ctx, c, vs.Id, `{"query":"penguins krill"}`)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	require.Len(t, r.JSON200.Data, 1)
	assert.Equal(t, a.Id, r.JSON200.Data[0].FileId)
}

func manyAttrs(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}
