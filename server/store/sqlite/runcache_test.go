package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// The run cache (sqlstore.Options.RunCacheBytes): GetRun and GetRunData
// answer with the row the store last committed, never with a write that
// was rolled back, in the order of the commits, and forget the runs of a
// deleted thread.

// newCachedRun creates thread_c with run_c (status queued, data "v0").
func newCachedRun(t *testing.T, s *Store) {
	t.Helper()
	_, _, err := s.CreateRun(t.Context(), store.NewRun{
		Thread: &store.Thread{ID: "thread_c", Data: []byte(`{}`)},
		Run:    store.Run{ID: "run_c", ThreadID: "thread_c", AssistantID: "asst_1", Status: "queued", Data: []byte(`"v0"`), State: []byte(`{}`)},
		Steps:  []store.Step{{ID: "step_c", Data: []byte(`{}`)}},
	})
	require.NoError(t, err)
	_, _, err = s.CreateRun(t.Context(), store.NewRun{
		Thread: &store.Thread{ID: "thread_o", Data: []byte(`{}`)},
		Run:    store.Run{ID: "run_o", ThreadID: "thread_o", AssistantID: "asst_1", Status: "queued", Data: []byte(`"other"`), State: []byte(`{}`)},
		Steps:  []store.Step{{ID: "step_o", Data: []byte(`{}`)}},
	})
	require.NoError(t, err)
}

// setData changes run_c's data; with a step of the other run, the write
// fails after its UPDATE ran (store.ErrConflict) and is rolled back.
func setData(ctx context.Context, s *Store, data string, failing bool) error {
	_, _, err := s.UpdateRun(ctx, "", "thread_c", "run_c", func(r *store.Run) (store.RunChange, error) {
		r.Data = []byte(data)
		var ch store.RunChange
		if failing {
			ch.Steps = []store.Step{{ID: "step_o", Data: []byte(`{}`)}}
		}
		return ch, nil
	})
	return err
}

// stored reads run_c's data from the database itself.
func stored(t *testing.T, s *Store) string {
	t.Helper()
	var data []byte
	require.NoError(t, s.r.QueryRowContext(t.Context(), `SELECT data FROM runs WHERE id = 'run_c'`).Scan(&data))
	return string(data)
}

// answered reads run_c's data as the store answers it (GetRun, GetRunData).
func answered(t *testing.T, s *Store) string {
	t.Helper()
	r, err := s.GetRun(t.Context(), "", "thread_c", "run_c")
	require.NoError(t, err)
	_, data, err := s.GetRunData(t.Context(), "", "thread_c", "run_c")
	require.NoError(t, err)
	require.Equal(t, string(r.Data), string(data), "GetRun and GetRunData differ")
	return string(data)
}

// TestRunCacheAnswersReads: a written run is read from the cache, not the
// database (a change made behind the store's back is not seen: the cache
// relies on the store writing every run), and with another thread or
// project the run is not found, as the query answers.
func TestRunCacheAnswersReads(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx := t.Context()
	newCachedRun(t, s)
	require.NoError(t, setData(ctx, s, `"v1"`, false))
	_, err := s.w.ExecContext(ctx, `UPDATE runs SET data = '"behind"' WHERE id = 'run_c'`)
	require.NoError(t, err)
	require.Equal(t, `"v1"`, answered(t, s))
	_, err = s.GetRun(ctx, "", "thread_o", "run_c")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.GetRunData(ctx, "proj_other", "thread_c", "run_c")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Without the cache the change is seen.
	u := open(t, filepath.Join(t.TempDir(), FileName), func(o *Options) { o.RunCacheBytes = -1 })
	newCachedRun(t, u)
	_, err = u.w.ExecContext(ctx, `UPDATE runs SET data = '"behind"' WHERE id = 'run_c'`)
	require.NoError(t, err)
	require.Equal(t, `"behind"`, answered(t, u))
}

