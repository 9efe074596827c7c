package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/assistants-go/assistants/server/store"
)

// Store is store.Store on a Backend.
type Store struct {
	b     Backend
	runs  *rowCache[store.Run]       // nil: none (Options.RunCacheBytes)
	assts *rowCache[store.Assistant] // with runs
}

var _ store.Store = (*Store)(nil)

// New returns a store on b (already migrated).
func New(b Backend, opts ...func(*Options)) *Store {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	s := &Store{b: b}
	if o.RunCacheBytes > 0 {
		s.runs = newRowCache(o.RunCacheBytes, runMeta)
		s.assts = newRowCache(o.RunCacheBytes, asstMeta)
	}
	return s
}

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

// ListJobs implements store.Store.
func (s *Store) ListJobs(ctx context.Context, kind string) ([]store.JobInfo, error) {
	return s.b.ListJobs(ctx, kind)
}

// CountJobs implements store.Store: one COUNT(*) ... GROUP BY state on
// River's job table.
func (s *Store) CountJobs(ctx context.Context) (map[string]int, error) {
	rows, err := s.b.Reader().Query(ctx, `SELECT state, COUNT(*) FROM river_job
		WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// forUpdate is the suffix that locks selected rows until the transaction
// ends (PostgreSQL; SQLite has one writer at a time).
func (s *Store) forUpdate() string {
	if s.b.Postgres() {
		return " FOR UPDATE"
	}
	return ""
}

// forKeyShare locks a row against FOR UPDATE only (PostgreSQL).
func (s *Store) forKeyShare() string {
	if s.b.Postgres() {
		return " FOR KEY SHARE"
	}
	return ""
}

func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound) }

func conflict(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrConflict) }

func invalid(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), store.ErrInvalid)
}

// noRows maps sql.ErrNoRows to a not-found error.
func noRows(err error, kind, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(kind, id)
	}
	return err
}

// conflictOr maps a unique violation to ErrConflict.
func (s *Store) conflictOr(err error, kind, id string) error {
	if _, ok := s.b.Unique(err); ok {
		return conflict(kind, id)
	}
	return err
}

// nz returns b, or an empty slice for nil (columns are NOT NULL).
func nz(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// activeIn is the SQL list of active run statuses.
var activeIn = "('" + strings.Join(store.ActiveRunStatuses, "','") + "')"

// ---- lists

// listQuery completes a query that selects a list's rows (sel ends with its
// WHERE conditions, the parent's first) with the page's cursor conditions
// on idCol, order and limit. It reports whether the rows come in reverse
// page order. The tables keep an index on (parent, idCol), which answers
// "parent = ? AND id > ? ORDER BY id LIMIT n" by reading n rows.
func listQuery(sel string, args []any, idCol string, lp store.ListParams) (string, []any, bool) {
	var b strings.Builder
	b.WriteString(sel)
	asc := !lp.Desc
	if lp.After != "" {
		if asc {
			b.WriteString(" AND " + idCol + " > ?")
		} else {
			b.WriteString(" AND " + idCol + " < ?")
		}
		args = append(args, lp.After)
	}
	if lp.Before != "" {
		if asc {
			b.WriteString(" AND " + idCol + " < ?")
		} else {
			b.WriteString(" AND " + idCol + " > ?")
		}
		args = append(args, lp.Before)
	}
	reverse := lp.Before != "" && lp.After == ""
	if asc != reverse {
		b.WriteString(" ORDER BY " + idCol + " ASC")
	} else {
		b.WriteString(" ORDER BY " + idCol + " DESC")
	}
	// The limit is written out, not a parameter: PostgreSQL's cached
	// (generic) plan of a LIMIT $n guesses a tenth of the rows and
	// preferred a full scan and sort (29 ms instead of 0.5 for a page of a
	// 100 000-message thread).
	b.WriteString(" LIMIT " + strconv.Itoa(lp.Limit+1))
	return b.String(), args, reverse
}

// list runs a list query and builds the page. parent, when not nil, is
// asked whether the list's parent exists when the page is empty (a
// missing parent is ErrNotFound, an empty list is not).
func list[T any](ctx context.Context, s *Store, sel string, args []any, idCol string, lp store.ListParams,
	scan func(Rows) (T, error), parent func() error) (store.Page[T], error) {
	lp = lp.Normalize()
	query, args, reverse := listQuery(sel, args, idCol, lp)
	rows, err := s.b.Reader().Query(ctx, query, args...)
	if err != nil {
		return store.Page[T]{}, err
	}
	defer rows.Close()
	items := make([]T, 0, min(lp.Limit+1, 128))
	for rows.Next() {
		it, err := scan(rows)
		if err != nil {
			return store.Page[T]{}, err
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return store.Page[T]{}, err
	}
	rows.Close()
	if len(items) == 0 && parent != nil {
		if err := parent(); err != nil {
			return store.Page[T]{}, err
		}
	}
	var p store.Page[T]
	if len(items) > lp.Limit {
		items, p.HasMore = items[:lp.Limit], true
	}
	if reverse {
		for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
			items[i], items[j] = items[j], items[i]
		}
	}
	p.Items = items
	return p, nil
}

// exists returns ErrNotFound unless query (selecting one row) finds it.
func exists(ctx context.Context, q Querier, kind, id, query string, args ...any) error {
	var x int
	return noRows(q.QueryRow(ctx, query, args...).Scan(&x), kind, id)
}

// ---- projects

// CreateProject implements store.Store.
func (s *Store) CreateProject(ctx context.Context, p store.Project) error {
	if p.ID == "" {
		return invalid("empty project id")
	}
	return s.b.Write(ctx, func(tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO projects (id, created_at, data) VALUES (?, ?, ?)`, p.ID, p.CreatedAt, nz(p.Data))
		return s.conflictOr(err, "project", p.ID)
	})
}

