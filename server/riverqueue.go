package server

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
// another process (or the same one, restarted) runs it again.
//
// Round and cancel jobs run inline: the store inserts them as backups,
// scheduled RescueAfter ahead, and the process that committed them runs
// them at once in its own pool (runInline), with a deadline JobTimeout
// after the insert, which comes a margin before the backup is due (see
// RiverOptions.RescueAfter). A job that ends
// deletes its backup (in its last write, or in one small write after); a
// job stopped by Stop or failed makes its backup available at once, for
// this or another process (River's retry, as a job stopped by River would
// run again). A process killed leaves the backup scheduled: it becomes
// available after RescueAfter and River runs it anywhere. So a run whose
// replica was killed goes on within about RescueAfter (+ up to 30 s for a
// job River ran), and nothing runs the same round twice at once.

// RiverOptions tunes the River queue of a SQL store (Options.River).
type RiverOptions struct {
	// JobTimeout is how long one job (a model round, at most) may run
	// before its context is cancelled; the job then runs again. A round
	// or cancel run inline has this long from the time its job was
	// written. Default: 10 minutes, a run's lifetime (a round never
	// outlives its run's expires_at).
	JobTimeout time.Duration
	// RescueAfter is when the backup of a round or cancel run inline
	// becomes due (after its job was written): the time after which a
	// killed replica's run goes on elsewhere (plus River's scheduling, a
	// few seconds). It is also how long a job River runs may stay running
	// before River takes it for stuck and runs it again (plus up to
	// 30 s). A job (inline or on River) is given at most RescueAfter
	// minus a margin (1 minute, or half of JobTimeout when that is less)
	// before its context is cancelled, so that it has stopped, in-flight
	// writes included, before its backup or River's rescuer runs it again:
	// a RescueAfter below JobTimeout + margin shortens JobTimeout. The
	// backup's due time is taken on this replica's clock and compared by
	// River with the database's (PostgreSQL's now()): the clocks of the
	// replicas and the database must agree within the margin, or a round
	// may run twice at once. Default: JobTimeout + 1 minute (at least
	// JobTimeout).
	RescueAfter time.Duration
	// PollInterval is how often a worker looks for new jobs: for the jobs
	// River runs (expiries, file ingestion, backups of round and cancel
	// jobs), not rounds and cancels, which run inline in the process that
	// enqueued them. On PostgreSQL an insert also wakes the workers (LISTEN
	// and NOTIFY): default 1 s (River's default). On SQLite nothing but the
	// poll finds a job (a released backup, a file to ingest, an expiry):
	// default 100 ms, the wait of such a job, for an idle cost of about
	// 4% of a core (`serve --data` idle, measured: 3230 ms CPU per 20 s at
	// 10 ms, 830 ms at 100 ms, 330 ms at 1 s).
	PollInterval time.Duration
	// Workers bounds the jobs one process runs at once, in River's default
	// queue and, apart, inline (a round or cancel found the inline pool
	// full is left to River at once). Default: 100.
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
	if m := o.margin(); o.JobTimeout > o.RescueAfter-m {
		o.JobTimeout = o.RescueAfter - m // > 0: RescueAfter >= JobTimeout > 2*m
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 100
	}
	return o
}

// maxClockMargin bounds the margin between a job's deadline and the time
// its backup becomes due (RiverOptions.RescueAfter).
const maxClockMargin = time.Minute

// margin is the time kept between a job's deadline and RescueAfter, for
// its last writes and the skew between the replicas' clocks and the
// database's: 1 minute, or half of JobTimeout when that is less (tests run
// with a JobTimeout and RescueAfter of seconds).
func (o RiverOptions) margin() time.Duration { return min(maxClockMargin, o.JobTimeout/2) }