// TestRunCacheSkipsRolledBackWrites: a write of a run that fails after its
// statements ran is rolled back, alone or in a group (to its savepoint),
// and so is one whose group's transaction another write ended; the run is
// answered as committed before them. Had the cache been changed by the
// write's function rather than by its commit, the reads would answer the
// last of those.
func TestRunCacheSkipsRolledBackWrites(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx := t.Context()
	newCachedRun(t, s)
	require.NoError(t, setData(ctx, s, `"v1"`, false))

	err := setData(ctx, s, `"alone"`, true)
	require.ErrorIs(t, err, store.ErrConflict)
	require.Equal(t, `"v1"`, stored(t, s))
	require.Equal(t, `"v1"`, answered(t, s))

	errs := queueBehind(t, s, 3, func(ctx context.Context, i int) error {
		return setData(ctx, s, fmt.Sprintf(`"g%d"`, i), i == 2)
	})
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], store.ErrConflict)
	require.Equal(t, `"g1"`, stored(t, s))
	require.Equal(t, `"g1"`, answered(t, s))

	// A write that went through (its savepoint released) in a group
	// whose transaction another write then ended: nothing is stored.
	b := &backend{s: s}
	errs = queueBehind(t, s, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			return setData(ctx, s, `"lost"`, false)
		}
		return b.Write(ctx, func(tx sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, `ROLLBACK`); err != nil {
				return err
			}
			return errors.New("gave up")
		})
	})
	require.Error(t, errs[0])
	require.Error(t, errs[1])
	require.Equal(t, `"g1"`, stored(t, s))
	require.Equal(t, `"g1"`, answered(t, s))
}

// TestRunCacheInCommitOrder: writes of one run grouped in one commit
// leave the cache with the last of them, as the database; the order in
// which their callers wake up does not matter (the group's leader updates
// the cache in the group's order before it wakes them).
func TestRunCacheInCommitOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	newCachedRun(t, s)
	const n = 24
	for round := range 3 {
		errs := queueBehind(t, s, n, func(ctx context.Context, i int) error {
			return setData(ctx, s, fmt.Sprintf(`"r%d-%d"`, round, i), false)
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		want := fmt.Sprintf(`"r%d-%d"`, round, n-1)
		require.Equal(t, want, stored(t, s))
		require.Equal(t, want, answered(t, s))
	}
}

// TestRunCacheForgetsDeletedThreads: the runs of a deleted thread are gone
// (ON DELETE CASCADE), from the cache too.
func TestRunCacheForgetsDeletedThreads(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx := t.Context()
	newCachedRun(t, s)
	require.NoError(t, setData(ctx, s, `"v1"`, false))
	require.Equal(t, `"v1"`, answered(t, s))
	require.NoError(t, s.DeleteThread(ctx, "", "thread_c"))
	_, err := s.GetRun(ctx, "", "thread_c", "run_c")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.GetRunData(ctx, "", "thread_c", "run_c")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetRun(ctx, "", "thread_o", "run_o") // another thread's run stays
	require.NoError(t, err)
}

// TestRunCacheBounded: the cache holds at most RunCacheBytes; the runs it
// let go are read from the database.
func TestRunCacheBounded(t *testing.T) {
	const limit = 64 << 10
	s := open(t, filepath.Join(t.TempDir(), FileName), func(o *Options) { o.RunCacheBytes = limit })
	ctx := t.Context()
	data := `"` + strings.Repeat("x", 1000) + `"`
	for i := range 200 {
		id := fmt.Sprintf("%03d", i)
		_, _, err := s.CreateRun(ctx, store.NewRun{
			Thread: &store.Thread{ID: "thread_" + id, Data: []byte(`{}`)},
			Run:    store.Run{ID: "run_" + id, ThreadID: "thread_" + id, Status: "queued", Data: []byte(data), State: []byte(`{}`)},
		})
		require.NoError(t, err)
		runs, bytes := s.RunCacheStats()
		require.LessOrEqual(t, bytes, limit, "after %d runs", i+1)
		require.Greater(t, runs, 0)
	}
	for i := range 200 {
		id := fmt.Sprintf("%03d", i)
		r, err := s.GetRun(ctx, "", "thread_"+id, "run_"+id)
		require.NoError(t, err)
		require.Equal(t, data, string(r.Data))
	}
	// A run larger than a sixteenth of the bound is not kept.
	big := `"` + strings.Repeat("y", limit/8) + `"`
	_, _, err := s.UpdateRun(ctx, "", "thread_199", "run_199", func(r *store.Run) (store.RunChange, error) {
		r.Data = []byte(big)
		return store.RunChange{}, nil
	})
	require.NoError(t, err)
	r, err := s.GetRun(ctx, "", "thread_199", "run_199")
	require.NoError(t, err)
	require.Equal(t, big, string(r.Data))
	runs, bytes := s.RunCacheStats()
	require.LessOrEqual(t, bytes, limit)
	require.Greater(t, runs, 0)
}

// TestRunCacheHoldsTheFile: a store with the run cache holds the file's
// lock: a second one is refused with ErrInUse (its cache would miss the
// first one's writes) until the first closes; a store without the cache
// (assistants keys) opens the file beside it.
func TestRunCacheHoldsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := t.Context()
	first, err := Open(ctx, path, quiet)
	require.NoError(t, err)
	t.Cleanup(func() { _ = first.Close() })
	_, err = Open(ctx, path, quiet)
	require.ErrorIs(t, err, ErrInUse)
	beside := open(t, path, func(o *Options) { o.RunCacheBytes = -1 })
	newCachedRun(t, beside)
	require.NoError(t, first.Close())
	second := open(t, path)
	_, err = second.GetRun(ctx, "", "thread_c", "run_c")
	require.NoError(t, err)
}

