// Package memory is an index.Index in process memory: an inverted index
// scored with BM25 and a vector index that compares the query with every
// allowed chunk (no approximate neighbour graph: a filter never hides a
// match). It is a cache that the server can rebuild from the store's
// chunks.
//
// # Vectors
//
// Vectors are scaled to unit length and kept quantised: one byte per
// dimension (int8) and a float32 scale per chunk. Scores are cosine
// similarities to within ‖q‖₁ × max|v_i| / 254 (at most 0.063 and
// typically 0.002 for 256 dimensions). How the scan is cut down:
//
//   - A sparse query (at most a quarter of its numbers not 0, as the
//     built-in hashing embedder's queries are) is multiplied with each
//     chunk over its non-zero numbers only: exact, and several times
//     cheaper than a full product.
//   - A dense query for the k best of n chunks, when n is above
//     c = max(1000, 20k, n/10), first ranks every chunk by the quarter of
//     the query's numbers largest in magnitude, keeps the best c
//     candidates and rescores those with the whole query.
//   - Otherwise every chunk gets the whole product.
//
// TestQuantizedRecall measures how often the quantised top 10 is the
// exact float64 top 10 (at least 95%, on random and on embedder vectors).
//
// # Memory
//
// A chunk costs its text, 1 byte per vector dimension plus 4 (260 bytes
// for 256 dimensions, against 1,024 for float32 vectors), and about 8
// bytes per distinct term (its postings entry) plus the map entries of
// new terms. Options.MaxChunks bounds the chunks held: Put fails with
// index.ErrFull beyond it, so memory is bounded by MaxChunks times the
// largest chunk. Deleted chunks are reclaimed once they outnumber the
// live ones.
package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// BM25 parameters (the usual defaults).
const (
	k1 = 1.2
	b  = 0.75
)

// Options configure New.
type Options struct {
	// Dimension is the length of the vectors. Default 0: the length of the
	// first vector put, required of every later one.
	Dimension int
	// MaxChunks bounds the live chunks. Default 2,000,000.
	MaxChunks int
}

// Index is the in-memory index. It is safe for concurrent use; searches
// run in parallel, writes one at a time.
type Index struct {
	mu  sync.RWMutex
	o   Options
	dim int

	files      map[index.Ref]*file
	fileRefs   []index.Ref // by file number
	storeFiles map[string]map[int32]struct{}

	// Chunk slots. A deleted chunk's slotFile is -1.
	slotFile  []int32
	slotIndex []int32
	slotText  []string
	slotLen   []int32
	codes     []int8    // dim int8 numbers per slot (see quant.go)
	scales    []float32 // per slot: the int8 code's scale

	postings map[string][]posting
	live     int

	// scratch holds up to GOMAXPROCS keyword-search buffers (up to 12
	// bytes per slot each), kept across garbage collections (unlike a
	// sync.Pool) so that searches do not allocate and collect them.
	scratch chan *keywordScratch
}

type file struct {
	num    int32
	slots  []int32
	length int64 // the chunks' total length in terms
}

// keywordScratch is a keyword search's working memory: a score per slot
// (all 0 between searches) and the slots scored.
type keywordScratch struct {
	scores  []float64
	touched []int32
}

type posting struct {
	slot int32
	tf   int32
}

var _ index.Index = (*Index)(nil)

// New returns an empty index.
func New(opts ...func(*Options)) *Index {
	o := Options{MaxChunks: 2_000_000}
	for _, f := range opts {
		f(&o)
	}
	return &Index{
		o:          o,
		dim:        o.Dimension,
		files:      map[index.Ref]*file{},
		storeFiles: map[string]map[int32]struct{}{},
		postings:   map[string][]posting{},
		scratch:    make(chan *keywordScratch, runtime.GOMAXPROCS(0)),
	}
}

// Len returns the number of live chunks.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live
}

// Dimension returns the vectors' length (0 before the first vector).
func (x *Index) Dimension() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.dim
}

