package assistants_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

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
