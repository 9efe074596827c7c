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
	// InsertJobs enqueues jobs in the transaction (River's InsertManyTx)
	// and sets the ids that jobs ask for (store.Job.ID).
	InsertJobs(ctx context.Context, jobs []store.Job) error
	// DeleteJobs deletes the jobs of ids in the transaction, those that
	// have not started (store.RunChange.DeleteJobs).
	DeleteJobs(ctx context.Context, ids []int64) error
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
