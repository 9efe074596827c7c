// Package index defines the two searches the retrieval pipeline ranks
// with, a keyword search (BM25) and a vector search (cosine similarity),
// and the values they share. Package index/memory implements both in
// process memory; store-backed implementations (SQLite FTS5, PostgreSQL
// full-text search and vectors) implement the same small interfaces.
package index

import (
	"context"
	"errors"
)

// Ref names a file in a vector store: the unit that chunks are added,
// replaced, deleted and filtered by.
type Ref struct {
	VectorStoreID string
	FileID        string
}

// Chunk is one indexed piece of a file.
type Chunk struct {
	Ref
	// Index is the chunk's position among the file's chunks, from 0.
	Index int
	// Text is the chunk's text.
	Text string
	// Vector is the chunk's embedding (nil in search results, and for
	// chunks that have none: those are found by keyword only).
	Vector []float32
}

// Hit is a chunk a search found, with the score of that search: BM25 for
// a keyword search (0 and up, unbounded), cosine similarity for a vector
// search (above 0, at most 1). Hits come best first; equal scores in
// order of vector store, file and chunk index.
type Hit struct {
	Chunk Chunk
	Score float64
}

// Scope is what a search may return: chunks of the files of the given
// vector stores that Allow accepts. The attribute filter goes into Allow,
// so it applies before ranking: k best among the allowed, never k best
// then filtered.
type Scope struct {
	// VectorStoreIDs are the vector stores searched. None: nothing found.
	VectorStoreIDs []string
	// Allow says whether a file's chunks may be returned. nil allows all.
	// It is called at most once per file and search, under the index's
	// read lock: it must not call the index.
	Allow func(Ref) bool
}

// Keyword is a keyword search.
type Keyword interface {
	// SearchKeyword returns at most k chunks in scope that share terms
	// with query, by BM25 score (only hits above 0).
	SearchKeyword(ctx context.Context, query string, scope Scope, k int) ([]Hit, error)
}

// Vector is a vector search.
type Vector interface {
	// SearchVector returns at most k chunks in scope by cosine similarity
	// to query (only hits above 0). query's length must be the index's
	// dimension (ErrDimension otherwise).
	SearchVector(ctx context.Context, query []float32, scope Scope, k int) ([]Hit, error)
}

// Serial is an optional interface of an index whose keyword and vector
// searches do better one after the other than at the same time: a
// pipeline then runs the two halves of a hybrid search in turn. Indexes
// without it have them run concurrently.
type Serial interface {
	// SerialSearches reports whether a search's halves should run in
	// turn.
	SerialSearches() bool
}

// Writer changes an index.
type Writer interface {
	// Put replaces the chunks of a file (all of ref's chunks, possibly
	// none) in one step: a search sees the old chunks or the new ones.
	Put(ctx context.Context, ref Ref, chunks []Chunk) error
	// Delete removes a file's chunks (nothing happens for an unknown one).
	Delete(ctx context.Context, ref Ref) error
	// DeleteVectorStore removes the chunks of every file of a vector store.
	DeleteVectorStore(ctx context.Context, vectorStoreID string) error
}

// Index is a keyword and vector index that can be written.
type Index interface {
	Keyword
	Vector
	Writer
}

// Errors of indexes (wrapped: test with errors.Is).
var (
	// ErrDimension: a vector's length is not the index's dimension.
	ErrDimension = errors.New("index: vector dimension mismatch")
	// ErrFull: the index is at its size limit.
	ErrFull = errors.New("index: full")
)
