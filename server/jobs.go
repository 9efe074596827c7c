package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Jobs of the run engine. Their kinds are stable names, written into the
// store's queue: renaming the Go types changes nothing on disk.
const (
	kindRunRound  = "assistants.run_round"
	kindRunCancel = "assistants.run_cancel"
	kindRunExpire = "assistants.run_expire"
)

// runArgs name a run.
type runArgs struct {
	ThreadID string `json:"thread_id"`
	RunID    string `json:"run_id"`
	// Project is the run's project; empty (jobs written before projects)
	// means store.DefaultProject.
	Project string `json:"project,omitempty"`
}

// roundArgs are the args of the round job: one model round of a run. Round
// numbers the round (the run's state says which one is due), so a job of
// an earlier round that runs late does nothing.
type roundArgs struct {
	ThreadID string `json:"thread_id"`
	RunID    string `json:"run_id"`
	Round    int    `json:"round"`
	Project  string `json:"project,omitempty"` // as runArgs.Project
}

// Kind implements store.JobArgs.
func (roundArgs) Kind() string { return kindRunRound }

// cancelArgs are the args of the job that ends a cancelling run.
type cancelArgs runArgs

// Kind implements store.JobArgs.
func (cancelArgs) Kind() string { return kindRunCancel }

// expireArgs are the args of the job, scheduled at a run's expires_at, that
// expires it when it still waits for tool outputs.
type expireArgs runArgs

// Kind implements store.JobArgs.
func (expireArgs) Kind() string { return kindRunExpire }

// jobMaxAttempts bounds the attempts of a run job: a job fails only when
// the store fails, or when its worker stopped (server closing, process
// killed), and then runs again.
const jobMaxAttempts = 25

func (e *engine) roundJob(project, threadID, runID string, round int) store.Job {
	return e.inlineJob(store.Job{Args: roundArgs{ThreadID: threadID, RunID: runID, Round: round, Project: project}, MaxAttempts: jobMaxAttempts})
}

func (e *engine) cancelJob(project, threadID, runID string) store.Job {
	return e.inlineJob(store.Job{Args: cancelArgs{ThreadID: threadID, RunID: runID, Project: project}, MaxAttempts: jobMaxAttempts})
}

// ---- inline jobs with a backup (riverqueue.go) ----

// inlineRunner is a Queue that runs round and cancel jobs inline: the
// store inserts each as a backup, scheduled backupDelay ahead, and once
// the write has committed the engine hands it to runInline, which runs it
// at once in this process (or, when it cannot, makes the backup available
// now).
type inlineRunner interface {
	backupDelay() time.Duration
	runInline(args store.JobArgs, id int64, due time.Time)
	// reserve takes a slot of the inline pool ahead of the write of a
	// job (startnow.go): false when the pool is full or the queue does
	// not run. The slot goes to runReserved, or back with unreserve.
	reserve() bool
	unreserve()
	// runReserved is runInline on a slot reserve took; the job's context
	// carries started when not nil (withStarted).
	runReserved(args store.JobArgs, id int64, due time.Time, started *startedRun)
}

// inlineJob makes j a backup when the queue runs jobs inline: scheduled
// backupDelay ahead, with its id asked for (see startInline).
func (e *engine) inlineJob(j store.Job) store.Job {
	if r, ok := e.s.opts.Queue.(inlineRunner); ok {
		j.ScheduledAt = time.Now().Add(r.backupDelay())
		j.ID = new(int64)
	}
	return j
}

// startInline runs the backup jobs of a committed write inline. The
// round job, when slot holds a slot of the inline pool (reserveStart),
// runs on it, handed started.
func (e *engine) startInline(jobs []store.Job, slot *startSlot, started *startedRun) {
	r, ok := e.s.opts.Queue.(inlineRunner)
	if !ok {
		return
	}
	for _, j := range jobs {
		if j.ID == nil || *j.ID == 0 {
			continue
		}
		due := j.ScheduledAt.Add(-r.backupDelay())
		if _, round := j.Args.(roundArgs); round && slot != nil && slot.r != nil && !slot.done {
			slot.done = true
			r.runReserved(j.Args, *j.ID, due, started)
			continue
		}
		r.runInline(j.Args, *j.ID, due)
	}
}

// backupJob is the backup of the inline job of a context (withBackup).
type backupJob struct {
	id      int64
	mu      sync.Mutex
	deleted bool // by a write of the job (engine.update)
}

func (b *backupJob) isDeleted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleted
}

type backupKey struct{}

// withBackup returns ctx for an inline job whose backup is b.
func withBackup(ctx context.Context, b *backupJob) context.Context {
	return context.WithValue(ctx, backupKey{}, b)
}

// backupOf returns the backup of ctx's inline job, or nil.
func backupOf(ctx context.Context) *backupJob {
	b, _ := ctx.Value(backupKey{}).(*backupJob)
	return b
}

