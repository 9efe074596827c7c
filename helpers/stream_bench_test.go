package helpers

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
)

// streamBenchSize is the approximate size of the benchmark stream.
const streamBenchSize = 10 << 20

var (
	streamBenchOnce sync.Once
	streamBenchIn   []byte
	streamBenchText string
)

// streamBenchInput builds, once, a ~10 MB run stream made of
// thread.message.delta events with OpenAI's framing (run and message
// lifecycle events around them, done at the end), and the text the deltas
// add up to. The message.completed event is left out so that the
// accumulated text is the deltas' text.
func streamBenchInput() ([]byte, string) {
	streamBenchOnce.Do(func() {
		words := []string{" The", " assistant", " streams", " its", " answer", " token", " by",
			" token", ",", " and", " each", " delta", " is", " one", " event", ".", "\n", ` "quoted"`, " é"}
		var b, text bytes.Buffer
		b.Grow(streamBenchSize + 4096)
		b.WriteString(`event: thread.run.created` + "\n" + `data: {"id":"run_abc123","object":"thread.run","created_at":1710000000,"assistant_id":"asst_abc123","thread_id":"thread_abc123","status":"queued","model":"gpt-4o","instructions":"","tools":[],"parallel_tool_calls":true,"response_format":"auto"}` + "\n\n")
		b.WriteString(`event: thread.message.created` + "\n" + `data: {"id":"msg_abc123","object":"thread.message","created_at":1710000001,"thread_id":"thread_abc123","role":"assistant","content":[],"status":"in_progress"}` + "\n\n")
		for i := 0; b.Len() < streamBenchSize; i++ {
			w := words[i%len(words)]
			if i%7 == 0 {
				w += words[(i/7)%len(words)]
			}
			q, _ := json.Marshal(w)
			text.WriteString(w)
			b.WriteString(`event: thread.message.delta` + "\n" + `data: {"id":"msg_abc123","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":`)
			b.Write(q)
			b.WriteString(`,"annotations":[]}}]}}` + "\n\n")
		}
		b.WriteString(`event: thread.run.completed` + "\n" + `data: {"id":"run_abc123","object":"thread.run","created_at":1710000000,"assistant_id":"asst_abc123","thread_id":"thread_abc123","status":"completed","model":"gpt-4o","instructions":"","tools":[],"parallel_tool_calls":true,"response_format":"auto"}` + "\n\n")
		b.WriteString("event: done\ndata: [DONE]\n\n")
		streamBenchIn, streamBenchText = b.Bytes(), text.String()
	})
	return streamBenchIn, streamBenchText
}

// BenchmarkStream decodes the ~10 MB stream. MB/s is stream bytes per
// second.
//
//	go test -run '^$' -bench BenchmarkStream -benchtime 20x ./helpers
//
// Sub-benchmarks:
//   - typed+accumulate: Stream (typed events, MessageDelta) fed
//     to an Accumulator, checking the final text;
//   - typed: Stream alone (typed events, no accumulation);
//   - floor: SSEDecoder plus json.Unmarshal of each event into a minimal
//     struct holding just the text, appended to a buffer; the least any
//     encoding/json based decoder must do.
func BenchmarkStream(b *testing.B) {
	in, want := streamBenchInput()
	b.Run("typed+accumulate", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			var acc Accumulator
			s := NewStream(b.Context(), io.NopCloser(bytes.NewReader(in)), nil)
			if err := acc.Consume(s); err != nil {
				b.Fatal(err)
			}
			msgs := acc.Messages()
			if len(msgs) != 1 || MessageText(msgs[0]) != want {
				b.Fatalf("accumulated text differs (%d messages)", len(msgs))
			}
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			s := NewStream(b.Context(), io.NopCloser(bytes.NewReader(in)), nil)
			n := 0
			for s.Next() {
				if s.Event().MessageDelta != nil {
					n++
				}
			}
			if s.Err() != nil || n == 0 {
				b.Fatal(s.Err(), n)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var text []byte
		for b.Loop() {
			text = text[:0]
			d := NewSSEDecoder(bytes.NewReader(in))
			for d.Next() {
				ev := d.Event()
				if ev.Event != EventMessageDelta {
					continue
				}
				var m struct {
					Delta struct {
						Content []struct {
							Text struct {
								Value string `json:"value"`
							} `json:"text"`
						} `json:"content"`
					} `json:"delta"`
				}
				if err := json.Unmarshal(ev.Data, &m); err != nil {
					b.Fatal(err)
				}
				for _, c := range m.Delta.Content {
					text = append(text, c.Text.Value...)
				}
			}
			if d.Err() != nil || len(text) != len(want) {
				b.Fatal(d.Err(), len(text))
			}
		}
	})
}

// TestStreamBenchInput keeps the benchmark honest: its stream decodes,
// and the accumulated text is what the deltas carry.
func TestStreamBenchInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and decodes a 10 MB stream; skipped with -short")
	}
	in, want := streamBenchInput()
	var acc Accumulator
	var streamed strings.Builder
	acc.OnTextDelta = func(_, text string) { streamed.WriteString(text) }
	if err := acc.Consume(NewStream(t.Context(), io.NopCloser(bytes.NewReader(in)), nil)); err != nil {
		t.Fatal(err)
	}
	if got := MessageText(acc.Messages()[0]); got != want || streamed.String() != want {
		t.Fatalf("text: %d bytes accumulated, %d streamed, want %d", len(got), streamed.Len(), len(want))
	}
}
