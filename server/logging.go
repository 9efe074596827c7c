package server

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// respWriter records the status and size of a response, for logging and for
// the recovery middleware (which must know whether headers went out).
type respWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush passes flushes through (event streams).
func (w *respWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

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
// status, duration, bytes, request id) and sets the x-request-id reply
// header. Headers, and so API keys, are never logged.
func (s *Server) loggingMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("x-request-id", id)
		rw, ok := w.(*respWriter)
		if !ok {
			rw = &respWriter{ResponseWriter: w}
		}
		route, op := s.routeOf(r)
		defer func() {
			status := rw.status
			if status == 0 && !rw.hijacked {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			if route == "" {
				route = "unmatched"
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("op", op),
				slog.Int("status", status),
				slog.Bool("dropped", rw.hijacked),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", rw.bytes),
				slog.String("request_id", id),
			)
		}()
		next.ServeHTTP(rw, r)
	})
}

// newRequestID returns "req_" and 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}
