package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestHashingUnitAndDeterministic(t *testing.T) {
	h, err := NewHashing()
	require.NoError(t, err)
	assert.Equal(t, 256, h.Dimension())
	assert.Equal(t, "builtin-lexical-hash-v2-256", h.Model())
	assert.Equal(t, HashingModel+"-256", h.Model())
	texts := []string{"The refund policy allows returns within 30 days.", "日本語のテキスト", "x", ""}
	a, err := h.Embed(context.Background(), texts)
	require.NoError(t, err)
	h2, _ := NewHashing()
	b, err := h2.Embed(context.Background(), texts)
	require.NoError(t, err)
	assert.Equal(t, a, b, "same text, same vector")
	for i, v := range a[:3] {
		assert.Len(t, v, 256)
		assert.InDelta(t, 1, math.Sqrt(dot(v, v)), 1e-5, "text %d is unit length", i)
	}
	assert.Zero(t, dot(a[3], a[3]), "no words, zero vector")
	assert.Equal(t, a[0], h.EmbedOne(texts[0]))
}

// TestHashingGolden pins the vectors of each version: if the features
// change, change the version (and so Model()) too, or stored vectors would
// be compared with new ones. Version 1's vectors are those of the
// embedder before version 2 (same digest as then).
func TestHashingGolden(t *testing.T) {
	for version, golden := range map[int]string{1: "f38f74c6ca269710", 2: hashingGolden} {
		h, err := NewHashing(func(o *HashingOptions) { o.Version = version })
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("builtin-lexical-hash-v%d-256", version), h.Model())
		v := h.EmbedOne("Feature hashing maps words and trigrams into 256 dimensions.")
		sum := sha256.New()
		for _, x := range v {
			_ = binary.Write(sum, binary.LittleEndian, math.Float32bits(x))
		}
		assert.Equal(t, golden, hex.EncodeToString(sum.Sum(nil))[:16], "version %d", version)
	}
}

const hashingGolden = "a35f9ccffe27833c"

// TestHashingTermWeights: version 2 weighs a rare word above a common one
// (by its tokens' BPE ranks), the same word the same every time (cached
// or not), and no word at or below 0.
func TestHashingTermWeights(t *testing.T) {
	termWeight := func(term string) float64 { return max(termInfo(term)-DefaultTermInfoOffset, minTermWeight) }
	assert.InDelta(t, 12.1, termInfo("lighthouse"), 0.05)
	assert.InDelta(t, 8.3, termInfo("far"), 0.05)
	assert.Greater(t, termWeight("tolland"), termWeight("lighthouse"))
	assert.Greater(t, termWeight("lighthouse"), termWeight("time"))
	assert.Equal(t, termWeight("lighthouse"), termWeight("lighthouse"))
	for _, w := range []string{"a", "x", "1", "日本語", "é"} {
		assert.GreaterOrEqual(t, termWeight(w), float64(minTermWeight), w)
	}
}

// TestHashingVersionsDiffer: in version 2 a shared rare word brings two
// texts closer than a shared common word does; an unknown version is an
// error.
func TestHashingVersionsDiffer(t *testing.T) {
	sim := func(version int, a, b string) float64 {
		h, err := NewHashing(func(o *HashingOptions) { o.Version = version })
		require.NoError(t, err)
		return dot(h.EmbedOne(a), h.EmbedOne(b))
	}
	q := "lighthouse time"
	rare, common := "lighthouse keeper", "time keeper"
	assert.Greater(t, sim(2, q, rare), sim(2, q, common)+0.1)
	_, err := NewHashing(func(o *HashingOptions) { o.Version = 3 })
	assert.ErrorContains(t, err, "version 3 unknown")
}

func TestHashingSimilarity(t *testing.T) {
	h, _ := NewHashing()
	sim := func(a, b string) float64 { return dot(h.EmbedOne(a), h.EmbedOne(b)) }
	base := "How do I request a refund for a damaged parcel?"
	assert.Greater(t, sim(base, "Refunds for damaged parcels are requested online."), sim(base, "The museum opens at nine on Sundays."))
	assert.Greater(t, sim("refunded", "refunds"), sim("refunded", "holiday"), "sub-word trigrams bring variants together")
	assert.Greater(t, sim("colour calibration", "color calibration"), 0.5, "one letter apart")
}

func TestHashingOptions(t *testing.T) {
	h, err := NewHashing(func(o *HashingOptions) { o.Dimension = 64 })
	require.NoError(t, err)
	assert.Len(t, h.EmbedOne("abc def"), 64)
	_, err = NewHashing(func(o *HashingOptions) { o.Dimension = 4 })
	assert.ErrorContains(t, err, "out of range")
	for _, bad := range []func(*HashingOptions){
		func(o *HashingOptions) { o.HashesPerFeature = 0 },
		func(o *HashingOptions) { o.HashesPerFeature = 17 },
		func(o *HashingOptions) { o.TermInfoOffset = -1 },
		func(o *HashingOptions) { o.TermInfoOffset = math.NaN() },
	} {
		_, err = NewHashing(bad)
		assert.ErrorContains(t, err, "out of range")
	}

	// Every setting that changes the vectors changes the model's name.
	text := "Feature hashing maps words and trigrams into 256 dimensions."
	def, _ := NewHashing()
	names := map[string]bool{def.Model(): true}
	for _, f := range []func(*HashingOptions){
		func(o *HashingOptions) { o.HashesPerFeature = 1 },
		func(o *HashingOptions) { o.TermInfoOffset = 0 },
		func(o *HashingOptions) { o.Seed = 7 },
		func(o *HashingOptions) { o.Version = 1 },
		func(o *HashingOptions) { o.Version, o.Seed = 1, 7 },
	} {
		h, err := NewHashing(f)
		require.NoError(t, err)
		assert.NotEqual(t, def.EmbedOne(text), h.EmbedOne(text), h.Model())
		assert.False(t, names[h.Model()], "%s named twice", h.Model())
		names[h.Model()] = true
	}
	assert.True(t, names["builtin-lexical-hash-v2-256-h1"])
	assert.True(t, names["builtin-lexical-hash-v2-256-o0"])
	assert.True(t, names["builtin-lexical-hash-v2-256-seed7"])
	assert.True(t, names["builtin-lexical-hash-v1-256-seed7"])
}

func TestHashingContext(t *testing.T) {
	h, _ := NewHashing()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Embed(ctx, []string{"a"})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestNormalize(t *testing.T) {
	assert.Equal(t, []float32{0.6, 0.8}, Normalize([]float32{3, 4}))
	assert.Equal(t, []float32{0, 0}, Normalize([]float32{0, 0}))
}

// BenchmarkHashingEmbed embeds chunks of about 100 words of the retrieval
// quality set's documents, with version 1 and version 2 side by side
// (MB/s of text).
func BenchmarkHashingEmbed(b *testing.B) {
	docs, err := filepath.Glob(filepath.Join("..", "testdata", "quality", "docs", "*.md"))
	require.NoError(b, err)
	var chunks []string
	size := 0
	for _, d := range docs {
		text, err := os.ReadFile(d)
		require.NoError(b, err)
		words := strings.Fields(string(text))
		for i := 0; i < len(words); i += 100 {
			c := strings.Join(words[i:min(i+100, len(words))], " ")
			chunks = append(chunks, c)
			size += len(c)
		}
	}
	for _, version := range []int{1, 2} {
		b.Run(fmt.Sprintf("v%d", version), func(b *testing.B) {
			h, err := NewHashing(func(o *HashingOptions) { o.Version = version })
			require.NoError(b, err)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Embed(context.Background(), chunks); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
