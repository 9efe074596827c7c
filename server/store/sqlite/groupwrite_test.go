package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// testWait bounds the waits for a write to queue; tick is how often they
// look.
const (
	testWait = 10 * time.Second
	tick     = time.Millisecond
)

// holdWriter holds the writer with a write that waits until the returned
// release is called; release then waits for that write to end. It may be
// called more than once.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	b := &backend{s: s}
	holding, released, ended := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		assert.NoError(t, b.Write(t.Context(), func(tx sqlstore.Tx) error {
			close(holding)
			<-released
			return nil
		}))
	}()
	<-holding
	var once sync.Once
	release = func() {
		once.Do(func() { close(released) })
		<-ended
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait in the writer's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.gw.mu.Lock()
		defer s.gw.mu.Unlock()
		return len(s.gw.queue) == n
	}, testWait, tick)
}

// queueBehind holds the writer, starts writes (each write(i) after the
// previous one has queued) and releases the writer: the queued writes run
// as groups. It returns each write's error.
func queueBehind(t *testing.T, s *Store, n int, write func(ctx context.Context, i int) error) []error {
	t.Helper()
	release := holdWriter(t, s)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = write(ctx, i) })
		waitQueued(t, s, i+1) // queued before the next starts (the order is the group's)
	}
	release()
	wg.Wait()
	return errs
}

// TestGroupCommit: writes that queue behind the writer commit together,
// and each keeps its own outcome: a write that fails (after it wrote) and a
// write whose context was cancelled while it waited store nothing, and the
// others all commit.
func TestGroupCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	ctx := t.Context()
	errFail := errors.New("refused")
	const n = 12
	cancelled, cancel := context.WithCancel(ctx)
	w0, c0 := s.WriteStats()
	errs := queueBehind(t, s, n, func(ctx context.Context, i int) error {
		switch i {
		case 7:
			ctx = cancelled
		case 8:
			cancel() // write 7 has queued: it is cancelled while it waits
		}
		return b.Write(ctx, func(tx sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, i); err != nil {
				return err
			}
			switch i {
			case 3:
				return errFail // after its insert: the savepoint undoes it
			case 5:
				// A constraint error, as a duplicate id gives.
				_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, i)
				return err
			}
			return nil
		})
	})
	cancel()
	for i, err := range errs {
		switch i {
		case 3:
			assert.ErrorIs(t, err, errFail)
		case 5:
			_, unique := b.Unique(err)
			assert.True(t, unique, "write 5: %v", err)
		case 7:
			assert.ErrorIs(t, err, context.Canceled)
		default:
			assert.NoError(t, err, "write %d", i)
		}
	}
	assert.Equal(t, []int{0, 1, 2, 4, 6, 8, 9, 10, 11}, storedKeys(t, s))

	w1, c1 := s.WriteStats()
	// The holding write, then the 9 stored ones in fewer commits.
	assert.Equal(t, int64(1+9), w1-w0, "writes")
	assert.Less(t, c1-c0, int64(1+9), "commits: the queued writes were not grouped")
	t.Logf("%d writes in %d commits", w1-w0, c1-c0)
}

