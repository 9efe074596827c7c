package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int    // 1, 2, 3... with no gap
	Name    string // from the file name, for the version table
	SQL     string // statements run in one transaction; no ? in it
}

// LoadMigrations reads dir of fsys: files named NNNN_name.sql, numbered
// from 1 without a gap.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), "?") {
			return nil, fmt.Errorf("migration %s: contains '?', which the PostgreSQL backend would take for a placeholder", name)
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b)})
	}
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations: want version %d, found %d (%s)", i+1, m.Version, m.Name)
		}
	}
	return out, nil
}

// Migrate brings the database to the last of migrations: each one missing
// runs in its own transaction, which also records it in the table
// store_migrations. lock, when not empty, is a statement run first in each
// of those transactions to keep concurrent migrators (replicas starting
// together) apart. A database whose version is above the last migration
// was migrated by a newer binary: Migrate returns store.ErrSchemaTooNew and
// changes nothing. It returns the versions it applied.
func Migrate(ctx context.Context, b Backend, migrations []Migration, lock string) ([]int, error) {
	inLock := func(fn func(Tx) error) error {
		return b.Write(ctx, func(tx Tx) error {
			if lock != "" {
				if _, err := tx.Exec(ctx, lock); err != nil {
					return fmt.Errorf("migration lock: %w", err)
				}
			}
			return fn(tx)
		})
	}
	err := inLock(func(tx Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS store_migrations (
			version INTEGER PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create store_migrations: %w", err)
	}
	var applied []int
	for {
		var done bool
		err := inLock(func(tx Tx) error {
			v, err := Version(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("%w: the database is at schema version %d, this binary knows versions up to %d; run a newer binary",
					store.ErrSchemaTooNew, v, len(migrations))
			}
			if v == len(migrations) {
				done = true
				return nil
			}
			m := migrations[v]
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO store_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().Unix()); err != nil {
				return fmt.Errorf("record migration %d: %w", m.Version, err)
			}
			applied = append(applied, m.Version)
			return nil
		})
		if err != nil {
			return applied, err
		}
		if done {
			return applied, nil
		}
	}
}

// Version returns the schema version recorded in store_migrations (0 for
// none).
func Version(ctx context.Context, q Querier) (int, error) {
	var v sql.NullInt64
	err := q.QueryRow(ctx, `SELECT MAX(version) FROM store_migrations`).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}
