package assistants

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeadersOpenAI(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	rec := &sleepRecorder{}
	hc := newClient(t, srv.URL+"/v1", rec,
		WithOrganization("org-1"), WithProject("proj-1"), WithUserAgent("myapp/2.0"),
		WithHeader("X-Extra", "a"), WithHeader("x-extra", "b"))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/assistants", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	h := srv.Attempts()[0].Header
	assert.Equal(t, "Bearer "+testKey, h.Get("Authorization"))
	assert.Equal(t, "assistants=v2", h.Get("OpenAI-Beta"))
	assert.Equal(t, "org-1", h.Get("OpenAI-Organization"))
	assert.Equal(t, "proj-1", h.Get("OpenAI-Project"))
	assert.Equal(t, "assistants-go/0.1.0 myapp/2.0", h.Get("User-Agent"))
	assert.Equal(t, []string{"b"}, h.Values("X-Extra"))
	assert.Empty(t, h.Values("Api-Key"))
	assert.Empty(t, req.Header, "the caller's request is never modified")
}

func TestHeadersOnRequestWin(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	hc := newClient(t, srv.URL, &sleepRecorder{}, WithHeader("X-Extra", "option"))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("OpenAI-Beta", "assistants=v2,other")
	req.Header.Set("X-Extra", "request")
	req.Header.Set("User-Agent", "custom")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	h := srv.Attempts()[0].Header
	assert.Equal(t, "assistants=v2,other", h.Get("OpenAI-Beta"))
	assert.Equal(t, "request", h.Get("X-Extra"))
	assert.Equal(t, "custom", h.Get("User-Agent"))
}

func TestNoKeyNoAuthorization(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	hc, _, err := NewHTTPClient(WithBaseURL(srv.URL))
	require.NoError(t, err)

	do(t, hc, http.MethodGet, srv.URL+"/x", "")

	assert.Empty(t, srv.Attempts()[0].Header.Values("Authorization"))
	assert.Equal(t, "assistants=v2", srv.Attempts()[0].Header.Get("OpenAI-Beta"))
}

func TestCredentialsOnlyForBaseHost(t *testing.T) {
	clearEnv(t)
	base := newScriptServer(t)
	other := newScriptServer(t) // same 127.0.0.1, another port
	hc := newClient(t, base.URL, &sleepRecorder{}, WithOrganization("org-1"), WithHeader("X-Extra", "1"))

	do(t, hc, http.MethodGet, other.URL+"/x", "")
	do(t, hc, http.MethodGet, base.URL+"/x", "")

	oh := other.Attempts()[0].Header
	assert.Empty(t, oh.Values("Authorization"))
	assert.Empty(t, oh.Values("OpenAI-Organization"))
	assert.Empty(t, oh.Values("X-Extra"))
	assert.Equal(t, "assistants-go/0.1.0", oh.Get("User-Agent"))
	assert.Equal(t, "Bearer "+testKey, base.Attempts()[0].Header.Get("Authorization"))
}

func TestOrigin(t *testing.T) {
	tests := []struct{ a, b string }{
		{"https://api.openai.com/v1", "https://API.openai.com:443/x"},
		{"http://localhost/v1", "http://localhost:80/"},
		{"http://[::1]:8080/", "http://[::1]:8080/v1"},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		assert.Equal(t, origin(a), origin(b), "%s vs %s", tt.a, tt.b)
	}
	a, _ := url.Parse("https://api.openai.com")
	for _, other := range []string{"http://api.openai.com", "https://api.openai.com:8443", "https://evil.openai.com", "https://api.openai.com.evil.com"} {
		b, _ := url.Parse(other)
		assert.NotEqual(t, origin(a), origin(b), other)
	}
}

// redirectPair is server A, which redirects everything to server B on
// another port of 127.0.0.1, where Go itself would keep Authorization.
type redirectPair struct {
	a, b  *httptest.Server
	mu    sync.Mutex
	aSeen []http.Header
	bSeen []http.Header
}

func newRedirectPair(t *testing.T) *redirectPair {
	p := &redirectPair{}
	p.b = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.bSeen = append(p.bSeen, r.Header.Clone())
		p.mu.Unlock()
		_, _ = w.Write([]byte(`{"at":"b"}`))
	}))
	t.Cleanup(p.b.Close)
	p.a = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.aSeen = append(p.aSeen, r.Header.Clone())
		p.mu.Unlock()
		http.Redirect(w, r, p.b.URL+"/landing", http.StatusFound)
	}))
	t.Cleanup(p.a.Close)
	require.Equal(t, hostOnly(p.a.URL), hostOnly(p.b.URL), "same domain, so Go would not strip on its own")
	return p
}

