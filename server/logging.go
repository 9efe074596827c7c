package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// respWriter records the status and size of a response, for logging and for
// the recovery middleware (which must know whether headers went out). For
// the request log it keeps the start of a POST's reply, where the ids of
// the objects made are. A reply that is an event stream is registered with
// Shutdown (see shutdown.go), which may end it from another goroutine: its
// writes then go under mu.
type respWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool

	capture bool   // keep the reply's first captureMax bytes in head
	head    []byte //

	drain   *drainState        // nil: this reply is never tracked (not a POST)
	cancel  context.CancelFunc // cancels the request's context (wakes a stream's writer)
	stream  bool               // the reply is an event stream registered with drain
	metrics *metrics           // counts the open event streams

	mu       sync.Mutex // guards the fields below and, for a stream, the writes
	ended    bool       // Shutdown ended the stream: later writes fail
	sawDone  bool       // the stream wrote its done event
	finished bool       // the handler returned: nothing may write any more

	project string // the request's project, set by the auth middleware ("" : the default)
}

// captureMax is how much of a POST's reply the request log reads for ids.
const captureMax = 64 << 10

// errStreamEnded is what the writer of a stream that Shutdown ended gets.
var errStreamEnded = errors.New("server: event stream ended by shutdown")

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		if w.drain != nil && code == http.StatusOK && isEventStream(w.Header()) {
			w.ResponseWriter.WriteHeader(code)
			w.stream = true
			w.metrics.streamOpened()
			if !w.drain.add(w) {
				w.endStream() // Shutdown was called: no new streams
			}
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.capture && len(w.head) < captureMax {
		w.head = append(w.head, p[:min(len(p), captureMax-len(w.head))]...)
	}
	if !w.stream {
		n, err := w.ResponseWriter.Write(p)
		w.bytes += int64(n)
		return n, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return 0, errStreamEnded
	}
	if bytes.Contains(p, []byte("event: done\n")) {
		w.sawDone = true
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush passes flushes through (event streams).
func (w *respWriter) Flush() {
	if w.stream {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.ended {
			return
		}
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// endStream ends an open event stream for Shutdown: unless the stream
// already wrote its done event or its handler returned, it writes the final
// error event and flushes it; later writes fail, and the request's context
// is cancelled so that a writer waiting for the run's next event returns.
func (w *respWriter) endStream() {
	w.mu.Lock()
	if !w.ended && !w.sawDone && !w.finished {
		n, _ := w.ResponseWriter.Write(shutdownEvent)
		w.bytes += int64(n)
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
	w.ended = true
	w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
}

// finish marks the handler returned and unregisters the stream.
func (w *respWriter) finish() {
	if !w.stream {
		return
	}
	w.mu.Lock()
	w.finished = true
	w.mu.Unlock()
	w.drain.remove(w)
	w.metrics.streamClosed()
}

// sent returns the number of body bytes written.
func (w *respWriter) sent() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes
}

// Hijack passes hijacking through (dropped-connection faults).
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoveryMiddleware turns a panic in a handler into a logged 500
// server_error (when nothing was written yet) and keeps the process alive.
// http.ErrAbortHandler is passed on: it is the deliberate way to abort a
// response.
func (s *Server) recoveryMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &respWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", truncateForMessage(r.URL.Path),
				"request_id", w.Header().Get("x-request-id"), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rw.hijacked {
				return
			}
			if rw.status != 0 {
				// Headers are out; the only honest answer left is to cut the
				// response.
				panic(http.ErrAbortHandler)
			}
			writeAPIError(rw, &apiError{Status: http.StatusInternalServerError, Type: "server_error",
				Message: "The server had an error while processing your request."})
		}()
		next.ServeHTTP(rw, r)
	})
}

