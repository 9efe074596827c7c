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
// still needs, and the next one copies the rest).
//
// A PASSIVE checkpoint alone lets the WAL grow for ever under steady
// writes: SQLite starts the WAL over from its beginning only when a write
// begins with every frame copied back, and a writer that commits while the
// checkpoint copies always leaves a few frames behind. So when a
// checkpoint finds the WAL past walRestartPages, the writer itself, after
// its next commit, runs wal_checkpoint(TRUNCATE) on its own connection
// between two transactions (a checkpointer asking for the writer's lock
// would wait for a gap that a busy writer hardly leaves): it copies what
// the PASSIVE checkpoints left, syncs, and empties the WAL file. The writes
// of that one group wait for it, once per walRestartPages pages written
// instead of once per thousand. The writing connection keeps a checkpoint
// of its own past writerCkptPages pages, a backstop for a checkpointer
// that falls behind; durability is the WAL's either way (a committed write
// is in the WAL before the commit returns).

// Checkpoint thresholds.
const (
	// ckptEvery is how many commits go by between two asks for a
	// checkpoint (a commit of a group writes tens of pages).
	ckptEvery = 16
	// walRestartPages is the WAL's size, in pages, past which a
	// checkpoint empties it (TRUNCATE): 16 MiB of 4 KiB pages.
	walRestartPages = 4096
	// writerCkptPages is the writing connection's own wal_autocheckpoint.
	writerCkptPages = 8000
)

// checkpointer runs the checkpoints the writer asks for (committed) on
// its own connection, until stop.
type checkpointer struct {
	db      *sql.DB
	kick    chan struct{}
	commits atomic.Int64
	// restart is set when a checkpoint found the WAL past
	// walRestartPages: the writer empties it after its next commit.
	restart atomic.Bool
	// truncated counts the checkpoints that emptied the WAL.
	truncated atomic.Int64
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
// commits; it never blocks. It reports whether the WAL is to be emptied
// now (see truncateWAL).
func (c *checkpointer) committed() (restart bool) {
	if c == nil {
		return false
	}
	if c.commits.Add(1)%ckptEvery == 0 {
		select {
		case c.kick <- struct{}{}:
		default: // one is asked for already
		}
	}
	return c.restart.CompareAndSwap(true, false)
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
		if err := c.checkpoint(ctx); err == nil {
			select {
			case c.ran <- struct{}{}:
			default:
			}
		}
	}
}

// checkpoint runs a PASSIVE checkpoint, and asks the writer to empty the
// WAL when it is past walRestartPages.
func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, log, done int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		return err
	}
	if log >= walRestartPages {
		c.restart.Store(true)
	}
	return nil
}

// truncateWAL copies the rest of the WAL into the database file and
// empties the WAL, on the writing connection, between two of its
// transactions (its caller, the writer, is between them). It waits for
// the readers still on the WAL (busy_timeout); a failure leaves the WAL
// to the next time.
func (s *Store) truncateWAL() {
	var busy, log, done int
	err := s.w.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done)
	if err == nil && busy == 0 {
		s.ckpt.truncated.Add(1)
	}
}

// stop ends the checkpointer and closes its connection.
func (c *checkpointer) stop() error {
	c.cancel()
	c.wg.Wait()
	return c.db.Close()
}
