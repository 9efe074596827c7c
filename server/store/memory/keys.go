package memory

import (
	"bytes"
	"context"

	"github.com/assistants-go/assistants/server/store"
)

// keyTable holds the API keys, guarded by Store.mu.
type keyTable struct {
	byID   map[string]store.APIKey
	byHash map[string]string // string(hash) -> id
	ids    ids
}

func cloneKey(k store.APIKey) store.APIKey {
	k.Hash = bytes.Clone(k.Hash)
	return k
}

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || len(k.Hash) == 0 {
		return invalid("an API key needs an id and a hash")
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	k.Project = store.ProjectOr(k.Project)
	if _, ok := s.projects[k.Project]; !ok {
		return notFound("project", k.Project)
	}
	t := &s.keys
	if t.byID == nil {
		t.byID, t.byHash = map[string]store.APIKey{}, map[string]string{}
	}
	if _, ok := t.byID[k.ID]; ok {
		return conflict("api key", k.ID)
	}
	if _, ok := t.byHash[string(k.Hash)]; ok {
		return conflict("api key", k.ID)
	}
	t.byID[k.ID] = cloneKey(k)
	t.byHash[string(k.Hash)] = k.ID
	t.ids.add(k.ID)
	return nil
}

// GetAPIKeyByHash implements store.Store.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	if err := s.rlock(); err != nil {
		return store.APIKey{}, err
	}
	defer s.mu.RUnlock()
	id, ok := s.keys.byHash[string(hash)]
	if !ok {
		return store.APIKey{}, notFound("api key", "(by hash)")
	}
	return cloneKey(s.keys.byID[id]), nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context, lp store.ListParams) (store.Page[store.APIKey], error) {
	if err := s.rlock(); err != nil {
		return store.Page[store.APIKey]{}, err
	}
	defer s.mu.RUnlock()
	page, more := s.keys.ids.page(lp, nil)
	out := make([]store.APIKey, len(page))
	for i, id := range page {
		out[i] = cloneKey(s.keys.byID[id])
	}
	return store.Page[store.APIKey]{Items: out, HasMore: more}, nil
}

// RevokeAPIKey implements store.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at int64) (store.APIKey, error) {
	if err := s.lock(); err != nil {
		return store.APIKey{}, err
	}
	defer s.mu.Unlock()
	k, ok := s.keys.byID[id]
	if !ok {
		return store.APIKey{}, notFound("api key", id)
	}
	if k.RevokedAt == 0 {
		k.RevokedAt = at
		s.keys.byID[id] = k
	}
	return cloneKey(k), nil
}

// CountActiveRuns implements store.Store.
func (s *Store) CountActiveRuns(ctx context.Context, project string) (int, error) {
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	project = store.ProjectOr(project)
	n := 0
	for _, th := range s.threads {
		if th.activeRun != "" && th.t.Project == project {
			n++
		}
	}
	return n, nil
}
