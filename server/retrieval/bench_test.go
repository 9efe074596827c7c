package retrieval_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/retrieval"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
)

// The benchmarks are in package retrieval_test because indextest, which
// holds the benchmark bodies shared with the store indexes, imports
// retrieval.

// memoryBench is the in-memory index under benchmark (the pipeline's
// default index).
var memoryBench = indextest.BenchHarness{New: func(*testing.B, []index.Ref) index.Index { return memory.New() }}

// BenchmarkIngest10MB: see indextest.BenchIngest10MB, on the in-memory
// index.
func BenchmarkIngest10MB(b *testing.B) { indextest.BenchIngest10MB(b, memoryBench) }

// BenchmarkSearch100k runs hybrid searches (one query, 10 results) over
// 100,000 chunks of about 60 words in 1,000 files (indextest.BenchLoad100k)
// in the in-memory index, and reports the 50th and 99th percentile
// latency and the heap the index holds. Sub-benchmark idle searches one
// query at a time; busy does the same while GOMAXPROCS other goroutines
// keep every processor busy (each burns CPU without pause), as on a
// loaded machine or a server with other work: a search then waits for the
// scheduler to give it a processor.
func BenchmarkSearch100k(b *testing.B) {
	ctx := context.Background()
	h, err := embed.NewHashing()
	if err != nil {
		b.Fatal(err)
	}
	idx := memory.New()
	words := indextest.BenchWords(b)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	indextest.BenchLoad100k(b, idx, indextest.BenchRefs100k(), h, words)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	p, err := retrieval.New(func(o *retrieval.Options) { o.Index = idx; o.Embedder = h })
	if err != nil {
		b.Fatal(err)
	}
	qs := indextest.BenchQuestions(b)
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "busy"
		}
		b.Run(name, func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if busy {
				for range runtime.GOMAXPROCS(0) {
					wg.Go(func() { burn(stop) })
				}
			}
			defer func() {
				close(stop)
				wg.Wait()
			}()
			var lat []time.Duration
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := qs[i%len(qs)]
				i++
				start := time.Now()
				res, err := p.Search(ctx, retrieval.Request{Queries: []string{q}, Scope: index.Scope{VectorStoreIDs: []string{"vs_bench"}}, MaxResults: 10})
				lat = append(lat, time.Since(start))
				if err != nil || len(res) == 0 {
					b.Fatalf("search %q: %d results, %v", q, len(res), err)
				}
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "index-MiB")
			b.ReportMetric(float64(idx.Len()), "chunks")
		})
	}
}

// burn keeps a processor busy until stop is closed.
func burn(stop <-chan struct{}) {
	x := uint64(1)
	for {
		select {
		case <-stop:
			burnSink.Add(x)
			return
		default:
		}
		for range 10_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
}

var burnSink atomic.Uint64