func hostOnly(s string) string {
	u, _ := url.Parse(s)
	return u.Hostname()
}

func TestRedirectToAnotherHostDropsCredentials(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		// callerHeaders are set on the request itself, e.g. by a request editor.
		callerHeaders map[string]string
		aWants        map[string]string
	}{
		{name: "openai key injected", opts: []Option{WithAPIKey(testKey)},
			aWants: map[string]string{"Authorization": "Bearer " + testKey}},
		{name: "azure key injected", opts: []Option{WithAPIKey(testKey)},
			aWants: map[string]string{"Api-Key": testKey}},
		{name: "caller-set headers", opts: []Option{WithAPIKey(testKey)},
			callerHeaders: map[string]string{"Authorization": "Bearer caller-token-123456789", "api-key": "caller-key-123456789"},
			aWants:        map[string]string{"Authorization": "Bearer caller-token-123456789", "Api-Key": "caller-key-123456789"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			p := newRedirectPair(t)
			opts := append([]Option{WithBaseURL(p.a.URL)}, tt.opts...)
			if strings.HasPrefix(tt.name, "azure") {
				opts = append([]Option{WithAzure(p.a.URL, "2024-05-01-preview")}, tt.opts...)
			}
			hc, _, err := NewHTTPClient(opts...)
			require.NoError(t, err)

			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.a.URL+"/openai/threads", nil)
			require.NoError(t, err)
			for k, v := range tt.callerHeaders {
				req.Header[k] = []string{v} // as given, even non-canonical
			}
			resp, err := hc.Do(req)
			require.NoError(t, err)
			resp.Body.Close()

			require.Len(t, p.aSeen, 1)
			require.Len(t, p.bSeen, 1)
			for k, v := range tt.aWants {
				assert.Equal(t, v, p.aSeen[0].Get(k), "A gets %s", k)
			}
			assert.Empty(t, p.bSeen[0].Values("Authorization"), "B never sees Authorization")
			assert.Empty(t, p.bSeen[0].Values("Api-Key"), "B never sees api-key")
			for _, vs := range p.bSeen[0] {
				for _, v := range vs {
					assert.NotContains(t, v, testKey)
				}
			}
		})
	}
}

func TestCheckRedirectIsChainedAndCallerClientUntouched(t *testing.T) {
	clearEnv(t)
	p := newRedirectPair(t)
	calls := 0
	stop := errors.New("stop here")
	base := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		calls++
		return stop
	}}
	orig := *base
	hc, _, err := NewHTTPClient(WithBaseURL(p.a.URL), WithAPIKey(testKey), WithHTTPClient(base))
	require.NoError(t, err)

	_, err = hc.Get(p.a.URL + "/x")

	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
	assert.Nil(t, base.Transport, "the caller's client keeps its nil Transport")
	assert.Equal(t, orig.Timeout, base.Timeout)
	assert.NotSame(t, base, hc)
	assert.Empty(t, p.bSeen)
}

func TestDefaultRedirectLimit(t *testing.T) {
	check := stripCredentialsOnRedirect(nil)
	req := httptest.NewRequest(http.MethodGet, "http://a/", nil)
	via := make([]*http.Request, 10)
	for i := range via {
		via[i] = req
	}
	assert.Error(t, check(req, via))
	assert.NoError(t, check(req, via[:9]))
}

func TestCallerTransportIsWrapped(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	var seen []string
	var mu sync.Mutex
	inner := rtFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	caller := &http.Client{Transport: inner}
	hc, _, err := NewHTTPClient(WithBaseURL(srv.URL), WithAPIKey(testKey), WithHTTPClient(caller))
	require.NoError(t, err)

	do(t, hc, http.MethodGet, srv.URL+"/x", "")

	assert.Equal(t, []string{"Bearer " + testKey}, seen)
	assert.NotNil(t, caller.Transport)
	_, isRT := caller.Transport.(rtFunc)
	assert.True(t, isRT, "the caller's Transport field is not replaced")
	assert.Nil(t, caller.CheckRedirect)
}

