package assistants_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/oapi-codegen/runtime"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// The generated request builders (gen/templates/client.tmpl) escape path
// parameters like the simple style does and build the URL with one parse.
func TestRequestBuilderURL(t *testing.T) {
	limit := 5
	after := "msg 1&x"
	cases := []struct {
		name, server string
		build        func(server string) (string, error)
		want         string
	}{
		{"path params escaped", "http://h/v1/", func(s string) (string, error) {
			r, err := gen.NewGetRunRequest(s, "th 1/x", "run?%")
			if err != nil {
				return "", err
			}
			return r.URL.String(), nil
		}, "http://h/v1/threads/th%201%2Fx/runs/run%3F%25"},
		{"server without trailing slash", "http://h/v1", func(s string) (string, error) {
			r, err := gen.NewGetRunRequest(s, "thread_1", "run_1")
			if err != nil {
				return "", err
			}
			return r.URL.String(), nil
		}, "http://h/v1/threads/thread_1/runs/run_1"},
		{"query", "http://h/v1/", func(s string) (string, error) {
			r, err := gen.NewListMessagesRequest(s, "thread_1", &gen.ListMessagesParams{Limit: &limit, After: &after})
			if err != nil {
				return "", err
			}
			return r.URL.String(), nil
		}, "http://h/v1/threads/thread_1/messages?limit=5&after=msg+1%26x"},
		{"no path params", "http://h/v1/", func(s string) (string, error) {
			r, err := gen.NewCreateThreadRequest(s, gen.CreateThreadRequest{})
			if err != nil {
				return "", err
			}
			return r.URL.String(), nil
		}, "http://h/v1/threads"},
		{"bad server", "http://[::1", func(s string) (string, error) {
			_, err := gen.NewGetRunRequest(s, "t", "r")
			return "", err
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.build(tc.server)
			if tc.want == "" {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// A GET's request builder allocates what one URL parse and the request need
// (it was 16 allocations when the URL was parsed three times).
func TestRequestBuilderAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := gen.NewGetRunRequest("http://127.0.0.1:8080/v1/", "thread_abc123", "run_abc123"); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("NewGetRunRequest: %.0f allocations", allocs)
	assert.LessOrEqual(t, allocs, 8.0)
}

// Parse<Op>Reply reads the body whole, whatever Content-Length says, and
// allocates it once when the length is given (gen/templates/client-with-responses.tmpl).
func TestReplyBodyRead(t *testing.T) {
	body := `{"id":"run_1","object":"thread.run","status":"completed","instructions":"` + strings.Repeat("Be brief. ", 150) + `"}`
	reply := func(cl int64, b string) *http.Response {
		return &http.Response{StatusCode: 200, ContentLength: cl, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(b))}
	}
	cases := []struct {
		name string
		cl   int64
		body string
	}{
		{"exact length", int64(len(body)), body},
		{"unknown length", -1, body},
		{"longer than announced", 10, body},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := gen.ParseGetRunReply(reply(tc.cl, tc.body))
			require.NoError(t, err)
			assert.Equal(t, tc.body, string(r.Body))
			require.NotNil(t, r.JSON200)
			assert.Equal(t, "run_1", r.JSON200.Id)
		})
	}
	t.Run("cut short", func(t *testing.T) {
		resp := reply(int64(len(body))+10, body)
		resp.Body = io.NopCloser(io.MultiReader(strings.NewReader(body), iotest.ErrReader(io.ErrUnexpectedEOF)))
		_, err := gen.ParseGetRunReply(resp)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})

	sized := testing.AllocsPerRun(50, func() { _, _ = gen.ParseGetRunReply(reply(int64(len(body)), body)) })
	unsized := testing.AllocsPerRun(50, func() { _, _ = gen.ParseGetRunReply(reply(-1, body)) })
	t.Logf("ParseGetRunReply: %.0f allocations with Content-Length, %.0f without", sized, unsized)
	assert.Less(t, sized, unsized)
}

type ctxKey struct{}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The generated client builds each request with the call's context (no
// WithContext copy of the request): the transport sees the caller's ctx, and
// a raw GetRun costs what building the request and the stub reply cost.
func TestClientRequestContext(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "mine")
	var seen any
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Context().Value(ctxKey{})
		return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}, nil
	})}
	c, err := gen.NewClient("http://h/v1", gen.WithHTTPClient(hc))
	require.NoError(t, err)
	resp, err := c.GetRun(ctx, "thread_1", "run_1")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, "mine", seen)

	allocs := testing.AllocsPerRun(100, func() {
		resp, err := c.GetRun(ctx, "thread_1", "run_1")
		if err == nil {
			_ = resp.Body.Close()
		}
	})
	t.Logf("raw GetRun through a stub transport: %.0f allocations", allocs)
	assert.LessOrEqual(t, allocs, 13.0) // 14 when each call copied its request with WithContext
}

