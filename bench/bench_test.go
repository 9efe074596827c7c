package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Every benchmark has the sub-benchmarks sdk=ours, sdk=openai-go,
// sdk=go-openai and sdk=floor, in that order, each with its own client made
// once; the first call (outside the timing) opens the connection and checks
// the answer.

var sink summary

func runCases(b *testing.B, cases []sdkCase, want func(testing.TB, summary), setBytes int64) {
	ctx := context.Background()
	for _, c := range cases {
		b.Run("sdk="+c.name, func(b *testing.B) {
			if c.skip != "" {
				b.Skip(c.skip)
			}
			s, err := c.op(ctx)
			if err != nil {
				b.Fatal(err)
			}
			want(b, s)
			if setBytes > 0 {
				b.SetBytes(setBytes)
			}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if sink, err = c.op(ctx); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// cpuClock measures the CPU time (user + system) of this process, the
// client side only: the server runs in another process. Wall time on a
// loopback connection is mostly waiting for the other process; CPU time per
// operation is what the SDK itself costs, and varies much less between runs.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds the cpu-ns/op metric.
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkRetrieveRun(b *testing.B) {
	runCases(b, newClients(b).retrieveRun(), wantRun, 0)
}

func BenchmarkListMessages(b *testing.B) {
	runCases(b, newClients(b).listMessages(), wantPage, 0)
}

func BenchmarkCreateMessage(b *testing.B) {
	runCases(b, newClients(b).createMessage(), wantCreated, 0)
}

// BenchmarkStreamRun reads a streamed run of about 10 MB (b.SetBytes, so
// the MB/s column is the decoding throughput).
func BenchmarkStreamRun(b *testing.B) {
	runCases(b, newClients(b).streamRun(), wantStream, int64(len(streamBody())))
}

// BenchmarkPageAll iterates over all messages of a thread, 100 a page, with
// 1,000 and 10,000 messages. Besides time and allocations it reports
// peak-heap-B: the most heap that stays reachable during the iteration,
// measured by a forced GC at every tenth of the items (so ten times for
// either item count), above the heap before it. It is measured in one extra
// pass outside the timing. An iterator that holds one page at a time shows
// the same figure for both item counts; one that keeps what it has read
// grows tenfold. (The heap including garbage is not used: it follows GOGC
// and everything else the process holds, not the iterator.)
func BenchmarkPageAll(b *testing.B) {
	cases := newClients(b).pageAll()
	ctx := context.Background()
	for _, n := range []int{pageAllSmall, pageAllLarge} {
		thread := itemsThread(n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			for _, c := range cases {
				b.Run("sdk="+c.name, func(b *testing.B) {
					if c.skip != "" {
						b.Skip(c.skip)
					}
					peak, s, err := heapDuring(ctx, c, thread, n)
					if err != nil {
						b.Fatal(err)
					}
					wantAll(b, s, n)
					b.ReportAllocs()
					cpu := startCPU()
					for b.Loop() {
						if sink, err = c.iterate(ctx, thread, func(string) {}); err != nil {
							b.Fatal(err)
						}
					}
					cpu.report(b)
					b.ReportMetric(float64(peak), "peak-heap-B")
				})
			}
		})
	}
}

// heapDuring iterates once and returns the most heap reachable at ten
// forced GCs spread over the n items, above the heap before.
func heapDuring(ctx context.Context, c pageCase, thread string, n int) (peak uint64, s summary, err error) {
	runtime.GC()
	base := heapInUse()
	count := 0
	s, err = c.iterate(ctx, thread, func(string) {
		count++
		if count%(n/10) == 0 {
			runtime.GC()
			peak = max(peak, heapInUse())
		}
	})
	return sub(peak, base), s, err
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// heapInUse is the bytes of heap objects, live or not yet swept; right
// after runtime.GC, the live heap.
func heapInUse() uint64 {
	metrics.Read(heapSample)
	return heapSample[0].Value.Uint64()
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

var pollSeq atomic.Int64

func newPollRunID(sdk string) func() string {
	return func() string { return fmt.Sprintf("run_poll_%s_%d", sdk, pollSeq.Add(1)) }
}

// BenchmarkPollRun follows a run that completes pollSteps (5) intervals of
// openai-poll-after-ms: 10 after the first GET, with each SDK's poll helper.
// It reports requests/op (the ideal is pollSteps+1 = 6: one GET per hint
// interval and the one that sees the completion) and lag-ms/op, how long
// after the completion the client saw it (ideal: under one interval, 10
// ms). The floor is that ideal loop written by hand.
func BenchmarkPollRun(b *testing.B) {
	cl := newClients(b)
	ctx := context.Background()
	for _, name := range []string{"ours", "openai-go", "go-openai", "floor"} {
		b.Run("sdk="+name, func(b *testing.B) {
			c := caseNamed(cl.pollRun(newPollRunID(name)), name)
			if c.skip != "" {
				b.Skip(c.skip)
			}
			s, err := c.op(ctx)
			if err != nil {
				b.Fatal(err)
			}
			wantPolled(b, s)
			b.ReportAllocs()
			var polls, lag int
			for b.Loop() {
				if sink, err = c.op(ctx); err != nil {
					b.Fatal(err)
				}
				polls += sink.Polls
				lag += sink.LagUS
			}
			b.ReportMetric(float64(polls)/float64(b.N), "requests/op")
			b.ReportMetric(float64(lag)/1000/float64(b.N), "lag-ms/op")
		})
	}
}

func caseNamed(cases []sdkCase, name string) sdkCase {
	for _, c := range cases {
		if c.name == name {
			return c
		}
	}
	panic("no case " + name)
}

// --- expected answers --------------------------------------------------------

func wantRun(tb testing.TB, s summary) {
	tb.Helper()
	if s.ID != benchRun || s.Status != "completed" || s.Tokens != 2155 {
		tb.Fatalf("run = %+v, want %s completed with 2155 tokens", s, benchRun)
	}
}

var firstText = sentence(0, 44) + " See 【4:0†order.pdf】 and the label at sandbox:/mnt/data/label.pdf."

func wantPage(tb testing.TB, s summary) {
	tb.Helper()
	if s.N != listPageSize || s.ID != messageID(listPageSize-1) || s.Text != firstText {
		tb.Fatalf("page = {N:%d ID:%s Text:%.40q}, want %d messages ending at %s, first text %.40q",
			s.N, s.ID, s.Text, listPageSize, messageID(listPageSize-1), firstText)
	}
	wantTally(tb, s, 0, listPageSize)
}

// wantTally checks the text and annotations an SDK read from messages
// [from, to), against the fixtures decoded with encoding/json.
func wantTally(tb testing.TB, s summary, from, to int) {
	tb.Helper()
	var want summary
	for i := from; i < to; i++ {
		var m struct {
			Content []struct {
				Text struct {
					Value       string `json:"value"`
					Annotations []struct {
						Text         string            `json:"text"`
						FileCitation map[string]string `json:"file_citation"`
						FilePath     map[string]string `json:"file_path"`
					} `json:"annotations"`
				} `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(messageFixture(i, benchThread), &m); err != nil {
			tb.Fatal(err)
		}
		for _, c := range m.Content {
			want.Chars += len(c.Text.Value)
			for _, a := range c.Text.Annotations {
				want.Chars += len(a.Text)
				if a.FileCitation["file_id"] != "" || a.FilePath["file_id"] != "" {
					want.Annots++
				}
			}
		}
	}
	if want.Annots == 0 {
		tb.Fatal("the fixtures have no annotations; the check would prove nothing")
	}
	if s.Chars != want.Chars || s.Annots != want.Annots {
		tb.Fatalf("read %d bytes of text and %d annotations, want %d and %d", s.Chars, s.Annots, want.Chars, want.Annots)
	}
}

func wantCreated(tb testing.TB, s summary) {
	tb.Helper()
	if s.ID != "msg_created0001" || s.Status != "completed" {
		tb.Fatalf("created = %+v, want msg_created0001 completed", s)
	}
}

var (
	streamOnce         sync.Once
	streamB            []byte
	streamText         string
	streamEventsWanted int
)

// streamBody is the StreamRun body the server sends, rebuilt here (it is
// deterministic) to check what the clients decode.
func streamBody() []byte {
	streamOnce.Do(func() {
		streamB, streamText = streamFixture(streamSize)
		streamEventsWanted = countEvents(streamB) - 1 // without done
	})
	return streamB
}

func countEvents(b []byte) int {
	n := 0
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\n' && b[i+1] == '\n' {
			n++
		}
	}
	return n
}

func wantStream(tb testing.TB, s summary) {
	tb.Helper()
	streamBody()
	if s.Text != streamText || s.N != streamEventsWanted || s.ID != benchRun || s.Status != "completed" {
		tb.Fatalf("stream = {N:%d ID:%s Status:%s len(Text):%d}, want %d events, run %s completed, %d bytes of text",
			s.N, s.ID, s.Status, len(s.Text), streamEventsWanted, benchRun, len(streamText))
	}
}

func wantAll(tb testing.TB, s summary, n int) {
	tb.Helper()
	if s.N != n || s.ID != messageID(n-1) {
		tb.Fatalf("iterated %d items ending at %s, want %d ending at %s", s.N, s.ID, n, messageID(n-1))
	}
	wantTally(tb, s, 0, n)
}

func wantPolled(tb testing.TB, s summary) {
	tb.Helper()
	if s.Status != "completed" || s.Polls < 2 {
		tb.Fatalf("poll = %+v, want a completed run seen after at least 2 GETs", s)
	}
}
