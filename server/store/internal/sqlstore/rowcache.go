package sqlstore

import (
	listpkg "container/list"
	"sync"
)

// AfterWriter is what the Tx of a backend whose writes all go through
// this process (SQLite's single writer) also does: fn runs once the write
// has ended, given whether it committed (false when it was rolled back:
// its function failed, its savepoint was undone, or the commit failed). A
// write's functions run in the order of the commits (a write grouped with
// others: after the group's commit, in the group's order), before the
// write returns to its caller. fn must be quick.
type AfterWriter interface {
	AfterWrite(fn func(committed bool))
}

// rowCache holds rows the store wrote last (runs, assistants: see
// Options.RunCacheBytes), by id. Only committed writes change it, in
// commit order (AfterWriter); reads never fill it, so a read that raced a
// write can never put back an older row. From the moment a write of a row
// (or the deletion of the parent of rows: a thread and its runs) has run
// its statements until it has ended, the row (the parent's rows) is
// pending: reads go to the database, which other connections read the
// commit from before the write's end updates the cache.
type rowCache[V any] struct {
	// meta gives a row's id, parent (the thread of a run; "" for none) and
	// size against the bound.
	meta func(V) (id, parent string, size int)

	mu      sync.Mutex
	max     int // bytes
	size    int
	byID    map[string]*listpkg.Element // of V
	order   listpkg.List                // most recently written first
	pending map[string]int              // row id: writes not ended
	parents map[string]int              // parent id: deletions not ended
	closed  bool                        // the store closed: no answers
}

func newRowCache[V any](max int, meta func(V) (id, parent string, size int)) *rowCache[V] {
	return &rowCache[V]{meta: meta, max: max, byID: map[string]*listpkg.Element{}, pending: map[string]int{}, parents: map[string]int{}}
}

// get returns row id when it is cached, not pending, and ok says it is
// the one asked for (its project, its thread). The row is the cache's:
// the caller copies what it hands on.
func (c *rowCache[V]) get(id string, ok func(V) bool) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	e, found := c.byID[id]
	if !found || c.closed || c.pending[id] > 0 {
		return zero, false
	}
	v := e.Value.(V)
	if _, parent, _ := c.meta(v); (parent != "" && c.parents[parent] > 0) || !ok(v) {
		return zero, false
	}
	return v, true
}

// begin marks row id pending: a write of it has run its statements.
func (c *rowCache[V]) begin(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[id]++
}

// end ends a write of row id that begin marked: when it committed, v
// (whose bytes the cache now owns) is the row as stored, or with gone the
// row was deleted.
func (c *rowCache[V]) end(id string, v V, gone, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	release(c.pending, id)
	if !committed {
		return
	}
	c.removeLocked(id)
	if gone {
		return
	}
	if _, _, n := c.meta(v); n <= c.max/16 {
		c.byID[id] = c.order.PushFront(v)
		c.size += n
	}
	for c.size > c.max {
		last, _, _ := c.meta(c.order.Back().Value.(V))
		c.removeLocked(last)
	}
}

// beginParent marks the rows of parent pending: its deletion has run.
func (c *rowCache[V]) beginParent(parent string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parents[parent]++
}

// endParent ends a deletion of parent that beginParent marked: when it
// committed, the parent's rows are gone.
func (c *rowCache[V]) endParent(parent string, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	release(c.parents, parent)
	if !committed {
		return
	}
	for id, e := range c.byID {
		if _, p, _ := c.meta(e.Value.(V)); p == parent {
			c.removeLocked(id)
		}
	}
}

// release takes one from k's count in m, and k out of m at zero.
func release(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

func (c *rowCache[V]) removeLocked(id string) {
	if e, ok := c.byID[id]; ok {
		_, _, n := c.meta(e.Value.(V))
		c.size -= n
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

// close empties the cache for good: the store is closed.
func (c *rowCache[V]) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.byID, c.pending, c.parents, c.size = map[string]*listpkg.Element{}, map[string]int{}, map[string]int{}, 0
	c.order.Init()
}

// stats returns the rows held and their bytes.
func (c *rowCache[V]) stats() (rows, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID), c.size
}

// afterWrite returns tx's AfterWriter when the store caches (cache is
// not nil) and tx can say when it ends.
func afterWrite[V any](tx Tx, cache *rowCache[V]) (AfterWriter, bool) {
	if cache == nil {
		return nil, false
	}
	aw, ok := tx.(AfterWriter)
	return aw, ok
}
