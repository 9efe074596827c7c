package assistants

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func replyWith(status int, header map[string]string) *http.Response {
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	return &http.Response{StatusCode: status, Header: h}
}

func TestNewAPIErrorDecoding(t *testing.T) {
	huge := strings.Repeat("<p>oops</p>", 100_000)
	tests := []struct {
		name    string
		status  int
		body    string
		want    APIError // Body and Header not compared
		wantErr string
	}{
		{
			name:    "openai shape",
			status:  404,
			body:    `{"error":{"message":"No run found with id 'run_1'.","type":"invalid_request_error","param":"run_id","code":"not_found"}}`,
			want:    APIError{StatusCode: 404, Type: "invalid_request_error", Code: "not_found", Param: "run_id", Message: "No run found with id 'run_1'.", RequestID: "req_123"},
			wantErr: "assistants: 404 invalid_request_error (not_found): No run found with id 'run_1'. (request req_123)",
		},
		{
			name:    "numeric code",
			status:  429,
			body:    `{"error":{"message":"slow down","type":"rate_limit","code":429}}`,
			want:    APIError{StatusCode: 429, Type: "rate_limit", Code: "429", Message: "slow down", RequestID: "req_123"},
			wantErr: "assistants: 429 rate_limit (429): slow down (request req_123)",
		},
		{
			name:    "null code and param",
			status:  400,
			body:    `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`,
			want:    APIError{StatusCode: 400, Type: "invalid_request_error", Message: "bad", RequestID: "req_123"},
			wantErr: "assistants: 400 invalid_request_error: bad (request req_123)",
		},
		{
			name:    "error is a string",
			status:  500,
			body:    `{"error":"internal failure"}`,
			want:    APIError{StatusCode: 500, Message: "internal failure", RequestID: "req_123"},
			wantErr: "assistants: 500: internal failure (request req_123)",
		},
		{
			name:   "gateway shape",
			status: 401,
			body:   `{"statusCode":401,"message":"Access denied due to invalid subscription key."}`,
			want:   APIError{StatusCode: 401, Message: "Access denied due to invalid subscription key.", RequestID: "req_123"},
		},
		{
			name:    "non-JSON body",
			status:  502,
			body:    "  <html>Bad Gateway</html>\n",
			want:    APIError{StatusCode: 502, Message: "<html>Bad Gateway</html>", RequestID: "req_123"},
			wantErr: "assistants: 502: <html>Bad Gateway</html> (request req_123)",
		},
		{
			name:    "empty body",
			status:  503,
			body:    "",
			want:    APIError{StatusCode: 503, RequestID: "req_123"},
			wantErr: "assistants: 503: Service Unavailable (request req_123)",
		},
		{
			name:   "huge body",
			status: 500,
			body:   huge,
			want:   APIError{StatusCode: 500, Message: huge[:maxPlainMessage] + "...", RequestID: "req_123"},
		},
		{
			name:   "truncated JSON",
			status: 500,
			body:   `{"error":{"message":"cut`,
			want:   APIError{StatusCode: 500, Message: `{"error":{"message":"cut`, RequestID: "req_123"},
		},
		{
			name:   "wrong types inside error",
			status: 400,
			body:   `{"error":{"message":{"nested":true},"type":7,"param":["a"],"code":{"x":1}}}`,
			want:   APIError{StatusCode: 400, Type: "7", Code: `{"x":1}`, Param: `["a"]`, Message: `{"nested":true}`, RequestID: "req_123"},
		},
		{
			name:   "invalid UTF-8",
			status: 500,
			body:   "bad \xff\xfe bytes",
			want:   APIError{StatusCode: 500, Message: "bad \uFFFD bytes", RequestID: "req_123"},
		},
		{
			name:   "JSON array",
			status: 500,
			body:   `[1,2]`,
			want:   APIError{StatusCode: 500, Message: `[1,2]`, RequestID: "req_123"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := replyWith(tt.status, map[string]string{"x-request-id": "req_123"})
			e := NewAPIError(resp, []byte(tt.body))
			got := *e
			got.Body, got.Header = nil, nil
			assert.Equal(t, tt.want, got)
			if tt.body == "" {
				assert.Nil(t, e.Body)
			} else {
				assert.Equal(t, []byte(tt.body), e.Body, "Body is kept raw")
			}
			assert.Equal(t, "req_123", e.Header.Get("X-Request-Id"))
			if tt.wantErr != "" {
				assert.Equal(t, tt.wantErr, e.Error())
			}
			assert.Less(t, len(e.Error()), 2*maxPlainMessage, "Error() stays short")
		})
	}
}

func TestNewAPIErrorReadsBodyWhenNil(t *testing.T) {
	resp := replyWith(400, map[string]string{"apim-request-id": "azure-req-1"})
	closed := false
	resp.Body = closeFunc{strings.NewReader(`{"error":{"message":"m","type":"t"}}`), func() { closed = true }}
	e := NewAPIError(resp, nil)
	assert.Equal(t, "m", e.Message)
	assert.Equal(t, "azure-req-1", e.RequestID)
	assert.True(t, closed)
}

type closeFunc struct {
	io.Reader
	f func()
}

func (c closeFunc) Close() error { c.f(); return nil }

func TestNewAPIErrorNilResponse(t *testing.T) {
	e := NewAPIError(nil, nil)
	require.NotNil(t, e)
	assert.Equal(t, 0, e.StatusCode)
	assert.Equal(t, "assistants: 0", e.Error())
	var nilErr *APIError
	assert.Equal(t, "assistants: <nil APIError>", nilErr.Error())
}

