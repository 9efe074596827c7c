package sqlstore

import (
	listpkg "container/list"
	"slices"
	"sync"

	"github.com/assistants-go/assistants/server/store"
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

// Options configure a Store (New).
type Options struct {
	// RunCacheBytes bounds the runs the store keeps in memory, as last
	// written (CreateRun, UpdateRun), to answer GetRun and GetRunData
	// without reading the database. It is only used on a backend whose
	// Tx is an AfterCommitter; there every change of a run goes through
	// this store, in commit order, so the copy is the committed row. The
	// least recently written runs go first past the bound; a run larger
	// than a sixteenth of it is not kept. Default 0: no cache. It is only
	// used on a backend whose Tx is an AfterWriter.
	RunCacheBytes int
}

// runCache holds the runs the store wrote last (Options.RunCacheBytes).
// Only committed writes change it, in commit order (AfterWriter); reads
// never fill it, so a read that raced a write can never put back an older
// row. From the moment a write of a run (or a thread's deletion) has run
// its statements until it has ended, the run (the thread's runs) is
// pending: reads go to the database, which other connections read the
// commit from before the write's end updates the cache.
type runCache struct {
	mu      sync.Mutex
	max     int // bytes
	size    int
	byID    map[string]*listpkg.Element // of store.Run
	order   listpkg.List                // most recently written first
	pending map[string]int              // run id: writes not ended
	threads map[string]int              // thread id: deletions not ended
	closed  bool                        // the store closed: no answers
}

func newRunCache(max int) *runCache {
	return &runCache{max: max, byID: map[string]*listpkg.Element{}, pending: map[string]int{}, threads: map[string]int{}}
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
	if !ok || c.closed || c.pending[id] > 0 {
		return store.Run{}, false
	}
	r := e.Value.(store.Run)
	if r.ThreadID != threadID || r.Project != project || c.threads[r.ThreadID] > 0 {
		return store.Run{}, false
	}
	r.Data, r.State = slices.Clone(r.Data), nil
	if withState {
		r.State = slices.Clone(e.Value.(store.Run).State)
	}
	return r, true
}

// begin marks run id pending: a write of it has run its statements.
func (c *runCache) begin(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[id]++
}

// end ends a write of r that begin marked: when it committed, r (whose
// bytes the cache now owns) is the run as stored.
func (c *runCache) end(r store.Run, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[r.ID]--; c.pending[r.ID] <= 0 {
		delete(c.pending, r.ID)
	}
	if committed {
		c.putLocked(r)
	}
}

func (c *runCache) putLocked(r store.Run) {
	c.removeLocked(r.ID)
	n := runSize(r)
	if n > c.max/16 {
		return
	}
	c.byID[r.ID] = c.order.PushFront(r)
	c.size += n
	for c.size > c.max {
		c.removeLocked(c.order.Back().Value.(store.Run).ID)
	}
}

// beginThread marks the runs of thread pending: its deletion has run.
func (c *runCache) beginThread(threadID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.threads[threadID]++
}

// endThread ends a deletion of thread that beginThread marked: when it
// committed, the thread's runs are gone.
func (c *runCache) endThread(threadID string, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.threads[threadID]--; c.threads[threadID] <= 0 {
		delete(c.threads, threadID)
	}
	if !committed {
		return
	}
	for id, e := range c.byID {
		if e.Value.(store.Run).ThreadID == threadID {
			c.removeLocked(id)
		}
	}
}

// close empties the cache for good: the store is closed.
func (c *runCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.byID, c.pending, c.threads, c.size = map[string]*listpkg.Element{}, map[string]int{}, map[string]int{}, 0
	c.order.Init()
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

// cacheRun has the cache hold r from the end of tx, when it commits, and
// read run r.ID from the database until then; without a cache, or on a
// backend whose Tx cannot say when it ends, nothing.
func (s *Store) cacheRun(tx Tx, r store.Run) {
	aw, ok := tx.(AfterWriter)
	if !ok || s.runs == nil {
		return
	}
	r.Data, r.State = slices.Clone(r.Data), slices.Clone(r.State)
	s.runs.begin(r.ID)
	aw.AfterWrite(func(committed bool) { s.runs.end(r, committed) })
}

// uncacheThread has the cache read the runs of threadID, which tx
// deletes, from the database until tx ends, and forget them when it
// commits.
func (s *Store) uncacheThread(tx Tx, threadID string) {
	aw, ok := tx.(AfterWriter)
	if !ok || s.runs == nil {
		return
	}
	s.runs.beginThread(threadID)
	aw.AfterWrite(func(committed bool) { s.runs.endThread(threadID, committed) })
}

// CloseRunCache empties the run cache for good (the backend closes).
func (s *Store) CloseRunCache() {
	if s.runs != nil {
		s.runs.close()
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
