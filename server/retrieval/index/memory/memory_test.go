package memory

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

var ctx = context.Background()

var vocabulary = []string{"refund", "parcel", "battery", "warranty", "garden", "tomato", "river", "bridge",
	"invoice", "password", "router", "museum", "ticket", "orbit", "comet", "violin", "recipe", "flour"}

// corpus builds n files of m chunks of random words in store "vs1" (and
// every third file in "vs2"), with hashing-embedder vectors.
func corpus(t *testing.T, n, m int, seed uint64) map[index.Ref][]index.Chunk {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	h, _ := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 32 })
	out := map[index.Ref][]index.Chunk{}
	for f := range n {
		vs := "vs1"
		if f%3 == 2 {
			vs = "vs2"
		}
		ref := index.Ref{VectorStoreID: vs, FileID: fmt.Sprintf("file-%03d", f)}
		for c := range m {
			words := make([]string, 5+r.IntN(30))
			for i := range words {
				words[i] = vocabulary[r.IntN(len(vocabulary))]
			}
			text := fmt.Sprint(words)
			out[ref] = append(out[ref], index.Chunk{Ref: ref, Index: c, Text: text, Vector: h.EmbedOne(text)})
		}
	}
	return out
}

func build(t *testing.T, files map[index.Ref][]index.Chunk, opts ...func(*Options)) *Index {
	t.Helper()
	x := New(opts...)
	for ref, cs := range files {
		require.NoError(t, x.Put(ctx, ref, cs))
	}
	return x
}

// referenceBM25 scores the chunks in scope with the textbook formula and
// the scope's statistics, independently of the index's postings.
func referenceBM25(chunks []index.Chunk, inScope func(index.Chunk) bool, query string, k int) []index.Hit {
	// The statistics are the scope's.
	var all []index.Chunk
	for _, c := range chunks {
		if inScope(c) {
			all = append(all, c)
		}
	}
	if len(all) == 0 {
		return nil
	}
	n := float64(len(all))
	var total float64
	tfs := make([]map[string]int, len(all))
	df := map[string]int{}
	for i, c := range all {
		tfs[i] = map[string]int{}
		for _, t := range analyze.TermList(c.Text) {
			tfs[i][t]++
			total++
		}
		for t := range tfs[i] {
			df[t]++
		}
	}
	avg := total / n
	var hits []index.Hit
	for i, c := range all {
		if !inScope(c) {
			continue
		}
		dl := 0.0
		for _, v := range tfs[i] {
			dl += float64(v)
		}
		var s float64
		for _, t := range analyze.TermList(query) {
			tf := float64(tfs[i][t])
			if tf == 0 {
				continue
			}
			d := float64(df[t])
			s += math.Log(1+(n-d+0.5)/(d+0.5)) * tf * (k1 + 1) / (tf + k1*(1-b+b*dl/avg))
		}
		if s > 0 {
			hits = append(hits, index.Hit{Chunk: index.Chunk{Ref: c.Ref, Index: c.Index, Text: c.Text}, Score: s})
		}
	}
	sortHits(hits)
	return hits[:min(k, len(hits))]
}

func referenceCosine(all []index.Chunk, inScope func(index.Chunk) bool, q []float32, k int) []index.Hit {
	var hits []index.Hit
	for _, c := range all {
		if !inScope(c) {
			continue
		}
		var s float64
		for i := range q {
			s += float64(q[i]) * float64(c.Vector[i])
		}
		if s > 0 {
			hits = append(hits, index.Hit{Chunk: index.Chunk{Ref: c.Ref, Index: c.Index, Text: c.Text}, Score: s})
		}
	}
	sortHits(hits)
	return hits[:min(k, len(hits))]
}

func sortHits(h []index.Hit) {
	sort.SliceStable(h, func(i, j int) bool {
		if math.Abs(h[i].Score-h[j].Score) > 1e-6 {
			return h[i].Score > h[j].Score
		}
		a, b := h[i].Chunk, h[j].Chunk
		if a.VectorStoreID != b.VectorStoreID {
			return a.VectorStoreID < b.VectorStoreID
		}
		if a.FileID != b.FileID {
			return a.FileID < b.FileID
		}
		return a.Index < b.Index
	})
}

