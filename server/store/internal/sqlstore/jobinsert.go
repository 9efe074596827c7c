package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/assistants-go/assistants/server/store"
)

// The store writes its jobs into River's table (river_job) with a plain
// INSERT of its own, and River fetches, works, retries, rescues and
// deletes them as any other. River's InsertManyTx was about a tenth of the
// CPU of a run's conversation on SQLite (validation, its query templates,
// an INSERT ... SELECT over json_each of the jobs marshalled as one JSON
// document, every column returned and decoded) and a heavy unnest-array
// query on PostgreSQL, for a job that is written to be deleted a round
// later (the backup of an inline round, riverqueue.go in package server).
//
// The row is the one River's insert writes (riverqueue/river v0.51.2:
// Client.insertManyParams, then the drivers' JobInsertFastMany), for the
// store's jobs: no unique options, no tags, no metadata, priority 1:
//
//   - args: the args' JSON (json.Marshal); kind: Kind()
//   - queue: Job.Queue, or "default"; max_attempts: Job.MaxAttempts, or
//     River's default 25 (the store's River clients keep the default), at
//     most 32767 on PostgreSQL (a smallint)
//   - state "scheduled" when Job.ScheduledAt is set, even in the past
//     (River's scheduler makes it available when due), else "available"
//   - scheduled_at: Job.ScheduledAt, else now; created_at: now. Now is the
//     database's on SQLite (datetime('now', 'subsec')) and this process's
//     on PostgreSQL (River's driver sends time.Now()); SQLite times are
//     the text River writes (timeString)
//   - metadata {}, tags [], priority 1, attempt 0, unique_key and
//     unique_states NULL, the rest NULL (the columns' defaults)
//
// River's checks of its insert options are not repeated: the store's
// queue names are constants, and it sets no priority, tags or metadata.
// Its insert hooks and middleware are none: the store's River clients
// configure none.
//
// On SQLite River's returning insert (InsertManyTx) also puts a random
// "river:unique_nonce" into each job's metadata, to tell a unique job
// skipped as a duplicate from one inserted; it reads it back only then,
// and its other inserts (InsertManyFastTx, PostgreSQL's) leave metadata
// {}, as this one does.
//
// Jobs left to River's insert (leftToRiver): args that bring their own
// insert options or hooks (river.JobArgsWithInsertOpts,
// river.JobArgsWithHooks: uniqueness, priority, tags...), and, on
// PostgreSQL, jobs available at once, for which River also sends a NOTIFY
// that wakes the workers of every replica (rate-limited per queue) rather
// than leaving the job to their next poll (1 s by default): file
// ingestion's jobs. The runs' backups are scheduled ahead, so River sends
// nothing for them. SQLite has no NOTIFY: its workers poll.
//
// The tests of both backends insert the same jobs both ways and compare
// every column (storetest.JobInsertParity): a River upgrade that changes
// its table or its values fails them.

// maxJobRows is the most rows of one job INSERT. Each INSERT has a power
// of two of rows, so the statements of every job count are a few texts,
// each prepared once per connection (as the events', insertEvents).
const maxJobRows = 64

// jobCols are the columns the INSERT sets; the others take their defaults.
const jobCols = `args, created_at, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags`

// The values of one job, per database, with the arguments args,
// created_at, kind, max_attempts, queue, scheduled_at, state (jobValues).
// SQLite keeps JSON as JSONB and takes the times as text; a NULL time is
// the database's now, as in River's SQL.
const (
	sqliteJobRow = `(jsonb(?), coalesce(?, datetime('now', 'subsec')), ?, ?, jsonb('{}'), 1, ?, coalesce(?, datetime('now', 'subsec')), ?, jsonb('[]'))`
	pgJobRow     = `(?, ?, ?, ?, '{}', 1, ?, ?, ?, '{}')`
)

// jobInserts holds, per database (index: postgres), the INSERT of n jobs
// for each power of two n up to maxJobRows.
var jobInserts = func() [2]map[int]string {
	var m [2]map[int]string
	for i, row := range []string{sqliteJobRow, pgJobRow} {
		m[i] = map[int]string{}
		for n := 1; n <= maxJobRows; n *= 2 {
			m[i][n] = `INSERT INTO river_job (` + jobCols + `) VALUES ` +
				strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + ` RETURNING id`
		}
	}
	return m
}()

// leftToRiver reports whether j goes through River's own insert (see
// above).
func leftToRiver(j store.Job, postgres bool) bool {
	switch j.Args.(type) {
	case river.JobArgsWithInsertOpts, river.JobArgsWithHooks:
		return true
	}
	return postgres && j.ScheduledAt.IsZero()
}

