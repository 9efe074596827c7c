package server

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"strings"
)

// afterFault is a fault that strikes once the work is done or under way, so
// that only idempotent retries (and, for streams, reattaching) can hide it.
type afterFault int

const (
	faultNone      afterFault = iota
	faultDropAfter            // serve, then drop the reply
	faultCutBody              // serve, then cut the reply mid-body
	faultReset                // reset the connection while the handler runs
)

// serveWithFault serves r through next and applies d's post-handler fault.
func (s *Server) serveWithFault(w http.ResponseWriter, r *http.Request, next http.Handler, d faultDecision) {
	switch d.after {
	case faultDropAfter:
		fw := &faultWriter{ResponseWriter: w, mode: faultDropAfter}
		next.ServeHTTP(fw, r)
		dropConnection(w) // nothing was sent
	case faultCutBody:
		fw := &faultWriter{ResponseWriter: w, mode: faultCutBody, cutEvents: d.bodyCut}
		next.ServeHTTP(fw, r)
		fw.finish()
	case faultReset:
		s.serveReset(w, r, next)
	default:
		next.ServeHTTP(w, r)
	}
}

// serveReset closes the client's connection, then runs the handler with a
// cancelled context and a reply that cannot be written: the client saw the
// connection reset while its request was being handled.
func (s *Server) serveReset(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if isMultipart(r) {
		next.ServeHTTP(w, r)
		return
	}
	// After Hijack the request body must not be read: take it first.
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
	if err != nil {
		dropConnection(w)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	conn, _, herr := http.NewResponseController(w).Hijack()
	if herr == nil {
		_ = conn.Close()
	}
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	next.ServeHTTP(&deadWriter{h: http.Header{}}, r.WithContext(ctx))
	if herr != nil {
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream now
	}
}

// deadWriter is the reply of a reset connection: headers are taken, every
// write fails.
type deadWriter struct {
	h      http.Header
	status int
}

func (d *deadWriter) Header() http.Header { return d.h }
func (d *deadWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *deadWriter) Write([]byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return 0, errReplyBroken
}
func (d *deadWriter) headersSent() bool { return d.status != 0 }

// faultWriter carries out DropAfter and CutBody around the handler's reply.
//
// DropAfter: the reply is swallowed (a stream's writes fail, so that it
// stops), and the connection is closed once the handler returns.
//
// CutBody: a JSON reply is held back and, once the handler returns, its
// headers and the first half of its body are sent before the connection is
// closed; an event stream passes through until cutEvents events have been
// sent, then half of the next event is sent and the connection closed.
type faultWriter struct {
	http.ResponseWriter
	mode      afterFault
	cutEvents int

	status int
	stream bool
	buf    bytes.Buffer // CutBody, JSON: the reply held back
	events int          // CutBody, stream: events sent
	cut    bool         // the connection is closed
}

var eventEnd = []byte("\n\n")

func (fw *faultWriter) WriteHeader(code int) {
	if fw.status != 0 || code < 200 {
		return
	}
	fw.status = code
	mt, _, _ := mime.ParseMediaType(fw.Header().Get("Content-Type"))
	fw.stream = strings.EqualFold(mt, "text/event-stream")
	if fw.stream && fw.mode == faultCutBody {
		fw.ResponseWriter.WriteHeader(code)
	}
}

// headersSent reports that the handler sent its headers (see writeError).
func (fw *faultWriter) headersSent() bool { return fw.status != 0 }

func (fw *faultWriter) Write(p []byte) (int, error) {
	if fw.status == 0 {
		fw.WriteHeader(http.StatusOK)
	}
	switch {
	case fw.cut:
		return 0, errReplyBroken
	case fw.mode == faultDropAfter:
		if fw.stream {
			return 0, errReplyBroken
		}
		return len(p), nil
	case !fw.stream:
		fw.buf.Write(p)
		return len(p), nil
	}
	// A stream, cut after cutEvents events. The stream writer writes whole
	// events, so counting their blank-line ends counts events.
	i := 0
	for fw.events < fw.cutEvents {
		k := bytes.Index(p[i:], eventEnd)
		if k < 0 {
			return fw.ResponseWriter.Write(p)
		}
		i += k + len(eventEnd)
		fw.events++
	}
	if i == len(p) {
		return fw.ResponseWriter.Write(p) // cut at the next write
	}
	next := p[i:]
	if k := bytes.Index(next, eventEnd); k >= 0 {
		next = next[:k+len(eventEnd)]
	}
	n, _ := fw.ResponseWriter.Write(p[:i+len(next)/2])
	fw.closeConn()
	return n, errReplyBroken
}

// Flush passes flushes of a stream through until it is cut.
func (fw *faultWriter) Flush() {
	if fw.stream && fw.mode == faultCutBody && !fw.cut {
		_ = http.NewResponseController(fw.ResponseWriter).Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

// finish sends the first half of a held-back JSON reply and cuts it.
func (fw *faultWriter) finish() {
	if fw.mode != faultCutBody || fw.stream || fw.cut {
		return
	}
	if fw.status == 0 {
		dropConnection(fw.ResponseWriter)
		return
	}
	fw.ResponseWriter.WriteHeader(fw.status)
	b := fw.buf.Bytes()
	_, _ = fw.ResponseWriter.Write(b[:len(b)/2])
	fw.closeConn()
}

// closeConn flushes what was written and closes the connection, so the
// client reads a reply that stops mid-body.
func (fw *faultWriter) closeConn() {
	fw.cut = true
	rc := http.NewResponseController(fw.ResponseWriter)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream
	}
	_ = conn.Close()
}
