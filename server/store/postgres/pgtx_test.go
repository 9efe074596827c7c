package postgres

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store/internal/sqlstore"
)

// TestTxStaleRows: rows of a transaction read after its next statement was
// sent answer errStaleRows, not the next statement's result (the pipeline
// they came from is closed by then).
func TestTxStaleRows(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	ctx := t.Context()
	err := (&backend{s: s}).Write(ctx, func(tx sqlstore.Tx) error {
		r1 := tx.QueryRow(ctx, `SELECT ?::int`, 1)
		r2 := tx.QueryRow(ctx, `SELECT ?::int`, 2)
		var a, b int
		if err := r1.Scan(&a); !errors.Is(err, errStaleRows) {
			t.Errorf("the first row, scanned after the second was sent: %d, %v; want errStaleRows", a, err)
		}
		if err := r2.Scan(&b); err != nil || b != 2 {
			t.Errorf("the second row: %d, %v; want 2", b, err)
		}
		rows, err := tx.Query(ctx, `SELECT generate_series(1, ?::int)`, 3)
		if err != nil {
			return err
		}
		if !rows.Next() {
			t.Fatal("no first row")
		}
		var x int
		if err := tx.QueryRow(ctx, `SELECT ?::int`, 7).Scan(&x); err != nil || x != 7 {
			t.Errorf("a row read while earlier rows are open: %d, %v", x, err)
		}
		if rows.Next() || !errors.Is(rows.Err(), errStaleRows) {
			t.Errorf("rows read on after the next statement: err %v, want errStaleRows", rows.Err())
		}
		rows.Close()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTxFirstErrorSticks: once a statement of a transaction failed, every
// later statement and the commit return that error, and nothing of the
// transaction is stored (no statement runs outside it).
func TestTxFirstErrorSticks(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE sticky (v int)`); err != nil {
		t.Fatal(err)
	}
	var first error
	err := (&backend{s: s}).Write(ctx, func(tx sqlstore.Tx) error {
		_, first = tx.Exec(ctx, `SELECT 1 / ?::int`, 0) // division by zero: BEGIN went with it
		if first == nil {
			t.Fatal("no error")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sticky (v) VALUES (?)`, 1); !errors.Is(err, first) {
			t.Errorf("a statement after the error: %v, want the first error", err)
		}
		if err := tx.Batch(ctx, []sqlstore.Stmt{{Query: `INSERT INTO sticky (v) VALUES (?)`, Args: []any{2}}}); !errors.Is(err, first) {
			t.Errorf("a batch after the error: %v, want the first error", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT ?::int`, 3).Scan(&n); !errors.Is(err, first) || errors.Is(err, sql.ErrNoRows) {
			t.Errorf("a read after the error: %v, want the first error", err)
		}
		return nil // the function goes on as if all went well: the commit must not
	})
	if !errors.Is(err, first) {
		t.Fatalf("Write: %v, want the first error %v", err, first)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sticky`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows stored (%v), want none", n, err)
	}
}