// Put replaces ref's chunks. Vectors are copied and scaled to unit
// length; a chunk without a vector gets zeros (keyword search only). It
// fails, changing nothing, on a vector of the wrong length
// (index.ErrDimension) or beyond MaxChunks (index.ErrFull).
func (x *Index) Put(ctx context.Context, ref index.Ref, chunks []index.Chunk) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	// Analyze outside the lock.
	terms := make([]map[string]int32, len(chunks))
	lens := make([]int32, len(chunks))
	for i, c := range chunks {
		m := map[string]int32{}
		analyze.Terms(c.Text, func(t string) bool {
			m[t]++
			lens[i]++
			return true
		})
		terms[i] = m
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	dim := x.dim
	for i, c := range chunks {
		if c.Vector == nil {
			continue
		}
		if dim == 0 {
			dim = len(c.Vector)
		}
		if len(c.Vector) != dim {
			return fmt.Errorf("%w: chunk %d has %d numbers, the index %d", index.ErrDimension, i, len(c.Vector), dim)
		}
	}
	old := 0
	if f := x.files[ref]; f != nil {
		old = len(f.slots)
	}
	if x.live-old+len(chunks) > x.o.MaxChunks {
		return fmt.Errorf("%w: %d chunks would exceed the limit of %d", index.ErrFull, x.live-old+len(chunks), x.o.MaxChunks)
	}
	if dim != x.dim {
		// The first vectors: give earlier chunks zero vectors.
		x.dim = dim
		x.codes = make([]int8, len(x.slotFile)*dim)
		x.scales = make([]float32, len(x.slotFile))
	}
	var unit []float32
	x.deleteLocked(ref)
	f := x.files[ref]
	if f == nil {
		f = &file{num: int32(len(x.fileRefs))}
		x.fileRefs = append(x.fileRefs, ref)
		x.files[ref] = f
		sf := x.storeFiles[ref.VectorStoreID]
		if sf == nil {
			sf = map[int32]struct{}{}
			x.storeFiles[ref.VectorStoreID] = sf
		}
		sf[f.num] = struct{}{}
	}
	for i, c := range chunks {
		slot := int32(len(x.slotFile))
		x.slotFile = append(x.slotFile, f.num)
		x.slotIndex = append(x.slotIndex, int32(c.Index))
		x.slotText = append(x.slotText, c.Text)
		x.slotLen = append(x.slotLen, lens[i])
		if x.dim > 0 {
			n := len(x.codes)
			x.codes = append(x.codes, make([]int8, x.dim)...)
			var scale float32
			if c.Vector != nil {
				unit = embed.Normalize(append(unit[:0], c.Vector...))
				scale = quantize(unit, x.codes[n:])
			}
			x.scales = append(x.scales, scale)
		}
		for t, tf := range terms[i] {
			x.postings[t] = append(x.postings[t], posting{slot: slot, tf: tf})
		}
		f.length += int64(lens[i])
		f.slots = append(f.slots, slot)
	}
	x.live += len(chunks)
	return nil
}

// Delete removes ref's chunks.
func (x *Index) Delete(ctx context.Context, ref index.Ref) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleteLocked(ref)
	x.maybeCompactLocked()
	return nil
}

// DeleteVectorStore removes the chunks of a vector store's files.
func (x *Index) DeleteVectorStore(ctx context.Context, vectorStoreID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for num := range x.storeFiles[vectorStoreID] {
		ref := x.fileRefs[num]
		x.deleteLocked(ref)
		delete(x.files, ref)
	}
	delete(x.storeFiles, vectorStoreID)
	x.maybeCompactLocked()
	return nil
}

// deleteLocked marks ref's chunks dead; the file keeps its number.
func (x *Index) deleteLocked(ref index.Ref) {
	f := x.files[ref]
	if f == nil {
		return
	}
	for _, slot := range f.slots {
		x.slotFile[slot] = -1
		x.slotText[slot] = ""
	}
	x.live -= len(f.slots)
	f.slots = f.slots[:0]
	f.length = 0
}

// maybeCompactLocked drops dead slots once they outnumber live ones.
func (x *Index) maybeCompactLocked() {
	dead := len(x.slotFile) - x.live
	if dead < 1024 || dead < x.live {
		return
	}
	remap := make([]int32, len(x.slotFile))
	n := int32(0)
	for s, fnum := range x.slotFile {
		if fnum < 0 {
			remap[s] = -1
			continue
		}
		remap[s] = n
		x.slotFile[n] = fnum
		x.slotIndex[n] = x.slotIndex[s]
		x.slotText[n] = x.slotText[s]
		x.slotLen[n] = x.slotLen[s]
		if x.dim > 0 {
			copy(x.codes[int(n)*x.dim:int(n+1)*x.dim], x.codes[s*x.dim:(s+1)*x.dim])
			x.scales[n] = x.scales[s]
		}
		n++
	}
	x.slotFile = slices.Clip(x.slotFile[:n])
	x.slotIndex = slices.Clip(x.slotIndex[:n])
	clear(x.slotText[n:])
	x.slotText = slices.Clip(x.slotText[:n])
	x.slotLen = slices.Clip(x.slotLen[:n])
	x.codes = slices.Clip(x.codes[:int(n)*x.dim])
	x.scales = slices.Clip(x.scales[:n])
	for t, ps := range x.postings {
		out := ps[:0]
		for _, p := range ps {
			if s := remap[p.slot]; s >= 0 {
				out = append(out, posting{slot: s, tf: p.tf})
			}
		}
		if len(out) == 0 {
			delete(x.postings, t)
		} else {
			x.postings[t] = slices.Clip(out)
		}
	}
	for _, f := range x.files {
		for i, s := range f.slots {
			f.slots[i] = remap[s]
		}
	}
	for range len(x.scratch) {
		<-x.scratch // sized for the old slots
	}
}

