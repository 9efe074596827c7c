// Package embed turns texts into vectors for the vector index.
//
// Two embedders implement Embedder: Hashing, a deterministic offline
// stand-in built into the server (lexical, not semantic: see its doc), and
// OpenAI, a client of an OpenAI-compatible /embeddings endpoint.
package embed

import (
	"context"
	"errors"
	"math"
)

// Embedder turns texts into vectors. Implementations are safe for
// concurrent use.
type Embedder interface {
	// Embed returns one vector per text, in the order of texts, each of
	// Dimension() numbers. An empty texts gives an empty result.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model names the embedding model. It is stored with the vectors, so
	// that vectors of two models are never compared.
	Model() string
	// Dimension is the length of the vectors: 0 while unknown (an HTTP
	// embedder without a configured size learns it from its first reply).
	Dimension() int
}

// ErrDimension reports vectors whose length is not the one expected.
var ErrDimension = errors.New("embed: vector dimension mismatch")

// Normalize scales v to unit length in place (a zero vector stays zero)
// and returns it.
func Normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
	return v
}
