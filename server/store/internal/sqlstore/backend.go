// Package sqlstore implements store.Store once for the SQL databases. The
// backends (store/sqlite, store/postgres) bring their own schema
// (migrations), connections, transactions and River client through the
// Backend interface; the queries here are plain SQL that both run, written
// with ? placeholders (the PostgreSQL backend numbers them).
package sqlstore

import (
	"context"

	"github.com/assistants-go/assistants/server/store"
)

// Backend is what a database gives the SQL store.
type Backend interface {
	// Reader returns a querier for reads outside a transaction.
	Reader() Querier
	// Write runs fn in a write transaction and commits when fn returns
	// nil; otherwise it rolls back and returns fn's error.
	Write(ctx context.Context, fn func(Tx) error) error
	// Postgres reports whether the database is PostgreSQL (row locks are
	// taken with FOR UPDATE); otherwise it is SQLite, whose writers are
	// serialized.
	Postgres() bool
	// Unique reports whether err is a unique violation, and its text
	// (naming the index or columns).
	Unique(err error) (string, bool)
	// NotNull reports whether err is a NOT NULL violation, and the
	// violated column's name.
	NotNull(err error) (column string, ok bool)
	// ListJobs lists the queue's unfinished jobs (see store.Store).
	ListJobs(ctx context.Context, kind string) ([]store.JobInfo, error)
	// Close releases the connections.
	Close() error
}

// Querier runs queries.
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow returns a row whose Scan returns sql.ErrNoRows when there
	// is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Tx is a write transaction.
type Tx interface {
	Querier
	// InsertJobs enqueues jobs in the transaction, into River's job table
	// (InsertJobs, River's InsertManyTx for some), and sets the ids that
	// jobs ask for (store.Job.ID).
	InsertJobs(ctx context.Context, jobs []store.Job) error
	// Batch runs statements in order and stops at the first error (the
	// statement's, or its Check's or Rows'). SQLite, in process, runs them
	// one by one before it returns. PostgreSQL may hold them back and send
	// them with the transaction's next statement or with its COMMIT, in
	// one round trip: their errors are then returned by that call (the
	// first one, in order) or by Write, and nothing of the transaction is
	// committed. So a function given to Write must not rely on a Batch's
	// nil error alone: what it does next that reads the database sees the
	// batch's writes, or its error.
	Batch(ctx context.Context, stmts []Stmt) error
}

// Stmt is a statement of a Batch.
type Stmt struct {
	Query string
	Args  []any
	// Check, when not nil, is given the number of rows the statement
	// changed, or its error; what it returns ends the batch (nil goes
	// on). Nil means the statement's error ends the batch as is.
	Check func(n int64, err error) error
	// Refuses says that Check may refuse a statement that ran without an
	// error (it looks at n): the database does not know, so PostgreSQL
	// sends such a statement ahead of COMMIT, not in one round trip with
	// it, and commits nothing when Check refuses.
	Refuses bool
	// Rows, when not nil, is given the rows the statement returns (an
	// INSERT ... RETURNING, say) and reads them; the batch closes them.
	// What it returns (or the rows' error) goes to Check as err, with
	// n 0. Such a statement refuses as Refuses says: a Rows that only
	// reads what the statement returns (the ids of inserted jobs) may go
	// with the COMMIT on PostgreSQL, where a failure of its own (a scan
	// of a column that is not what it reads) would come after the
	// database committed; one that judges what it reads sets Refuses.
	Rows func(Rows) error
}

// Result is what a Batch does with a statement's outcome: its Check's
// verdict, or the error.
func (s Stmt) Result(n int64, err error) error {
	if s.Check != nil {
		return s.Check(n, err)
	}
	return err
}

// MayRefuse reports whether s's outcome may be an error although the
// database ran it without one (Refuses).
func (s Stmt) MayRefuse() bool { return s.Refuses }

// ReadRows runs s's Rows on rows (the statement's, or nil and the error
// that running it returned), closes them, and returns s's Result.
func (s Stmt) ReadRows(rows Rows, err error) error {
	if err == nil {
		err = s.Rows(rows)
		if e := rows.Err(); err == nil {
			err = e
		}
		rows.Close()
	}
	return s.Result(0, err)
}

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is one row.
type Row interface{ Scan(dest ...any) error }