// deletesBackup reports whether a write of a job leaves the run where the
// job's work is done (the run neither queued, in progress nor
// cancelling): that write deletes the job's backup.
func deletesBackup(st gen.RunObjectStatus) bool {
	switch st {
	case gen.RunObjectStatusQueued, gen.RunObjectStatusInProgress, gen.RunObjectStatusCancelling:
		return false
	}
	return true
}

func (e *engine) expireJob(project, threadID, runID string, at int) store.Job {
	return store.Job{Args: expireArgs{ThreadID: threadID, RunID: runID, Project: project}, ScheduledAt: time.Unix(int64(at), 0),
		MaxAttempts: jobMaxAttempts}
}

// work runs one job of the engine. A job is idempotent: it reloads the
// run and does nothing when the run has moved on.
func (e *engine) work(ctx context.Context, args store.JobArgs) error {
	// The job's context carries the run's project: every store call of
	// the job reads it (project.go).
	switch a := args.(type) {
	case roundArgs:
		return e.runRound(withProject(ctx, a.Project), a)
	case cancelArgs:
		return e.runCancel(withProject(ctx, a.Project), runArgs(a))
	case expireArgs:
		return e.runExpire(withProject(ctx, a.Project), runArgs(a))
	}
	return fmt.Errorf("run engine: unknown job kind %q", args.Kind())
}

// Queue runs the jobs that the store's writes enqueue, by calling the
// engine's work for each (at least once: a job whose worker died runs
// again). One Queue serves one Server: Start begins taking jobs, Stop ends
// and waits for the jobs running.
type Queue interface {
	// Start begins running jobs; work is called for each, in a goroutine
	// of the queue's, with a context that ends when Stop is called.
	Start(ctx context.Context, work func(ctx context.Context, args store.JobArgs) error) error
	// Stop stops taking jobs, cancels the running ones and waits for them.
	Stop(ctx context.Context) error
}

// memoryJobs is what the in-process runner needs from a store: the jobs
// its writes enqueued (store/memory has them).
type memoryJobs interface {
	TakeJobs() []store.Job
	Ready() <-chan struct{}
}

// memoryQueue runs the jobs of an in-process store in goroutines of this
// process, each job once, delayed ones on a timer. Nothing survives the
// process (neither does the store).
type memoryQueue struct {
	src memoryJobs
	log func(msg string, args ...any)

	mu      sync.Mutex
	stopped bool
	cancel  context.CancelFunc
	timers  map[*time.Timer]struct{}
	wg      sync.WaitGroup
}

func newMemoryQueue(src memoryJobs, log func(msg string, args ...any)) *memoryQueue {
	return &memoryQueue{src: src, log: log, timers: map[*time.Timer]struct{}{}}
}

// Start implements Queue.
func (q *memoryQueue) Start(ctx context.Context, work func(context.Context, store.JobArgs) error) error {
	ctx, cancel := context.WithCancel(ctx)
	q.mu.Lock()
	q.cancel = cancel
	q.mu.Unlock()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		for {
			for _, j := range q.src.TakeJobs() {
				q.schedule(ctx, j, work)
			}
			select {
			case <-q.src.Ready():
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// schedule runs j now, or on a timer at its ScheduledAt.
func (q *memoryQueue) schedule(ctx context.Context, j store.Job, work func(context.Context, store.JobArgs) error) {
	due := j.ScheduledAt // when it may run: now for a job due at once (metrics.go measures the wait)
	if due.IsZero() {
		due = time.Now()
	}
	run := func() {
		defer q.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				q.log("job panicked", "kind", j.Args.Kind(), "panic", fmt.Sprint(p))
			}
		}()
		if err := work(withJobScheduled(ctx, due), j.Args); err != nil && ctx.Err() == nil {
			q.log("job failed", "kind", j.Args.Kind(), "err", err.Error())
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.wg.Add(1)
	d := time.Until(j.ScheduledAt)
	if j.ScheduledAt.IsZero() || d <= 0 {
		go run()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		_, ok := q.timers[t]
		delete(q.timers, t)
		q.mu.Unlock()
		if ok {
			run()
		}
	})
	q.timers[t] = struct{}{}
}

// Stop implements Queue.
func (q *memoryQueue) Stop(ctx context.Context) error {
	q.mu.Lock()
	q.stopped = true
	if q.cancel != nil {
		q.cancel()
	}
	for t := range q.timers {
		t.Stop()
		delete(q.timers, t) // its function, if it fires, finds it gone
		q.wg.Done()         // the job will not run
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// running implements runningQueue: started and not stopped.
func (q *memoryQueue) running() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cancel == nil || q.stopped {
		return errQueueStopped
	}
	return nil
}
