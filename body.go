package assistants

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// MaxBufferedBody is the largest reply body the retry transport reads whole
// before handing the reply on (see Options.CutBodyRetry): 32 MiB. A reply
// that announces a larger Content-Length is passed on unread; one without a
// length that turns out larger is passed on once this much has been read,
// and a cut in its remainder is not retried.
const MaxBufferedBody = 32 << 20

// maxPooledBody is the largest buffer kept in bodyPool for reuse, so that
// one large reply does not pin its memory.
const maxPooledBody = 1 << 20

// bodyPool holds the buffers that replies are read into. A buffer goes back
// to the pool when the caller closes the reply body; the caller only ever
// sees copies of its bytes.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// errReadAfterClose is returned by a buffered body read after Close, as
// net/http's own bodies do.
var errReadAfterClose = errors.New("http: read on closed response body")

// readBody reads resp's body whole into a pooled buffer, closes the original
// body (which releases the attempt's timer and connection) and replaces it
// with one that serves the buffer. A text/event-stream body, a body without
// content and one whose Content-Length exceeds MaxBufferedBody are left as
// they are; a body without a length that exceeds MaxBufferedBody is passed on
// after what was read. On a read error the body is closed and the error is
// returned; resp must then be dropped.
func readBody(resp *http.Response) error {
	if resp.Body == nil || resp.Body == http.NoBody || resp.ContentLength > MaxBufferedBody || isEventStream(resp.Header) {
		return nil
	}
	bp := bodyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if n := resp.ContentLength; n >= 0 && int64(cap(buf)) <= n {
		// Room for the whole body and for the read that finds its end.
		buf = make([]byte, 0, n+512)
	}
	for {
		if len(buf) > MaxBufferedBody {
			read := buf // a copy, so that only this branch moves a slice header to the heap
			resp.Body = &prefixBody{Reader: io.MultiReader(&bufferedBody{buf: &read}, resp.Body), rc: resp.Body}
			return nil
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):min(cap(buf), MaxBufferedBody+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = resp.Body.Close()
			putBody(bp, buf)
			return err
		}
	}
	*bp = buf
	resp.ContentLength = int64(len(buf))
	if tb, ok := resp.Body.(*timeoutBody); ok && !tb.buffered {
		_ = tb.release()
		tb.buf, tb.buffered = bufferedBody{buf: bp}, true
		return nil
	}
	_ = resp.Body.Close()
	resp.Body = &bufferedBody{buf: bp}
	return nil
}

// putBody returns buf to bodyPool through bp when it is small enough.
func putBody(bp *[]byte, buf []byte) {
	if cap(buf) <= maxPooledBody {
		*bp = buf[:0]
		bodyPool.Put(bp)
	}
}

// bufferedBody serves a reply body read whole by readBody. Close returns
// its buffer to bodyPool; it is not safe for concurrent use, like any
// response body.
type bufferedBody struct {
	buf *[]byte // nil once closed
	off int
}

func (b *bufferedBody) Read(p []byte) (int, error) {
	if b.buf == nil {
		return 0, errReadAfterClose
	}
	data := *b.buf
	if b.off >= len(data) {
		return 0, io.EOF
	}
	n := copy(p, data[b.off:])
	b.off += n
	return n, nil
}

// WriteTo writes the rest of the body to w, so that io.Copy needs no
// buffer of its own.
func (b *bufferedBody) WriteTo(w io.Writer) (int64, error) {
	if b.buf == nil {
		return 0, errReadAfterClose
	}
	data := *b.buf
	if b.off >= len(data) {
		return 0, nil
	}
	n, err := w.Write(data[b.off:])
	b.off += n
	return int64(n), err
}

// Close returns the buffer to the pool; reads after it fail.
func (b *bufferedBody) Close() error {
	if b.buf != nil {
		putBody(b.buf, *b.buf)
		b.buf = nil
	}
	return nil
}

// prefixBody is a body larger than MaxBufferedBody: what readBody read,
// then the rest of the original body, which Close closes.
type prefixBody struct {
	io.Reader
	rc io.ReadCloser
}

func (b *prefixBody) Close() error { return b.rc.Close() }