func flatten(files map[index.Ref][]index.Chunk) []index.Chunk {
	var all []index.Chunk
	for _, cs := range files {
		all = append(all, cs...)
	}
	return all
}

// assertSameHits checks got against the reference want: the same chunks
// with the same scores to within tol, except that chunks whose scores are
// within 2×tol may swap places.
func assertSameHits(t *testing.T, want, got []index.Hit, tol float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if want[i].Chunk.Ref != got[i].Chunk.Ref || want[i].Chunk.Index != got[i].Chunk.Index {
			assert.InDelta(t, want[i].Score, got[i].Score, 2*tol, "hit %d: a different chunk, with a different score", i)
			continue
		}
		assert.Equal(t, want[i].Chunk, got[i].Chunk, "hit %d", i)
		assert.InDelta(t, want[i].Score, got[i].Score, tol, "hit %d", i)
	}
}

// assertSameVectorHits is assertSameHits for vector searches, which keep
// only hits scoring above 0: a chunk whose exact score is within 2×tol of
// 0 may be missing or present (quantisation may move it either side), so
// only the hits before the first such one are compared, and the rest of
// got must score within 3×tol of 0.
func assertSameVectorHits(t *testing.T, want, got []index.Hit, tol float64) {
	t.Helper()
	n := 0
	for n < len(want) && want[n].Score > 2*tol {
		n++
	}
	require.GreaterOrEqual(t, len(got), n)
	assertSameHits(t, want[:n], got[:n], tol)
	for i, h := range got[n:] {
		assert.LessOrEqual(t, h.Score, 3*tol, "hit %d past the clear ones", n+i)
	}
}

// quantError bounds the error of a cosine similarity with the unit query
// q computed from int8 codes: each number of a unit vector is off by at
// most max|v_i|/254 <= 1/254 (see quant.go).
func quantError(q []float32) float64 {
	var l1 float64
	for _, x := range embed.Normalize(slices.Clone(q)) {
		l1 += math.Abs(float64(x))
	}
	return l1/254 + 1e-6
}

func TestSearchAgainstReference(t *testing.T) {
	files := corpus(t, 30, 5, 1)
	x := build(t, files)
	all := flatten(files)
	h, _ := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 32 })
	scopes := []struct {
		name    string
		scope   index.Scope
		inScope func(index.Chunk) bool
	}{
		{"vs1", index.Scope{VectorStoreIDs: []string{"vs1"}}, func(c index.Chunk) bool { return c.VectorStoreID == "vs1" }},
		{"both", index.Scope{VectorStoreIDs: []string{"vs1", "vs2"}}, func(index.Chunk) bool { return true }},
		{"filtered", index.Scope{VectorStoreIDs: []string{"vs1", "vs2"}, Allow: func(r index.Ref) bool { return r.FileID < "file-010" }},
			func(c index.Chunk) bool { return c.FileID < "file-010" }},
	}
	for _, sc := range scopes {
		for _, q := range []string{"refund parcel", "tomato garden recipe flour", "comet", "unknownword"} {
			t.Run(sc.name+"/"+q, func(t *testing.T) {
				got, err := x.SearchKeyword(ctx, q, sc.scope, 10)
				require.NoError(t, err)
				assertSameHits(t, referenceBM25(all, sc.inScope, q, 10), got, 1e-5)

				qv := h.EmbedOne(q)
				got, err = x.SearchVector(ctx, qv, sc.scope, 10)
				require.NoError(t, err)
				assertSameVectorHits(t, referenceCosine(all, sc.inScope, qv, 10), got, quantError(qv))
			})
		}
	}
}

