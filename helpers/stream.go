package helpers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// Names of the events of an Assistants run stream (the "event:" field of each
// server-sent event). Every event carries a JSON object in its data, except
// EventDone, whose data is "[DONE]".
const (
	EventThreadCreated = "thread.created" // data: gen.ThreadObject

	EventRunCreated        = "thread.run.created"         // data: gen.RunObject
	EventRunQueued         = "thread.run.queued"          // data: gen.RunObject
	EventRunInProgress     = "thread.run.in_progress"     // data: gen.RunObject
	EventRunRequiresAction = "thread.run.requires_action" // data: gen.RunObject
	EventRunCompleted      = "thread.run.completed"       // data: gen.RunObject
	EventRunIncomplete     = "thread.run.incomplete"      // data: gen.RunObject
	EventRunFailed         = "thread.run.failed"          // data: gen.RunObject
	EventRunCancelling     = "thread.run.cancelling"      // data: gen.RunObject
	EventRunCancelled      = "thread.run.cancelled"       // data: gen.RunObject
	EventRunExpired        = "thread.run.expired"         // data: gen.RunObject

	EventRunStepCreated    = "thread.run.step.created"     // data: gen.RunStepObject
	EventRunStepInProgress = "thread.run.step.in_progress" // data: gen.RunStepObject
	EventRunStepDelta      = "thread.run.step.delta"       // data: gen.RunStepDeltaObject
	EventRunStepCompleted  = "thread.run.step.completed"   // data: gen.RunStepObject
	EventRunStepFailed     = "thread.run.step.failed"      // data: gen.RunStepObject
	EventRunStepCancelled  = "thread.run.step.cancelled"   // data: gen.RunStepObject
	EventRunStepExpired    = "thread.run.step.expired"     // data: gen.RunStepObject

	EventMessageCreated    = "thread.message.created"     // data: gen.MessageObject
	EventMessageInProgress = "thread.message.in_progress" // data: gen.MessageObject
	EventMessageDelta      = "thread.message.delta"       // data: MessageDelta (gen.MessageDeltaObject, decoded flat)
	EventMessageCompleted  = "thread.message.completed"   // data: gen.MessageObject
	EventMessageIncomplete = "thread.message.incomplete"  // data: gen.MessageObject

	// EventError carries an error object; a Stream turns it into a
	// *StreamError and stops.
	EventError = "error"
	// EventDone ends the stream; a Stream stops there without error.
	EventDone = "done"
)

// eventKind says which field of StreamEvent an event name fills.
type eventKind uint8

const (
	kindUnknown eventKind = iota
	kindThread
	kindRun
	kindRunStep
	kindRunStepDelta
	kindMessage
	kindMessageDelta
	kindError
	kindDone
)

// kindOf maps an event name to its kind; unknown names give kindUnknown.
func kindOf(name string) eventKind {
	switch name {
	case EventMessageDelta: // the common case first
		return kindMessageDelta
	case EventThreadCreated:
		return kindThread
	case EventRunCreated, EventRunQueued, EventRunInProgress, EventRunRequiresAction,
		EventRunCompleted, EventRunIncomplete, EventRunFailed, EventRunCancelling,
		EventRunCancelled, EventRunExpired:
		return kindRun
	case EventRunStepCreated, EventRunStepInProgress, EventRunStepCompleted,
		EventRunStepFailed, EventRunStepCancelled, EventRunStepExpired:
		return kindRunStep
	case EventRunStepDelta:
		return kindRunStepDelta
	case EventMessageCreated, EventMessageInProgress, EventMessageCompleted,
		EventMessageIncomplete:
		return kindMessage
	case EventError:
		return kindError
	case EventDone:
		return kindDone
	}
	return kindUnknown
}

// StreamEvent is one decoded event of a run stream. Name is always set and
// exactly one of the pointer fields is non-nil for a known event; for an
// event this package does not know, all of them are nil and Data holds the
// raw data.
//
// A StreamEvent owns its values: they stay valid after the stream moves on.
type StreamEvent struct {
	// Name is the event name, e.g. EventMessageDelta ("thread.message.delta").
	Name string

	// Thread is set for EventThreadCreated.
	Thread *gen.ThreadObject
	// Run is set for the thread.run.* events (EventRunCreated ...
	// EventRunExpired).
	Run *gen.RunObject
	// RunStep is set for the thread.run.step.* events except
	// EventRunStepDelta.
	RunStep *gen.RunStepObject
	// RunStepDelta is set for EventRunStepDelta.
	RunStepDelta *gen.RunStepDeltaObject
	// Message is set for the thread.message.* events except
	// EventMessageDelta.
	Message *gen.MessageObject
	// MessageDelta is set for EventMessageDelta: the text (or other
	// content) being added to a message, decoded in one pass (see
	// MessageDelta; its Generated method gives the gen type).
	MessageDelta *MessageDelta

	// Data is a copy of the raw data of an unknown event; nil for known
	// events.
	Data json.RawMessage
}

// Known reports whether e is one of the events listed above (and so has one
// of its typed fields set).
func (e StreamEvent) Known() bool { return kindOf(e.Name) != kindUnknown }

