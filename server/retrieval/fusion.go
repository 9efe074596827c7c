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

// ScoreList is one ranker's hits for FuseScores.
type ScoreList struct {
	// Hits are the ranker's hits, best first.
	Hits []index.Hit
	// Weight is the list's share of the fused score. FuseScores divides
	// the weights by their sum, so only their ratio matters; a
	// non-positive weight counts as 1.
	Weight float64
	// Bounded says the scores already lie in 0..1 with a fixed meaning
	// (cosine similarity): they are used as they are, clamped to 0..1.
	// Otherwise (BM25, unbounded) each score is divided by the list's
	// best, so the list's first hit counts 1.
	Bounded bool
}

// FuseScores merges ranked lists by a convex combination of their
// normalised scores: a chunk scores the sum over the lists of
// weight × normalised score (see ScoreList), with the weights summing to
// 1, and 0 for a list it is absent from (a lower bound: a list holds a
// ranker's best hits, so a chunk missing from it scored at most the
// list's last). Scores are in 0..1: 1 for a chunk first in an unbounded
// list and a perfect match in a bounded one. Unlike reciprocal rank
// fusion, the size of the gaps between scores counts: a weak ranker's
// near-ties move a strong ranker's clear winner little. Results come best
// first; equal scores in order of vector store, file and chunk index.
// Ranks[i] of a result is its rank in lists[i] (0: absent).
func FuseScores(lists ...ScoreList) []Result {
	sum := 0.0
	w := make([]float64, len(lists))
	for i, l := range lists {
		w[i] = l.Weight
		if w[i] <= 0 {
			w[i] = 1
		}
		sum += w[i]
	}
	byKey := map[chunkKey]*Result{}
	var out []*Result
	for li, l := range lists {
		if len(l.Hits) == 0 {
			continue
		}
		scale := 1.0
		if !l.Bounded {
			if best := l.Hits[0].Score; best > 0 {
				scale = 1 / best
			}
		}
		for r, h := range l.Hits {
			key := chunkKey{h.Chunk.Ref, h.Chunk.Index}
			res := byKey[key]
			if res == nil {
				res = &Result{Chunk: h.Chunk, Ranks: make([]int, len(lists))}
				byKey[key] = res
				out = append(out, res)
			}
			if res.Ranks[li] == 0 {
				res.Ranks[li] = r + 1
				res.Score += w[li] / sum * min(max(h.Score*scale, 0), 1)
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
