package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// Checkpoints off the writer. In WAL mode a commit appends pages to the
// WAL, and a checkpoint copies them back into the database file and syncs
// it. By default the connection whose commit takes the WAL past 1000 pages
// runs the checkpoint inside that commit: here the one writing connection,
// so every write queued behind it (group commit, groupwrite.go) waited for
// the copy and the fsync, a few milliseconds each time (a tenth of the
// commits under load took 6 ms or more, against 0.7 ms for half of them).
//
// The writing connection now leaves checkpoints to a connection of their
// own (checkpointer): every ckptEvery commits the writer asks for one, and
// the checkpointer runs PRAGMA wal_checkpoint(PASSIVE), which neither
// waits for nor blocks the writer or the readers (it copies what no reader
// still needs, and the next one copies the rest). The writing connection
// keeps a checkpoint of its own past writerCkptPages pages, a backstop for
// a checkpointer that falls behind; durability is the WAL's either way (a
// committed write is in the WAL before the commit returns).

// Checkpoint thresholds.
const (
	// ckptEvery is how many commits go by between two asks for a
	// checkpoint (a commit of a group writes tens of pages).
	ckptEvery = 16
	// writerCkptPages is the writing connection's own wal_autocheckpoint.
	writerCkptPages = 8000
)

// checkpointer runs the checkpoints the writer asks for (ask) on its own
// connection, until stop.
type checkpointer struct {
	db      *sql.DB
	kick    chan struct{}
	commits atomic.Int64
	// ran receives (when it has room) after each checkpoint run: tests
	// wait on it.
	ran    chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startCheckpointer starts the checkpointer on db (one connection).
func startCheckpointer(db *sql.DB) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), ran: make(chan struct{}, 1), cancel: cancel}
	c.wg.Add(1)
	go c.run(ctx)
	return c
}

// committed counts a commit and asks for a checkpoint every ckptEvery
// commits; it never blocks.
func (c *checkpointer) committed() {
	if c == nil || c.commits.Add(1)%ckptEvery != 0 {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default: // one is asked for already
	}
}

func (c *checkpointer) run(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		// An error (the database busy, closing) leaves the WAL to the next
		// checkpoint, or to the writer's own.
		if _, err := c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err == nil {
			select {
			case c.ran <- struct{}{}:
			default:
			}
		}
	}
}

// stop ends the checkpointer and closes its connection.
func (c *checkpointer) stop() error {
	c.cancel()
	c.wg.Wait()
	return c.db.Close()
}
