package sqlite

import (
	"context"
	"database/sql"
	"os"
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
// checkpoint copies always leaves a few frames behind. So every ckptEvery
// commits the writer also looks at the WAL file's size, and once it is
// past walRestartBytes runs wal_checkpoint(TRUNCATE) itself, on its own
// connection, between two transactions (a checkpointer asking for the
// writer's lock would wait for a gap that a busy writer hardly leaves): it
// copies what the PASSIVE checkpoints left, syncs, and empties the WAL
// file. The writes of that group wait for it, once per walRestartBytes
// written at most, instead of once per thousand pages. (The file's size is
// the most the WAL held since it was last emptied: SQLite writes a WAL it
// starts over from the beginning of the same file.) The writing connection
// keeps a checkpoint of its own past writerCkptPages pages, a backstop for
// a checkpointer that falls behind; durability is the WAL's either way (a
// committed write is in the WAL before the commit returns).

// Checkpoint thresholds.
const (
	// ckptEvery is how many commits go by between two asks for a
	// checkpoint (a commit of a group writes tens of pages, mostly the
	// same last pages of each table and index again: the fewer the
	// checkpoints, the fewer copies of them). At 16 the checkpointer took
	// about 5% of a conversation's CPU on SQLite, at 64 about 2.5% (two
	// profiles each of 4 000 conversations); the WAL then holds some
	// 2 000 pages more between two checkpoints.
	ckptEvery = 64
	// walRestartBytes is the WAL file's size past which the writer
	// empties it (TRUNCATE). Each time costs the writes of one group a
	// stall (the rest of the copy, a sync, the file emptied): at 16 MiB
	// conversations on SQLite were about 6% slower than without it.
	walRestartBytes = 64 << 20
	// writerCkptPages is the writing connection's own wal_autocheckpoint.
	writerCkptPages = 8000
)

// checkpointer runs the checkpoints the writer asks for (committed) on
// its own connection, until stop.
type checkpointer struct {
	db      *sql.DB
	kick    chan struct{}
	commits atomic.Int64
	// wal is the WAL file's path, and walLimit the size past which the
	// writer empties it (walRestartBytes; tests lower it).
	wal      string
	walLimit atomic.Int64
	// mu is held by each checkpoint, the checkpointer's and the writer's
	// TRUNCATE: SQLite runs one checkpoint at a time and refuses another
	// at once (SQLITE_BUSY) rather than wait for it.
	mu sync.Mutex
	// truncated counts the checkpoints that emptied the WAL.
	truncated atomic.Int64
	// ran receives (when it has room) after each checkpoint run: tests
	// wait on it.
	ran    chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startCheckpointer starts the checkpointer on db (one connection) of the
// database whose WAL file is wal.
func startCheckpointer(db *sql.DB, wal string) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, wal: wal, kick: make(chan struct{}, 1), ran: make(chan struct{}, 1), cancel: cancel}
	c.walLimit.Store(walRestartBytes)
	c.wg.Add(1)
	go c.run(ctx)
	return c
}

// committed counts a commit and, every ckptEvery commits, asks for a
// checkpoint (it never blocks) and reports whether the WAL file is past
// walRestartBytes: the writer is then to empty it (truncateWAL).
func (c *checkpointer) committed() (truncate bool) {
	if c == nil || c.commits.Add(1)%ckptEvery != 0 {
		return false
	}
	if fi, err := os.Stat(c.wal); err == nil && fi.Size() >= c.walLimit.Load() {
		return true
	}
	select {
	case c.kick <- struct{}{}:
	default: // one is asked for already
	}
	return false
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

// checkpoint runs a PASSIVE checkpoint.
func (c *checkpointer) checkpoint(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	return err
}

// truncateWAL copies the rest of the WAL into the database file and
// empties the WAL, on the writing connection, between two of its
// transactions (its caller, the writer, is between them). It waits for
// the readers still on the WAL (busy_timeout); a failure leaves the WAL
// to the next time (ckptEvery commits later). A checkpoint of the
// checkpointer's in flight is waited for.
func (s *Store) truncateWAL() {
	s.ckpt.mu.Lock()
	defer s.ckpt.mu.Unlock()
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
