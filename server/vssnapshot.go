package server

import (
	"context"
	"errors"
	"maps"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Vector stores are kept in process memory (vectorStoreRec, with their
// search index) as a cache of the store: each change is written to the
// store as a snapshot of the vector store with its files and batches
// (store.VectorStore.Data), and a server loads the snapshots when it
// starts, processing the files again to rebuild the search index from the
// files' bytes. A file whose processing was cut by a restart is processed
// then.
//
// Limits, until vector stores move onto the store's own tables: replicas
// do not see each other's vector stores (each has its own cache), and the
// snapshot is the whole vector store, written again on each change, and a
// search's last_active_at is written with the next change only.

// vsSnapshot is a vector store as written to the store.
type vsSnapshot struct {
	Obj     gen.VectorStoreObject `json:"obj"`
	Files   []vsFileSnapshot      `json:"files,omitempty"`
	Batches []batchSnapshot       `json:"batches,omitempty"`
}

type vsFileSnapshot struct {
	Obj      gen.VectorStoreFileObject `json:"obj"`
	BatchID  string                    `json:"batch_id,omitempty"`
	Filename string                    `json:"filename,omitempty"`
}

type batchSnapshot struct {
	Obj     gen.VectorStoreFileBatchObject             `json:"obj"`
	FileIDs []string                                   `json:"file_ids,omitempty"`
	Status  map[string]gen.VectorStoreFileObjectStatus `json:"status,omitempty"`
}

// persistVectorStoreLocked writes rec's snapshot to the store, when rec is
// still the server's vector store of its id. s.mu is held.
func (s *Server) persistVectorStoreLocked(rec *vectorStoreRec) {
	if cur, ok := s.st.vectorStores.get(rec.obj.Id); !ok || cur != rec {
		return
	}
	snap := vsSnapshot{Obj: rec.obj}
	for _, f := range rec.files.all() {
		snap.Files = append(snap.Files, vsFileSnapshot{Obj: f.obj, BatchID: f.batchID, Filename: f.filename})
	}
	for _, b := range rec.batches.all() {
		snap.Batches = append(snap.Batches, batchSnapshot{Obj: b.obj, FileIDs: b.fileIDs, Status: maps.Clone(b.status)})
	}
	data, err := encodeData(snap)
	if err != nil {
		s.log.Error("vector store: encode snapshot", "err", err.Error())
		return
	}
	ctx := context.WithoutCancel(s.ctx)
	_, err = s.db.UpdateVectorStore(ctx, rec.project, rec.obj.Id, func(v *store.VectorStore) error {
		v.Data = data
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = s.db.CreateVectorStore(ctx, store.VectorStore{Project: rec.project, ID: rec.obj.Id,
			CreatedAt: int64(rec.obj.CreatedAt), Data: data}, nil)
	}
	if err != nil {
		s.log.Error("vector store: write snapshot", "vector_store_id", rec.obj.Id, "err", err.Error())
	}
}

// forgetVectorStore deletes a vector store's snapshot.
func (s *Server) forgetVectorStore(ctx context.Context, id string) {
	if err := s.db.DeleteVectorStore(context.WithoutCancel(ctx), projectOf(ctx), id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("vector store: delete snapshot", "vector_store_id", id, "err", err.Error())
	}
}

// loadVectorStores fills the cache from the store's snapshots, those of
// every project, and processes their files again (rebuilding the search
// index).
func (s *Server) loadVectorStores() {
	ctx := context.WithoutCancel(s.ctx)
	projects, err := s.allProjects(ctx)
	if err != nil {
		s.log.Error("vector stores: load projects", "err", err.Error())
		return
	}
	var recs []*vectorStoreRec
	for _, project := range projects {
		lp := store.ListParams{Limit: 100}
		for {
			pg, err := s.db.ListVectorStores(ctx, project, lp)
			if err != nil {
				s.log.Error("vector stores: load", "project", project, "err", err.Error())
				return
			}
			for _, v := range pg.Items {
				snap, err := decodeData[vsSnapshot](v.Data)
				if err != nil {
					s.log.Error("vector store: decode snapshot", "vector_store_id", v.ID, "err", err.Error())
					continue
				}
				recs = append(recs, restoreVectorStore(project, snap))
			}
			if !pg.HasMore || len(pg.Items) == 0 {
				break
			}
			lp.After = pg.Items[len(pg.Items)-1].ID
		}
	}
	if len(recs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range recs {
		s.st.vectorStores.put(rec.obj.Id, rec)
	}
	for _, rec := range recs {
		s.refreshVectorStoreLocked(rec)
		s.scheduleProcessingLocked(rec)
	}
}

// restoreVectorStore rebuilds a vector store from its snapshot: its
// completed files are processed again (in_progress until then).
func restoreVectorStore(project string, snap vsSnapshot) *vectorStoreRec {
	rec := &vectorStoreRec{project: project, obj: snap.Obj, files: newColl[*vsFileRec](), batches: newColl[*batchRec]()}
	for _, b := range snap.Batches {
		st := b.Status
		if st == nil {
			st = map[string]gen.VectorStoreFileObjectStatus{}
		}
		rec.batches.put(b.Obj.Id, &batchRec{obj: b.Obj, fileIDs: b.FileIDs, status: st})
	}
	for _, fs := range snap.Files {
		f := &vsFileRec{project: project, obj: fs.Obj, batchID: fs.BatchID, filename: fs.Filename}
		if f.obj.Status == gen.VectorStoreFileObjectStatusCompleted {
			f.obj.Status = gen.VectorStoreFileObjectStatusInProgress // its chunks are indexed again
		}
		rec.files.put(f.obj.Id, f)
	}
	return rec
}
