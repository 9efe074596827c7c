package server

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Databases written by earlier versions of the server kept each vector
// store as one snapshot in its Data (the object, its files and its
// batches; the search index was in process memory). When a server starts
// it moves such vector stores onto the store's own rows (vsstore.go): each
// batch and file is attached again, and the files that were completed or
// in progress are processed again by their jobs (their chunks were never
// stored); failed and cancelled files keep their status and last_error.
// The snapshot is replaced last, so an upgrade cut short is done again
// at the next start.

// legacySnapshot is an earlier version's vector store Data.
type legacySnapshot struct {
	Obj   *gen.VectorStoreObject `json:"obj"`
	Files []struct {
		Obj     gen.VectorStoreFileObject `json:"obj"`
		BatchID string                    `json:"batch_id,omitempty"`
	} `json:"files,omitempty"`
	Batches []struct {
		Obj gen.VectorStoreFileBatchObject `json:"obj"`
	} `json:"batches,omitempty"`
}

// legacyVectorStoreFinder is implemented by stores that tell with one
// indexed lookup whether any vector store still holds an earlier version's
// snapshot (SQLite and PostgreSQL: the partial index of their migration 5).
type legacyVectorStoreFinder interface {
	HasLegacyVectorStores(ctx context.Context) (bool, error)
}

// upgradeVectorStores moves the snapshotted vector stores of every
// project onto the store's rows. On a store that can tell there are none
// (legacyVectorStoreFinder), which is every start after the first, it
// does nothing more than that one lookup; other stores (memory: empty at
// start) are listed. Errors are logged; the vector store stays as it was.
func (s *Server) upgradeVectorStores(ctx context.Context) {
	if f, ok := s.db.(legacyVectorStoreFinder); ok {
		has, err := f.HasLegacyVectorStores(ctx)
		if err != nil {
			s.log.Error("vector stores: upgrade: look for snapshots", "err", err.Error())
			return
		}
		if !has {
			return
		}
	}
	projects, err := s.allProjects(ctx)
	if err != nil {
		s.log.Error("vector stores: upgrade: list projects", "err", err.Error())
		return
	}
	for _, p := range projects {
		s.upgradeProjectVectorStores(withProject(ctx, p), p)
	}
}

// upgradeProjectVectorStores moves a project's snapshotted vector stores.
func (s *Server) upgradeProjectVectorStores(ctx context.Context, project string) {
	lp := store.ListParams{Limit: 100}
	for {
		pg, err := s.db.ListVectorStores(ctx, project, lp)
		if err != nil {
			s.log.Error("vector stores: upgrade: list", "err", err.Error())
			return
		}
		for _, v := range pg.Items {
			var snap legacySnapshot
			if json.Unmarshal(v.Data, &snap) != nil || snap.Obj == nil {
				continue
			}
			if err := s.upgradeVectorStore(ctx, project, v, snap); err != nil {
				s.log.Error("vector stores: upgrade", "vector_store_id", v.ID, "err", err.Error())
			}
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return
		}
		lp.After = pg.Items[len(pg.Items)-1].ID
	}
}

// upgradeVectorStore moves one snapshot onto the store's rows.
func (s *Server) upgradeVectorStore(ctx context.Context, project string, v store.VectorStore, snap legacySnapshot) error {
	byBatch := map[string][]store.VectorStoreFile{}
	jobs := map[string][]store.Job{}
	for _, lf := range snap.Files {
		rec := vsFileRecord{Obj: lf.Obj, Attach: newID("attach_")}
		var job []store.Job
		switch rec.Obj.Status {
		case gen.VectorStoreFileObjectStatusFailed, gen.VectorStoreFileObjectStatusCancelled:
		default:
			rec.Obj.Status, rec.Obj.UsageBytes, rec.Obj.LastError = gen.VectorStoreFileObjectStatusInProgress, 0, nil
			job = []store.Job{s.ingestJob(project, v.ID, lf.Obj.Id, rec.Attach)}
		}
		data, err := encodeData(rec)
		if err != nil {
			return err
		}
		f := store.VectorStoreFile{Project: project, VectorStoreID: v.ID, FileID: lf.Obj.Id, BatchID: lf.BatchID,
			Status: string(rec.Obj.Status), CreatedAt: int64(lf.Obj.CreatedAt), Data: data}
		byBatch[lf.BatchID] = append(byBatch[lf.BatchID], f)
		jobs[lf.BatchID] = append(jobs[lf.BatchID], job...)
	}
	var attached []store.VectorStoreFile
	for _, lb := range snap.Batches {
		id := lb.Obj.Id
		data, err := encodeData(lb.Obj)
		if err != nil {
			return err
		}
		err = s.db.CreateFileBatch(ctx, store.FileBatch{Project: project, ID: id, VectorStoreID: v.ID, CreatedAt: int64(lb.Obj.CreatedAt), Data: data},
			byBatch[id], s.durable(jobs[id])...)
		if err != nil && !errors.Is(err, store.ErrConflict) { // ErrConflict: done by an upgrade cut short
			return err
		}
		attached = append(attached, byBatch[id]...)
		delete(byBatch, id)
	}
	for batchID, files := range byBatch { // files of no batch, or of a batch the snapshot lacks
		for i, f := range files {
			if batchID != "" {
				f.BatchID = ""
			}
			var job []store.Job
			if f.Status == string(gen.VectorStoreFileObjectStatusInProgress) {
				job = jobs[batchID][:1]
				jobs[batchID] = jobs[batchID][1:]
			}
			if err := s.db.PutVectorStoreFile(ctx, f, s.durable(job)...); err != nil {
				return err
			}
			files[i] = f
		}
		attached = append(attached, files...)
	}
	obj := *snap.Obj
	obj.FileCounts, obj.UsageBytes = gen.VectorStoreFileCounts{}, 0
	data, err := encodeData(obj)
	if err != nil {
		return err
	}
	if _, err := s.db.UpdateVectorStore(ctx, project, v.ID, func(sv *store.VectorStore) error {
		sv.Data = data
		return nil
	}); err != nil {
		return err
	}
	s.log.Info("vector stores: upgraded a snapshot onto the store", "vector_store_id", v.ID, "files", len(attached))
	s.afterAttach(ctx, project, v.ID, attached)
	return nil
}