func scanProject(r Rows) (store.Project, error) {
	var p store.Project
	err := r.Scan(&p.ID, &p.CreatedAt, &p.Data)
	return p, err
}

// GetProject implements store.Store.
func (s *Store) GetProject(ctx context.Context, id string) (store.Project, error) {
	p := store.Project{ID: id}
	err := s.b.Reader().QueryRow(ctx, `SELECT created_at, data FROM projects WHERE id = ?`, id).Scan(&p.CreatedAt, &p.Data)
	return p, noRows(err, "project", id)
}

// ListProjects implements store.Store.
func (s *Store) ListProjects(ctx context.Context, lp store.ListParams) (store.Page[store.Project], error) {
	return list(ctx, s, `SELECT id, created_at, data FROM projects WHERE 1 = 1`, nil, "id", lp, scanProject, nil)
}

// ---- assistants

const asstCols = `id, project, created_at, data`

func scanAssistant(r Rows) (store.Assistant, error) {
	var a store.Assistant
	err := r.Scan(&a.ID, &a.Project, &a.CreatedAt, &a.Data)
	return a, err
}

// CreateAssistant implements store.Store.
func (s *Store) CreateAssistant(ctx context.Context, a store.Assistant) error {
	return s.createAssistant(ctx, a, nil)
}

// CreateAssistantClaimed implements store.Store.
func (s *Store) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	return s.createAssistant(ctx, a, s.fence(ctx, "assistant", a.ID, c))
}

// createAssistant inserts a, after claim (when not nil) in the same write.
func (s *Store) createAssistant(ctx context.Context, a store.Assistant, claim func(Tx) error) error {
	if a.ID == "" {
		return invalid("empty assistant id")
	}
	a.Project = store.ProjectOr(a.Project)
	return s.b.Write(ctx, func(tx Tx) error {
		return fenced(tx, claim, func() error {
			_, err := tx.Exec(ctx, `INSERT INTO assistants (`+asstCols+`) VALUES (?, ?, ?, ?)`,
				a.ID, a.Project, a.CreatedAt, nz(a.Data))
			if err == nil {
				s.cacheAssistant(tx, a, false)
			}
			return s.conflictOr(err, "assistant", a.ID)
		})
	})
}

// GetAssistant implements store.Store.
func (s *Store) GetAssistant(ctx context.Context, project, id string) (store.Assistant, error) {
	if a, ok := s.cachedAssistant(project, id); ok {
		return a, nil
	}
	var a store.Assistant
	err := s.b.Reader().QueryRow(ctx, `SELECT `+asstCols+` FROM assistants WHERE id = ? AND project = ?`, id, store.ProjectOr(project)).
		Scan(&a.ID, &a.Project, &a.CreatedAt, &a.Data)
	return a, noRows(err, "assistant", id)
}

