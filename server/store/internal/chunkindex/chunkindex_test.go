package chunkindex

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// TestScanFileApproximates: the quantized scan's scores are within 0.02
// of the exact cosine, with each chunk's index kept.
func TestScanFileApproximates(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 256
	chunks := make([]index.Chunk, 50)
	units := make([][]float32, len(chunks))
	for i := range chunks {
		chunks[i].Index = 100 + i
		if i%7 == 3 {
			continue // no vector: left out of the blob
		}
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		units[i] = Unit(v)
	}
	blob, n := EncodeFile(chunks, units, dim)
	q := make([]float32, dim)
	for j := range q {
		q[j] = float32(r.NormFloat64())
	}
	q = embed.Normalize(q)
	seen := 0
	err := ScanFile(blob, q, func(idx int, score float32) {
		i := idx - 100
		if units[i] == nil {
			t.Fatalf("chunk %d has no vector but was scanned", idx)
		}
		if d := float64(score) - Dot(q, units[i]); d > 0.02 || d < -0.02 {
			t.Fatalf("chunk %d: approximate %v, exact %v", idx, score, Dot(q, units[i]))
		}
		seen++
	})
	if err != nil || seen != n || n != 43 {
		t.Fatalf("scanned %d of %d (%v), want 43", seen, n, err)
	}
	// A sparse query (a fifth of its numbers not 0) scores as its dense
	// product does.
	sq := slices.Clone(q)
	for j := range sq {
		if j%5 != 0 {
			sq[j] = 0
		}
	}
	if sparse(sq) == nil || sparse(q) != nil {
		t.Fatalf("sparse: %d numbers of a sparse query, %d of a dense one", len(sparse(sq)), len(sparse(q)))
	}
	dense := map[int]float32{}
	if err := scanFile(blob, sq, nil, func(idx int, score float32) { dense[idx] = score }); err != nil {
		t.Fatal(err)
	}
	err = ScanFile(blob, sq, func(idx int, score float32) {
		if d := score - dense[idx]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("chunk %d: sparse product %v, dense %v", idx, score, dense[idx])
		}
		delete(dense, idx)
	})
	if err != nil || len(dense) != 0 {
		t.Fatalf("sparse scan missed %d chunks (%v)", len(dense), err)
	}
	if err := ScanFile(blob[:len(blob)-1], q, func(int, float32) {}); err == nil {
		t.Fatal("a truncated blob was accepted")
	}
}

func TestTopKKeepsBest(t *testing.T) {
	top := NewTopK(3)
	for i, s := range []float64{0.1, 0.9, 0.5, 0.9, 0.2, 0.7} {
		top.Offer(Key{FileID: string(rune('a' + i)), Score: s})
	}
	got := top.Sorted()
	want := []Key{{FileID: "b", Score: 0.9}, {FileID: "d", Score: 0.9}, {FileID: "f", Score: 0.7}}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestTerms(t *testing.T) {
	tests := []struct{ text, fts, tsv string }{
		{"The refunds, the REFUND!", "refund refund", "'refund':1,2"},
		{"", "", ""},
		{"Größe café", "größe café", "'größe':1 'café':2"},
	}
	for _, tc := range tests {
		if got := Terms(tc.text); got != tc.fts {
			t.Errorf("Terms(%q) = %q, want %q", tc.text, got, tc.fts)
		}
		if got, _ := TSVector(tc.text); got != tc.tsv {
			t.Errorf("TSVector(%q) = %q, want %q", tc.text, got, tc.tsv)
		}
	}
	long := strings.Repeat("word ", 300)
	if v, n := TSVector(long); n != 300 || strings.Count(v, ",") != maxPositions-1 {
		t.Errorf("300 occurrences: %d terms, %d positions kept; want 300, %d", n, strings.Count(v, ",")+1, maxPositions)
	}
}

// TestSparseBoundary: a query is scanned sparse up to exactly half of its
// numbers not 0 (len/2), dense from one more (len/2+1), odd lengths too.
func TestSparseBoundary(t *testing.T) {
	for _, dim := range []int{256, 255, 2, 1} {
		withNonZeros := func(k int) []float32 {
			q := make([]float32, dim)
			for i := range k { // spread over q, the last number included
				q[dim-1-i*dim/max(k, 1)] = 0.5
			}
			return q
		}
		half := dim / 2
		got := sparse(withNonZeros(half))
		if got == nil || len(got) != half {
			t.Errorf("dim %d: %d non-zeros (len/2): sparse() = %v, want their %d indexes", dim, half, got, half)
		}
		for _, i := range got {
			if withNonZeros(half)[i] == 0 {
				t.Errorf("dim %d: index %d of a zero", dim, i)
			}
		}
		if got := sparse(withNonZeros(half + 1)); got != nil {
			t.Errorf("dim %d: %d non-zeros (len/2+1): sparse() = %v, want nil (dense)", dim, half+1, got)
		}
	}
	if got := sparse(make([]float32, 8)); got == nil || len(got) != 0 {
		t.Errorf("an all-zero query: sparse() = %v, want empty, not nil", got)
	}
}