func TestAzure(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		env       map[string]string
		path      string
		wantQuery url.Values
		wantAuth  string
		wantKey   string
	}{
		{
			name:      "api-key",
			opts:      []Option{WithAPIKey("azure-key-1")},
			path:      "/openai/threads",
			wantQuery: url.Values{"api-version": {"2024-05-01-preview"}},
			wantKey:   "azure-key-1",
		},
		{
			name:      "query kept",
			opts:      []Option{WithAPIKey("azure-key-1")},
			path:      "/openai/threads/t1/messages?limit=2&order=asc",
			wantQuery: url.Values{"limit": {"2"}, "order": {"asc"}, "api-version": {"2024-05-01-preview"}},
			wantKey:   "azure-key-1",
		},
		{
			name:      "key from AZURE_OPENAI_API_KEY, never OPENAI_API_KEY",
			env:       map[string]string{"AZURE_OPENAI_API_KEY": "from-azure-env", "OPENAI_API_KEY": testKey},
			path:      "/openai/assistants",
			wantQuery: url.Values{"api-version": {"2024-05-01-preview"}},
			wantKey:   "from-azure-env",
		},
		{
			name: "AD token",
			opts: []Option{WithAzureADToken(func(context.Context) (string, error) { return "tok-1", nil })},
			env:  map[string]string{"AZURE_OPENAI_API_KEY": "unused"},
			path: "/openai/assistants", wantQuery: url.Values{"api-version": {"2024-05-01-preview"}},
			wantAuth: "Bearer tok-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			srv := newScriptServer(t)
			opts := append([]Option{WithAzure(srv.URL+"/", "2024-05-01-preview")}, tt.opts...)
			hc, base, err := NewHTTPClient(opts...)
			require.NoError(t, err)
			assert.Equal(t, srv.URL+"/openai", base)

			do(t, hc, http.MethodGet, base+strings.TrimPrefix(tt.path, "/openai"), "")

			a := srv.Attempts()[0]
			assert.Equal(t, strings.SplitN(tt.path, "?", 2)[0], a.Path)
			q, err := url.ParseQuery(a.RawQuery)
			require.NoError(t, err)
			assert.Equal(t, tt.wantQuery, q)
			assert.Equal(t, tt.wantAuth, a.Header.Get("Authorization"))
			assert.Equal(t, tt.wantKey, a.Header.Get("api-key"))
			assert.Equal(t, "assistants=v2", a.Header.Get("OpenAI-Beta"))
			assert.Empty(t, a.Header.Values("OpenAI-Organization"))
		})
	}
}

func TestAzureEndpointWithOpenAISuffix(t *testing.T) {
	clearEnv(t)
	_, base, err := NewHTTPClient(WithAzure("https://res.openai.azure.com/openai/", "v1"))
	require.NoError(t, err)
	assert.Equal(t, "https://res.openai.azure.com/openai", base)
}

func TestAzureTokenErrorIsNotRetried(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	calls := 0
	rec := &sleepRecorder{}
	boom := errors.New("no token today")
	hc, _, err := NewHTTPClient(WithAzure(srv.URL, "v"), withSleep(rec.sleep),
		WithAzureADToken(func(ctx context.Context) (string, error) { calls++; return "", boom }))
	require.NoError(t, err)

	_, err = hc.Get(srv.URL + "/openai/threads")

	assert.ErrorIs(t, err, boom)
	assert.ErrorIs(t, err, ErrCredentials)
	assert.True(t, IsPermanent(err))
	assert.Equal(t, 1, calls)
	assert.Empty(t, srv.Attempts())
	assert.Empty(t, rec.Waits())
}

func TestAzureTokenPerAttempt(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t, step{status: 500})
	n := 0
	hc, _, err := NewHTTPClient(WithAzure(srv.URL, "v"), withSleep((&sleepRecorder{}).sleep),
		WithAzureADToken(func(ctx context.Context) (string, error) {
			n++
			return "tok-" + strings.Repeat("x", n), nil
		}))
	require.NoError(t, err)

	do(t, hc, http.MethodGet, srv.URL+"/openai/threads", "")

	att := srv.Attempts()
	require.Len(t, att, 2)
	assert.Equal(t, "Bearer tok-x", att[0].Header.Get("Authorization"))
	assert.Equal(t, "Bearer tok-xx", att[1].Header.Get("Authorization"))
}
