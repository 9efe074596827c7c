package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// TestInlineDeadlineBeforeBackup: an inline job's deadline comes at least
// a margin (1 minute, or half of JobTimeout) before its backup is due, so
// that the round has stopped, its last writes included, before its
// backup may run it again; River's own JobTimeout keeps the same margin
// below RescueAfter. The e2e tests' --job-timeout 10s --rescue-after 10s
// keep their 10 s recovery and get a 5 s deadline.
func TestInlineDeadlineBeforeBackup(t *testing.T) {
	due := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in                 RiverOptions
		timeout, rescue, d time.Duration // JobTimeout, RescueAfter, deadline-due
	}{
		{in: RiverOptions{}, timeout: runTTL, rescue: runTTL + time.Minute, d: runTTL},
		{in: RiverOptions{JobTimeout: 10 * time.Second, RescueAfter: 10 * time.Second},
			timeout: 5 * time.Second, rescue: 10 * time.Second, d: 5 * time.Second},
		{in: RiverOptions{JobTimeout: 10 * time.Minute, RescueAfter: 10*time.Minute + 30*time.Second},
			timeout: 9*time.Minute + 30*time.Second, rescue: 10*time.Minute + 30*time.Second, d: 9*time.Minute + 30*time.Second},
		{in: RiverOptions{JobTimeout: 10 * time.Minute, RescueAfter: time.Minute}, // raised to JobTimeout, then the margin
			timeout: 9 * time.Minute, rescue: 10 * time.Minute, d: 9 * time.Minute},
		{in: RiverOptions{JobTimeout: 3 * time.Second, RescueAfter: 20 * time.Second},
			timeout: 3 * time.Second, rescue: 20 * time.Second, d: 3 * time.Second},
	} {
		o := tc.in.withDefaults()
		assert.Equal(t, tc.timeout, o.JobTimeout, "%+v", tc.in)
		assert.Equal(t, tc.rescue, o.RescueAfter, "%+v", tc.in)
		dl := o.inlineDeadline(due)
		assert.Equal(t, due.Add(tc.d), dl, "%+v", tc.in)
		margin := min(time.Minute, o.JobTimeout/2)
		if tc.in.JobTimeout == 0 {
			margin = time.Minute
		}
		assert.LessOrEqual(t, dl, due.Add(o.RescueAfter-margin), "%+v: the deadline is a margin before the backup is due", tc.in)
		assert.Equal(t, o, o.withDefaults(), "withDefaults is idempotent")
	}
}

// TestInlineTooLateToStart: an inline job that reaches a worker after its
// deadline (on the queue's clock) does not start: its backup runs it.
func TestInlineTooLateToStart(t *testing.T) {
	due := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	q := &riverQueue[any]{opts: RiverOptions{JobTimeout: 10 * time.Second, RescueAfter: 10 * time.Second}.withDefaults()}
	j := inlineJob{args: roundArgs{}, id: 1, due: due, deadline: q.opts.inlineDeadline(due)}
	for _, tc := range []struct {
		now  time.Duration // after due
		runs bool
	}{
		{5*time.Second - time.Nanosecond, true},
		{5 * time.Second, false}, // the deadline, 5 s before the backup is due
		{9 * time.Second, false},
	} {
		ran := false
		work := func(ctx context.Context, _ store.JobArgs) error {
			ran = true
			b := backupOf(ctx)
			b.mu.Lock()
			b.deleted = true // as its last write does: no backup to settle
			b.mu.Unlock()
			return nil
		}
		q.now = func() time.Time { return due.Add(tc.now) }
		q.slots = make(chan struct{}, 1)
		q.slots <- struct{}{}
		q.inflight.Add(1)
		q.inlineWork(context.Background(), j, work)
		assert.Equal(t, tc.runs, ran, "at due+%s", tc.now)
		assert.Empty(t, q.slots, "its slot is given back")
	}
}