// UpdateAssistant implements store.Store.
func (s *Store) UpdateAssistant(ctx context.Context, project, id string, fn func(*store.Assistant) error) (store.Assistant, error) {
	var out store.Assistant
	err := s.b.Write(ctx, func(tx Tx) error {
		var old store.Assistant
		err := tx.QueryRow(ctx, `SELECT `+asstCols+` FROM assistants WHERE id = ? AND project = ?`+s.forUpdate(), id, store.ProjectOr(project)).
			Scan(&old.ID, &old.Project, &old.CreatedAt, &old.Data)
		if err != nil {
			return noRows(err, "assistant", id)
		}
		a := old
		if err := fn(&a); err != nil {
			return err
		}
		a.ID, a.Project, a.CreatedAt = old.ID, old.Project, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE assistants SET data = ? WHERE id = ?`, nz(a.Data), id); err != nil {
			return err
		}
		s.cacheAssistant(tx, a, false)
		out = a
		return nil
	})
	return out, err
}

// DeleteAssistant implements store.Store.
func (s *Store) DeleteAssistant(ctx context.Context, project, id string) error {
	return s.b.Write(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM assistants WHERE id = ? AND project = ?`, id, store.ProjectOr(project))
		if err == nil && n == 0 {
			err = notFound("assistant", id)
		}
		if err == nil {
			s.cacheAssistant(tx, store.Assistant{ID: id}, true)
		}
		return err
	})
}

// ListAssistants implements store.Store.
func (s *Store) ListAssistants(ctx context.Context, project string, lp store.ListParams) (store.Page[store.Assistant], error) {
	return list(ctx, s, `SELECT `+asstCols+` FROM assistants WHERE project = ?`, []any{store.ProjectOr(project)}, "id", lp, scanAssistant, nil)
}

// ---- threads and messages

const threadCols = `id, project, created_at, data`
const msgCols = `id, project, thread_id, run_id, created_at, data`

func scanMessage(r Row) (store.Message, error) {
	var m store.Message
	err := r.Scan(&m.ID, &m.Project, &m.ThreadID, &m.RunID, &m.CreatedAt, &m.Data)
	return m, err
}

func (s *Store) insertThread(ctx context.Context, tx Tx, t store.Thread, msgs []store.Message) error {
	if t.ID == "" {
		return invalid("empty thread id")
	}
	project := store.ProjectOr(t.Project)
	b := []Stmt{{Query: `INSERT INTO threads (` + threadCols + `) VALUES (?, ?, ?, ?)`,
		Args:  []any{t.ID, project, t.CreatedAt, nz(t.Data)},
		Check: s.conflictCheck("thread", t.ID)}}
	b, err := s.messageInserts(b, project, t.ID, msgs)
	if err != nil {
		return err
	}
	return tx.Batch(ctx, b)
}

func (s *Store) insertMessages(ctx context.Context, tx Tx, project, threadID string, msgs []store.Message) error {
	b, err := s.messageInserts(nil, project, threadID, msgs)
	if err != nil || len(b) == 0 {
		return err
	}
	return tx.Batch(ctx, b)
}

// messageInserts adds to b the statements that insert msgs into a thread.
func (s *Store) messageInserts(b []Stmt, project, threadID string, msgs []store.Message) ([]Stmt, error) {
	for _, m := range msgs {
		if m.ID == "" {
			return nil, invalid("empty message id")
		}
		b = append(b, Stmt{Query: `INSERT INTO messages (` + msgCols + `) VALUES (?, ?, ?, ?, ?, ?)`,
			Args:  []any{m.ID, project, threadID, m.RunID, m.CreatedAt, nz(m.Data)},
			Check: s.conflictCheck("message", m.ID)})
	}
	return b, nil
}

// conflictCheck is a Stmt.Check that reports a unique violation as kind
// id's conflict (conflictOr).
func (s *Store) conflictCheck(kind, id string) func(int64, error) error {
	return func(_ int64, err error) error {
		if err != nil {
			return s.conflictOr(err, kind, id)
		}
		return nil
	}
}

// CreateThread implements store.Store.
func (s *Store) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	return s.b.Write(ctx, func(tx Tx) error { return s.insertThread(ctx, tx, t, msgs) })
}

