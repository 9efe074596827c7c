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
	"slices"
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
	// ConfigurePool, when not nil, is given the pool's configuration,
	// parsed from the URL and sized (MaxConns), before the pool is made: a
	// tracer (ConnConfig.Tracer), TLS, connection hooks. The migrations'
	// own connection takes the same ConnConfig. nil leaves it as parsed.
	ConfigurePool func(*pgxpool.Config)
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
	if o.ConfigurePool != nil {
		o.ConfigurePool(cfg)
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

// Write runs fn in a transaction on one of the pool's connections (pgTx):
// BEGIN goes with the transaction's first statement and COMMIT with its
// last batch, so a write whose statements fn gives in batches takes a
// round trip per read it makes, plus one.
func (b *backend) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	conn, err := b.s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left in a transaction (a panic in fn) is closed, not
	// reused, when released.
	defer conn.Release()
	t := &pgTx{conn: conn.Conn(), river: b.s.river}
	if err := fn(t); err != nil {
		t.rollback(ctx)
		return err
	}
	if err := t.commit(ctx); err != nil {
		t.rollback(ctx)
		return err
	}
	return nil
}

func (b *backend) Unique(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName + ": " + pe.Message, true
	}
	return "", false
}

func (b *backend) NotNull(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23502" { // not_null_violation
		return pe.ColumnName, true
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

// pgTx is a write transaction on one connection, sent in as few round
// trips as its reads allow: BEGIN is not sent alone but with the first
// statement, and the statements of Batch wait (pending) to go with the
// next statement or with the COMMIT, all in one pipeline (a pgx.Batch).
// A statement sent with pending ones returns the first error among them,
// in order, before its own; after an error PostgreSQL runs nothing more of
// the pipeline, and the transaction is rolled back (Write). The first
// error of the transaction sticks: every later call returns it (so no
// statement runs outside the transaction, and COMMIT is never sent).
type pgTx struct {
	conn  *pgx.Conn
	river *river.Client[pgx.Tx]
	// begun: BEGIN has been sent.
	begun bool
	// pending holds the statements of Batch not sent yet.
	pending []sqlstore.Stmt
	// open is the pipeline whose last result the caller is reading (the
	// rows of Query or QueryRow); the next send closes it, and gen counts
	// the pipelines closed so: rows of a closed one answer errStaleRows
	// instead of another statement's result.
	open pgx.BatchResults
	gen  int
	// failed is the transaction's first error.
	failed error
}

// errStaleRows is what rows answer once another statement of their
// transaction was sent before they were read.
var errStaleRows = errors.New("postgres store: rows read after the transaction's next statement was sent")

// fail records err as the transaction's first error, and returns it.
func (t *pgTx) fail(err error) error {
	if err != nil && t.failed == nil {
		t.failed = err
	}
	return err
}

// send closes the pipeline still open and sends a new one: BEGIN when not
// sent yet, the pending statements, and then what more adds. It reads the
// results of BEGIN and of the pending statements and returns the pipeline
// at the first result of more's; on an error it closes the pipeline and
// returns the error.
func (t *pgTx) send(ctx context.Context, more func(*pgx.Batch)) (pgx.BatchResults, error) {
	if t.failed != nil {
		return nil, t.failed
	}
	if err := t.closeOpen(); err != nil {
		return nil, err
	}
	var b pgx.Batch
	begin := !t.begun
	if begin {
		b.Queue("BEGIN")
	}
	pending := t.pending
	t.pending = nil
	for _, st := range pending {
		b.Queue(rebind(st.Query), st.Args...)
	}
	if more != nil {
		more(&b)
	}
	t.begun = true
	br := t.conn.SendBatch(ctx, &b)
	err := func() error {
		if begin {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		for _, st := range pending {
			if st.Rows != nil {
				rows, err := br.Query()
				if err := st.ReadRows(pgRows{rows}, err); err != nil {
					return err
				}
				continue
			}
			tag, err := br.Exec()
			if err := st.Result(tag.RowsAffected(), err); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		_ = br.Close()
		return nil, t.fail(err)
	}
	return br, nil
}

// closeOpen closes the pipeline a Query or QueryRow left open.
func (t *pgTx) closeOpen() error {
	if t.open == nil {
		return nil
	}
	err := t.open.Close()
	t.open = nil
	t.gen++
	return t.fail(err)
}

// flush sends what is pending (and BEGIN): the connection is then in the
// transaction, with every statement given so far run.
func (t *pgTx) flush(ctx context.Context) error {
	br, err := t.send(ctx, nil)
	if err != nil {
		return err
	}
	return t.fail(br.Close())
}

// commit sends what is pending with COMMIT, or before it when a pending
// statement's outcome is not the database's alone (Stmt.MayRefuse); a
// transaction that sent and holds nothing has nothing to commit.
func (t *pgTx) commit(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if !t.begun && len(t.pending) == 0 {
		return t.closeOpen()
	}
	if slices.ContainsFunc(t.pending, sqlstore.Stmt.MayRefuse) {
		if err := t.flush(ctx); err != nil {
			return err
		}
	}
	br, err := t.send(ctx, func(b *pgx.Batch) { b.Queue("COMMIT") })
	if err != nil {
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback // an error PostgreSQL kept to itself
	}
	return t.fail(err)
}

// rollback ends the transaction after a failure, if the connection is in
// one; a connection that cannot is closed by the pool on release.
func (t *pgTx) rollback(ctx context.Context) {
	_ = t.closeOpen()
	if !t.conn.IsClosed() && t.conn.PgConn().TxStatus() != 'I' {
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
}

// Exec implements sqlstore.Querier: the pending statements go first. A
// statement without arguments goes apart, after them, as a simple query:
// it may be several (a migration's script).
func (t *pgTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if len(args) == 0 {
		if err := t.flush(ctx); err != nil {
			return 0, err
		}
		tag, err := t.conn.Exec(ctx, query)
		return tag.RowsAffected(), t.fail(err)
	}
	br, err := t.send(ctx, func(b *pgx.Batch) { b.Queue(rebind(query), args...) })
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), t.fail(err)
}

// Query implements sqlstore.Querier: the pending statements go first.
func (t *pgTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	br, err := t.send(ctx, func(b *pgx.Batch) { b.Queue(rebind(query), args...) })
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, t.fail(err)
	}
	t.open = br
	return &txRows{Rows: rows, t: t, gen: t.gen}, nil
}

// QueryRow implements sqlstore.Querier: the pending statements go first.
func (t *pgTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	br, err := t.send(ctx, func(b *pgx.Batch) { b.Queue(rebind(query), args...) })
	if err != nil {
		return errRow{err}
	}
	t.open = br
	return batchRow{t: t, gen: t.gen, r: br.QueryRow()}
}

// Batch implements sqlstore.Tx: the statements wait to go with the next
// statement or the COMMIT.
func (t *pgTx) Batch(_ context.Context, stmts []sqlstore.Stmt) error {
	if t.failed != nil {
		return t.failed
	}
	t.pending = append(t.pending, stmts...)
	return nil
}

// InsertJobs implements sqlstore.Tx.
func (t *pgTx) InsertJobs(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	if t.river == nil {
		return errors.New("postgres store: no job queue yet (migrating)")
	}
	return sqlstore.InsertJobs(ctx, t, true, jobs, func(jobs []store.Job) error {
		if err := t.flush(ctx); err != nil {
			return err
		}
		return t.fail(sqlstore.RiverInsertJobs[pgx.Tx](ctx, t.river, riverTx{t.conn}, jobs))
	})
}

// pgRows is pgx's rows as sqlstore's.
type pgRows struct{ pgx.Rows }

func (r pgRows) Close() { r.Rows.Close() }

// txRows are the rows of a transaction's Query, read before its next
// statement is sent (errStaleRows after).
type txRows struct {
	pgx.Rows
	t   *pgTx
	gen int
	err error
}

func (r *txRows) Next() bool {
	if r.t.gen != r.gen {
		r.err = errStaleRows
		return false
	}
	return r.Rows.Next()
}

func (r *txRows) Scan(dest ...any) error {
	if r.t.gen != r.gen {
		return errStaleRows
	}
	return r.Rows.Scan(dest...)
}

func (r *txRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if r.t.gen != r.gen {
		return nil // read to its end, or closed, before the next statement
	}
	return r.t.fail(r.Rows.Err())
}

func (r *txRows) Close() {
	if r.t.gen == r.gen {
		r.Rows.Close()
		_ = r.t.fail(r.Rows.Err())
	}
}

// batchRow is the row of a QueryRow: scanning it closes its pipeline. A
// row scanned after the transaction's next statement was sent answers
// errStaleRows.
type batchRow struct {
	t   *pgTx
	gen int
	r   pgx.Row
}

func (r batchRow) Scan(dest ...any) error {
	if r.t.gen != r.gen {
		return errStaleRows
	}
	err := row{r.r}.Scan(dest...)
	if cerr := r.t.closeOpen(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		_ = r.t.fail(err)
	}
	return err
}

// errRow is a row whose Scan returns err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// riverTx is the transaction as River's insert takes it (a pgx.Tx), once
// pgTx has sent all it holds: River's statements go on the connection,
// inside the transaction that Write commits. River's insert begins, commits
// and rolls back nothing of its own; these refuse to.
type riverTx struct{ conn *pgx.Conn }

var _ pgx.Tx = riverTx{}

var errRiverTx = errors.New("postgres store: River's insert runs in the store's transaction; it cannot begin or end one")

func (r riverTx) Begin(context.Context) (pgx.Tx, error) { return nil, errRiverTx }
func (r riverTx) Commit(context.Context) error          { return errRiverTx }
func (r riverTx) Rollback(context.Context) error        { return errRiverTx }
func (r riverTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	return r.conn.CopyFrom(ctx, table, cols, src)
}
func (r riverTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return r.conn.SendBatch(ctx, b)
}

// LargeObjects returns pgx's zero LargeObjects, unusable: River's insert
// uses none.
func (r riverTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (r riverTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return r.conn.Prepare(ctx, name, sql)
}
func (r riverTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return r.conn.Exec(ctx, sql, args...)
}
func (r riverTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return r.conn.Query(ctx, sql, args...)
}
func (r riverTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return r.conn.QueryRow(ctx, sql, args...)
}
func (r riverTx) Conn() *pgx.Conn { return r.conn }

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
