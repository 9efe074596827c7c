// Package memory is a store.Store that keeps everything in process memory,
// behind one lock: for tests, assistantstest and make demo. Nothing
// survives the process.
//
// Jobs that committed writes enqueue wait in an in-process queue: TakeJobs
// hands them out and Ready signals new ones. Nothing runs them by itself.
package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// fileChunk is the size of the pieces a file's bytes are kept in.
const fileChunk = 64 << 10

// Store is the in-memory store. Create one with New; the zero value is not
// usable.
type Store struct {
	mu     sync.RWMutex
	closed bool

	projects   map[string]store.Project
	projectIDs ids

	assistants map[string]store.Assistant
	asstIDs    map[string]*ids // by project

	threads   map[string]*thread
	messages  map[string]store.Message
	runs      map[string]*run
	steps     map[string]store.Step
	files     map[string]*file
	fileIDs   map[string]*ids // by project
	vstores   map[string]*vstore
	vstoreIDs map[string]*ids // by project
	idem      map[string]store.IdempotencyRecord
	keys      keyTable // API keys (keys.go)

	jobs   []queued
	jobSeq int64 // the last job id given
	ready  chan struct{}
}

type thread struct {
	t         store.Thread
	msgs      ids
	runs      ids
	activeRun string
}

type run struct {
	r      store.Run
	steps  ids
	events []store.Event
}

type file struct {
	f      store.File
	chunks [][]byte
}

type vstore struct {
	v       store.VectorStore
	fileIDs ids
	files   map[string]store.VectorStoreFile
	chunks  map[string][]store.Chunk // by file id
	batches map[string]store.FileBatch
}

type queued struct {
	job  store.Job
	info store.JobInfo
	id   int64 // numbered from 1 by enqueueLocked
}

var _ store.Store = (*Store)(nil)

// New returns an empty store holding DefaultProject.
func New() *Store {
	s := &Store{
		projects:   map[string]store.Project{},
		assistants: map[string]store.Assistant{},
		asstIDs:    map[string]*ids{},
		threads:    map[string]*thread{},
		messages:   map[string]store.Message{},
		runs:       map[string]*run{},
		steps:      map[string]store.Step{},
		files:      map[string]*file{},
		fileIDs:    map[string]*ids{},
		vstores:    map[string]*vstore{},
		vstoreIDs:  map[string]*ids{},
		idem:       map[string]store.IdempotencyRecord{},
		ready:      make(chan struct{}, 1),
	}
	s.projects[store.DefaultProject] = store.Project{ID: store.DefaultProject}
	s.projectIDs.add(store.DefaultProject)
	return s
}

// TakeJobs removes and returns the jobs enqueued so far, oldest first.
func (s *Store) TakeJobs() []store.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Job, len(s.jobs))
	for i, q := range s.jobs {
		out[i] = q.job
	}
	s.jobs = nil
	return out
}

// Ready receives a value after a write enqueued jobs (a wake-up: it may
// come once for several writes).
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Close marks the store closed; later calls fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// lock takes the write lock; it fails once the store is closed.
func (s *Store) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

func (s *Store) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound) }
func conflict(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrConflict) }
func invalid(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), store.ErrInvalid)
}

func idx(m map[string]*ids, k string) *ids {
	p := m[k]
	if p == nil {
		p = &ids{}
		m[k] = p
	}
	return p
}

// ---- projects

// CreateProject implements store.Store.
func (s *Store) CreateProject(ctx context.Context, p store.Project) error {
	if p.ID == "" {
		return invalid("empty project id")
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.projects[p.ID]; ok {
		return conflict("project", p.ID)
	}
	p.Data = bytes.Clone(p.Data)
	s.projects[p.ID] = p
	s.projectIDs.add(p.ID)
	return nil
}

// GetProject implements store.Store.
func (s *Store) GetProject(ctx context.Context, id string) (store.Project, error) {
	if err := s.rlock(); err != nil {
		return store.Project{}, err
	}
	defer s.mu.RUnlock()
	p, ok := s.projects[id]
	if !ok {
		return store.Project{}, notFound("project", id)
	}
	p.Data = bytes.Clone(p.Data)
	return p, nil
}

// ListProjects implements store.Store.
func (s *Store) ListProjects(ctx context.Context, lp store.ListParams) (store.Page[store.Project], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.Project]{}, err
	}
	defer s.mu.RUnlock()
	page, more := s.projectIDs.page(lp, nil)
	out := make([]store.Project, len(page))
	for i, id := range page {
		p := s.projects[id]
		p.Data = bytes.Clone(p.Data)
		out[i] = p
	}
	return store.Page[store.Project]{Items: out, HasMore: more}, nil
}

// ---- assistants

// CreateAssistant implements store.Store.
func (s *Store) CreateAssistant(ctx context.Context, a store.Assistant) error {
	return s.createAssistant(a, nil)
}

// CreateAssistantClaimed implements store.Store.
func (s *Store) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	return s.createAssistant(a, s.fence("assistant", a.ID, c))
}

// createAssistant adds a, after claim (when not nil) under the same hold of
// the lock.
func (s *Store) createAssistant(a store.Assistant, claim func() error) error {
	if a.ID == "" {
		return invalid("empty assistant id")
	}
	a.Project = store.ProjectOr(a.Project)
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.assistants[a.ID]; ok {
		return conflict("assistant", a.ID)
	}
	if claim != nil {
		if err := claim(); err != nil {
			return err
		}
	}
	a.Data = bytes.Clone(a.Data)
	s.assistants[a.ID] = a
	idx(s.asstIDs, a.Project).add(a.ID)
	return nil
}

// GetAssistant implements store.Store.
func (s *Store) GetAssistant(ctx context.Context, project, id string) (store.Assistant, error) {
	if err := s.rlock(); err != nil {
		return store.Assistant{}, err
	}
	defer s.mu.RUnlock()
	a, ok := s.assistants[id]
	if !ok || a.Project != store.ProjectOr(project) {
		return store.Assistant{}, notFound("assistant", id)
	}
	a.Data = bytes.Clone(a.Data)
	return a, nil
}