// loggingMiddleware logs one line per request (method, route, operation,
// status, duration, bytes, the project, the object ids, request id), counts
// it in the metrics (metrics.go) and sets the x-request-id reply header.
// Headers, and so API keys, are never logged; nor are bodies, and so
// message text, at any level: only the ids read from a reply. The project
// is the key's (set by the auth middleware), "default" with auth off.
//
// The object ids are those of the path (thread_id, run_id, assistant_id,
// ...) and, for a POST answered 2xx, those of the reply: the id of the
// object made or changed, under its kind's name (createThread logs
// thread_id, createRun run_id, createMessage message_id ...), and its
// thread_id and run_id; for an event stream, the thread and run of its
// thread.created and thread.run.created events. Only the first 64 KiB of a
// reply are read for them.
//
// It also prepares a POST for Shutdown: a reply that turns out to be an
// event stream is registered while it is open, and its context can be
// cancelled to end it.
func (s *Server) loggingMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("x-request-id", id)
		rw, ok := w.(*respWriter)
		if !ok {
			rw = &respWriter{ResponseWriter: w}
		}
		if r.Method == http.MethodPost {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			r = r.WithContext(ctx)
			rw.drain, rw.cancel, rw.metrics = &s.drain, cancel, s.metrics
			rw.capture = s.log.Enabled(ctx, slog.LevelInfo)
		}
		route, op := s.routeOf(r)
		defer func() {
			rw.finish()
			status := rw.status
			if status == 0 && !rw.hijacked {
				status = http.StatusOK
			}
			s.metrics.request(op, status, rw.hijacked, time.Since(start))
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			if !s.log.Enabled(r.Context(), level) {
				return
			}
			attrs := make([]slog.Attr, 0, 12)
			attrs = append(attrs,
				slog.String("method", r.Method),
				slog.String("route", cmp.Or(route, "unmatched")),
				slog.String("op", op),
				slog.Int("status", status),
				slog.Bool("dropped", rw.hijacked),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", rw.sent()),
			)
			attrs = append(attrs, slog.String("project", cmp.Or(rw.project, defaultProject)))
			attrs = appendObjectIDs(attrs, route, r.URL.Path, rw)
			attrs = append(attrs, slog.String("request_id", id))
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(rw, r)
	})
}

// defaultProject is the project of a request with auth off.
const defaultProject = "default"

// appendObjectIDs appends the ids of the path (by the route's parameter
// names) and of the reply's objects, each key once.
func appendObjectIDs(attrs []slog.Attr, route, path string, rw *respWriter) []slog.Attr {
	seen := map[string]bool{}
	add := func(key, v string) {
		if v == "" || seen[key] {
			return
		}
		seen[key] = true
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		attrs = append(attrs, slog.String(key, v))
	}
	if _, pat, ok := strings.Cut(route, " "); ok {
		ps, vs := strings.Split(pat, "/"), strings.Split(path, "/")
		for i, p := range ps {
			if i < len(vs) && strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				add(strings.Trim(p, "{}."), vs[i])
			}
		}
	}
	if rw.capture && rw.status >= 200 && rw.status < 300 && len(rw.head) > 0 {
		if rw.stream || isEventStream(rw.Header()) {
			streamIDs(rw.head, add)
		} else {
			replyIDs(rw.head, add)
		}
	}
	return attrs
}

// idKeys names the id of a reply object in the request log, by its
// "object" field.
var idKeys = map[string]string{
	"assistant":               "assistant_id",
	"thread":                  "thread_id",
	"thread.message":          "message_id",
	"thread.run":              "run_id",
	"thread.run.step":         "step_id",
	"file":                    "file_id",
	"vector_store":            "vector_store_id",
	"vector_store.file":       "file_id",
	"vector_store.file_batch": "batch_id",
}

// replyIDs reads the top-level id, object, thread_id and run_id of a JSON
// object (maybe cut short) and passes them to add.
func replyIDs(data []byte, add func(key, v string)) {
	var id, object, thread, run string
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := t.(string)
		if key == "id" || key == "object" || key == "thread_id" || key == "run_id" {
			v, err := dec.Token()
			if err != nil {
				break
			}
			if _, nested := v.(json.Delim); nested {
				break
			}
			s, _ := v.(string)
			switch key {
			case "id":
				id = s
			case "object":
				object = s
			case "thread_id":
				thread = s
			case "run_id":
				run = s
			}
			continue
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			break
		}
	}
	if k, ok := idKeys[object]; ok {
		add(k, id)
	} else if !strings.HasSuffix(object, ".deleted") {
		add("object_id", id)
	}
	add("thread_id", thread)
	add("run_id", run)
}

// streamIDs reads the ids of the thread.created and thread.run.created
// events at the start of an event stream.
func streamIDs(data []byte, add func(key, v string)) {
	for block := range bytes.SplitSeq(data, []byte("\n\n")) {
		name, payload := "", []byte(nil)
		for line := range bytes.SplitSeq(block, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("event: ")); ok {
				name = string(v)
			} else if v, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				payload = v
			}
		}
		switch name {
		case "thread.created":
			replyIDs(payload, add)
		case "thread.run.created":
			replyIDs(payload, add)
			return
		}
	}
}

// newRequestID returns "req_" and 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}
