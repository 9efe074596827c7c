package server

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants/server/store"
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
// What is remembered is the handler's whole reply, not what reached the
// client: when the connection fails mid-reply (the client reset it, a proxy
// cut the body), the handler still finishes writing into the record and the
// entry is kept, so the client's retry with the same key gets the complete
// reply. The other choice, forgetting such an entry, would let the retry do
// the work a second time: a second message, a second run. Once headers are
// out nothing else is written on the connection (see writeError).
//
// Event streams are not replayed byte for byte: a repeat of a streamed
// createRun, createThreadAndRun or submitToolOuputsToRun with its key is
// reattached to the same run's events (see Server.reattach): from the start
// of the first stream, or after the event the client names in the standard
// Last-Event-ID header (each event carries its per-run id). No second run is
// made. 5xx answers, 409s and 429s are not remembered, so a retry does the
// work again.
//
// Multipart uploads are not held in memory for this: the first request's
// body is hashed as the handler reads it, and a repeat's body is hashed
// (read and discarded) only when there is a remembered reply to compare it
// with. A keyed upload's claim names its file before the bytes are stored
// (see runIntent): a repeat that finds the claim of a claimant that died
// compares its own upload with that file when it exists (sameUpload:
// bytes, name, type, purpose and expiry; the claim holds no fingerprint of
// the first body, which is hashed only as it is read).
//
// Memory is bounded: an entry is forgotten Options.IdempotencyTTL after its
// reply (expired entries are swept on every keyed request), and the
// remembered replies together stay under Options.IdempotencyMaxBytes
// (default 64 MiB; the oldest are forgotten first), with at most
// maxIdempotencyKeys keys. Keys are scoped per API key, by the key's id
// (idemScope), never by the key itself.

const (
	maxIdempotencyKeys   = 10000
	maxIdempotencyKeyLen = 255
	// maxIdempotencyBody bounds the response body kept for a replay; a
	// larger response is not remembered.
	maxIdempotencyBody = 1 << 20
	// DefaultIdempotencyMaxBytes is the default of Options.IdempotencyMaxBytes.
	DefaultIdempotencyMaxBytes = 64 << 20
	// idemEntryOverhead is what an entry costs besides its body and
	// headers (map slot, list element, struct), for the byte budget.
	idemEntryOverhead = 256
)

// WithIdempotencyMaxBytes bounds the memory of remembered replies (default
// DefaultIdempotencyMaxBytes, 64 MiB).
func WithIdempotencyMaxBytes(n int64) Option {
	return func(o *Options) { o.IdempotencyMaxBytes = n }
}

// idemStore remembers recent idempotent requests. Its zero value is not
// usable; see newIdemStore.
type idemStore struct {
	mu       sync.Mutex
	m        map[string]*idemEntry
	order    *list.List // of *idemEntry with an answer, in the order answered (oldest first)
	ttl      time.Duration
	now      func() time.Time
	max      int   // keys
	maxBytes int64 // bytes of the answered entries
	bytes    int64
}

type idemEntry struct {
	key         string
	fingerprint [32]byte
	lazyFP      bool          // multipart: fingerprint known once decided (see serveFirst)
	elem        *list.Element // in idemStore.order once answered
	size        int64         // bytes counted in idemStore.bytes
	decided     chan struct{} // closed once the outcome below is known
	// Set before decided is closed:
	stream  bool // the first response is an event stream (see runID)
	gone    bool // the first request did not produce a rememberable answer
	status  int
	header  http.Header
	body    []byte
	expires time.Time
	// A stream's run and where the first stream began (see
	// engine.resubscribe), and the events written before the run's own
	// (thread.created).
	runID string
	from  int
	first []sseEvent
}

func newIdemStore(ttl time.Duration, now func() time.Time, maxBytes int64) *idemStore {
	if maxBytes <= 0 {
		maxBytes = DefaultIdempotencyMaxBytes
	}
	return &idemStore{m: map[string]*idemEntry{}, order: list.New(), ttl: ttl, now: now,
		max: maxIdempotencyKeys, maxBytes: maxBytes}
}

// idemScope returns the 8 bytes that scope an Idempotency-Key to the
// request's API key: the SHA-256 of the key's id ("key_..." for a store
// key, "static:N" for the Nth of Options.APIKeys, "" with auth off), never
// of the key itself, so a copy of the store (which keeps the scope in
// each record's key, see sharedKey) cannot check a guessed key.
func idemScope(ctx context.Context) string {
	p, _ := principalOf(ctx) // auth runs before idempotency (handler.go)
	sum := sha256.Sum256([]byte(p.keyID))
	return string(sum[:8])
}

