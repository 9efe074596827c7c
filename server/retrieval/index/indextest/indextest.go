// Package indextest is the conformance test of index.Index
// implementations: the in-memory index, and the SQLite and PostgreSQL
// search indexes run the same queries over the same small corpus (written
// for these tests) and must return the same top results, filter before
// ranking, score keywords with their scope's statistics alone, replace and
// delete files' chunks, and refuse vectors of another dimension.
package indextest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
	"github.com/assistants-go/assistants/server/store"
)

// Harness makes the index under test.
type Harness struct {
	// New returns an empty index with the built-in embedder's model and
	// dimension (256). refs are the files the test will put: a
	// store-backed index needs them attached to their vector stores first
	// (see Attach).
	New func(t *testing.T, refs []index.Ref) index.Index
	// NewReplicas, for an index kept in a database, returns two indexes
	// on one new database (two replicas'), refs attached; CacheSize
	// returns the bytes of vectors an index of NewReplicas holds in
	// process memory. When nil (an index in process memory), the replica
	// test does not apply and is not run.
	NewReplicas func(t *testing.T, refs []index.Ref) (index.Index, index.Index)
	CacheSize   func(x index.Index) int64
}

// Attach creates the vector stores of refs in s and attaches refs' files
// to them (the store's chunks belong to vector store files).
func Attach(t testing.TB, s store.Store, refs []index.Ref) {
	t.Helper()
	ctx := context.Background()
	made := map[string]bool{}
	for _, r := range refs {
		if !made[r.VectorStoreID] {
			made[r.VectorStoreID] = true
			if err := s.CreateVectorStore(ctx, store.VectorStore{ID: r.VectorStoreID, CreatedAt: 1, Data: []byte(`{}`)}, nil); err != nil {
				t.Fatalf("create vector store %s: %v", r.VectorStoreID, err)
			}
		}
		err := s.PutVectorStoreFile(ctx, store.VectorStoreFile{VectorStoreID: r.VectorStoreID, FileID: r.FileID,
			Status: "completed", CreatedAt: 1, Data: []byte(`{}`)})
		if err != nil {
			t.Fatalf("attach %s to %s: %v", r.FileID, r.VectorStoreID, err)
		}
	}
}

var (
	fileA = index.Ref{VectorStoreID: "vs_1", FileID: "file-a"}
	fileB = index.Ref{VectorStoreID: "vs_1", FileID: "file-b"}
	fileC = index.Ref{VectorStoreID: "vs_1", FileID: "file-c"}
	fileD = index.Ref{VectorStoreID: "vs_2", FileID: "file-d"}
	fileE = index.Ref{VectorStoreID: "vs_2", FileID: "file-e"}
	// fileF is attached but only put by the replacement test.
	fileF = index.Ref{VectorStoreID: "vs_2", FileID: "file-f"}
)

// Refs are the files of the corpus.
var Refs = []index.Ref{fileA, fileB, fileC, fileD, fileE, fileF}

// corpus: two chunks per file; file-e's chunk has no vector (found by
// keyword only).
var corpus = map[index.Ref][]string{
	fileA: {
		"Refunds are issued within fourteen days when a parcel arrives damaged. Keep the packaging and take photos.",
		"Our warranty covers the battery for two years; a swollen battery is replaced free of charge.",
	},
	fileB: {
		"The garden centre sells tomato seedlings every spring, with compost and watering cans.",
		"To reset the router password, hold the small button on the back for ten seconds.",
	},
	fileC: {
		"The museum opens at nine; tickets for the comet exhibition are sold at the door.",
		"A violin lesson lasts forty minutes and includes tuning and bowing practice.",
	},
	fileD: {
		"Parcel tracking numbers arrive by email once the courier collects the parcel.",
		"Bridge tolls on the river crossing are paid by card; cash is not accepted.",
	},
	fileE: {
		"Invoice copies can be downloaded from the account page at any time.",
	},
}

