// Package sqlite is the store.Store of one SQLite database file, the
// embedded default of assistants serve: modernc.org/sqlite (pure Go, no
// cgo), in WAL mode, with River's job tables in the same file.
//
// Writes go through one connection (SQLite has one writer at a time, and
// River's SQLite driver asks for it), each transaction BEGIN IMMEDIATE, and
// writes that queue up commit together (groupwrite.go);
// reads use a pool of read-only connections that WAL lets run beside the
// writer. Every connection keeps its statements prepared (stmtcache.go). synchronous=NORMAL: a committed write survives the process being
// killed; a power loss may lose the last transactions, never the file.
//
// Open applies the store's migrations (server/store/sqlite/migrations) and
// River's, each in its own transaction, and refuses a file migrated by a
// newer binary (store.ErrSchemaTooNew).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// FileName is the database file's name inside a data directory (OpenDir).
const FileName = "assistants.db"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the store's schema migrations, in order.
func Migrations() ([]sqlstore.Migration, error) {
	return sqlstore.LoadMigrations(migrationFS, "migrations")
}

// Options configures Open.
type Options struct {
	// ReadConns is the number of read connections; 0 means
	// max(4, GOMAXPROCS).
	ReadConns int
	// Logger receives River's logs and the store's own (a write
	// function's panic, with its stack); nil means slog.Default().
	Logger *slog.Logger
	// Migrations replaces the store's schema migrations (tests of the
	// migrator); nil means Migrations().
	Migrations []sqlstore.Migration
	// RunCacheBytes bounds the runs (and, apart, the assistants) the
	// store keeps in memory as it last wrote them, to answer a read of a
	// run (GET run, the polls of a client waiting for it) or of an
	// assistant (each new run reads its assistant) without the database:
	// every write of those rows goes through this process's one writer,
	// which updates the copies in the order of its commits
	// (sqlstore.Options.RunCacheBytes). So only one process may write
	// them to a file (one assistants serve per data directory, as the
	// README says; assistants keys writes none). 0 means
	// DefaultRunCacheBytes; negative means no cache.
	//
	// With the cache, Open holds a lock on the file (an flock on
	// path+".lock", released by Close or when the process ends) and fails
	// with ErrInUse while another process's store (or another Store of
	// this process) with a cache holds it; a store without the cache
	// takes no lock. Where flock does not exist (not Unix) the store keeps
	// no cache.
	RunCacheBytes int
}

// ErrInUse is Open's error when another store with a run cache has the
// database file open (Options.RunCacheBytes): one process serves a data
// directory.
var ErrInUse = errors.New("the database is in use by another process (one assistants serve per data directory)")

// DefaultRunCacheBytes is Options.RunCacheBytes' default: 8 MiB (some
// thousands of runs), and as much for assistants.
const DefaultRunCacheBytes = 8 << 20

// Store is the SQLite store. Its methods are those of store.Store.
type Store struct {
	*sqlstore.Store
	w, r  *sql.DB
	river *river.Client[*sql.Tx]
	gw    groupWriter   // the writes' group commit (groupwrite.go)
	ckpt  *checkpointer // the checkpoints (checkpoint.go)
	log   *slog.Logger
	path  string
	// schema is the version of the binary's last migration (CheckMigrations).
	schema int
	// unlock releases the file's lock (Options.RunCacheBytes), after the
	// connections have closed.
	unlock    func() error
	unlocking sync.Once
	unlockErr error
}

var _ store.Store = (*Store)(nil)

// OpenDir opens (creating it and dir when needed) the database dir/FileName.
func OpenDir(ctx context.Context, dir string, opts ...func(*Options)) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	return Open(ctx, filepath.Join(dir, FileName), opts...)
}

