package helpers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// stFixture returns a committed stream fixture from testdata/streams.
func stFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "streams", name))
	require.NoError(t, err)
	return b
}

// stCloseCounter is a body that counts its Close calls.
type stCloseCounter struct {
	io.Reader
	closes atomic.Int32
}

func (c *stCloseCounter) Close() error { c.closes.Add(1); return nil }

// stDecodeAll reads every event of r with a Stream and returns them with the
// stream's error.
func stDecodeAll(t *testing.T, r io.Reader) ([]StreamEvent, error) {
	t.Helper()
	body := &stCloseCounter{Reader: r}
	s := NewStream(t.Context(), body, nil)
	var evs []StreamEvent
	for s.Next() {
		evs = append(evs, s.Event())
	}
	assert.Equal(t, int32(1), body.closes.Load(), "the body is closed once the stream has ended")
	assert.False(t, s.Next(), "Next stays false after the end")
	return evs, s.Err()
}

func stEventNames(evs []StreamEvent) []string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = ev.Name
	}
	return names
}

// stReaders wraps a fixture in the ways a network can deliver it.
var stReaders = []struct {
	name string
	wrap func([]byte) io.Reader
}{
	{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
	{"one byte at a time", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"half reads", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
	{"data with EOF", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
}

func TestStreamFixtures(t *testing.T) {
	tests := []struct {
		file      string
		wantNames []string // nil: do not check the names
		wantCount int
		check     func(t *testing.T, err error)
	}{
		{
			file: "text_run.sse", wantCount: 18,
			wantNames: []string{EventRunCreated, EventRunQueued, EventRunInProgress, EventRunStepCreated,
				EventRunStepInProgress, EventMessageCreated, EventMessageInProgress, EventMessageDelta,
				EventMessageDelta, EventMessageDelta, EventMessageDelta, EventMessageDelta, EventMessageDelta,
				EventMessageDelta, EventMessageDelta, EventMessageCompleted, EventRunStepCompleted, EventRunCompleted},
			check: func(t *testing.T, err error) { require.NoError(t, err) },
		},
		{
			file: "thread_and_run.sse", wantCount: 12,
			wantNames: []string{EventThreadCreated, EventRunCreated, EventRunInProgress, "thread.run.future_event",
				EventMessageCreated, EventMessageDelta, EventMessageDelta, EventMessageDelta, EventMessageDelta,
				EventMessageDelta, EventMessageCompleted, EventRunCompleted},
			check: func(t *testing.T, err error) { require.NoError(t, err) },
		},
		{file: "tool_call.sse", wantCount: 11, check: func(t *testing.T, err error) { require.NoError(t, err) }},
		{file: "code_interpreter.sse", wantCount: 11, check: func(t *testing.T, err error) { require.NoError(t, err) }},
		{file: "run_failed.sse", wantCount: 6, check: func(t *testing.T, err error) { require.NoError(t, err) }},
		{file: "all_events.sse", wantCount: 23, check: func(t *testing.T, err error) { require.NoError(t, err) }},
		{
			file: "error_event.sse", wantCount: 2,
			wantNames: []string{EventRunCreated, EventMessageDelta},
			check: func(t *testing.T, err error) {
				var se *StreamError
				require.ErrorAs(t, err, &se)
				var apiErr *assistants.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, "server_error", apiErr.Type)
				assert.Equal(t, "server_error", apiErr.Code)
				assert.Equal(t, "The server had an error while processing your request.", apiErr.Message)
				assert.Equal(t, 0, apiErr.StatusCode)
				assert.Contains(t, err.Error(), "stream error event: server_error (server_error): The server had an error")
			},
		},
		{
			file: "truncated.sse", wantCount: 3,
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF)
				assert.Contains(t, err.Error(), `in event "thread.message.delta"`)
			},
		},
		{
			file: "invalid_json.sse", wantCount: 1,
			check: func(t *testing.T, err error) {
				require.Error(t, err)
				assert.NotErrorIs(t, err, io.ErrUnexpectedEOF)
				assert.Contains(t, err.Error(), `stream event "thread.run.in_progress": invalid data`)
				var syn *json.SyntaxError
				assert.ErrorAs(t, err, &syn)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := stFixture(t, tt.file)
			var first []StreamEvent
			for _, rd := range stReaders {
				t.Run(rd.name, func(t *testing.T) {
					evs, err := stDecodeAll(t, rd.wrap(in))
					tt.check(t, err)
					require.Len(t, evs, tt.wantCount)
					if tt.wantNames != nil {
						assert.Equal(t, tt.wantNames, stEventNames(evs))
					}
					for _, ev := range evs {
						stAssertTyped(t, ev)
					}
					if first == nil {
						first = evs
					} else {
						assert.Equal(t, first, evs, "the same events whatever the read sizes")
					}
				})
			}
		})
	}
}

