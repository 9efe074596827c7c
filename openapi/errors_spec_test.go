package openapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// TestSpecNonJSONSuccessDeclaresErrorRanges enforces a rule for the
// generated client: an operation whose success answer can be something
// other than JSON (a file's bytes, an event stream) declares its errors as
// 4XX and 5XX, never as default. With default, the generated parser takes
// any JSON reply that is not the declared 200 JSON (a downloaded .json
// file, for one) for an error, or fails to decode it.
func TestSpecNonJSONSuccessDeclaresErrorRanges(t *testing.T) {
	ours := loadYAML(t, Spec)
	var checked []string
	for _, path := range ours.get("paths").keys() {
		for _, method := range ours.get("paths", path).keys() {
			if !httpMethods[method] {
				continue
			}
			op := ours.get("paths", path, method)
			id := op.str("operationId")
			responses := op.get("responses")
			nonJSON := false
			for _, code := range responses.keys() {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				for _, ct := range responses.get(code, "content").keys() {
					if ct != "application/json" {
						nonJSON = true
					}
				}
			}
			if !nonJSON {
				continue
			}
			checked = append(checked, id)
			assert.Nil(t, responses.get("default"), "%s answers a non-JSON 2xx: its errors must be 4XX/5XX, not default", id)
			for _, code := range []string{"4XX", "5XX"} {
				ref := responses.str(code, "content", "application/json", "schema", "$ref")
				assert.Equal(t, "#/components/schemas/ErrorResponse", ref, "%s: %s must be a JSON ErrorResponse", id, code)
			}
		}
	}
	slices.Sort(checked)
	require.Equal(t, []string{"createRun", "createThreadAndRun", "downloadFile", "submitToolOuputsToRun"}, checked,
		"the operations with a non-JSON 2xx (a new one must follow the rule too)")
}

// TestDownloadOfJSONFileIsNotAnError: a server that serves a file's bytes
// as application/json (any JSON, even one that is not an object) gives a
// reply with the bytes and no error; a 404 is still an ErrorResponse.
func TestDownloadOfJSONFileIsNotAnError(t *testing.T) {
	const fileJSON = `[{"error":{"message":"not an error, a file"}}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "missing") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"No such file.","type":"invalid_request_error","code":"not_found"}}`)
			return
		}
		_, _ = io.WriteString(w, fileJSON)
	}))
	defer srv.Close()
	c, err := gen.NewClientWithResponses(srv.URL)
	require.NoError(t, err)

	r, err := c.DownloadFileWithResponse(t.Context(), "file-1")
	require.NoError(t, err, "a 200 JSON body is the file, not an error to decode")
	assert.Equal(t, http.StatusOK, r.StatusCode())
	assert.Equal(t, fileJSON, string(r.Body))
	assert.Nil(t, r.JSON4XX)
	assert.Nil(t, r.JSON5XX)

	r, err = c.DownloadFileWithResponse(t.Context(), "file-missing")
	require.NoError(t, err)
	require.NotNil(t, r.JSON4XX, fmt.Sprintf("body: %s", r.Body))
	assert.Equal(t, "No such file.", r.JSON4XX.Error.Message)
}
