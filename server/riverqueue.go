package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/assistants-go/assistants/server/store"
)

// The run engine's jobs on River (riverqueue/river), for the SQL stores:
// the store enqueues a job in the transaction of the write that calls for
// it, and River's workers, in every process that serves the database, run
// them. A job whose process died while running it stays "running" in the
// database; River's rescuer makes it available again once it has run
// longer than RescueAfter (checked every 30 s, by the elected leader), and
// another process (or the same one, restarted) runs it again. So a run
// whose replica was killed goes on within about RescueAfter + 30 s.

// RiverOptions tunes the River queue of a SQL store (Options.River).
type RiverOptions struct {
	// JobTimeout is how long one job (a model round, at most) may run
	// before its context is cancelled; the job then runs again.
	// Default: 10 minutes, a run's lifetime (a round never outlives its
	// run's expires_at).
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River takes
	// it for stuck (its process died) and runs it again: the time after
	// which a killed replica's run goes on elsewhere, plus up to 30 s. It
	// must not be less than JobTimeout, or a long round would run twice at
	// once. Default: JobTimeout + 1 minute.
	RescueAfter time.Duration
	// PollInterval is how often a worker looks for new jobs.
	// Default: 10ms (a run waits about half of it for its next job).
	PollInterval time.Duration
	// Workers bounds the jobs one process runs at once. Default: 100.
	Workers int
}

func (o RiverOptions) withDefaults() RiverOptions {
	if o.JobTimeout <= 0 {
		o.JobTimeout = runTTL
	}
	if o.RescueAfter <= 0 {
		o.RescueAfter = o.JobTimeout + time.Minute
	}
	if o.RescueAfter < o.JobTimeout {
		o.RescueAfter = o.JobTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 100
	}
	return o
}

// sqliteStore and postgresStore are what a SQL store offers River's
// drivers (store/sqlite and store/postgres have them).
type (
	sqliteStore   interface{ DB() *sql.DB }
	postgresStore interface{ Pool() *pgxpool.Pool }
)

// defaultQueue returns the Queue for st: in process for the memory store,
// River for the SQL stores, or nil.
func defaultQueue(st store.Store, ro RiverOptions, log *slog.Logger) Queue {
	switch x := st.(type) {
	case memoryJobs:
		return newMemoryQueue(x, func(msg string, args ...any) { log.Error(msg, args...) })
	case sqliteStore:
		return &riverQueue[*sql.Tx]{driver: riversqlite.New(x.DB()), opts: ro.withDefaults(), log: log}
	case postgresStore:
		return &riverQueue[pgx.Tx]{driver: riverpgxv5.New(x.Pool()), opts: ro.withDefaults(), log: log}
	}
	return nil
}

// riverQueue is a Queue on River.
type riverQueue[TTx any] struct {
	driver riverdriver.Driver[TTx]
	opts   RiverOptions
	log    *slog.Logger

	mu     sync.Mutex
	client *river.Client[TTx]
}

// jobWorker runs the engine's jobs of one kind on River.
type jobWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	work    func(context.Context, store.JobArgs) error
	timeout time.Duration
}

// Work implements river.Worker.
func (w *jobWorker[T]) Work(ctx context.Context, j *river.Job[T]) error {
	return w.work(withJobScheduled(ctx, j.ScheduledAt), j.Args) // the wait is measured (metrics.go)
}

// Timeout implements river.Worker.
func (w *jobWorker[T]) Timeout(*river.Job[T]) time.Duration { return w.timeout }

// jobRetryPolicy is River's retry policy for the run engine's jobs: a job
// that failed or was rescued runs again after its attempt number in
// seconds, at most maxJobRetryWait. River's default (attempt^4 seconds:
// 1 s, 16 s, 81 s...) is made for jobs that fail because something outside
// is down; ours fail because their process died or stopped, and they are
// idempotent, so a run whose replica was killed twice must not wait
// minutes for its third try.
type jobRetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (jobRetryPolicy) NextRetry(j *rivertype.JobRow) time.Time {
	return time.Now().Add(jobRetryWait(j.Attempt))
}

// maxJobRetryWait bounds the wait before a run job's next attempt.
const maxJobRetryWait = 5 * time.Second

// jobRetryWait is the wait before the next attempt of a job that has made
// attempt attempts: attempt seconds, between 1 s and maxJobRetryWait.
func jobRetryWait(attempt int) time.Duration {
	return min(time.Duration(max(attempt, 1))*time.Second, maxJobRetryWait)
}

// Start implements Queue.
func (q *riverQueue[TTx]) Start(ctx context.Context, work func(context.Context, store.JobArgs) error) error {
	workers := river.NewWorkers()
	t := q.opts.JobTimeout
	river.AddWorker(workers, &jobWorker[roundArgs]{work: work, timeout: t})
	river.AddWorker(workers, &jobWorker[cancelArgs]{work: work, timeout: t})
	river.AddWorker(workers, &jobWorker[expireArgs]{work: work, timeout: t})
	river.AddWorker(workers, &jobWorker[ingestArgs]{work: work, timeout: t}) // ingestjobs.go
	c, err := river.NewClient(q.driver, &river.Config{
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: q.opts.Workers},
			queueIngest: {MaxWorkers: ingestWorkers()}}, // ingestjobs.go
		Workers:              workers,
		JobTimeout:           q.opts.JobTimeout,
		RescueStuckJobsAfter: q.opts.RescueAfter,
		FetchPollInterval:    q.opts.PollInterval,
		FetchCooldown:        min(q.opts.PollInterval, river.FetchCooldownDefault),
		RetryPolicy:          jobRetryPolicy{},
		Logger:               q.log,
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("river start: %w", err)
	}
	q.mu.Lock()
	q.client = c
	q.mu.Unlock()
	return nil
}

// Stop implements Queue: running jobs are cancelled (they run again, here
// after a restart or on another replica).
func (q *riverQueue[TTx]) Stop(ctx context.Context) error {
	q.mu.Lock()
	c := q.client
	q.client = nil
	q.mu.Unlock()
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.StopAndCancel(ctx)
}

// errQueueStopped is the queue check's error when the workers do not run.
var errQueueStopped = errors.New("the job queue's workers are not running")

// running implements runningQueue: the River client was started and has
// not stopped.
func (q *riverQueue[TTx]) running() error {
	q.mu.Lock()
	c := q.client
	q.mu.Unlock()
	if c == nil {
		return errQueueStopped
	}
	select {
	case <-c.Stopped():
		return errQueueStopped
	default:
		return nil
	}
}