// stAssertTyped checks that exactly the field matching ev.Name is set.
func stAssertTyped(t *testing.T, ev StreamEvent) {
	t.Helper()
	set := map[string]bool{
		"Thread":       ev.Thread != nil,
		"Run":          ev.Run != nil,
		"RunStep":      ev.RunStep != nil,
		"RunStepDelta": ev.RunStepDelta != nil,
		"Message":      ev.Message != nil,
		"MessageDelta": ev.MessageDelta != nil,
		"Data":         ev.Data != nil,
	}
	var want string
	switch {
	case ev.Name == EventThreadCreated:
		want = "Thread"
	case ev.Name == EventRunStepDelta:
		want = "RunStepDelta"
	case ev.Name == EventMessageDelta:
		want = "MessageDelta"
	case strings.HasPrefix(ev.Name, "thread.run.step.") && ev.Known():
		want = "RunStep"
	case strings.HasPrefix(ev.Name, "thread.message.") && ev.Known():
		want = "Message"
	case strings.HasPrefix(ev.Name, "thread.run.") && ev.Known():
		want = "Run"
	default:
		want = "Data"
	}
	for field, isSet := range set {
		assert.Equal(t, field == want, isSet, "event %s: field %s", ev.Name, field)
	}
}

// TestStreamAllEvents checks every event of the API's list (the seed's
// AssistantStreamEvent union plus done) against the object it decodes to.
func TestStreamAllEvents(t *testing.T) {
	evs, err := stDecodeAll(t, bytes.NewReader(stFixture(t, "all_events.sse")))
	require.NoError(t, err)
	want := []string{
		"thread.created",
		"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.requires_action",
		"thread.run.completed", "thread.run.incomplete", "thread.run.failed", "thread.run.cancelling",
		"thread.run.cancelled", "thread.run.expired",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.delta",
		"thread.run.step.completed", "thread.run.step.failed", "thread.run.step.cancelled",
		"thread.run.step.expired",
		"thread.message.created", "thread.message.in_progress", "thread.message.delta",
		"thread.message.completed", "thread.message.incomplete",
	}
	require.Equal(t, want, stEventNames(evs))
	for _, ev := range evs {
		assert.True(t, ev.Known(), ev.Name)
		stAssertTyped(t, ev)
		switch {
		case ev.Thread != nil:
			assert.Equal(t, "thread_1", ev.Thread.Id)
		case ev.Run != nil:
			assert.Equal(t, "run_1", ev.Run.Id)
			status := strings.TrimPrefix(ev.Name, "thread.run.")
			if status == "created" {
				status = "queued"
			}
			assert.Equal(t, gen.RunObjectStatus(status), ev.Run.Status)
		case ev.RunStep != nil:
			assert.Equal(t, "step_1", ev.RunStep.Id)
			mc, err := ev.RunStep.StepDetails.AsRunStepDetailsMessageCreationObject()
			require.NoError(t, err)
			assert.Equal(t, "msg_1", mc.MessageCreation.MessageId)
		case ev.RunStepDelta != nil:
			assert.Equal(t, "step_1", ev.RunStepDelta.Id)
			require.NotNil(t, ev.RunStepDelta.Delta.StepDetails)
		case ev.Message != nil:
			assert.Equal(t, "msg_1", ev.Message.Id)
		case ev.MessageDelta != nil:
			require.Len(t, ev.MessageDelta.Delta.Content, 1)
			p := ev.MessageDelta.Delta.Content[0]
			assert.Equal(t, "text", p.Type)
			assert.Equal(t, "x", p.Text.Value)
			assert.Equal(t, "x", ev.MessageDelta.Text())
			// The generated form holds the same part.
			g, err := ev.MessageDelta.Generated()
			require.NoError(t, err)
			txt := (*g.Delta.Content)[0]
			require.NotNil(t, txt.Text)
			assert.Equal(t, "x", *txt.Text.Value)
		}
	}
	assert.Equal(t, EventError, "error")
	assert.Equal(t, EventDone, "done")
}

