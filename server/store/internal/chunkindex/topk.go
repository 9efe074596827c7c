package chunkindex

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// Key names a chunk with a score.
type Key struct {
	VectorStoreID, FileID string
	N                     int
	Score                 float64
}

// Compare orders keys best first: higher score, then by vector store,
// file and chunk index (the in-memory index's order of equal scores).
func Compare(a, b Key) int {
	if a.Score != b.Score {
		return cmp.Compare(b.Score, a.Score)
	}
	return cmp.Or(cmp.Compare(a.VectorStoreID, b.VectorStoreID), cmp.Compare(a.FileID, b.FileID), cmp.Compare(a.N, b.N))
}

// TopK keeps the k best keys it is offered: memory is k keys whatever
// the number offered.
type TopK struct {
	k int
	h keyHeap
}

// NewTopK returns an empty TopK keeping k keys.
func NewTopK(k int) *TopK { return &TopK{k: k} }

// Would reports whether a key of that score would be kept now (a cheap
// test before building the key).
func (t *TopK) Would(score float64) bool {
	return len(t.h) < t.k || score >= t.h[0].Score
}

// Offer keeps key if it is among the k best so far.
func (t *TopK) Offer(key Key) {
	if t.k <= 0 {
		return
	}
	if len(t.h) < t.k {
		heap.Push(&t.h, key)
		return
	}
	if Compare(key, t.h[0]) < 0 {
		t.h[0] = key
		heap.Fix(&t.h, 0)
	}
}

// Sorted returns the kept keys best first.
func (t *TopK) Sorted() []Key {
	out := slices.Clone([]Key(t.h))
	slices.SortFunc(out, Compare)
	return out
}

// keyHeap is a min-heap: the worst kept key on top.
type keyHeap []Key

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return Compare(h[i], h[j]) > 0 }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(Key)) }
func (h *keyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// Best sorts hits best first (ties by vector store, file and chunk index)
// and returns the first k.
func Best(hits []index.Hit, k int) []index.Hit {
	key := func(h index.Hit) Key {
		return Key{VectorStoreID: h.Chunk.VectorStoreID, FileID: h.Chunk.FileID, N: h.Chunk.Index, Score: h.Score}
	}
	slices.SortFunc(hits, func(a, b index.Hit) int { return Compare(key(a), key(b)) })
	if len(hits) > k {
		hits = hits[:k]
	}
	return hits
}
