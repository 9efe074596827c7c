package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
	"github.com/assistants-go/assistants/server/store/storetest"
)

// TestJobInsertMatchesRiver: the store's own INSERT of its jobs writes the
// rows River's InsertManyTx writes (storetest.JobInsertParity).
func TestJobInsertMatchesRiver(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), FileName))
	storetest.JobInsertParity(t, storetest.SQLJobRows((&backend{s: s}).Write, insertJobs,
		func(t *testing.T, x sqlstore.Tx, last int64) ([]map[string]string, error) {
			return jobRows(t, x.(sqlTx), last)
		}))
}

// insertJobs inserts jobs with River's own insert when viaRiver, else with
// the store's.
func insertJobs(ctx context.Context, x sqlstore.Tx, viaRiver bool, jobs []store.Job) error {
	if tx := x.(sqlTx); viaRiver {
		return sqlstore.RiverInsertJobs(ctx, tx.river, tx.tx, jobs)
	}
	return x.InsertJobs(ctx, jobs)
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

// BenchmarkJobInsert measures the write of a run's backup job
// (storetest.JobInsertBench).
func BenchmarkJobInsert(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.JobInsertBench(b, (&backend{s: s}).Write, insertJobs)
}
