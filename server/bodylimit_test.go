package server_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// TestBodyLimitPerRoute: uploads (createFile, multipart) may be as large as
// MaxFileBytes; every other route is bounded by MaxBodyBytes, a multipart
// body sent to it included. The 413 names the limit that applied.
func TestBodyLimitPerRoute(t *testing.T) {
	const jsonLimit, fileLimit = 1 << 10, 64 << 10
	srv := server.New(server.WithStepDelay(0), server.WithMaxBodyBytes(jsonLimit), server.WithMaxFileBytes(fileLimit))
	defer srv.Close()

	upload := func(path string, size int) *http.Request {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField("purpose", "assistants"))
		fw, err := mw.CreateFormFile("file", "notes.txt")
		require.NoError(t, err)
		_, _ = fw.Write(bytes.Repeat([]byte("a"), size))
		require.NoError(t, mw.Close())
		req := httptest.NewRequest("POST", path, &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return req
	}
	jsonBody := func(path string, size int) *http.Request {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"k": string(bytes.Repeat([]byte("a"), size))}})
		req := httptest.NewRequest("POST", path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		code int
		msg  string
	}{
		{name: "upload over the JSON limit, within the file limit", req: upload("/v1/files", 8<<10), code: 200},
		{name: "upload over the file limit and its slack", req: upload("/v1/files", 2<<20), code: 413,
			msg: "The request body is too large: the limit is 1114112 bytes."},
		{name: "multipart to a JSON route over the JSON limit", req: upload("/v1/threads", 8<<10), code: 413,
			msg: "The request body is too large: the limit is 1024 bytes."},
		{name: "JSON over the JSON limit", req: jsonBody("/v1/threads", 4<<10), code: 413,
			msg: "The request body is too large: the limit is 1024 bytes."},
		{name: "JSON within the limit", req: jsonBody("/v1/threads", 100), code: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, tc.req)
			require.Equal(t, tc.code, rec.Code, "%s", rec.Body.String())
			if tc.msg != "" {
				var e struct {
					Error struct{ Message, Code string }
				}
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
				assert.Equal(t, tc.msg, e.Error.Message)
				assert.Equal(t, "request_too_large", e.Error.Code)
			}
		})
	}
}
