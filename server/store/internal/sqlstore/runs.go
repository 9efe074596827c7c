package sqlstore

import (
	"context"
	"strings"

	"github.com/assistants-go/assistants/server/store"
)

const runCols = `id, project, thread_id, assistant_id, status, created_at, expires_at, last_seq, data, state`

func scanRun(r Row) (store.Run, error) {
	var x store.Run
	err := r.Scan(&x.ID, &x.Project, &x.ThreadID, &x.AssistantID, &x.Status, &x.CreatedAt, &x.ExpiresAt, &x.LastSeq, &x.Data, &x.State)
	return x, err
}

const stepCols = `id, project, run_id, thread_id, created_at, data`

func scanStep(r Row) (store.Step, error) {
	var x store.Step
	err := r.Scan(&x.ID, &x.Project, &x.RunID, &x.ThreadID, &x.CreatedAt, &x.Data)
	return x, err
}

// runInsertError maps a failed run insert: the one-active-run index means
// the thread is locked, the primary key a taken id.
func (s *Store) runInsertError(err error, r store.Run) error {
	if what, ok := s.b.Unique(err); ok {
		if strings.Contains(what, "runs_one_active") || strings.Contains(what, "runs.thread_id") {
			return locked(r.ThreadID, "")
		}
		return s.conflictOr(err, "run", r.ID)
	}
	return err
}

// CreateRun implements store.Store.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	r := nr.Run
	if r.ID == "" {
		return store.Run{}, nil, invalid("empty run id")
	}
	r.Project = store.ProjectOr(r.Project)
	r.LastSeq = int64(len(nr.Events))
	var evs []store.Event
	var claim func(Tx) error
	if nr.Claim != nil {
		claim = s.fence(ctx, "run", r.ID, *nr.Claim)
	}
	err := s.b.Write(ctx, func(tx Tx) error {
		if nr.Thread != nil {
			t := *nr.Thread
			if t.ID != r.ThreadID {
				return invalid("thread id %q differs from the run's %q", t.ID, r.ThreadID)
			}
			t.Project = r.Project
			if err := s.insertThread(ctx, tx, t, nr.Messages); err != nil {
				return err
			}
		} else {
			// The thread's row lock orders this against concurrent
			// message writers (which take a key-share lock).
			active, err := s.lockThread(ctx, tx, r.Project, r.ThreadID, s.forUpdate())
			if err != nil {
				return err
			}
			if active != "" && (store.IsActive(r.Status) || len(nr.Messages) > 0) {
				// A lost claim first, as the memory store answers: the
				// caller's answer is the run of the request that took its
				// key over, likely the active one.
				return fenced(tx, claim, func() error { return locked(r.ThreadID, active) })
			}
			if err := s.insertMessages(ctx, tx, r.Project, r.ThreadID, nr.Messages); err != nil {
				return err
			}
		}
		// Jobs go in before the rest, so that a failure after them (a
		// step id taken, say) shows they leave with the transaction.
		if err := tx.InsertJobs(ctx, nr.Jobs); err != nil {
			return err
		}
		b := []Stmt{{Query: `INSERT INTO runs (` + runCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			Args: []any{r.ID, r.Project, r.ThreadID, r.AssistantID, r.Status, r.CreatedAt, r.ExpiresAt, r.LastSeq, nz(r.Data), nz(r.State)},
			Check: func(_ int64, err error) error {
				if err != nil {
					return s.runInsertError(err, r)
				}
				return nil
			}}}
		b, err := s.putSteps(b, r, nr.Steps)
		if err != nil {
			return err
		}
		b, evs = insertEvents(b, r.ID, 0, nr.Events)
		if err := tx.Batch(ctx, b); err != nil {
			return err
		}
		// The claim last: its row is locked (PostgreSQL) only from here
		// to the commit, not while the writes above wait (on River's
		// table, say), when it would hold up the claimant's own renewals.
		if claim != nil {
			if err := claim(tx); err != nil {
				return err
			}
		}
		s.cacheRun(tx, r)
		return nil
	})
	if err != nil {
		return store.Run{}, nil, err
	}
	return r, evs, nil
}

