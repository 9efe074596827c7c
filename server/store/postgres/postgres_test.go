package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
	"github.com/assistants-go/assistants/server/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet drops River's migration logs.
func quiet(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }

func open(t testing.TB, url string, opts ...func(*Options)) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, append([]func(*Options){quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.Schema(t))
	})
}

// replicas is one store made of two, on one database: the writes that
// race (runs, messages) alternate between them, like requests reaching
// two replicas.
type replicas struct {
	store.Store
	b store.Store
	n atomic.Int64
}

func (r *replicas) pick() store.Store {
	if r.n.Add(1)%2 == 0 {
		return r.b
	}
	return r.Store
}

func (r *replicas) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	return r.pick().CreateRun(ctx, nr)
}

func (r *replicas) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	return r.pick().UpdateRun(ctx, project, threadID, id, fn)
}

func (r *replicas) CreateMessage(ctx context.Context, m store.Message) error {
	return r.pick().CreateMessage(ctx, m)
}

func (r *replicas) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	return r.pick().ClaimIdempotencyKey(ctx, rec, now)
}

func (r *replicas) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	return r.pick().RenewIdempotencyKey(ctx, key, held, until)
}

// TestConformanceTwoReplicas runs the suite with its racing writes spread
// over two stores (two pools) on one database.
func TestConformanceTwoReplicas(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		url := pgtest.Schema(t)
		return &replicas{Store: open(t, url), b: open(t, url)}
	})
}

// TestEventsWrittenBeforePacking: events a binary of schema 5 wrote read
// back after the upgrade to packed rows.
func TestEventsWrittenBeforePacking(t *testing.T) {
	base, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.Schema(t)
	storetest.EventsWrittenBeforePacking(t,
		func(t *testing.T) store.Store {
			return open(t, url, func(o *Options) { o.Migrations = base[:storetest.PackedEventsSchema-1] })
		},
		func(s store.Store, query string, args ...any) error {
			_, err := s.(*Store).pool.Exec(t.Context(), rebind(query), args...)
			return err
		},
		func(t *testing.T) store.Store { return open(t, url) })
}

