package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
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
	assert.Equal(t, "builtin-lexical-hash-v1-256", h.Model())
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

// TestHashingGolden pins the vectors: if the features change, change
// HashingModel too, or stored vectors would be compared with new ones.
func TestHashingGolden(t *testing.T) {
	h, _ := NewHashing()
	v := h.EmbedOne("Feature hashing maps words and trigrams into 256 dimensions.")
	sum := sha256.New()
	for _, x := range v {
		_ = binary.Write(sum, binary.LittleEndian, math.Float32bits(x))
	}
	assert.Equal(t, hashingGolden, hex.EncodeToString(sum.Sum(nil))[:16])
}

const hashingGolden = "f38f74c6ca269710"

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