// UpdateAssistant implements store.Store.
func (s *Store) UpdateAssistant(ctx context.Context, project, id string, fn func(*store.Assistant) error) (store.Assistant, error) {
	if err := s.lock(); err != nil {
		return store.Assistant{}, err
	}
	defer s.mu.Unlock()
	old, ok := s.assistants[id]
	if !ok || old.Project != store.ProjectOr(project) {
		return store.Assistant{}, notFound("assistant", id)
	}
	a := old
	a.Data = bytes.Clone(a.Data)
	if err := fn(&a); err != nil {
		return store.Assistant{}, err
	}
	a.ID, a.Project, a.CreatedAt = old.ID, old.Project, old.CreatedAt
	a.Data = bytes.Clone(a.Data)
	s.assistants[id] = a
	a.Data = bytes.Clone(a.Data)
	return a, nil
}

// DeleteAssistant implements store.Store.
func (s *Store) DeleteAssistant(ctx context.Context, project, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a, ok := s.assistants[id]
	if !ok || a.Project != store.ProjectOr(project) {
		return notFound("assistant", id)
	}
	delete(s.assistants, id)
	idx(s.asstIDs, a.Project).remove(id)
	return nil
}

// ListAssistants implements store.Store.
func (s *Store) ListAssistants(ctx context.Context, project string, lp store.ListParams) (store.Page[store.Assistant], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.Assistant]{}, err
	}
	defer s.mu.RUnlock()
	var page []string
	var more bool
	if x := s.asstIDs[store.ProjectOr(project)]; x != nil {
		page, more = x.page(lp, nil)
	}
	out := make([]store.Assistant, len(page))
	for i, id := range page {
		a := s.assistants[id]
		a.Data = bytes.Clone(a.Data)
		out[i] = a
	}
	return store.Page[store.Assistant]{Items: out, HasMore: more}, nil
}

// ---- threads and messages

// CreateThread implements store.Store.
func (s *Store) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	return s.createThread(t, msgs, nil)
}

// CreateThreadClaimed implements store.Store.
func (s *Store) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	return s.createThread(t, msgs, s.fence("thread", t.ID, c))
}

// createThread adds t and msgs, after claim (when not nil) under the same
// hold of the lock.
func (s *Store) createThread(t store.Thread, msgs []store.Message, claim func() error) error {
	if t.ID == "" {
		return invalid("empty thread id")
	}
	t.Project = store.ProjectOr(t.Project)
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.checkNewThreadLocked(t, msgs); err != nil {
		return err
	}
	if claim != nil {
		if err := claim(); err != nil {
			return err
		}
	}
	s.addThreadLocked(t, msgs)
	return nil
}

func (s *Store) checkNewThreadLocked(t store.Thread, msgs []store.Message) error {
	if _, ok := s.threads[t.ID]; ok {
		return conflict("thread", t.ID)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.ID == "" {
			return invalid("empty message id")
		}
		if _, ok := s.messages[m.ID]; ok || seen[m.ID] {
			return conflict("message", m.ID)
		}
		seen[m.ID] = true
	}
	return nil
}

func (s *Store) addThreadLocked(t store.Thread, msgs []store.Message) {
	t.Data = bytes.Clone(t.Data)
	th := &thread{t: t}
	s.threads[t.ID] = th
	for _, m := range msgs {
		m.ThreadID, m.Project = t.ID, t.Project
		s.putMessageLocked(th, m)
	}
}

func (s *Store) putMessageLocked(th *thread, m store.Message) {
	m.Data = bytes.Clone(m.Data)
	s.messages[m.ID] = m
	th.msgs.add(m.ID)
}

func (s *Store) threadLocked(project, id string) (*thread, error) {
	th := s.threads[id]
	if th == nil || th.t.Project != store.ProjectOr(project) {
		return nil, notFound("thread", id)
	}
	return th, nil
}

// GetThread implements store.Store.
func (s *Store) GetThread(ctx context.Context, project, id string) (store.Thread, error) {
	if err := s.rlock(); err != nil {
		return store.Thread{}, err
	}
	defer s.mu.RUnlock()
	th, err := s.threadLocked(project, id)
	if err != nil {
		return store.Thread{}, err
	}
	t := th.t
	t.Data = bytes.Clone(t.Data)
	return t, nil
}

// UpdateThread implements store.Store.
func (s *Store) UpdateThread(ctx context.Context, project, id string, fn func(*store.Thread) error) (store.Thread, error) {
	if err := s.lock(); err != nil {
		return store.Thread{}, err
	}
	defer s.mu.Unlock()
	th, err := s.threadLocked(project, id)
	if err != nil {
		return store.Thread{}, err
	}
	t := th.t
	t.Data = bytes.Clone(t.Data)
	if err := fn(&t); err != nil {
		return store.Thread{}, err
	}
	t.ID, t.Project, t.CreatedAt = th.t.ID, th.t.Project, th.t.CreatedAt
	t.Data = bytes.Clone(t.Data)
	th.t = t
	t.Data = bytes.Clone(t.Data)
	return t, nil
}

// DeleteThread implements store.Store.
func (s *Store) DeleteThread(ctx context.Context, project, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	th, err := s.threadLocked(project, id)
	if err != nil {
		return err
	}
	for _, mid := range th.msgs {
		delete(s.messages, mid)
	}
	for _, rid := range th.runs {
		if r := s.runs[rid]; r != nil {
			for _, sid := range r.steps {
				delete(s.steps, sid)
			}
		}
		delete(s.runs, rid)
	}
	delete(s.threads, id)
	return nil
}

// CreateMessage implements store.Store.
func (s *Store) CreateMessage(ctx context.Context, m store.Message) error {
	return s.createMessage(m, nil)
}

// CreateMessageClaimed implements store.Store.
func (s *Store) CreateMessageClaimed(ctx context.Context, m store.Message, c store.Claim) error {
	return s.createMessage(m, s.fence("message", m.ID, c))
}

