package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ---- redaction ----

// keyPieceLen is the shortest run of a key's characters that is redacted on
// its own: a backend that echoes the key cut short (or the start of a key
// cut by a length limit) still leaks nothing of this length or more.
const keyPieceLen = 10

// redactor replaces every occurrence of a secret in text: the secret itself,
// its URL-encoded and JSON-escaped forms, and any run of keyPieceLen or more
// of their characters. Matching ignores ASCII case (percent-encoding may be
// written %2b or %2B).
type redactor struct {
	pieces map[string]bool // lower-cased windows of keyPieceLen bytes
	whole  []string        // lower-cased forms shorter than keyPieceLen
}

func newRedactor(secret string) *redactor {
	if secret == "" {
		return nil
	}
	r := &redactor{pieces: map[string]bool{}}
	jb, _ := json.Marshal(secret)
	js := string(jb[1 : len(jb)-1])
	forms := dedupe([]string{secret, url.QueryEscape(secret), url.PathEscape(secret), js, strings.ReplaceAll(js, "/", `\/`)})
	for _, f := range forms {
		f = lowerASCII(f)
		if len(f) < keyPieceLen {
			r.whole = append(r.whole, f)
			continue
		}
		for i := 0; i+keyPieceLen <= len(f); i++ {
			r.pieces[f[i:i+keyPieceLen]] = true
		}
	}
	return r
}

// redact returns s with every secret run replaced by "[redacted]".
func (r *redactor) redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	low := lowerASCII(s)
	secret := make([]bool, len(s))
	found := false
	for i := 0; i+keyPieceLen <= len(low); i++ {
		if r.pieces[low[i:i+keyPieceLen]] {
			for j := i; j < i+keyPieceLen; j++ {
				secret[j] = true
			}
			found = true
		}
	}
	for _, w := range r.whole {
		for off := 0; ; {
			k := strings.Index(low[off:], w)
			if k < 0 {
				break
			}
			for j := off + k; j < off+k+len(w); j++ {
				secret[j] = true
			}
			found = true
			off += k + len(w)
		}
	}
	if !found {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !secret[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString("[redacted]")
		for i < len(s) && secret[i] {
			i++
		}
	}
	return b.String()
}

// lowerASCII lower-cases ASCII letters only, so byte offsets are kept.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// safeDetail makes backend text fit for last_error: the key is redacted
// first, then the text is cut to length (never the other way round, which
// would let the start of a long key through).
func (m *ChatModel) safeDetail(s string) string {
	return truncateForMessage(m.secrets.redact(strings.TrimSpace(s)))
}

// redactedError is a cause with the key and the request URL removed.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// causeOf returns err without the request URL (a *url.Error names it, with
// its query) and with the key redacted, for ModelError.Err and logs.
func (m *ChatModel) causeOf(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &redactedError{msg: m.secrets.redact(err.Error())}
}

// ---- transport failures ----

// Cause classes of a failed connection, as shown in last_error.
const (
	netClassDNS     = "DNS lookup failed"
	netClassRefused = "connection refused"
	netClassTLS     = "TLS handshake failed"
	netClassTimeout = "timed out"
	netClassClosed  = "connection closed by the backend"
	netClassOther   = "connection failed"
)

// netClass names the cause class of a failed request or stream read.
func netClass(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var ne net.Error
	switch {
	case errors.As(err, &dnsErr):
		return netClassDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return netClassRefused
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return netClassTLS
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return netClassTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return netClassClosed
	}
	return netClassOther
}

// ---- 429 ----

// maxRetryAfter caps a parsed wait (longer ones are as good as forever).
const maxRetryAfter = 24 * time.Hour

// retryAfter reads how long a 429 answer asks to wait: retry-after-ms
// (Azure, OpenAI) first, then Retry-After in seconds or as an HTTP date.
// ok is false when neither header holds a usable value.
func retryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(min(ms, float64(maxRetryAfter/time.Millisecond)) * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, maxRetryAfter.Seconds()) * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
