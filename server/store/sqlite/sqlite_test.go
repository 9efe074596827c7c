package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
	"github.com/assistants-go/assistants/server/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet drops River's migration logs.
func quiet(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }

func open(t testing.TB, path string, opts ...func(*Options)) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, append([]func(*Options){quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), FileName))
	})
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateThread(ctx, store.Thread{ID: "thread_1", Data: []byte(`{}`)}, []store.Message{{ID: "msg_1", Data: []byte(`"hi"`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, filepath.Join(dir, FileName))
	m, err := s.GetMessage(ctx, "", "thread_1", "msg_1")
	if err != nil || string(m.Data) != `"hi"` {
		t.Fatalf("after reopen: %+v %v", m, err)
	}
}

// TestMigrations: a first open applies every migration, a rerun applies
// nothing, a failed migration leaves the schema as it was, and an older
// binary refuses a newer schema.
func TestMigrations(t *testing.T) {
	ctx := t.Context()
	base, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	s := open(t, path)
	b := &backend{s: s}
	v, err := sqlstore.Version(ctx, b.Reader())
	if err != nil || v != len(base) {
		t.Fatalf("version %d (%v), want %d", v, err, len(base))
	}
	applied, err := sqlstore.Migrate(ctx, b, base, "")
	if err != nil || len(applied) != 0 {
		t.Fatalf("rerun applied %v (%v), want nothing", applied, err)
	}
	s.Close()

	// A failing migration: rolled back whole, the version stays.
	bad := append(slices.Clone(base), sqlstore.Migration{Version: len(base) + 1, Name: "bad",
		SQL: "CREATE TABLE half_done (x INTEGER); SELECT no_such_column FROM half_done;"})
	_, err = Open(ctx, path, quiet, func(o *Options) { o.Migrations = bad })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migration %d (bad)", len(base)+1)) {
		t.Fatalf("bad migration: %v", err)
	}
	s = open(t, path)
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed migration left its table (%d, %v)", n, err)
	}
	s.Close()

	// A newer binary adds a migration; this one then refuses the file.
	newer := append(slices.Clone(base), sqlstore.Migration{Version: len(base) + 1, Name: "newer", SQL: "CREATE TABLE newer (x INTEGER);"})
	s2 := open(t, path, func(o *Options) { o.Migrations = newer })
	s2.Close()
	_, err = Open(ctx, path, quiet)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("older binary on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(base)+1)) || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", len(base))) {
		t.Fatalf("unclear error: %v", err)
	}
	t.Log(err)
}

// TestEventsWrittenBeforePacking: events a binary of schema 5 wrote read
// back after the upgrade to packed rows.
func TestEventsWrittenBeforePacking(t *testing.T) {
	base, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	storetest.EventsWrittenBeforePacking(t,
		func(t *testing.T) store.Store {
			return open(t, path, func(o *Options) { o.Migrations = base[:storetest.PackedEventsSchema-1] })
		},
		func(s store.Store, query string, args ...any) error {
			_, err := s.(*Store).w.ExecContext(t.Context(), query, args...)
			return err
		},
		func(t *testing.T) store.Store { return open(t, path) })
}

func TestOpenBadPath(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", FileName))
	if err == nil {
		t.Fatal("opened a file in a missing directory")
	}
}

// TestListUsesIndex: a page of messages is read from the (thread_id, id)
// index in order, with no sort of the thread's messages.
func TestListUsesIndex(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	for _, lp := range []store.ListParams{
		{Limit: 100, Desc: true},
		{Limit: 100},
		{Limit: 100, After: "msg_00020000"},
		{Limit: 100, Desc: true, After: "msg_00020000"},
		{Limit: 100, Before: "msg_00020000"},
		{Limit: 100, After: "msg_1", Before: "msg_2"},
	} {
		q, args := sqlstore.MessagesQuery("", "thread_1", "", lp)
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		want := "USING INDEX sqlite_autoindex_messages_1 (thread_id=?"
		if lp.After != "" || lp.Before != "" {
			want += " AND id" // the cursor is a range of the index
		}
		if !strings.Contains(p, want) || strings.Contains(p, "TEMP B-TREE") {
			t.Fatalf("%+v: plan %q", lp, p)
		}
		t.Logf("%+v: %s", lp, p)
	}
}

func BenchmarkListMessages(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchListMessages(b, s, nil)
}

// TestCheckMigrationsMismatch: a schema at another version than the
// binary's is reported as store.ErrSchemaMismatch (GET /readyz shows it).
func TestCheckMigrationsMismatch(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db.sqlite"))
	if err := s.CheckMigrations(t.Context()); err != nil {
		t.Fatalf("fresh store: %v", err)
	}
	if _, err := s.DB().ExecContext(t.Context(), `INSERT INTO store_migrations (version, name, applied_at) VALUES (9999, 'test', 0)`); err != nil {
		t.Fatal(err)
	}
	err := s.CheckMigrations(t.Context())
	if !errors.Is(err, store.ErrSchemaMismatch) || !strings.Contains(err.Error(), "at version 9999") {
		t.Fatalf("CheckMigrations = %v, want ErrSchemaMismatch at version 9999", err)
	}
}