// createMessage inserts m, after claim (when not nil) under the same hold
// of the lock.
func (s *Store) createMessage(m store.Message, claim func() error) error {
	if m.ID == "" {
		return invalid("empty message id")
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	th, err := s.threadLocked(m.Project, m.ThreadID)
	if err != nil {
		return err
	}
	if th.activeRun != "" && th.activeRun != m.RunID {
		return fmt.Errorf("thread %q (run %q): %w", m.ThreadID, th.activeRun, store.ErrThreadLocked)
	}
	if _, ok := s.messages[m.ID]; ok {
		return conflict("message", m.ID)
	}
	if claim != nil {
		if err := claim(); err != nil {
			return err
		}
	}
	m.Project = th.t.Project
	s.putMessageLocked(th, m)
	return nil
}

func (s *Store) messageLocked(project, threadID, id string) (store.Message, error) {
	m, ok := s.messages[id]
	if !ok || m.ThreadID != threadID || m.Project != store.ProjectOr(project) {
		return store.Message{}, notFound("message", id)
	}
	return m, nil
}

// GetMessage implements store.Store.
func (s *Store) GetMessage(ctx context.Context, project, threadID, id string) (store.Message, error) {
	if err := s.rlock(); err != nil {
		return store.Message{}, err
	}
	defer s.mu.RUnlock()
	m, err := s.messageLocked(project, threadID, id)
	m.Data = bytes.Clone(m.Data)
	return m, err
}

// UpdateMessage implements store.Store.
func (s *Store) UpdateMessage(ctx context.Context, project, threadID, id string, fn func(*store.Message) error) (store.Message, error) {
	if err := s.lock(); err != nil {
		return store.Message{}, err
	}
	defer s.mu.Unlock()
	old, err := s.messageLocked(project, threadID, id)
	if err != nil {
		return store.Message{}, err
	}
	m := old
	m.Data = bytes.Clone(m.Data)
	if err := fn(&m); err != nil {
		return store.Message{}, err
	}
	m.ID, m.Project, m.ThreadID, m.CreatedAt, m.RunID = old.ID, old.Project, old.ThreadID, old.CreatedAt, old.RunID
	m.Data = bytes.Clone(m.Data)
	s.messages[id] = m
	m.Data = bytes.Clone(m.Data)
	return m, nil
}

// DeleteMessage implements store.Store.
func (s *Store) DeleteMessage(ctx context.Context, project, threadID, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, err := s.messageLocked(project, threadID, id); err != nil {
		return err
	}
	delete(s.messages, id)
	if th := s.threads[threadID]; th != nil {
		th.msgs.remove(id)
	}
	return nil
}

// ListMessages implements store.Store.
func (s *Store) ListMessages(ctx context.Context, project, threadID, runID string, lp store.ListParams) (store.Page[store.Message], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.Message]{}, err
	}
	defer s.mu.RUnlock()
	th, err := s.threadLocked(project, threadID)
	if err != nil {
		return store.Page[store.Message]{}, err
	}
	var keep func(string) bool
	if runID != "" {
		keep = func(id string) bool { return s.messages[id].RunID == runID }
	}
	page, more := th.msgs.page(lp, keep)
	out := make([]store.Message, len(page))
	for i, id := range page {
		m := s.messages[id]
		m.Data = bytes.Clone(m.Data)
		out[i] = m
	}
	return store.Page[store.Message]{Items: out, HasMore: more}, nil
}

// ---- runs

// CreateRun implements store.Store.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	r := nr.Run
	if r.ID == "" {
		return store.Run{}, nil, invalid("empty run id")
	}
	r.Project = store.ProjectOr(r.Project)
	jobs, err := encodeJobs(nr.Jobs)
	if err != nil {
		return store.Run{}, nil, err
	}
	if err := s.lock(); err != nil {
		return store.Run{}, nil, err
	}
	defer s.mu.Unlock()
	if nr.Claim != nil { // before the other checks: a lost claim wins, as in the SQL stores on a locked thread; Named is set with the writes
		c := *nr.Claim
		c.Named = nil
		if err := s.fence("run", r.ID, c)(); err != nil {
			return store.Run{}, nil, err
		}
	}

	var th *thread
	if nr.Thread != nil {
		t := *nr.Thread
		t.Project = r.Project
		if t.ID == "" || t.ID != r.ThreadID {
			return store.Run{}, nil, invalid("thread id %q differs from the run's %q", t.ID, r.ThreadID)
		}
		if err := s.checkNewThreadLocked(t, nr.Messages); err != nil {
			return store.Run{}, nil, err
		}
	} else {
		if th, err = s.threadLocked(r.Project, r.ThreadID); err != nil {
			return store.Run{}, nil, err
		}
		if err := s.checkNewThreadLocked(store.Thread{}, nr.Messages); err != nil {
			return store.Run{}, nil, err
		}
		if th.activeRun != "" && store.IsActive(r.Status) {
			return store.Run{}, nil, fmt.Errorf("thread %q (run %q): %w", r.ThreadID, th.activeRun, store.ErrThreadLocked)
		}
		if len(nr.Messages) > 0 && th.activeRun != "" {
			return store.Run{}, nil, fmt.Errorf("thread %q (run %q): %w", r.ThreadID, th.activeRun, store.ErrThreadLocked)
		}
	}
	if _, ok := s.runs[r.ID]; ok {
		return store.Run{}, nil, conflict("run", r.ID)
	}
	if err := s.checkStepsLocked(r.ID, nr.Steps); err != nil {
		return store.Run{}, nil, err
	}

	// Everything checked: write.
	if nr.Claim != nil && nr.Claim.Named != nil {
		_ = s.fence("run", r.ID, *nr.Claim)() // checked above, under this hold of the lock
	}
	if nr.Thread != nil {
		t := *nr.Thread
		t.Project = r.Project
		s.addThreadLocked(t, nr.Messages)
		th = s.threads[t.ID]
	} else {
		for _, m := range nr.Messages {
			m.ThreadID, m.Project = th.t.ID, th.t.Project
			s.putMessageLocked(th, m)
		}
	}
	r.LastSeq = 0
	r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
	rr := &run{r: r}
	s.runs[r.ID] = rr
	th.runs.add(r.ID)
	if store.IsActive(r.Status) {
		th.activeRun = r.ID
	}
	s.putStepsLocked(rr, nr.Steps)
	evs := s.appendEventsLocked(rr, nr.Events)
	s.enqueueLocked(jobs)
	out := rr.r
	out.Data, out.State = bytes.Clone(out.Data), bytes.Clone(out.State)
	return out, evs, nil
}

