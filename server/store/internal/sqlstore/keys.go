package sqlstore

import (
	"context"
	"fmt"

	"github.com/assistants-go/assistants/server/store"
)

// ---- API keys (migration 0003)

const keyCols = `id, project, hash, hint, created_at, revoked_at`

func scanKey(r Rows) (store.APIKey, error) { return scanKeyRow(r) }

func scanKeyRow(r Row) (store.APIKey, error) {
	var k store.APIKey
	err := r.Scan(&k.ID, &k.Project, &k.Hash, &k.Hint, &k.CreatedAt, &k.RevokedAt)
	return k, err
}

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || len(k.Hash) == 0 {
		return invalid("an API key needs an id and a hash")
	}
	k.Project = store.ProjectOr(k.Project)
	return s.b.Write(ctx, func(tx Tx) error {
		var x int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM projects WHERE id = ?`, k.Project).Scan(&x); err != nil {
			return noRows(err, "project", k.Project)
		}
		_, err := tx.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			k.ID, k.Project, k.Hash, k.Hint, k.CreatedAt, k.RevokedAt)
		return s.conflictOr(err, "api key", k.ID)
	})
}

// GetAPIKeyByHash implements store.Store.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	k, err := scanKeyRow(s.b.Reader().QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, nz(hash)))
	// The error names no key: the hash is not shown either.
	return k, noRows(err, "api key", "(by hash)")
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context, lp store.ListParams) (store.Page[store.APIKey], error) {
	return list(ctx, s, `SELECT `+keyCols+` FROM api_keys WHERE 1 = 1`, nil, "id", lp, scanKey, nil)
}

// RevokeAPIKey implements store.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at int64) (store.APIKey, error) {
	var out store.APIKey
	err := s.b.Write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, at, id); err != nil {
			return err
		}
		k, err := scanKeyRow(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id = ?`, id))
		out = k
		return noRows(err, "api key", id)
	})
	return out, err
}

// CountActiveRuns implements store.Store.
func (s *Store) CountActiveRuns(ctx context.Context, project string) (int, error) {
	var n int
	err := s.b.Reader().QueryRow(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM runs WHERE project = ? AND status IN %s`, activeIn), store.ProjectOr(project)).Scan(&n)
	return n, err
}
