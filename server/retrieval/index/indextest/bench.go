package indextest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/retrieval"
	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// BenchHarness makes the index under benchmark.
type BenchHarness struct {
	// New returns an empty index with the built-in embedder's model and
	// dimension, refs attached (see Harness.New).
	New func(b *testing.B, refs []index.Ref) index.Index
	// Settle, when set, brings the index to its steady state after
	// BenchSearch100k's load, untimed (for PostgreSQL: VACUUM ANALYZE,
	// which autovacuum does after a bulk load). Optional.
	Settle func(b *testing.B, x index.Index)
}

// qualityDir is the retrieval package's labelled set (its documents give
// the benchmarks realistic words, its questions realistic queries).
func qualityDir(b *testing.B) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		b.Fatal("no source path")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "quality")
}

// BenchWords returns the words of the labelled set's documents: English
// text with a realistic mix of short and long words (and so of tokens per
// byte), in file and text order.
func BenchWords(b *testing.B) []string {
	b.Helper()
	docs, err := filepath.Glob(filepath.Join(qualityDir(b), "docs", "*.md"))
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

// BenchQuestions returns the labelled set's questions in file order.
func BenchQuestions(b *testing.B) []string {
	b.Helper()
	f, err := os.Open(filepath.Join(qualityDir(b), "questions.tsv"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var qs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if q, _, _ := strings.Cut(sc.Text(), "\t"); q != "" && !strings.HasPrefix(q, "#") {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		b.Fatal("no questions")
	}
	return qs
}

// BenchText returns at least n bytes of sentences of words drawn with r,
// with a paragraph break after about one sentence in six.
func BenchText(r *rand.Rand, words []string, n int) string {
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

// BenchIngest10MB chunks (auto: 800/400 tokens), embeds (built-in, 256
// dimensions) and indexes 10 MB of text in 100 files of 100 KB through
// the retrieval pipeline, GOMAXPROCS files at a time. Making the empty
// index is not timed.
func BenchIngest10MB(b *testing.B, h BenchHarness) {
	words := BenchWords(b)
	r := rand.New(rand.NewPCG(1, 2))
	files := make([]string, 100)
	refs := make([]index.Ref, len(files))
	total := 0
	for i := range files {
		files[i] = BenchText(r, words, 100<<10)
		refs[i] = index.Ref{VectorStoreID: "vs_bench", FileID: fmt.Sprintf("file-%03d", i)}
		total += len(files[i])
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	workers := runtime.GOMAXPROCS(0)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		x := h.New(b, refs)
		p, err := retrieval.New(func(o *retrieval.Options) { o.Index = x })
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		next := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		chunks := 0
		for range workers {
			wg.Go(func() {
				for i := range next {
					st, err := p.Ingest(ctx, refs[i], files[i], chunk.Auto())
					if err != nil {
						b.Error(err)
						continue
					}
					mu.Lock()
					chunks += st.Chunks
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

// bench100kPerFile is the number of chunks BenchLoad100k puts in each file.
const bench100kPerFile = 100

// BenchRefs100k returns the 1,000 files (file-0000 to file-0999 of
// vector store vs_bench) that BenchLoad100k fills with 100,000 chunks.
func BenchRefs100k() []index.Ref {
	refs := make([]index.Ref, 100_000/bench100kPerFile)
	for f := range refs {
		refs[f] = index.Ref{VectorStoreID: "vs_bench", FileID: fmt.Sprintf("file-%04d", f)}
	}
	return refs
}

// BenchLoad100k puts 100 chunks of about 60 words (350 bytes of BenchText
// over words, the same on every call with the same words) in each file of
// refs, in order, with vectors from emb; it does not stop b's timer.
// words are BenchWords, loaded by the caller so that a caller measuring
// the heap the load leaves can load them before its first reading.
func BenchLoad100k(b *testing.B, x index.Index, refs []index.Ref, emb embed.Embedder, words []string) {
	b.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	texts := make([]string, bench100kPerFile)
	for _, ref := range refs {
		for i := range texts {
			texts[i] = BenchText(r, words, 350)
		}
		vecs, err := emb.Embed(ctx, texts)
		if err != nil {
			b.Fatal(err)
		}
		cs := make([]index.Chunk, bench100kPerFile)
		for i := range cs {
			cs[i] = index.Chunk{Ref: ref, Index: i, Text: texts[i], Vector: vecs[i]}
		}
		if err := x.Put(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchSearch100k puts 100,000 chunks of about 60 words (350 bytes) in
// 1,000 files of one vector store (not timed), then runs the labelled
// set's questions through the retrieval pipeline (10 results) in each
// mode, reporting the 50th and 99th percentile latency (after one search
// that fills the caches, logged apart). B/op is what one
// search allocates in the Go process.
func BenchSearch100k(b *testing.B, h BenchHarness) {
	qs := BenchQuestions(b)
	emb, err := embed.NewHashing()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	refs := BenchRefs100k()
	x := h.New(b, refs)
	start := time.Now()
	BenchLoad100k(b, x, refs, emb, BenchWords(b))
	b.Logf("loaded %d chunks in %v", len(refs)*bench100kPerFile, time.Since(start).Round(time.Millisecond))
	if h.Settle != nil {
		h.Settle(b, x)
	}
	p, err := retrieval.New(func(o *retrieval.Options) { o.Index = x; o.Embedder = emb })
	if err != nil {
		b.Fatal(err)
	}
	// The first search after the load fills the index's caches (the
	// store indexes' vector rows): it is timed apart, not counted in the
	// percentiles, which are those of a running server.
	start = time.Now()
	if _, err := p.Search(ctx, retrieval.Request{Queries: []string{qs[0]},
		Scope: index.Scope{VectorStoreIDs: []string{"vs_bench"}}, MaxResults: 10}); err != nil {
		b.Fatal(err)
	}
	b.Logf("first (cold) hybrid search: %v", time.Since(start).Round(time.Millisecond))
	for _, mode := range []retrieval.Mode{retrieval.Hybrid, retrieval.KeywordOnly, retrieval.VectorOnly} {
		b.Run(mode.String(), func(b *testing.B) {
			var lat []time.Duration
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := qs[i%len(qs)]
				i++
				start := time.Now()
				res, err := p.Search(ctx, retrieval.Request{Queries: []string{q}, Mode: mode,
					Scope: index.Scope{VectorStoreIDs: []string{"vs_bench"}}, MaxResults: 10})
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
		})
	}
}
