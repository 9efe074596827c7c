package sqlstore

import (
	"context"

	"github.com/assistants-go/assistants/server/store"
)

// GetRunData returns a run's status and Data (the API object's JSON)
// without the rest of its row (the engine's state, often the larger part):
// what a GET of the run replies with. Errors as GetRun's (store.ErrNotFound
// for an unknown run). The server uses it when its store has it.
func (s *Store) GetRunData(ctx context.Context, project, threadID, id string) (status string, data []byte, err error) {
	if r, ok := s.cachedRun(project, threadID, id, false); ok {
		return r.Status, r.Data, nil
	}
	err = s.b.Reader().QueryRow(ctx, `SELECT status, data FROM runs WHERE id = ? AND thread_id = ? AND project = ?`,
		id, threadID, store.ProjectOr(project)).Scan(&status, &data)
	return status, data, noRows(err, "run", id)
}
