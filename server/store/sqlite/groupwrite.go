package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
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
// context is done while it is queued returns at once and is never run;
// one that a group has started, or that was handed the lead (it then
// leads its group first), runs to its end. A write whose function panics is
// rolled back like one that fails, the group goes on, and the panic is
// raised again in the write's own caller. A function that calls
// runtime.Goexit ends the goroutine that runs it, the leader's: nothing of
// that group is stored, its writes get an error, and the writer goes on.
//
// The cost is latency, not outcome: a write's commit waits for the writes
// grouped after it, so one slow write delays the commit of the writes
// before it in its group (maxGroupTime bounds how many start after the
// group has run that long, not how long one of them takes).

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

// The states of a pendingWrite. A write is queued until a leader starts it
// in a group, or hands it the lead (it then leads the group that starts
// it), or its caller gives up waiting for it (its context is done), which
// it can only while it is queued.
const (
	queued int32 = iota
	promoted
	started
	abandoned
)

// pendingWrite is one write waiting for its group.
type pendingWrite struct {
	ctx   context.Context
	fn    func(sqlstore.Tx) error
	state atomic.Int32
	err   error
	// panicked holds what the write's function panicked with (nil if it
	// did not): the write's own goroutine panics with it again, once the
	// writer has been handed on. stack is the stack of the function's
	// panic (the panic raised again has the caller's).
	panicked any
	stack    []byte
	// after holds what the write's function asked to run once the write
	// has ended (sqlTx.AfterWrite), given whether it committed; run (and
	// emptied) by endWrite.
	after []func(committed bool)
	// done receives true when this write's goroutine is to lead the next
	// group (which holds it), false when its group has ended (err set).
	done chan bool
}

// result returns w's error, or panics again with what its function
// panicked with, after logging that panic with the stack it had (the
// store's Logger, at level Error): the stack of the panic raised here is
// its caller's, not the function's.
func (g *groupWriter) result(w *pendingWrite) error {
	if w.panicked != nil {
		if log := g.s.log; log != nil {
			log.Error("sqlite store: a write's function panicked; the panic is raised again in its caller",
				"panic", fmt.Sprint(w.panicked), "stack", string(w.stack))
		}
		panic(w.panicked)
	}
	return w.err
}

// write runs fn in a write transaction, alone or in a group, and returns
// fn's error, or the transaction's. A write whose context is done while it
// is queued returns the context's error at once and is never run; once a
// group has started it, or it was handed the lead, it runs to its end and
// write returns its outcome. A panic in fn rolls back fn's writes, leaves
// the writer working, and is raised again here.
func (g *groupWriter) write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &pendingWrite{ctx: ctx, fn: fn, done: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.leading
	g.leading = true
	if lead {
		w.state.Store(promoted)
	}
	g.mu.Unlock()
	if !lead {
		var promote bool
		select {
		case promote = <-w.done:
		case <-ctx.Done():
			if w.state.CompareAndSwap(queued, abandoned) {
				return ctx.Err() // no leader will run it, or hand it the lead
			}
			promote = <-w.done // started or promoted meanwhile
		}
		if !promote {
			return g.result(w) // run in another's group
		}
	}
	g.lead()
	return g.result(w)
}

// lead runs one group from the head of the queue (which holds the leader's
// own write), then hands the lead to the next queued write, if any. The
// hand-off is deferred: the writer goes on even when the group ends in a
// panic or in runtime.Goexit (a write's function that calls t.FailNow, say;
// it ends the leader's goroutine, which runs the function).
func (g *groupWriter) lead() {
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	group := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	ran := 1 // the leader's own write always goes through the group
	defer g.handOff(group, &ran)
	g.run(group, &ran)
}

// handOff puts the writes of group after the first *ran back at the head
// of the queue, wakes the writes of group that went through it (but the
// leader's own), and hands the lead to the first queued write its caller
// has not abandoned; with none, nobody leads.
func (g *groupWriter) handOff(group []*pendingWrite, ranp *int) {
	ran := *ranp
	g.mu.Lock()
	if ran < len(group) { // cut short: the rest go first in the next group
		g.queue = append(group[ran:len(group):len(group)], g.queue...)
	}
	var next *pendingWrite
	for len(g.queue) > 0 && next == nil {
		if g.queue[0].state.CompareAndSwap(queued, promoted) {
			next = g.queue[0]
		} else {
			g.queue = g.queue[1:] // abandoned while it waited
		}
	}
	if next == nil {
		g.leading = false
		g.queue = nil // drop the backing array of a long queue
	}
	g.mu.Unlock()
	for _, w := range group[1:ran] {
		w.done <- false // abandoned ones are not read: the channel has room
	}
	if next != nil {
		next.done <- true
	}
}

// groupTx is the transaction of one group, as far as it got.
type groupTx struct {
	tx    *sql.Tx
	ended bool // committed or rolled back, every write's err set
}

