package helpers

import (
	"bytes"
	"strconv"
	"sync"
	"testing"
)

// sseBenchStreamSize is the approximate size of the benchmark stream.
const sseBenchStreamSize = 10 << 20

var (
	sseBenchOnce   sync.Once
	sseBenchStream []byte
	sseBenchEvents int
)

// sseBenchInput builds, once, a ~10 MB Assistants stream made of
// thread.message.delta events (as a streamed answer is), framed by the run
// and message lifecycle events and the final done event.
func sseBenchInput() ([]byte, int) {
	sseBenchOnce.Do(func() {
		words := []string{" The", " assistant", " streams", " its", " answer", " token", " by",
			" token", ",", " and", " each", " delta", " is", " one", " event", ".", "\\n", " \\\"quoted\\\"", " é"}
		var b bytes.Buffer
		b.Grow(sseBenchStreamSize + 4096)
		n := 0
		b.WriteString("event: thread.run.created\ndata: {\"id\":\"run_abc123\",\"object\":\"thread.run\",\"created_at\":1710000000,\"assistant_id\":\"asst_abc123\",\"thread_id\":\"thread_abc123\",\"status\":\"queued\"}\n\n")
		b.WriteString("event: thread.message.created\ndata: {\"id\":\"msg_abc123\",\"object\":\"thread.message\",\"role\":\"assistant\",\"content\":[],\"status\":\"in_progress\"}\n\n")
		n += 2
		for i := 0; b.Len() < sseBenchStreamSize; i++ {
			b.WriteString("event: thread.message.delta\ndata: {\"id\":\"msg_abc123\",\"object\":\"thread.message.delta\",\"delta\":{\"content\":[{\"index\":0,\"type\":\"text\",\"text\":{\"value\":\"")
			b.WriteString(words[i%len(words)])
			if i%7 == 0 {
				b.WriteString(words[(i/7)%len(words)])
			}
			b.WriteString("\",\"annotations\":[]}}]}}\n\n")
			n++
			if i%500 == 0 {
				b.WriteString(": keep-alive " + strconv.Itoa(i) + "\n\n")
			}
		}
		b.WriteString("event: thread.message.completed\ndata: {\"id\":\"msg_abc123\",\"object\":\"thread.message\",\"status\":\"completed\"}\n\n")
		b.WriteString("event: thread.run.completed\ndata: {\"id\":\"run_abc123\",\"object\":\"thread.run\",\"status\":\"completed\"}\n\n")
		b.WriteString("event: done\ndata: [DONE]\n\n")
		n += 3
		sseBenchStream, sseBenchEvents = b.Bytes(), n
	})
	return sseBenchStream, sseBenchEvents
}

// BenchmarkSSEDecoder decodes a ~10 MB stream of thread.message.delta
// events; MB/s is the decoding throughput.
func BenchmarkSSEDecoder(b *testing.B) {
	in, want := sseBenchInput()
	r := bytes.NewReader(in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Reset(in)
		d := NewSSEDecoder(r)
		n, size := 0, 0
		for d.Next() {
			ev := d.Event()
			n++
			size += len(ev.Event) + len(ev.Data)
		}
		if d.Err() != nil || n != want || size == 0 {
			b.Fatalf("decoded %d events (want %d), err %v", n, want, d.Err())
		}
	}
}
