package chunkindex

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"slices"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// BM25 parameters: those of the in-memory index (server/retrieval/index/memory).
const (
	K1 = 1.2
	B  = 0.75
)

// TermStats are a term's statistics over the chunks in a search's scope.
type TermStats struct {
	DF     int64 // chunks holding the term
	MaxTF  int   // the largest frequency of the term in a chunk
	MinLen int   // the shortest chunk holding the term
}

// IndexStats are the statistics of the chunks in a search's scope for a
// query.
type IndexStats struct {
	Chunks, Length int64 // chunks indexed and their total length in terms
	Terms          map[string]TermStats
}

// PostingsSource is a store's postings table, as one keyword search sees
// it (one snapshot, one scope).
type PostingsSource interface {
	// Stats returns the statistics of terms over the files in the
	// search's scope (the vector stores searched, after the filter), as
	// the in-memory index computes them: a search's scores never depend
	// on files outside its scope (another project's vector stores).
	Stats(ctx context.Context, terms []string) (IndexStats, error)
	// Postings calls fn with the postings rows of terms: of every file in
	// the search's scope when files is nil, else of files only (which are
	// in scope).
	Postings(ctx context.Context, terms []string, files []index.Ref, fn func(term string, ref index.Ref, blob []byte) error) error
}

// KeywordStats describe how much of the postings a keyword search read.
type KeywordStats struct {
	// Terms is the number of the query's terms found in the index; Full
	// how many of them had their postings read in every file in scope,
	// the others only in the files of chunks that could still make the
	// k best.
	Terms, Full int
	// Files is the number of files whose postings of the remaining terms
	// were read after pruning.
	Files int
}

// keywordTest are test hooks of SearchKeyword.
type keywordTest struct {
	exhaustive bool    // read every term in every file in scope
	boundScale float64 // multiplies the upper bounds (a fault when below 1)
	maxFiles   int     // replaces maxFileList when above 0
}

// SearchKeyword returns the k best chunks of src by BM25 (the in-memory
// index's: k1 1.2, b 0.75, the idf ln(1 + (N - df + 0.5)/(df + 0.5)),
// each query term weighing as often as the query holds it), best first,
// equal scores by vector store, file and chunk index. Only chunks scoring
// above 0 are returned.
//
// It is MaxScore evaluated term at a time. Each term has an upper bound
// on what it adds to a chunk's score: its weight times BM25's term
// frequency curve at the term's largest frequency and shortest chunk in
// scope. The statistics (N, document frequencies, average length) are
// those of the chunks in scope, as the in-memory index's. Terms are read best bound first (the rarest terms, usually),
// each in every file in scope, adding to a score per chunk. After each
// term, θ is the k-th best score so far: a lower bound of the final k-th
// best, since scores only grow. Once the bounds of the terms left sum
// below θ, a chunk not yet seen cannot reach the k best, nor can a seen
// chunk whose score plus that sum is below θ; the terms left are then read
// only in the files of the chunks that can. The result is the exhaustive
// result: pruning only skips chunks that score strictly below k others.
//
// Memory: one float64 per chunk in scope holding a read term (the
// accumulators), plus one postings row at a time.
func SearchKeyword(ctx context.Context, src PostingsSource, query string, k int) ([]Key, KeywordStats, error) {
	return searchKeyword(ctx, src, query, k, keywordTest{})
}

type queryTerm struct {
	term  string
	w     float64 // idf × frequency in the query
	bound float64
}

