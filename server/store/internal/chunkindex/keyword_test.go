package chunkindex

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// memSource is a PostingsSource over rows kept in memory, as the stores
// keep them in tables (by term).
type memSource struct {
	byTerm         map[string]map[index.Ref]FilePostings
	chunks, length int64
	scope          map[index.Ref]bool
	reads          int // postings rows read
}

func newMemSource(files map[index.Ref]FileTerms, scope map[index.Ref]bool) *memSource {
	m := &memSource{byTerm: map[string]map[index.Ref]FilePostings{}, scope: scope}
	for ref, f := range files {
		if !scope[ref] {
			continue // the statistics are the scope's; nothing else is read
		}
		m.chunks += int64(f.Chunks)
		m.length += int64(f.Length)
		for _, r := range f.Rows {
			if m.byTerm[r.Term] == nil {
				m.byTerm[r.Term] = map[index.Ref]FilePostings{}
			}
			m.byTerm[r.Term][ref] = r
		}
	}
	return m
}

func (m *memSource) Stats(_ context.Context, terms []string) (IndexStats, error) {
	st := IndexStats{Chunks: m.chunks, Length: m.length, Terms: map[string]TermStats{}}
	for _, t := range terms {
		for _, r := range m.byTerm[t] {
			ts, ok := st.Terms[t]
			if !ok {
				ts.MinLen = r.MinLen
			}
			ts.DF += int64(r.DF)
			ts.MaxTF = max(ts.MaxTF, r.MaxTF)
			ts.MinLen = min(ts.MinLen, r.MinLen)
			st.Terms[t] = ts
		}
	}
	return st, nil
}

