// Package assistantstest runs the embedded Assistants v2 server (package
// server) for tests and hands out a generated client configured for it.
//
// NewServer starts the server on an httptest.Server, returns its base URL
// (ending in /v1), the server and a ready client, and closes everything when
// the test ends. Every response the server sends through it is checked
// against the project's OpenAPI spec with kin-openapi; a response that does
// not match fails the test with the operation and the mismatch. Server-sent
// event streams are checked event by event against the spec's
// AssistantStreamEvent schema. Turn the checks off with
// WithoutResponseValidation, e.g. for fault-injection tests.
//
// NewInProcessServer does the same without sockets: the client calls the
// handler directly, so it works inside a testing/synctest bubble, where the
// server's step delays pass on the fake clock.
//
// Outside a test (examples, TestMain, tools), Start and Close do what
// NewServer does and Close returns the mismatches as an error.
package assistantstest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/server"
)

// DefaultAPIKey is the key the client sends when the server has no keys
// configured (auth off). It is never checked in that case.
const DefaultAPIKey = "sk-assistantstest"

// Server is a running embedded server and a client configured for it.
type Server struct {
	// URL is the base URL of the API, e.g. "http://127.0.0.1:41234/v1".
	URL string
	// APIKey is the key Client sends: the server's first configured key, or
	// DefaultAPIKey when auth is off.
	APIKey string
	// Client is the client assistants.New builds, with WithBaseURL(URL),
	// WithAPIKey(APIKey) and zero retries, so that a test sees each response
	// the server gives: typed calls (Client.GetRun) and, through the embedded
	// *gen.ClientWithResponses, the raw replies (Client.GetRunWithResponse).
	Client *assistants.Client
	// Server is the embedded server, for options and direct inspection.
	Server *server.Server
	// HTTP is the underlying httptest server (nil for NewInProcessServer).
	HTTP *httptest.Server

	handler    http.Handler // the server's handler as served (validation included)
	validating bool         // responses are checked against the spec
	mu         sync.Mutex
	mismatches []error
	closeOnce  sync.Once
}

// WithoutResponseValidation returns an option for NewServer and Start that
// turns off the check of responses against the spec (default: on). Use it
// for tests that inject faults, whose answers (dropped connections, cut
// streams) are not part of the spec. Passed to server.New directly it does
// nothing.
func WithoutResponseValidation() server.Option { return noResponseValidation }

// noResponseValidation is the marker option; NewServer recognizes it by
// identity and server.New ignores it.
func noResponseValidation(*server.Options) {}

func isNoValidation(o server.Option) bool {
	return o != nil && reflect.ValueOf(o).Pointer() == reflect.ValueOf(noResponseValidation).Pointer()
}

// NewServer starts a server built with server.New(opts...) on an
// httptest.Server and returns it with a configured client. Everything is
// closed with t.Cleanup: the server (its runs and background work) first,
// then the HTTP server. Responses are validated against the spec unless
// WithoutResponseValidation is among opts; each mismatch is reported with
// t.Errorf naming the method, path, status and operation.
func NewServer(t testing.TB, opts ...server.Option) *Server {
	t.Helper()
	s, err := start(func(msg string) { t.Errorf("%s", msg) }, opts)
	if err != nil {
		t.Fatalf("assistantstest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Start is NewServer for code without a testing.TB. Mismatches between the
// responses and the spec are collected and returned by Close. The caller
// must call Close.
func Start(opts ...server.Option) (*Server, error) {
	var s *Server
	s, err := start(func(msg string) {
		s.mu.Lock()
		s.mismatches = append(s.mismatches, errors.New(msg))
		s.mu.Unlock()
	}, opts)
	return s, err
}

func start(report func(string), opts []server.Option) (*Server, error) {
	srv, h, apiKey, validating, err := build(report, opts)
	if err != nil {
		return nil, err
	}
	s := &Server{Server: srv, APIKey: apiKey, handler: h, validating: validating}
	s.HTTP = httptest.NewServer(h)
	s.URL = strings.TrimSuffix(s.HTTP.URL, "/") + "/v1"
	c, err := s.NewClient()
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.Client = c
	return s, nil
}

// build creates the server and its handler (wrapped in the response
// validator unless opts turn it off) and picks the client's key.
func build(report func(string), opts []server.Option) (srv *server.Server, h http.Handler, apiKey string, validate bool, err error) {
	validate = true
	var sopts []server.Option
	for _, o := range opts {
		if isNoValidation(o) {
			validate = false
			continue
		}
		sopts = append(sopts, o)
	}
	var o server.Options
	for _, opt := range sopts {
		if opt != nil {
			opt(&o)
		}
	}
	apiKey = DefaultAPIKey
	if len(o.APIKeys) > 0 {
		apiKey = o.APIKeys[0]
	}
	srv = server.New(sopts...)
	h = srv.Handler()
	if validate {
		v, err := newValidator(report)
		if err != nil {
			_ = srv.Close()
			return nil, nil, "", false, err
		}
		h = v.wrap(h)
	}
	return srv, h, apiKey, validate, nil
}

// Close stops the server (its runs and background work), then the HTTP
// server. It returns the responses that did not match the spec, if any
// (always nil for a server from NewServer, which reports them on t). It is
// safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		_ = s.Server.Close()
		if s.HTTP != nil {
			s.HTTP.Close()
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.mismatches...)
}

// NewClient returns another client for this server, configured
// like Client (base URL, APIKey, no retries) with opts applied after those,
// so they can override them (e.g. assistants.WithAPIKey("wrong")).
func (s *Server) NewClient(opts ...assistants.Option) (*assistants.Client, error) {
	base := []assistants.Option{
		assistants.WithBaseURL(s.URL),
		assistants.WithAPIKey(s.APIKey),
		assistants.WithMaxRetries(0),
	}
	if s.HTTP != nil {
		base = append(base, assistants.WithHTTPClient(s.HTTP.Client()))
	} else {
		base = append(base, s.inProcessClientOptions()...)
	}
	return assistants.New(append(base, opts...)...)
}