// styled is what runtime.StyleParamWithOptions makes of one form-style,
// exploded query parameter: the fragments the generated builders used to
// append for it.
func styled(t *testing.T, name string, value any, typ string) []string {
	t.Helper()
	frag, err := runtime.StyleParamWithOptions("form", true, name, value,
		runtime.StyleParamOptions{ParamLocation: runtime.ParamLocationQuery, Type: typ})
	require.NoError(t, err)
	return strings.Split(frag, "&")
}

// The generated builders write string, string enum, int and string-list
// query parameters themselves (gen/templates/client.tmpl): the same query
// string runtime.StyleParamWithOptions gives, under either query encoder.
func TestQueryParamsMatchRuntimeStyling(t *testing.T) {
	limit, neg := 20, -3
	after, before, runID := "msg 1&x=y+z/é", "a%20b?c#d", "run_abc"
	purpose := "assistants"
	order := gen.ListMessagesParamsOrder("desc")
	filter := gen.ListVectorStoreFilesParamsFilter("in progress")
	include := []gen.CreateRunParamsInclude{"step_details.tool_calls[*].file_search.results[*].content", "a b"}
	empty := []gen.CreateRunParamsInclude{}
	one := []gen.GetRunStepParamsInclude{"x&y"}
	const server = "http://h/v1"
	cases := []struct {
		name  string
		build func() (*http.Request, error)
		want  func(t *testing.T) []string
	}{
		{"list messages, every parameter", func() (*http.Request, error) {
			return gen.NewListMessagesRequest(server, "thread_1", &gen.ListMessagesParams{
				Limit: &limit, Order: &order, After: &after, Before: &before, RunId: &runID})
		}, func(t *testing.T) []string {
			return slices.Concat(styled(t, "limit", limit, "integer"), styled(t, "order", order, "string"),
				styled(t, "after", after, "string"), styled(t, "before", before, "string"), styled(t, "run_id", runID, "string"))
		}},
		{"negative limit, one parameter", func() (*http.Request, error) {
			return gen.NewListMessagesRequest(server, "thread_1", &gen.ListMessagesParams{Limit: &neg})
		}, func(t *testing.T) []string { return styled(t, "limit", neg, "integer") }},
		{"include list", func() (*http.Request, error) {
			return gen.NewCreateRunRequest(server, "thread_1", &gen.CreateRunParams{Include: &include}, gen.CreateRunRequest{AssistantId: "a"})
		}, func(t *testing.T) []string { return styled(t, "include[]", include, "array") }},
		{"empty include list", func() (*http.Request, error) {
			return gen.NewCreateRunRequest(server, "thread_1", &gen.CreateRunParams{Include: &empty}, gen.CreateRunRequest{AssistantId: "a"})
		}, func(t *testing.T) []string { return styled(t, "include[]", empty, "array") }},
		{"run step include", func() (*http.Request, error) {
			return gen.NewGetRunStepRequest(server, "t", "r", "s", &gen.GetRunStepParams{Include: &one})
		}, func(t *testing.T) []string { return styled(t, "include[]", one, "array") }},
		{"files purpose", func() (*http.Request, error) {
			return gen.NewListFilesRequest(server, &gen.ListFilesParams{Purpose: &purpose})
		}, func(t *testing.T) []string { return styled(t, "purpose", purpose, "string") }},
		{"vector store files filter", func() (*http.Request, error) {
			return gen.NewListVectorStoreFilesRequest(server, "vs_1", &gen.ListVectorStoreFilesParams{Filter: &filter})
		}, func(t *testing.T) []string { return styled(t, "filter", filter, "string") }},
	}
	saved := runtime.DefaultQueryEncoder
	t.Cleanup(func() { runtime.DefaultQueryEncoder = saved })
	for _, enc := range []struct {
		name string
		enc  runtime.QueryEncoder
	}{{"net/url encoder", runtime.NetURLQueryEncoder{}}, {"RFC 3986 encoder", runtime.RFC3986QueryEncoder{}}} {
		runtime.DefaultQueryEncoder = enc.enc
		for _, tc := range cases {
			t.Run(enc.name+"/"+tc.name, func(t *testing.T) {
				r, err := tc.build()
				require.NoError(t, err)
				assert.Equal(t, strings.Join(tc.want(t), "&"), r.URL.RawQuery)
			})
		}
	}
}