// Open opens (creating it when needed) the database file at path and
// migrates it.
func Open(ctx context.Context, path string, opts ...func(*Options)) (*Store, error) {
	o := Options{ReadConns: max(4, runtime.GOMAXPROCS(0)), Logger: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	if o.ReadConns <= 0 {
		o.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Migrations == nil {
		m, err := Migrations()
		if err != nil {
			return nil, err
		}
		o.Migrations = m
	}
	var unlock func() error
	if o.RunCacheBytes >= 0 {
		var err error
		switch unlock, err = lockFile(path); {
		case errors.Is(err, ErrInUse):
			return nil, fmt.Errorf("sqlite store %s: %w", path, err)
		case errors.Is(err, errNoLock):
			o.RunCacheBytes = -1 // no lock here, no cache
		case err != nil:
			o.Logger.Warn("sqlite store: the database's lock could not be taken: no run cache, and another serve on the same data directory is not refused",
				"path", path+".lock", "err", err.Error())
			o.RunCacheBytes = -1
		}
	}
	if unlock == nil {
		unlock = func() error { return nil }
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	wq := url.Values{"_txlock": {"immediate"}, "_pragma": append(slices.Clip(q["_pragma"]), fmt.Sprintf("wal_autocheckpoint(%d)", writerCkptPages))}
	wc, err := newConnector("file:" + path + "?" + wq.Encode())
	if err != nil {
		_ = unlock()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	w := sql.OpenDB(wc) // statements stay prepared (stmtcache.go)
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	rq := url.Values{"_pragma": append(slices.Clip(q["_pragma"]), "query_only(1)")}
	rc, err := newConnector("file:" + path + "?" + rq.Encode())
	if err != nil {
		w.Close()
		_ = unlock()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	r := sql.OpenDB(rc)
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	r.SetConnMaxIdleTime(0)

	cc, err := newConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		r.Close()
		w.Close()
		_ = unlock()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	c := sql.OpenDB(cc)
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxIdleTime(0)

	s := &Store{w: w, r: r, path: path, schema: len(o.Migrations), ckpt: startCheckpointer(c, path+"-wal"), log: o.Logger, unlock: unlock}
	s.gw.s = s
	fail := func(err error) (*Store, error) {
		s.ckpt.stop()
		r.Close()
		w.Close()
		_ = unlock()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if err := w.PingContext(ctx); err != nil {
		return fail(err)
	}
	b := &backend{s: s}
	if _, err := sqlstore.Migrate(ctx, b, o.Migrations, ""); err != nil {
		return fail(err)
	}
	driver := riversqlite.New(w)
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: o.Logger})
	if err != nil {
		return fail(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fail(fmt.Errorf("river migrations: %w", err))
	}
	// Insert-only: the run engine makes its own client with workers.
	if s.river, err = river.NewClient(driver, &river.Config{Logger: o.Logger}); err != nil {
		return fail(err)
	}
	cache := o.RunCacheBytes
	if cache == 0 {
		cache = DefaultRunCacheBytes
	}
	s.Store = sqlstore.New(b, func(so *sqlstore.Options) { so.RunCacheBytes = max(cache, 0) })
	return s, nil
}

// DB returns the writing connection pool (one connection), for River
// clients that work jobs: riversqlite.New(s.DB()).
func (s *Store) DB() *sql.DB { return s.w }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// backend is sqlstore.Backend on the two pools.
type backend struct{ s *Store }

func (b *backend) Reader() sqlstore.Querier { return dbQuerier{b.s.r} }
func (b *backend) Postgres() bool           { return false }

// Write runs fn in a write transaction, grouped with the writes queued
// beside it (groupwrite.go).
func (b *backend) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	return b.s.gw.write(ctx, fn)
}

func (b *backend) Unique(err error) (string, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return se.Error(), true
		}
	}
	return "", false
}

// NotNull implements sqlstore.Backend: SQLite's error names the column as
// "NOT NULL constraint failed: table.column (1299)".
func (b *backend) NotNull(err error) (string, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_NOTNULL {
		return "", false
	}
	_, col, _ := strings.Cut(se.Error(), "NOT NULL constraint failed: ")
	col, _, _ = strings.Cut(col, " ") // then the code: "run_steps.run_id (1299)"
	if i := strings.LastIndexByte(col, '.'); i >= 0 {
		col = col[i+1:]
	}
	return col, true
}

func (b *backend) ListJobs(ctx context.Context, kind string) ([]store.JobInfo, error) {
	return sqlstore.ListJobs(ctx, b.s.river, kind)
}

// closeDrain bounds how long Close waits for the writes already queued
// or running.
const closeDrain = 10 * time.Second

// Close waits for the writes already queued or running (at most
// closeDrain): one still running when the file's lock goes could commit
// beside the store of another process that takes the lock then, whose
// copies of runs would miss it. Then it closes the connections and
// releases the lock.
func (b *backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeDrain)
	_ = b.s.gw.write(ctx, func(sqlstore.Tx) error { return nil }) // runs after them
	cancel()
	if b.s.Store != nil {
		b.s.Store.CloseRunCache() // a read after Close does not answer from it
	}
	return errors.Join(b.s.ckpt.stop(), b.s.r.Close(), b.s.w.Close(), b.s.unlockOnce())
}

// unlockOnce releases the file's lock the first time it is called.
func (s *Store) unlockOnce() error {
	s.unlocking.Do(func() { s.unlockErr = s.unlock() })
	return s.unlockErr
}

// Close closes the database.
func (s *Store) Close() error { return (&backend{s: s}).Close() }

// sqlTx is a write transaction.
type sqlTx struct {
	tx    *sql.Tx
	river *river.Client[*sql.Tx]
	// detach makes statements ignore their context's cancellation (a
	// write in a group: groupwrite.go).
	detach bool
	// w is the write the transaction runs (its AfterCommit functions).
	w *pendingWrite
}

// AfterWrite implements sqlstore.AfterWriter: fn runs once the write has
// ended, given whether it committed (its group's commit), in the order of
// the commits, before the write returns (groupWriter.endWrite).
func (t sqlTx) AfterWrite(fn func(committed bool)) {
	if t.w != nil {
		t.w.after = append(t.w.after, fn)
	}
}

// ctx returns the context a statement runs with.
func (t sqlTx) ctx(ctx context.Context) context.Context {
	if t.detach {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(t.ctx(ctx), q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Batch implements sqlstore.Tx: SQLite runs in process, so the statements
// run one by one.
func (t sqlTx) Batch(ctx context.Context, stmts []sqlstore.Stmt) error {
	for _, st := range stmts {
		if st.Rows != nil {
			rows, err := t.Query(ctx, st.Query, st.Args...)
			if err := st.ReadRows(rows, err); err != nil {
				return err
			}
			continue
		}
		n, err := t.Exec(ctx, st.Query, st.Args...)
		if err := st.Result(n, err); err != nil {
			return err
		}
	}
	return nil
}

func (t sqlTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.QueryContext(t.ctx(ctx), q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t sqlTx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return t.tx.QueryRowContext(t.ctx(ctx), q, args...)
}

func (t sqlTx) InsertJobs(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	if t.river == nil {
		return errors.New("sqlite store: no job queue yet (migrating)")
	}
	ctx = t.ctx(ctx)
	return sqlstore.InsertJobs(ctx, t, false, jobs, func(jobs []store.Job) error {
		return sqlstore.RiverInsertJobs(ctx, t.river, t.tx, jobs)
	})
}

// dbQuerier reads outside a transaction.
type dbQuerier struct{ db *sql.DB }

func (q dbQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q dbQuerier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q dbQuerier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.db.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// CheckMigrations returns nil when the database answers and its schema is
// at this binary's last migration (for GET /readyz).
func (s *Store) CheckMigrations(ctx context.Context) error { return s.CheckSchema(ctx, s.schema) }
