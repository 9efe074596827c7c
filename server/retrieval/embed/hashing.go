package embed

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// Hashing is the built-in embedder: a deterministic, offline LEXICAL
// stand-in for an embedding model, not a semantic one. It maps a text's
// words (as package analyze finds them), its pairs of adjacent words and
// the character trigrams of each word into a fixed number of dimensions by
// feature hashing (a signed 64-bit FNV-1a hash picks the dimension and the
// sign, so colliding features cancel in expectation), then scales the
// vector to unit length. Two texts are close when they share words or
// parts of words ("refund" and "refunded" share trigrams), never because
// they mean the same thing in other words ("refund" and "money back" are
// far apart). Use a real model through OpenAI for semantic search.
//
// Version 2 (the default) differs in two ways, both against hash
// collisions, which at 256 dimensions are the vectors' main noise:
//
//   - It weighs each word and its trigrams by how informative the word
//     is: an inverse document frequency that needs no corpus, the word's
//     self-information under the o200k_base tokenizer, whose token IDs are
//     BPE merge ranks, so frequency ranks (by Zipf's law -log p of a token
//     is about the log of its rank, plus a constant). A word's weight is
//     the sum of ln(2+ID) over the tokens of " word", less TermInfoOffset,
//     and at least minTermWeight: "lighthouse" weighs 8.1, "far" 4.3,
//     "time" 3.0. A shared rare word then counts for more than a shared
//     common one, as in BM25, and the common words' collisions for less.
//   - It adds each feature at HashesPerFeature (3) places, each with an
//     equal share of its weight: a collision is three times as likely and
//     moves a similarity a third as much, the same variance with a thinner
//     tail (one collision no longer cancels a shared word).
//
// Version 1 weighs every word the same and hashes each feature once; it
// is kept for stores holding its vectors.
//
// The same text always gives the same vector, on every machine and
// version of Go; changing the features changes Model().
type Hashing struct {
	o     HashingOptions
	scale float32 // 1/sqrt(HashesPerFeature)
	seeds [3]uint64
}

// HashingOptions configure NewHashing.
type HashingOptions struct {
	// Dimension is the length of the vectors. Default 256. Larger means
	// fewer hash collisions but more memory (4 bytes per dimension per
	// chunk) and slower brute-force search.
	Dimension int
	// Version picks the features: 2 (HashingVersion, the default) weighs
	// words by their information, 1 weighs every word the same (the
	// embedder before version 2, for vectors stored by it).
	Version int
	// HashesPerFeature is how many places version 2 adds each feature at,
	// 1 to 16. Default DefaultHashesPerFeature (3).
	HashesPerFeature int
	// TermInfoOffset is the nats version 2 takes off a word's
	// self-information to weigh it, 0 to 20. Default DefaultTermInfoOffset
	// (4).
	TermInfoOffset float64
	// Seed varies the hash functions: each seed is another embedding (the
	// quality tests average over seeds so that a choice does not rest on
	// one set of collisions). Default 0, the built-in's.
	Seed uint64
}

// HashingModel is the Model() of the built-in embedder at its default
// version (followed by its dimension).
const HashingModel = "builtin-lexical-hash-v2"

// HashingVersion is HashingOptions.Version's default.
const HashingVersion = 2

// DefaultHashingDimension is HashingOptions.Dimension's default.
const DefaultHashingDimension = 256

// Feature weights: a word counts fully, each of its trigrams shares half a
// word's weight, an adjacent pair counts half. In version 2 a word's and
// its trigrams' weights are multiplied by the word's weight (see Hashing).
const (
	wordWeight    = 1.0
	trigramWeight = 0.5
	pairWeight    = 0.5
)

// Version 2's defaults. DefaultHashesPerFeature is how many (dimension,
// sign) pairs a feature is added to, each with 1/sqrt of its weight (a
// sparse Johnson-Lindenstrauss projection): a feature's squared weight is
// unchanged, a collision with one heavy feature of another text matters
// less. DefaultTermInfoOffset sets how much more a rare word weighs than a
// common one. Both were chosen together on the tuning half of the
// retrieval quality set (server/retrieval, TestEmbedderChosenOnTuningHalf:
// 1 to 4 places, offsets 0 to 6, each averaged over 8 hash seeds).
const (
	DefaultHashesPerFeature = 3
	DefaultTermInfoOffset   = 4.0
)

// minTermWeight keeps a word's weight in version 2 positive.
const minTermWeight = 0.5

