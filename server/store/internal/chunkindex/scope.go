package chunkindex

import (
	"slices"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// Stores returns the distinct vector store ids of scope, sorted.
func Stores(scope index.Scope) []string {
	ids := slices.Clone(scope.VectorStoreIDs)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Rerank returns how many candidates a vector search for k results keeps
// from its quantized scan.
func (o Options) Rerank(k int) int { return max(k*o.Candidates, k+32) }