func embedder(t testing.TB) *embed.Hashing {
	h, err := embed.NewHashing()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func chunks(h *embed.Hashing, ref index.Ref, texts []string, vectors bool) []index.Chunk {
	out := make([]index.Chunk, len(texts))
	for i, text := range texts {
		out[i] = index.Chunk{Ref: ref, Index: i, Text: text}
		if vectors {
			out[i].Vector = h.EmbedOne(text)
		}
	}
	return out
}

func load(t *testing.T, x index.Index, h *embed.Hashing) {
	t.Helper()
	for _, ref := range []index.Ref{fileA, fileB, fileC, fileD, fileE} {
		if err := x.Put(context.Background(), ref, chunks(h, ref, corpus[ref], ref != fileE)); err != nil {
			t.Fatalf("put %v: %v", ref, err)
		}
	}
}

type hitID struct {
	index.Ref
	Index int
}

func ids(hits []index.Hit) []hitID {
	out := make([]hitID, len(hits))
	for i, h := range hits {
		out[i] = hitID{h.Chunk.Ref, h.Chunk.Index}
	}
	return out
}

// Run runs the conformance tests on the indexes h makes.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	emb := embedder(t)
	both := []string{"vs_1", "vs_2"}

	t.Run("TopResults", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		tests := []struct {
			name   string
			query  string
			stores []string
			vector bool
			want   hitID
		}{
			{"keyword refund", "damaged parcel refund", both, false, hitID{fileA, 0}},
			{"vector refund", "damaged parcel refund", both, true, hitID{fileA, 0}},
			{"keyword router", "how do I reset my router password", both, false, hitID{fileB, 1}},
			{"vector router", "how do I reset my router password", both, true, hitID{fileB, 1}},
			{"keyword battery", "swollen battery warranty", both, false, hitID{fileA, 1}},
			{"vector battery", "swollen battery warranty", both, true, hitID{fileA, 1}},
			{"keyword museum", "comet museum tickets", both, false, hitID{fileC, 0}},
			{"vector museum", "comet museum tickets", both, true, hitID{fileC, 0}},
			{"keyword tracking in vs_2", "parcel tracking email", []string{"vs_2"}, false, hitID{fileD, 0}},
			{"vector tracking in vs_2", "parcel tracking email", []string{"vs_2"}, true, hitID{fileD, 0}},
			{"keyword only chunk", "invoice copies downloaded", both, false, hitID{fileE, 0}},
			{"vector parcel in vs_1 only", "parcel tracking email", []string{"vs_1"}, true, hitID{fileA, 0}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				scope := index.Scope{VectorStoreIDs: tc.stores}
				hits := search(t, x, emb, tc.query, scope, 5, tc.vector)
				if len(hits) == 0 {
					t.Fatalf("no hits, want %v first", tc.want)
				}
				if got := ids(hits)[0]; got != tc.want {
					t.Fatalf("top hit %v, want %v (all: %v)", got, tc.want, ids(hits))
				}
				checkHits(t, hits, scope, 5, tc.vector)
			})
		}
	})

	t.Run("FilterBeforeRanking", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		for _, vector := range []bool{false, true} {
			calls := map[index.Ref]int{}
			var mu sync.Mutex
			scope := index.Scope{VectorStoreIDs: both, Allow: func(r index.Ref) bool {
				mu.Lock()
				calls[r]++
				mu.Unlock()
				return r != fileA
			}}
			// file-a holds the best chunk; with k = 1 a filter applied
			// after ranking would leave nothing.
			hits := search(t, x, emb, "damaged parcel refund", scope, 1, vector)
			if len(hits) != 1 {
				t.Fatalf("vector=%v: %d hits, want 1 from the allowed files", vector, len(hits))
			}
			if hits[0].Chunk.Ref == fileA {
				t.Fatalf("vector=%v: a hit from the excluded file: %v", vector, ids(hits))
			}
			if want := (hitID{fileD, 0}); ids(hits)[0] != want {
				t.Fatalf("vector=%v: top hit %v, want %v", vector, ids(hits)[0], want)
			}
			for r, n := range calls {
				if n > 1 {
					t.Fatalf("vector=%v: Allow called %d times for %v", vector, n, r)
				}
			}
		}
	})

	t.Run("EmptyScope", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		for _, vector := range []bool{false, true} {
			for _, scope := range []index.Scope{{}, {VectorStoreIDs: []string{"vs_none"}},
				{VectorStoreIDs: both, Allow: func(index.Ref) bool { return false }}} {
				if hits := search(t, x, emb, "parcel", scope, 5, vector); len(hits) != 0 {
					t.Fatalf("vector=%v scope %v: %v, want nothing", vector, scope.VectorStoreIDs, ids(hits))
				}
			}
		}
		if hits, err := x.SearchKeyword(ctx, "the and of", index.Scope{VectorStoreIDs: both}, 5); err != nil || len(hits) != 0 {
			t.Fatalf("stop words only: %v, %v; want nothing", ids(hits), err)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		scope := index.Scope{VectorStoreIDs: both}
		for _, vector := range []bool{false, true} {
			all := search(t, x, emb, "parcel battery router museum tolls invoice", scope, 100, vector)
			if len(all) < 4 {
				t.Fatalf("vector=%v: %d hits, want several", vector, len(all))
			}
			checkHits(t, all, scope, 100, vector)
			two := search(t, x, emb, "parcel battery router museum tolls invoice", scope, 2, vector)
			if len(two) != 2 || ids(two)[0] != ids(all)[0] || ids(two)[1] != ids(all)[1] {
				t.Fatalf("vector=%v: k=2 gave %v, the first two of %v", vector, ids(two), ids(all))
			}
		}
	})

	t.Run("ReplaceAndDelete", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		scope := index.Scope{VectorStoreIDs: both}
		// Replacing file-a: its old text is gone, the new one found.
		if err := x.Put(ctx, fileA, chunks(emb, fileA, []string{"Lighthouse keepers polish the lantern lens weekly."}, true)); err != nil {
			t.Fatal(err)
		}
		for _, vector := range []bool{false, true} {
			for _, hit := range search(t, x, emb, "swollen battery warranty", scope, 10, vector) {
				if hit.Chunk.Ref == fileA && (hit.Chunk.Index != 0 || hit.Chunk.Text != "Lighthouse keepers polish the lantern lens weekly.") {
					t.Fatalf("vector=%v: replaced chunk still found: %+v", vector, hit)
				}
			}
			hits := search(t, x, emb, "lighthouse lantern", scope, 10, vector)
			if len(hits) == 0 || ids(hits)[0] != (hitID{fileA, 0}) {
				t.Fatalf("vector=%v: new chunk not found first: %v", vector, ids(hits))
			}
		}
		// A new file in vs_2, then the whole of vs_2 deleted.
		if err := x.Put(ctx, fileF, chunks(emb, fileF, []string{"The lighthouse lantern is lit at dusk."}, true)); err != nil {
			t.Fatal(err)
		}
		if hits := search(t, x, emb, "lighthouse lantern dusk", scope, 10, false); len(hits) != 2 {
			t.Fatalf("after adding file-f: %v, want file-f and file-a", ids(hits))
		}
		if err := x.DeleteVectorStore(ctx, "vs_2"); err != nil {
			t.Fatal(err)
		}
		for _, vector := range []bool{false, true} {
			for _, hit := range search(t, x, emb, "parcel tracking lighthouse invoice tolls", scope, 10, vector) {
				if hit.Chunk.VectorStoreID == "vs_2" {
					t.Fatalf("vector=%v: chunk of a deleted vector store: %+v", vector, hit)
				}
			}
		}
		if err := x.Delete(ctx, fileA); err != nil {
			t.Fatal(err)
		}
		if err := x.Delete(ctx, index.Ref{VectorStoreID: "vs_1", FileID: "file-unknown"}); err != nil {
			t.Fatalf("delete of an unknown file: %v", err)
		}
		for _, vector := range []bool{false, true} {
			for _, hit := range search(t, x, emb, "lighthouse lantern", scope, 10, vector) {
				if hit.Chunk.Ref == fileA {
					t.Fatalf("vector=%v: deleted file found: %+v", vector, hit)
				}
			}
			if hits := search(t, x, emb, "router password", scope, 10, vector); len(hits) == 0 || hits[0].Chunk.Ref != fileB {
				t.Fatalf("vector=%v: other files lost: %v", vector, ids(hits))
			}
		}
	})

	t.Run("KeywordAsMemory", func(t *testing.T) { keywordAsMemory(t, h) })
	t.Run("ScopedStatistics", func(t *testing.T) { scopedStatistics(t, h) })
	if h.NewReplicas != nil {
		t.Run("VectorCacheSeesOtherWriters", func(t *testing.T) { vectorCacheSeesOtherWriters(t, h) })
	}

	t.Run("Dimension", func(t *testing.T) {
		x := h.New(t, Refs)
		load(t, x, emb)
		short, err := embed.NewHashing(func(o *embed.HashingOptions) { o.Dimension = 32 })
		if err != nil {
			t.Fatal(err)
		}
		err = x.Put(ctx, fileA, chunks(short, fileA, []string{"Lighthouse keepers polish the lantern lens weekly."}, true))
		if !errors.Is(err, index.ErrDimension) {
			t.Fatalf("put of 32-number vectors into a 256 index: %v, want ErrDimension", err)
		}
		// Nothing changed.
		hits := search(t, x, emb, "swollen battery warranty", index.Scope{VectorStoreIDs: both}, 1, true)
		if len(hits) != 1 || ids(hits)[0] != (hitID{fileA, 1}) {
			t.Fatalf("after a refused put: %v, want file-a's chunk 1", ids(hits))
		}
		_, err = x.SearchVector(ctx, short.EmbedOne("battery"), index.Scope{VectorStoreIDs: both}, 5)
		if !errors.Is(err, index.ErrDimension) {
			t.Fatalf("32-number query: %v, want ErrDimension", err)
		}
	})
}

