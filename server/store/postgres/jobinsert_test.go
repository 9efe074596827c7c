package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
	"github.com/assistants-go/assistants/server/store/storetest"
)

// TestJobInsertMatchesRiver: the store's own INSERT of its jobs writes the
// rows River's InsertManyTx writes (storetest.JobInsertParity).
func TestJobInsertMatchesRiver(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	storetest.JobInsertParity(t, storetest.SQLJobRows((&backend{s: s}).Write,
		func(ctx context.Context, x sqlstore.Tx, viaRiver bool, jobs []store.Job) error {
			if tx := x.(pgTx); viaRiver {
				return sqlstore.RiverInsertJobs(ctx, tx.river, tx.tx, jobs)
			}
			return x.InsertJobs(ctx, jobs)
		},
		func(t *testing.T, x sqlstore.Tx, last int64) ([]map[string]string, error) {
			return jobRows(t, x.(pgTx), last)
		}))
}

type ingestArgs struct{ FileID string }

func (ingestArgs) Kind() string { return "storetest_ingest" }

// TestAvailableJobWakesRiver: a job available at once (file ingestion's)
// still wakes River's workers with a NOTIFY on its insert topic, as
// River's insert does (the store leaves such jobs to it); the workers do
// not wait for their next poll.
func TestAvailableJobWakesRiver(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	url := pgtest.Schema(t)
	s := open(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `LISTEN "`+schema+`.river_insert"`); err != nil {
		t.Fatal(err)
	}
	err = (&backend{s: s}).Write(ctx, func(tx sqlstore.Tx) error {
		return tx.InsertJobs(ctx, []store.Job{{Args: ingestArgs{FileID: "file_1"}, Queue: "vector_store_files"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification of the insert: %v", err)
	}
	if want := `{"queue": "vector_store_files"}`; n.Payload != want {
		t.Fatalf("notified %q, want %q", n.Payload, want)
	}
}

// jobRows returns the rows of river_job after id last, each column as
// to_jsonb renders it.
func jobRows(t *testing.T, tx pgTx, last int64) ([]map[string]string, error) {
	rows, err := tx.tx.Query(t.Context(), `SELECT to_jsonb(j) FROM river_job j WHERE id > $1 ORDER BY id`, last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var cols map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cols); err != nil {
			return nil, err
		}
		row := map[string]string{}
		for c, v := range cols {
			row[c] = string(v)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

type benchArgs struct {
	ThreadID string `json:"thread_id"`
	RunID    string `json:"run_id"`
	Round    int    `json:"round"`
}

func (benchArgs) Kind() string { return "bench_round" }

// BenchmarkJobInsert measures the write of a run's backup job (a
// transaction of that insert alone), with River's insert and the store's.
func BenchmarkJobInsert(b *testing.B) {
	s, err := Open(b.Context(), pgtest.Schema(b), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, viaRiver := range []bool{true, false} {
		name := map[bool]string{true: "river", false: "store"}[viaRiver]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var id int64
				jobs := []store.Job{{Args: benchArgs{ThreadID: "thread_abcdefghijklmnopqrstuvwx", RunID: "run_abcdefghijklmnopqrstuvwx"},
					ScheduledAt: time.Now().Add(11 * time.Minute), MaxAttempts: 25, ID: &id}}
				err := (&backend{s: s}).Write(b.Context(), func(x sqlstore.Tx) error {
					tx := x.(pgTx)
					if viaRiver {
						return sqlstore.RiverInsertJobs(b.Context(), tx.river, tx.tx, jobs)
					}
					return tx.InsertJobs(b.Context(), jobs)
				})
				if err != nil || id == 0 {
					b.Fatal(id, err)
				}
			}
		})
	}
}
