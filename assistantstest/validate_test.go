package assistantstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// collect is a report function that keeps the mismatches.
type collect struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collect) report(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msg)
}

// serve runs a canned response through the validator.
func serve(t *testing.T, method, path string, h http.HandlerFunc) []string {
	t.Helper()
	var c collect
	v, err := newValidator(c.report)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	v.wrap(h).ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return c.msgs
}

func jsonReply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestValidatorResponses(t *testing.T) {
	const asst = `{"id":"asst_1","object":"assistant","created_at":1,"model":"m","name":null,"description":null,"instructions":null,"tools":[],"metadata":{}}`
	const errBody = `{"error":{"message":"No assistant found","type":"invalid_request_error","param":"assistant_id","code":"not_found"}}`
	cases := []struct {
		name         string
		method, path string
		h            http.HandlerFunc
		wantMismatch string // "" when the response is fine
	}{
		{"valid object", "GET", "/v1/assistants/asst_1", jsonReply(200, asst), ""},
		{"valid error", "GET", "/v1/assistants/asst_1", jsonReply(404, errBody), ""},
		{"missing required field", "GET", "/v1/assistants/asst_1", jsonReply(200, `{"id":"asst_1","object":"assistant"}`), "getAssistant"},
		{"wrong enum", "GET", "/v1/assistants/asst_1", jsonReply(200, strings.Replace(asst, `"object":"assistant"`, `"object":"robot"`, 1)), "getAssistant"},
		{"error not in the API's shape", "GET", "/v1/assistants/asst_1", jsonReply(500, `{"oops":true}`), "getAssistant"},
		{"text error on unknown route", "GET", "/v1/nothing", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "no route"},
		{"JSON error on unknown route", "GET", "/v1/nothing", jsonReply(404, errBody), ""},
		{"success on unknown route", "GET", "/v2/x", jsonReply(200, `{}`), "no route"},
		{"valid stream", "POST", "/v1/threads/thread_1/runs", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: error\ndata: {\"message\":\"m\",\"type\":\"server_error\",\"param\":null,\"code\":null}\n\nevent: done\ndata: [DONE]\n\n")
		}, ""},
		{"stream event with a bad payload", "POST", "/v1/threads/thread_1/runs", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: thread.run.created\ndata: {\"id\":1}\n\nevent: done\ndata: [DONE]\n\n")
		}, "thread.run.created"},
		{"stream event that is not JSON", "POST", "/v1/threads/thread_1/runs", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: thread.run.created\ndata: {nope\n\n")
		}, "not JSON"},
		{"stream on an operation without streams", "GET", "/v1/assistants", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: done\ndata: [DONE]\n\n")
		}, "no event stream"},
		{"download", "GET", "/v1/files/file-1/content", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write([]byte{0, 1, 2})
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := serve(t, tc.method, tc.path, tc.h)
			if tc.wantMismatch == "" {
				assert.Empty(t, msgs)
				return
			}
			require.Len(t, msgs, 1)
			assert.Contains(t, msgs[0], tc.wantMismatch)
		})
	}
}

func TestStartCloseReportsNothingForAGoodServer(t *testing.T) {
	s, err := Start()
	require.NoError(t, err)
	r, err := s.Client.ListAssistantsWithResponse(t.Context(), nil)
	require.NoError(t, err)
	require.NotNil(t, r.JSON200)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is fine")
}

func TestWithoutResponseValidationIsRecognized(t *testing.T) {
	assert.True(t, isNoValidation(WithoutResponseValidation()))
	assert.False(t, isNoValidation(nil))
	assert.False(t, NewServer(t, WithoutResponseValidation()).validating)
	assert.True(t, NewServer(t).validating)
	assert.False(t, NewInProcessServer(t, WithoutResponseValidation()).validating)
}
