package chunkindex

import (
	"container/list"
	"math/rand/v2"
	"sync"

	"github.com/assistants-go/assistants/server/retrieval/index"
)

// DefaultVectorCacheBytes is Options.VectorCacheBytes' default: 64 MiB,
// the quantized vectors of about 250,000 chunks of 256 dimensions.
const DefaultVectorCacheBytes = 64 << 20

// NewVersion returns the version of a file's vector row being written: a
// random number above 0, so that a cached row is never taken for its
// replacement.
func NewVersion() int64 { return 1 + rand.Int64N(1<<62) }

// VectorCache keeps files' quantized vector rows (blobs) in process
// memory, each under its file and version: a row is written once and
// replaced whole under a new version, so a cached blob is the row's as
// long as the store still lists that version. A search lists the versions
// in scope (a small read) and reads only the rows it does not hold. It is
// a cache of the store: nothing is lost with it, and every replica keeps
// its own. Memory is bounded by its size: the least recently used rows
// go first, and a row larger than the whole cache is not kept. It is safe
// for concurrent use.
type VectorCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	byRef map[index.Ref]*list.Element
	lru   list.List // front: most recently used
}

type cacheEntry struct {
	ref     index.Ref
	version int64
	blob    []byte
}

// NewVectorCache returns a cache of at most maxBytes bytes of blobs (nil
// when maxBytes is 0 or less: no cache).
func NewVectorCache(maxBytes int64) *VectorCache {
	if maxBytes <= 0 {
		return nil
	}
	return &VectorCache{max: maxBytes, byRef: map[index.Ref]*list.Element{}}
}

// Get returns ref's blob at version, or nil. A nil cache holds nothing.
// The blob must not be changed.
func (c *VectorCache) Get(ref index.Ref, version int64) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byRef[ref]
	if e == nil {
		return nil
	}
	ent := e.Value.(*cacheEntry)
	if ent.version != version {
		c.removeLocked(e)
		return nil
	}
	c.lru.MoveToFront(e)
	return ent.blob
}

// Put keeps blob (which it does not copy: it must not be changed) as
// ref's at version, replacing another version, and drops the least
// recently used rows beyond the cache's size.
func (c *VectorCache) Put(ref index.Ref, version int64, blob []byte) {
	if c == nil || int64(len(blob)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byRef[ref]; e != nil {
		c.removeLocked(e)
	}
	c.byRef[ref] = c.lru.PushFront(&cacheEntry{ref: ref, version: version, blob: blob})
	c.size += int64(len(blob))
	for c.size > c.max {
		c.removeLocked(c.lru.Back())
	}
}

// Size returns the bytes of blobs held.
func (c *VectorCache) Size() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *VectorCache) removeLocked(e *list.Element) {
	ent := c.lru.Remove(e).(*cacheEntry)
	delete(c.byRef, ent.ref)
	c.size -= int64(len(ent.blob))
}
