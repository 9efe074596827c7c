package chunkindex

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// BenchmarkScanFileDensity compares the dense and the sparse scan of 10 000
// vectors for queries with 28 to 128 of 256 numbers not 0 (sparse wins up
// to half).
func BenchmarkScanFileDensity(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const dim, n = 256, 10000
	chunks := make([]index.Chunk, n)
	units := make([][]float32, n)
	for i := range chunks {
		chunks[i].Index = i
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		units[i] = Unit(v)
	}
	blob, _ := EncodeFile(chunks, units, dim)
	for _, nnz := range []int{28, 74, 100, 128} {
		q := make([]float32, dim)
		for _, j := range r.Perm(dim)[:nnz] {
			q[j] = float32(r.NormFloat64())
		}
		idx := []int{}
		for j, x := range q {
			if x != 0 {
				idx = append(idx, j)
			}
		}
		var sink float32
		b.Run("dense/"+strconv.Itoa(nnz), func(b *testing.B) {
			for b.Loop() {
				_ = scanFile(blob, q, nil, func(_ int, s float32) { sink += s })
			}
		})
		b.Run("sparse/"+strconv.Itoa(nnz), func(b *testing.B) {
			for b.Loop() {
				_ = scanFile(blob, q, idx, func(_ int, s float32) { sink += s })
			}
		})
	}
}
