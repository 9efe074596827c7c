package memory

import (
	"cmp"
	"math"
	"slices"
)

// Vectors are kept quantised (see the package doc): an int8 code per
// dimension with one float32 scale, the unit vector being v ≈ scale ×
// code with scale = max|v_i| / 127, so each number is off by at most
// scale/2 and a cosine similarity with a unit query q by at most
// ‖q‖₁ × scale / 2.

// quantize writes v's int8 code to code (len(v) numbers) and returns its
// scale.
func quantize(v []float32, code []int8) (scale float32) {
	var maxAbs float64
	for _, x := range v {
		maxAbs = max(maxAbs, math.Abs(float64(x)))
	}
	if maxAbs == 0 {
		clear(code[:len(v)])
		return 0
	}
	inv := 127 / maxAbs
	for i, x := range v {
		code[i] = int8(math.Round(float64(x) * inv))
	}
	return float32(maxAbs / 127)
}

// dotCode returns q · (scale × code) for a float query and an int8 code.
func dotCode(q []float32, code []int8, scale float32) float32 {
	code = code[:len(q)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(q); i += 4 {
		s0 += q[i] * float32(code[i])
		s1 += q[i+1] * float32(code[i+1])
		s2 += q[i+2] * float32(code[i+2])
		s3 += q[i+3] * float32(code[i+3])
	}
	for ; i < len(q); i++ {
		s0 += q[i] * float32(code[i])
	}
	return (s0 + s1 + s2 + s3) * scale
}

// candidates is a bounded min-heap of (slot, coarse score): it keeps the
// n best offered.
type candidates struct {
	n     int
	slots []int32
	est   []float32
}

func (c *candidates) offer(slot int32, est float32) {
	if len(c.slots) < c.n {
		c.slots = append(c.slots, slot)
		c.est = append(c.est, est)
		for i := len(c.slots) - 1; i > 0; {
			p := (i - 1) / 2
			if c.est[p] <= c.est[i] {
				break
			}
			c.swap(i, p)
			i = p
		}
		return
	}
	if est <= c.est[0] {
		return
	}
	c.slots[0], c.est[0] = slot, est
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(c.est) && c.est[l] < c.est[m] {
			m = l
		}
		if r < len(c.est) && c.est[r] < c.est[m] {
			m = r
		}
		if m == i {
			return
		}
		c.swap(i, m)
		i = m
	}
}

func (c *candidates) swap(i, j int) {
	c.slots[i], c.slots[j] = c.slots[j], c.slots[i]
	c.est[i], c.est[j] = c.est[j], c.est[i]
}

// sparseQuery is a part of a query: the numbers at idx, val. Its dot
// product with an int8 code costs one multiplication per number kept.
type sparseQuery struct {
	idx []int32
	val []float32
}

// newSparseQuery returns the sparse form of q. If at most a quarter of
// q's numbers are not 0 (the built-in hashing embedder's queries have a
// few dozen of 256), it holds them all and exact is true: its dot product
// is the similarity. Otherwise it holds the quarter of q's numbers
// largest in magnitude (which carry most of a query's weight) and exact
// is false: its dot product is a coarse estimate, used to pick the
// candidates that are then scored with all of q.
func newSparseQuery(q []float32) (sq *sparseQuery, exact bool) {
	keep := max(1, len(q)/4)
	order := make([]int32, 0, len(q))
	for i, x := range q {
		if x != 0 {
			order = append(order, int32(i))
		}
	}
	exact = len(order) <= keep
	if !exact {
		slices.SortFunc(order, func(a, b int32) int {
			return cmp.Or(cmp.Compare(abs32(q[b]), abs32(q[a])), cmp.Compare(a, b))
		})
		order = order[:keep]
		slices.Sort(order) // in memory order
	}
	sq = &sparseQuery{idx: order, val: make([]float32, len(order))}
	for j, i := range order {
		sq.val[j] = q[i]
	}
	return sq, exact
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// dot returns the part's dot product with scale × code.
func (sq *sparseQuery) dot(code []int8, scale float32) float32 {
	var s0, s1 float32
	j := 0
	for ; j+2 <= len(sq.idx); j += 2 {
		s0 += sq.val[j] * float32(code[sq.idx[j]])
		s1 += sq.val[j+1] * float32(code[sq.idx[j+1]])
	}
	if j < len(sq.idx) {
		s0 += sq.val[j] * float32(code[sq.idx[j]])
	}
	return (s0 + s1) * scale
}
