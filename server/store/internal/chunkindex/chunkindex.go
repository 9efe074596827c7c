// Package chunkindex holds what the SQLite and PostgreSQL search indexes
// (server/store/sqlite/searchindex, server/store/postgres/searchindex)
// share: their options and errors, the analysis of text into postings rows
// (the in-memory index's analysis, so every store finds the same chunks)
// and the keyword search over them (BM25 with MaxScore pruning, keyword.go),
// the quantized per-file vector blobs their vector scan reads and the cache
// that keeps them, and the k-best heap both searches keep.
package chunkindex

import (
	"errors"
	"fmt"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// ErrModel is returned (wrapped) when vectors of one embedding model or
// dimension are written to a store that holds vectors of another: the
// store never mixes them. Delete the vector stores' files (or re-add them,
// which re-embeds them) before changing the model.
var ErrModel = errors.New("search index: embedding model mismatch")

// ErrNoFile is returned (wrapped) by Put when the file is not attached to
// the vector store in the store (chunks belong to a vector store file).
var ErrNoFile = errors.New("search index: no such vector store file")

// Options configure a store-backed index.
type Options struct {
	// Model is the name of the embedding model whose vectors Put writes
	// and SearchVector compares with. Default: the built-in embedder's
	// name at its default dimension (embed.HashingModel: version 2,
	// "builtin-lexical-hash-v2-256").
	Model string
	// Dimension is the length of the vectors. Default: 256 for the
	// built-in model; for another model 0, meaning the length of the
	// vectors the store already holds for Model, else of the first ones
	// put.
	Dimension int
	// Candidates is how many chunks per result the vector scan keeps by
	// its quantized score before rescoring them exactly. Default 4.
	Candidates int
	// VectorCacheBytes bounds the process memory that keeps files'
	// quantized vectors between searches (see VectorCache), so that a
	// vector search reads from the store only the rows written since.
	// Default DefaultVectorCacheBytes (64 MiB); below 0: no cache, every
	// search streams the rows in scope.
	VectorCacheBytes int64
}

// DefaultModel is Options.Model's default.
var DefaultModel = fmt.Sprintf("%s-%d", embed.HashingModel, embed.DefaultHashingDimension)

// Resolve applies the defaults to opts.
func Resolve(opts ...func(*Options)) Options {
	o := Options{}
	for _, f := range opts {
		f(&o)
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.Dimension == 0 && o.Model == DefaultModel {
		o.Dimension = embed.DefaultHashingDimension
	}
	if o.Candidates <= 0 {
		o.Candidates = 4
	}
	if o.VectorCacheBytes == 0 {
		o.VectorCacheBytes = DefaultVectorCacheBytes
	}
	return o
}

// CheckVectors checks that every vector of chunks has dimension dim (0:
// the first vector's length, which it returns).
func CheckVectors(chunks []index.Chunk, dim int) (int, error) {
	for i, c := range chunks {
		if c.Vector == nil {
			continue
		}
		if dim == 0 {
			dim = len(c.Vector)
		}
		if len(c.Vector) != dim || dim == 0 {
			return dim, fmt.Errorf("%w: chunk %d has %d numbers, the index %d", index.ErrDimension, i, len(c.Vector), dim)
		}
	}
	return dim, nil
}

// ModelError describes a write of model/dim into a store holding vectors
// of haveModel/haveDim.
func ModelError(model string, dim int, haveModel string, haveDim int) error {
	return fmt.Errorf("%w: the store holds vectors of %q (%d dimensions) and this index writes %q (%d dimensions); "+
		"keep the model, or delete the vector stores' files (re-adding a file re-embeds it) before changing it",
		ErrModel, haveModel, haveDim, model, dim)
}