// idempotencyMiddleware implements idempotency keys (see above).
func (s *Server) idempotencyMiddleware(next http.Handler) http.Handler {
	if s.opts.DisableIdempotency {
		return next
	}
	st := newIdemStore(s.opts.IdempotencyTTL, s.opts.Now, s.opts.IdempotencyMaxBytes)
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
		lazy := isMultipart(r)
		var fp [32]byte
		var body []byte
		if !lazy {
			var err error
			body, err = io.ReadAll(r.Body)
			if err != nil {
				writeAPIError(w, bodyReadError(err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			h := requestHash(r)
			h.Write(body)
			h.Sum(fp[:0])
		}
		mapKey := idemScope(r.Context()) + key

		bodyHashed := false // multipart: r.Body was consumed to compute fp
		var prev *runIntent // an upload's lapsed claim, found by answerShared
		for {
			e, first := st.claim(mapKey, fp, lazy)
			if first {
				if bodyHashed {
					// The entry we compared with was forgotten meanwhile and
					// this request's body is gone: let the client retry.
					st.abandon(e)
					writeAPIError(w, errIdemRetry())
					return
				}
				// The key may be known to the store: another replica, or
				// this process before a restart, took it.
				intent := intentFor(r, body) // idemshared.go
				if intent != nil && intent.Object == intentFile {
					intent.Prev = prev.files()
				}
				shared, hold, err := s.claimShared(r.Context(), mapKey, w.Header().Get("X-Request-Id"), fp, lazy, intent)
				if err != nil || hold != nil {
					h := next
					if err != nil {
						s.log.Warn("idempotency: the store did not answer; the key is kept in this process only", "err", err.Error())
					} else if intent != nil && intent.Calls == nil {
						r = r.WithContext(context.WithValue(r.Context(), runIntentKey{}, intent))
						if f, ok := s.lapsedUpload(r.Context(), intent, shared); ok {
							h = s.replayUpload(key, f, next)
						} else if !lazy {
							h = s.lapsedCreate(key, shared, fp, intent, next)
						}
					}
					s.serveFirst(st, e, h, w, r, hold)
					return
				}
				st.abandon(e)
				if done := s.answerShared(w, r, key, shared, lazy, &fp, &bodyHashed, &prev); done {
					return
				}
				continue
			}
			if lazy != e.lazyFP || !lazy && e.fingerprint != fp {
				writeAPIError(w, errKeyReused(key))
				return
			}
			select {
			case <-e.decided:
			case <-r.Context().Done():
				return
			}
			if e.gone {
				continue // the first attempt failed; try to do the work now
			}
			if lazy {
				if !bodyHashed {
					h := requestHash(r)
					if _, err := io.Copy(h, r.Body); err != nil {
						writeAPIError(w, bodyReadError(err))
						return
					}
					h.Sum(fp[:0])
					bodyHashed = true
				}
				if e.fingerprint != fp {
					writeAPIError(w, errKeyReused(key))
					return
				}
			}
			if e.stream {
				s.reattach(w, r, e)
				return
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

// requestHash starts a request's fingerprint: method, path and query (the
// body follows).
func requestHash(r *http.Request) hash.Hash {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + "\n"))
	return h
}

func bodyReadError(err error) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	return errBadRequest("", "Could not read the request body.")
}

func errKeyReused(key string) *apiError {
	return errConflict("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", truncateForMessage(key))
}

// errIdemRetry is a 409 the client retries (our SDK retries 409s): the
// request could not be matched with its key's first request this time.
func errIdemRetry() *apiError {
	ae := errConflict("A request with this Idempotency-Key changed state while this one was checked. Retry the request.")
	ae.Code = "idempotency_key_in_flux"
	return ae
}

// reattach answers a repeat of a streamed request (e.stream) with the same
// run's events: all of them from where the first stream began, or those
// after the Last-Event-ID the client names. When reattaching is switched
// off (Options.DisableStreamReattach) or the run is unknown, it answers 409
// idempotency_key_stream_in_use as older versions did.
func (s *Server) reattach(w http.ResponseWriter, r *http.Request, e *idemEntry) {
	if s.opts.DisableStreamReattach || e.runID == "" {
		ae := errConflict("The request with this Idempotency-Key is being or was answered with an event stream, which cannot be replayed. Fetch the run it created instead.")
		ae.Code = "idempotency_key_stream_in_use"
		writeAPIError(w, ae)
		return
	}
	last := -1
	if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeAPIError(w, errBadRequest("Last-Event-ID", "Invalid 'Last-Event-ID' header: expected the id of an event of this stream (a non-negative integer)."))
			return
		}
		last = n
	}
	sub, err := s.eng.resubscribe(e.runID, e.from, last)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			// The run's events could not be read: the client retries.
			s.log.Warn("idempotency: a stream could not be reattached", "run", e.runID, "err", err.Error())
			ae = errIdemRetry()
		}
		writeAPIError(w, ae)
		return
	}
	var first []sseEvent
	if last < 0 {
		first = e.first
	}
	w.Header().Set("Idempotent-Replayed", "true")
	_ = runStream{e: s.eng, runID: e.runID, sub: sub, first: first, stop: r.Context().Done(),
		cut: streamCutFrom(r.Context())}.write(w)
}