func searchKeyword(ctx context.Context, src PostingsSource, query string, k int, test keywordTest) ([]Key, KeywordStats, error) {
	var st KeywordStats
	qtf := map[string]int{}
	var order []string
	analyze.Terms(query, func(t string) bool {
		if qtf[t] == 0 {
			order = append(order, t)
		}
		qtf[t]++
		return true
	})
	if len(order) == 0 || k <= 0 {
		return nil, st, nil
	}
	stats, err := src.Stats(ctx, order)
	if err != nil {
		return nil, st, err
	}
	if stats.Chunks <= 0 {
		return nil, st, nil
	}
	n := float64(stats.Chunks)
	avg := float64(stats.Length) / n
	if avg == 0 {
		avg = 1
	}
	var qts []queryTerm
	for _, t := range order {
		ts := stats.Terms[t]
		if ts.DF <= 0 {
			continue
		}
		df := float64(ts.DF)
		idf := math.Log(1 + (max(n, df)-df+0.5)/(df+0.5))
		w := idf * float64(qtf[t])
		bound := w * tfCurve(float64(max(ts.MaxTF, 1)), float64(ts.MinLen), avg)
		if test.boundScale > 0 {
			bound *= test.boundScale
		}
		qts = append(qts, queryTerm{term: t, w: w, bound: bound})
	}
	st.Terms = len(qts)
	slices.SortFunc(qts, func(a, b queryTerm) int { return cmp.Or(cmp.Compare(b.bound, a.bound), cmp.Compare(a.term, b.term)) })

	acc := accumulators{}
	weight := map[string]float64{}
	for _, qt := range qts {
		weight[qt.term] = qt.w
	}
	add := func(onlySeen bool) func(string, index.Ref, []byte) error {
		return func(term string, ref index.Ref, blob []byte) error {
			w, ok := weight[term]
			if !ok {
				return nil
			}
			fa := acc.file(ref, !onlySeen)
			if fa == nil {
				return nil
			}
			return DecodePostings(blob, func(p Posting) {
				if onlySeen && (p.N >= len(fa.scores) || fa.scores[p.N] <= 0) {
					return
				}
				fa.add(p.N, w*tfCurve(float64(p.TF), float64(p.Len), avg))
			})
		}
	}
	for i, qt := range qts {
		if err := src.Postings(ctx, []string{qt.term}, nil, add(false)); err != nil {
			return nil, st, err
		}
		st.Full++
		left := qts[i+1:]
		if test.exhaustive || len(left) == 0 {
			continue
		}
		rest := 0.0
		for _, l := range left {
			rest += l.bound
		}
		theta := acc.kth(k)
		// A margin for rounding: scores are sums in another order.
		rest = rest*(1+1e-9) + 1e-12
		if theta <= rest {
			continue
		}
		// Only chunks scoring at least θ - rest so far can make the k
		// best; read the terms left in their files only.
		files := acc.prune(theta - rest)
		st.Files = len(files)
		if len(files) == 0 {
			break
		}
		if limit := cmp.Or(test.maxFiles, maxFileList); len(files) > limit {
			// Reading the terms' rows in every file in scope and
			// skipping the pruned chunks costs less than naming many
			// files to the store.
			files = nil
		}
		terms := make([]string, len(left))
		for j, l := range left {
			terms[j] = l.term
		}
		if err := src.Postings(ctx, terms, files, add(true)); err != nil {
			return nil, st, err
		}
		break
	}
	return acc.best(k), st, nil
}

// maxFileList is the most files whose postings SearchKeyword asks of a
// PostingsSource by name.
const maxFileList = 256

// tfCurve is BM25's saturating term frequency curve for a chunk of
// length dl (avg: the average length).
func tfCurve(tf, dl, avg float64) float64 {
	return tf * (K1 + 1) / (tf + K1*(1-B+B*dl/avg))
}

// accumulators hold the scores so far, per file and chunk index (0: not
// seen or pruned).
type accumulators map[index.Ref]*fileScores

type fileScores struct{ scores []float64 }

func (fa *fileScores) add(n int, s float64) {
	if n >= len(fa.scores) {
		if n >= cap(fa.scores) {
			grown := make([]float64, n+1, max(n+1, 2*cap(fa.scores), 16))
			copy(grown, fa.scores)
			fa.scores = grown
		}
		fa.scores = fa.scores[:n+1] // zeros: never written
	}
	fa.scores[n] += s
}

func (a accumulators) file(ref index.Ref, create bool) *fileScores {
	fa := a[ref]
	if fa == nil && create {
		fa = &fileScores{}
		a[ref] = fa
	}
	return fa
}

// kth returns the k-th best score (0 when fewer than k chunks are seen).
func (a accumulators) kth(k int) float64 {
	h := make(floatHeap, 0, k)
	for _, fa := range a {
		for _, s := range fa.scores {
			if s <= 0 {
				continue
			}
			if len(h) < k {
				heap.Push(&h, s)
			} else if s > h[0] {
				h[0] = s
				heap.Fix(&h, 0)
			}
		}
	}
	if len(h) < k {
		return 0
	}
	return h[0]
}

// prune drops the chunks scoring below floor and returns the files of
// the others, sorted.
func (a accumulators) prune(floor float64) []index.Ref {
	var files []index.Ref
	for ref, fa := range a {
		keep := false
		for n, s := range fa.scores {
			if s > 0 && s < floor {
				fa.scores[n] = 0
			}
			keep = keep || fa.scores[n] > 0
		}
		if keep {
			files = append(files, ref)
		} else {
			delete(a, ref)
		}
	}
	slices.SortFunc(files, func(x, y index.Ref) int {
		return cmp.Or(cmp.Compare(x.VectorStoreID, y.VectorStoreID), cmp.Compare(x.FileID, y.FileID))
	})
	return files
}

// best returns the k best chunks, best first.
func (a accumulators) best(k int) []Key {
	top := NewTopK(k)
	for ref, fa := range a {
		for n, s := range fa.scores {
			if s > 0 && top.Would(s) {
				top.Offer(Key{VectorStoreID: ref.VectorStoreID, FileID: ref.FileID, N: n, Score: s})
			}
		}
	}
	return top.Sorted()
}

// floatHeap is a min-heap of scores.
type floatHeap []float64

func (h floatHeap) Len() int           { return len(h) }
func (h floatHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h floatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *floatHeap) Push(x any)        { *h = append(*h, x.(float64)) }
func (h *floatHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
