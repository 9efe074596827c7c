package indextest

import (
	"context"
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// vectorCacheSeesOtherWriters: an index that keeps files' vectors in
// process memory finds a file's new chunks once another replica (another
// index on the same database) replaces them. A cache keyed by file alone
// would keep scoring the old vectors, where the new best chunk (index 2)
// does not exist.
func vectorCacheSeesOtherWriters(t *testing.T, h Harness) {
	ctx := context.Background()
	emb := embedder(t)
	ref1 := index.Ref{VectorStoreID: "vs_1", FileID: "file-1"}
	ref2 := index.Ref{VectorStoreID: "vs_1", FileID: "file-2"}
	reader, writer := h.NewReplicas(t, []index.Ref{ref1, ref2})
	put := func(ref index.Ref, texts ...string) {
		t.Helper()
		if err := writer.Put(ctx, ref, chunks(emb, ref, texts, true)); err != nil {
			t.Fatal(err)
		}
	}
	scope := index.Scope{VectorStoreIDs: []string{"vs_1"}}
	put(ref1, "battery warranty for two years")
	put(ref2, "courier collects the parcel")
	if hits, err := reader.SearchVector(ctx, emb.EmbedOne("lighthouse lantern"), scope, 1); err != nil || len(hits) > 1 {
		t.Fatalf("first search: %v %v", hits, err)
	}
	if h.CacheSize(reader) == 0 {
		t.Fatal("the search cached nothing")
	}
	put(ref1, "opening hours", "ticket prices", "the lighthouse lantern is lit at dusk")
	hits, err := reader.SearchVector(ctx, emb.EmbedOne("lighthouse lantern"), scope, 1)
	if err != nil || len(hits) != 1 || hits[0].Chunk.Ref != ref1 || hits[0].Chunk.Index != 2 {
		t.Fatalf("after another replica replaced the file: %+v %v, want ref1's chunk 2", hits, err)
	}
}
