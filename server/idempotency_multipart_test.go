package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// keyedUpload builds a createFile request with content as the file.
func keyedUpload(t testing.TB, content []byte, key string) *http.Request {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.SetBoundary("fixed-boundary-so-a-retry-is-the-same-bytes"))
	require.NoError(t, mw.WriteField("purpose", "assistants"))
	fw, err := mw.CreateFormFile("file", "notes.txt")
	require.NoError(t, err)
	_, err = fw.Write(content)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	r := httptest.NewRequest(http.MethodPost, "/v1/files", &b)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	return r
}

// TestIdempotentUploads: a keyed upload repeated with the same file is
// replayed (one file); with another file under the same key it is a 409.
func TestIdempotentUploads(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	t.Cleanup(func() { _ = srv.Close() })
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		return rec
	}
	content := bytes.Repeat([]byte("hello "), 1000)
	first := serve(keyedUpload(t, content, "up"))
	require.Equal(t, http.StatusOK, first.Code, first.Body.String())
	again := serve(keyedUpload(t, content, "up"))
	require.Equal(t, http.StatusOK, again.Code, again.Body.String())
	assert.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))
	assert.JSONEq(t, first.Body.String(), again.Body.String())

	other := serve(keyedUpload(t, append([]byte("x"), content...), "up"))
	assert.Equal(t, http.StatusConflict, other.Code, other.Body.String())
	assert.Contains(t, other.Body.String(), "idempotency_key_reused")

	list := serve(httptest.NewRequest(http.MethodGet, "/v1/files", nil))
	var page gen.ListFilesResponse
	require.NoError(t, json.Unmarshal(list.Body.Bytes(), &page))
	assert.Len(t, page.Data, 1)
}

// TestKeyedUploadIsNotBuffered: a keyed upload allocates about what an
// unkeyed one does. (Reading the whole body to fingerprint it first costs
// one to two more copies of the file.)
func TestKeyedUploadIsNotBuffered(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	t.Cleanup(func() { _ = srv.Close() })
	const size = 16 << 20
	content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	allocs := func(key string) uint64 {
		r := keyedUpload(t, content, key)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		runtime.ReadMemStats(&after)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		_, _ = io.Copy(io.Discard, rec.Body)
		return after.TotalAlloc - before.TotalAlloc
	}
	plain := allocs("")
	keyed := allocs("big")
	t.Logf("allocated: unkeyed %d MiB, keyed %d MiB", plain>>20, keyed>>20)
	assert.Less(t, keyed, plain+size/2, "a keyed upload must not hold the body a second time")
}