// CreateThreadClaimed implements store.Store.
func (s *Store) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	if t.ID == "" {
		return invalid("empty thread id")
	}
	claim := s.fence(ctx, "thread", t.ID, c)
	return s.b.Write(ctx, func(tx Tx) error {
		return fenced(tx, claim, func() error { return s.insertThread(ctx, tx, t, msgs) })
	})
}

// GetThread implements store.Store.
func (s *Store) GetThread(ctx context.Context, project, id string) (store.Thread, error) {
	var t store.Thread
	err := s.b.Reader().QueryRow(ctx, `SELECT `+threadCols+` FROM threads WHERE id = ? AND project = ?`, id, store.ProjectOr(project)).
		Scan(&t.ID, &t.Project, &t.CreatedAt, &t.Data)
	return t, noRows(err, "thread", id)
}

// UpdateThread implements store.Store.
func (s *Store) UpdateThread(ctx context.Context, project, id string, fn func(*store.Thread) error) (store.Thread, error) {
	var out store.Thread
	err := s.b.Write(ctx, func(tx Tx) error {
		var old store.Thread
		err := tx.QueryRow(ctx, `SELECT `+threadCols+` FROM threads WHERE id = ? AND project = ?`+s.forUpdate(), id, store.ProjectOr(project)).
			Scan(&old.ID, &old.Project, &old.CreatedAt, &old.Data)
		if err != nil {
			return noRows(err, "thread", id)
		}
		t := old
		if err := fn(&t); err != nil {
			return err
		}
		t.ID, t.Project, t.CreatedAt = old.ID, old.Project, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE threads SET data = ? WHERE id = ?`, nz(t.Data), id); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, err
}

// DeleteThread implements store.Store.
func (s *Store) DeleteThread(ctx context.Context, project, id string) error {
	return s.b.Write(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM threads WHERE id = ? AND project = ?`, id, store.ProjectOr(project))
		if err == nil && n == 0 {
			err = notFound("thread", id)
		}
		if err == nil {
			s.uncacheThread(tx, id) // its runs went with it (ON DELETE CASCADE)
		}
		return err
	})
}

// lockThread locks a thread row (lock is forUpdate or forKeyShare) and
// returns the id of its active run, if any.
func (s *Store) lockThread(ctx context.Context, tx Tx, project, threadID, lock string) (activeRun string, err error) {
	var x int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM threads WHERE id = ? AND project = ?`+lock, threadID, store.ProjectOr(project)).Scan(&x); err != nil {
		return "", noRows(err, "thread", threadID)
	}
	err = tx.QueryRow(ctx, `SELECT id FROM runs WHERE thread_id = ? AND status IN `+activeIn, threadID).Scan(&activeRun)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return activeRun, err
}

func locked(threadID, runID string) error {
	return fmt.Errorf("thread %q (run %q): %w", threadID, runID, store.ErrThreadLocked)
}

// CreateMessage implements store.Store.
func (s *Store) CreateMessage(ctx context.Context, m store.Message) error {
	return s.createMessage(ctx, m, nil)
}

// CreateMessageClaimed implements store.Store.
func (s *Store) CreateMessageClaimed(ctx context.Context, m store.Message, c store.Claim) error {
	return s.createMessage(ctx, m, s.fence(ctx, "message", m.ID, c))
}

// fence returns the check of a write fenced on c (see store.Claim), about
// the object kind id, to run in the write's transaction before it writes:
// one statement on the claim's record, still pending with body c.Body,
// that locks it until the commit (a request taking the key over waits for
// it, and then sees the object): an UPDATE to c.Named, or without Named a
// SELECT (FOR UPDATE on PostgreSQL; a SQLite write transaction holds the
// database). It fails with ErrClaimLost when no record matches.
func (s *Store) fence(ctx context.Context, kind, id string, c store.Claim) func(Tx) error {
	return func(tx Tx) error {
		var n int64
		var err error
		if c.Named != nil {
			n, err = tx.Exec(ctx, `UPDATE idempotency_keys SET body = ? WHERE idem_key = ? AND state = ? AND body = ?`,
				nz(c.Named), c.Key, store.IdemPending, nz(c.Body))
		} else {
			err = tx.QueryRow(ctx, `SELECT 1 FROM idempotency_keys WHERE idem_key = ? AND state = ? AND body = ?`+s.forUpdate(),
				c.Key, store.IdemPending, nz(c.Body)).Scan(&n)
			if errors.Is(err, sql.ErrNoRows) {
				n, err = 0, nil
			}
		}
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%s %q: %w", kind, id, store.ErrClaimLost)
		}
		return nil
	}
}

// fenced runs claim (when not nil) in tx, then write.
func fenced(tx Tx, claim func(Tx) error, write func() error) error {
	if claim != nil {
		if err := claim(tx); err != nil {
			return err
		}
	}
	return write()
}

// createMessage inserts m, after claim (when not nil) in the same write.
func (s *Store) createMessage(ctx context.Context, m store.Message, claim func(Tx) error) error {
	if m.ID == "" {
		return invalid("empty message id")
	}
	return s.b.Write(ctx, func(tx Tx) error {
		active, err := s.lockThread(ctx, tx, m.Project, m.ThreadID, s.forKeyShare())
		if err != nil {
			return err
		}
		if active != "" && active != m.RunID {
			return locked(m.ThreadID, active)
		}
		return fenced(tx, claim, func() error {
			return s.insertMessages(ctx, tx, store.ProjectOr(m.Project), m.ThreadID, []store.Message{m})
		})
	})
}

// GetMessage implements store.Store.
func (s *Store) GetMessage(ctx context.Context, project, threadID, id string) (store.Message, error) {
	m, err := scanMessage(s.b.Reader().QueryRow(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ? AND thread_id = ? AND project = ?`,
		id, threadID, store.ProjectOr(project)))
	return m, noRows(err, "message", id)
}

