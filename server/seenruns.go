package server

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// A round's last write worked out ahead. On SQLite every write goes
// through one writing connection (group commit), and what a write's
// function does inside it, the others wait for: a round's last write
// decoded the run, built the reply's message, step and events, and encoded
// the run again, all inside the transaction (about a fifth of that
// connection's time per conversation). The engine keeps the last row it
// wrote or read of each run it drives (seenRuns); updateSeen works the
// change out on that row before the write, and the write applies it if the
// stored row is still that row, byte for byte, or else works it out again
// on the row it reads, as update does. The outcome is the same either way:
// the function is given the same run.
//
// So a function given to updateSeen changes nothing but its liveRun (it
// may run twice, and the first result be dropped), and its result depends
// only on the run, its context and what it captured before the write.

// maxSeenRuns bounds seenRuns: past it the cache starts again empty.
const maxSeenRuns = 4096

// seenRuns is the last row this process wrote or read of each run it
// drives that has not ended, and a marker of each that has (up to
// maxSeenRuns entries in all).
type seenRuns struct {
	mu sync.Mutex
	m  map[string]store.Run
	// ahead counts the writes that applied a change worked out ahead.
	ahead atomic.Int64
}

// put records r as its run's last row, unless the row recorded is newer
// (a higher LastSeq: the row that createRun wrote may be put after the
// round, run by another goroutine as soon as the run was stored, has
// written the next). A run that ended keeps only a marker (its status and
// LastSeq), so that a late put of an older row does not bring it back.
func (c *seenRuns) put(r store.Run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[r.ID]; ok && old.LastSeq > r.LastSeq {
		return
	}
	if c.m == nil || len(c.m) >= maxSeenRuns {
		c.m = map[string]store.Run{}
	}
	if !store.IsActive(r.Status) {
		r = store.Run{ID: r.ID, Status: r.Status, LastSeq: r.LastSeq}
	}
	c.m[r.ID] = r
}

// get returns the run's last row, if recorded and the run has not ended.
func (c *seenRuns) get(id string) (store.Run, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[id]
	return r, ok && store.IsActive(r.Status)
}

// drop forgets the run's row.
func (c *seenRuns) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// precomputed is a change worked out on seen: the run as changed (row)
// and the liveRun that made it.
type precomputed struct {
	seen, row store.Run
	lr        *liveRun
}

// holds reports whether p applies to the stored row r: r is the row p was
// worked out on, and ctx is not done (a function that looks at it then
// decides otherwise).
func (p *precomputed) holds(ctx context.Context, r store.Run) bool {
	if p == nil || ctx.Err() != nil {
		return false
	}
	s := p.seen
	return r.ID == s.ID && r.Project == s.Project && r.ThreadID == s.ThreadID && r.AssistantID == s.AssistantID &&
		r.Status == s.Status && r.CreatedAt == s.CreatedAt && r.ExpiresAt == s.ExpiresAt && r.LastSeq == s.LastSeq &&
		bytes.Equal(r.Data, s.Data) && bytes.Equal(r.State, s.State)
}

// set gives r the fields the change sets (as apply does).
func (p *precomputed) set(r *store.Run) {
	r.Data, r.State, r.Status, r.ExpiresAt = p.row.Data, p.row.State, p.row.Status, p.row.ExpiresAt
}

// updateSeen is update for a function that changes nothing but its
// liveRun (see above): when the run's last row is known, fn runs on it
// before the write.
func (e *engine) updateSeen(ctx context.Context, threadID, runID string, fn func(lr *liveRun) error) (gen.RunObject, int64, error) {
	seen, ok := e.seen.get(runID)
	if !ok {
		return e.write(ctx, threadID, runID, nil, fn)
	}
	p := &precomputed{seen: seen, row: seen}
	lr, err := e.apply(ctx, &p.row, fn)
	if err != nil {
		// Decided in the transaction, on the stored run.
		return e.write(ctx, threadID, runID, nil, fn)
	}
	p.lr = lr
	return e.write(ctx, threadID, runID, p, fn)
}