func search(t *testing.T, x index.Index, h *embed.Hashing, query string, scope index.Scope, k int, vector bool) []index.Hit {
	t.Helper()
	var hits []index.Hit
	var err error
	if vector {
		hits, err = x.SearchVector(context.Background(), h.EmbedOne(query), scope, k)
	} else {
		hits, err = x.SearchKeyword(context.Background(), query, scope, k)
	}
	if err != nil {
		t.Fatalf("search %q: %v", query, err)
	}
	return hits
}

// checkHits checks what every search result must be: at most k, in scope,
// scores above 0 (at most 1 for vectors) and not increasing, the put text,
// no vector.
func checkHits(t *testing.T, hits []index.Hit, scope index.Scope, k int, vector bool) {
	t.Helper()
	if len(hits) > k {
		t.Fatalf("%d hits for k=%d", len(hits), k)
	}
	seen := map[hitID]bool{}
	for i, hit := range hits {
		id := hitID{hit.Chunk.Ref, hit.Chunk.Index}
		if seen[id] {
			t.Fatalf("hit %v twice", id)
		}
		seen[id] = true
		inScope := false
		for _, vs := range scope.VectorStoreIDs {
			inScope = inScope || vs == hit.Chunk.VectorStoreID
		}
		if !inScope {
			t.Fatalf("hit %v out of scope %v", id, scope.VectorStoreIDs)
		}
		if hit.Score <= 0 || vector && hit.Score > 1+1e-6 {
			t.Fatalf("hit %v score %v", id, hit.Score)
		}
		if i > 0 && hit.Score > hits[i-1].Score {
			t.Fatalf("hits not best first: %v then %v", hits[i-1].Score, hit.Score)
		}
		texts := corpus[hit.Chunk.Ref]
		if hit.Chunk.Index >= len(texts) || hit.Chunk.Text != texts[hit.Chunk.Index] {
			t.Fatalf("hit %v text %q", id, hit.Chunk.Text)
		}
		if hit.Chunk.Vector != nil {
			t.Fatalf("hit %v carries a vector", id)
		}
	}
}

