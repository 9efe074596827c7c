package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
	"github.com/assistants-go/assistants/server/store/storetest"
)

// TestJobInsertMatchesRiver: the store's own INSERT of its jobs writes the
// rows River's InsertManyTx writes (storetest.JobInsertParity).
func TestJobInsertMatchesRiver(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	storetest.JobInsertParity(t, storetest.SQLJobRows((&backend{s: s}).Write,
		func(ctx context.Context, x sqlstore.Tx, viaRiver bool, jobs []store.Job) error {
			if tx := x.(sqlTx); viaRiver {
				return sqlstore.RiverInsertJobs(ctx, tx.river, tx.tx, jobs)
			}
			return x.InsertJobs(ctx, jobs)
		},
		func(t *testing.T, x sqlstore.Tx, last int64) ([]map[string]string, error) {
			return jobRows(t, x.(sqlTx), last)
		}))
}

// jobRows returns the rows of river_job after id last, each column quoted
// (SQLite's quote(): its type and exact value). River's returning insert
// puts a nonce of its own into metadata (see sqlstore's jobinsert.go):
// metadata is compared without it.
func jobRows(t *testing.T, tx sqlTx, last int64) ([]map[string]string, error) {
	rows, err := tx.tx.QueryContext(t.Context(), `SELECT * FROM river_job LIMIT 0`)
	if err != nil {
		return nil, err
	}
	cols, err := rows.Columns()
	rows.Close()
	if err != nil {
		return nil, err
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = "quote(" + c + ")"
		if c == "metadata" {
			exprs[i] = `quote(jsonb_remove(metadata, '$."river:unique_nonce"'))`
		}
	}
	rows, err = tx.tx.QueryContext(t.Context(), `SELECT `+strings.Join(exprs, ", ")+` FROM river_job WHERE id > ? ORDER BY id`, last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = vals[i]
		}
		row["id"] = strings.Trim(row["id"], "'")
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
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName), quiet)
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
					tx := x.(sqlTx)
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