func TestStreamUnknownEvents(t *testing.T) {
	in := "event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\n" +
		"event: thread.run.step.future\ndata: {\"a\":[1,2]}\n\n" +
		"data: {\"nameless\":true}\n\n" +
		"event: vendor.ping\ndata: not json at all\n\n" +
		"event: done\ndata: [DONE]\n\n"
	evs, err := stDecodeAll(t, strings.NewReader(in))
	require.NoError(t, err, "unknown events are not errors")
	require.Equal(t, []string{EventRunCreated, "thread.run.step.future", "", "vendor.ping"}, stEventNames(evs))
	assert.JSONEq(t, `{"a":[1,2]}`, string(evs[1].Data))
	assert.JSONEq(t, `{"nameless":true}`, string(evs[2].Data))
	assert.Equal(t, "not json at all", string(evs[3].Data))
	for _, ev := range evs[1:] {
		assert.False(t, ev.Known())
		stAssertTyped(t, ev)
	}
}

func TestStreamEventsOwnTheirData(t *testing.T) {
	// Unknown events keep a copy of the decoder's buffer.
	in := "event: x.one\ndata: first\n\nevent: x.two\ndata: second\n\nevent: done\ndata: [DONE]\n\n"
	evs, err := stDecodeAll(t, iotest.OneByteReader(strings.NewReader(in)))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, "first", string(evs[0].Data))
	assert.Equal(t, "second", string(evs[1].Data))
}

// stCutPoints returns where TestStreamTruncatedAnywhere cuts full: every byte
// within 16 bytes of a line end (event and field boundaries, the start and
// end of each data line) and every 13th byte elsewhere.
func stCutPoints(full []byte) []int {
	near := make([]bool, len(full)+1)
	for i, c := range full {
		if c == '\n' || c == '\r' {
			for j := max(0, i-16); j <= min(len(full), i+16); j++ {
				near[j] = true
			}
		}
	}
	var cuts []int
	for n := 0; n < len(full); n++ {
		if near[n] || n%13 == 0 {
			cuts = append(cuts, n)
		}
	}
	return cuts
}

// TestStreamTruncatedAnywhere cuts a complete stream at many points (see
// stCutPoints): every cut before the done event gives an error wrapping io.ErrUnexpectedEOF,
// and the events read before it are a prefix of the full list.
func TestStreamTruncatedAnywhere(t *testing.T) {
	for _, file := range []string{"text_run.sse", "thread_and_run.sse", "tool_call.sse"} {
		t.Run(file, func(t *testing.T) {
			full := stFixture(t, file)
			all, err := stDecodeAll(t, bytes.NewReader(full))
			require.NoError(t, err)
			doneAt := bytes.Index(full, []byte("event: done"))
			require.Positive(t, doneAt)
			allNames := strings.Join(stEventNames(all), ",")
			for _, n := range stCutPoints(full) {
				// A light loop: no assertion unless something is wrong.
				s := NewStream(context.Background(), io.NopCloser(bytes.NewReader(full[:n])), nil)
				var names []string
				for s.Next() {
					names = append(names, s.Event().Name)
				}
				err := s.Err()
				complete := bytes.Contains(full[:n], []byte("event: done\ndata")) ||
					bytes.Contains(full[:n], []byte("event: done\r\ndata"))
				switch {
				case complete && err != nil:
					t.Fatalf("cut at %d after the done event: %v", n, err)
				case !complete && !errors.Is(err, io.ErrUnexpectedEOF):
					t.Fatalf("cut at %d: error %v, want io.ErrUnexpectedEOF", n, err)
				case !strings.HasPrefix(allNames, strings.Join(names, ",")):
					t.Fatalf("cut at %d: events %v are not a prefix of %v", n, names, allNames)
				case complete && strings.Join(names, ",") != allNames:
					t.Fatalf("cut at %d: events %v, want %v", n, names, allNames)
				}
			}
		})
	}
}

func TestStreamEmptyBody(t *testing.T) {
	evs, err := stDecodeAll(t, strings.NewReader(""))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Contains(t, err.Error(), "without any event")
	assert.Empty(t, evs)
}