func (s *Store) checkStepsLocked(runID string, steps []store.Step) error {
	for _, st := range steps {
		if st.ID == "" {
			return invalid("empty step id")
		}
		if old, ok := s.steps[st.ID]; ok && old.RunID != runID {
			return conflict("step", st.ID)
		}
	}
	return nil
}

func (s *Store) putStepsLocked(rr *run, steps []store.Step) {
	for _, st := range steps {
		st.RunID, st.ThreadID, st.Project = rr.r.ID, rr.r.ThreadID, rr.r.Project
		if old, ok := s.steps[st.ID]; ok {
			st.CreatedAt = old.CreatedAt
		}
		st.Data = bytes.Clone(st.Data)
		s.steps[st.ID] = st
		rr.steps.add(st.ID)
	}
}

func (s *Store) appendEventsLocked(rr *run, evs []store.Event) []store.Event {
	out := make([]store.Event, len(evs))
	for i, e := range evs {
		rr.r.LastSeq++
		e.RunID, e.Seq = rr.r.ID, rr.r.LastSeq
		e.Data = bytes.Clone(e.Data)
		rr.events = append(rr.events, e)
		e.Data = bytes.Clone(e.Data)
		out[i] = e
	}
	return out
}

func (s *Store) runLocked(project, threadID, id string) (*run, error) {
	rr := s.runs[id]
	if rr == nil || rr.r.ThreadID != threadID || rr.r.Project != store.ProjectOr(project) {
		return nil, notFound("run", id)
	}
	return rr, nil
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, project, threadID, id string) (store.Run, error) {
	if err := s.rlock(); err != nil {
		return store.Run{}, err
	}
	defer s.mu.RUnlock()
	rr, err := s.runLocked(project, threadID, id)
	if err != nil {
		return store.Run{}, err
	}
	r := rr.r
	r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
	return r, nil
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	if err := s.lock(); err != nil {
		return store.Run{}, nil, err
	}
	defer s.mu.Unlock()
	rr, err := s.runLocked(project, threadID, id)
	if err != nil {
		return store.Run{}, nil, err
	}
	old := rr.r
	r := old
	r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
	ch, err := fn(&r)
	if err != nil {
		return store.Run{}, nil, err
	}
	r.ID, r.Project, r.ThreadID, r.CreatedAt, r.LastSeq = old.ID, old.Project, old.ThreadID, old.CreatedAt, old.LastSeq
	th := s.threads[r.ThreadID]
	if store.IsActive(r.Status) && th.activeRun != "" && th.activeRun != r.ID {
		return store.Run{}, nil, fmt.Errorf("thread %q (run %q): %w", r.ThreadID, th.activeRun, store.ErrThreadLocked)
	}
	if err := s.checkStepsLocked(r.ID, ch.Steps); err != nil {
		return store.Run{}, nil, err
	}
	for _, m := range ch.Messages {
		if m.ID == "" {
			return store.Run{}, nil, invalid("empty message id")
		}
		if old, ok := s.messages[m.ID]; ok && old.ThreadID != r.ThreadID {
			return store.Run{}, nil, conflict("message", m.ID)
		}
	}
	jobs, err := encodeJobs(ch.Jobs)
	if err != nil {
		return store.Run{}, nil, err
	}

	r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
	rr.r = r
	switch {
	case store.IsActive(r.Status):
		th.activeRun = r.ID
	case th.activeRun == r.ID:
		th.activeRun = ""
	}
	for _, m := range ch.Messages {
		m.ThreadID, m.Project = r.ThreadID, r.Project
		if old, ok := s.messages[m.ID]; ok {
			m.CreatedAt, m.RunID = old.CreatedAt, old.RunID
		} else if m.RunID == "" {
			m.RunID = r.ID
		}
		s.putMessageLocked(th, m)
	}
	s.putStepsLocked(rr, ch.Steps)
	evs := s.appendEventsLocked(rr, ch.Events)
	s.deleteJobsLocked(ch.DeleteJobs)
	s.enqueueLocked(jobs)
	out := rr.r
	out.Data, out.State = bytes.Clone(out.Data), bytes.Clone(out.State)
	return out, evs, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, project, threadID string, lp store.ListParams) (store.Page[store.Run], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.Run]{}, err
	}
	defer s.mu.RUnlock()
	th, err := s.threadLocked(project, threadID)
	if err != nil {
		return store.Page[store.Run]{}, err
	}
	page, more := th.runs.page(lp, nil)
	out := make([]store.Run, len(page))
	for i, id := range page {
		r := s.runs[id].r
		r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
		out[i] = r
	}
	return store.Page[store.Run]{Items: out, HasMore: more}, nil
}

// ActiveRun implements store.Store.
func (s *Store) ActiveRun(ctx context.Context, project, threadID string) (store.Run, error) {
	if err := s.rlock(); err != nil {
		return store.Run{}, err
	}
	defer s.mu.RUnlock()
	th, err := s.threadLocked(project, threadID)
	if err != nil {
		return store.Run{}, err
	}
	if th.activeRun == "" {
		return store.Run{}, fmt.Errorf("active run of thread %q: %w", threadID, store.ErrNotFound)
	}
	r := s.runs[th.activeRun].r
	r.Data, r.State = bytes.Clone(r.Data), bytes.Clone(r.State)
	return r, nil
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, project, runID, id string) (store.Step, error) {
	if err := s.rlock(); err != nil {
		return store.Step{}, err
	}
	defer s.mu.RUnlock()
	st, ok := s.steps[id]
	if !ok || st.RunID != runID || st.Project != store.ProjectOr(project) {
		return store.Step{}, notFound("step", id)
	}
	st.Data = bytes.Clone(st.Data)
	return st, nil
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, project, runID string, lp store.ListParams) (store.Page[store.Step], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.Step]{}, err
	}
	defer s.mu.RUnlock()
	rr := s.runs[runID]
	if rr == nil || rr.r.Project != store.ProjectOr(project) {
		return store.Page[store.Step]{}, notFound("run", runID)
	}
	page, more := rr.steps.page(lp, nil)
	out := make([]store.Step, len(page))
	for i, id := range page {
		st := s.steps[id]
		st.Data = bytes.Clone(st.Data)
		out[i] = st
	}
	return store.Page[store.Step]{Items: out, HasMore: more}, nil
}

