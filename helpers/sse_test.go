package helpers

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// sseEv is a copied SSEEvent, comparable with ==.
type sseEv struct {
	Event, Data string
}

// decodeSSE decodes everything from r and returns copies of the events and
// the final error.
func decodeSSE(r io.Reader, opts ...SSEOption) ([]sseEv, error) {
	d := NewSSEDecoder(r, opts...)
	var evs []sseEv
	for d.Next() {
		ev := d.Event()
		evs = append(evs, sseEv{ev.Event, string(ev.Data)})
	}
	if d.Next() {
		panic("Next returned true after returning false")
	}
	return evs, d.Err()
}

// chunkReader returns its chunks one per Read call.
type chunkReader struct {
	chunks []string
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// readerVariants delivers the same input in different ways; every way must
// give the same events.
var readerVariants = []struct {
	name string
	wrap func(string) io.Reader
}{
	{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
	{"onebyte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
	{"half", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
	{"dataerr", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
	{"onebyte+dataerr", func(s string) io.Reader {
		return iotest.DataErrReader(iotest.OneByteReader(strings.NewReader(s)))
	}},
}

func TestSSEDecoderRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEv
	}{
		{"empty stream", "", nil},
		{"event and data", "event: thread.run.created\ndata: {\"id\":\"run_1\"}\n\n",
			[]sseEv{{"thread.run.created", `{"id":"run_1"}`}}},
		{"no space after colon", "event:a\ndata:x\n\n", []sseEv{{"a", "x"}}},
		{"only one leading space stripped", "data:  two\n\n", []sseEv{{"", " two"}}},
		{"tab is not stripped", "data:\tx\n\n", []sseEv{{"", "\tx"}}},
		{"trailing space kept", "data: x \n\n", []sseEv{{"", "x "}}},
		{"colon in value", "data: a:b: c\n\n", []sseEv{{"", "a:b: c"}}},
		{"data lines joined with LF", "data: a\ndata: b\ndata:\ndata: c\n\n", []sseEv{{"", "a\nb\n\nc"}}},
		{"empty data field", "data:\n\n", []sseEv{{"", ""}}},
		{"data without colon", "data\n\n", []sseEv{{"", ""}}},
		{"two empty data lines", "data\ndata\n\n", []sseEv{{"", "\n"}}},
		{"event without colon clears the name", "event: a\nevent\ndata: x\n\n", []sseEv{{"", "x"}}},
		{"last event field wins", "event: a\nevent: b\ndata: x\n\n", []sseEv{{"b", "x"}}},
		{"event after data", "data: x\nevent: late\n\n", []sseEv{{"late", "x"}}},
		{"comments ignored", ": ping\n:\ndata: x\n: inside\n\n: trailing\n\n", []sseEv{{"", "x"}}},
		{"comment-only stream", ": keep-alive\n\n: keep-alive\n\n", nil},
		{"id and retry ignored", "id: 42\nretry: 1000\nevent: a\ndata: x\nid\nretry: nope\n\n", []sseEv{{"a", "x"}}},
		{"unknown fields ignored", "foo: bar\nDATA: no\nEvent: no\ndata : no\n data: no\ndata: yes\n\n", []sseEv{{"", "yes"}}},
		{"blank line without data dispatches nothing", "\n\n\nevent: a\n\n\ndata: x\n\n", []sseEv{{"", "x"}}},
		{"id-only event dispatches nothing", "id: 1\n\ndata: x\n\n", []sseEv{{"", "x"}}},
		{"event name reset between events", "event: a\ndata: 1\n\ndata: 2\n\n", []sseEv{{"a", "1"}, {"", "2"}}},
		{"final event without blank line", "event: a\ndata: 1\n\nevent: b\ndata: 2", []sseEv{{"a", "1"}, {"b", "2"}}},
		{"final event ending in one LF", "event: b\ndata: 2\n", []sseEv{{"b", "2"}}},
		{"final event ending in one CR", "data: 2\r", []sseEv{{"", "2"}}},
		{"final event without data dropped", "data: 1\n\nevent: b\n", []sseEv{{"", "1"}}},
		{"final name without terminator dropped", "data: 1\n\nevent: b", []sseEv{{"", "1"}}},
		{"final comment dropped", "data: 1\n\n: bye", []sseEv{{"", "1"}}},
		{"CR line endings", "event: a\rdata: 1\rdata: 2\r\rdata: 3\r\r", []sseEv{{"a", "1\n2"}, {"", "3"}}},
		{"CRLF line endings", "event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n", []sseEv{{"a", "1\n2"}, {"", "3"}}},
		{"mixed line endings", "event: a\rdata: 1\r\ndata: 2\n\r\ndata: 3\n\rdata: 4\r\n\n",
			[]sseEv{{"a", "1\n2"}, {"", "3"}, {"", "4"}}},
		{"LF CR is two line endings", "data: 1\n\rdata: 2\n\n", []sseEv{{"", "1"}, {"", "2"}}},
		{"CR CR is two line endings", "data: 1\r\rdata: 2\r\r", []sseEv{{"", "1"}, {"", "2"}}},
		{"CR inside a value ends the line", "data: a\rb: c\n\n", []sseEv{{"", "a"}}},
		{"BOM skipped", "\xEF\xBB\xBFdata: x\n\n", []sseEv{{"", "x"}}},
		{"BOM then comment", "\xEF\xBB\xBF: hi\ndata: x\n\n", []sseEv{{"", "x"}}},
		{"only first BOM skipped", "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n", []sseEv{{"", "y"}}},
		{"BOM later is not skipped", "data: x\n\n\xEF\xBB\xBFdata: y\n\n", []sseEv{{"", "x"}}},
		{"BOM in data kept", "data: \xEF\xBB\xBFx\n\n", []sseEv{{"", "\xEF\xBB\xBFx"}}},
		{"stream is only a BOM", "\xEF\xBB\xBF", nil},
		{"stream is a BOM prefix", "\xEF\xBB", nil},
		{"BOM prefix then data", "\xEF\xBBdata: x\n\n", nil},
		{"invalid UTF-8 passed through", "event: \xff\ndata: \xfe\x00\n\n", []sseEv{{"\xff", "\xfe\x00"}}},
		{"OpenAI done event", "event: done\ndata: [DONE]\n\n", []sseEv{{"done", "[DONE]"}}},
		{"bare DONE", "data: [DONE]\n\n", []sseEv{{"", "[DONE]"}}},
		{"events after DONE still decoded", "data: [DONE]\n\ndata: more\n\n", []sseEv{{"", "[DONE]"}, {"", "more"}}},
		{"OpenAI error event", "event: error\ndata: {\"code\":\"server_error\",\"message\":\"boom\"}\n\n",
			[]sseEv{{"error", `{"code":"server_error","message":"boom"}`}}},
		{"OpenAI run", "event: thread.run.created\r\n" +
			"data: {\"id\":\"run_1\",\"object\":\"thread.run\",\"status\":\"queued\"}\r\n\r\n" +
			"event: thread.message.delta\r\n" +
			"data: {\"id\":\"msg_1\",\"object\":\"thread.message.delta\",\"delta\":{\"content\":[{\"index\":0,\"type\":\"text\",\"text\":{\"value\":\"Hi\"}}]}}\r\n\r\n" +
			": keep-alive\r\n\r\n" +
			"event: thread.run.completed\r\n" +
			"data: {\"id\":\"run_1\",\"status\":\"completed\"}\r\n\r\n" +
			"event: done\r\n" +
			"data: [DONE]\r\n\r\n",
			[]sseEv{
				{"thread.run.created", `{"id":"run_1","object":"thread.run","status":"queued"}`},
				{"thread.message.delta", `{"id":"msg_1","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"Hi"}}]}}`},
				{"thread.run.completed", `{"id":"run_1","status":"completed"}`},
				{"done", "[DONE]"},
			}},
	}
	for _, tt := range tests {
		for _, rv := range readerVariants {
			t.Run(tt.name+"/"+rv.name, func(t *testing.T) {
				got, err := decodeSSE(rv.wrap(tt.in))
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				if !equalEvs(got, tt.want) {
					t.Fatalf("input %q\n got  %q\n want %q", tt.in, got, tt.want)
				}
			})
		}
	}
}

func equalEvs(a, b []sseEv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSSEDecoderSplitCRLF checks that a CRLF split between two reads is one
// line ending, wherever the split falls.
func TestSSEDecoderSplitCRLF(t *testing.T) {
	in := "event: a\r\ndata: 1\r\ndata: 2\r\n\r\nevent: b\r\ndata: 3\r\n\r\n"
	want := []sseEv{{"a", "1\n2"}, {"b", "3"}}
	for i := 0; i <= len(in); i++ {
		got, err := decodeSSE(&chunkReader{chunks: []string{in[:i], in[i:]}})
		if err != nil || !equalEvs(got, want) {
			t.Fatalf("split at %d: got %q, %v; want %q", i, got, err, want)
		}
	}
	// CR at the very end of a read, LF first in the next one.
	got, err := decodeSSE(&chunkReader{chunks: []string{"data: a\r", "\ndata: b\r", "\n\r", "\n"}})
	if want := []sseEv{{"", "a\nb"}}; err != nil || !equalEvs(got, want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	// CR at the end of a read, no LF after it.
	got, err = decodeSSE(&chunkReader{chunks: []string{"data: a\r", "\r", "data: b\r", "data: c\r\r"}})
	if want := []sseEv{{"", "a"}, {"", "b\nc"}}; err != nil || !equalEvs(got, want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestSSEDecoderLineTooLong(t *testing.T) {
	tests := []struct {
		name    string
		maxLine int
		in      string
		want    []sseEv
		tooLong bool
	}{
		{"at limit", 10, "data: 1234\n\n", []sseEv{{"", "1234"}}, false},
		{"at limit CRLF", 10, "data: 1234\r\n\r\n", []sseEv{{"", "1234"}}, false},
		{"at limit at EOF", 10, "data: 1234", []sseEv{{"", "1234"}}, false},
		{"over limit", 10, "data: ok\n\ndata: 12345\n\ndata: never\n\n", []sseEv{{"", "ok"}}, true},
		{"over limit at EOF", 10, "data: 12345", nil, true},
		{"long comment", 10, ": 0123456789\n\ndata: never\n\n", nil, true},
		{"long unknown field", 10, "xxxxxxxxxxx\ndata: never\n\n", nil, true},
		{"BOM not counted", 10, "\xEF\xBB\xBFdata: 1234\n\n", []sseEv{{"", "1234"}}, false},
		{"tiny limit", 1, "a\n:\n\nab\n", nil, true},
		{"tiny limit ok", 1, "a\n:\n\n", nil, false},
	}
	for _, tt := range tests {
		for _, rv := range readerVariants {
			t.Run(tt.name+"/"+rv.name, func(t *testing.T) {
				got, err := decodeSSE(rv.wrap(tt.in), WithSSEMaxLineSize(tt.maxLine))
				if !equalEvs(got, tt.want) {
					t.Errorf("events %q, want %q", got, tt.want)
				}
				if !tt.tooLong {
					if err != nil {
						t.Fatalf("Err() = %v, want nil", err)
					}
					return
				}
				if !errors.Is(err, ErrSSELineTooLong) {
					t.Fatalf("Err() = %v, want ErrSSELineTooLong", err)
				}
				var le *SSELimitError
				if !errors.As(err, &le) || le.Limit != tt.maxLine {
					t.Fatalf("Err() = %#v, want *SSELimitError with Limit %d", err, tt.maxLine)
				}
				if msg := err.Error(); !strings.Contains(msg, "line too long") || !strings.Contains(msg, "limit "+strconv.Itoa(tt.maxLine)+" bytes") {
					t.Fatalf("error message %q does not name the limit", err)
				}
			})
		}
	}
}

// endlessReader returns the same byte forever.
type endlessReader byte

func (e endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestSSEDecoderDefaultLimitBoundsMemory feeds an endless line and checks
// that the default 1 MiB limit stops it with a bounded buffer.
func TestSSEDecoderDefaultLimitBoundsMemory(t *testing.T) {
	r := io.MultiReader(strings.NewReader("data: ok\n\ndata: "), endlessReader('x'))
	d := NewSSEDecoder(r)
	if !d.Next() || string(d.Event().Data) != "ok" {
		t.Fatalf("first event: %v %q", d.Err(), d.Event().Data)
	}
	if d.Next() {
		t.Fatal("Next() = true on an endless line")
	}
	var le *SSELimitError
	if err := d.Err(); !errors.As(err, &le) || le.Limit != DefaultSSEMaxLineSize || !errors.Is(err, ErrSSELineTooLong) {
		t.Fatalf("Err() = %v, want line too long with the default limit", err)
	}
	if want := "sse: line too long (limit 1048576 bytes)"; d.Err().Error() != want {
		t.Errorf("Err().Error() = %q, want %q", d.Err(), want)
	}
	if len(d.buf) > DefaultSSEMaxLineSize+1 {
		t.Errorf("buffer grew to %d bytes, more than the limit", len(d.buf))
	}

	// A line of exactly the default limit is fine.
	line := "data: " + strings.Repeat("y", DefaultSSEMaxLineSize-len("data: "))
	got, err := decodeSSE(strings.NewReader(line + "\n\n"))
	if err != nil || len(got) != 1 || len(got[0].Data) != DefaultSSEMaxLineSize-len("data: ") {
		t.Fatalf("line at the default limit: err %v, %d events", err, len(got))
	}
}

func TestSSEDecoderEventTooLarge(t *testing.T) {
	tests := []struct {
		name     string
		opts     []SSEOption
		in       string
		want     []sseEv
		tooLarge int // expected limit in the error, 0 if no error
	}{
		{"at limit", []SSEOption{WithSSEMaxEventSize(9)}, "data: 1234\ndata: 1234\n\n", []sseEv{{"", "1234\n1234"}}, 0},
		{"over limit with separator", []SSEOption{WithSSEMaxEventSize(8)}, "data: 0\n\ndata: 1234\ndata: 1234\n\n", []sseEv{{"", "0"}}, 8},
		{"many empty lines", []SSEOption{WithSSEMaxEventSize(3)}, "data\ndata\ndata\ndata\ndata\n\n", nil, 3},
		{"limit resets per event", []SSEOption{WithSSEMaxEventSize(4)}, "data: 1234\n\ndata: 5678\n\n", []sseEv{{"", "1234"}, {"", "5678"}}, 0},
		{"defaults to line limit", []SSEOption{WithSSEMaxLineSize(10)}, "data: 1234\ndata: 1234\ndata: 12\n\n", nil, 10},
		{"at EOF", []SSEOption{WithSSEMaxEventSize(4)}, "data: 12\ndata: 34", nil, 4},
	}
	for _, tt := range tests {
		for _, rv := range readerVariants {
			t.Run(tt.name+"/"+rv.name, func(t *testing.T) {
				got, err := decodeSSE(rv.wrap(tt.in), tt.opts...)
				if !equalEvs(got, tt.want) {
					t.Errorf("events %q, want %q", got, tt.want)
				}
				if tt.tooLarge == 0 {
					if err != nil {
						t.Fatalf("Err() = %v, want nil", err)
					}
					return
				}
				var le *SSELimitError
				if !errors.Is(err, ErrSSEEventTooLarge) || !errors.As(err, &le) || le.Limit != tt.tooLarge {
					t.Fatalf("Err() = %v, want event too large with limit %d", err, tt.tooLarge)
				}
			})
		}
	}
}

// errAfterReader returns data, then err. With together set, the last bytes
// come in the same Read call as the error.
type errAfterReader struct {
	data     string
	err      error
	together bool
}

func (e *errAfterReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	if e.together && len(e.data) == 0 {
		return n, e.err
	}
	return n, nil
}

func TestSSEDecoderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	tests := []struct {
		name string
		in   string
		err  error
		want []sseEv
	}{
		{"mid event", "event: a\ndata: 1\n\nevent: b\ndata: partial", boom, []sseEv{{"a", "1"}}},
		{"mid event before blank line", "data: 1\n\ndata: 2\n", boom, []sseEv{{"", "1"}}},
		{"between events", "data: 1\n\n", boom, []sseEv{{"", "1"}}},
		{"at start", "", boom, nil},
		{"unexpected EOF", "data: 1\n\ndata: 2", io.ErrUnexpectedEOF, []sseEv{{"", "1"}}},
	}
	for _, tt := range tests {
		for _, together := range []bool{false, true} {
			for _, onebyte := range []bool{false, true} {
				var r io.Reader = &errAfterReader{data: tt.in, err: tt.err, together: together}
				if onebyte {
					r = iotest.OneByteReader(r)
				}
				got, err := decodeSSE(r)
				if !equalEvs(got, tt.want) {
					t.Errorf("%s (together=%v onebyte=%v): events %q, want %q", tt.name, together, onebyte, got, tt.want)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("%s (together=%v onebyte=%v): Err() = %v, want %v wrapped", tt.name, together, onebyte, err, tt.err)
				}
				if err == tt.err {
					t.Errorf("%s: error not wrapped", tt.name)
				}
			}
		}
	}
}

// zeroReader returns 0, nil forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestSSEDecoderNoProgress(t *testing.T) {
	_, err := decodeSSE(zeroReader{})
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Err() = %v, want io.ErrNoProgress", err)
	}
}

// TestSSEDecoderEOFAfterEvent checks the end of stream and that Next keeps
// returning false.
func TestSSEDecoderEOFAfterEvent(t *testing.T) {
	d := NewSSEDecoder(strings.NewReader("event: done\ndata: [DONE]\n\n"))
	if !d.Next() {
		t.Fatalf("Next() = false, err %v", d.Err())
	}
	if ev := d.Event(); ev.Event != "done" || string(ev.Data) != "[DONE]" {
		t.Fatalf("Event() = %q %q", ev.Event, ev.Data)
	}
	for range 3 {
		if d.Next() {
			t.Fatal("Next() = true after the end")
		}
	}
	if d.Err() != nil {
		t.Fatalf("Err() = %v", d.Err())
	}
	if ev := d.Event(); ev.Event != "" || ev.Data != nil {
		t.Fatalf("Event() after the end = %+v, want zero", ev)
	}
}

// TestSSEDecoderLargeStream decodes a stream larger than the read buffer,
// with events straddling buffer boundaries, under several delivery modes.
func TestSSEDecoderLargeStream(t *testing.T) {
	var sb strings.Builder
	var want []sseEv
	for i := 0; sb.Len() < 300<<10; i++ {
		data := strings.Repeat("z", i%5000)
		name := []string{"thread.message.delta", "thread.run.step.delta", ""}[i%3]
		if name != "" {
			sb.WriteString("event: " + name + "\r\n")
		}
		sb.WriteString("data: " + data + "\r\n")
		sb.WriteString("data: end\r\n\r\n")
		want = append(want, sseEv{name, data + "\nend"})
	}
	for _, rv := range readerVariants {
		got, err := decodeSSE(rv.wrap(sb.String()))
		if err != nil || !equalEvs(got, want) {
			t.Fatalf("%s: err %v, %d events, want %d", rv.name, err, len(got), len(want))
		}
	}
}

func TestSSEDecoderLowAllocs(t *testing.T) {
	var buf bytes.Buffer
	const n = 1000
	for i := range n {
		buf.WriteString("event: thread.message.delta\ndata: {\"delta\":{\"content\":[{\"text\":{\"value\":\"")
		buf.WriteString(strings.Repeat("w", i%50))
		buf.WriteString("\"}}]}}\n\n")
	}
	in := buf.Bytes()
	r := bytes.NewReader(in)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(in)
		d := NewSSEDecoder(r)
		count := 0
		for d.Next() {
			count++
		}
		if count != n || d.Err() != nil {
			t.Fatalf("decoded %d events, err %v", count, d.Err())
		}
	})
	// The decoder, its buffers, the name map and the interned name: a
	// constant number, not one per event.
	if allocs > 12 {
		t.Errorf("%v allocations to decode %d events, want a small constant", allocs, n)
	}
}

func TestSSEDecoderNilOption(t *testing.T) {
	got, err := decodeSSE(strings.NewReader("data: x\n\n"), nil, WithSSEMaxLineSize(0), WithSSEMaxEventSize(-1))
	if err != nil || !equalEvs(got, []sseEv{{"", "x"}}) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// badReader claims to have read more bytes than it was given.
type badReader struct{}

func (badReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestSSEDecoderInvalidReadCount(t *testing.T) {
	if _, err := decodeSSE(badReader{}); err == nil || !strings.Contains(err.Error(), "invalid Read count") {
		t.Fatalf("Err() = %v, want invalid Read count", err)
	}
}

func TestSSEDecoderHugeLimit(t *testing.T) {
	got, err := decodeSSE(strings.NewReader("data: x\n\n"), WithSSEMaxLineSize(math.MaxInt), WithSSEMaxEventSize(math.MaxInt))
	if err != nil || !equalEvs(got, []sseEv{{"", "x"}}) {
		t.Fatalf("got %q, %v", got, err)
	}
}
