package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen"
)

// abortWait bounds how long Shutdown waits, once its context has ended, for
// the event streams it ended to write their final error event and return.
const abortWait = 2 * time.Second

// drainState is Shutdown's bookkeeping: the event streams open now and
// whether the server is draining. The zero value is ready to use.
type drainState struct {
	mu       sync.Mutex
	draining bool                     // Shutdown was called: no new runs
	streams  map[*respWriter]struct{} // the open event streams
	changed  chan struct{}            // closed (and replaced) when a stream ends
}

// Shutdown drains the server for a graceful stop:
//
//  1. It stops taking new runs at once: createRun and createThreadAndRun
//     answer 503 server_error "The server is shutting down.". Other requests
//     are still served (the caller closes its listener, as
//     http.Server.Shutdown does).
//  2. It waits for the open event streams to end on their own, until ctx
//     ends: ctx's deadline is the grace period.
//  3. When ctx ends first, it ends each stream still open with a final
//     `error` event (data: the API's error object, type server_error) and
//     no `done` event, closes it, and waits up to 2s for the stream
//     handlers to return.
//
// A stream that opens once Shutdown was called (tool outputs submitted with
// stream: true, a stream reattached by an Idempotency-Key) gets the error
// event at once: the outputs are taken, the stream ends.
//
// It returns nil when every stream ended on its own, otherwise an error
// wrapping ctx.Err() that counts the streams it ended. Runs are not
// stopped: call Close afterwards to stop the background work. Shutdown may
// be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.eng.mu.Lock()
	s.eng.closed = true // create refuses new runs
	s.eng.mu.Unlock()

	d := &s.drain
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	for {
		n, changed := d.open()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			n := s.endStreams()
			return fmt.Errorf("server: shutdown: ended %d open event streams with an error event: %w", n, ctx.Err())
		}
	}
}

// endStreams ends every open stream with the final error event, and waits
// up to abortWait for their handlers to return. It returns how many it ended.
func (s *Server) endStreams() int {
	d := &s.drain
	d.mu.Lock()
	ws := make([]*respWriter, 0, len(d.streams))
	for w := range d.streams {
		ws = append(ws, w)
	}
	d.mu.Unlock()
	for _, w := range ws {
		w.endStream()
	}
	if len(ws) > 0 {
		s.log.Warn("shutdown: grace period over, ended open event streams", "streams", len(ws))
	}
	t := time.NewTimer(abortWait)
	defer t.Stop()
	for {
		n, changed := d.open()
		if n == 0 {
			return len(ws)
		}
		select {
		case <-changed:
		case <-t.C:
			return len(ws)
		}
	}
}

// open returns the number of open streams and a channel closed when one ends.
func (d *drainState) open() (int, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return len(d.streams), d.changed
}

// add registers an open event stream. It reports false when Shutdown was
// called already: a new stream must end at once.
func (d *drainState) add(w *respWriter) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streams == nil {
		d.streams = map[*respWriter]struct{}{}
	}
	d.streams[w] = struct{}{}
	return !d.draining
}

// remove drops a stream whose handler returned.
func (d *drainState) remove(w *respWriter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.streams, w)
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// shutdownEvent is the final event of a stream the shutdown ended: the
// API's error event, whose data is an error object.
var shutdownEvent = func() []byte {
	b, _ := json.Marshal(gen.Error{Type: "server_error",
		Message: "The server is shutting down: this event stream ended before the run did."})
	return []byte("event: error\ndata: " + string(b) + "\n\n")
}()

// isEventStream reports whether a reply's headers announce an event stream.
func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}