// StreamError is the error a Stream reports when the server sends an
// "error" event. It unwraps to an *assistants.APIError carrying the event's
// error object (Type, Code, Param, Message; StatusCode is 0 and RequestID
// is that of the streaming reply), so
//
//	var apiErr *assistants.APIError
//	errors.As(err, &apiErr)
//
// works on it like on an HTTP error.
type StreamError struct {
	// APIError holds the error object of the event; never nil.
	APIError *assistants.APIError
}

// Error returns "helpers: stream error event: <type> (<code>): <message>",
// with credentials redacted.
func (e *StreamError) Error() string {
	var b strings.Builder
	b.WriteString("helpers: stream error event")
	if e.APIError.Type != "" {
		b.WriteString(": ")
		b.WriteString(e.APIError.Type)
	}
	if e.APIError.Code != "" {
		b.WriteString(" (")
		b.WriteString(e.APIError.Code)
		b.WriteString(")")
	}
	if e.APIError.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.APIError.Message)
	}
	if e.APIError.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(e.APIError.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns e.APIError.
func (e *StreamError) Unwrap() error { return e.APIError }

// ErrStreamNotEventStream is returned (wrapped) by the Stream* functions
// when a 2xx reply is not a text/event-stream, for example because the
// server ignored "stream": true and answered with a JSON object.
var ErrStreamNotEventStream = errors.New("helpers: reply is not a text/event-stream")

// Stream reads the typed events of one streaming call (see StreamRun,
// StreamThreadAndRun, StreamSubmitToolOutputs and NewStream).
//
// Use it like bufio.Scanner, or range over Events:
//
//	defer stream.Close()
//	for stream.Next() {
//		ev := stream.Event()
//		...
//	}
//	if err := stream.Err(); err != nil { ... }
//
// End states: the stream ends normally (Err returns nil) at the "done"
// event. It ends with an error on an "error" event (*StreamError), on data
// that is not valid JSON for its event (the error names the event), on a
// stream that ends before "done" (wrapping io.ErrUnexpectedEOF), on a line
// or event over the decoder's size limit (*SSELimitError), on a read error,
// and when the context given to the constructor is done (wrapping its
// cause, e.g. context.DeadlineExceeded). The body is closed as soon as the
// stream ends, so a stream read to its end needs no Close; Close is still
// safe and needed when stopping early.
//
// Decoding runs on the caller's goroutine: a Stream starts no goroutine. A
// Stream is not safe for concurrent use, except that Close may be called
// from another goroutine to interrupt a blocked Next.
type Stream struct {
	body   io.ReadCloser
	header http.Header
	dec    *SSEDecoder
	stop   func() bool // unregisters the context callback

	mu        sync.Mutex
	ctxErr    error // cause of the done context, set by the context callback
	closed    bool
	closeErr  error
	closeOnce sync.Once

	ev   StreamEvent
	err  error
	done bool
	seen bool // at least one event was read
}

// StreamOption configures a Stream; see NewStream.
type StreamOption func(*streamConfig)

type streamConfig struct {
	sse []SSEOption
}

// WithStreamSSEOptions passes options (e.g. WithSSEMaxLineSize) to the
// stream's SSEDecoder. Default: the decoder's defaults (1 MiB lines and
// events).
func WithStreamSSEOptions(opts ...SSEOption) StreamOption {
	return func(c *streamConfig) { c.sse = append(c.sse, opts...) }
}

// NewStream returns a Stream reading server-sent events from body, which it
// owns and closes. body's Close must be safe to call while a Read is in
// progress, as it is for http.Response bodies and io.Pipe readers. header is the reply's header (used for the request ID of
// a *StreamError); it may be nil. When ctx is done the body is closed, which
// unblocks a pending read, and the stream ends with ctx's cause. Most code
// calls StreamRun and friends instead, which build the request.
func NewStream(ctx context.Context, body io.ReadCloser, header http.Header, opts ...StreamOption) *Stream {
	var c streamConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	s := &Stream{body: body, header: header, dec: NewSSEDecoder(body, c.sse...)}
	s.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.ctxErr = context.Cause(ctx)
		s.mu.Unlock()
		_ = s.closeBody()
	})
	return s
}