// InsertJobs enqueues jobs in the transaction tx: River's row, written by
// the store's own INSERT, for each job but those left to River, which
// viaRiver inserts (River's InsertManyTx, RiverInsertJobs). It sets the
// ids the jobs ask for (store.Job.ID). postgres says the database.
func InsertJobs(ctx context.Context, tx Tx, postgres bool, jobs []store.Job, viaRiver func([]store.Job) error) error {
	if !slices.ContainsFunc(jobs, func(j store.Job) bool { return leftToRiver(j, postgres) }) {
		return insertJobs(ctx, tx, postgres, jobs)
	}
	var own, theirs []store.Job // the ids are pointers: they reach jobs
	for _, j := range jobs {
		if leftToRiver(j, postgres) {
			theirs = append(theirs, j)
		} else {
			own = append(own, j)
		}
	}
	if err := insertJobs(ctx, tx, postgres, own); err != nil {
		return err
	}
	return viaRiver(theirs)
}

// insertJobs writes jobs' rows, in INSERTs of a power of two of rows, in
// one batch (tx.Batch: on PostgreSQL it may go with the transaction's next
// statement, or with its COMMIT; the ids are set when it has run). Reading
// the ids refuses nothing (Stmt.Rows): it fails only when the database
// returns other than the rows it inserted.
func insertJobs(ctx context.Context, tx Tx, postgres bool, jobs []store.Job) error {
	db := 0
	if postgres {
		db = 1
	}
	now := time.Now().UTC() // PostgreSQL's created_at, as River's driver
	var b []Stmt
	for start := 0; start < len(jobs); {
		n := maxJobRows
		for n > len(jobs)-start {
			n /= 2
		}
		args := make([]any, 0, 7*n)
		for _, j := range jobs[start : start+n] {
			a, err := jobValues(j, postgres, now)
			if err != nil {
				return fmt.Errorf("enqueue jobs: %w", err)
			}
			args = append(args, a...)
		}
		these := jobs[start : start+n]
		b = append(b, Stmt{Query: jobInserts[db][n], Args: args,
			Rows: func(rows Rows) error { return readIDs(rows, these) },
			Check: func(_ int64, err error) error {
				if err != nil {
					return fmt.Errorf("enqueue jobs: %w", err)
				}
				return nil
			}})
		start += n
	}
	return tx.Batch(ctx, b)
}

// jobValues returns the arguments of j's row (sqliteJobRow, pgJobRow).
func jobValues(j store.Job, postgres bool, now time.Time) ([]any, error) {
	args, err := json.Marshal(j.Args)
	if err != nil {
		return nil, fmt.Errorf("error marshaling args to JSON: %w", err) // River's words
	}
	state := "available"
	if !j.ScheduledAt.IsZero() {
		state = "scheduled"
	}
	kind := j.Args.Kind()
	maxAttempts := cmp.Or(j.MaxAttempts, river.MaxAttemptsDefault)
	queue := cmp.Or(j.Queue, river.QueueDefault)
	if postgres {
		maxAttempts = min(maxAttempts, math.MaxInt16) // smallint
		scheduled := now
		if !j.ScheduledAt.IsZero() {
			scheduled = j.ScheduledAt
		}
		return []any{args, now, kind, maxAttempts, queue, scheduled, state}, nil
	}
	var scheduled any // NULL: the database's now
	if !j.ScheduledAt.IsZero() {
		scheduled = timeString(j.ScheduledAt)
	}
	return []any{string(args), nil, kind, maxAttempts, queue, scheduled, state}, nil
}

// timeString is a time as River's SQLite driver writes it: the text that
// SQLite's datetime('now', 'subsec') gives, which River's queries compare
// with (as text).
func timeString(t time.Time) string {
	return t.UTC().Round(time.Millisecond).Format("2006-01-02 15:04:05.000")
}

// readIDs reads the ids an INSERT of jobs returns and gives the jobs that
// ask for it their id. The ids are given in ascending order, the order of
// the rows: both databases number a statement's rows in the order it
// inserts them (SQLite's AUTOINCREMENT, PostgreSQL's sequence, taken row
// by row), whatever the order in which RETURNING lists them.
func readIDs(rows Rows, jobs []store.Job) error {
	var one [1]int64
	ids := one[:0]
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids) != len(jobs) {
		return fmt.Errorf("%d inserted of %d", len(ids), len(jobs))
	}
	slices.Sort(ids)
	for i, j := range jobs {
		if j.ID != nil {
			*j.ID = ids[i]
		}
	}
	return nil
}