// NewHashing returns the built-in embedder.
func NewHashing(opts ...func(*HashingOptions)) (*Hashing, error) {
	o := HashingOptions{Dimension: DefaultHashingDimension, Version: HashingVersion,
		HashesPerFeature: DefaultHashesPerFeature, TermInfoOffset: DefaultTermInfoOffset}
	for _, f := range opts {
		f(&o)
	}
	if o.Dimension < 8 || o.Dimension > 1<<16 {
		return nil, fmt.Errorf("embed: hashing dimension %d out of range 8..65536", o.Dimension)
	}
	if o.Version != 1 && o.Version != 2 {
		return nil, fmt.Errorf("embed: hashing version %d unknown (1 or 2)", o.Version)
	}
	if o.HashesPerFeature < 1 || o.HashesPerFeature > 16 {
		return nil, fmt.Errorf("embed: hashes per feature %d out of range 1..16", o.HashesPerFeature)
	}
	if !(o.TermInfoOffset >= 0 && o.TermInfoOffset <= 20) {
		return nil, fmt.Errorf("embed: term information offset %v out of range 0..20", o.TermInfoOffset)
	}
	h := &Hashing{o: o, scale: float32(1 / math.Sqrt(float64(o.HashesPerFeature)))}
	h.seeds = [3]uint64{seedWord, seedPair, seedTrigram}
	if o.Seed != 0 {
		for i := range h.seeds {
			h.seeds[i] = mix(h.seeds[i] ^ o.Seed*0x9e3779b97f4a7c15)
		}
	}
	return h, nil
}

// Model returns the model's name with its version and dimension, e.g.
// "builtin-lexical-hash-v2-256" (HashingModel followed by the dimension,
// with the default options), followed by the options that are not their
// defaults ("-h2", "-o4", "-seed7"), so that vectors of two settings are
// never compared.
func (h *Hashing) Model() string {
	m := fmt.Sprintf("builtin-lexical-hash-v%d-%d", h.o.Version, h.o.Dimension)
	if h.o.Version >= 2 && h.o.HashesPerFeature != DefaultHashesPerFeature {
		m += fmt.Sprintf("-h%d", h.o.HashesPerFeature)
	}
	if h.o.Version >= 2 && h.o.TermInfoOffset != DefaultTermInfoOffset {
		m += fmt.Sprintf("-o%g", h.o.TermInfoOffset)
	}
	if h.o.Seed != 0 {
		m += fmt.Sprintf("-seed%d", h.o.Seed)
	}
	return m
}

// Dimension returns the vectors' length.
func (h *Hashing) Dimension() int { return h.o.Dimension }

// Embed returns the unit vectors of texts (a text without words gives a
// zero vector). It only fails when ctx ends.
func (h *Hashing) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	slab := make([]float32, len(texts)*h.o.Dimension)
	var buf []byte
	for i, t := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("embed: %w", err)
			}
		}
		v := slab[i*h.o.Dimension : (i+1)*h.o.Dimension : (i+1)*h.o.Dimension]
		buf = h.embed(t, v, buf)
		out[i] = v
	}
	return out, nil
}

// EmbedOne returns the unit vector of one text.
func (h *Hashing) EmbedOne(text string) []float32 {
	v := make([]float32, h.o.Dimension)
	h.embed(text, v, nil)
	return v
}

func (h *Hashing) embed(text string, v []float32, buf []byte) []byte {
	prev := ""
	analyze.Terms(text, func(term string) bool {
		tw := float32(1)
		if h.o.Version >= 2 {
			tw = float32(max(termInfo(term)-h.o.TermInfoOffset, minTermWeight))
		}
		h.add(v, hashString(h.seeds[0], term), wordWeight*tw)
		if prev != "" {
			h.add(v, hashString(hashString(h.seeds[1], prev), term), pairWeight)
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
		w := tw * trigramWeight / float32(math.Sqrt(float64(n)))
		a := 0
		b := a + runeLen(buf, a)
		c := b + runeLen(buf, b)
		for c < len(buf) {
			d := c + runeLen(buf, c)
			h.add(v, hashBytes(h.seeds[2], buf[a:d]), w)
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

// add adds a feature of hash x and weight w to v: once (version 1), or
// HashesPerFeature times with hashes derived from x (version 2).
func (h *Hashing) add(v []float32, x uint64, w float32) {
	if h.o.Version < 2 {
		h.add1(v, x, w)
		return
	}
	w *= h.scale
	for j := range uint64(h.o.HashesPerFeature) {
		h.add1(v, mix(x^j*0x9e3779b97f4a7c15), w)
	}
}

func (h *Hashing) add1(v []float32, x uint64, w float32) {
	i := (x & 0x7fffffffffffffff) % uint64(h.o.Dimension)
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

// termInfo returns a term's self-information (nats) under the o200k_base
// tokenizer: the sum of ln(2+ID) over the tokens of " "+term (see
// Hashing).
func termInfo(term string) float64 {
	if w, ok := termInfos.m.Load(term); ok {
		return w.(float64)
	}
	ids, err := tokenize.Default().IDs(" " + term)
	info := 0.0
	for _, id := range ids {
		info += math.Log(2 + float64(id))
	}
	if err != nil {
		info = 0 // not reached: terms are valid UTF-8
	}
	if termInfos.n.Load() < termInfosCached {
		if _, loaded := termInfos.m.LoadOrStore(term, info); !loaded {
			termInfos.n.Add(1)
		}
	}
	return info
}

// termInfosCached bounds the terms whose information is kept (about 100
// bytes each): tokenizing a term costs a few microseconds, a lookup tens
// of nanoseconds, and the words of a corpus are mostly its few thousand
// commonest.
const termInfosCached = 1 << 16

// termInfos caches termInfo's results (up to termInfosCached).
var termInfos struct {
	m sync.Map // term -> float64
	n atomic.Int64
}