// run runs the writes of group in one transaction and sets every run
// write's err (see runTx). When that ends in a panic of its own
// statements or in runtime.Goexit, the transaction is rolled back, every
// write that went through gets an error, and a panic becomes the leader's
// (raised again in its caller); the writer is left working.
func (g *groupWriter) run(group []*pendingWrite, ran *int) {
	var gt groupTx
	finished := false
	defer func() {
		if finished {
			return
		}
		p := recover()
		if p != nil && group[0].panicked == nil {
			group[0].panicked, group[0].stack = p, debug.Stack()
		}
		if gt.ended {
			return // every write's err is set, and every write ended
		}
		if gt.tx != nil {
			_ = gt.tx.Rollback()
		}
		cause := errors.New("sqlite store: a write grouped with this one called runtime.Goexit; nothing of the group is stored")
		if p != nil {
			cause = fmt.Errorf("sqlite store: the group holding this write failed; nothing of it is stored: %v", p)
		}
		for _, w := range group[:*ran] {
			if w.err == nil {
				w.err = cause
			}
			g.endWrite(w, false)
		}
	}()
	g.runTx(group, ran, &gt)
	finished = true
}

// runTx runs the writes of group in one transaction (gt), in order, until
// one would start after maxGroupTime, and commits; it sets every run
// write's err and *ran to how many it went through (at least one). The
// first write is the leader's own; a later one that its caller abandoned
// is skipped. A group of one write runs it alone, with its context.
func (g *groupWriter) runTx(group []*pendingWrite, ran *int, gt *groupTx) {
	lead := group[0]
	lead.state.Store(started)
	if len(group) == 1 {
		lead.err = g.alone(lead, gt)
		return
	}
	start := time.Now()
	tx, err := g.s.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range group {
			if w == lead || w.state.CompareAndSwap(queued, started) {
				w.err = err
			}
		}
		*ran = len(group)
		gt.ended = true
		return
	}
	gt.tx = tx
	stored := 0
	for i, w := range group {
		if i > 0 {
			if time.Since(start) > maxGroupTime {
				break
			}
			*ran = i + 1
			if !w.state.CompareAndSwap(queued, started) {
				continue // abandoned: its caller has returned
			}
		}
		if w.err = w.ctx.Err(); w.err != nil {
			continue
		}
		if w.err = g.savepoint(tx, w); w.err == nil {
			stored++
		} else if broken := g.rollbackTo(tx); broken != nil {
			// The transaction is gone (SQLite rolls back the whole of it
			// on some errors): nothing of the group is stored.
			_ = tx.Rollback()
			for _, o := range group[:*ran] {
				if o.err == nil {
					o.err = fmt.Errorf("sqlite store: a write grouped with this one failed and ended the transaction: %w (rolling back: %w)", w.err, broken)
				}
				g.endWrite(o, false)
			}
			gt.ended = true
			return
		} else {
			g.endWrite(w, false) // rolled back to its savepoint
		}
	}
	if stored == 0 {
		_ = tx.Rollback()
		gt.ended = true
		return
	}
	err = tx.Commit()
	if err != nil {
		for _, w := range group[:*ran] {
			if w.err == nil {
				w.err = err
			}
			g.endWrite(w, false)
		}
		gt.ended = true
		return
	}
	for _, w := range group[:*ran] {
		g.endWrite(w, w.err == nil)
	}
	gt.ended = true
	g.writes.Add(int64(stored))
	g.commits.Add(1)
	if g.s.ckpt.committed() {
		g.s.truncateWAL() // the WAL is past walRestartBytes (checkpoint.go)
	}
}

// alone runs one write in its own transaction (gt), with its context.
func (g *groupWriter) alone(w *pendingWrite, gt *groupTx) error {
	tx, err := g.s.w.BeginTx(w.ctx, nil)
	if err != nil {
		gt.ended = true
		return err
	}
	gt.tx = tx
	if err := call(w, sqlTx{tx: tx, river: g.s.river, w: w}); err != nil {
		_ = tx.Rollback()
		g.endWrite(w, false)
		gt.ended = true
		return err
	}
	err = tx.Commit()
	g.endWrite(w, err == nil)
	gt.ended = true
	if err != nil {
		return err
	}
	g.writes.Add(1)
	g.commits.Add(1)
	if g.s.ckpt.committed() {
		g.s.truncateWAL() // the WAL is past walRestartBytes (checkpoint.go)
	}
	return nil
}

// savepoint runs w inside a savepoint of tx and releases it when w's
// function succeeds.
func (g *groupWriter) savepoint(tx *sql.Tx, w *pendingWrite) error {
	ctx := context.WithoutCancel(w.ctx)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT grouped"); err != nil {
		return err
	}
	if err := call(w, sqlTx{tx: tx, river: g.s.river, detach: true, w: w}); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE grouped")
	return err
}

// call runs w's function on tx; a panic in it becomes w.panicked and an
// error, so that the caller rolls the write back.
func call(w *pendingWrite, tx sqlstore.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.panicked, w.stack = p, debug.Stack()
			err = fmt.Errorf("sqlite store: the write panicked: %v", p)
		}
	}()
	return w.fn(tx)
}

// endWrite runs what w asked to run once it ended (sqlTx.AfterWrite), in
// its order, with whether it committed, and empties the list. The leader
// ends every write of its group: those rolled back at once, the others
// after the group's commit (or its failure), in the group's order, before
// it hands the lead on and wakes them, so in the order of the commits and
// before the writes return. A function that panics is logged and the
// others still run.
func (g *groupWriter) endWrite(w *pendingWrite, committed bool) {
	after := w.after
	w.after = nil
	for _, fn := range after {
		func() {
			defer func() {
				if p := recover(); p != nil && g.s.log != nil {
					g.s.log.Error("sqlite store: a function run after a write panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
			}()
			fn(committed)
		}()
	}
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