func TestStreamLineTooLong(t *testing.T) {
	long := `{"id":"msg_1","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"` +
		strings.Repeat("a", DefaultSSEMaxLineSize) + `"}}]}}`
	in := "event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\nevent: thread.message.delta\ndata: " + long + "\n\nevent: done\ndata: [DONE]\n\n"
	tests := []struct {
		name string
		opts []StreamOption
		in   string
	}{
		{"default 1 MiB limit", nil, in},
		{"custom limit", []StreamOption{WithStreamSSEOptions(WithSSEMaxLineSize(64))}, "event: thread.run.created\ndata: " + strings.Repeat("x", 65) + "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStream(t.Context(), io.NopCloser(strings.NewReader(tt.in)), nil, tt.opts...)
			n := 0
			for s.Next() {
				n++
			}
			var lim *SSELimitError
			require.ErrorAs(t, s.Err(), &lim)
			require.ErrorIs(t, s.Err(), ErrSSELineTooLong)
			assert.LessOrEqual(t, n, 1)
		})
	}
}

// TestStreamStallEndsOnDeadline: a server that sends a few events and then
// goes silent; the stream ends when the context's deadline passes (fake
// time, no waiting).
func TestStreamStallEndsOnDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, "event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\n")
			// ... and nothing more: the writer stays open.
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		s := NewStream(ctx, pr, nil)
		require.True(t, s.Next())
		assert.Equal(t, EventRunCreated, s.Event().Name)
		require.False(t, s.Next())
		require.ErrorIs(t, s.Err(), context.DeadlineExceeded)
		assert.Equal(t, time.Minute, time.Since(start), "ended exactly at the deadline")
		_ = pw.Close()
	})
}

func TestStreamCancelInterruptsRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		ctx, cancel := context.WithCancelCause(t.Context())
		s := NewStream(ctx, pr, nil)
		cause := errors.New("user pressed ctrl-c")
		go func() {
			synctest.Wait() // Next is blocked reading
			cancel(cause)
		}()
		require.False(t, s.Next())
		require.ErrorIs(t, s.Err(), cause)
	})
}

func TestStreamCloseFromAnotherGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		s := NewStream(t.Context(), pr, nil)
		go func() {
			synctest.Wait()
			_ = s.Close()
		}()
		require.False(t, s.Next())
		require.Error(t, s.Err())
		assert.Contains(t, s.Err().Error(), "stream closed")
		assert.NotErrorIs(t, s.Err(), io.ErrUnexpectedEOF)
	})
}

func TestStreamEventsIterator(t *testing.T) {
	t.Run("all events then nil", func(t *testing.T) {
		body := &stCloseCounter{Reader: bytes.NewReader(stFixture(t, "text_run.sse"))}
		s := NewStream(t.Context(), body, nil)
		n := 0
		for ev, err := range s.Events() {
			require.NoError(t, err)
			require.NotEmpty(t, ev.Name)
			n++
		}
		assert.Equal(t, 18, n)
		assert.Equal(t, int32(1), body.closes.Load())
	})
	t.Run("error yielded last", func(t *testing.T) {
		s := NewStream(t.Context(), io.NopCloser(bytes.NewReader(stFixture(t, "error_event.sse"))), nil)
		var names []string
		var gotErr error
		for ev, err := range s.Events() {
			if err != nil {
				require.Empty(t, ev.Name)
				gotErr = err
				continue
			}
			require.NoError(t, gotErr, "no event after the error")
			names = append(names, ev.Name)
		}
		var se *StreamError
		require.ErrorAs(t, gotErr, &se)
		assert.Equal(t, []string{EventRunCreated, EventMessageDelta}, names)
	})
	t.Run("break closes the body", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() {
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(pw, "event: x.tick\ndata: %d\n\n", i); err != nil {
					return // the stream closed the pipe
				}
			}
		}()
		s := NewStream(t.Context(), pr, nil)
		n := 0
		for _, err := range s.Events() {
			require.NoError(t, err)
			if n++; n == 3 {
				break
			}
		}
		_, err := pr.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.ErrClosedPipe, "the body is closed after break")
	})
}

// --- over HTTP ---