// allowed returns which file numbers the scope allows (nil: none).
func (x *Index) allowed(scope index.Scope) []bool {
	var ok []bool
	for i, id := range scope.VectorStoreIDs {
		if slices.Contains(scope.VectorStoreIDs[:i], id) {
			continue
		}
		for num := range x.storeFiles[id] {
			if len(x.files[x.fileRefs[num]].slots) == 0 {
				continue
			}
			if ok == nil {
				ok = make([]bool, len(x.fileRefs))
			}
			ok[num] = scope.Allow == nil || scope.Allow(x.fileRefs[num])
		}
	}
	return ok
}

// SearchKeyword ranks the allowed chunks by BM25 over the query's terms.
// The statistics (chunk count, average length, document frequencies) are
// those of the allowed chunks: of the files of the vector stores searched
// that the filter accepts. A search's scores thus depend on its scope
// alone, never on other vector stores' files (another project's).
func (x *Index) SearchKeyword(ctx context.Context, query string, scope index.Scope, k int) ([]index.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	qterms := map[string]int{}
	analyze.Terms(query, func(t string) bool {
		qterms[t]++
		return true
	})
	if len(qterms) == 0 || k <= 0 {
		return nil, nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	ok := x.allowed(scope)
	if ok == nil || x.live == 0 {
		return nil, nil
	}
	var sc *keywordScratch
	select {
	case sc = <-x.scratch:
	default:
	}
	if sc == nil || len(sc.scores) < len(x.slotFile) {
		sc = &keywordScratch{scores: make([]float64, len(x.slotFile))}
	}
	scores, touched := sc.scores, sc.touched[:0]
	defer func() {
		sc.touched = touched[:0]
		select {
		case x.scratch <- sc:
		default:
		}
	}()
	var chunks, length int64
	for num, allowed := range ok {
		if allowed {
			f := x.files[x.fileRefs[num]]
			chunks, length = chunks+int64(len(f.slots)), length+f.length
		}
	}
	if chunks == 0 {
		return nil, nil
	}
	n := float64(chunks)
	avg := float64(length) / n
	if avg == 0 {
		avg = 1
	}
	for t, qtf := range qterms {
		ps := x.postings[t]
		dfn := 0
		for _, p := range ps {
			if fnum := x.slotFile[p.slot]; fnum >= 0 && ok[fnum] {
				dfn++
			}
		}
		if dfn == 0 {
			continue
		}
		df := float64(dfn)
		idf := logf(1 + (n-df+0.5)/(df+0.5))
		w := idf * float64(qtf)
		for _, p := range ps {
			fnum := x.slotFile[p.slot]
			if fnum < 0 || !ok[fnum] {
				continue
			}
			tf := float64(p.tf)
			dl := float64(x.slotLen[p.slot])
			s := w * tf * (k1 + 1) / (tf + k1*(1-b+b*dl/avg))
			if scores[p.slot] == 0 {
				touched = append(touched, p.slot)
			}
			scores[p.slot] += s
		}
	}
	top := newTopK(k, x.less)
	for _, s := range touched {
		top.offer(s, scores[s])
		scores[s] = 0
	}
	return x.hits(top.sorted()), nil
}

// SearchVector ranks the allowed chunks by cosine similarity with query
// (see the package doc: every allowed chunk is scored, through a part of
// the query first when there are many and the query is dense), on up to
// GOMAXPROCS goroutines for large scopes.
func (x *Index) SearchVector(ctx context.Context, query []float32, scope index.Scope, k int) ([]index.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if k <= 0 {
		return nil, nil
	}
	q := embed.Normalize(slices.Clone(query))
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.dim == 0 || x.live == 0 {
		return nil, nil
	}
	if len(q) != x.dim {
		return nil, fmt.Errorf("%w: the query has %d numbers, the index %d", index.ErrDimension, len(q), x.dim)
	}
	ok := x.allowed(scope)
	if ok == nil {
		return nil, nil
	}
	var files []*file
	n := 0
	for fnum, allowed := range ok {
		if allowed {
			f := x.files[x.fileRefs[fnum]]
			files = append(files, f)
			n += len(f.slots)
		}
	}
	rescore := rescoreCount(k, n)
	sq, exact := newSparseQuery(q)
	if !exact && n <= rescore {
		sq = nil // score every chunk exactly
	}
	// Large scans are split among the processors, each keeping its own
	// k best, then merged. The work is the multiplications of the first
	// pass.
	work := n * x.dim
	if sq != nil {
		work = n * len(sq.idx)
	}
	parts := min(runtime.GOMAXPROCS(0), max(1, work/parallelWork))
	tops := make([]*topK, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		tops[p] = newTopK(k, x.less)
		scan := func() {
			var cands *candidates
			if sq != nil && !exact {
				cands = &candidates{n: rescore}
			}
			for i := p; i < len(files); i += parts {
				for _, slot := range files[i].slots {
					switch {
					case cands != nil:
						cands.offer(slot, sq.dot(x.codes[int(slot)*x.dim:int(slot+1)*x.dim], x.scales[slot]))
					case sq != nil:
						if s := sq.dot(x.codes[int(slot)*x.dim:int(slot+1)*x.dim], x.scales[slot]); s > 0 {
							tops[p].offer(slot, float64(min(s, 1)))
						}
					default:
						x.offerExact(tops[p], q, slot)
					}
				}
				if i%64 == p {
					if err := ctx.Err(); err != nil {
						errs[p] = fmt.Errorf("index: %w", err)
						return
					}
				}
			}
			if cands != nil {
				for _, slot := range cands.slots {
					x.offerExact(tops[p], q, slot)
				}
			}
		}
		if p == parts-1 {
			scan()
		} else {
			wg.Go(scan)
		}
	}
	wg.Wait()
	top := tops[0]
	for _, t := range tops[1:] {
		for _, it := range t.h.items {
			top.offer(it.slot, it.score)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return x.hits(top.sorted()), nil
}

// offerExact scores slot with its int8 code and offers it to top if the
// score is above 0. Scores are capped at 1, which rounding can pass.
func (x *Index) offerExact(top *topK, q []float32, slot int32) {
	s := dotCode(q, x.codes[int(slot)*x.dim:int(slot+1)*x.dim], x.scales[slot])
	if s > 0 {
		top.offer(slot, float64(min(s, 1)))
	}
}

// Rescoring: a vector search with a dense query over n chunks for the k
// best rescores at most max(rescoreMin, rescorePerHit×k, n/rescoreShare)
// candidates with the whole query, the best by a part of it; a smaller
// search scores every chunk with the whole query. The share was set on
// random vectors, the hardest case for the part (TestQuantizedRecall:
// recall@10 0.967 with n/25, 0.987 with n/10).
const (
	rescoreMin    = 1000
	rescorePerHit = 20
	rescoreShare  = 10
)

func rescoreCount(k, n int) int {
	return max(rescoreMin, rescorePerHit*k, n/rescoreShare)
}

// parallelWork is the number of multiplications a vector search does
// before it is worth another goroutine (a few milliseconds' work). Fewer
// goroutines also mean fewer waits for a processor on a busy machine. A
// variable so that tests can split small searches.
var parallelWork = 8 << 20

// less orders equal scores: by vector store, file, then chunk index.
func (x *Index) less(a, b int32) bool {
	ra, rb := x.fileRefs[x.slotFile[a]], x.fileRefs[x.slotFile[b]]
	if c := cmp.Or(cmp.Compare(ra.VectorStoreID, rb.VectorStoreID), cmp.Compare(ra.FileID, rb.FileID)); c != 0 {
		return c < 0
	}
	return x.slotIndex[a] < x.slotIndex[b]
}

func (x *Index) hits(top []scored) []index.Hit {
	out := make([]index.Hit, len(top))
	for i, t := range top {
		out[i] = index.Hit{Score: t.score, Chunk: index.Chunk{
			Ref:   x.fileRefs[x.slotFile[t.slot]],
			Index: int(x.slotIndex[t.slot]),
			Text:  x.slotText[t.slot],
		}}
	}
	return out
}
