package assistants

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnvironmentAndOptionPrecedence(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		opts     []Option
		wantBase string
		wantKey  string
		wantOrg  string
		wantProj string
	}{
		{name: "defaults", wantBase: "https://api.openai.com/v1"},
		{
			name:     "environment",
			env:      map[string]string{"OPENAI_BASE_URL": "http://proxy.local:8080/v1/", "OPENAI_API_KEY": "env-key", "OPENAI_ORG_ID": "org-env", "OPENAI_PROJECT_ID": "proj-env"},
			wantBase: "http://proxy.local:8080/v1", wantKey: "env-key", wantOrg: "org-env", wantProj: "proj-env",
		},
		{
			name:     "options win",
			env:      map[string]string{"OPENAI_BASE_URL": "http://proxy.local:8080/v1", "OPENAI_API_KEY": "env-key", "OPENAI_ORG_ID": "org-env", "OPENAI_PROJECT_ID": "proj-env"},
			opts:     []Option{WithBaseURL("https://gw.example.com/openai/v1"), WithAPIKey("opt-key"), WithOrganization("org-opt"), WithProject("proj-opt")},
			wantBase: "https://gw.example.com/openai/v1", wantKey: "opt-key", wantOrg: "org-opt", wantProj: "proj-opt",
		},
		{
			name:     "later option wins",
			opts:     []Option{WithAPIKey("first"), WithAPIKey("second"), nil},
			wantBase: "https://api.openai.com/v1", wantKey: "second",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			o := defaultOptions()
			for _, opt := range tt.opts {
				if opt != nil {
					opt(&o)
				}
			}
			base, err := o.resolve(envLookup(t))
			require.NoError(t, err)
			assert.Equal(t, tt.wantBase, base.String())
			assert.Equal(t, tt.wantBase, o.BaseURL)
			assert.Equal(t, tt.wantKey, o.APIKey)
			assert.Equal(t, tt.wantOrg, o.Organization)
			assert.Equal(t, tt.wantProj, o.Project)

			_, gotBase, err := NewHTTPClient(tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, tt.wantBase, gotBase)
		})
	}
}

// envLookup reads the (test-set) process environment.
func envLookup(t *testing.T) func(string) string {
	t.Helper()
	return os.Getenv
}

func TestEnvironmentReachesTheWire(t *testing.T) {
	clearEnv(t)
	srv := newScriptServer(t)
	t.Setenv("OPENAI_BASE_URL", srv.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", testKey)
	t.Setenv("OPENAI_ORG_ID", "org-env")
	t.Setenv("OPENAI_PROJECT_ID", "proj-env")
	hc, base, err := NewHTTPClient()
	require.NoError(t, err)

	do(t, hc, http.MethodGet, base+"/threads/t", "")

	a := srv.Attempts()[0]
	assert.Equal(t, "/v1/threads/t", a.Path)
	assert.Equal(t, "Bearer "+testKey, a.Header.Get("Authorization"))
	assert.Equal(t, "org-env", a.Header.Get("OpenAI-Organization"))
	assert.Equal(t, "proj-env", a.Header.Get("OpenAI-Project"))
}

func TestDefaults(t *testing.T) {
	clearEnv(t)
	o := defaultOptions()
	_, err := o.resolve(envLookup(t))
	require.NoError(t, err)
	assert.Equal(t, 2, o.MaxRetries)
	assert.Equal(t, 10*time.Minute, o.Timeout)
	require.NotNil(t, o.Logger)
	assert.False(t, o.Logger.Enabled(context.Background(), -100), "the default logger discards")
}

func TestInvalidOptions(t *testing.T) {
	tokenFn := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name    string
		opts    []Option
		wantErr string
	}{
		{"negative retries", []Option{WithMaxRetries(-1)}, "max retries"},
		{"relative base URL", []Option{WithBaseURL("/v1")}, "base URL"},
		{"ftp base URL", []Option{WithBaseURL("ftp://host/v1")}, "base URL"},
		{"no host", []Option{WithBaseURL("http:///v1")}, "no host"},
		{"unparsable", []Option{WithBaseURL("http://[::1")}, "base URL"},
		{"user info", []Option{WithBaseURL("https://user:hunter2@host/v1")}, "user info"},
		{"azure without version", []Option{WithAzure("https://res.openai.azure.com", "")}, "api-version"},
		{"azure bad endpoint", []Option{WithAzure("res.openai.azure.com", "v")}, "Azure endpoint"},
		{"azure with base URL", []Option{WithBaseURL("https://x"), WithAzure("https://res.openai.azure.com", "v")}, "cannot be combined"},
		{"AD token without azure", []Option{WithAzureADToken(tokenFn)}, "needs WithAzure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			hc, _, err := NewHTTPClient(tt.opts...)
			require.Error(t, err)
			assert.Nil(t, hc)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestTimeoutZeroDisables(t *testing.T) {
	clearEnv(t)
	hc, _, err := NewHTTPClient(WithTimeout(0))
	require.NoError(t, err)
	var rt http.RoundTripper = hc.Transport
	for rt != nil {
		switch v := rt.(type) {
		case *retryTransport:
			rt = v.next
		case *headerTransport:
			rt = v.next
		case *timeoutTransport:
			assert.LessOrEqual(t, v.timeout, time.Duration(0))
			rt = nil
		default:
			t.Fatalf("unexpected transport %T", v)
		}
	}
}