// claim returns the live entry for key, or creates one and reports that the
// caller is the first and must do the work. It also sweeps expired entries.
func (st *idemStore) claim(key string, fp [32]byte, lazy bool) (*idemEntry, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	st.sweepLocked(now)
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
	for len(st.m) >= st.max && st.order.Len() > 0 {
		st.removeLocked(st.order.Front().Value.(*idemEntry))
	}
	e := &idemEntry{key: key, fingerprint: fp, lazyFP: lazy, decided: make(chan struct{})}
	st.m[key] = e
	return e, true
}

// sweepLocked forgets the answered entries whose time is up. Entries are
// answered in order and share one TTL, so the expired ones are at the front.
func (st *idemStore) sweepLocked(now time.Time) {
	for f := st.order.Front(); f != nil; f = st.order.Front() {
		e := f.Value.(*idemEntry)
		if e.expires.IsZero() || !now.After(e.expires) {
			return
		}
		st.removeLocked(e)
	}
}

// rememberLocked records that e has its answer (size bytes) and keeps the
// answered entries within the byte budget, forgetting the oldest first.
func (st *idemStore) rememberLocked(e *idemEntry, size int64) {
	e.expires = st.now().Add(st.ttl)
	e.size = size
	st.bytes += size
	e.elem = st.order.PushBack(e)
	for st.bytes > st.maxBytes && st.order.Len() > 0 {
		st.removeLocked(st.order.Front().Value.(*idemEntry))
	}
}

// abandon forgets e, which its claimer will not serve.
func (st *idemStore) abandon(e *idemEntry) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e.gone = true
	st.removeLocked(e)
	close(e.decided)
}

func (st *idemStore) removeLocked(e *idemEntry) {
	if st.m[e.key] == e {
		delete(st.m, e.key)
	}
	if e.elem != nil {
		st.order.Remove(e.elem)
		e.elem = nil
		st.bytes -= e.size
		e.size = 0
	}
}

// entrySize is what a remembered reply costs in the byte budget.
func entrySize(e *idemEntry) int64 {
	n := int64(idemEntryOverhead + len(e.key) + len(e.body))
	for k, vs := range e.header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
	}
	for _, ev := range e.first {
		n += int64(len(ev.name) + len(ev.data))
	}
	return n + int64(len(e.runID))
}

