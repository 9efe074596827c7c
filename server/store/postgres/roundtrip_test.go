package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store"
)

// roundTrips counts the round trips of a pool's connections: a query or
// statement sent alone, or a batch (a pipeline ending in one Sync).
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

type rtJob struct{ RunID string }

func (rtJob) Kind() string { return "storetest_roundtrip" }

// TestWriteRoundTrips: a write sends BEGIN with its first statement and
// COMMIT with its last batch. The writes of a conversation (a thread with
// its message and run, and the round's last write) take 1 and 2 round
// trips, where a transaction sent statement by statement takes 6 and 4:
// neither the ids read back from the job's INSERT nor the step's upsert
// (whose step id of another run fails in the database) keep their
// statements from going with the COMMIT.
func TestWriteRoundTrips(t *testing.T) {
	rt := &roundTrips{}
	s := open(t, pgtest.Schema(t), func(o *Options) {
		o.ConfigurePool = func(c *pgxpool.Config) { c.ConnConfig.Tracer = rt }
	})
	ctx := t.Context()
	n := 0
	conversation := func() (create, final, thread, message int64) {
		n++
		id := func(p string) string { return fmt.Sprintf("%s%d_%d", p, time.Now().UnixNano(), n) }
		count := func(f func() error) int64 {
			t.Helper()
			before := rt.n.Load()
			if err := f(); err != nil {
				t.Fatal(err)
			}
			return rt.n.Load() - before
		}
		th := store.Thread{ID: id("thread_"), CreatedAt: 1, Data: []byte(`{}`)}
		run := store.Run{ID: id("run_"), ThreadID: th.ID, AssistantID: "asst_x", Status: store.RunInProgress,
			CreatedAt: 2, ExpiresAt: 600, Data: []byte(`{}`), State: []byte(`{}`)}
		var job int64
		create = count(func() error {
			_, _, err := s.CreateRun(ctx, store.NewRun{Run: run, Thread: &th,
				Messages: []store.Message{{ID: id("msg_"), CreatedAt: 1, Data: []byte(`{}`)}},
				Events:   []store.Event{{Type: "thread.run.created", Data: []byte(`{}`)}, {Type: "thread.run.in_progress", Data: []byte(`{}`)}},
				Jobs:     []store.Job{{Args: rtJob{RunID: run.ID}, ScheduledAt: time.Now().Add(time.Hour), ID: &job}}})
			return err
		})
		if job == 0 {
			t.Fatal("the job's id was not read back")
		}
		final = count(func() error {
			_, _, err := s.UpdateRun(ctx, "", th.ID, run.ID, func(r *store.Run) (store.RunChange, error) {
				r.Status = "completed"
				return store.RunChange{
					Messages:   []store.Message{{ID: id("msg_"), CreatedAt: 3, Data: []byte(`{}`)}},
					Steps:      []store.Step{{ID: id("step_"), CreatedAt: 3, Data: []byte(`{}`)}},
					Events:     []store.Event{{Type: "thread.message.completed", Data: []byte(`{}`)}, {Type: "thread.run.completed", Data: []byte(`{}`)}},
					DeleteJobs: []int64{job},
				}, nil
			})
			return err
		})
		th2 := store.Thread{ID: id("thread_"), CreatedAt: 1, Data: []byte(`{}`)}
		thread = count(func() error {
			return s.CreateThread(ctx, th2, []store.Message{{ID: id("msg_"), CreatedAt: 1, Data: []byte(`{}`)}})
		})
		message = count(func() error {
			return s.CreateMessage(ctx, store.Message{ID: id("msg_"), ThreadID: th2.ID, CreatedAt: 2, Data: []byte(`{}`)})
		})
		return create, final, thread, message
	}
	conversation() // prepares the statements: a first use takes a round trip more
	create, final, thread, message := conversation()
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"create a thread, its message and a run with its job", create, 1},
		{"a round's last write", final, 2},
		{"create a thread with a message", thread, 1},
		{"create a message", message, 3},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d round trips, want %d", c.name, c.got, c.want)
		}
	}
	jobs, err := s.ListJobs(ctx, rtJob{}.Kind())
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Fatalf("%d jobs left: the round's last write did not delete them", len(jobs))
	}
}
