package embed

import (
	"context"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
)

// Hashing is the built-in embedder: a deterministic, offline LEXICAL
// stand-in for an embedding model, not a semantic one. It maps a text's
// words (as package analyze finds them), its pairs of adjacent words and
// the character trigrams of each word into a fixed number of dimensions by
// feature hashing (a signed 64-bit FNV-1a hash picks the dimension and the
// sign), then scales the vector to unit length. Two texts are close when
// they share words or parts of words ("refund" and "refunded" share
// trigrams), never because they mean the same thing in other words
// ("refund" and "money back" are far apart). Use a real model through
// OpenAI for semantic search.
//
// The same text always gives the same vector, on every machine and
// version of Go; changing the features changes Model().
type Hashing struct {
	dim int
}

// HashingOptions configure NewHashing.
type HashingOptions struct {
	// Dimension is the length of the vectors. Default 256. Larger means
	// fewer hash collisions but more memory (4 bytes per dimension per
	// chunk) and slower brute-force search.
	Dimension int
}

// HashingModel is the Model() of the built-in embedder (followed by its
// dimension).
const HashingModel = "builtin-lexical-hash-v1"

// DefaultHashingDimension is HashingOptions.Dimension's default.
const DefaultHashingDimension = 256

// Feature weights: a word counts fully, each of its trigrams shares half a
// word's weight, an adjacent pair counts half.
const (
	wordWeight    = 1.0
	trigramWeight = 0.5
	pairWeight    = 0.5
)

// NewHashing returns the built-in embedder.
func NewHashing(opts ...func(*HashingOptions)) (*Hashing, error) {
	o := HashingOptions{Dimension: DefaultHashingDimension}
	for _, f := range opts {
		f(&o)
	}
	if o.Dimension < 8 || o.Dimension > 1<<16 {
		return nil, fmt.Errorf("embed: hashing dimension %d out of range 8..65536", o.Dimension)
	}
	return &Hashing{dim: o.Dimension}, nil
}

// Model returns HashingModel followed by the dimension, e.g.
// "builtin-lexical-hash-v1-256".
func (h *Hashing) Model() string { return fmt.Sprintf("%s-%d", HashingModel, h.dim) }

// Dimension returns the vectors' length.
func (h *Hashing) Dimension() int { return h.dim }

// Embed returns the unit vectors of texts (a text without words gives a
// zero vector). It only fails when ctx ends.
func (h *Hashing) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	slab := make([]float32, len(texts)*h.dim)
	var buf []byte
	for i, t := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("embed: %w", err)
			}
		}
		v := slab[i*h.dim : (i+1)*h.dim : (i+1)*h.dim]
		buf = h.embed(t, v, buf)
		out[i] = v
	}
	return out, nil
}

// EmbedOne returns the unit vector of one text.
func (h *Hashing) EmbedOne(text string) []float32 {
	v := make([]float32, h.dim)
	h.embed(text, v, nil)
	return v
}

func (h *Hashing) embed(text string, v []float32, buf []byte) []byte {
	prev := ""
	analyze.Terms(text, func(term string) bool {
		h.add(v, hashString(seedWord, term), wordWeight)
		if prev != "" {
			h.add(v, hashString(hashString(seedPair, prev), term), pairWeight)
		}
		prev = term
		// Trigrams of "^term$", by characters.
		buf = append(buf[:0], '^')
		buf = append(buf, term...)
		buf = append(buf, '$')
		n := utf8.RuneCountInString(term) // trigrams: n+2 characters -> n
		if n < 2 {
			return true
		}
		w := trigramWeight / float32(math.Sqrt(float64(n)))
		a := 0
		b := a + runeLen(buf, a)
		c := b + runeLen(buf, b)
		for c < len(buf) {
			d := c + runeLen(buf, c)
			h.add(v, hashBytes(seedTrigram, buf[a:d]), w)
			a, b, c = b, c, d
		}
		return true
	})
	Normalize(v)
	return buf
}

func runeLen(b []byte, i int) int {
	_, n := utf8.DecodeRune(b[i:])
	return n
}

func (h *Hashing) add(v []float32, x uint64, w float32) {
	i := (x & 0x7fffffffffffffff) % uint64(h.dim)
	if x>>63 == 1 {
		w = -w
	}
	v[i] += w
}

// FNV-1a, 64 bits, with a seed per feature kind.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211

	seedWord    = fnvOffset ^ 0x77
	seedPair    = fnvOffset ^ 0x70
	seedTrigram = fnvOffset ^ 0x74
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

func hashBytes(h uint64, s []byte) uint64 {
	for _, c := range s {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// mix spreads FNV's low-entropy high bits (the sign comes from bit 63).
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}