// serveFirst runs the request and records its answer in e and, when the
// key is claimed in the store (hold, which ends the claim's heartbeat, is
// not nil), in the store.
//
// When the claim was lost while the request ran (no renewal reached the
// store for a whole lease, and another request claimed the key: see
// claimLease), the request's reply still goes to its client (the work was
// done), but it is not recorded: the store keeps the claim, and then the
// answer, of the request that took the key over, and this process forgets
// the key (its repeats are answered from the store), so every repeat gets
// the one recorded answer.
func (s *Server) serveFirst(st *idemStore, e *idemEntry, next http.Handler, w http.ResponseWriter, r *http.Request, hold func() claimLease) {
	shared := hold != nil
	// The request's id (set by loggingMiddleware), for warnings.
	reqID := w.Header().Get("X-Request-Id")
	kept := true // false when the store's record is no longer this request's
	rec := &idemRecorder{ResponseWriter: w, e: e}
	if shared {
		rec.onStream = func() {
			// The record stops being a claim: nothing to renew.
			kept = s.completeShared(e, reqID, hold(), store.IdemStream, 0, nil, nil)
		}
	}
	var tee *hashingBody
	if e.lazyFP {
		tee = &hashingBody{ReadCloser: r.Body, h: requestHash(r)}
		r.Body = tee
	}
	served := false
	defer func() {
		// Also runs on panic: waiting requests must never hang.
		rememberable := served && rec.status != 0 && rec.status < 500 && rec.status != http.StatusConflict &&
			rec.status != http.StatusTooManyRequests && !rec.overflow && !rec.hijacked
		var fp [32]byte
		if rememberable && tee != nil && !rec.closed {
			// The fingerprint covers the whole body: read what the handler
			// left (bounded by the body limit).
			if _, err := io.Copy(io.Discard, tee); err != nil {
				rememberable = false
			} else {
				tee.h.Sum(fp[:0])
			}
		}
		var lease claimLease
		if shared {
			// Also on panic: the heartbeat never outlives the request. Before
			// the answer (or the claim's removal) is written.
			lease = hold()
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if rec.closed { // a stream: remembered to reattach repeats to its run
			if kept {
				st.rememberLocked(e, entrySize(e))
			} else {
				st.removeLocked(e) // repeats go to the store's record
			}
			return
		}
		if tee != nil {
			e.fingerprint = fp
		}
		if !rememberable {
			e.gone = true
			st.removeLocked(e)
			if shared {
				s.forgetShared(e.key, reqID, lease, intentFrom(r.Context()))
			}
		} else {
			e.status = rec.status
			e.header = w.Header().Clone()
			e.header.Del("Date")
			e.header.Del("X-Request-Id") // a replay keeps its own request id
			e.body = rec.body.Bytes()
			if !shared || s.completeShared(e, reqID, lease, store.IdemDone, e.status, e.header, e.body) {
				st.rememberLocked(e, entrySize(e))
			} else {
				// Lost to another request: waiting repeats try again and
				// are answered from the store.
				e.gone = true
				st.removeLocked(e)
			}
		}
		close(e.decided)
	}()
	next.ServeHTTP(rec, r)
	served = true // not reached when the handler panicked: its work may be half done
}

// hashingBody hashes a request body as it is read.
type hashingBody struct {
	io.ReadCloser
	h hash.Hash
}

func (b *hashingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	return n, err
}

// idemRecorder passes a response through and keeps a copy for replays. When
// the response turns out to be an event stream it stops copying, notes the
// stream's run (see noteStream) and tells waiting requests at once.
//
// When writing to the client fails, the recorder keeps taking the handler's
// writes (and reports success to it), so that the entry holds the whole
// reply (see the package comment above); nothing more is sent on the
// broken connection.
type idemRecorder struct {
	http.ResponseWriter
	e        *idemEntry
	status   int
	body     bytes.Buffer
	overflow bool
	hijacked bool
	closed   bool   // e.decided already closed (stream)
	broken   bool   // a write to the client failed
	onStream func() // called when the reply turns out to be a stream (the store's record)
}

func (rec *idemRecorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if strings.EqualFold(mt, "text/event-stream") && !rec.closed {
			rec.e.stream = true
			rec.closed = true
			if rec.onStream != nil {
				rec.onStream() // before the headers: a repeat on another replica can reattach
			}
			close(rec.e.decided)
		}
	}
	rec.ResponseWriter.WriteHeader(code)
}

// headersSent reports that the reply's headers went out (see writeError).
func (rec *idemRecorder) headersSent() bool { return rec.status != 0 }

func (rec *idemRecorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.closed {
		return rec.ResponseWriter.Write(p) // a stream: its writer must see failures
	}
	if !rec.overflow {
		if rec.body.Len()+len(p) > maxIdempotencyBody {
			rec.overflow = true
			rec.body = bytes.Buffer{}
		} else {
			rec.body.Write(p)
		}
	}
	if rec.broken {
		if rec.overflow {
			return 0, errReplyBroken
		}
		return len(p), nil
	}
	n, err := rec.ResponseWriter.Write(p)
	if err != nil {
		rec.broken = true
		if rec.overflow {
			return n, err // not remembered anyway: let the handler stop
		}
		return len(p), nil
	}
	return n, nil
}

// errReplyBroken is returned to a handler whose client connection failed.
var errReplyBroken = errors.New("server: the client connection failed mid-reply")

// noteStream tells the idempotency recorder under w, if any, which run a
// stream about to start belongs to, where it begins (the id of the last
// event before it) and what it sends before the run's events, so that a
// repeat of the request can be reattached (see Server.reattach). It must be
// called before the stream's headers are written.
func noteStream(w http.ResponseWriter, runID string, from int, first []sseEvent) {
	for w != nil {
		if rec, ok := w.(*idemRecorder); ok {
			if !rec.closed {
				rec.e.runID, rec.e.from, rec.e.first = runID, from, first
			}
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// Flush passes flushes through (event streams).
func (rec *idemRecorder) Flush() {
	if !rec.broken {
		_ = http.NewResponseController(rec.ResponseWriter).Flush()
	}
}

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
