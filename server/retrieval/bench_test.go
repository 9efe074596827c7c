package retrieval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
)

// benchWords returns the words of the quality documents: English text
// with a realistic mix of short and long words (and so of tokens per
// byte).
func benchWords(b *testing.B) []string {
	b.Helper()
	docs, err := filepath.Glob(filepath.Join("testdata", "quality", "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		b.Fatalf("no documents: %v", err)
	}
	var words []string
	for _, d := range docs {
		t, err := os.ReadFile(d)
		if err != nil {
			b.Fatal(err)
		}
		analyze.Words(string(t), func(w string) bool {
			words = append(words, w)
			return true
		})
	}
	return words
}

// benchText writes n bytes of sentences of random words.
func benchText(r *rand.Rand, words []string, n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		k := 6 + r.IntN(14)
		for i := range k {
			w := words[r.IntN(len(words))]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			sb.WriteString(w)
			if i < k-1 {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(". ")
		if r.IntN(6) == 0 {
			sb.WriteString("\n\n")
		}
	}
	return sb.String()
}

// BenchmarkIngest10MB chunks (auto, 800/400 tokens), embeds (built-in,
// 256 dimensions) and indexes (memory) 10 MB of text in 100 files of
// 100 KB, two files at a time (the machine's two cores).
func BenchmarkIngest10MB(b *testing.B) {
	words := benchWords(b)
	r := rand.New(rand.NewPCG(1, 2))
	files := make([]string, 100)
	total := 0
	for i := range files {
		files[i] = benchText(r, words, 100<<10)
		total += len(files[i])
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	workers := runtime.GOMAXPROCS(0)
	for b.Loop() {
		p, err := New()
		if err != nil {
			b.Fatal(err)
		}
		next := make(chan int)
		var wg sync.WaitGroup
		var chunks int64
		var mu sync.Mutex
		for range workers {
			wg.Go(func() {
				for i := range next {
					st, err := p.Ingest(ctx, index.Ref{VectorStoreID: "vs", FileID: fmt.Sprintf("file-%03d", i)}, files[i], chunk.Auto())
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					chunks += int64(st.Chunks)
					mu.Unlock()
				}
			})
		}
		for i := range files {
			next <- i
		}
		close(next)
		wg.Wait()
		b.ReportMetric(float64(chunks), "chunks")
	}
}

// BenchmarkSearch100k runs hybrid searches (one query, 10 results) over
// 100,000 chunks of about 60 words in 1,000 files, and reports the 50th
// and 99th percentile latency and the heap the index holds. Sub-benchmark
// idle searches one query at a time; busy does the same while
// GOMAXPROCS other goroutines keep every processor busy (each burns CPU
// without pause), as on a loaded machine or a server with other work: a
// search then waits for the scheduler to give it a processor.
func BenchmarkSearch100k(b *testing.B) {
	const nChunks, perFile = 100_000, 100
	words := benchWords(b)
	r := rand.New(rand.NewPCG(3, 4))
	h, err := embed.NewHashing()
	if err != nil {
		b.Fatal(err)
	}
	idx := memory.New()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	texts := make([]string, perFile)
	for f := range nChunks / perFile {
		ref := index.Ref{VectorStoreID: "vs", FileID: fmt.Sprintf("file-%04d", f)}
		for i := range texts {
			texts[i] = benchText(r, words, 350)
		}
		vecs, err := h.Embed(ctx, texts)
		if err != nil {
			b.Fatal(err)
		}
		cs := make([]index.Chunk, perFile)
		for i := range cs {
			cs[i] = index.Chunk{Ref: ref, Index: i, Text: texts[i], Vector: vecs[i]}
		}
		if err := idx.Put(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	p, err := New(func(o *Options) { o.Index = idx; o.Embedder = h })
	if err != nil {
		b.Fatal(err)
	}
	qs := loadQuestions(b)
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
				q := qs[i%len(qs)].text
				i++
				start := time.Now()
				res, err := p.Search(ctx, Request{Queries: []string{q}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}, MaxResults: 10})
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
