package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// Group commit. SQLite has one writer: every write transaction waits for
// the one before it, and a commit's cost is mostly the pages it writes to
// the WAL (two system calls a page), whatever the transaction holds. When
// writes queue up, the one at the head of the queue (the leader) runs the
// queued writes in one transaction, each inside a savepoint of its own, and
// commits once: consecutive writes mostly touch the same pages (the last
// leaf of each table and index), so the group writes each page once.
//
// Every write keeps its own outcome: one whose function fails is rolled
// back to its savepoint (nothing of it is stored) and gets its error; the
// others commit. A write returns only after the commit that holds it, so a
// write that returned nil survives the process being killed, as before. A
// write alone in the queue runs alone, exactly as without grouping.
//
// Within a group the writes' statements do not see their contexts'
// cancellation (a statement interrupted inside a transaction may roll back
// the whole transaction, and with it the other writes): a write whose
// context is done before it starts is not run, and one that has started
// runs to its end.

// Limits of one group.
const (
	// maxGroup is the most writes one commit holds.
	maxGroup = 64
	// maxGroupTime ends a group early: a write does not start in a group
	// that has run this long (the writes before it would wait longer for
	// their commit); it goes in the next one.
	maxGroupTime = 10 * time.Millisecond
)

// groupWriter runs the store's writes (backend.Write) in groups on the
// writing connection.
type groupWriter struct {
	s *Store

	mu      sync.Mutex
	queue   []*pendingWrite
	leading bool // a leader is running a group; the next is promoted when it ends

	writes, commits atomic.Int64 // WriteStats
}

// pendingWrite is one write waiting for its group.
type pendingWrite struct {
	ctx context.Context
	fn  func(sqlstore.Tx) error
	err error
	// done receives true when this write's goroutine is to lead the next
	// group (which holds it), false when its group has ended (err set).
	done chan bool
}

// write runs fn in a write transaction, alone or in a group, and returns
// fn's error, or the transaction's.
func (g *groupWriter) write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &pendingWrite{ctx: ctx, fn: fn, done: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead && !<-w.done {
		return w.err // run in another's group
	}
	g.lead()
	return w.err
}

// lead runs one group from the head of the queue (which holds the leader's
// own write), then hands the lead to the next queued write, if any.
func (g *groupWriter) lead() {
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	group := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	ran := g.run(group)

	g.mu.Lock()
	if ran < len(group) { // cut short: the rest go first in the next group
		g.queue = append(group[ran:len(group):len(group)], g.queue...)
	}
	var next *pendingWrite
	if len(g.queue) > 0 {
		next = g.queue[0]
	} else {
		g.leading = false
		g.queue = nil // drop the backing array of a long queue
	}
	g.mu.Unlock()
	for _, w := range group[1:ran] {
		w.done <- false
	}
	if next != nil {
		next.done <- true
	}
}

// run runs the writes of group in one transaction, in order, until one
// would start after maxGroupTime, and commits; it sets every run write's
// err and returns how many ran (at least one).
func (g *groupWriter) run(group []*pendingWrite) (ran int) {
	if len(group) == 1 {
		w := group[0]
		w.err = g.alone(w)
		return 1
	}
	start := time.Now()
	tx, err := g.s.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range group {
			w.err = err
		}
		return len(group)
	}
	stored := 0
	for i, w := range group {
		if i > 0 && time.Since(start) > maxGroupTime {
			break
		}
		ran++
		if w.err = w.ctx.Err(); w.err != nil {
			continue
		}
		if w.err = g.savepoint(tx, w); w.err == nil {
			stored++
		} else if broken := g.rollbackTo(tx); broken != nil {
			// The transaction is gone (SQLite rolls back the whole of it
			// on some errors): nothing of the group is stored.
			_ = tx.Rollback()
			for _, o := range group[:ran] {
				if o.err == nil {
					o.err = fmt.Errorf("sqlite store: a write grouped with this one failed: %w", broken)
				}
			}
			return ran
		}
	}
	if stored == 0 {
		_ = tx.Rollback()
		return ran
	}
	if err := tx.Commit(); err != nil {
		for _, w := range group[:ran] {
			if w.err == nil {
				w.err = err
			}
		}
		return ran
	}
	g.writes.Add(int64(stored))
	g.commits.Add(1)
	return ran
}

// alone runs one write in its own transaction, with its context.
func (g *groupWriter) alone(w *pendingWrite) error {
	tx, err := g.s.w.BeginTx(w.ctx, nil)
	if err != nil {
		return err
	}
	if err := w.fn(sqlTx{tx: tx, river: g.s.river}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	g.writes.Add(1)
	g.commits.Add(1)
	return nil
}

// savepoint runs w inside a savepoint of tx and releases it when w's
// function succeeds.
func (g *groupWriter) savepoint(tx *sql.Tx, w *pendingWrite) error {
	ctx := context.WithoutCancel(w.ctx)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT grouped"); err != nil {
		return err
	}
	if err := w.fn(sqlTx{tx: tx, river: g.s.river, detach: true}); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE grouped")
	return err
}

// rollbackTo undoes the write of the open savepoint; an error means the
// transaction itself is gone.
func (g *groupWriter) rollbackTo(tx *sql.Tx) error {
	ctx := context.Background()
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO grouped"); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE grouped")
	return err
}

// WriteStats returns the writes the store has committed and the commits
// that held them: writes ÷ commits is the mean group size.
func (s *Store) WriteStats() (writes, commits int64) {
	return s.gw.writes.Load(), s.gw.commits.Load()
}
