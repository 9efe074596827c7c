package chunkindex

import (
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// TestVectorCache: a row is found under its version only; the cache
// never holds more than its size, dropping the least recently used rows;
// a nil cache holds nothing.
func TestVectorCache(t *testing.T) {
	a := index.Ref{VectorStoreID: "vs", FileID: "a"}
	b := index.Ref{VectorStoreID: "vs", FileID: "b"}
	c := index.Ref{VectorStoreID: "vs", FileID: "c"}
	cache := NewVectorCache(100)
	cache.Put(a, 1, make([]byte, 40))
	cache.Put(b, 1, make([]byte, 40))
	if cache.Get(a, 1) == nil || cache.Get(a, 2) != nil {
		t.Fatal("a row is found under its own version only")
	}
	if cache.Get(a, 1) != nil {
		t.Fatal("a row asked for under another version is dropped")
	}
	cache.Put(a, 2, make([]byte, 40))
	if cache.Get(b, 1) == nil { // b is now the most recently used
		t.Fatal("b lost")
	}
	cache.Put(c, 1, make([]byte, 40)) // 120 bytes: a, the least recently used, goes
	if got := cache.Size(); got != 80 {
		t.Fatalf("size %d, want 80", got)
	}
	if cache.Get(a, 2) != nil || cache.Get(b, 1) == nil || cache.Get(c, 1) == nil {
		t.Fatal("the least recently used row was not the one dropped")
	}
	cache.Put(a, 3, make([]byte, 101)) // larger than the cache: not kept
	if cache.Get(a, 3) != nil || cache.Size() != 80 {
		t.Fatalf("an oversized row was kept (size %d)", cache.Size())
	}
	var none *VectorCache = NewVectorCache(0)
	none.Put(a, 1, []byte{1})
	if none.Get(a, 1) != nil || none.Size() != 0 {
		t.Fatal("a disabled cache holds rows")
	}
	if v := NewVersion(); v <= 0 {
		t.Fatalf("version %d", v)
	}
}
