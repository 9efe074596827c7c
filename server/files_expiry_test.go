package server_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// TestFileExpiresAt: a file uploaded with expires_after is retrievable,
// listed and downloadable until its expires_at, and gone (404, not listed,
// detached from its vector store) after it.
func TestFileExpiresAt(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := server.New(server.WithStepDelay(0), func(o *server.Options) { o.Now = clock })
	t.Cleanup(func() { _ = srv.Close() })
	do := func(method, path string, body *bytes.Buffer, ct string) *httptest.ResponseRecorder {
		var r *http.Request
		if body != nil {
			r = httptest.NewRequest(method, path, body)
			r.Header.Set("Content-Type", ct)
		} else {
			r = httptest.NewRequest(method, path, nil)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		return rec
	}

	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.WriteField("purpose", "assistants"))
	require.NoError(t, mw.WriteField("expires_after[anchor]", "created_at"))
	require.NoError(t, mw.WriteField("expires_after[seconds]", "3600"))
	fw, err := mw.CreateFormFile("file", "notes.txt")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("the notes"))
	require.NoError(t, mw.Close())
	up := do(http.MethodPost, "/v1/files", &b, mw.FormDataContentType())
	require.Equal(t, http.StatusOK, up.Code, up.Body.String())
	var f gen.OpenAIFile
	require.NoError(t, json.Unmarshal(up.Body.Bytes(), &f))
	require.NotNil(t, f.ExpiresAt)
	assert.Equal(t, int(now.Unix())+3600, *f.ExpiresAt)

	vs := do(http.MethodPost, "/v1/vector_stores", bytes.NewBufferString(`{"file_ids":["`+f.Id+`"]}`), "application/json")
	require.Equal(t, http.StatusOK, vs.Code, vs.Body.String())
	var store gen.VectorStoreObject
	require.NoError(t, json.Unmarshal(vs.Body.Bytes(), &store))

	listed := func() int {
		rec := do(http.MethodGet, "/v1/files", nil, "")
		require.Equal(t, http.StatusOK, rec.Code)
		var page gen.ListFilesResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
		return len(page.Data)
	}
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/v1/files/"+f.Id, nil, "").Code)
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/v1/files/"+f.Id+"/content", nil, "").Code)
	assert.Equal(t, 1, listed())

	mu.Lock()
	now = now.Add(3600 * time.Second)
	mu.Unlock()
	assert.Equal(t, http.StatusNotFound, do(http.MethodGet, "/v1/files/"+f.Id, nil, "").Code, "expired at expires_at")
	assert.Equal(t, http.StatusNotFound, do(http.MethodGet, "/v1/files/"+f.Id+"/content", nil, "").Code)
	assert.Equal(t, 0, listed())
	assert.Equal(t, http.StatusNotFound, do(http.MethodDelete, "/v1/files/"+f.Id, nil, "").Code)
	vsf := do(http.MethodGet, "/v1/vector_stores/"+store.Id+"/files", nil, "")
	require.Equal(t, http.StatusOK, vsf.Code)
	var files gen.ListVectorStoreFilesResponse
	require.NoError(t, json.Unmarshal(vsf.Body.Bytes(), &files))
	assert.Empty(t, files.Data, "an expired file leaves its vector stores")
}