// ListRunEvents implements store.Store.
func (s *Store) ListRunEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]store.Event, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rr := s.runs[runID]
	if rr == nil {
		return nil, notFound("run", runID)
	}
	if limit <= 0 {
		limit = 1000
	}
	// Seq n is at index n-1.
	start := max(afterSeq, 0)
	var out []store.Event
	for i := start; i < int64(len(rr.events)) && len(out) < limit; i++ {
		e := rr.events[i]
		e.Data = bytes.Clone(e.Data)
		out = append(out, e)
	}
	return out, nil
}

// ---- files

// CreateFile implements store.Store.
func (s *Store) CreateFile(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error) (store.File, error) {
	return s.createFile(ctx, f, body, maxBytes, finish, nil)
}

// CreateFileClaimed implements store.Store.
func (s *Store) CreateFileClaimed(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error, c store.Claim) (store.File, error) {
	return s.createFile(ctx, f, body, maxBytes, finish, s.fence("file", f.ID, c))
}

// fence returns the check of a create fenced on c (see store.Claim), about
// the object kind id, to run with s.mu held before the create writes: it
// fails with ErrClaimLost when the claim is no longer the caller's, and
// otherwise gives the claim its new body (c.Named), if any.
func (s *Store) fence(kind, id string, c store.Claim) func() error {
	return func() error {
		old, ok := s.idem[c.Key]
		if !ok || old.State != store.IdemPending || !bytes.Equal(old.Body, c.Body) {
			return fmt.Errorf("%s %q: %w", kind, id, store.ErrClaimLost)
		}
		if c.Named != nil {
			old.Body = bytes.Clone(c.Named)
			s.idem[c.Key] = old
		}
		return nil
	}
}

// createFile stores f, after finish (when not nil, see store.Store), and
// after claim (when not nil) under the same hold of the lock.
func (s *Store) createFile(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error, claim func() error) (store.File, error) {
	if f.ID == "" {
		return store.File{}, invalid("empty file id")
	}
	f.Project = store.ProjectOr(f.Project)
	var chunks [][]byte
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return store.File{}, err
		}
		buf := make([]byte, fileChunk)
		k, err := io.ReadFull(body, buf)
		if k > 0 {
			n += int64(k)
			if maxBytes > 0 && n > maxBytes {
				return store.File{}, fmt.Errorf("file %q: more than %d bytes: %w", f.ID, maxBytes, store.ErrTooLarge)
			}
			chunks = append(chunks, buf[:k:k])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return store.File{}, fmt.Errorf("read file %q: %w", f.ID, err)
		}
	}
	if finish != nil {
		id, project := f.ID, f.Project
		if err := finish(&f); err != nil {
			return store.File{}, fmt.Errorf("file %q: %w", id, err)
		}
		f.ID, f.Project = id, project
	}
	f.Bytes = n
	if err := s.lock(); err != nil {
		return store.File{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.files[f.ID]; ok {
		return store.File{}, conflict("file", f.ID)
	}
	if claim != nil {
		if err := claim(); err != nil {
			return store.File{}, err
		}
	}
	s.files[f.ID] = &file{f: f, chunks: chunks}
	idx(s.fileIDs, f.Project).add(f.ID)
	return f, nil
}

func (s *Store) fileLocked(project, id string) (*file, error) {
	f := s.files[id]
	if f == nil || f.f.Project != store.ProjectOr(project) {
		return nil, notFound("file", id)
	}
	return f, nil
}

// GetFile implements store.Store.
func (s *Store) GetFile(ctx context.Context, project, id string) (store.File, error) {
	if err := s.rlock(); err != nil {
		return store.File{}, err
	}
	defer s.mu.RUnlock()
	f, err := s.fileLocked(project, id)
	if err != nil {
		return store.File{}, err
	}
	return f.f, nil
}

// OpenFile implements store.Store.
func (s *Store) OpenFile(ctx context.Context, project, id string) (io.ReadCloser, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if _, err := s.fileLocked(project, id); err != nil {
		return nil, err
	}
	return &fileReader{s: s, project: project, id: id}, nil
}

// fileReader reads a file's chunks one at a time, looking the file up for
// each, so that a read after DeleteFile fails like the SQL stores'.
type fileReader struct {
	s           *Store
	project, id string
	n           int    // next chunk
	cur         []byte // rest of the current chunk
	closed      bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("read file %q: closed", r.id)
	}
	if len(r.cur) == 0 {
		if err := r.s.rlock(); err != nil {
			return 0, err
		}
		f, err := r.s.fileLocked(r.project, r.id)
		if err != nil {
			r.s.mu.RUnlock()
			return 0, err
		}
		if r.n >= len(f.chunks) {
			r.s.mu.RUnlock()
			return 0, io.EOF
		}
		r.cur = f.chunks[r.n] // chunks are never modified
		r.n++
		r.s.mu.RUnlock()
	}
	k := copy(p, r.cur)
	r.cur = r.cur[k:]
	return k, nil
}

func (r *fileReader) Close() error { r.closed = true; r.cur = nil; return nil }

// DeleteFile implements store.Store.
func (s *Store) DeleteFile(ctx context.Context, project, id string) ([]string, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	f, err := s.fileLocked(project, id)
	if err != nil {
		return nil, err
	}
	delete(s.files, id)
	idx(s.fileIDs, f.f.Project).remove(id)
	var vsIDs []string
	for vsID, vs := range s.vstores {
		if _, ok := vs.files[id]; ok {
			delete(vs.files, id)
			delete(vs.chunks, id)
			vs.fileIDs.remove(id)
			vsIDs = append(vsIDs, vsID)
		}
	}
	slices.Sort(vsIDs)
	return vsIDs, nil
}