// TestInlineFailureLogged: an inline job that fails is logged ("job
// failed", with its kind and id) as a job River runs, and one that panics
// is logged with its stack; both release their backups (here a job id the
// table does not have: nothing to release).
func TestInlineFailureLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, logs := sqliteQueue(t, ctx, RiverOptions{})
	assert.Equal(t, 100*time.Millisecond, q.opts.PollInterval, "SQLite's default poll: no NOTIFY wakes its workers")
	require.NoError(t, q.Start(ctx, func(_ context.Context, a store.JobArgs) error {
		if a.(roundArgs).Round == 2 {
			panic("boom")
		}
		return errors.New("model down")
	}))
	defer q.Stop(context.Background())
	q.runInline(roundArgs{RunID: "run_1", Round: 1}, 991, time.Now())
	q.runInline(roundArgs{RunID: "run_1", Round: 2}, 992, time.Now())
	for {
		out := logs()
		if strings.Contains(out, `msg="job failed" kind=`+KindRunRound+` job=991 err="model down"`) &&
			strings.Contains(out, "job=992 panic=boom stack=") && strings.Contains(out, "inlineWork") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("log: %s", out)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// sqliteQueue is the River queue of a new SQLite store, its log kept for
// logs to read.
func sqliteQueue(t *testing.T, ctx context.Context, ro RiverOptions) (*riverQueue[*sql.Tx], func() string) {
	t.Helper()
	st, err := sqlite.OpenDir(ctx, t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var mu sync.Mutex
	var buf bytes.Buffer
	q := defaultQueue(st, ro, slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))).(*riverQueue[*sql.Tx])
	return q, func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestInlinePoolFullReleases: a round that finds the inline pool full
// (Workers) does not wait for a slot: its backup is made available at
// once, for River to run.
func TestInlinePoolFullReleases(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, _ := sqliteQueue(t, ctx, RiverOptions{Workers: 1})
	started, release := make(chan string, 4), make(chan struct{})
	require.NoError(t, q.Start(ctx, func(ctx context.Context, a store.JobArgs) error {
		started <- a.(roundArgs).RunID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	defer func() { close(release); q.Stop(context.Background()) }()
	backup := func(run string) int64 {
		r, err := q.jobs.Insert(ctx, roundArgs{RunID: run}, &river.InsertOpts{ScheduledAt: time.Now().Add(q.opts.RescueAfter)})
		require.NoError(t, err)
		return r.Job.ID
	}
	a, b := backup("run_a"), backup("run_b")
	q.runInline(roundArgs{RunID: "run_a"}, a, time.Now())
	require.Equal(t, "run_a", <-started) // the pool's one slot
	q.runInline(roundArgs{RunID: "run_b"}, b, time.Now())
	for {
		j, err := q.jobs.JobGet(ctx, b)
		require.NoError(t, err)
		if j.State == rivertype.JobStateAvailable || j.State == rivertype.JobStateRunning {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run_b's backup is %s, want available", j.State)
		case <-time.After(5 * time.Millisecond):
		}
	}
	ja, err := q.jobs.JobGet(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, rivertype.JobStateScheduled, ja.State, "the inline job's backup stays scheduled")
}

// TestInlineStopBudget: Stop waits for the inline jobs at most its budget,
// logs that one still runs, and still stops River with a budget of its own.
func TestInlineStopBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, logs := sqliteQueue(t, ctx, RiverOptions{})
	q.stopIn = 50 * time.Millisecond
	started, release := make(chan struct{}), make(chan struct{})
	require.NoError(t, q.Start(ctx, func(context.Context, store.JobArgs) error {
		close(started)
		<-release // a job that does not heed its context
		return nil
	}))
	q.runInline(roundArgs{RunID: "run_a"}, 991, time.Now())
	<-started
	require.NoError(t, q.Stop(ctx), "River stops in its own budget")
	assert.Contains(t, logs(), "inline jobs still running when the queue stopped")
	assert.ErrorIs(t, q.running(), errQueueStopped)
	close(release)
	q.inflight.Wait() // the job ends; Stop's waiting goroutine with it
}
