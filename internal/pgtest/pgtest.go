// Package pgtest gives tests a PostgreSQL schema of their own.
//
// Tests read the database URL from ASSISTANTS_TEST_DATABASE_URL (default
// DefaultURL, the local test database with trust auth). Schema creates a
// fresh schema for a test and drops it when the test ends. When
// PostgreSQL cannot be reached, the test fails if CI=true and is skipped
// otherwise, with one loud line on stderr (once per test binary) saying how
// to enable these tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/assistants-go/assistants/internal/pgtest/pgschema"
)

// EnvURL names the environment variable holding the test database's URL.
const EnvURL = "ASSISTANTS_TEST_DATABASE_URL"

// DefaultURL is the test database used when EnvURL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// StartHint says how to start the local PostgreSQL (Debian's cluster tools).
const StartHint = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

var warnOnce sync.Once

// BaseURL returns the test database's URL: $ASSISTANTS_TEST_DATABASE_URL or
// DefaultURL.
func BaseURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// redacted returns u without its password, for messages.
func redacted(u string) string {
	if p, err := url.Parse(u); err == nil && strings.Contains(u, "://") {
		return p.Redacted()
	}
	return "(the URL in " + EnvURL + ")"
}

// Schema creates a new, empty schema in the test database and returns a
// URL whose connections use it (search_path); the schema and everything in
// it is dropped when t ends. See the package comment for an unreachable
// database.
func Schema(t testing.TB) string {
	t.Helper()
	base := BaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := Unreachable(err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: CI=true and %s", msg)
		}
		warnOnce.Do(func() {
			fmt.Fprintf(os.Stderr, "\n*** pgtest: SKIPPING PostgreSQL tests: %s ***\n\n", msg)
		})
		t.Skip("pgtest: PostgreSQL unreachable; see the line above")
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return pgschema.WithSearchPath(base, schema)
}

// Unreachable says that the test database could not be reached (err) and
// how to enable the tests that need it.
func Unreachable(err error) string {
	return fmt.Sprintf("PostgreSQL at %s is unreachable (%v): set %s to a reachable database, or start the local one: %s",
		redacted(BaseURL()), oneLine(err.Error()), EnvURL, StartHint)
}

// Ping connects to the test database once.
func Ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// oneLine joins the lines of s.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
