package assistants

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
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
	azure      bool
	apiVersion string
	token      func(context.Context) (string, error)
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
	r := req.Clone(req.Context())
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	if r.Header.Get(headerUserAgent) == "" {
		r.Header.Set(headerUserAgent, t.userAgent)
	}
	if r.URL == nil || origin(r.URL) != t.origin {
		return t.next.RoundTrip(r)
	}
	for k, vs := range t.fixed {
		if _, ok := r.Header[k]; !ok {
			r.Header[k] = slices.Clone(vs)
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
					closeRequestBody(req)
					return nil, &noRetryError{fmt.Errorf("assistants: Azure AD token: %w", err)}
				}
				r.Header.Set(headerAuthorization, "Bearer "+tok)
			}
		} else if t.apiKey != "" && r.Header.Get(headerAPIKey) == "" {
			r.Header.Set(headerAPIKey, t.apiKey)
		}
	case t.apiKey != "" && r.Header.Get(headerAuthorization) == "":
		r.Header.Set(headerAuthorization, "Bearer "+t.apiKey)
	}
	return t.next.RoundTrip(r)
}

// origin returns "scheme://host:port" in lower case, with the scheme's
// default port filled in, so that api.openai.com and api.openai.com:443
// compare equal.
func origin(u *url.URL) string {
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
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// timeoutBody stops the attempt's timer at EOF and releases its context on
// Close.
type timeoutBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	cancel context.CancelCauseFunc
	ctx    context.Context
	parent context.Context
	once   sync.Once
}

func (b *timeoutBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.timer.Stop()
	} else if err != nil {
		err = timeoutErr(b.ctx, b.parent, err)
	}
	return n, err
}

func (b *timeoutBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
	})
	return err
}