// keywordAsMemory: on a corpus where most chunks hold a query's common
// words (words drawn from a Zipf distribution) in 40 files of two vector
// stores, the index's keyword k best are the in-memory index's (the
// reference BM25), for many queries, k, scopes and filters. A store that
// prunes must lose nothing.
func keywordAsMemory(t *testing.T, h Harness) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	z := rand.NewZipf(r, 1.1, 2, 1999)
	word := func() string { return fmt.Sprintf("w%dq", z.Uint64()) }
	refs := make([]index.Ref, 40)
	for i := range refs {
		refs[i] = index.Ref{VectorStoreID: []string{"vs_a", "vs_b"}[i%2], FileID: fmt.Sprintf("file-%02d", i)}
	}
	x := h.New(t, refs)
	mem := memory.New()
	for _, ref := range refs {
		cs := make([]index.Chunk, 25)
		for n := range cs {
			words := make([]string, 5+r.IntN(50))
			for i := range words {
				words[i] = word()
			}
			cs[n] = index.Chunk{Ref: ref, Index: n, Text: strings.Join(words, " ")}
		}
		for _, ix := range []index.Index{x, mem} {
			if err := ix.Put(ctx, ref, cs); err != nil {
				t.Fatal(err)
			}
		}
	}
	scopes := []index.Scope{
		{VectorStoreIDs: []string{"vs_a", "vs_b"}},
		{VectorStoreIDs: []string{"vs_b"}},
		{VectorStoreIDs: []string{"vs_a", "vs_b"}, Allow: func(r index.Ref) bool { return r.FileID < "file-15" }},
	}
	for q := range 60 {
		words := make([]string, 1+r.IntN(6))
		for i := range words {
			words[i] = word()
		}
		query := strings.Join(words, " ")
		k := []int{1, 5, 10, 30}[q%4]
		scope := scopes[q%3]
		want, err := mem.SearchKeyword(ctx, query, scope, k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.SearchKeyword(ctx, query, scope, k)
		if err != nil {
			t.Fatal(err)
		}
		if !sameHits(got, want) {
			t.Fatalf("query %q k=%d scope %d:\n got %v\nwant %v", query, k, q%3, scored(got), scored(want))
		}
	}
}

type scoredID struct {
	hitID
	Score float64
}

func scored(hits []index.Hit) []scoredID {
	out := make([]scoredID, len(hits))
	for i, h := range hits {
		out[i] = scoredID{hitID{h.Chunk.Ref, h.Chunk.Index}, h.Score}
	}
	return out
}

// sameHits reports whether a and b are the same k best up to rounding:
// scores equal place by place, the same chunks but for those tied (to
// rounding) with the last, whose presence rounding may decide, and each
// chunk with its score.
func sameHits(a, b []index.Hit) bool {
	if len(a) != len(b) {
		return false
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	for i := range a {
		if !near(a[i].Score, b[i].Score) {
			return false
		}
	}
	if len(a) == 0 {
		return true
	}
	last := b[len(b)-1].Score
	for _, pair := range [][2][]index.Hit{{a, b}, {b, a}} {
		for _, h := range pair[0] {
			if near(h.Score, last) {
				continue
			}
			found := false
			for _, o := range pair[1] {
				if o.Chunk.Ref == h.Chunk.Ref && o.Chunk.Index == h.Chunk.Index {
					found = near(o.Score, h.Score) && o.Chunk.Text == h.Chunk.Text
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}