// stSSEHandler serves in as a text/event-stream after checking that the
// request asked for a stream.
func stSSEHandler(t *testing.T, in []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream *bool `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Stream == nil || !*body.Stream {
			t.Errorf("request body must have \"stream\": true (err %v)", err)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req_stream")
		_, _ = w.Write(in)
	}
}

func stClient(t *testing.T, url string) *assistants.Client {
	t.Helper()
	c, err := assistants.New(assistants.WithBaseURL(url), assistants.WithAPIKey("sk-test-secret-key-1234567890"),
		assistants.WithMaxRetries(0))
	require.NoError(t, err)
	return c
}

func TestStreamFunctionsOverHTTP(t *testing.T) {
	text := stFixture(t, "text_run.sse")
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		stSSEHandler(t, text)(w, r)
	}))
	defer srv.Close()
	c := stClient(t, srv.URL)
	ctx := t.Context()
	open := []func() (*Stream, error){
		func() (*Stream, error) {
			return StreamRun(ctx, c, "thread_123", gen.CreateRunRequest{AssistantId: "asst_123"})
		},
		func() (*Stream, error) {
			return StreamThreadAndRun(ctx, c, gen.CreateThreadAndRunRequest{AssistantId: "asst_123"})
		},
		func() (*Stream, error) {
			return StreamSubmitToolOutputs(ctx, c, "thread_123", "run_123", gen.SubmitToolOutputsRunRequest{
				ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{}})
		},
	}
	for _, o := range open {
		s, err := o()
		require.NoError(t, err)
		assert.Equal(t, "req_stream", s.Header().Get("X-Request-Id"))
		var acc Accumulator
		require.NoError(t, acc.Consume(s))
		assert.Equal(t, gen.RunObjectStatus("completed"), acc.Run().Status)
	}
	assert.Equal(t, []string{"POST /threads/thread_123/runs", "POST /threads/runs",
		"POST /threads/thread_123/runs/run_123/submit_tool_outputs"}, paths)
}

func TestStreamHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{
			name: "non-2xx is an APIError",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"error":{"message":"No thread found with id 'thread_x'.","type":"invalid_request_error","param":null,"code":null}}`)
			},
			check: func(t *testing.T, err error) {
				var apiErr *assistants.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
				assert.Equal(t, "invalid_request_error", apiErr.Type)
				assert.True(t, assistants.IsNotFound(err))
			},
		},
		{
			name: "JSON instead of a stream",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"run_1","object":"thread.run","status":"queued"}`)
			},
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, ErrStreamNotEventStream)
				assert.Contains(t, err.Error(), "application/json")
			},
		},
		{
			name: "error event after 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
				w.Header().Set("X-Request-Id", "req_42")
				_, _ = io.WriteString(w, "event: error\ndata: {\"message\":\"bad key sk-abcdefghijklmnopqrstuvwxyz123456\",\"type\":\"server_error\",\"code\":\"oops\",\"param\":null}\n\n")
			},
			check: func(t *testing.T, err error) {
				var se *StreamError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, "req_42", se.APIError.RequestID)
				assert.Equal(t, "oops", se.APIError.Code)
				assert.NotContains(t, err.Error(), "sk-abcdefghijklmnopqrstuvwxyz123456", "keys are redacted")
				assert.Contains(t, err.Error(), "(request req_42)")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := stClient(t, srv.URL)
			s, err := StreamRun(t.Context(), c, "thread_x", gen.CreateRunRequest{AssistantId: "asst_1"})
			if err == nil {
				var acc Accumulator
				err = acc.Consume(s)
			}
			tt.check(t, err)
			assert.NotContains(t, err.Error(), "sk-test-secret-key-1234567890")
		})
	}
}

func TestStreamTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := stClient(t, url)
	_, err := StreamRun(t.Context(), c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1"})
	require.Error(t, err)
	var opErr *net.OpError
	assert.ErrorAs(t, err, &opErr)
	assert.Contains(t, err.Error(), "helpers: stream create run")
}

// TestStreamHTTPStallDeadline: a real server that sends one event and then
// blocks; the client's deadline ends the stream, the handler sees the
// disconnect, and nothing is left running.
func TestStreamHTTPStallDeadline(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	handlerDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stall until the client goes away
	}))
	defer srv.Close()
	c := stClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	s, err := StreamRun(ctx, c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1"})
	require.NoError(t, err)
	require.True(t, s.Next())
	require.False(t, s.Next())
	require.ErrorIs(t, s.Err(), context.DeadlineExceeded)
	<-handlerDone
	srv.CloseClientConnections()
}

// TestStreamCloseEarlyOverHTTP: a server that streams without end; closing
// the stream after a few events ends the request on the server, closes the
// connection and leaves no goroutine.
func TestStreamCloseEarlyOverHTTP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	handlerDone := make(chan struct{})
	connClosed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "event: thread.message.delta\ndata: {\"id\":\"msg_1\",\"object\":\"thread.message.delta\",\"delta\":{\"content\":[{\"index\":0,\"type\":\"text\",\"text\":{\"value\":\"%d \"}}]}}\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			if r.Context().Err() != nil {
				return
			}
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			connClosed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	c := stClient(t, srv.URL)
	s, err := StreamRun(t.Context(), c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1"})
	require.NoError(t, err)
	var acc Accumulator
	for i := 0; i < 3 && s.Next(); i++ {
		require.NoError(t, acc.Add(s.Event()))
	}
	require.NoError(t, s.Close())
	msg, ok := acc.Message("msg_1")
	require.True(t, ok)
	assert.Equal(t, "0 1 2 ", MessageText(msg))
	<-handlerDone
	<-connClosed
}

// --- end to end, against the embedded server ---

// stUserMessage is a user message with text content.
func stUserMessage(t *testing.T, text string) gen.CreateMessageRequest {
	t.Helper()
	var content gen.CreateMessageRequest_Content
	require.NoError(t, content.FromCreateMessageText(text))
	return gen.CreateMessageRequest{Role: "user", Content: content}
}

// stAssistantThread creates an assistant with tools and a thread holding
// one user message on srv, and returns their ids.
func stAssistantThread(t *testing.T, srv *assistantstest.Server, tools []gen.AssistantTool, text string) (string, string) {
	t.Helper()
	ctx := t.Context()
	body := gen.CreateAssistantRequest{Model: "gpt-4o"}
	if tools != nil {
		body.Tools = &tools
	}
	asst, err := srv.Client.CreateAssistant(ctx, body)
	require.NoError(t, err)
	msgs := []gen.CreateMessageRequest{stUserMessage(t, text)}
	thread, err := srv.Client.CreateThread(ctx, gen.CreateThreadRequest{Messages: &msgs})
	require.NoError(t, err)
	return asst.Id, thread.Id
}

// TestStreamEndToEnd streams runs from the embedded server: the text
// printed from the deltas equals the final message as the server stores it.
func TestStreamEndToEnd(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0))
	ctx := t.Context()
	asstID, threadID := stAssistantThread(t, srv, nil, "stream me a reply, word by word")

	tests := []struct {
		name string
		open func() (*Stream, error)
	}{
		{"createRun", func() (*Stream, error) {
			return StreamRun(ctx, srv.Client, threadID, gen.CreateRunRequest{AssistantId: asstID})
		}},
		{"createThreadAndRun", func() (*Stream, error) {
			msgs := []gen.CreateMessageRequest{stUserMessage(t, "stream me a reply, word by word")}
			return StreamThreadAndRun(ctx, srv.Client, gen.CreateThreadAndRunRequest{AssistantId: asstID,
				Thread: &gen.CreateThreadRequest{Messages: &msgs}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.open()
			require.NoError(t, err)
			var acc Accumulator
			var streamed strings.Builder
			var names []string
			acc.OnTextDelta = func(_, text string) { streamed.WriteString(text) }
			acc.OnEvent = func(ev StreamEvent) { names = append(names, ev.Name) }
			require.NoError(t, acc.Consume(s))

			run := acc.Run()
			require.NotNil(t, run)
			assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
			assert.Contains(t, names, EventRunCreated)
			assert.Contains(t, names, EventMessageDelta)
			assert.Equal(t, EventRunCompleted, names[len(names)-1])
			assert.Greater(t, strings.Count(strings.Join(names, ","), EventMessageDelta), 1, "several deltas")

			msgs := acc.Messages()
			require.Len(t, msgs, 1)
			want := "You said: stream me a reply, word by word"
			assert.Equal(t, want, streamed.String())
			assert.Equal(t, want, MessageText(msgs[0]))
			stored, err := srv.Client.GetMessage(ctx, run.ThreadId, msgs[0].Id)
			require.NoError(t, err)
			assert.Equal(t, streamed.String(), MessageText(*stored), "streamed text equals the stored message")
			list, err := srv.Client.ListMessages(ctx, run.ThreadId, nil)
			require.NoError(t, err)
			assert.Equal(t, msgs[0].Id, list.Data[0].Id, "newest first")
			if tt.name == "createThreadAndRun" {
				require.NotNil(t, acc.Thread())
				assert.Equal(t, run.ThreadId, acc.Thread().Id)
			}
		})
	}
}

func TestStreamEndToEndErrors(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0))
	_, err := StreamRun(t.Context(), srv.Client, "thread_missing", gen.CreateRunRequest{AssistantId: "asst_missing"})
	var apiErr *assistants.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
}