// TestFilterBeforeRanking: the best chunks overall are in disallowed
// files; a filtered search still returns k allowed chunks, not the top k
// minus the disallowed ones.
func TestFilterBeforeRanking(t *testing.T) {
	x := New()
	h, _ := embed.NewHashing()
	for i := range 20 {
		ref := index.Ref{VectorStoreID: "vs", FileID: fmt.Sprintf("f%02d", i)}
		text := "apple banana"
		if i < 10 {
			text = "apple apple apple banana banana" // the strongest matches
		}
		require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: text, Vector: h.EmbedOne(text)}}))
	}
	calls := map[index.Ref]int{}
	scope := index.Scope{VectorStoreIDs: []string{"vs", "vs"}, Allow: func(r index.Ref) bool { calls[r]++; return r.FileID >= "f10" }}
	for _, search := range []func() ([]index.Hit, error){
		func() ([]index.Hit, error) { return x.SearchKeyword(ctx, "apple banana", scope, 5) },
		func() ([]index.Hit, error) { return x.SearchVector(ctx, h.EmbedOne("apple apple banana"), scope, 5) },
	} {
		clear(calls)
		hits, err := search()
		require.NoError(t, err)
		require.Len(t, hits, 5)
		for _, hit := range hits {
			assert.GreaterOrEqual(t, hit.Chunk.FileID, "f10")
		}
		for r, n := range calls {
			assert.Equal(t, 1, n, "Allow called once for %v", r)
		}
	}
}

func TestPutReplacesAndDelete(t *testing.T) {
	x := New()
	ref := index.Ref{VectorStoreID: "vs", FileID: "f1"}
	other := index.Ref{VectorStoreID: "vs", FileID: "f2"}
	scope := index.Scope{VectorStoreIDs: []string{"vs"}}
	require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "old words here"}}))
	require.NoError(t, x.Put(ctx, other, []index.Chunk{{Ref: other, Text: "other words"}}))
	require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "new text"}, {Ref: ref, Index: 1, Text: "more new text"}}))
	assert.Equal(t, 3, x.Len())
	hits, _ := x.SearchKeyword(ctx, "old", scope, 10)
	assert.Empty(t, hits, "replaced chunks are gone")
	hits, _ = x.SearchKeyword(ctx, "new", scope, 10)
	assert.Len(t, hits, 2)
	fresh := New()
	require.NoError(t, fresh.Put(ctx, other, []index.Chunk{{Ref: other, Text: "other words"}}))
	require.NoError(t, fresh.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "new text"}, {Ref: ref, Index: 1, Text: "more new text"}}))
	want, _ := fresh.SearchKeyword(ctx, "new words old", scope, 10)
	got, _ := x.SearchKeyword(ctx, "new words old", scope, 10)
	assert.Equal(t, want, got, "statistics follow replacement")

	require.NoError(t, x.Delete(ctx, ref))
	hits, _ = x.SearchKeyword(ctx, "new words", scope, 10)
	require.Len(t, hits, 1)
	assert.Equal(t, other, hits[0].Chunk.Ref)
	require.NoError(t, x.Delete(ctx, index.Ref{VectorStoreID: "vs", FileID: "nope"}))

	require.NoError(t, x.DeleteVectorStore(ctx, "vs"))
	assert.Zero(t, x.Len())
	hits, _ = x.SearchKeyword(ctx, "words", scope, 10)
	assert.Empty(t, hits)
}

// TestCompaction deletes most files: the compacted index answers like one
// built from the remaining files alone.
func TestCompaction(t *testing.T) {
	files := corpus(t, 600, 4, 2)
	x := build(t, files)
	keep := map[index.Ref][]index.Chunk{}
	for ref, cs := range files {
		if ref.FileID < "file-100" {
			keep[ref] = cs
			continue
		}
		require.NoError(t, x.Delete(ctx, ref))
	}
	assert.Less(t, len(x.slotFile), 2*x.Len()+1024+1, "dead slots were reclaimed")
	fresh := build(t, keep)
	scope := index.Scope{VectorStoreIDs: []string{"vs1", "vs2"}}
	h, _ := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 32 })
	for _, q := range []string{"refund", "violin orbit", "bridge river museum"} {
		a, _ := x.SearchKeyword(ctx, q, scope, 20)
		b, _ := fresh.SearchKeyword(ctx, q, scope, 20)
		assertSameHits(t, b, a, 1e-9)
		a, _ = x.SearchVector(ctx, h.EmbedOne(q), scope, 20)
		b, _ = fresh.SearchVector(ctx, h.EmbedOne(q), scope, 20)
		assertSameHits(t, b, a, 1e-9)
	}
}

