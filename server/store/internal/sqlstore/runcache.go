package sqlstore

import (
	"slices"

	"github.com/assistants-go/assistants/server/store"
)

// Options configure a Store (New).
type Options struct {
	// RunCacheBytes bounds the runs and assistants the store keeps in
	// memory as it last wrote them (CreateRun, UpdateRun; CreateAssistant,
	// UpdateAssistant), to answer GetRun, GetRunData and GetAssistant
	// without reading the database: a run's polls, and the assistant each
	// new run reads. It is only used on a backend whose Tx is an
	// AfterWriter; there every change of those rows goes through this
	// store, in commit order, so the copy is the committed row (see
	// rowCache). The least recently written go first past the bound (runs
	// and assistants each get it); a row larger than a sixteenth of it is
	// not kept. Default 0: no cache.
	RunCacheBytes int
}

// rowOverhead is what a cached row counts against the bound beside its
// bytes.
const rowOverhead = 128

func runMeta(r store.Run) (string, string, int) {
	return r.ID, r.ThreadID, len(r.ID) + len(r.Project) + len(r.ThreadID) + len(r.AssistantID) + len(r.Status) + len(r.Data) + len(r.State) + rowOverhead
}

func asstMeta(a store.Assistant) (string, string, int) {
	return a.ID, "", len(a.ID) + len(a.Project) + len(a.Data) + rowOverhead
}

// cacheRun has the cache hold r from the end of tx, when it commits, and
// read run r.ID from the database until then; without a cache, or on a
// backend whose Tx cannot say when it ends, nothing.
func (s *Store) cacheRun(tx Tx, r store.Run) {
	if aw, ok := afterWrite(tx, s.runs); ok {
		r.Data, r.State = slices.Clone(r.Data), slices.Clone(r.State)
		s.runs.begin(r.ID)
		aw.AfterWrite(func(committed bool) { s.runs.end(r.ID, r, false, committed) })
	}
}

// uncacheThread has the cache read the runs of threadID, which tx
// deletes, from the database until tx ends, and forget them when it
// commits.
func (s *Store) uncacheThread(tx Tx, threadID string) {
	if aw, ok := afterWrite(tx, s.runs); ok {
		s.runs.beginParent(threadID)
		aw.AfterWrite(func(committed bool) { s.runs.endParent(threadID, committed) })
	}
}

// cachedRun returns a copy of run id from the cache, when it holds it for
// project and threadID (its State only withState).
func (s *Store) cachedRun(project, threadID, id string, withState bool) (store.Run, bool) {
	if s.runs == nil {
		return store.Run{}, false
	}
	project = store.ProjectOr(project)
	r, ok := s.runs.get(id, func(r store.Run) bool { return r.ThreadID == threadID && r.Project == project })
	if !ok {
		return store.Run{}, false
	}
	state := r.State
	r.Data, r.State = slices.Clone(r.Data), nil
	if withState {
		r.State = slices.Clone(state)
	}
	return r, true
}

// cacheAssistant has the cache hold a from the end of tx when it commits
// (nothing of it with gone: tx deletes it), and read it from the database
// until then.
func (s *Store) cacheAssistant(tx Tx, a store.Assistant, gone bool) {
	if aw, ok := afterWrite(tx, s.assts); ok {
		a.Data = slices.Clone(a.Data)
		s.assts.begin(a.ID)
		aw.AfterWrite(func(committed bool) { s.assts.end(a.ID, a, gone, committed) })
	}
}

// cachedAssistant returns a copy of assistant id from the cache, when it
// holds it for project.
func (s *Store) cachedAssistant(project, id string) (store.Assistant, bool) {
	if s.assts == nil {
		return store.Assistant{}, false
	}
	project = store.ProjectOr(project)
	a, ok := s.assts.get(id, func(a store.Assistant) bool { return a.Project == project })
	if !ok {
		return store.Assistant{}, false
	}
	a.Data = slices.Clone(a.Data)
	return a, true
}

// CloseRunCache empties the caches for good (the backend closes).
func (s *Store) CloseRunCache() {
	if s.runs != nil {
		s.runs.close()
		s.assts.close()
	}
}

// RunCacheStats returns the runs the cache holds and the bytes they count
// (Options.RunCacheBytes); zeros without a cache.
func (s *Store) RunCacheStats() (runs, bytes int) {
	if s.runs == nil {
		return 0, 0
	}
	return s.runs.stats()
}
