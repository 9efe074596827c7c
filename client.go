package assistants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/assistants-go/assistants/gen"
)

// Version is this SDK's version, sent in the User-Agent header as
// "assistants-go/<Version>".
const Version = "0.1.0"

// DefaultBaseURL is the OpenAI API base URL used when neither WithBaseURL nor
// the OPENAI_BASE_URL environment variable gives one.
const DefaultBaseURL = "https://api.openai.com/v1"

const (
	// DefaultMaxRetries is the number of retries after the first attempt
	// used when WithMaxRetries is not given.
	DefaultMaxRetries = 2
	// DefaultTimeout is the per-attempt timeout used when WithTimeout is not
	// given.
	DefaultTimeout = 10 * time.Minute
)

// Options is the configuration that New and NewHTTPClient build from their
// Option arguments. Start from the defaults documented on each field; the
// With* functions set them. Empty string fields are filled from the
// environment where noted, after all options have been applied.
type Options struct {
	// APIKey is the credential. In OpenAI mode it is sent as
	// "Authorization: Bearer <APIKey>"; in Azure mode as "api-key: <APIKey>".
	// Default: $OPENAI_API_KEY in OpenAI mode, $AZURE_OPENAI_API_KEY in Azure
	// mode (an OpenAI key is never sent to Azure). When it stays empty no
	// credential header is sent.
	APIKey string

	// BaseURL is the API root that operation paths are appended to, e.g.
	// "https://api.openai.com/v1". Default: $OPENAI_BASE_URL, else
	// DefaultBaseURL. It must be an absolute http or https URL. It must not
	// be combined with WithAzure, which derives the base URL itself.
	BaseURL string

	// Organization is sent as the OpenAI-Organization header when non-empty.
	// Default: $OPENAI_ORG_ID in OpenAI mode, empty in Azure mode.
	Organization string

	// Project is sent as the OpenAI-Project header when non-empty. Default:
	// $OPENAI_PROJECT_ID in OpenAI mode, empty in Azure mode.
	Project string

	// HTTPClient is the client whose settings (Jar, Timeout, CheckRedirect,
	// Transport) are reused. It is never modified: New uses a shallow copy
	// whose Transport wraps HTTPClient.Transport (http.DefaultTransport when
	// nil). Default: http.DefaultClient's settings.
	HTTPClient *http.Client

	// MaxRetries is how many times a failed attempt is retried (so at most
	// MaxRetries+1 attempts). 0 disables retries; negative is an error.
	// Default: DefaultMaxRetries (2).
	MaxRetries int

	// Timeout bounds one attempt: from sending the request until its reply
	// body has been read to the end or closed. For a text/event-stream reply
	// the timer stops once the headers have arrived, so long streams are not
	// cut. A timed-out attempt is retried like a connection error. Zero or
	// negative disables the per-attempt timeout (the request's context and
	// HTTPClient.Timeout still apply). Default: DefaultTimeout (10 minutes).
	Timeout time.Duration

	// CutBodyRetry makes the client read every reply to a request that is
	// safe to repeat (a GET or HEAD, or a request carrying an
	// Idempotency-Key, as every POST does) whole before handing it on, and
	// retry the request, with the same Idempotency-Key, when that body
	// cannot be read to its end (a connection cut mid-body, a timeout), as
	// it retries a connection error. The caller then gets a body that is
	// already in memory and cannot fail. text/event-stream replies are never
	// read ahead, so a stream is never retried once it has started; a reply
	// larger than MaxBufferedBody (32 MiB) is passed on unread. false hands
	// every reply on as it arrives, so a cut body fails the call with
	// "unexpected EOF". Default: true.
	CutBodyRetry bool

	// Logger receives debug records about retries (method, path, status,
	// attempt, wait); never headers or bodies. Default: a logger that
	// discards everything.
	Logger *slog.Logger

	// AzureEndpoint, when non-empty, switches to Azure OpenAI mode: the base
	// URL becomes AzureEndpoint + "/openai", every request gets
	// ?api-version=AzureAPIVersion and the credential is sent as api-key (or
	// as a bearer token from AzureADToken). Default: empty (OpenAI mode).
	AzureEndpoint string

	// AzureAPIVersion is the api-version query value for Azure mode, e.g.
	// "2024-05-01-preview". Required in Azure mode. Default: empty.
	AzureAPIVersion string

	// AzureADToken, when non-nil in Azure mode, is called for every attempt
	// and its token is sent as "Authorization: Bearer <token>" instead of the
	// api-key header. Its error fails the request. Setting it outside Azure
	// mode is an error. Default: nil.
	AzureADToken func(ctx context.Context) (string, error)

	// UserAgent is appended, after a space, to the User-Agent header
	// "assistants-go/<Version>". Default: empty (nothing appended).
	UserAgent string

	// Headers are extra headers sent on every request to the base URL's
	// host, after the SDK's own. A header that the request itself already
	// carries (e.g. set by a request editor) is left as it is. Default: nil.
	Headers http.Header

	// Test hooks; zero means the real thing.
	sleep  func(ctx context.Context, d time.Duration) error // retry wait
	jitter func() float64                                   // in [0, 1)
	now    func() time.Time                                 // Retry-After dates
}