func TestErrorNeverContainsKey(t *testing.T) {
	secrets := []string{
		testKey,
		"sk-abcdefghijklmnop1234",
		"sk-svcacct-AAAAbbbbCCCCdddd",
		"0123456789abcdef0123456789abcdef", // Azure api-key
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl",
		strings.Repeat("Ab1", 28), // 84-character Azure key
	}
	for _, secret := range secrets {
		bodies := []string{
			`{"error":{"message":"Incorrect API key provided: ` + secret + `.","type":"invalid_request_error","code":"invalid_api_key"}}`,
			`{"error":{"message":"x","code":"` + secret + `","param":"` + secret + `"}}`,
			"plain text with Authorization: Bearer " + secret,
			secret,
		}
		for _, body := range bodies {
			resp := replyWith(401, map[string]string{"x-request-id": secret})
			e := NewAPIError(resp, []byte(body))
			assert.NotContains(t, e.Error(), secret, "body %q", body)
			assert.NotContains(t, e.Message, secret)
			assert.NotContains(t, e.Code, secret)
			assert.NotContains(t, e.Param, secret)
			assert.NotContains(t, fmt.Sprintf("%v", error(e)), secret)
			assert.Contains(t, e.Error(), "[REDACTED]")
			assert.Equal(t, body, string(e.Body), "Body stays raw")
		}
	}
}

func TestRedactKeepsIDs(t *testing.T) {
	for _, s := range []string{
		"No run found with id 'run_abc123DEF456ghi789JKL012'.",
		"thread_abc123DEF456ghi789JKL012 asst_abc123DEF456ghi789JKL012",
		"request req_0123456789abcdef0123456789abcdef",
		"file-AbCdEfGhIjKlMnOpQrStUv",
		"task-force and desk-lamp",
	} {
		assert.Equal(t, s, redact(s))
	}
	assert.Equal(t, "Bearer [REDACTED] and [REDACTED]", redact("Bearer abcdefgh12345 and sk-12345678"))
}

func TestAPIErrorWithErrorsAs(t *testing.T) {
	base := NewAPIError(replyWith(404, nil), []byte(`{"error":{"message":"gone"}}`))
	wrapped := fmt.Errorf("get run: %w", base)

	var e *APIError
	require.True(t, errors.As(wrapped, &e))
	assert.Equal(t, 404, e.StatusCode)
	assert.True(t, IsNotFound(wrapped))
	assert.True(t, IsStatus(wrapped, 404))
	assert.False(t, IsStatus(wrapped, 500))
	assert.False(t, IsNotFound(errors.New("404")))
	assert.False(t, IsNotFound(nil))
}

func TestTruncate(t *testing.T) {
	assert.Equal(t, "abc", truncate("abc", 3))
	assert.Equal(t, "ab...", truncate("abc", 2))
	assert.Equal(t, "...", truncate("é", 1), "never cuts inside a rune")
}

func FuzzNewAPIError(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `{"error":null}`, `{"error":{"code":1e999}}`, `{"error":[]}`,
		`{"error":{"message":"m","code":"c"}}`, "\x00\xff", `{"message":3}`,
	} {
		f.Add(500, s)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := NewAPIError(replyWith(status, nil), []byte(body))
		_ = e.Error()
		if len(body) > 0 {
			assert.Equal(t, body, string(e.Body))
		}
	})
}

// realRequestError makes a request with a plain client and returns its
// error, so the classification is tested on what net/http really returns.
func realRequestError(t *testing.T, url string) error {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err)
	return err
}

func TestIsPermanent(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(http.NotFoundHandler())
	defer plainSrv.Close()
	closedAddr := func() string { // a port nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		return addr
	}()

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"untrusted certificate", realRequestError(t, tlsSrv.URL), true},
		{"HTTPS to a plain HTTP server", realRequestError(t, strings.Replace(plainSrv.URL, "http:", "https:", 1)), true},
		{"unsupported protocol scheme", realRequestError(t, "ftp://example.com/x"), true},
		{"invalid URL", realRequestError(t, "http://[::1/x"), true},
		{"no host", realRequestError(t, "http:///x"), true},
		{"credentials", &url.Error{Op: "Get", URL: "u", Err: fmt.Errorf("%w: Azure AD token: expired", ErrCredentials)}, true},
		{"hostname mismatch", &url.Error{Op: "Get", URL: "u", Err: &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "x"}}}, true},
		{"bare x509 error", fmt.Errorf("wrapped: %w", x509.UnknownAuthorityError{}), true},
		{"TLS alert", &url.Error{Op: "Get", URL: "u", Err: &net.OpError{Op: "remote error", Err: tls.AlertError(42)}}, true},
		{"connection refused", realRequestError(t, "http://"+closedAddr+"/x"), false},
		{"reset", &url.Error{Op: "Get", URL: "u", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, false},
		{"unexpected EOF", &url.Error{Op: "Get", URL: "u", Err: io.ErrUnexpectedEOF}, false},
		{"attempt timeout", &url.Error{Op: "Get", URL: "u", Err: ErrAttemptTimeout}, false},
		{"DNS temporary", &url.Error{Op: "Get", URL: "u", Err: &net.DNSError{Err: "server misbehaving", IsTemporary: true}}, false},
		{"API error", &APIError{StatusCode: 500}, false},
		{"url.Error without Err", &url.Error{Op: "Get", URL: "u"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, IsPermanent(tt.err), "%v", tt.err)
		})
	}
}

// A permanent error is not retried by the transport: one attempt, no wait.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	clearEnv(t)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	rec := &sleepRecorder{}
	hc := newClient(t, tlsSrv.URL, rec)
	defer hc.CloseIdleConnections()

	_, err := hc.Get(tlsSrv.URL + "/threads")

	var certErr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &certErr)
	assert.Empty(t, rec.Waits(), "no retry")
}
