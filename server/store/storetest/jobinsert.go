package storetest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// JobRows inserts jobs in a transaction it rolls back, with River's own
// insert (River's InsertManyTx) when viaRiver, else with the store's (the
// transaction's InsertJobs), and returns the rows of River's job table
// that the insert added, in the order of their ids: each column (by name)
// with its value as the database renders it as text, exactly (SQLite's
// quote(), PostgreSQL's to_jsonb).
type JobRows func(t *testing.T, viaRiver bool, jobs []store.Job) []map[string]string

// SQLJobRows returns the JobRows of a SQL store: in a write (write) that
// it rolls back, it reads the last job id, inserts the jobs (insert: with
// River's own insert when viaRiver) and returns the rows after that id
// (rows).
func SQLJobRows(write func(context.Context, func(sqlstore.Tx) error) error,
	insert func(ctx context.Context, tx sqlstore.Tx, viaRiver bool, jobs []store.Job) error,
	rows func(t *testing.T, tx sqlstore.Tx, last int64) ([]map[string]string, error)) JobRows {
	errRollback := errors.New("rolled back")
	return func(t *testing.T, viaRiver bool, jobs []store.Job) []map[string]string {
		var out []map[string]string
		err := write(t.Context(), func(tx sqlstore.Tx) error {
			var last int64
			if err := tx.QueryRow(t.Context(), `SELECT coalesce(max(id), 0) FROM river_job`).Scan(&last); err != nil {
				return err
			}
			if err := insert(t.Context(), tx, viaRiver, jobs); err != nil {
				return err
			}
			var err error
			if out, err = rows(t, tx, last); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		return out
	}
}

// JobInsertBench measures the write of a run's backup job (a transaction
// of that insert alone), with River's insert (sub-benchmark "river") and
// the store's ("store"); write and insert are as for SQLJobRows.
func JobInsertBench(b *testing.B, write func(context.Context, func(sqlstore.Tx) error) error,
	insert func(ctx context.Context, tx sqlstore.Tx, viaRiver bool, jobs []store.Job) error) {
	for _, viaRiver := range []bool{true, false} {
		name := map[bool]string{true: "river", false: "store"}[viaRiver]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var id int64
				jobs := []store.Job{{Args: benchArgs{ThreadID: "thread_abcdefghijklmnopqrstuvwx", RunID: "run_abcdefghijklmnopqrstuvwx"},
					ScheduledAt: time.Now().Add(11 * time.Minute), MaxAttempts: 25, ID: &id}}
				err := write(b.Context(), func(tx sqlstore.Tx) error { return insert(b.Context(), tx, viaRiver, jobs) })
				if err != nil || id == 0 {
					b.Fatal(id, err)
				}
			}
		})
	}
}

// benchArgs are the args of a run's round job.
type benchArgs struct {
	ThreadID string `json:"thread_id"`
	RunID    string `json:"run_id"`
	Round    int    `json:"round"`
}

func (benchArgs) Kind() string { return "bench_round" }

// parityArgs are args with the JSON a job's row is to keep as is.
type parityArgs struct {
	RunID string   `json:"run_id"`
	Text  string   `json:"text,omitempty"`
	N     float64  `json:"n"`
	List  []string `json:"list"`
}

func (parityArgs) Kind() string { return "storetest_parity" }