// TestGroupCommitBrokenTransaction: when SQLite gives up the whole
// transaction under a write (here: a write that commits it by hand), no
// write of the group reports success for what was not stored.
func TestGroupCommitBrokenTransaction(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	ctx := t.Context()
	errs := queueBehind(t, s, 4, func(ctx context.Context, i int) error {
		return b.Write(ctx, func(tx sqlstore.Tx) error {
			if i == 2 {
				// Ends the transaction under the group, and fails.
				if _, err := tx.Exec(ctx, `ROLLBACK`); err != nil {
					return err
				}
				return fmt.Errorf("write %d gave up", i)
			}
			_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, i)
			return err
		})
	})
	var stored int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM grouped`).Scan(&stored))
	for i, err := range errs {
		if err == nil {
			// What reported success must be there.
			var n int
			require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM grouped WHERE k = ?`, i).Scan(&n))
			assert.Equal(t, 1, n, "write %d reported success", i)
		}
	}
	assert.Error(t, errs[2])
	// The writer works afterwards.
	require.NoError(t, b.Write(ctx, func(tx sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (100)`)
		return err
	}))
}

// grouped creates the table the group tests write to.
func grouped(t *testing.T, s *Store) *backend {
	t.Helper()
	b := &backend{s: s}
	require.NoError(t, b.Write(t.Context(), func(tx sqlstore.Tx) error {
		_, err := tx.Exec(t.Context(), `CREATE TABLE grouped (k INTEGER PRIMARY KEY)`)
		return err
	}))
	return b
}

// storedKeys returns the keys in the grouped table, in order.
func storedKeys(t *testing.T, s *Store) []int {
	t.Helper()
	var got []int
	rows, err := s.r.QueryContext(t.Context(), `SELECT k FROM grouped ORDER BY k`)
	require.NoError(t, err)
	for rows.Next() {
		var k int
		require.NoError(t, rows.Scan(&k))
		got = append(got, k)
	}
	require.NoError(t, rows.Close())
	return got
}

// TestGroupCommitPanic: a write whose function panics, in a group or
// alone, stores nothing, panics again in its own caller (not in the
// leader's), and leaves the writer working: the other writes of its group
// commit and the next write does too.
func TestGroupCommitPanic(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	insert := func(ctx context.Context, k int, panics bool) (panicked any, err error) {
		defer func() { panicked = recover() }()
		err = b.Write(ctx, func(tx sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, k); err != nil {
				return err
			}
			if panics {
				panic(fmt.Sprintf("write %d", k))
			}
			return nil
		})
		return nil, err
	}
	panics := make([]any, 4)
	errs := queueBehind(t, s, 4, func(ctx context.Context, i int) error {
		var err error
		panics[i], err = insert(ctx, i, i == 1)
		return err
	})
	for i := range 4 {
		if i == 1 {
			assert.Equal(t, "write 1", panics[i], "the panic is raised in its own caller")
			continue
		}
		assert.Nil(t, panics[i], "write %d", i)
		assert.NoError(t, errs[i], "write %d", i)
	}

	p, _ := insert(t.Context(), 10, true) // alone
	assert.Equal(t, "write 10", p)

	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	p, err := insert(ctx, 11, false)
	require.Nil(t, p)
	require.NoError(t, err, "the writer works after the panics")
	assert.Equal(t, []int{0, 2, 3, 11}, storedKeys(t, s))
}

// TestGroupCommitAbandoned: a write whose context is done while it waits
// in the queue returns at once, without waiting for the writer, and is
// never run, whether it would have been handed the lead (a) or run in
// another's group (c); the writes queued with it run as usual.
func TestGroupCommitAbandoned(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	ctx := t.Context()
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer release() // first: the writes left queued can end
	// Queued in this order: a (abandoned), b, c (abandoned), d.
	abandon := map[int]context.CancelFunc{}
	errs := make([]chan error, 4)
	for i := range 4 {
		wctx := ctx
		if i%2 == 0 {
			wctx, abandon[i] = context.WithCancel(ctx)
		}
		errs[i] = make(chan error, 1)
		wg.Go(func() {
			errs[i] <- b.Write(wctx, func(tx sqlstore.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, i)
				return err
			})
		})
		waitQueued(t, s, i+1)
	}
	for _, i := range []int{0, 2} {
		abandon[i]()
		select {
		case err := <-errs[i]:
			assert.ErrorIs(t, err, context.Canceled, "write %d", i)
		case <-time.After(testWait):
			t.Fatalf("write %d waited for the writer after its context was cancelled", i)
		}
	}
	release()
	for _, i := range []int{1, 3} {
		assert.NoError(t, <-errs[i], "write %d", i)
	}
	assert.Equal(t, []int{1, 3}, storedKeys(t, s))
}

// recv returns what ch receives, failing the test when nothing comes in
// testWait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("%s: nothing after %v", what, testWait)
		panic("unreachable")
	}
}

// TestGroupCommitCancelStarted: a write whose context is cancelled after
// its group started it runs to its end (its statements, after the cancel
// too, are not interrupted), and its caller gets its outcome, not the
// context's error.
func TestGroupCommitCancelStarted(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	ctx := t.Context()
	release := holdWriter(t, s)
	insert := func(ctx context.Context, tx sqlstore.Tx, k int) error {
		_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (?)`, k)
		return err
	}
	errs := [2]chan error{make(chan error, 1), make(chan error, 1)}
	go func() {
		errs[0] <- b.Write(ctx, func(tx sqlstore.Tx) error { return insert(ctx, tx, 0) })
	}()
	waitQueued(t, s, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entered, cont := make(chan struct{}), make(chan struct{})
	go func() {
		errs[1] <- b.Write(wctx, func(tx sqlstore.Tx) error {
			if err := insert(wctx, tx, 1); err != nil {
				return err
			}
			close(entered)
			<-cont
			return insert(wctx, tx, 2) // after the cancel
		})
	}()
	waitQueued(t, s, 2)
	release() // write 0 leads the group of writes 0 and 1
	recv(t, entered, "write 1 started")
	cancel()
	close(cont)
	assert.NoError(t, recv(t, errs[0], "write 0"))
	assert.NoError(t, recv(t, errs[1], "write 1"), "a started write's caller gets its outcome")
	assert.Equal(t, []int{0, 1, 2}, storedKeys(t, s))
}

// TestGroupCommitGoexit: a grouped write whose function calls
// runtime.Goexit (t.FailNow does) ends the goroutine of the group's leader,
// which runs it; nothing of that group is stored, the write gets an error,
// and the writer goes on.
func TestGroupCommitGoexit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	b := grouped(t, s)
	ctx := t.Context()
	release := holdWriter(t, s)
	leaderEnded := make(chan struct{})
	var returned bool
	go func() {
		defer close(leaderEnded)
		_ = b.Write(ctx, func(tx sqlstore.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (0)`)
			return err
		})
		returned = true
	}()
	waitQueued(t, s, 1)
	errs := make(chan error, 1)
	go func() {
		errs <- b.Write(ctx, func(tx sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (1)`); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	waitQueued(t, s, 2)
	release()
	recv(t, leaderEnded, "the leader's goroutine")
	assert.False(t, returned, "the leader's goroutine ran write 1's function, which ended it")
	assert.Error(t, recv(t, errs, "write 1"))

	wctx, cancel := context.WithTimeout(ctx, testWait)
	defer cancel()
	require.NoError(t, b.Write(wctx, func(tx sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO grouped (k) VALUES (10)`)
		return err
	}), "the writer works after the Goexit")
	assert.Equal(t, []int{10}, storedKeys(t, s))
}

// panickingWrite is a write function that panics, by a name the logged
// stack is looked for by.
func panickingWrite(sqlstore.Tx) error { panic("panickingWrite") }

// TestGroupCommitPanicLogsItsStack: a write function's panic, raised again
// in the write's caller with the caller's stack, is logged first with the
// stack it had, which names the function.
func TestGroupCommitPanicLogsItsStack(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	s := open(t, filepath.Join(t.TempDir(), FileName), func(o *Options) { o.Logger = log })
	p := func() (p any) {
		defer func() { p = recover() }()
		_ = (&backend{s: s}).Write(t.Context(), panickingWrite)
		return nil
	}()
	require.Equal(t, "panickingWrite", p)
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, buf.String(), "a write's function panicked")
	assert.Contains(t, buf.String(), "sqlite.panickingWrite", "the logged stack is the function's")
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
