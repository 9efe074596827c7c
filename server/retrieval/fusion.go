package retrieval

import (
	"cmp"
	"slices"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// DefaultRRFK is the k of reciprocal rank fusion: the usual 60, which
// keeps one list's first places from drowning the other list.
const DefaultRRFK = 60

type chunkKey struct {
	ref   index.Ref
	index int
}

// Fuse merges ranked lists of hits by reciprocal rank fusion: a chunk
// scores the sum of 1/(k+rank) over the lists it is in (rank 1 is a
// list's first hit), divided by the best possible sum, len(lists)/(k+1).
// So scores are in (0, 1]: 1 for a chunk first in every list, about 0.5
// for one first in one list of two and absent from the other. Results
// come best first; equal scores in order of vector store, file and chunk
// index. Ranks[i] of a result is its rank in lists[i] (0: absent). k below
// 1 means DefaultRRFK.
func Fuse(k int, lists ...[]index.Hit) []Result {
	return FuseWeighted(k, nil, lists...)
}

// FuseWeighted is Fuse with a weight per list: list i adds
// weights[i]/(k+rank), and the best possible sum is sum(weights)/(k+1),
// so scores stay in (0, 1]. nil weights, or a missing or non-positive
// weight, count as 1.
func FuseWeighted(k int, weights []float64, lists ...[]index.Hit) []Result {
	if k < 1 {
		k = DefaultRRFK
	}
	w := make([]float64, len(lists))
	sum := 0.0
	for i := range lists {
		w[i] = 1
		if i < len(weights) && weights[i] > 0 {
			w[i] = weights[i]
		}
		sum += w[i]
	}
	best := sum / float64(k+1)
	byKey := map[chunkKey]*Result{}
	var out []*Result
	for li, list := range lists {
		for r, h := range list {
			key := chunkKey{h.Chunk.Ref, h.Chunk.Index}
			res := byKey[key]
			if res == nil {
				res = &Result{Chunk: h.Chunk, Ranks: make([]int, len(lists))}
				byKey[key] = res
				out = append(out, res)
			}
			if res.Ranks[li] == 0 {
				res.Ranks[li] = r + 1
				res.Score += w[li] / float64(k+r+1) / best
			}
		}
	}
	results := make([]Result, len(out))
	for i, r := range out {
		r.Score = min(r.Score, 1)
		results[i] = *r
	}
	slices.SortStableFunc(results, compareResults)
	return results
}

func compareResults(a, b Result) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Chunk.VectorStoreID, b.Chunk.VectorStoreID),
		cmp.Compare(a.Chunk.FileID, b.Chunk.FileID), cmp.Compare(a.Chunk.Index, b.Chunk.Index))
}