// TestGetRunData: a run's status and data read alone are those of its
// whole row; an unknown run (or one of another thread or project) is not
// found.
func TestGetRunData(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	if err := s.CreateThread(ctx, store.Thread{ID: "thread_1", Data: []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	r := store.Run{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1", Status: "queued", CreatedAt: 1,
		Data: []byte(`{"id":"run_1","status":"queued"}`), State: []byte(`{"round":0}`)}
	if _, _, err := s.CreateRun(ctx, store.NewRun{Run: r}); err != nil {
		t.Fatal(err)
	}
	full, err := s.GetRun(ctx, "", "thread_1", "run_1")
	if err != nil {
		t.Fatal(err)
	}
	status, data, err := s.GetRunData(ctx, "", "thread_1", "run_1")
	if err != nil || status != full.Status || string(data) != string(full.Data) {
		t.Fatalf("GetRunData = %q %s %v, GetRun = %q %s", status, data, err, full.Status, full.Data)
	}
	for _, c := range []struct{ project, thread, run string }{{"", "thread_1", "run_2"}, {"", "thread_2", "run_1"}, {"other", "thread_1", "run_1"}} {
		if _, _, err := s.GetRunData(ctx, c.project, c.thread, c.run); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRunData(%v) = %v, want ErrNotFound", c, err)
		}
	}
}

// failingCommit is the SQLite backend whose transactions are rolled back
// and fail where they would commit (the database lost the commit).
type failingCommit struct{ *backend }

var errCommitLost = errors.New("test: the commit failed")

func (b failingCommit) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	err := b.backend.Write(ctx, func(tx sqlstore.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errCommitLost // rolls back, as a failed commit
	})
	return err
}

// TestIdempotencyCASFailsWithItsCommit: a renewal, answer or drop of an
// Idempotency-Key claim whose statement changed the row but whose
// transaction did not commit reports false with its error (the write did
// not land), never true.
func TestIdempotencyCASFailsWithItsCommit(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	now := time.Unix(1_800_000_000, 0)
	held := now.Add(10 * time.Second)
	if _, claimed, err := s.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: "k", ExpiresAt: held}, now); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	lossy := sqlstore.New(failingCommit{&backend{s: s}})
	ok, err := lossy.RenewIdempotencyKey(ctx, "k", held, held.Add(time.Second))
	if ok || !errors.Is(err, errCommitLost) {
		t.Errorf("renewal: %v %v, want false and the commit's error", ok, err)
	}
	ok, err = lossy.CompleteIdempotencyKey(ctx, store.IdempotencyRecord{Key: "k", State: store.IdemDone, ExpiresAt: now.Add(time.Hour)}, held)
	if ok || !errors.Is(err, errCommitLost) {
		t.Errorf("answer: %v %v, want false and the commit's error", ok, err)
	}
	ok, err = lossy.DeleteIdempotencyKey(ctx, "k", held)
	if ok || !errors.Is(err, errCommitLost) {
		t.Errorf("drop: %v %v, want false and the commit's error", ok, err)
	}
	// Nothing landed: the claim is as it was.
	if ok, err := s.RenewIdempotencyKey(ctx, "k", held, held.Add(time.Second)); err != nil || !ok {
		t.Fatalf("the claim changed: %v %v", ok, err)
	}
}

// TestCheckpointsOffTheWriter: the writing connection leaves checkpoints
// to the checkpointer (its own past writerCkptPages pages only), and the
// writer's commits ask the checkpointer for them: every ckptEvery commits,
// a PASSIVE checkpoint runs on the checkpointer's connection.
func TestCheckpointsOffTheWriter(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var pages int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != writerCkptPages {
		t.Fatalf("the writing connection checkpoints every %d pages, want %d", pages, writerCkptPages)
	}
	select {
	case <-s.ckpt.ran: // the migrations' commits may have asked for one
	default:
	}
	for i := range ckptEvery {
		if err := s.CreateThread(ctx, store.Thread{ID: fmt.Sprintf("thread_%d", i), Data: []byte(`{}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.ckpt.ran:
	case <-ctx.Done():
		t.Fatalf("no checkpoint ran after %d commits", ckptEvery)
	}
}

// TestWALStaysBounded: under steady writes, which PASSIVE checkpoints
// alone never catch up with, the writer empties the WAL once its file is
// past its limit (walRestartBytes; 4 MiB here), and the file stays within
// that and ckptEvery writes more. Without the writer's TRUNCATE the WAL
// grows with everything written (here about three times the limit) and the
// test fails.
func TestWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := open(t, path)
	const limit = 4 << 20
	s.ckpt.walLimit.Store(limit)
	ctx := t.Context()
	const pageSize = 4096
	data := []byte(`"` + strings.Repeat("x", 8*pageSize) + `"`) // 9 pages a write, and their index's
	largest := int64(0)
	for i := range 3 * limit / len(data) {
		if err := s.CreateThread(ctx, store.Thread{ID: fmt.Sprintf("thread_%05d", i), Data: data}, nil); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	if s.ckpt.truncated.Load() == 0 {
		t.Fatalf("the WAL was never emptied (largest %d pages)", largest/pageSize)
	}
	if bound := int64(limit + ckptEvery*12*pageSize); largest > bound {
		t.Fatalf("the WAL reached %d pages, more than %d", largest/pageSize, bound/pageSize)
	}
}

// BenchmarkConversation: the store's work in a conversation of the server
// (storetest.BenchConversation).
func BenchmarkConversation(b *testing.B) {
	storetest.BenchConversation(b, open(b, filepath.Join(b.TempDir(), FileName)))
}