// sqlitePollInterval is RiverOptions.PollInterval's default on SQLite.
const sqlitePollInterval = 100 * time.Millisecond

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
		if ro.PollInterval <= 0 {
			ro.PollInterval = sqlitePollInterval // no LISTEN/NOTIFY: only the poll finds a job
		}
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
	now    func() time.Time // the clock of inline deadlines (time.Now; tests set it)
	stopIn time.Duration    // Stop's budget for each of its waits (stopBudget; tests set it)

	mu       sync.Mutex
	client   *river.Client[TTx] // set by Start; nil after Stop
	jobs     *river.Client[TTx] // the client for backups: set by Start, kept after Stop
	inline   chan inlineJob     // to the inline loop (Start's goroutine)
	done     chan struct{}      // closed by Stop: the inline loop ends
	ended    chan struct{}      // closed by the inline loop when it ends
	slots    chan struct{}      // the inline pool's workers (Workers)
	inflight sync.WaitGroup     // the inline jobs
}

// inlineJob is a job to run inline: its args, its backup's id and the
// deadline before its backup is due.
type inlineJob struct {
	args     store.JobArgs
	id       int64
	due      time.Time // when it was enqueued (the metrics' wait)
	deadline time.Time
	started  *startedRun // the run as its write committed it, for the round (startnow.go); nil: read it
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
		JobTimeout:           q.opts.JobTimeout, // at least margin below RescueAfter (withDefaults)
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
	q.client, q.jobs = c, c
	q.inline, q.done, q.ended = make(chan inlineJob), make(chan struct{}), make(chan struct{})
	q.slots = make(chan struct{}, q.opts.Workers)
	q.mu.Unlock()
	go q.inlineLoop(ctx, work)
	return nil
}

// inlineDeadline is the deadline of an inline job enqueued at due (its
// backup due at due+RescueAfter): due+JobTimeout, which withDefaults keeps
// at least margin before due+RescueAfter.
func (o RiverOptions) inlineDeadline(due time.Time) time.Time {
	return due.Add(min(o.JobTimeout, o.RescueAfter-o.margin()))
}

// clock returns the time on q's clock.
func (q *riverQueue[TTx]) clock() time.Time {
	if q.now != nil {
		return q.now()
	}
	return time.Now()
}

// backupDelay implements inlineRunner: RescueAfter.
func (q *riverQueue[TTx]) backupDelay() time.Duration { return q.opts.RescueAfter }

// runInline implements inlineRunner: job id, enqueued at due as a backup
// (scheduled backupDelay later), runs now in this process, with a
// deadline JobTimeout after due (inlineDeadline). When the pool is full or the queue
// stopped, its backup is made available at once instead.
func (q *riverQueue[TTx]) runInline(args store.JobArgs, id int64, due time.Time) {
	q.mu.Lock()
	in, slots := q.inline, q.slots
	q.mu.Unlock()
	if in == nil {
		return // never started: the backup is all there is
	}
	j := inlineJob{args: args, id: id, due: due, deadline: q.opts.inlineDeadline(due)}
	select {
	case slots <- struct{}{}:
	default:
		q.release(j, "the inline pool is full")
		return
	}
	q.hand(j)
}

// reserve implements inlineRunner: a slot of the pool, taken when one is
// free and the queue runs.
func (q *riverQueue[TTx]) reserve() bool {
	q.mu.Lock()
	in, done, slots := q.inline, q.done, q.slots
	q.mu.Unlock()
	if in == nil {
		return false // never started
	}
	select {
	case <-done:
		return false // stopped
	default:
	}
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false // full
	}
}

// unreserve implements inlineRunner: gives back a slot reserve took.
func (q *riverQueue[TTx]) unreserve() { <-q.slots }

// runReserved implements inlineRunner: runInline on a slot already held.
func (q *riverQueue[TTx]) runReserved(args store.JobArgs, id int64, due time.Time, started *startedRun) {
	q.hand(inlineJob{args: args, id: id, due: due, deadline: q.opts.inlineDeadline(due), started: started})
}

// hand gives a job holding a slot to the inline loop; when the queue
// stopped, the slot is given back and the backup made available at once.
func (q *riverQueue[TTx]) hand(j inlineJob) {
	q.mu.Lock()
	in, done := q.inline, q.done
	q.mu.Unlock()
	select {
	case in <- j:
	case <-done:
		<-q.slots
		q.release(j, "the queue stopped")
	}
}

