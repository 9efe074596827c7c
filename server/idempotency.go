package server

import (
	"bufio"
	"bytes"
	"container/list"
	"crypto/sha256"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Idempotency keys.
//
// A POST with an Idempotency-Key header is remembered for
// Options.IdempotencyTTL after it completes: the same key with the same
// request (method, path and body) is answered with the first response
// (status, headers and body, plus "Idempotent-Replayed: true") without doing
// the work again. A request whose key is in flight waits for the first one.
// The same key with another request is a 409 (code idempotency_key_reused).
//
// Event streams are not cached: once the first request has started
// streaming, a repeat with its key gets a 409 (code
// idempotency_key_stream_in_use) instead of a second run; the run can be
// fetched with the run endpoints. 5xx answers, 409s and 429s are not
// remembered, so a retry does the work again.
//
// Keys are scoped per credential. At most maxIdempotencyKeys keys are kept;
// beyond that the oldest are forgotten first.

const (
	maxIdempotencyKeys   = 10000
	maxIdempotencyKeyLen = 255
	// maxIdempotencyBody bounds the response body kept for a replay; a
	// larger response is not remembered.
	maxIdempotencyBody = 1 << 20
)

// idemStore remembers recent idempotent requests. Its zero value is not
// usable; see newIdemStore.
type idemStore struct {
	mu    sync.Mutex
	m     map[string]*idemEntry
	order *list.List // of *idemEntry, oldest first
	ttl   time.Duration
	now   func() time.Time
	max   int
}

type idemEntry struct {
	key         string
	fingerprint [32]byte
	elem        *list.Element
	decided     chan struct{} // closed once the outcome below is known
	// Set before decided is closed:
	stream  bool // the first response is an event stream (not replayable)
	gone    bool // the first request did not produce a rememberable answer
	status  int
	header  http.Header
	body    []byte
	expires time.Time
}

func newIdemStore(ttl time.Duration, now func() time.Time) *idemStore {
	return &idemStore{m: map[string]*idemEntry{}, order: list.New(), ttl: ttl, now: now, max: maxIdempotencyKeys}
}

// idempotencyMiddleware implements idempotency keys (see above).
func (s *Server) idempotencyMiddleware(next http.Handler) http.Handler {
	st := newIdemStore(s.opts.IdempotencyTTL, s.opts.Now)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if r.Method != http.MethodPost || key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > maxIdempotencyKeyLen {
			writeAPIError(w, errBadRequest("Idempotency-Key", "Invalid 'Idempotency-Key' header: at most %d characters.", maxIdempotencyKeyLen))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeAPIError(w, errTooLarge(mbe.Limit))
				return
			}
			writeAPIError(w, errBadRequest("", "Could not read the request body."))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.New()
		h.Write([]byte(r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + "\n"))
		h.Write(body)
		var fp [32]byte
		copy(fp[:], h.Sum(nil))
		cred, _ := credential(r)
		credSum := sha256.Sum256([]byte(cred))
		mapKey := string(credSum[:8]) + key

		for {
			e, first := st.claim(mapKey, fp)
			if first {
				s.serveFirst(st, e, next, w, r)
				return
			}
			if e.fingerprint != fp {
				writeAPIError(w, errConflict("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", truncateForMessage(key)))
				return
			}
			select {
			case <-e.decided:
			case <-r.Context().Done():
				return
			}
			switch {
			case e.stream:
				ae := errConflict("The request with this Idempotency-Key is being or was answered with an event stream, which cannot be replayed. Fetch the run it created instead.")
				ae.Code = "idempotency_key_stream_in_use"
				writeAPIError(w, ae)
				return
			case e.gone:
				continue // the first attempt failed; try to do the work now
			}
			for k, v := range e.header {
				w.Header()[k] = slices.Clone(v)
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(e.status)
			_, _ = w.Write(e.body)
			return
		}
	})
}

// claim returns the live entry for key, or creates one and reports that the
// caller is the first and must do the work.
func (st *idemStore) claim(key string, fp [32]byte) (*idemEntry, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	if e, ok := st.m[key]; ok {
		expired := false
		select {
		case <-e.decided:
			expired = e.gone || (!e.expires.IsZero() && now.After(e.expires))
		default:
		}
		if !expired {
			return e, false
		}
		st.removeLocked(e)
	}
	for len(st.m) >= st.max {
		st.removeLocked(st.order.Front().Value.(*idemEntry))
	}
	e := &idemEntry{key: key, fingerprint: fp, decided: make(chan struct{})}
	e.elem = st.order.PushBack(e)
	st.m[key] = e
	return e, true
}

func (st *idemStore) removeLocked(e *idemEntry) {
	if st.m[e.key] == e {
		delete(st.m, e.key)
	}
	if e.elem != nil {
		st.order.Remove(e.elem)
		e.elem = nil
	}
}

// serveFirst runs the request and records its answer in e.
func (s *Server) serveFirst(st *idemStore, e *idemEntry, next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := &idemRecorder{ResponseWriter: w, e: e}
	defer func() {
		// Also runs on panic: waiting requests must never hang.
		st.mu.Lock()
		defer st.mu.Unlock()
		if rec.closed { // a stream: remembered only to refuse repeats
			e.expires = st.now().Add(st.ttl)
			return
		}
		{
			switch {
			case rec.status == 0 || rec.status >= 500 || rec.status == http.StatusConflict || rec.status == http.StatusTooManyRequests || rec.overflow || rec.hijacked:
				e.gone = true
				st.removeLocked(e)
			default:
				e.status = rec.status
				e.header = w.Header().Clone()
				e.header.Del("Date")
				e.header.Del("X-Request-Id") // a replay keeps its own request id
				e.body = rec.body.Bytes()
				e.expires = st.now().Add(st.ttl)
			}
			close(e.decided)
		}
	}()
	next.ServeHTTP(rec, r)
}

// idemRecorder passes a response through and keeps a copy for replays. When
// the response turns out to be an event stream it stops copying and tells
// waiting requests at once.
type idemRecorder struct {
	http.ResponseWriter
	e        *idemEntry
	status   int
	body     bytes.Buffer
	overflow bool
	hijacked bool
	closed   bool // e.decided already closed (stream)
}

func (rec *idemRecorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if strings.EqualFold(mt, "text/event-stream") && !rec.closed {
			rec.e.stream = true
			rec.closed = true
			close(rec.e.decided)
		}
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *idemRecorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if !rec.closed && !rec.overflow {
		if rec.body.Len()+len(p) > maxIdempotencyBody {
			rec.overflow = true
			rec.body = bytes.Buffer{}
		} else {
			rec.body.Write(p)
		}
	}
	return rec.ResponseWriter.Write(p)
}

// Flush passes flushes through (event streams).
func (rec *idemRecorder) Flush() { _ = http.NewResponseController(rec.ResponseWriter).Flush() }

// Hijack passes hijacking through; a hijacked response is not remembered.
func (rec *idemRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err == nil {
		rec.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (rec *idemRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }
