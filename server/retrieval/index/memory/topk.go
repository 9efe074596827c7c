package memory

import (
	"container/heap"
	"math"
	"slices"
)

func logf(x float64) float64 { return math.Log(x) }

type scored struct {
	slot  int32
	score float64
}

// topK keeps the k best (slot, score) pairs: a min-heap on score, with
// ties broken by the index's order so results do not depend on the order
// chunks were scored in.
type topK struct {
	k int
	h minHeap
}

func newTopK(k int, less func(a, b int32) bool) *topK { return &topK{k: k, h: minHeap{less: less}} }

// worse reports whether a ranks below b.
func worse(a, b scored, less func(a, b int32) bool) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return less(b.slot, a.slot)
}

func (t *topK) offer(slot int32, score float64) {
	s := scored{slot, score}
	if len(t.h.items) < t.k {
		heap.Push(&t.h, s)
		return
	}
	if worse(t.h.items[0], s, t.h.less) {
		t.h.items[0] = s
		heap.Fix(&t.h, 0)
	}
}

// sorted returns the pairs best first.
func (t *topK) sorted() []scored {
	less := t.h.less
	out := slices.Clone(t.h.items)
	slices.SortFunc(out, func(a, b scored) int {
		switch {
		case worse(b, a, less):
			return -1
		case worse(a, b, less):
			return 1
		}
		return 0
	})
	return out
}

type minHeap struct {
	items []scored
	less  func(a, b int32) bool
}

func (h minHeap) Len() int           { return len(h.items) }
func (h minHeap) Less(i, j int) bool { return worse(h.items[i], h.items[j], h.less) }
func (h minHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *minHeap) Push(x any)        { h.items = append(h.items, x.(scored)) }
func (h *minHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}