// ListFiles implements store.Store.
func (s *Store) ListFiles(ctx context.Context, project, purpose string, lp store.ListParams) (store.Page[store.File], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.File]{}, err
	}
	defer s.mu.RUnlock()
	var keep func(string) bool
	if purpose != "" {
		keep = func(id string) bool { return s.files[id].f.Purpose == purpose }
	}
	var page []string
	var more bool
	if x := s.fileIDs[store.ProjectOr(project)]; x != nil {
		page, more = x.page(lp, keep)
	}
	out := make([]store.File, len(page))
	for i, id := range page {
		out[i] = s.files[id].f
	}
	return store.Page[store.File]{Items: out, HasMore: more}, nil
}

// ---- vector stores

// CreateVectorStore implements store.Store.
func (s *Store) CreateVectorStore(ctx context.Context, v store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createVectorStore(nil, v, files, jobs)
}

// CreateVectorStoreClaimed implements store.Store.
func (s *Store) CreateVectorStoreClaimed(ctx context.Context, c store.Claim, v store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createVectorStore(s.fence("vector store", v.ID, c), v, files, jobs)
}

// createVectorStore adds v with its files and jobs, after claim (when not
// nil) under the same hold of the lock.
func (s *Store) createVectorStore(claim func() error, v store.VectorStore, files []store.VectorStoreFile, jobs []store.Job) error {
	if v.ID == "" {
		return invalid("empty vector store id")
	}
	v.Project = store.ProjectOr(v.Project)
	queued, err := encodeJobs(jobs)
	if err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.vstores[v.ID]; ok {
		return conflict("vector store", v.ID)
	}
	for _, f := range files {
		if f.FileID == "" {
			return invalid("empty file id")
		}
	}
	if claim != nil {
		if err := claim(); err != nil {
			return err
		}
	}
	v.Data = bytes.Clone(v.Data)
	vs := &vstore{v: v, files: map[string]store.VectorStoreFile{}, chunks: map[string][]store.Chunk{}, batches: map[string]store.FileBatch{}}
	s.vstores[v.ID] = vs
	idx(s.vstoreIDs, v.Project).add(v.ID)
	for _, f := range files {
		s.putVSFileLocked(vs, f)
	}
	s.enqueueLocked(queued)
	return nil
}

func (s *Store) putVSFileLocked(vs *vstore, f store.VectorStoreFile) {
	f.VectorStoreID, f.Project = vs.v.ID, vs.v.Project
	f.Data = bytes.Clone(f.Data)
	vs.files[f.FileID] = f
	delete(vs.chunks, f.FileID)
	vs.fileIDs.add(f.FileID)
}

func (s *Store) vstoreLocked(project, id string) (*vstore, error) {
	vs := s.vstores[id]
	if vs == nil || vs.v.Project != store.ProjectOr(project) {
		return nil, notFound("vector store", id)
	}
	return vs, nil
}

// GetVectorStore implements store.Store.
func (s *Store) GetVectorStore(ctx context.Context, project, id string) (store.VectorStore, error) {
	if err := s.rlock(); err != nil {
		return store.VectorStore{}, err
	}
	defer s.mu.RUnlock()
	vs, err := s.vstoreLocked(project, id)
	if err != nil {
		return store.VectorStore{}, err
	}
	v := vs.v
	v.Data = bytes.Clone(v.Data)
	return v, nil
}

// UpdateVectorStore implements store.Store.
func (s *Store) UpdateVectorStore(ctx context.Context, project, id string, fn func(*store.VectorStore) error) (store.VectorStore, error) {
	if err := s.lock(); err != nil {
		return store.VectorStore{}, err
	}
	defer s.mu.Unlock()
	vs, err := s.vstoreLocked(project, id)
	if err != nil {
		return store.VectorStore{}, err
	}
	v := vs.v
	v.Data = bytes.Clone(v.Data)
	if err := fn(&v); err != nil {
		return store.VectorStore{}, err
	}
	v.ID, v.Project, v.CreatedAt = vs.v.ID, vs.v.Project, vs.v.CreatedAt
	v.Data = bytes.Clone(v.Data)
	vs.v = v
	v.Data = bytes.Clone(v.Data)
	return v, nil
}

// DeleteVectorStore implements store.Store.
func (s *Store) DeleteVectorStore(ctx context.Context, project, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	vs, err := s.vstoreLocked(project, id)
	if err != nil {
		return err
	}
	delete(s.vstores, id)
	idx(s.vstoreIDs, vs.v.Project).remove(id)
	return nil
}

// ListVectorStores implements store.Store.
func (s *Store) ListVectorStores(ctx context.Context, project string, lp store.ListParams) (store.Page[store.VectorStore], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.VectorStore]{}, err
	}
	defer s.mu.RUnlock()
	var page []string
	var more bool
	if x := s.vstoreIDs[store.ProjectOr(project)]; x != nil {
		page, more = x.page(lp, nil)
	}
	out := make([]store.VectorStore, len(page))
	for i, id := range page {
		v := s.vstores[id].v
		v.Data = bytes.Clone(v.Data)
		out[i] = v
	}
	return store.Page[store.VectorStore]{Items: out, HasMore: more}, nil
}

// VectorStoreFileCounts implements store.Store.
func (s *Store) VectorStoreFileCounts(ctx context.Context, project, vectorStoreID string) (map[string]int, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	vs, err := s.vstoreLocked(project, vectorStoreID)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, f := range vs.files {
		out[f.Status]++
	}
	return out, nil
}

// PutVectorStoreFile implements store.Store.
func (s *Store) PutVectorStoreFile(ctx context.Context, f store.VectorStoreFile, jobs ...store.Job) error {
	if f.FileID == "" {
		return invalid("empty file id")
	}
	queued, err := encodeJobs(jobs)
	if err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	vs, err := s.vstoreLocked(f.Project, f.VectorStoreID)
	if err != nil {
		return err
	}
	s.putVSFileLocked(vs, f)
	s.enqueueLocked(queued)
	return nil
}

