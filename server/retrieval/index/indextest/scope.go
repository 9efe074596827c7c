package indextest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// scopedStatistics: a keyword search's BM25 statistics (chunk count,
// average length, document frequencies) are those of its scope. The same
// query over vs_1 ranks and scores vs_1's chunks identically whether or
// not another vector store (another project's) holds many long chunks full
// of the query's terms, and a file the filter excludes counts as absent.
// With statistics summed over the whole index, the crowded index lowers
// the terms' idf and raises the average length: the scores move.
func scopedStatistics(t *testing.T, h Harness) {
	ctx := context.Background()
	emb := embedder(t)
	own := []index.Ref{fileA, fileB, fileC}
	others := make([]index.Ref, 6)
	for i := range others {
		others[i] = index.Ref{VectorStoreID: "vs_other", FileID: fmt.Sprintf("file-other-%d", i)}
	}
	alone := h.New(t, own)
	crowded := h.New(t, append(append([]index.Ref(nil), own...), others...))
	for _, ref := range own {
		for _, x := range []index.Index{alone, crowded} {
			if err := x.Put(ctx, ref, chunks(emb, ref, corpus[ref], true)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, ref := range others {
		texts := make([]string, 4)
		for n := range texts {
			texts[n] = strings.Repeat(fmt.Sprintf("parcel battery refund warranty courier %d ", i*4+n), 3+n)
		}
		if err := crowded.Put(ctx, ref, chunks(emb, ref, texts, true)); err != nil {
			t.Fatal(err)
		}
	}
	const query = "damaged parcel refund battery warranty"
	mine := index.Scope{VectorStoreIDs: []string{"vs_1"}}
	want, err := alone.SearchKeyword(ctx, query, mine, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 2 {
		t.Fatalf("the query finds %v in vs_1: the test needs two hits at least", scored(want))
	}
	filtered := index.Scope{VectorStoreIDs: []string{"vs_1", "vs_other"}, Allow: func(r index.Ref) bool { return r.VectorStoreID == "vs_1" }}
	for name, scope := range map[string]index.Scope{"vs_1": mine, "filtered to vs_1": filtered} {
		got, err := crowded.SearchKeyword(ctx, query, scope, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !sameHits(got, want) {
			t.Errorf("%s, with another vector store's files:\n got %v\nwant %v (without them)", name, scored(got), scored(want))
		}
	}
}
