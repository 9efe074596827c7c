package chunkindex

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// A file's vectors are kept twice: each chunk's float32 vector (unit
// length) in its chunk row, and all of them quantized to 8 bits in one
// blob per file, which the vector scan reads. The scan thus reads a
// quarter of the bytes, and one row per file rather than per chunk; the
// best candidates are then rescored with their float32 vectors.
//
// The file blob holds, per chunk with a vector: its index (uint32), a
// scale (float32) and dim signed bytes, little-endian; the chunk's vector
// is about scale times the bytes.

// EncodeVector returns v as little-endian float32 bytes.
func EncodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// DecodeVector reads little-endian float32 bytes into dst (len(b)/4
// numbers).
func DecodeVector(dst []float32, b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("search index: vector of %d bytes", len(b))
	}
	dst = dst[:0]
	for i := 0; i+4 <= len(b); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
	}
	return dst, nil
}

// Unit returns a copy of v scaled to unit length.
func Unit(v []float32) []float32 {
	return embed.Normalize(append([]float32(nil), v...))
}

// EncodeFile returns the quantized blob of chunks' vectors (already of
// unit length; chunks without one are left out) and their count.
func EncodeFile(chunks []index.Chunk, units [][]float32, dim int) ([]byte, int) {
	n := 0
	for _, u := range units {
		if u != nil {
			n++
		}
	}
	b := make([]byte, 0, n*(8+dim))
	for i, u := range units {
		if u == nil {
			continue
		}
		var m float32
		for _, x := range u {
			m = max(m, float32(math.Abs(float64(x))))
		}
		scale := m / 127
		b = binary.LittleEndian.AppendUint32(b, uint32(chunks[i].Index))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scale))
		for _, x := range u {
			q := 0.0
			if scale > 0 {
				q = math.Round(float64(x / scale))
			}
			b = append(b, byte(int8(max(-127, min(127, q)))))
		}
	}
	return b, n
}

// ScanFile calls fn with each chunk index of a file blob and the
// approximate dot product of its vector with q (of length dim). A sparse
// query (at most half of its numbers not 0, as the built-in hashing
// embedder's queries are: about 74 of 256 with its version 2) is
// multiplied over its non-zero numbers only: the same product, cheaper
// (3x at 74 of 256, 1.3x at 128: BenchmarkScanFileDensity).
func ScanFile(blob []byte, q []float32, fn func(n int, score float32)) error {
	return scanFile(blob, q, sparse(q), fn)
}

// sparse returns the indexes of q's non-zero numbers when they are at
// most half of them (none: an empty, non-nil slice), else nil.
func sparse(q []float32) []int {
	var idx []int
	for i, x := range q {
		if x != 0 {
			if len(idx) >= len(q)/2 {
				return nil
			}
			idx = append(idx, i)
		}
	}
	if idx == nil {
		return []int{}
	}
	return idx
}

func scanFile(blob []byte, q []float32, nz []int, fn func(n int, score float32)) error {
	dim := len(q)
	size := 8 + dim
	if len(blob)%size != 0 {
		return fmt.Errorf("search index: a vector blob of %d bytes is not made of %d-byte entries", len(blob), size)
	}
	var vals []float32
	if nz != nil {
		vals = make([]float32, len(nz))
		for j, i := range nz {
			vals[j] = q[i]
		}
	}
	for off := 0; off < len(blob); off += size {
		n := int(binary.LittleEndian.Uint32(blob[off:]))
		scale := math.Float32frombits(binary.LittleEndian.Uint32(blob[off+4:]))
		v := blob[off+8 : off+size]
		v = v[:dim]
		var s0, s1, s2, s3 float32
		if nz != nil {
			j := 0
			for ; j+2 <= len(nz); j += 2 {
				s0 += vals[j] * float32(int8(v[nz[j]]))
				s1 += vals[j+1] * float32(int8(v[nz[j+1]]))
			}
			if j < len(nz) {
				s0 += vals[j] * float32(int8(v[nz[j]]))
			}
			fn(n, scale*(s0+s1))
			continue
		}
		i := 0
		for ; i+4 <= dim; i += 4 {
			s0 += q[i] * float32(int8(v[i]))
			s1 += q[i+1] * float32(int8(v[i+1]))
			s2 += q[i+2] * float32(int8(v[i+2]))
			s3 += q[i+3] * float32(int8(v[i+3]))
		}
		for ; i < dim; i++ {
			s0 += q[i] * float32(int8(v[i]))
		}
		fn(n, scale*(s0+s1+s2+s3))
	}
	return nil
}

// Dot returns the dot product of a and b (of a's length).
func Dot(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