// TestMigrations: a rerun applies nothing, replicas starting together
// migrate once, a failed migration rolls back whole, and an older binary
// refuses a newer schema.
func TestMigrations(t *testing.T) {
	ctx := t.Context()
	base, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.Schema(t)

	// Replicas starting together.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, url, quiet)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}

	s := open(t, url)
	b := &backend{s: s}
	v, err := sqlstore.Version(ctx, b.Reader())
	if err != nil || v != len(base) {
		t.Fatalf("version %d (%v), want %d", v, err, len(base))
	}
	var rows int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM store_migrations`).Scan(&rows); err != nil || rows != len(base) {
		t.Fatalf("%d migration rows (%v), want %d", rows, err, len(base))
	}
	applied, err := sqlstore.Migrate(ctx, b, base, "")
	if err != nil || len(applied) != 0 {
		t.Fatalf("rerun applied %v (%v), want nothing", applied, err)
	}

	bad := append(slices.Clone(base), sqlstore.Migration{Version: len(base) + 1, Name: "bad",
		SQL: "CREATE TABLE half_done (x INTEGER); SELECT no_such_column FROM half_done;"})
	_, err = Open(ctx, url, quiet, func(o *Options) { o.Migrations = bad })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migration %d (bad)", len(base)+1)) {
		t.Fatalf("bad migration: %v", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'half_done'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed migration left its table (%d, %v)", n, err)
	}

	newer := append(slices.Clone(base), sqlstore.Migration{Version: len(base) + 1, Name: "newer", SQL: "CREATE TABLE newer (x INTEGER);"})
	open(t, url, func(o *Options) { o.Migrations = newer }).Close()
	_, err = Open(ctx, url, quiet)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("older binary on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(base)+1)) || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", len(base))) {
		t.Fatalf("unclear error: %v", err)
	}
}

// TestListReadsAPage: a page of 100 messages of a thread among many reads
// about 100 rows, wherever the cursor is.
func TestListReadsAPage(t *testing.T) {
	ctx := t.Context()
	s := open(t, pgtest.Schema(t))
	// 100 threads and 40 000 messages, interleaved by id; thread_1 has a
	// tenth of them.
	if _, err := s.pool.Exec(ctx, `INSERT INTO threads (id, project, created_at, data)
		SELECT 'thread_' || g::text, 'default', 0, '' FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO messages (id, project, thread_id, run_id, created_at, data)
		SELECT 'msg_' || lpad(g::text, 8, '0'), 'default',
			CASE WHEN g % 10 = 0 THEN 'thread_1' ELSE 'thread_' || (2 + g % 99)::text END, '', 0, ''
		FROM generate_series(1, 40000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE messages`); err != nil {
		t.Fatal(err)
	}
	for _, lp := range []store.ListParams{
		{Limit: 100, Desc: true},
		{Limit: 100},
		{Limit: 100, After: "msg_00020000"},
		{Limit: 100, Desc: true, After: "msg_00020000"},
		{Limit: 100, Before: "msg_00020000"},
	} {
		q, args := sqlstore.MessagesQuery("", "thread_1", "", lp)
		var plan []byte
		if err := s.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+rebind(q), args...).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var nodes []struct{ Plan planNode }
		if err := json.Unmarshal(plan, &nodes); err != nil || len(nodes) != 1 {
			t.Fatalf("plan %s: %v", plan, err)
		}
		read := nodes[0].Plan.rowsRead()
		if read > 110 {
			t.Fatalf("%+v: the plan reads %d rows for a page of 100:\n%s", lp, read, plan)
		}
		t.Logf("%+v: %d rows read", lp, read)
	}
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	NodeType        string     `json:"Node Type"`
	ActualRows      float64    `json:"Actual Rows"`
	ActualLoops     float64    `json:"Actual Loops"`
	RemovedByFilter float64    `json:"Rows Removed by Filter"`
	Plans           []planNode `json:"Plans"`
}

// rowsRead is the most rows any scan of the plan read (returned plus
// filtered out).
func (n planNode) rowsRead() int {
	read := int((n.ActualRows + n.RemovedByFilter) * max(n.ActualLoops, 1))
	for _, c := range n.Plans {
		read = max(read, c.rowsRead())
	}
	return read
}

func BenchmarkListMessages(b *testing.B) {
	s, err := Open(b.Context(), pgtest.Schema(b), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchListMessages(b, s, func() {
		if _, err := s.pool.Exec(b.Context(), "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	})
}

// TestPoolSize: Options.MaxConns, else the URL's pool_max_conns, else
// DefaultMaxConns (not pgxpool's max(4, CPUs), which the LISTEN
// connections halve).
func TestPoolSize(t *testing.T) {
	u := pgtest.Schema(t)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	for _, c := range []struct {
		name string
		url  string
		opt  int32
		want int32
	}{
		{"default", u, 0, DefaultMaxConns},
		{"url", u + sep + "pool_max_conns=7", 0, 7},
		{"option", u + sep + "pool_max_conns=7", 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, c.url, func(o *Options) { o.MaxConns = c.opt })
			if got := s.Pool().Config().MaxConns; got != c.want {
				t.Fatalf("MaxConns = %d, want %d", got, c.want)
			}
		})
	}
}

func TestSetsPoolSize(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h/db":                                 false,
		"postgres://u@h/db?pool_max_conns=5":                true,
		"postgresql://u:pool_max_conns@h/db":                false,
		"postgres://u@h/db?application_name=pool_max_conns": false,
		"host=h user=u pool_max_conns=5":                    true,
		"host=h user=u dbname=pool_max_conns":               false,
	} {
		if got := setsPoolSize(dsn); got != want {
			t.Errorf("setsPoolSize(%q) = %v, want %v", dsn, got, want)
		}
	}
}

// BenchmarkConversation: the store's work in a conversation of the server
// (storetest.BenchConversation).
func BenchmarkConversation(b *testing.B) {
	storetest.BenchConversation(b, open(b, pgtest.Schema(b)))
}