func (s *Store) vsFileLocked(project, vectorStoreID, fileID string) (*vstore, store.VectorStoreFile, error) {
	vs, err := s.vstoreLocked(project, vectorStoreID)
	if err != nil {
		return nil, store.VectorStoreFile{}, err
	}
	f, ok := vs.files[fileID]
	if !ok {
		return nil, store.VectorStoreFile{}, notFound("vector store file", fileID)
	}
	return vs, f, nil
}

// GetVectorStoreFile implements store.Store.
func (s *Store) GetVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) (store.VectorStoreFile, error) {
	if err := s.rlock(); err != nil {
		return store.VectorStoreFile{}, err
	}
	defer s.mu.RUnlock()
	_, f, err := s.vsFileLocked(project, vectorStoreID, fileID)
	f.Data = bytes.Clone(f.Data)
	return f, err
}

// UpdateVectorStoreFile implements store.Store.
func (s *Store) UpdateVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string, fn func(*store.VectorStoreFile) ([]store.Chunk, error)) (store.VectorStoreFile, error) {
	if err := s.lock(); err != nil {
		return store.VectorStoreFile{}, err
	}
	defer s.mu.Unlock()
	vs, old, err := s.vsFileLocked(project, vectorStoreID, fileID)
	if err != nil {
		return store.VectorStoreFile{}, err
	}
	f := old
	f.Data = bytes.Clone(f.Data)
	chunks, err := fn(&f)
	if err != nil {
		return store.VectorStoreFile{}, err
	}
	f.Project, f.VectorStoreID, f.FileID, f.CreatedAt = old.Project, old.VectorStoreID, old.FileID, old.CreatedAt
	f.Data = bytes.Clone(f.Data)
	vs.files[fileID] = f
	if chunks != nil {
		cs := make([]store.Chunk, len(chunks))
		for i, c := range chunks {
			c.VectorStoreID, c.FileID, c.Index = vs.v.ID, fileID, i
			cs[i] = c
		}
		vs.chunks[fileID] = cs
	}
	f.Data = bytes.Clone(f.Data)
	return f, nil
}

// DeleteVectorStoreFile implements store.Store.
func (s *Store) DeleteVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	vs, _, err := s.vsFileLocked(project, vectorStoreID, fileID)
	if err != nil {
		return err
	}
	delete(vs.files, fileID)
	delete(vs.chunks, fileID)
	vs.fileIDs.remove(fileID)
	return nil
}

// ListVectorStoreFiles implements store.Store.
func (s *Store) ListVectorStoreFiles(ctx context.Context, project, vectorStoreID, batchID, status string, lp store.ListParams) (store.Page[store.VectorStoreFile], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.VectorStoreFile]{}, err
	}
	defer s.mu.RUnlock()
	vs, err := s.vstoreLocked(project, vectorStoreID)
	if err != nil {
		return store.Page[store.VectorStoreFile]{}, err
	}
	var keep func(string) bool
	if batchID != "" || status != "" {
		keep = func(id string) bool {
			f := vs.files[id]
			return (batchID == "" || f.BatchID == batchID) && (status == "" || f.Status == status)
		}
	}
	page, more := vs.fileIDs.page(lp, keep)
	out := make([]store.VectorStoreFile, len(page))
	for i, id := range page {
		f := vs.files[id]
		f.Data = bytes.Clone(f.Data)
		out[i] = f
	}
	return store.Page[store.VectorStoreFile]{Items: out, HasMore: more}, nil
}

// ScanChunks implements store.Store. The chunks are copied under the lock
// and fn is called without it.
func (s *Store) ScanChunks(ctx context.Context, project, vectorStoreID string, fn func(store.Chunk) error) error {
	if err := s.rlock(); err != nil {
		return err
	}
	vs, err := s.vstoreLocked(project, vectorStoreID)
	if err != nil {
		s.mu.RUnlock()
		return err
	}
	var all []store.Chunk
	for _, id := range vs.fileIDs {
		all = append(all, vs.chunks[id]...)
	}
	s.mu.RUnlock()
	for _, c := range all {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// CreateFileBatch implements store.Store.
func (s *Store) CreateFileBatch(ctx context.Context, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createFileBatch(nil, b, files, jobs)
}

// CreateFileBatchClaimed implements store.Store.
func (s *Store) CreateFileBatchClaimed(ctx context.Context, c store.Claim, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createFileBatch(s.fence("file batch", b.ID, c), b, files, jobs)
}

// createFileBatch adds b with its files and jobs, after claim (when not
// nil) under the same hold of the lock.
func (s *Store) createFileBatch(claim func() error, b store.FileBatch, files []store.VectorStoreFile, jobs []store.Job) error {
	if b.ID == "" {
		return invalid("empty batch id")
	}
	queued, err := encodeJobs(jobs)
	if err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	vs, err := s.vstoreLocked(b.Project, b.VectorStoreID)
	if err != nil {
		return err
	}
	if _, ok := vs.batches[b.ID]; ok {
		return conflict("file batch", b.ID)
	}
	for _, f := range files {
		if f.FileID == "" {
			return invalid("empty file id")
		}
	}
	if claim != nil {
		if err := claim(); err != nil {
			return err
		}
	}
	b.Project = vs.v.Project
	b.Data = bytes.Clone(b.Data)
	vs.batches[b.ID] = b
	for _, f := range files {
		f.BatchID = b.ID
		s.putVSFileLocked(vs, f)
	}
	s.enqueueLocked(queued)
	return nil
}

func (s *Store) batchLocked(project, vectorStoreID, id string) (*vstore, store.FileBatch, error) {
	vs, err := s.vstoreLocked(project, vectorStoreID)
	if err != nil {
		return nil, store.FileBatch{}, err
	}
	b, ok := vs.batches[id]
	if !ok {
		return nil, store.FileBatch{}, notFound("file batch", id)
	}
	return vs, b, nil
}

// GetFileBatch implements store.Store.
func (s *Store) GetFileBatch(ctx context.Context, project, vectorStoreID, id string) (store.FileBatch, error) {
	if err := s.rlock(); err != nil {
		return store.FileBatch{}, err
	}
	defer s.mu.RUnlock()
	_, b, err := s.batchLocked(project, vectorStoreID, id)
	b.Data = bytes.Clone(b.Data)
	return b, err
}

// UpdateFileBatch implements store.Store.
func (s *Store) UpdateFileBatch(ctx context.Context, project, vectorStoreID, id string, fn func(*store.FileBatch) error) (store.FileBatch, error) {
	if err := s.lock(); err != nil {
		return store.FileBatch{}, err
	}
	defer s.mu.Unlock()
	vs, old, err := s.batchLocked(project, vectorStoreID, id)
	if err != nil {
		return store.FileBatch{}, err
	}
	b := old
	b.Data = bytes.Clone(b.Data)
	if err := fn(&b); err != nil {
		return store.FileBatch{}, err
	}
	b.ID, b.Project, b.VectorStoreID, b.CreatedAt = old.ID, old.Project, old.VectorStoreID, old.CreatedAt
	b.Data = bytes.Clone(b.Data)
	vs.batches[id] = b
	b.Data = bytes.Clone(b.Data)
	return b, nil
}

// ---- idempotency

func cloneIdem(r store.IdempotencyRecord) store.IdempotencyRecord {
	r.Fingerprint, r.Header, r.Body = bytes.Clone(r.Fingerprint), bytes.Clone(r.Header), bytes.Clone(r.Body)
	return r
}

// ClaimIdempotencyKey implements store.Store.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	if rec.Key == "" {
		return store.IdempotencyRecord{}, false, invalid("empty idempotency key")
	}
	if err := s.lock(); err != nil {
		return store.IdempotencyRecord{}, false, err
	}
	defer s.mu.Unlock()
	old, ok := s.idem[rec.Key]
	if ok && old.ExpiresAt.After(now) {
		return cloneIdem(old), false, nil
	}
	rec.Project = store.ProjectOr(rec.Project)
	rec.State = store.IdemPending
	s.idem[rec.Key] = cloneIdem(rec)
	return old, true, nil // the expired record replaced (s.idem keeps no other copy of it)
}

