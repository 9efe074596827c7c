// Package postgres is the store.Store of a PostgreSQL database, for
// several replicas sharing it: jackc/pgx v5 (pgxpool), with River's job
// tables in the same database (riverpgxv5).
//
// Transactions run at READ COMMITTED with explicit row locks: a run's row
// (FOR UPDATE) orders its writers across replicas; a thread's row orders
// run creation (FOR UPDATE) against message creation (FOR KEY SHARE), and
// a partial unique index keeps one active run per thread.
//
// Open applies the store's migrations (server/store/postgres/migrations)
// and River's while holding an advisory lock, so replicas starting together
// migrate once; a database migrated by a newer binary is refused
// (store.ErrSchemaTooNew). Tables live in the connection's search_path
// (add search_path=NAME to the URL to use a schema other than public).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the store's schema migrations, in order.
func Migrations() ([]sqlstore.Migration, error) {
	return sqlstore.LoadMigrations(migrationFS, "migrations")
}

// Options configures Open.
type Options struct {
	// MaxConns bounds the connection pool. 0 means pool_max_conns from the
	// URL when it has one, else DefaultMaxConns.
	MaxConns int32
	// Logger receives River's logs; nil means slog.Default().
	Logger *slog.Logger
	// Migrations replaces the store's schema migrations (tests of the
	// migrator); nil means Migrations().
	Migrations []sqlstore.Migration
}

// setsPoolSize reports whether a database URL (or key=value DSN) has
// pool_max_conns.
func setsPoolSize(databaseURL string) bool {
	if u, err := url.Parse(databaseURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has("pool_max_conns")
	}
	for _, f := range strings.Fields(databaseURL) {
		if strings.HasPrefix(f, "pool_max_conns=") {
			return true
		}
	}
	return false
}

// DefaultMaxConns is the pool's size when neither Options.MaxConns nor the
// URL's pool_max_conns sets it. pgxpool's own default, max(4, CPUs), is too
// small for a server: two connections stay in LISTEN (the run events'
// wake-ups and River's notifier), and every write transaction holds one
// for its commit's WAL flush, so with 4 the requests and the run workers
// queued for the other 2. Each replica may open this many of PostgreSQL's
// max_connections (100 by default).
const DefaultMaxConns = 16

// Store is the PostgreSQL store. Its methods are those of store.Store.
type Store struct {
	*sqlstore.Store
	pool  *pgxpool.Pool
	river *river.Client[pgx.Tx]
	// schema is the version of the binary's last migration (CheckMigrations).
	schema int
}

var _ store.Store = (*Store)(nil)

// migrationLockKey is the first key of the advisory lock held while
// migrating (the second is the schema's hash).
const migrationLockKey = 0x61737374 // "asst"

// Open connects to databaseURL and migrates the database.
func Open(ctx context.Context, databaseURL string, opts ...func(*Options)) (*Store, error) {
	o := Options{Logger: slog.Default()}
	for _, f := range opts {
		f(&o)
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
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !setsPoolSize(databaseURL):
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{pool: pool, schema: len(o.Migrations)}
	b := &backend{s: s}
	if err := migrate(ctx, b, cfg.ConnConfig, o); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	// Insert-only: the run engine makes its own client with workers.
	if s.river, err = river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: o.Logger}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s.Store = sqlstore.New(b)
	return s, nil
}

// migrate runs the store's and River's migrations under a session advisory
// lock held on a connection of its own.
func migrate(ctx context.Context, b *backend, cc *pgx.ConnConfig, o Options) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const lock = `SELECT pg_advisory_lock($1, hashtext(current_schema()))`
	if _, err := conn.Exec(ctx, lock, migrationLockKey); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	// Closing the connection also releases the lock.
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrationLockKey) //nolint:errcheck
	if _, err := sqlstore.Migrate(ctx, b, o.Migrations, ""); err != nil {
		return err
	}
	m, err := rivermigrate.New(riverpgxv5.New(b.s.pool), &rivermigrate.Config{Logger: o.Logger})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// Pool returns the connection pool, for River clients that work jobs:
// riverpgxv5.New(s.Pool()).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// backend is sqlstore.Backend on the pool.
type backend struct{ s *Store }

func (b *backend) Reader() sqlstore.Querier { return querier{b.s.pool} }
func (b *backend) Postgres() bool           { return true }
func (b *backend) Close() error             { return b.s.Close() }

func (b *backend) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	tx, err := b.s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(pgTx{querier: querier{tx}, tx: tx, river: b.s.river}); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

func (b *backend) Unique(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName + ": " + pe.Message, true
	}
	return "", false
}

func (b *backend) ListJobs(ctx context.Context, kind string) ([]store.JobInfo, error) {
	return sqlstore.ListJobs(ctx, b.s.river, kind)
}

// pgQuerier is what the pool and a transaction have in common.
type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier numbers the ? placeholders of sqlstore's queries.
type querier struct{ q pgQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, rebind(query), args...)
	return tag.RowsAffected(), err
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.q.Query(ctx, rebind(query), args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return row{q.q.QueryRow(ctx, rebind(query), args...)}
}

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}

// pgTx is a write transaction.
type pgTx struct {
	querier
	tx    pgx.Tx
	river *river.Client[pgx.Tx]
}

func (t pgTx) InsertJobs(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	if t.river == nil {
		return errors.New("postgres store: no job queue yet (migrating)")
	}
	return sqlstore.InsertJobs(ctx, t, true, jobs, func(jobs []store.Job) error {
		return sqlstore.RiverInsertJobs(ctx, t.river, t.tx, jobs)
	})
}

// Batch implements sqlstore.Tx: the statements go in one round trip.
func (t pgTx) Batch(ctx context.Context, stmts []sqlstore.Stmt) error {
	switch len(stmts) {
	case 0:
		return nil
	case 1:
		n, err := t.Exec(ctx, stmts[0].Query, stmts[0].Args...)
		return stmts[0].Result(n, err)
	}
	var b pgx.Batch
	for _, st := range stmts {
		b.Queue(rebind(st.Query), st.Args...)
	}
	br := t.tx.SendBatch(ctx, &b)
	for _, st := range stmts {
		tag, err := br.Exec()
		if err := st.Result(tag.RowsAffected(), err); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

// rebinds caches the numbered form of each query (they are constants, or
// built from a few shapes).
var rebinds sync.Map

// rebind turns ? placeholders into $1, $2...
func rebind(q string) string {
	if v, ok := rebinds.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	out := b.String()
	rebinds.Store(q, out)
	return out
}

// CheckMigrations returns nil when the database answers and its schema is
// at this binary's last migration (for GET /readyz).
func (s *Store) CheckMigrations(ctx context.Context) error { return s.CheckSchema(ctx, s.schema) }
