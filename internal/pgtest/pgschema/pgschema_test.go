package pgschema_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/internal/pgtest/pgschema"
)

// TestFresh: the schema exists and is the connections' search_path until
// drop, which removes it.
func TestFresh(t *testing.T) {
	pgtest.Schema(t) // skips (or fails with CI=true) when PostgreSQL is unreachable
	ctx := t.Context()
	u, drop, err := pgschema.Fresh(ctx, pgtest.BaseURL(), "pgschema_test_")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		drop()
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		drop()
		t.Fatal(err)
	}
	drop()
	if len(schema) <= len("pgschema_test_") || schema[:len("pgschema_test_")] != "pgschema_test_" {
		t.Fatalf("current_schema() = %q", schema)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("schema %s left after drop", schema)
	}
}