// TestRunCacheNeverBehindTheDatabase: a read of a run through the store
// that starts after the database showed a write answers that write or a
// later one. Between a commit and the end of its write (when the cache is
// updated) other connections already read the new row: the run is
// pending then, and read from the database. Without the pending marks,
// GetRun answered thousands of older rows here.
func TestRunCacheNeverBehindTheDatabase(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx := t.Context()
	newCachedRun(t, s)
	require.NoError(t, setData(ctx, s, `"0"`, false))
	count := func(data []byte) int {
		n, err := strconv.Atoi(strings.Trim(string(data), `"`))
		require.NoError(t, err)
		return n
	}
	var writing sync.WaitGroup
	var done atomic.Bool
	var behind atomic.Int64
	for range 4 {
		writing.Go(func() {
			for range 300 {
				_, _, err := s.UpdateRun(ctx, "", "thread_c", "run_c", func(r *store.Run) (store.RunChange, error) {
					r.Data = []byte(strconv.Quote(strconv.Itoa(count(r.Data) + 1)))
					return store.RunChange{}, nil
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	var reading sync.WaitGroup
	for range 4 {
		reading.Go(func() {
			for !done.Load() {
				var data []byte
				if !assert.NoError(t, s.r.QueryRowContext(ctx, `SELECT data FROM runs WHERE id = 'run_c'`).Scan(&data)) {
					return
				}
				seen := count(data)
				r, err := s.GetRun(ctx, "", "thread_c", "run_c")
				if !assert.NoError(t, err) {
					return
				}
				if count(r.Data) < seen {
					behind.Add(1)
				}
			}
		})
	}
	writing.Wait()
	done.Store(true)
	reading.Wait()
	require.Zero(t, behind.Load(), "GetRun answered a run older than the database had shown")
	require.Equal(t, `"1200"`, answered(t, s))
}

// TestRunCacheClosed: a closed store answers no run from its cache.
func TestRunCacheClosed(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	newCachedRun(t, s)
	require.NoError(t, setData(t.Context(), s, `"v1"`, false))
	require.NoError(t, s.Close())
	_, err := s.GetRun(t.Context(), "", "thread_c", "run_c")
	require.Error(t, err)
	runs, _ := s.RunCacheStats()
	require.Zero(t, runs)
}

// TestAssistantCache: assistants are cached as runs are (the assistant
// each new run reads): a written assistant is answered from the cache
// (a change behind the store's back is not seen), not for another
// project, as committed (a write whose function fails changes nothing),
// and not once deleted.
func TestAssistantCache(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx := t.Context()
	require.NoError(t, s.CreateAssistant(ctx, store.Assistant{ID: "asst_c", Data: []byte(`"a0"`)}))
	_, err := s.UpdateAssistant(ctx, "", "asst_c", func(a *store.Assistant) error { a.Data = []byte(`"a1"`); return nil })
	require.NoError(t, err)
	_, err = s.w.ExecContext(ctx, `UPDATE assistants SET data = '"behind"' WHERE id = 'asst_c'`)
	require.NoError(t, err)
	a, err := s.GetAssistant(ctx, "", "asst_c")
	require.NoError(t, err)
	require.Equal(t, `"a1"`, string(a.Data))
	_, err = s.GetAssistant(ctx, "proj_other", "asst_c")
	require.ErrorIs(t, err, store.ErrNotFound)

	failed := errors.New("no")
	_, err = s.UpdateAssistant(ctx, "", "asst_c", func(a *store.Assistant) error { a.Data = []byte(`"a2"`); return failed })
	require.ErrorIs(t, err, failed)
	a, err = s.GetAssistant(ctx, "", "asst_c")
	require.NoError(t, err)
	require.Equal(t, `"a1"`, string(a.Data))

	require.NoError(t, s.DeleteAssistant(ctx, "", "asst_c"))
	_, err = s.GetAssistant(ctx, "", "asst_c")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestCloseWaitsForWrites: Close releases the file's lock only after the
// writes already running have ended, so that no other store opens the
// file while this one may still commit.
func TestCloseWaitsForWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(t.Context(), path, quiet)
	require.NoError(t, err)
	release := holdWriter(t, s)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitQueued(t, s, 1) // Close waits behind the running write
	_, err = Open(t.Context(), path, quiet)
	require.ErrorIs(t, err, ErrInUse)
	release()
	require.NoError(t, <-closed)
	open(t, path)
}