// CompleteIdempotencyKey implements store.Store.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, held time.Time) (bool, error) {
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	old, ok := s.idem[rec.Key]
	if !ok || !heldClaim(old, held) {
		return false, nil
	}
	rec.Project = old.Project
	s.idem[rec.Key] = cloneIdem(rec)
	return true, nil
}

// heldClaim reports whether r is the pending claim whose lease runs until
// held (to the microsecond, as the SQL stores keep it).
func heldClaim(r store.IdempotencyRecord, held time.Time) bool {
	return r.State == store.IdemPending && r.ExpiresAt.UnixMicro() == held.UnixMicro()
}

// RenewIdempotencyKey implements store.Store.
func (s *Store) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	old, ok := s.idem[key]
	if !ok || !heldClaim(old, held) {
		return false, nil
	}
	old.ExpiresAt = until
	s.idem[key] = old
	return true, nil
}

// DeleteIdempotencyKey implements store.Store.
func (s *Store) DeleteIdempotencyKey(ctx context.Context, key string, held time.Time) (bool, error) {
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	old, ok := s.idem[key]
	if !ok || !heldClaim(old, held) {
		return false, nil
	}
	delete(s.idem, key)
	return true, nil
}

// DeleteExpiredIdempotencyKeys implements store.Store.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, now, lapsedBefore time.Time) (int, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	maps.DeleteFunc(s.idem, func(_ string, r store.IdempotencyRecord) bool {
		if !r.ExpiresAt.After(now) && (r.State != store.IdemPending || !r.ExpiresAt.After(lapsedBefore)) {
			n++
			return true
		}
		return false
	})
	return n, nil
}

// ---- jobs

// encodeJobs checks jobs before a write and describes them.
func encodeJobs(jobs []store.Job) ([]queued, error) {
	out := make([]queued, 0, len(jobs))
	for _, j := range jobs {
		if j.Args == nil || j.Args.Kind() == "" {
			return nil, invalid("job without args or kind")
		}
		b, err := json.Marshal(j.Args)
		if err != nil {
			return nil, fmt.Errorf("encode job %s: %v: %w", j.Args.Kind(), err, store.ErrInvalid)
		}
		state, at := "available", j.ScheduledAt
		if at.IsZero() {
			at = time.Now()
		} else if at.After(time.Now()) {
			state = "scheduled"
		}
		q := j.Queue
		if q == "" {
			q = "default"
		}
		out = append(out, queued{job: j, info: store.JobInfo{Kind: j.Args.Kind(), Args: b, Queue: q, ScheduledAt: at, State: state}})
	}
	return out, nil
}

func (s *Store) enqueueLocked(jobs []queued) {
	if len(jobs) == 0 {
		return
	}
	for i := range jobs {
		s.jobSeq++
		jobs[i].id = s.jobSeq
		if jobs[i].job.ID != nil {
			*jobs[i].job.ID = s.jobSeq
		}
	}
	s.jobs = append(s.jobs, jobs...)
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// deleteJobsLocked drops the jobs of ids that TakeJobs has not taken (a
// job taken runs, or has run: it is left alone).
func (s *Store) deleteJobsLocked(ids []int64) {
	if len(ids) == 0 {
		return
	}
	s.jobs = slices.DeleteFunc(s.jobs, func(q queued) bool { return slices.Contains(ids, q.id) })
}

// CountJobs implements store.Store: the jobs not yet taken by TakeJobs,
// by state.
func (s *Store) CountJobs(ctx context.Context) (map[string]int, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := map[string]int{}
	for _, q := range s.jobs {
		out[q.info.State]++
	}
	return out, nil
}

// ListJobs implements store.Store: the jobs not yet taken by TakeJobs.
func (s *Store) ListJobs(ctx context.Context, kind string) ([]store.JobInfo, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.JobInfo
	for _, q := range s.jobs {
		if kind == "" || q.info.Kind == kind {
			i := q.info
			i.Args = bytes.Clone(i.Args)
			out = append(out, i)
		}
	}
	return out, nil
}
