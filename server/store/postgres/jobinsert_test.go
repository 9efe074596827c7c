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
	storetest.JobInsertParity(t, storetest.SQLJobRows((&backend{s: s}).Write, insertJobs,
		func(t *testing.T, x sqlstore.Tx, last int64) ([]map[string]string, error) {
			return jobRows(t, x.(*pgTx), last)
		}))
}

// insertJobs inserts jobs with River's own insert when viaRiver, else with
// the store's.
func insertJobs(ctx context.Context, x sqlstore.Tx, viaRiver bool, jobs []store.Job) error {
	if tx := x.(*pgTx); viaRiver {
		if err := tx.flush(ctx); err != nil {
			return err
		}
		return sqlstore.RiverInsertJobs[pgx.Tx](ctx, tx.river, riverTx{tx.conn}, jobs)
	}
	return x.InsertJobs(ctx, jobs)
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
func jobRows(t *testing.T, tx *pgTx, last int64) ([]map[string]string, error) {
	rows, err := tx.Query(t.Context(), `SELECT to_jsonb(j) FROM river_job j WHERE id > $1 ORDER BY id`, last)
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

// BenchmarkJobInsert measures the write of a run's backup job
// (storetest.JobInsertBench).
func BenchmarkJobInsert(b *testing.B) {
	s, err := Open(b.Context(), pgtest.Schema(b), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.JobInsertBench(b, (&backend{s: s}).Write, insertJobs)
}
