package assistantstest

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/server"
)

// InProcessURL is the base URL of servers from NewInProcessServer. Nothing
// listens there: requests go straight to the handler.
const InProcessURL = "http://assistantstest.in-process/v1"

// NewInProcessServer is NewServer without a network: Client (and clients
// from NewClient) call the server's handler directly, each request in its
// own goroutine with the response body streamed through a pipe, so event
// streams arrive live. HTTP is nil and URL is InProcessURL.
//
// Because no sockets are involved, it works inside a testing/synctest
// bubble: create it inside synctest.Test and the server's background work
// (run steps, vector store processing) follows the bubble's fake clock.
// Dropped-connection faults make the request fail with an error.
func NewInProcessServer(t testing.TB, opts ...server.Option) *Server {
	t.Helper()
	s, err := startInProcess(func(msg string) { t.Errorf("%s", msg) }, opts)
	if err != nil {
		t.Fatalf("assistantstest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func startInProcess(report func(string), opts []server.Option) (*Server, error) {
	srv, h, apiKey, validating, err := build(report, opts)
	if err != nil {
		return nil, err
	}
	s := &Server{Server: srv, APIKey: apiKey, URL: InProcessURL, handler: h, validating: validating}
	c, err := s.NewClient()
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.Client = c
	return s, nil
}

// Transport returns an http.RoundTripper that serves every request with
// this server's handler (response validation included), whatever its host.
func (s *Server) Transport() http.RoundTripper { return handlerTransport{h: s.handler} }

// errDropped is the error of a request whose connection the server dropped.
var errDropped = errors.New("assistantstest: connection dropped by the server")

// handlerTransport runs a handler for each request.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sreq := req.Clone(req.Context())
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:1"
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				w.fail(errDropped)
				return
			}
			w.finish()
		}()
		t.h.ServeHTTP(w, sreq)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		_ = pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	if w.err != nil {
		_ = pr.Close()
		return nil, w.err
	}
	resp := &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	return resp, nil
}

// pipeWriter is the ResponseWriter of an in-process request: headers are
// handed over at WriteHeader, the body goes through a pipe.
type pipeWriter struct {
	header http.Header
	sent   http.Header
	pw     *io.PipeWriter
	status int
	once   sync.Once
	ready  chan struct{}
	err    error // set before ready is closed, when the request failed
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	if code < 200 {
		return // informational answers are not passed on
	}
	w.once.Do(func() {
		w.status = code
		w.sent = w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: writes reach the reader as they happen.
func (w *pipeWriter) Flush() {}

func (w *pipeWriter) finish() {
	w.WriteHeader(http.StatusOK)
	_ = w.pw.Close()
}

func (w *pipeWriter) fail(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.ready)
	})
	_ = w.pw.CloseWithError(err)
}

// inProcessClientOptions are the client options of an in-process server.
func (s *Server) inProcessClientOptions() []assistants.Option {
	return []assistants.Option{assistants.WithHTTPClient(&http.Client{Transport: s.Transport()})}
}
