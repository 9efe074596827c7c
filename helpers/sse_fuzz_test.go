package helpers

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// sseFuzzSeeds are realistic OpenAI Assistants streams and edge cases.
var sseFuzzSeeds = []string{
	"event: thread.created\n" +
		`data: {"id":"thread_abc123","object":"thread","created_at":1710000000,"metadata":{}}` + "\n\n",
	"event: thread.run.created\n" +
		`data: {"id":"run_abc123","object":"thread.run","created_at":1710000001,"assistant_id":"asst_abc123","thread_id":"thread_abc123","status":"queued"}` + "\n\n" +
		"event: thread.run.queued\n" +
		`data: {"id":"run_abc123","object":"thread.run","status":"queued"}` + "\n\n" +
		"event: thread.run.in_progress\n" +
		`data: {"id":"run_abc123","object":"thread.run","status":"in_progress"}` + "\n\n",
	"event: thread.message.delta\n" +
		`data: {"id":"msg_abc123","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"Hello","annotations":[]}}]}}` + "\n\n" +
		"event: thread.message.delta\n" +
		`data: {"id":"msg_abc123","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":" world"}}]}}` + "\n\n",
	"event: thread.run.step.delta\n" +
		`data: {"id":"step_1","object":"thread.run.step.delta","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}}}` + "\n\n",
	"event: thread.run.requires_action\n" +
		`data: {"id":"run_abc123","status":"requires_action","required_action":{"type":"submit_tool_outputs"}}` + "\n\n" +
		"event: done\ndata: [DONE]\n\n",
	"event: thread.run.completed\r\n" +
		`data: {"id":"run_abc123","object":"thread.run","status":"completed"}` + "\r\n\r\n" +
		"event: done\r\ndata: [DONE]\r\n\r\n",
	"event: thread.message.delta\r" +
		`data: {"delta":{"content":[{"index":0,"type":"text","text":{"value":"CR only"}}]}}` + "\r\r" +
		"event: done\rdata: [DONE]\r\r",
	"event: error\n" +
		`data: {"code":"server_error","message":"Sorry, something went wrong."}` + "\n\n",
	": keep-alive\n\n: ping\r\n\r\nevent: thread.run.failed\ndata: {\"last_error\":{\"code\":\"rate_limit_exceeded\"}}\n\n",
	"data: [DONE]\n\n",
	"event: done\ndata: [DONE]",
	"id: 1\nretry: 3000\nevent: thread.message.created\ndata: {\"id\":\"msg_1\"}\nfoo: bar\n\n",
	"data: line one\ndata: line two\r\ndata:\rdata\n\n",
	"\xEF\xBB\xBFevent: thread.created\r\ndata: {}\r\n\r\n",
	"event: thread.message.delta\n\n\n\ndata: x\n\rdata: y\r\n\n",
	"event: thread.message.delta\ndata: {\"delta\":{\"content\":[{\"text\":{\"value\":\"\\u00e9\\n\"}}]}}\n\nevent: thread.message.completed\ndata: {\"status\":\"completed\"}",
}

// sseRefDecode is a straightforward reference implementation working on the
// whole input at once: split into lines, then apply the field rules.
func sseRefDecode(in []byte, maxLine, maxEvent int) ([]sseEv, error) {
	in = bytes.TrimPrefix(in, utf8BOM)
	var lines [][]byte
	for len(in) > 0 {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			lines = append(lines, in)
			break
		}
		lines = append(lines, in[:i])
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
	}
	var (
		evs           []sseEv
		name          string
		data          []string
		size          int
		hasData       bool
		errLineTooBig = &SSELimitError{Err: ErrSSELineTooLong, Limit: maxLine}
		errEventTooBg = &SSELimitError{Err: ErrSSEEventTooLarge, Limit: maxEvent}
	)
	for _, line := range lines {
		if len(line) > maxLine {
			return evs, errLineTooBig
		}
		if len(line) == 0 {
			if hasData {
				evs = append(evs, sseEv{name, string(bytes.Join(toBytes(data), []byte("\n")))})
			}
			name, data, size, hasData = "", nil, 0, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				size++
			}
			size += len(value)
			if size > maxEvent {
				return evs, errEventTooBg
			}
			data = append(data, string(value))
			hasData = true
		}
	}
	if hasData {
		evs = append(evs, sseEv{name, string(bytes.Join(toBytes(data), []byte("\n")))})
	}
	return evs, nil
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// sameErr reports whether two decoding errors are of the same kind.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var la, lb *SSELimitError
	if errors.As(a, &la) && errors.As(b, &lb) {
		return la.Err == lb.Err && la.Limit == lb.Limit
	}
	return false
}

// decodeSSEChecked decodes r and checks the per-event invariants.
func decodeSSEChecked(t *testing.T, r io.Reader, maxLine, maxEvent int) ([]sseEv, error) {
	t.Helper()
	d := NewSSEDecoder(r, WithSSEMaxLineSize(maxLine), WithSSEMaxEventSize(maxEvent))
	var evs []sseEv
	for d.Next() {
		ev := d.Event()
		if len(ev.Data) > maxEvent {
			t.Fatalf("event data of %d bytes, limit %d", len(ev.Data), maxEvent)
		}
		if len(ev.Event) > maxLine {
			t.Fatalf("event name of %d bytes, line limit %d", len(ev.Event), maxLine)
		}
		if bytes.ContainsAny(ev.Data, "\r") || bytes.ContainsAny([]byte(ev.Event), "\r\n") {
			t.Fatalf("line terminator inside event %q data %q", ev.Event, ev.Data)
		}
		evs = append(evs, sseEv{ev.Event, string(ev.Data)})
	}
	if len(d.buf) > sseBufLimit(maxLine) {
		t.Fatalf("read buffer grew to %d bytes, limit %d", len(d.buf), sseBufLimit(maxLine))
	}
	if d.Next() {
		t.Fatal("Next returned true after returning false")
	}
	return evs, d.Err()
}

// FuzzSSEDecoder checks that the decoder never panics, respects its limits,
// gives the same events whatever the read sizes, and agrees with a simple
// reference implementation.
func FuzzSSEDecoder(f *testing.F) {
	for _, s := range sseFuzzSeeds {
		f.Add([]byte(s))
	}
	limits := []struct{ maxLine, maxEvent int }{
		{DefaultSSEMaxLineSize, DefaultSSEMaxLineSize},
		{16, 40},
		{40, 16},
		{1, 1},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, lim := range limits {
			wantEvs, wantErr := sseRefDecode(in, lim.maxLine, lim.maxEvent)
			readers := []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(in)},
				{"onebyte", iotest.OneByteReader(bytes.NewReader(in))},
				{"half+dataerr", iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(in)))},
			}
			var firstEvs []sseEv
			var firstErr error
			for i, rd := range readers {
				evs, err := decodeSSEChecked(t, rd.r, lim.maxLine, lim.maxEvent)
				if i == 0 {
					firstEvs, firstErr = evs, err
				} else if !equalEvs(evs, firstEvs) || !sameErr(err, firstErr) {
					t.Fatalf("limits %+v: %s reader gives %q, %v; whole reader %q, %v", lim, rd.name, evs, err, firstEvs, firstErr)
				}
				if !sameErr(err, wantErr) {
					t.Fatalf("limits %+v, %s reader: Err() = %v, reference %v", lim, rd.name, err, wantErr)
				}
				if !equalEvs(evs, wantEvs) {
					t.Fatalf("limits %+v, %s reader:\n got %q\nwant %q", lim, rd.name, evs, wantEvs)
				}
			}
		}
	})
}