func TestLimits(t *testing.T) {
	x := New(func(o *Options) { o.MaxChunks = 3 })
	ref := index.Ref{VectorStoreID: "vs", FileID: "f"}
	require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "a b", Vector: []float32{1, 0}}, {Ref: ref, Index: 1, Text: "c", Vector: []float32{0, 1}}}))
	err := x.Put(ctx, index.Ref{VectorStoreID: "vs", FileID: "g"}, []index.Chunk{{Text: "x y"}, {Text: "z"}})
	assert.ErrorIs(t, err, index.ErrFull)
	assert.Equal(t, 2, x.Len(), "nothing changed")
	require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "a"}, {Ref: ref, Index: 1, Text: "b"}, {Ref: ref, Index: 2, Text: "c"}}), "replacing counts the old chunks out")

	err = x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "a", Vector: []float32{1, 2, 3}}})
	assert.ErrorIs(t, err, index.ErrDimension)
	_, err = x.SearchVector(ctx, []float32{1, 2, 3}, index.Scope{VectorStoreIDs: []string{"vs"}}, 3)
	assert.ErrorIs(t, err, index.ErrDimension)
	assert.Equal(t, 3, x.Len())
}

func TestEmptyAndEdgeSearches(t *testing.T) {
	x := New()
	hits, err := x.SearchKeyword(ctx, "anything", index.Scope{VectorStoreIDs: []string{"vs"}}, 5)
	assert.NoError(t, err)
	assert.Empty(t, hits)
	hits, err = x.SearchVector(ctx, []float32{1}, index.Scope{VectorStoreIDs: []string{"vs"}}, 5)
	assert.NoError(t, err)
	assert.Empty(t, hits)
	ref := index.Ref{VectorStoreID: "vs", FileID: "f"}
	require.NoError(t, x.Put(ctx, ref, []index.Chunk{{Ref: ref, Text: "the and of"}}))
	hits, _ = x.SearchKeyword(ctx, "the of", index.Scope{VectorStoreIDs: []string{"vs"}}, 5)
	assert.Empty(t, hits, "stop words alone find nothing")
	hits, _ = x.SearchKeyword(ctx, "anything", index.Scope{}, 5)
	assert.Empty(t, hits, "no vector store, nothing")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = x.SearchKeyword(cctx, "x", index.Scope{VectorStoreIDs: []string{"vs"}}, 5)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestConcurrentPutAndSearch(t *testing.T) {
	files := corpus(t, 40, 3, 3)
	x := New()
	h, _ := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 32 })
	refs := slices.Collect(func(yield func(index.Ref) bool) {
		for r := range files {
			if !yield(r) {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i, ref := range refs {
				if i%4 == w {
					assert.NoError(t, x.Put(ctx, ref, files[ref]))
					if i%8 == 0 {
						assert.NoError(t, x.Delete(ctx, ref))
					}
				}
				_, err := x.SearchKeyword(ctx, "refund comet", index.Scope{VectorStoreIDs: []string{"vs1", "vs2"}}, 5)
				assert.NoError(t, err)
				_, err = x.SearchVector(ctx, h.EmbedOne("refund comet"), index.Scope{VectorStoreIDs: []string{"vs1"}}, 5)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
}

// TestQuantizedRecall compares the quantised vector search (int8 codes,
// candidates by a part of a dense query, then rescoring; see the package
// doc) with an exact float64 search
// over the original vectors: of the exact 10 best, at least 95% must be
// in the quantised 10 best, averaged over the queries. Random Gaussian
// vectors are the hard case (no structure, many near-ties); vectors of
// the hashing embedder are the realistic one.
func TestQuantizedRecall(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gauss := func(d int) []float32 {
		v := make([]float32, d)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	h, _ := embed.NewHashing()
	words := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = fmt.Sprintf("%s%d", vocabulary[r.IntN(len(vocabulary))], r.IntN(50))
		}
		return fmt.Sprint(ws)
	}
	for _, tc := range []struct {
		name    string
		n, dim  int
		vector  func() []float32
		queries int
		split   bool // split the scan among the processors
	}{
		{"gaussian-128", 30_000, 128, func() []float32 { return gauss(128) }, 30, false},
		{"gaussian-256-exact-path", 800, 256, func() []float32 { return gauss(256) }, 30, false},
		// Texts of 3 to 42 words: short ones give sparse vectors (exact
		// products), long ones dense vectors (candidates, then rescoring).
		{"hashing-256", 12_000, 256, func() []float32 { return h.EmbedOne(words(3 + r.IntN(40))) }, 30, false},
		{"hashing-256-short-texts", 12_000, 256, func() []float32 { return h.EmbedOne(words(2 + r.IntN(3))) }, 30, false},
		{"gaussian-64-split", 12_000, 64, func() []float32 { return gauss(64) }, 30, true},
		{"hashing-256-split", 12_000, 256, func() []float32 { return h.EmbedOne(words(3 + r.IntN(40))) }, 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.split {
				old := parallelWork
				parallelWork = 1
				defer func() { parallelWork = old }()
			}
			x := New()
			var all []index.Chunk
			for f := 0; f < tc.n/100; f++ {
				ref := index.Ref{VectorStoreID: "vs", FileID: fmt.Sprintf("f%04d", f)}
				cs := make([]index.Chunk, 100)
				for i := range cs {
					cs[i] = index.Chunk{Ref: ref, Index: i, Vector: embed.Normalize(tc.vector())}
				}
				require.NoError(t, x.Put(ctx, ref, cs))
				all = append(all, cs...)
			}
			if tc.n > rescoreMin {
				require.Greater(t, tc.n, rescoreCount(10, tc.n), "candidates are picked, then rescored")
			}
			scope := index.Scope{VectorStoreIDs: []string{"vs"}}
			found := 0
			for range tc.queries {
				q := embed.Normalize(tc.vector())
				want := referenceCosine(all, func(index.Chunk) bool { return true }, q, 10)
				got, err := x.SearchVector(ctx, q, scope, 10)
				require.NoError(t, err)
				type key struct {
					ref index.Ref
					i   int
				}
				in := map[key]bool{}
				for _, g := range got {
					in[key{g.Chunk.Ref, g.Chunk.Index}] = true
				}
				for _, w := range want {
					if in[key{w.Chunk.Ref, w.Chunk.Index}] {
						found++
					}
				}
			}
			recall := float64(found) / float64(10*tc.queries)
			t.Logf("%s: %d chunks, %d dimensions: recall@10 %.3f", tc.name, tc.n, tc.dim, recall)
			assert.GreaterOrEqual(t, recall, 0.95)
		})
	}
}

// TestVectorMemory measures the heap an index of 20,000 chunks of 256
// dimensions (and no text) holds: the int8 codes take 260 bytes a chunk,
// the slot bookkeeping about 30, growth slack up to a quarter more. The
// bound, 512 bytes, is half of what float32 vectors alone would take.
func TestVectorMemory(t *testing.T) {
	const n, dim = 20_000, 256
	r := rand.New(rand.NewPCG(9, 10))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := New()
	for f := range n / 100 {
		ref := index.Ref{VectorStoreID: "vs", FileID: fmt.Sprintf("f%04d", f)}
		cs := make([]index.Chunk, 100)
		for i := range cs {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			cs[i] = index.Chunk{Ref: ref, Index: i, Vector: v}
		}
		require.NoError(t, x.Put(ctx, ref, cs))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perChunk := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per chunk of %d dimensions", perChunk, dim)
	assert.Less(t, perChunk, 512.0)
	runtime.KeepAlive(x)
}