// Option sets a field of Options. Options are applied in order, so a later
// one wins.
type Option func(*Options)

// WithAPIKey sets Options.APIKey, the credential (default $OPENAI_API_KEY, or
// $AZURE_OPENAI_API_KEY in Azure mode). An empty key means "use the
// environment".
func WithAPIKey(key string) Option { return func(o *Options) { o.APIKey = key } }

// WithBaseURL sets Options.BaseURL (default $OPENAI_BASE_URL, else
// https://api.openai.com/v1). Credentials are only sent to this URL's host.
func WithBaseURL(u string) Option { return func(o *Options) { o.BaseURL = u } }

// WithOrganization sets Options.Organization, sent as OpenAI-Organization
// (default $OPENAI_ORG_ID in OpenAI mode).
func WithOrganization(org string) Option { return func(o *Options) { o.Organization = org } }

// WithProject sets Options.Project, sent as OpenAI-Project (default
// $OPENAI_PROJECT_ID in OpenAI mode).
func WithProject(project string) Option { return func(o *Options) { o.Project = project } }

// WithHTTPClient sets Options.HTTPClient, whose settings are reused on a
// shallow copy; c itself is never modified (default: http.DefaultClient's
// settings).
func WithHTTPClient(c *http.Client) Option { return func(o *Options) { o.HTTPClient = c } }

// WithMaxRetries sets Options.MaxRetries, the retries after the first attempt
// (default 2; 0 disables retries; negative makes New fail).
func WithMaxRetries(n int) Option { return func(o *Options) { o.MaxRetries = n } }

// WithTimeout sets Options.Timeout, the per-attempt timeout (default 10
// minutes; zero or negative disables it). For a text/event-stream reply the
// timer stops when the headers arrive.
func WithTimeout(d time.Duration) Option { return func(o *Options) { o.Timeout = d } }

// WithCutBodyRetry sets Options.CutBodyRetry (default true): whether a reply
// to a request safe to repeat is read whole, and the request retried when
// its body is cut short.
func WithCutBodyRetry(enabled bool) Option { return func(o *Options) { o.CutBodyRetry = enabled } }

// WithLogger sets Options.Logger, which gets debug records about retries
// (default: discard). A nil logger means discard.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithUserAgent sets Options.UserAgent, a suffix appended after a space to
// "assistants-go/<Version>" (default: none).
func WithUserAgent(suffix string) Option { return func(o *Options) { o.UserAgent = suffix } }

// WithHeader adds an extra header sent on every request to the base URL's
// host (default: none). A later WithHeader with the same key replaces the
// value. A header already set on the request itself wins.
func WithHeader(key, value string) Option {
	return func(o *Options) {
		if o.Headers == nil {
			o.Headers = make(http.Header)
		}
		o.Headers.Set(key, value)
	}
}

