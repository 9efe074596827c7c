package sqlstore

import (
	listpkg "container/list"
	"slices"
	"sync"

	"github.com/assistants-go/assistants/server/store"
)

// AfterCommitter is what the Tx of a backend whose writes all go through
// this process (SQLite's single writer) also does: fn runs once the
// write's transaction has committed, in the order of the commits (a write
// grouped with others: after the group's commit, in the group's order),
// before the write returns to its caller. It does not run when the write
// is rolled back (its function failed, its savepoint was undone, or the
// commit failed). fn must be quick and must not panic.
type AfterCommitter interface {
	AfterCommit(fn func())
}

// Options configure a Store (New).
type Options struct {
	// RunCacheBytes bounds the runs the store keeps in memory, as last
	// written (CreateRun, UpdateRun), to answer GetRun and GetRunData
	// without reading the database. It is only used on a backend whose
	// Tx is an AfterCommitter; there every change of a run goes through
	// this store, in commit order, so the copy is the committed row. The
	// least recently written runs go first past the bound; a run larger
	// than a sixteenth of it is not kept. Default 0: no cache.
	RunCacheBytes int
}

// runCache holds the runs the store wrote last (Options.RunCacheBytes).
// Only committed writes change it, in commit order (AfterCommitter); reads
// never fill it, so a read that raced a write can never put back an older
// row.
type runCache struct {
	mu    sync.Mutex
	max   int // bytes
	size  int
	byID  map[string]*listpkg.Element // of store.Run
	order listpkg.List                // most recently written first
}

func newRunCache(max int) *runCache {
	return &runCache{max: max, byID: map[string]*listpkg.Element{}}
}

// runSize is what a cached run counts against the bound.
func runSize(r store.Run) int {
	return len(r.ID) + len(r.Project) + len(r.ThreadID) + len(r.AssistantID) + len(r.Status) + len(r.Data) + len(r.State) + 128
}

// get returns a copy of run id when it is cached and belongs to project
// and threadID (as GetRun's query asks); its State only withState.
func (c *runCache) get(project, threadID, id string, withState bool) (store.Run, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return store.Run{}, false
	}
	r := e.Value.(store.Run)
	if r.ThreadID != threadID || r.Project != project {
		return store.Run{}, false
	}
	r.Data, r.State = slices.Clone(r.Data), nil
	if withState {
		r.State = slices.Clone(e.Value.(store.Run).State)
	}
	return r, true
}

// put records r as written (a copy of its bytes: the caller keeps its
// own).
func (c *runCache) put(r store.Run) {
	r.Data, r.State = slices.Clone(r.Data), slices.Clone(r.State)
	n := runSize(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(r.ID)
	if n > c.max/16 {
		return
	}
	c.byID[r.ID] = c.order.PushFront(r)
	c.size += n
	for c.size > c.max {
		c.removeLocked(c.order.Back().Value.(store.Run).ID)
	}
}

// dropThread forgets the runs of a deleted thread.
func (c *runCache) dropThread(threadID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.byID {
		if e.Value.(store.Run).ThreadID == threadID {
			c.removeLocked(id)
		}
	}
}

func (c *runCache) removeLocked(id string) {
	if e, ok := c.byID[id]; ok {
		c.size -= runSize(e.Value.(store.Run))
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

// RunCacheStats returns the runs the cache holds and the bytes they count
// (Options.RunCacheBytes); zeros without a cache.
func (s *Store) RunCacheStats() (runs, bytes int) {
	if s.runs == nil {
		return 0, 0
	}
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	return len(s.runs.byID), s.runs.size
}

// cacheRun has the cache record r once tx commits; without a cache, or on
// a backend whose Tx cannot say when it commits, nothing.
func (s *Store) cacheRun(tx Tx, r store.Run) {
	if ac, ok := tx.(AfterCommitter); ok && s.runs != nil {
		ac.AfterCommit(func() { s.runs.put(r) })
	}
}

// uncacheThread has the cache forget a thread's runs once tx, which
// deletes the thread, commits.
func (s *Store) uncacheThread(tx Tx, threadID string) {
	if ac, ok := tx.(AfterCommitter); ok && s.runs != nil {
		ac.AfterCommit(func() { s.runs.dropThread(threadID) })
	}
}

// cachedRun returns run id from the cache, when it holds it (its State
// only withState).
func (s *Store) cachedRun(project, threadID, id string, withState bool) (store.Run, bool) {
	if s.runs == nil {
		return store.Run{}, false
	}
	return s.runs.get(store.ProjectOr(project), threadID, id, withState)
}
