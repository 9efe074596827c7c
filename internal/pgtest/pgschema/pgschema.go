// Package pgschema makes a throwaway PostgreSQL schema for programs that
// run servers on one (the load generator, chaos --restarts). It does not
// import package testing, so the assistants command may use it; tests use
// package pgtest, which builds on it.
package pgschema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Fresh makes a new schema named prefix plus random hex in the database at
// base (a URL or keyword/value string) and returns a connection string
// whose connections use it, and a function that drops it with everything
// in it.
func Fresh(ctx context.Context, base, prefix string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := prefix + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = conn.Close(ctx)
		}
	}
	return WithSearchPath(base, schema), drop, nil
}

// WithSearchPath adds search_path=schema to a URL or keyword/value
// connection string.
func WithSearchPath(base, schema string) string {
	if strings.Contains(base, "://") {
		if u, err := url.Parse(base); err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return base + " search_path=" + schema
}