func (m *memSource) Postings(_ context.Context, terms []string, files []index.Ref, fn func(string, index.Ref, []byte) error) error {
	for _, t := range terms {
		for ref, r := range m.byTerm[t] {
			if !m.scope[ref] || files != nil && !slices.Contains(files, ref) {
				continue
			}
			m.reads++
			if err := fn(t, ref, r.Blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// corpus makes files of chunks of words drawn from a Zipf distribution
// over a vocabulary (a few very common words, many rare ones), with
// chunks of varied lengths.
func corpus(r *rand.Rand, nFiles, perFile, vocab int) (map[index.Ref][]index.Chunk, func() string) {
	z := rand.NewZipf(r, 1.1, 2, uint64(vocab-1))
	word := func() string { return fmt.Sprintf("w%dq", z.Uint64()) }
	files := map[index.Ref][]index.Chunk{}
	for f := range nFiles {
		ref := index.Ref{VectorStoreID: fmt.Sprintf("vs_%d", f%3), FileID: fmt.Sprintf("file-%03d", f)}
		for n := range perFile {
			words := make([]string, 5+r.IntN(60))
			for i := range words {
				words[i] = word()
			}
			files[ref] = append(files[ref], index.Chunk{Ref: ref, Index: n, Text: strings.Join(words, " ")})
		}
	}
	return files, word
}

// brute scores every chunk directly with the in-memory index's BM25, with
// the statistics of the files it is given (a search's scope).
type brute struct {
	files map[index.Ref][]index.Chunk
	df    map[string]int
	tfs   map[index.Ref][]map[string]int
	lens  map[index.Ref][]int
	n     float64
	avg   float64
}

func newBrute(files map[index.Ref][]index.Chunk) *brute {
	b := &brute{files: files, df: map[string]int{}, tfs: map[index.Ref][]map[string]int{}, lens: map[index.Ref][]int{}}
	total := 0.0
	for ref, cs := range files {
		for _, c := range cs {
			m := map[string]int{}
			l := 0
			analyze.Terms(c.Text, func(t string) bool { m[t]++; l++; return true })
			for t := range m {
				b.df[t]++
			}
			b.tfs[ref] = append(b.tfs[ref], m)
			b.lens[ref] = append(b.lens[ref], l)
			total += float64(l)
			b.n++
		}
	}
	b.avg = total / b.n
	return b
}

// best returns the k best chunks in scope for query.
func (b *brute) best(scope map[index.Ref]bool, query string, k int) []Key {
	qtf := map[string]int{}
	analyze.Terms(query, func(t string) bool { qtf[t]++; return true })
	top := NewTopK(k)
	for ref, cs := range b.files {
		if !scope[ref] {
			continue
		}
		for i := range cs {
			s := 0.0
			for t, q := range qtf {
				tf := float64(b.tfs[ref][i][t])
				if tf == 0 {
					continue
				}
				d := float64(b.df[t])
				idf := math.Log(1 + (b.n-d+0.5)/(d+0.5))
				s += idf * float64(q) * tf * (K1 + 1) / (tf + K1*(1-B+B*float64(b.lens[ref][i])/b.avg))
			}
			if s > 0 {
				top.Offer(Key{VectorStoreID: ref.VectorStoreID, FileID: ref.FileID, N: cs[i].Index, Score: s})
			}
		}
	}
	return top.Sorted()
}

// sameKeys reports whether a and b are the same k best up to rounding:
// scores equal position by position, and the same chunks but for those
// tied (to rounding) with others, whose order, and presence at the k-th
// place, rounding may decide.
func sameKeys(a, b []Key) bool {
	if len(a) != len(b) {
		return false
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	in := func(ks []Key, k Key) bool {
		for _, x := range ks {
			if x.VectorStoreID == k.VectorStoreID && x.FileID == k.FileID && x.N == k.N {
				return near(x.Score, k.Score)
			}
		}
		return false
	}
	for i := range a {
		if !near(a[i].Score, b[i].Score) {
			return false
		}
	}
	if len(a) == 0 {
		return true
	}
	last := b[len(b)-1].Score
	for _, pair := range [][2][]Key{{a, b}, {b, a}} {
		for _, k := range pair[0] {
			if !near(k.Score, last) && !in(pair[1], k) {
				return false
			}
		}
	}
	return true
}

// TestKeywordPruningIsExact: on a Zipf corpus, for many queries, scopes
// and k, the pruned search returns exactly the exhaustive search's k best
// (the same chunks, order and scores), which are those of BM25 computed
// directly; pruning happens on a good share of the queries and reads
// fewer rows. With upper bounds halved (a fault: pruning then drops
// chunks that belong to the k best) the comparison fails on some query,
// which shows the test can catch pruning that loses a true hit.
func TestKeywordPruningIsExact(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	files, word := corpus(r, 60, 40, 3000)
	someFiles := maps.Clone(files)
	maps.DeleteFunc(someFiles, func(ref index.Ref, _ []index.Chunk) bool { return ref.VectorStoreID == "vs_1" })
	direct := map[bool]*brute{false: newBrute(files), true: newBrute(someFiles)}
	terms := map[index.Ref]FileTerms{}
	for ref, cs := range files {
		terms[ref] = AnalyzeFile(cs)
	}
	all := map[index.Ref]bool{}
	some := map[index.Ref]bool{}
	for ref := range files {
		all[ref] = true
		some[ref] = ref.VectorStoreID != "vs_1"
	}
	sources := map[bool]*memSource{false: newMemSource(terms, all), true: newMemSource(terms, some)}
	pruned, faultCaught, queries := 0, 0, 0
	var readsPruned, readsFull int
	for q := range 300 {
		words := make([]string, 1+r.IntN(7))
		for i := range words {
			words[i] = word()
		}
		query := strings.Join(words, " ")
		k := []int{1, 5, 10, 50}[q%4]
		scope := all
		if q%3 == 0 {
			scope = some
		}
		want := direct[q%3 == 0].best(scope, query, k)
		src := sources[q%3 == 0]
		src.reads = 0
		exh, _, err := searchKeyword(ctx, src, query, k, keywordTest{exhaustive: true})
		if err != nil {
			t.Fatal(err)
		}
		readsFull += src.reads
		src.reads = 0
		got, st, err := SearchKeyword(ctx, src, query, k)
		if err != nil {
			t.Fatal(err)
		}
		readsPruned += src.reads
		queries++
		if !sameKeys(exh, want) {
			t.Fatalf("query %q k=%d: exhaustive %v, direct BM25 %v", query, k, exh, want)
		}
		if !sameKeys(got, exh) {
			t.Fatalf("query %q k=%d: pruned %v, exhaustive %v (stats %+v)", query, k, got, exh, st)
		}
		if st.Full < st.Terms {
			pruned++
		}
		// The terms left read in every file in scope after pruning,
		// rather than in the files named.
		all, _, err := searchKeyword(ctx, src, query, k, keywordTest{maxFiles: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !sameKeys(all, exh) {
			t.Fatalf("query %q k=%d: pruned without a file list %v, exhaustive %v", query, k, all, exh)
		}
		bad, _, err := searchKeyword(ctx, src, query, k, keywordTest{boundScale: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		if !sameKeys(bad, exh) {
			faultCaught++
		}
	}
	t.Logf("%d queries: %d pruned, rows read %d (exhaustive %d); halved bounds lose a true hit on %d",
		queries, pruned, readsPruned, readsFull, faultCaught)
	if pruned < queries/5 {
		t.Errorf("pruning happened on %d of %d queries only", pruned, queries)
	}
	if readsPruned >= readsFull {
		t.Errorf("pruned searches read %d rows, exhaustive %d", readsPruned, readsFull)
	}
	if faultCaught == 0 {
		t.Error("with halved upper bounds no result changed: the comparison cannot catch lossy pruning")
	}
}

func TestDecodePostingsRejectsDamage(t *testing.T) {
	ft := AnalyzeFile([]index.Chunk{{Index: 0, Text: "lantern lens lantern"}, {Index: 3, Text: "lantern"}})
	if len(ft.Rows) != 2 || ft.Chunks != 2 || ft.Length != 4 {
		t.Fatalf("rows %+v", ft)
	}
	row := ft.Rows[0]
	if row.Term != "lantern" || row.DF != 2 || row.MaxTF != 2 || row.MinLen != 1 {
		t.Fatalf("lantern row %+v", row)
	}
	var got []Posting
	if err := DecodePostings(row.Blob, func(p Posting) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if want := []Posting{{0, 2, 3}, {3, 1, 1}}; !slices.Equal(got, want) {
		t.Fatalf("postings %v, want %v", got, want)
	}
	for _, blob := range [][]byte{row.Blob[:len(row.Blob)-1], {0, 1, 1}, {0x80}} {
		if err := DecodePostings(blob, func(Posting) {}); err == nil {
			t.Errorf("damaged blob %v accepted", blob)
		}
	}
}
