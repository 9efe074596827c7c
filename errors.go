package assistants

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	// maxErrorBodyRead bounds how much of a response body NewAPIError reads
	// itself when it is given no body.
	maxErrorBodyRead = 1 << 20
	// maxPlainMessage bounds the message taken from a body that is not the
	// OpenAI error JSON.
	maxPlainMessage = 512
	// maxFieldLen bounds a code or param that is not a JSON string.
	maxFieldLen = 64
)

// APIError is the error for an HTTP reply whose status is not 2xx. It is
// returned by Result and can be built by NewAPIError; match it with
// errors.As:
//
//	var apiErr *assistants.APIError
//	if errors.As(err, &apiErr) && apiErr.StatusCode == 404 { ... }
//
// Its fields come from the OpenAI error shape
// {"error":{"message":...,"type":...,"param":...,"code":...}}. Message is
// redacted: anything in it that looks like an API key or bearer token is
// replaced by [REDACTED]. Body keeps the raw bytes as the server sent them,
// so do not log Body when the server may echo credentials.
type APIError struct {
	// StatusCode is the HTTP status code, e.g. 404; 0 when there was no
	// response.
	StatusCode int
	// Type is error.type, e.g. "invalid_request_error"; empty when absent.
	Type string
	// Code is error.code as text: a JSON string as is, a number in its JSON
	// form, empty for null or when absent.
	Code string
	// Param is error.param, the request parameter at fault; empty when null
	// or absent.
	Param string
	// Message is error.message (redacted), or when the body is not the
	// OpenAI error JSON the trimmed start of the body (at most 512 bytes,
	// redacted); empty for an empty body.
	Message string
	// RequestID is the x-request-id (or, for Azure, apim-request-id) reply
	// header; empty when absent.
	RequestID string
	// Body is the raw reply body, unredacted; nil when there was none.
	Body []byte
	// Header is the reply's header; nil when there was no response.
	Header http.Header
}

// Error returns a one-line description such as
//
//	assistants: 404 invalid_request_error (not_found): No run found (request req_123)
//
// with everything that looks like a credential replaced by [REDACTED].
func (e *APIError) Error() string {
	if e == nil {
		return "assistants: <nil APIError>"
	}
	var b strings.Builder
	b.WriteString("assistants: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(e.Type)
	}
	if e.Code != "" {
		b.WriteString(" (")
		b.WriteString(e.Code)
		b.WriteString(")")
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if e.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return redact(b.String())
}

// NewAPIError builds an *APIError from a reply and its body. It never returns
// nil and never panics: resp may be nil and body may be anything.
//
// When body is nil and resp has a Body, NewAPIError reads at most 1 MiB of it
// and closes it, which suits code that makes raw requests (e.g. streaming)
// and meets a non-2xx status. The generated client has already read the body
// into its Reply's Body field; pass that.
func NewAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{}
	if resp != nil {
		e.StatusCode = resp.StatusCode
		e.Header = resp.Header.Clone()
		e.RequestID = resp.Header.Get("X-Request-Id")
		if e.RequestID == "" {
			e.RequestID = resp.Header.Get("Apim-Request-Id")
		}
		if body == nil && resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyRead))
			_ = resp.Body.Close()
		}
	}
	if len(body) > 0 {
		e.Body = body
	}
	e.decode(body)
	e.Message = redact(e.Message)
	e.Code = redact(e.Code)
	e.Param = redact(e.Param)
	e.RequestID = truncate(redact(e.RequestID), maxFieldLen*2)
	return e
}

