package server

import (
	"context"

	"github.com/assistants-go/assistants/server/store"
)

// Projects. Every object belongs to the project of the key that created
// it (keys.go). The auth middleware resolves a request's key to its
// project and puts it in the request's context; handlers read it with
// projectOf and pass it to every store call, so that an object of another
// project is store.ErrNotFound and answers exactly as an unknown id (404,
// never 403). Work that runs outside a request (the run engine's jobs,
// vector store processing) carries the project of the object it works on:
// a run's jobs carry the run's project in their args (jobs.go), a vector
// store file's ingest job its vector store's (ingestjobs.go).

type projectCtxKey struct{}

// withProject returns ctx carrying project p (store.DefaultProject when
// empty).
func withProject(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, projectCtxKey{}, store.ProjectOr(p))
}

// projectOf returns the project ctx carries, store.DefaultProject when it
// carries none (auth off, or a single configured key).
func projectOf(ctx context.Context) string {
	if p, ok := ctx.Value(projectCtxKey{}).(string); ok && p != "" {
		return p
	}
	return store.DefaultProject
}

// projectOr returns p, or store.DefaultProject when p is empty.
func projectOr(p string) string { return store.ProjectOr(p) }

// allProjects returns the ids of every project of the store, the default
// one included.
func (s *Server) allProjects(ctx context.Context) ([]string, error) {
	out := []string{store.DefaultProject}
	lp := store.ListParams{Limit: 100}
	for {
		pg, err := s.db.ListProjects(ctx, lp)
		if err != nil {
			return nil, err
		}
		for _, p := range pg.Items {
			if p.ID != store.DefaultProject {
				out = append(out, p.ID)
			}
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return out, nil
		}
		lp.After = pg.Items[len(pg.Items)-1].ID
	}
}