// defaultOptions returns Options holding every default that does not come
// from the environment.
func defaultOptions() Options {
	return Options{MaxRetries: DefaultMaxRetries, Timeout: DefaultTimeout, CutBodyRetry: true}
}

// defaultJitter draws from math/rand/v2, which needs no seeding.
func defaultJitter() float64 { return rand.Float64() }

// New returns the Assistants v2 client, configured by opts on top of the
// defaults and environment described on Options. It is ready to use: every
// request gets the SDK's headers and credentials (only for the base URL's
// host), retries and a per-attempt timeout. Its typed calls return
// (*T, error) (see Client); the embedded generated client gives raw replies.
//
// The client passed with WithHTTPClient is never modified; see
// NewHTTPClient. New fails on an invalid option (bad base URL or Azure
// endpoint, negative retries, Azure without api-version, WithBaseURL with
// WithAzure, WithAzureADToken without WithAzure).
func New(opts ...Option) (*Client, error) {
	hc, base, err := NewHTTPClient(opts...)
	if err != nil {
		return nil, err
	}
	c, err := gen.NewClientWithResponses(base, gen.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("assistants: new client: %w", err)
	}
	return &Client{ClientWithResponses: c}, nil
}

// NewHTTPClient returns the *http.Client that New uses and the resolved base
// URL (without a trailing slash, e.g. "https://api.openai.com/v1"), for code
// that calls endpoints itself, such as streaming, and reads the body itself.
//
// The client is a shallow copy of Options.HTTPClient (or of an empty client)
// whose Transport wraps the original one (http.DefaultTransport when nil)
// with, from the outside in: retries, header and credential injection on a
// clone of each request (credentials only when the request's scheme and host
// equal the base URL's), and the per-attempt timeout. Its CheckRedirect
// drops Authorization and api-key headers when a redirect leaves the
// original host, then defers to the original CheckRedirect (or Go's default
// limit of 10 redirects).
func NewHTTPClient(opts ...Option) (*http.Client, string, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	base, err := o.resolve(os.Getenv)
	if err != nil {
		return nil, "", err
	}
	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	next = &timeoutTransport{next: next, timeout: o.Timeout}
	next = newHeaderTransport(next, base, &o)
	hc.Transport = newRetryTransport(next, &o)
	hc.CheckRedirect = stripCredentialsOnRedirect(hc.CheckRedirect)
	return &hc, base.String(), nil
}

// resolve fills the fields left empty from the environment (looked up with
// getenv), validates the result and returns the parsed base URL.
func (o *Options) resolve(getenv func(string) string) (*url.URL, error) {
	if o.MaxRetries < 0 {
		return nil, fmt.Errorf("assistants: max retries must be >= 0, got %d", o.MaxRetries)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.sleep == nil {
		o.sleep = sleepContext
	}
	if o.jitter == nil {
		o.jitter = defaultJitter
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.Headers = o.Headers.Clone()

	if o.AzureEndpoint != "" {
		return o.resolveAzure(getenv)
	}
	if o.AzureADToken != nil {
		return nil, errors.New("assistants: WithAzureADToken needs WithAzure")
	}
	if o.APIKey == "" {
		o.APIKey = getenv("OPENAI_API_KEY")
	}
	if o.BaseURL == "" {
		o.BaseURL = getenv("OPENAI_BASE_URL")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.Organization == "" {
		o.Organization = getenv("OPENAI_ORG_ID")
	}
	if o.Project == "" {
		o.Project = getenv("OPENAI_PROJECT_ID")
	}
	base, err := parseBaseURL(o.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("assistants: base URL: %w", err)
	}
	o.BaseURL = base.String()
	return base, nil
}

// parseBaseURL parses an absolute http(s) URL with a host and strips the
// trailing slashes of its path.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, errors.New("URL must not carry user info")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.Fragment = ""
	return u, nil
}