// decode fills Type, Code, Param and Message from body.
func (e *APIError) decode(body []byte) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return
	}
	var doc map[string]json.RawMessage
	if trimmed[0] == '{' && json.Unmarshal(trimmed, &doc) == nil {
		if raw, ok := doc["error"]; ok {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil && obj != nil {
				e.Message = jsonText(obj["message"], maxPlainMessage)
				e.Type = jsonText(obj["type"], maxFieldLen)
				e.Code = jsonText(obj["code"], maxFieldLen)
				e.Param = jsonText(obj["param"], maxFieldLen)
				return
			}
			// {"error": "text"}
			if s := jsonText(raw, maxPlainMessage); s != "" {
				e.Message = s
				return
			}
		}
		// Some gateways (e.g. Azure API Management) send
		// {"statusCode":401,"message":"..."}.
		if s := jsonText(doc["message"], maxPlainMessage); s != "" {
			e.Message = s
			return
		}
	}
	e.Message = truncate(strings.ToValidUTF8(string(trimmed), "\uFFFD"), maxPlainMessage)
}

// jsonText renders a JSON value as text: a string unquoted, null or absent as
// "", anything else in its compact JSON form cut to limit bytes (a string is
// never cut).
func jsonText(raw json.RawMessage, limit int) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return truncate(buf.String(), limit)
	}
	return truncate(strings.ToValidUTF8(string(raw), "\uFFFD"), limit)
}

// IsStatus reports whether err is or wraps an *APIError with the given HTTP
// status code.
func IsStatus(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e != nil && e.StatusCode == code
}

// IsNotFound reports whether err is or wraps an *APIError with status 404.
func IsNotFound(err error) bool { return IsStatus(err, http.StatusNotFound) }

// ErrCredentials is wrapped by the error of a request whose credential could
// not be obtained, such as an Azure AD token source (WithAzureADToken) that
// failed. The request is not sent and not retried, and IsPermanent reports
// true for it: a token source that can recover from a passing failure should
// retry inside itself.
var ErrCredentials = errors.New("assistants: credentials unavailable")

// IsPermanent reports whether err, as returned by a request through the
// SDK's client, is one that sending the same request again cannot fix:
//   - a TLS failure: a certificate the client does not trust (a
//     *tls.CertificateVerificationError or any crypto/x509 verification
//     error), a TLS alert from the server, or a server that does not speak
//     TLS (tls.RecordHeaderError, http.ErrSchemeMismatch);
//   - a credential that could not be obtained (ErrCredentials);
//   - a request that cannot be sent: an invalid URL (a *url.Error from
//     parsing, url.EscapeError, url.InvalidHostError), an unsupported
//     protocol scheme, or a URL without a host.
//
// It looks through wrappers such as *url.Error. Anything else, including
// nil, timeouts and refused or reset connections, is not permanent. The
// retry transport does not retry a permanent error, and the poller
// (poller.IsTransient) stops on one.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrCredentials) || errors.Is(err, http.ErrSchemeMismatch) {
		return true
	}
	var (
		certErr      *tls.CertificateVerificationError
		recordErr    tls.RecordHeaderError
		alertErr     tls.AlertError
		authorityErr x509.UnknownAuthorityError
		hostErr      x509.HostnameError
		invalidErr   x509.CertificateInvalidError
		constraint   x509.ConstraintViolationError
		critical     x509.UnhandledCriticalExtension
		algorithm    x509.InsecureAlgorithmError
		rootsErr     x509.SystemRootsError
		escapeErr    url.EscapeError
		hostNameErr  url.InvalidHostError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &alertErr),
		errors.As(err, &authorityErr), errors.As(err, &hostErr), errors.As(err, &invalidErr),
		errors.As(err, &constraint), errors.As(err, &critical), errors.As(err, &algorithm),
		errors.As(err, &rootsErr), errors.As(err, &escapeErr), errors.As(err, &hostNameErr):
		return true
	}
	// net/http reports these with untyped errors; their text is stable.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if u, ok := e.(*url.Error); ok {
			if u.Op == "parse" {
				return true
			}
			if u.Err == nil {
				continue
			}
			msg := u.Err.Error()
			if strings.HasPrefix(msg, "unsupported protocol scheme") || msg == "http: no Host in request URL" {
				return true
			}
		}
	}
	return false
}