// JobInsertParity checks that the store writes its jobs into River's table
// as River's insert does: the same jobs inserted both ways (rows) give
// rows that differ in nothing but their ids and the time they were
// written (created_at, and scheduled_at of a job due now: within a few
// seconds, in the same format). A River upgrade that changes its table,
// its defaults or its values fails it. It also checks that the jobs that
// ask for their id get the id of their row. The args of the jobs of a
// case are distinct: they tell which row is whose.
func JobInsertParity(t *testing.T, rows JobRows) {
	later := time.Now().Add(11 * time.Minute)
	past := time.Unix(1_700_000_000, 123_456_789) // not a whole millisecond
	backup := func(run string) store.Job {
		return store.Job{Args: parityArgs{RunID: run}, ScheduledAt: later, MaxAttempts: 25, ID: new(int64)}
	}
	odd := parityArgs{RunID: "run_odd", Text: "<a&b> é \u2028 \"q\" \\ \x01", N: 1.5e300, List: []string{}}
	many := make([]store.Job, 67) // 64 + 2 + 1 rows
	for i := range many {
		many[i] = store.Job{Args: parityArgs{RunID: "run_" + strconv.Itoa(i), N: float64(i)}, ScheduledAt: later.Add(time.Duration(i) * time.Second)}
		if i%3 == 0 {
			many[i].ID = new(int64)
		}
	}
	cases := []struct {
		name string
		jobs []store.Job
	}{
		{"Backup", []store.Job{backup("run_1")}},
		{"Defaults", []store.Job{{Args: parityArgs{RunID: "run_2"}}}},
		{"QueueAndOddArgs", []store.Job{{Args: odd, Queue: "vector_store_files", MaxAttempts: 3}}},
		{"ScheduledInThePast", []store.Job{{Args: parityArgs{RunID: "run_3"}, ScheduledAt: past, MaxAttempts: 25}}},
		{"Mixed", []store.Job{backup("run_4"), {Args: parityArgs{RunID: "run_4", Text: "expiry"}, ScheduledAt: past}, {Args: odd},
			backup("run_5"), {Args: parityArgs{RunID: "run_5", Text: "expiry"}, ScheduledAt: later.Add(time.Microsecond), MaxAttempts: 1 << 20}}},
		{"Many", many},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// River's rows, by job: every job asks River for its id.
			viaRiver := fresh(c.jobs, true)
			wantRows := rows(t, true, viaRiver)
			byID := map[string]map[string]string{}
			for _, r := range wantRows {
				byID[r["id"]] = r
			}
			// The store's, by args (each case's are distinct): some jobs
			// leave to River (a NOTIFY on PostgreSQL), inserted after.
			jobs := fresh(c.jobs, false)
			gotRows := rows(t, false, jobs)
			byArgs := map[string]map[string]string{}
			for _, r := range gotRows {
				byArgs[r["args"]] = r
			}
			if len(gotRows) != len(c.jobs) || len(wantRows) != len(c.jobs) || len(byArgs) != len(c.jobs) {
				t.Fatalf("%d rows (%d args) inserted by the store, %d by River, want %d", len(gotRows), len(byArgs), len(wantRows), len(c.jobs))
			}
			for i, j := range jobs {
				want := byID[strconv.FormatInt(*viaRiver[i].ID, 10)]
				got, ok := byArgs[want["args"]]
				if !ok {
					t.Errorf("job %d: no row of the store's has River's args %s", i, want["args"])
					continue
				}
				if j.ID != nil && strconv.FormatInt(*j.ID, 10) != got["id"] {
					t.Errorf("job %d: id %d, its row's %s", i, *j.ID, got["id"])
				}
				if len(got) != len(want) {
					t.Errorf("job %d: columns %v, River's %v", i, got, want)
				}
				for col, w := range want {
					g, ok := got[col]
					switch {
					case col == "id":
					case !ok:
						t.Errorf("job %d: no column %s", i, col)
					case col == "created_at" || col == "scheduled_at" && j.ScheduledAt.IsZero():
						if !closeTimes(g, w) {
							t.Errorf("job %d: %s = %s, River's %s", i, col, g, w)
						}
					case g != w:
						t.Errorf("job %d: %s = %s, River's %s", i, col, g, w)
					}
				}
			}
		})
	}
}

// fresh returns a copy of jobs with ids of their own: for every job when
// all, else for those that ask for one.
func fresh(jobs []store.Job, all bool) []store.Job {
	out := make([]store.Job, len(jobs))
	for i, j := range jobs {
		if j.ID != nil || all {
			j.ID = new(int64)
		}
		out[i] = j
	}
	return out
}

// closeTimes reports whether the times a and b, rendered by the database
// as text, have the same format and are within a few seconds.
func closeTimes(a, b string) bool {
	for _, layout := range []string{"2006-01-02 15:04:05.000", time.RFC3339Nano} {
		ta, errA := time.Parse(layout, strings.Trim(a, `'"`))
		tb, errB := time.Parse(layout, strings.Trim(b, `'"`))
		if errA == nil && errB == nil {
			return ta.Sub(tb).Abs() < 5*time.Second
		}
	}
	return false
}
