package assistants

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Header names the SDK sets.
const (
	headerAuthorization = "Authorization"
	headerAPIKey        = "Api-Key" // canonical form of Azure's "api-key"
	headerBeta          = "Openai-Beta"
	headerOrganization  = "Openai-Organization"
	headerProject       = "Openai-Project"
	headerUserAgent     = "User-Agent"
	headerRetryCount    = "X-Retry-Count"
	headerIdempotency   = "Idempotency-Key"
	headerShouldRetry   = "X-Should-Retry"
	betaValue           = "assistants=v2"
)

// ErrAttemptTimeout is wrapped by the error of an attempt that ran past
// Options.Timeout. It also matches context.DeadlineExceeded with errors.Is.
var ErrAttemptTimeout = fmt.Errorf("assistants: attempt timed out: %w", context.DeadlineExceeded)

// headerTransport adds the SDK's headers and credentials to a clone of each
// request. Credentials, OpenAI-* headers, extra headers and Azure's
// api-version are added only when the request goes to the base URL's origin,
// so a redirect elsewhere never carries them.
type headerTransport struct {
	next       http.RoundTripper
	origin     string // scheme://host:port of the base URL, lower case
	userAgent  string
	fixed      http.Header // non-credential headers for the base origin
	apiKey     string
	bearer     string // "Bearer " + apiKey, built once
	azure      bool
	apiVersion string
	token      func(context.Context) (string, error)
	// slots is the most header values RoundTrip adds to a request:
	// User-Agent, the fixed headers and one credential.
	slots int
}

func newHeaderTransport(next http.RoundTripper, base *url.URL, o *Options) *headerTransport {
	ua := "assistants-go/" + Version
	if s := strings.TrimSpace(o.UserAgent); s != "" {
		ua += " " + s
	}
	fixed := http.Header{headerBeta: {betaValue}}
	if o.Organization != "" {
		fixed.Set(headerOrganization, o.Organization)
	}
	if o.Project != "" {
		fixed.Set(headerProject, o.Project)
	}
	for k, vs := range o.Headers {
		fixed[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
	}
	t := &headerTransport{
		next:      next,
		origin:    origin(base),
		userAgent: ua,
		fixed:     fixed,
		apiKey:    o.APIKey,
		bearer:    "Bearer " + o.APIKey,
		slots:     2,
	}
	for _, vs := range fixed {
		t.slots += len(vs)
	}
	if o.AzureEndpoint != "" {
		t.azure = true
		t.apiVersion = o.AzureAPIVersion
		t.token = o.AzureADToken
	}
	return t
}

// RoundTrip implements http.RoundTripper. It never modifies req.
func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r, free := cloneRequest(req, req.Context(), t.slots)
	return t.roundTrip(r, free)
}

// roundTrip adds the headers to r, a private clone of the caller's request
// (see cloneRequest) whose free slots back the values it sets, and sends
// it.
func (t *headerTransport) roundTrip(r *http.Request, free []string) (*http.Response, error) {
	if r.Header.Get(headerUserAgent) == "" {
		free = setHeader(r.Header, headerUserAgent, free, t.userAgent)
	}
	if r.URL == nil || !t.sameOrigin(r.URL) {
		return t.next.RoundTrip(r)
	}
	for k, vs := range t.fixed {
		if _, ok := r.Header[k]; !ok {
			free = setHeader(r.Header, k, free, vs...)
		}
	}
	switch {
	case t.azure:
		if !r.URL.Query().Has("api-version") {
			q := "api-version=" + url.QueryEscape(t.apiVersion)
			if r.URL.RawQuery != "" {
				q = r.URL.RawQuery + "&" + q
			}
			r.URL.RawQuery = q
		}
		if t.token != nil {
			if r.Header.Get(headerAuthorization) == "" {
				tok, err := t.token(r.Context())
				if err != nil {
					closeRequestBody(r)
					return nil, fmt.Errorf("%w: Azure AD token: %w", ErrCredentials, err)
				}
				r.Header.Set(headerAuthorization, "Bearer "+tok)
			}
		} else if t.apiKey != "" && r.Header.Get(headerAPIKey) == "" {
			setHeader(r.Header, headerAPIKey, free, t.apiKey)
		}
	case t.apiKey != "" && r.Header.Get(headerAuthorization) == "":
		setHeader(r.Header, headerAuthorization, free, t.bearer)
	}
	return t.next.RoundTrip(r)
}

// cloneRequest returns a copy of req with context ctx that the transports
// may change: its own URL and its own Header (never nil), whose values share
// one allocation with extra free slots, returned for setHeader. The other
// fields (Trailer, Form...) are shared with req; the transports only read
// them. It costs four allocations where Request.Clone plus Header.Set for
// each added header cost about twice as many.
func cloneRequest(req *http.Request, ctx context.Context, extra int) (*http.Request, []string) {
	r := req.WithContext(ctx)
	if req.URL != nil {
		u := *req.URL
		r.URL = &u
	}
	n := 0
	for _, vs := range req.Header {
		n += len(vs)
	}
	vals := make([]string, n+extra)
	h := make(http.Header, len(req.Header)+extra)
	for k, vs := range req.Header {
		if vs == nil {
			h[k] = nil // as Header.Clone does
			continue
		}
		n := copy(vals, vs)
		h[k], vals = vals[:n:n], vals[n:]
	}
	r.Header = h
	return r, vals
}

