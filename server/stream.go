package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// sseEvent is one server-sent event: its name and its JSON data, encoded once
// when published, and its place in the run's event log.
type sseEvent struct {
	seq   int // the event's id, dense per run from 1 (sent as "id:"); 0: none
	name  string
	data  []byte
	final bool // requires_action or an end state: a stream ends after it
}

// subscriber is one open event stream on a run. It reads the run's events
// from the store, in order from its cursor, and waits for more: the engine
// wakes it when a write in this process adds events to its run (and, on
// stores shared by several processes, a wake-up from another replica, or
// the poll interval, does). It ends after the first final event after from.
type subscriber struct {
	e     *engine
	runID string
	from  int // id of the last event published before the stream began

	mu     sync.Mutex
	cursor int64 // the id of the last event read
	final  bool  // the run reached requires_action or an end state: done follows
	ended  bool  // no more events will come
	signal chan struct{}
}

// subscriberPoll is how often a stream reads its run's events again without
// a wake-up (events written by another process whose wake-up was lost).
const subscriberPoll = time.Second

func newSubscriber(e *engine, runID string, from int) *subscriber {
	return &subscriber{e: e, runID: runID, from: from, cursor: int64(from), signal: make(chan struct{}, 1)}
}

// end ends the subscription without a final event (server closing, thread
// deleted, client gone).
func (s *subscriber) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.notify()
}

func (s *subscriber) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// next waits for events, the end of the subscription, or stop. It returns
// the events read; ended reports that nothing more will come (and final
// that the stream ends normally, with done).
func (s *subscriber) next(stop <-chan struct{}) (evs []sseEvent, final, ended, stopped bool) {
	var poll *time.Timer
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.ended {
			final = s.final
			s.mu.Unlock()
			return nil, final, true, false
		}
		cursor := s.cursor
		s.mu.Unlock()
		stored, err := s.e.s.db.ListRunEvents(s.e.bg(), s.runID, cursor, 1000)
		if err != nil {
			s.end() // the run is gone (thread deleted) or the store closed
			continue
		}
		if len(stored) > 0 {
			s.mu.Lock()
			for _, ev := range stored {
				fin := isFinalEvent(ev.Type)
				evs = append(evs, sseEvent{seq: int(ev.Seq), name: ev.Type, data: ev.Data, final: fin})
				s.cursor = ev.Seq
				if fin {
					s.final, s.ended = true, true
					break
				}
			}
			final, ended = s.final, s.ended
			s.mu.Unlock()
			return evs, final, ended, false
		}
		if poll == nil {
			poll = time.NewTimer(subscriberPoll)
		} else {
			poll.Reset(subscriberPoll)
		}
		select {
		case <-s.signal:
		case <-poll.C:
		case <-stop:
			return nil, false, false, true
		}
	}
}

// runStream is the text/event-stream answer of createRun,
// createThreadAndRun and submitToolOuputsToRun. The generated stream
// response copies an io.Reader without flushing per event, so this type
// writes each batch of events as the engine publishes them and flushes it.
//
// It writes `event: <name>\ndata: <json>\n\n` per event and, once the run
// reaches requires_action or an end state, `event: done\ndata: [DONE]\n\n`.
// When the client goes away (stop) it stops writing; the run goes on. When
// the fault hook asks for a cut (cut >= 0), the connection is aborted after
// cut events, without the done event.
type runStream struct {
	e     *engine
	runID string
	sub   *subscriber
	first []sseEvent      // written before the run's events (thread.created)
	stop  <-chan struct{} // the request context's Done channel
	cut   int             // events before the connection is cut; -1: never
}

// VisitCreateRunResponse writes the stream.
func (st runStream) VisitCreateRunResponse(w http.ResponseWriter) error { return st.write(w) }

// VisitCreateThreadAndRunResponse writes the stream.
func (st runStream) VisitCreateThreadAndRunResponse(w http.ResponseWriter) error { return st.write(w) }

// VisitSubmitToolOutputsToRunResponse writes the stream.
func (st runStream) VisitSubmitToolOutputsToRunResponse(w http.ResponseWriter) error {
	return st.write(w)
}

var doneEvent = sseEvent{name: "done", data: []byte("[DONE]")}

func (st runStream) write(w http.ResponseWriter) error {
	defer st.e.unsubscribe(st.runID, st.sub)
	noteStream(w, st.runID, st.sub.from, st.first)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	sent := 0
	var buf []byte
	// send writes a batch of events and flushes it; false when the client is gone.
	send := func(evs []sseEvent) bool {
		buf = buf[:0]
		for _, ev := range evs {
			if st.cut >= 0 && sent >= st.cut {
				if len(buf) > 0 {
					_, _ = w.Write(buf)
				}
				_ = rc.Flush()
				panic(http.ErrAbortHandler) // the std way to abort a response mid-stream
			}
			if ev.seq > 0 {
				buf = append(buf, "id: "...)
				buf = strconv.AppendInt(buf, int64(ev.seq), 10)
				buf = append(buf, '\n')
			}
			buf = append(buf, "event: "...)
			buf = append(buf, ev.name...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, ev.data...)
			buf = append(buf, "\n\n"...)
			sent++
		}
		if len(buf) == 0 {
			return true
		}
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		return true
	}
	if !send(st.first) {
		return nil
	}
	for {
		evs, final, ended, stopped := st.sub.next(st.stop)
		if stopped || !send(evs) {
			return nil // the client went away; the run goes on
		}
		if final {
			send([]sseEvent{doneEvent})
			return nil
		}
		if ended {
			return nil // server closing or thread deleted: no done event
		}
	}
}