// inlineLoop starts the inline jobs until ctx ends or Stop.
func (q *riverQueue[TTx]) inlineLoop(ctx context.Context, work func(context.Context, store.JobArgs) error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q.mu.Lock()
	in, done, ended := q.inline, q.done, q.ended
	q.mu.Unlock()
	defer close(ended) // after the last running.Add
	for {
		select {
		case j := <-in:
			q.inflight.Add(1)
			go q.inlineWork(ctx, j, work)
		case <-done:
			return
		}
	}
}

// inlineWork runs one inline job and settles its backup: deleted when the
// job ended its work (unless its last write deleted it already), made
// available when it failed or was stopped.
func (q *riverQueue[TTx]) inlineWork(ctx context.Context, j inlineJob, work func(context.Context, store.JobArgs) error) {
	defer q.inflight.Done()
	defer func() { <-q.slots }()
	if !q.clock().Before(j.deadline) {
		return // too late to start: the backup runs
	}
	b := &backupJob{id: j.id}
	ctx = withBackup(ctx, b)
	if j.started != nil {
		ctx = withStarted(ctx, j.started)
	}
	ctx, cancel := context.WithDeadline(ctx, j.deadline)
	defer cancel()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("job panicked: %v", p)
				q.log.Error("run engine: an inline job panicked", "kind", j.args.Kind(), "job", j.id,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}()
		return work(withJobScheduled(ctx, j.due), j.args)
	}()
	switch {
	case err != nil:
		q.log.Error("job failed", "kind", j.args.Kind(), "job", j.id, "err", err.Error()) // as River's path and memoryQueue
		q.release(j, err.Error())
	case b.isDeleted():
	default:
		q.deleteBackup(j)
	}
}

// release makes an inline job's backup available at once (River's retry):
// this or another process runs it soon.
func (q *riverQueue[TTx]) release(j inlineJob, why string) {
	q.mu.Lock()
	c := q.jobs
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.JobRetry(ctx, j.id); err != nil && !errors.Is(err, river.ErrNotFound) {
		q.log.Error("run engine: an inline job's backup could not be released (it runs after RescueAfter)",
			"kind", j.args.Kind(), "job", j.id, "why", why, "err", err.Error())
	}
}

// deleteBackup deletes the backup of an inline job that ended its work.
func (q *riverQueue[TTx]) deleteBackup(j inlineJob) {
	q.mu.Lock()
	c := q.jobs
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.JobDelete(ctx, j.id)
	if err != nil && !errors.Is(err, river.ErrNotFound) && !errors.Is(err, rivertype.ErrJobRunning) {
		q.log.Error("run engine: an inline job's backup could not be deleted (it runs after RescueAfter, and does nothing)",
			"kind", j.args.Kind(), "job", j.id, "err", err.Error())
	}
}

// Stop implements Queue: running jobs are cancelled (they run again, here
// after a restart or on another replica); inline ones release their
// backups first.
func (q *riverQueue[TTx]) Stop(ctx context.Context) error {
	q.mu.Lock()
	c, done, ended := q.client, q.done, q.ended
	q.client = nil
	q.mu.Unlock()
	if c == nil {
		return nil
	}
	close(done) // the inline loop ends and cancels its jobs
	waited := make(chan struct{})
	go func() { <-ended; q.inflight.Wait(); close(waited) }() // ends when the jobs do, even after a timeout
	budget := cmp.Or(q.stopIn, stopBudget)
	wctx, cancel := context.WithTimeout(ctx, budget)
	select {
	case <-waited:
	case <-wctx.Done():
		q.log.Error("run engine: inline jobs still running when the queue stopped (their backups run after RescueAfter)",
			"waited", budget.String(), "err", wctx.Err().Error())
	}
	cancel()
	sctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := c.StopAndCancel(sctx); err != nil {
		q.log.Error("run engine: River's jobs still running when the queue stopped", "waited", budget.String(), "err", err.Error())
		return fmt.Errorf("river stop: %w", err)
	}
	return nil
}

// stopBudget is how long Stop waits for the inline jobs, then as long for
// River's jobs.
const stopBudget = 10 * time.Second

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