// setHeader sets h[key] (key in canonical form) to values, like
// Header.Set for one value, storing them in free when it has room, and
// returns the slots left. Each value slice is capped, so appending to one
// never reaches another.
func setHeader(h http.Header, key string, free []string, values ...string) []string {
	if values == nil {
		h[key] = nil
		return free
	}
	if len(free) < len(values) {
		h[key] = slices.Clone(values)
		return free
	}
	n := copy(free, values)
	h[key] = free[:n:n]
	return free[n:]
}

// sameOrigin reports whether u has the base URL's origin, i.e. whether
// origin(u) == t.origin, without building the string.
func (t *headerTransport) sameOrigin(u *url.URL) bool {
	var buf [128]byte
	return string(appendOrigin(buf[:0], u)) == t.origin
}

// origin returns "scheme://host:port" in lower case, with the scheme's
// default port filled in, so that api.openai.com and api.openai.com:443
// compare equal.
func origin(u *url.URL) string { return string(appendOrigin(nil, u)) }

// appendOrigin appends origin(u) to dst.
func appendOrigin(dst []byte, u *url.URL) []byte {
	scheme := u.Scheme
	dst = appendLower(dst, scheme)
	dst = append(dst, "://"...)
	host := u.Hostname()
	if strings.IndexByte(host, ':') >= 0 { // as net.JoinHostPort does
		dst = append(dst, '[')
		dst = appendLower(dst, host)
		dst = append(dst, ']')
	} else {
		dst = appendLower(dst, host)
	}
	dst = append(dst, ':')
	port := u.Port()
	if port == "" {
		switch {
		case strings.EqualFold(scheme, "https") && isASCII(scheme):
			port = "443"
		case strings.EqualFold(scheme, "http") && isASCII(scheme):
			port = "80"
		}
	}
	return append(dst, port...)
}

// appendLower appends strings.ToLower(s) to dst, without allocating when s
// is ASCII.
func appendLower(dst []byte, s string) []byte {
	if !isASCII(s) {
		return append(dst, strings.ToLower(s)...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// stripCredentialsOnRedirect returns a CheckRedirect that deletes the
// Authorization and api-key headers (in any letter case) from a redirect hop
// whose origin differs from the first request's, then defers to prev, or to
// Go's default policy of at most 10 redirects when prev is nil.
func stripCredentialsOnRedirect(prev func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && origin(req.URL) != origin(via[0].URL) {
			for k := range req.Header {
				if strings.EqualFold(k, headerAuthorization) || strings.EqualFold(k, headerAPIKey) {
					delete(req.Header, k)
				}
			}
		}
		if prev != nil {
			return prev(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// closeRequestBody closes req.Body, as a RoundTripper must even when it
// fails before sending.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// timeoutTransport bounds each attempt by timeout: the attempt's context is
// cancelled with ErrAttemptTimeout unless the reply body is read to EOF or
// closed first. For a text/event-stream reply the timer is stopped as soon as
// the headers have arrived.
type timeoutTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.next.RoundTrip(req)
	}
	parent := req.Context()
	ctx, cancel := context.WithCancelCause(parent)
	timer := time.AfterFunc(t.timeout, func() { cancel(ErrAttemptTimeout) })
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		err = timeoutErr(ctx, parent, err)
		cancel(nil)
		return nil, err
	}
	if isEventStream(resp.Header) {
		timer.Stop()
	}
	resp.Body = &timeoutBody{rc: resp.Body, timer: timer, cancel: cancel, ctx: ctx, parent: parent}
	return resp, nil
}

// timeoutErr wraps err with ErrAttemptTimeout when the attempt's own timer,
// not the caller's context, ended ctx.
func timeoutErr(ctx, parent context.Context, err error) error {
	if err == nil || errors.Is(err, ErrAttemptTimeout) || parent.Err() != nil {
		return err
	}
	if errors.Is(context.Cause(ctx), ErrAttemptTimeout) {
		return fmt.Errorf("%w: %w", ErrAttemptTimeout, err)
	}
	return err
}

// isEventStream reports whether h's Content-Type is text/event-stream.
func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	// Fast path without allocation: ParseMediaType can only return
	// text/event-stream when the part before any ';' is that, in any case,
	// around optional spaces.
	base, _, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(base), "text/event-stream") {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}

// timeoutBody stops the attempt's timer at EOF and releases its context on
// Close. Once the retry transport has read it whole (see readBody) it serves
// that buffer instead, which saves allocating another body.
type timeoutBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	cancel context.CancelCauseFunc
	ctx    context.Context
	parent context.Context
	once   sync.Once
	// buffered is set by readBody after it has read rc to its end and
	// released it; then buf serves the body.
	buffered bool
	buf      bufferedBody
}

func (b *timeoutBody) Read(p []byte) (int, error) {
	if b.buffered {
		return b.buf.Read(p)
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.timer.Stop()
	} else if err != nil {
		err = timeoutErr(b.ctx, b.parent, err)
	}
	return n, err
}

func (b *timeoutBody) Close() error {
	if b.buffered {
		return b.buf.Close()
	}
	return b.release()
}

// release closes rc and releases the attempt's timer and context.
func (b *timeoutBody) release() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
	})
	return err
}
