package assistants_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// The typed calls' result types are checked by the compiler: these lines do
// not compile if GetRun stops returning *gen.RunObject or DownloadFile a
// reader.
var (
	_ func(context.Context, string, string, ...gen.RequestEditorFn) (*gen.RunObject, error)                       = (*assistants.Client)(nil).GetRun
	_ func(context.Context, string, gen.CreateMessageRequest, ...gen.RequestEditorFn) (*gen.MessageObject, error) = (*assistants.Client)(nil).CreateMessage
	_ func(context.Context, string, ...gen.RequestEditorFn) (io.ReadCloser, error)                                = (*assistants.Client)(nil).DownloadFile
)

// TestTypedCallForEveryOperation checks that every operation of the generated
// client has its typed call on *assistants.Client, with the generated
// parameters and, as result, the 2xx JSON type of the operation's reply.
func TestTypedCallForEveryOperation(t *testing.T) {
	ct := reflect.TypeFor[*assistants.Client]()
	gt := reflect.TypeFor[*gen.ClientWithResponses]()
	ops := 0
	for m := range gt.Methods() {
		name, typedBody := strings.CutSuffix(m.Name, "WithResponse")
		if !typedBody {
			continue
		}
		if op, ok := strings.CutSuffix(name, "WithBody"); ok {
			if _, typed := gt.MethodByName(op + "WithResponse"); typed {
				continue
			}
			name = op
		}
		ops++
		call, ok := ct.MethodByName(name)
		if !assert.True(t, ok, "no typed call %s for %s", name, m.Name) {
			continue
		}
		// Same parameters after the receiver.
		require.Equal(t, m.Type.NumIn(), call.Type.NumIn(), name)
		for i := 1; i < m.Type.NumIn(); i++ {
			assert.Equal(t, m.Type.In(i), call.Type.In(i), "%s parameter %d", name, i)
		}
		// Result: the reply's 2xx JSON field type, or a reader when there is none.
		reply := m.Type.Out(0).Elem()
		want := reflect.TypeFor[io.ReadCloser]()
		for f := range reply.Fields() {
			if code, ok := strings.CutPrefix(f.Name, "JSON"); ok && len(code) == 3 && code[0] == '2' {
				want = f.Type
			}
		}
		assert.Equal(t, want, call.Type.Out(0), "%s result", name)
		assert.Equal(t, reflect.TypeFor[error](), call.Type.Out(1), "%s error", name)
	}
	assert.Equal(t, 44, ops, "operations in the generated client")
}

func TestTypedCalls(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/v1/threads/thread_1/runs/run_1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"run_1","object":"thread.run","status":"completed","thread_id":"thread_1"}`)
		case "/v1/threads/thread_1/runs/run_html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<html>proxy</html>`)
		case "/v1/files/file_1/content":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = io.WriteString(w, "file bytes")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "req_1")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"No such object.","type":"invalid_request_error","param":null,"code":null}}`)
		}
	}))
	t.Cleanup(srv.Close)
	c := typedClient(t, srv.URL)
	ctx := context.Background()

	type outcome struct {
		id      string
		apiCode int   // expected *APIError status; 0: none
		is      error // expected errors.Is target
		noReq   bool  // the call must not send a request
	}
	stream := true
	cases := []struct {
		name string
		call func() (string, error)
		want outcome
	}{
		{"2xx decoded", func() (string, error) {
			r, err := c.GetRun(ctx, "thread_1", "run_1")
			if err != nil {
				return "", err
			}
			return r.Id + " " + string(r.Status), nil
		}, outcome{id: "run_1 completed"}},
		{"404 is an APIError", func() (string, error) {
			_, err := c.GetRun(ctx, "thread_1", "run_2")
			return "", err
		}, outcome{apiCode: http.StatusNotFound}},
		{"2xx that is not JSON", func() (string, error) {
			_, err := c.GetRun(ctx, "thread_1", "run_html")
			return "", err
		}, outcome{is: assistants.ErrUnexpectedReply}},
		{"stream body refused before sending", func() (string, error) {
			_, err := c.CreateRun(ctx, "thread_1", nil, gen.CreateRunRequest{AssistantId: "asst_1", Stream: &stream})
			return "", err
		}, outcome{is: assistants.ErrStreamBody, noReq: true}},
		{"download returns the body", func() (string, error) {
			rc, err := c.DownloadFile(ctx, "file_1")
			if err != nil {
				return "", err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			return string(b), err
		}, outcome{id: "file bytes"}},
		{"download 404 is an APIError", func() (string, error) {
			_, err := c.DownloadFile(ctx, "file_2")
			return "", err
		}, outcome{apiCode: http.StatusNotFound}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := requests.Load()
			got, err := tc.call()
			if tc.want.noReq {
				assert.Equal(t, before, requests.Load(), "requests sent")
			}
			switch {
			case tc.want.apiCode != 0:
				var apiErr *assistants.APIError
				require.True(t, errors.As(err, &apiErr), "error %v is not an *APIError", err)
				assert.Equal(t, tc.want.apiCode, apiErr.StatusCode)
				assert.Equal(t, "req_1", apiErr.RequestID)
			case tc.want.is != nil:
				assert.ErrorIs(t, err, tc.want.is)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want.id, got)
			}
		})
	}
}

// A call that gets no reply wraps the cause and is not an *APIError.
func TestTypedCallTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := typedClient(t, url)
	_, err := c.GetThread(context.Background(), "thread_1")
	require.Error(t, err)
	var apiErr *assistants.APIError
	assert.False(t, errors.As(err, &apiErr))
	assert.Contains(t, err.Error(), "assistants: request failed:")
	_, err = c.DownloadFile(context.Background(), "file_1")
	assert.Contains(t, err.Error(), "assistants: request failed:")
}

func typedClient(t *testing.T, url string) *assistants.Client {
	t.Helper()
	c, err := assistants.New(assistants.WithBaseURL(url+"/v1"), assistants.WithAPIKey("sk-test"), assistants.WithMaxRetries(0))
	require.NoError(t, err)
	return c
}