// Next decodes the next event, which is then available from Event. It
// returns false when the stream has ended, normally or with an error (see
// Err); the body is closed by then.
func (s *Stream) Next() bool {
	if s.done {
		return false
	}
	s.ev = StreamEvent{}
	if !s.dec.Next() {
		s.finish(s.endError())
		return false
	}
	raw := s.dec.Event()
	s.seen = true
	ev := StreamEvent{Name: raw.Event}
	var target any
	switch kindOf(raw.Event) {
	case kindMessageDelta:
		ev.MessageDelta = new(MessageDelta)
		target = ev.MessageDelta
	case kindThread:
		ev.Thread = new(gen.ThreadObject)
		target = ev.Thread
	case kindRun:
		ev.Run = new(gen.RunObject)
		target = ev.Run
	case kindRunStep:
		ev.RunStep = new(gen.RunStepObject)
		target = ev.RunStep
	case kindRunStepDelta:
		ev.RunStepDelta = new(gen.RunStepDeltaObject)
		target = ev.RunStepDelta
	case kindMessage:
		ev.Message = new(gen.MessageObject)
		target = ev.Message
	case kindDone:
		s.finish(nil)
		return false
	case kindError:
		s.finish(s.errorEvent(raw.Data))
		return false
	default:
		ev.Data = append(json.RawMessage(nil), raw.Data...)
		s.ev = ev
		return true
	}
	if err := json.Unmarshal(raw.Data, target); err != nil {
		if s.dec.atEOF() {
			// The last bytes of the stream: most likely an event cut short.
			err = fmt.Errorf("helpers: stream ended before the %q event, in event %q (%w): %w",
				EventDone, raw.Event, err, io.ErrUnexpectedEOF)
		} else {
			err = fmt.Errorf("helpers: stream event %q: invalid data: %w", raw.Event, err)
		}
		s.finish(err)
		return false
	}
	s.ev = ev
	return true
}

// endError is the error of a stream whose decoder stopped before done.
func (s *Stream) endError() error {
	err := s.dec.Err()
	switch cerr := s.contextErr(); {
	case cerr != nil:
		return fmt.Errorf("helpers: stream interrupted: %w", cerr)
	case err == nil && s.seen:
		return fmt.Errorf("helpers: stream ended before the %q event: %w", EventDone, io.ErrUnexpectedEOF)
	case err == nil:
		return fmt.Errorf("helpers: stream ended without any event: %w", io.ErrUnexpectedEOF)
	case s.isClosed():
		return fmt.Errorf("helpers: stream closed: %w", err)
	}
	return fmt.Errorf("helpers: stream: %w", err)
}

// Event returns the event decoded by the last successful call to Next.
func (s *Stream) Event() StreamEvent { return s.ev }

// Err returns the error that ended the stream, or nil if it ended with the
// "done" event or has not ended yet.
func (s *Stream) Err() error { return s.err }

// Events returns an iterator over the stream's events, for
//
//	for ev, err := range stream.Events() {
//		if err != nil { ... } // the stream's error, yielded once, last
//		...
//	}
//
// The iterator yields each event with a nil error; if the stream ends with
// an error it then yields a zero StreamEvent with that error. It closes the
// stream when the loop ends, including on break, so a ranged stream needs no
// Close. It can be ranged over only once.
func (s *Stream) Events() iter.Seq2[StreamEvent, error] {
	return func(yield func(StreamEvent, error) bool) {
		defer s.Close()
		for s.Next() {
			if !yield(s.ev, nil) {
				return
			}
		}
		if s.err != nil {
			yield(StreamEvent{}, s.err)
		}
	}
}

// Header returns the header of the streaming reply (nil for a Stream built
// by NewStream with a nil header).
func (s *Stream) Header() http.Header { return s.header }

// Close closes the body and releases the context callback; a pending or
// later Next returns false. It is safe to call more than once and from
// another goroutine. If the stream had not ended, Err then reports that it
// was closed. Close returns the body's Close error, if any.
func (s *Stream) Close() error {
	err := s.closeBody()
	s.stop()
	return err
}

// finish ends the stream with err (nil for a normal end) and closes the body.
func (s *Stream) finish(err error) {
	s.done = true
	s.err = err
	s.ev = StreamEvent{}
	_ = s.Close()
}

func (s *Stream) closeBody() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = s.body.Close()
	})
	return s.closeErr
}

func (s *Stream) contextErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctxErr
}

func (s *Stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// errorEvent builds the *StreamError for an "error" event with data.
func (s *Stream) errorEvent(data []byte) error {
	body := make([]byte, 0, len(data)+10)
	body = append(body, `{"error":`...)
	if json.Valid(data) {
		body = append(body, data...)
	} else {
		q, _ := json.Marshal(string(data))
		body = append(body, q...)
	}
	body = append(body, '}')
	var resp *http.Response
	if s.header != nil {
		resp = &http.Response{Header: s.header}
	}
	apiErr := assistants.NewAPIError(resp, body)
	apiErr.StatusCode = 0
	return &StreamError{APIError: apiErr}
}

// The stream functions (StreamRun, StreamThreadAndRun,
// StreamSubmitToolOutputs) and the one-method interfaces they take are
// generated from the spec into streams.gen.go.

func ptrTrue() *bool { t := true; return &t }

// streamError is the error of a stream function that could not send its
// request.
func streamError(op string, err error) error {
	return fmt.Errorf("helpers: stream %s: %w", op, err)
}

// openStream checks a streaming reply and wraps its body in a Stream.
func openStream(ctx context.Context, op string, resp *http.Response, err error) (*Stream, error) {
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, fmt.Errorf("helpers: stream %s: %w", op, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("helpers: stream %s: no reply", op)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("helpers: stream %s: %w", op, assistants.NewAPIError(resp, nil))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, perr := mime.ParseMediaType(ct); perr != nil || mt != "text/event-stream" {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("helpers: stream %s: %w (Content-Type %q)", op, ErrStreamNotEventStream, ct)
		}
	}
	return NewStream(ctx, resp.Body, resp.Header), nil
}