// putSteps adds the statements that insert steps or replace those with
// the same id (of this run). A step id of another run fails in the
// database itself: the upsert then sets run_id to NULL, which its NOT NULL
// refuses (store.ErrConflict). So the statement needs no look at its row
// count (it does not set Stmt.Refuses), and PostgreSQL sends it with the
// COMMIT: the error aborts the transaction there.
func (s *Store) putSteps(b []Stmt, r store.Run, steps []store.Step) ([]Stmt, error) {
	for _, st := range steps {
		if st.ID == "" {
			return nil, invalid("empty step id")
		}
		id := st.ID
		b = append(b, Stmt{Query: `INSERT INTO run_steps (` + stepCols + `) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET data = excluded.data,
				run_id = CASE WHEN run_steps.run_id = excluded.run_id THEN run_steps.run_id END`,
			Args: []any{st.ID, r.Project, r.ID, r.ThreadID, st.CreatedAt, nz(st.Data)},
			Check: func(_ int64, err error) error {
				if col, ok := s.b.NotNull(err); ok && col == "run_id" {
					return conflict("step", id)
				}
				return err
			}})
	}
	return b, nil
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, project, threadID, id string) (store.Run, error) {
	if r, ok := s.cachedRun(project, threadID, id, true); ok {
		return r, nil
	}
	r, err := scanRun(s.b.Reader().QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ? AND thread_id = ? AND project = ?`,
		id, threadID, store.ProjectOr(project)))
	return r, noRows(err, "run", id)
}

// deleteJob deletes a job of River's that is not running
// (store.RunChange.DeleteJobs), as River's JobDeleteTx does, in the run's
// batch: no round trip of its own.
const deleteJob = `DELETE FROM river_job WHERE id = ? AND state <> 'running'`

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	var out store.Run
	var evs []store.Event
	err := s.b.Write(ctx, func(tx Tx) error {
		old, err := scanRun(tx.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ? AND thread_id = ? AND project = ?`+s.forUpdate(),
			id, threadID, store.ProjectOr(project)))
		if err != nil {
			return noRows(err, "run", id)
		}
		r := old
		ch, err := fn(&r)
		if err != nil {
			return err
		}
		r.ID, r.Project, r.ThreadID, r.CreatedAt = old.ID, old.Project, old.ThreadID, old.CreatedAt
		r.LastSeq = old.LastSeq + int64(len(ch.Events))
		if store.IsActive(r.Status) && !store.IsActive(old.Status) {
			// Taking the thread's lock: order it against message writers.
			active, err := s.lockThread(ctx, tx, r.Project, r.ThreadID, s.forUpdate())
			if err != nil {
				return err
			}
			if active != "" && active != r.ID {
				return locked(r.ThreadID, active)
			}
		}
		// The jobs go in first (their ids read back); the rest in one batch
		// (one round trip on PostgreSQL). A failure in the batch (the
		// one-active-run index, a step id taken) rolls the jobs back with
		// everything else.
		if err := tx.InsertJobs(ctx, ch.Jobs); err != nil {
			return err
		}
		b := []Stmt{{Query: `UPDATE runs SET assistant_id = ?, status = ?, expires_at = ?, last_seq = ?, data = ?, state = ? WHERE id = ?`,
			Args: []any{r.AssistantID, r.Status, r.ExpiresAt, r.LastSeq, nz(r.Data), nz(r.State), r.ID},
			Check: func(_ int64, err error) error {
				if err != nil {
					return s.runInsertError(err, r)
				}
				return nil
			}}}
		for _, m := range ch.Messages {
			if m.ID == "" {
				return invalid("empty message id")
			}
			runID := m.RunID
			if runID == "" {
				runID = r.ID
			}
			b = append(b, Stmt{Query: `INSERT INTO messages (` + msgCols + `) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (thread_id, id) DO UPDATE SET data = excluded.data`,
				Args: []any{m.ID, r.Project, r.ThreadID, runID, m.CreatedAt, nz(m.Data)}})
		}
		if b, err = s.putSteps(b, r, ch.Steps); err != nil {
			return err
		}
		b, evs = insertEvents(b, r.ID, old.LastSeq, ch.Events)
		for _, id := range ch.DeleteJobs {
			b = append(b, Stmt{Query: deleteJob, Args: []any{id}})
		}
		if err := tx.Batch(ctx, b); err != nil {
			return err
		}
		s.cacheRun(tx, r)
		out = r
		return nil
	})
	if err != nil {
		return store.Run{}, nil, err
	}
	return out, evs, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, project, threadID string, lp store.ListParams) (store.Page[store.Run], error) {
	return list(ctx, s, `SELECT `+runCols+` FROM runs WHERE thread_id = ? AND project = ?`, []any{threadID, store.ProjectOr(project)},
		"id", lp, func(r Rows) (store.Run, error) { return scanRun(r) }, s.threadExists(ctx, project, threadID))
}

// ActiveRun implements store.Store.
func (s *Store) ActiveRun(ctx context.Context, project, threadID string) (store.Run, error) {
	r, err := scanRun(s.b.Reader().QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE thread_id = ? AND project = ? AND status IN `+activeIn,
		threadID, store.ProjectOr(project)))
	return r, noRows(err, "active run of thread", threadID)
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, project, runID, id string) (store.Step, error) {
	st, err := scanStep(s.b.Reader().QueryRow(ctx, `SELECT `+stepCols+` FROM run_steps WHERE id = ? AND run_id = ? AND project = ?`,
		id, runID, store.ProjectOr(project)))
	return st, noRows(err, "step", id)
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, project, runID string, lp store.ListParams) (store.Page[store.Step], error) {
	return list(ctx, s, `SELECT `+stepCols+` FROM run_steps WHERE run_id = ? AND project = ?`, []any{runID, store.ProjectOr(project)},
		"id", lp, func(r Rows) (store.Step, error) { return scanStep(r) },
		func() error {
			return exists(ctx, s.b.Reader(), "run", runID, `SELECT 1 FROM runs WHERE id = ? AND project = ?`, runID, store.ProjectOr(project))
		})
}

// ListRunEvents implements store.Store.
func (s *Store) ListRunEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	// limit rows hold at least limit events (eventpack.go).
	rows, err := s.b.Reader().Query(ctx, `SELECT seq, first_seq, type, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`, runID, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Event
	for len(out) < limit && rows.Next() {
		e := store.Event{RunID: runID}
		var first *int64
		if err := rows.Scan(&e.Seq, &first, &e.Type, &e.Data); err != nil {
			return nil, err
		}
		if first == nil {
			out = append(out, e)
			continue
		}
		if out, err = unpackEvents(out, runID, *first, e.Seq, afterSeq, e.Data); err != nil {
			return nil, err
		}
	}
	out = out[:min(len(out), limit)]
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) == 0 {
		if err := exists(ctx, s.b.Reader(), "run", runID, `SELECT 1 FROM runs WHERE id = ?`, runID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