// UpdateMessage implements store.Store.
func (s *Store) UpdateMessage(ctx context.Context, project, threadID, id string, fn func(*store.Message) error) (store.Message, error) {
	var out store.Message
	err := s.b.Write(ctx, func(tx Tx) error {
		old, err := scanMessage(tx.QueryRow(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ? AND thread_id = ? AND project = ?`+s.forUpdate(),
			id, threadID, store.ProjectOr(project)))
		if err != nil {
			return noRows(err, "message", id)
		}
		m := old
		if err := fn(&m); err != nil {
			return err
		}
		m.ID, m.Project, m.ThreadID, m.RunID, m.CreatedAt = old.ID, old.Project, old.ThreadID, old.RunID, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE messages SET data = ? WHERE id = ?`, nz(m.Data), id); err != nil {
			return err
		}
		out = m
		return nil
	})
	return out, err
}

// DeleteMessage implements store.Store.
func (s *Store) DeleteMessage(ctx context.Context, project, threadID, id string) error {
	return s.b.Write(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM messages WHERE id = ? AND thread_id = ? AND project = ?`, id, threadID, store.ProjectOr(project))
		if err == nil && n == 0 {
			err = notFound("message", id)
		}
		return err
	})
}

func (s *Store) threadExists(ctx context.Context, project, threadID string) func() error {
	return func() error {
		return exists(ctx, s.b.Reader(), "thread", threadID, `SELECT 1 FROM threads WHERE id = ? AND project = ?`, threadID, store.ProjectOr(project))
	}
}

// messagesSelect is the start of ListMessages' query.
func messagesSelect(project, threadID, runID string) (string, []any) {
	sel := `SELECT ` + msgCols + ` FROM messages WHERE thread_id = ? AND project = ?`
	args := []any{threadID, store.ProjectOr(project)}
	if runID != "" {
		sel += ` AND run_id = ?`
		args = append(args, runID)
	}
	return sel, args
}

// MessagesQuery returns the query (with ? placeholders) and arguments that
// ListMessages runs for a page, for tests of its plan.
func MessagesQuery(project, threadID, runID string, lp store.ListParams) (string, []any) {
	sel, args := messagesSelect(project, threadID, runID)
	q, args, _ := listQuery(sel, args, "id", lp.Normalize())
	return q, args
}

// ListMessages implements store.Store.
func (s *Store) ListMessages(ctx context.Context, project, threadID, runID string, lp store.ListParams) (store.Page[store.Message], error) {
	sel, args := messagesSelect(project, threadID, runID)
	return list(ctx, s, sel, args, "id", lp, func(r Rows) (store.Message, error) { return scanMessage(r) }, s.threadExists(ctx, project, threadID))
}
