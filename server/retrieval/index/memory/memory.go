// Package memory is an index.Index in process memory: an inverted index
// scored with BM25 and a brute-force vector index (every allowed chunk's
// cosine similarity is computed). It is a cache that the server can
// rebuild from the store's chunks.
//
// # Memory
//
// A chunk costs its text, 4 bytes per vector dimension, and about 8 bytes
// per distinct term (its postings entry) plus the map entries of new
// terms. Options.MaxChunks bounds the chunks held: Put fails with
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
	vecs      []float32 // dim numbers per slot

	postings map[string][]posting
	df       map[string]int32
	live     int
	totalLen int64

	scores sync.Pool // *[]float64, one per concurrent keyword search
}

type file struct {
	num   int32
	slots []int32
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
		df:         map[string]int32{},
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
		x.vecs = make([]float32, len(x.slotFile)*dim)
	}
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
			n := len(x.vecs)
			x.vecs = append(x.vecs, make([]float32, x.dim)...)
			if c.Vector != nil {
				embed.Normalize(append(x.vecs[n:n], c.Vector...))
			}
		}
		for t, tf := range terms[i] {
			x.postings[t] = append(x.postings[t], posting{slot: slot, tf: tf})
			x.df[t]++
		}
		x.totalLen += int64(lens[i])
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

// deleteLocked marks ref's chunks dead and takes them out of the
// statistics; the file keeps its number.
func (x *Index) deleteLocked(ref index.Ref) {
	f := x.files[ref]
	if f == nil {
		return
	}
	for _, slot := range f.slots {
		seen := map[string]bool{}
		analyze.Terms(x.slotText[slot], func(t string) bool {
			if !seen[t] {
				seen[t] = true
				if x.df[t]--; x.df[t] <= 0 {
					delete(x.df, t)
				}
			}
			return true
		})
		x.totalLen -= int64(x.slotLen[slot])
		x.slotFile[slot] = -1
		x.slotText[slot] = ""
	}
	x.live -= len(f.slots)
	f.slots = f.slots[:0]
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
			copy(x.vecs[int(n)*x.dim:int(n+1)*x.dim], x.vecs[s*x.dim:(s+1)*x.dim])
		}
		n++
	}
	x.slotFile = slices.Clip(x.slotFile[:n])
	x.slotIndex = slices.Clip(x.slotIndex[:n])
	clear(x.slotText[n:])
	x.slotText = slices.Clip(x.slotText[:n])
	x.slotLen = slices.Clip(x.slotLen[:n])
	x.vecs = slices.Clip(x.vecs[:int(n)*x.dim])
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
	x.scores = sync.Pool{}
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
// those of the whole index.
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
	bufp, _ := x.scores.Get().(*[]float64)
	if bufp == nil || len(*bufp) < len(x.slotFile) {
		b := make([]float64, len(x.slotFile))
		bufp = &b
	}
	scores := *bufp
	defer x.scores.Put(bufp)
	var touched []int32
	n := float64(x.live)
	avg := float64(x.totalLen) / n
	if avg == 0 {
		avg = 1
	}
	for t, qtf := range qterms {
		df := float64(x.df[t])
		if df == 0 {
			continue
		}
		idf := logf(1 + (n-df+0.5)/(df+0.5))
		w := idf * float64(qtf)
		for _, p := range x.postings[t] {
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

// SearchVector ranks the allowed chunks by cosine similarity with query,
// computing every one (brute force), on up to GOMAXPROCS goroutines for
// large scopes.
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
	// Large scans are split among the processors, each keeping its own
	// k best, then merged.
	parts := min(runtime.GOMAXPROCS(0), max(1, n/parallelScan))
	tops := make([]*topK, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		tops[p] = newTopK(k, x.less)
		scan := func() {
			for i := p; i < len(files); i += parts {
				for _, slot := range files[i].slots {
					s := dot(q, x.vecs[int(slot)*x.dim:int(slot+1)*x.dim])
					if s > 0 {
						tops[p].offer(slot, float64(s))
					}
				}
				if i%64 == p {
					if err := ctx.Err(); err != nil {
						errs[p] = fmt.Errorf("index: %w", err)
						return
					}
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

// parallelScan is the number of chunks a vector search scans before it
// is worth another goroutine.
const parallelScan = 20_000

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

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
