package assistants

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// originReference is the string origin was built from before it learnt to
// append into a buffer; appendOrigin must produce exactly the same.
func originReference(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func TestAppendOriginMatchesReference(t *testing.T) {
	for _, s := range []string{
		"https://api.openai.com/v1", "HTTPS://API.OpenAI.com:443/x", "http://localhost", "http://LOCALHOST:80/",
		"http://[::1]:8080/", "http://[FE80::1]/", "https://xn--bcher-kva.example/", "https://bücher.example/",
		"HTTP://ÄÖÜ.example:8443", "ftp://Host.example", "https://host.example:/", "https://İ.example", "https://k.example",
		"https://ſ.example",
	} {
		u, err := url.Parse(s)
		require.NoError(t, err, s)
		assert.Equal(t, originReference(u), origin(u), s)
	}
	// Schemes url.Parse would refuse, as a caller-built URL may carry them.
	for _, scheme := range []string{"httpſ", "HTTPſ", "httpS", "Http"} {
		u := &url.URL{Scheme: scheme, Host: "x.example"}
		assert.Equal(t, originReference(u), origin(u), scheme)
	}
}

func TestSameOrigin(t *testing.T) {
	base, _ := url.Parse("https://api.openai.com/v1")
	ht := &headerTransport{origin: origin(base)}
	for s, want := range map[string]bool{
		"https://API.openai.com:443/v1/threads": true,
		"https://api.openai.com/":               true,
		"http://api.openai.com/":                false,
		"https://api.openai.com:8443/":          false,
		"https://api.openai.com.evil.com/":      false,
		"https://" + strings.Repeat("a", 300):   false, // longer than the stack buffer
	} {
		u, err := url.Parse(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, ht.sameOrigin(u), s)
	}
}

// TestCloneRequestIsPrivate checks that the clone the transports write to
// shares nothing writable with the caller's request, and that the header
// values stored in the shared backing array cannot reach one another.
func TestCloneRequestIsPrivate(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://api.openai.com/v1/x?a=1", nil)
	require.NoError(t, err)
	req.Header["A"] = []string{"1", "2"}
	req.Header["B"] = []string{"3"}
	req.Header["Nil"] = nil

	r, free := cloneRequest(req, req.Context(), 3)
	require.Len(t, free, 3)
	free = setHeader(r.Header, "C", free, "4")
	free = setHeader(r.Header, "D", free, "5", "6")
	assert.Empty(t, free)
	free = setHeader(r.Header, "E", free, "7") // no room left: its own slice
	assert.Empty(t, free)

	r.Header["A"] = append(r.Header["A"], "x")
	r.Header["C"] = append(r.Header["C"], "y")
	r.Header["B"][0] = "changed"
	r.URL.RawQuery = "b=2"

	assert.Equal(t, http.Header{"A": {"1", "2"}, "B": {"3"}, "Nil": nil}, req.Header, "caller's header")
	assert.Equal(t, "a=1", req.URL.RawQuery, "caller's URL")
	assert.Equal(t, http.Header{"A": {"1", "2", "x"}, "B": {"changed"}, "Nil": nil, "C": {"4", "y"}, "D": {"5", "6"}, "E": {"7"}}, r.Header)
}

type stubTransport struct{ body string }

func (s stubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(s.body)), Request: req,
	}, nil
}

// TestTransportChainAllocations bounds the allocations the SDK's own
// transports (retry, headers, per-attempt timeout) add to a request, so that
// the hot path stays lean; see docs/benchmarks.md.
func TestTransportChainAllocations(t *testing.T) {
	hc, base, err := NewHTTPClient(WithAPIKey("sk-test"), WithBaseURL("https://api.openai.com/v1"),
		WithHTTPClient(&http.Client{Transport: stubTransport{body: `{}`}}))
	require.NoError(t, err)
	for _, tt := range []struct {
		method string
		max    float64
	}{
		{http.MethodGet, 11},  // clone 4, timeout 6, request copy 1
		{http.MethodPost, 12}, // and the idempotency key
	} {
		req, err := http.NewRequest(tt.method, base+"/threads", nil)
		require.NoError(t, err)
		run := func(rt http.RoundTripper) float64 {
			return testing.AllocsPerRun(200, func() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			})
		}
		sdk := run(hc.Transport) - run(stubTransport{body: `{}`})
		assert.LessOrEqual(t, sdk, tt.max+raceAllocSlack, "%s: %v allocations per request in the SDK's transports", tt.method, sdk)
	}
}

// sizedStub answers every request with 200 and body, with its
// Content-Length, as a loopback server's reply would arrive.
type sizedStub struct{ body []byte }

func (s sizedStub) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(s.body)), ContentLength: int64(len(s.body)), Request: req,
	}, nil
}

// BenchmarkTransportChain measures the SDK's transports (retry, headers,
// per-attempt timeout) on top of an in-process stub, reading each reply
// whole as the generated client does: the cost the SDK adds to every call.
func BenchmarkTransportChain(b *testing.B) {
	for _, size := range []int{512, 16 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		hc, base, err := NewHTTPClient(WithAPIKey("sk-test"), WithBaseURL("https://api.openai.com/v1"),
			WithHTTPClient(&http.Client{Transport: sizedStub{body: body}}))
		if err != nil {
			b.Fatal(err)
		}
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			b.Run(fmt.Sprintf("method=%s/size=%d", method, size), func(b *testing.B) {
				req, err := http.NewRequest(method, base+"/threads", nil)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					resp, err := hc.Transport.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					got, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if err != nil || len(got) != size {
						b.Fatalf("read %d bytes: %v", len(got), err)
					}
				}
			})
		}
	}
}
