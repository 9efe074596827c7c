package sqlstore

import (
	"context"
	"fmt"

	"github.com/assistants-go/assistants/server/store"
)

// CheckSchema returns nil when the database answers and its schema is at
// version want (the binary's last migration); otherwise an error saying
// which (store.ErrSchemaMismatch for another version). It reads one row. For readiness checks (GET /readyz).
func (s *Store) CheckSchema(ctx context.Context, want int) error {
	v, err := Version(ctx, s.b.Reader())
	if err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("%w: the database schema is at version %d, this binary needs %d", store.ErrSchemaMismatch, v, want)
	}
	return nil
}
