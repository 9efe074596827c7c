package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Vector stores, their files and their file batches live in the store
// (Options.Store), like every other object, so that every replica sees
// them and a restart finds them. This file holds how they are kept there
// and how their API objects are made from what is kept:
//
//   - a vector store's Data is its API object: name, metadata, expiry,
//     last_active_at and usage_bytes. Its file_counts and status are not
//     kept: they are counted from its files' rows on every read
//     (store.VectorStoreFileCounts), so they are right at every moment,
//     whichever replica processed which file. usage_bytes is the sum over
//     its completed files, written when the store has no file in progress
//     any more (and when a file leaves it): while files are processed it
//     shows the sum as it was before.
//   - a vector store file's Data is a vsFileRecord: its API object (whose
//     status is also the row's Status), the file's name once processed,
//     and the attachment's nonce, which the ingestion job carries (see
//     ingestjobs.go), so that a job of an earlier attachment of the same
//     file does nothing.
//   - a file batch's Data is its API object; its file_counts are counted
//     from the files the batch attached (those still attached by it), and
//     its status follows them (in_progress while one is, then completed,
//     or failed when all failed) unless it was cancelled.
//
// The functions take the project as a value.

// vsFileRecord is a vector store file as kept in the store.
type vsFileRecord struct {
	Obj gen.VectorStoreFileObject `json:"obj"`
	// Filename is the uploaded file's name, set when it is processed.
	Filename string `json:"filename,omitempty"`
	// Attach is the attachment's nonce, which its ingestion job names.
	Attach string `json:"attach"`
}

// vsCountsPage is the page size of the lists that count and sum files.
const vsCountsPage = 1000

// decodeVSFile decodes a stored vector store file.
func decodeVSFile(f store.VectorStoreFile) (vsFileRecord, error) {
	rec, err := decodeData[vsFileRecord](f.Data)
	if err != nil {
		return rec, err
	}
	rec.Obj.Status = gen.VectorStoreFileObjectStatus(f.Status)
	return rec, nil
}

// vectorStoreView returns the object of a stored vector store as of now:
// its file counts and status from its files, its expiry time and, once
// past it, status expired.
func (s *Server) vectorStoreView(ctx context.Context, project string, v store.VectorStore) (gen.VectorStoreObject, error) {
	obj, err := decodeData[gen.VectorStoreObject](v.Data)
	if err != nil {
		return obj, err
	}
	counts, err := s.db.VectorStoreFileCounts(ctx, project, v.ID)
	if err != nil {
		return obj, storeErr(err, "vector_store", v.ID)
	}
	c := gen.VectorStoreFileCounts{
		InProgress: counts[string(gen.VectorStoreFileObjectStatusInProgress)],
		Completed:  counts[string(gen.VectorStoreFileObjectStatusCompleted)],
		Failed:     counts[string(gen.VectorStoreFileObjectStatusFailed)],
		Cancelled:  counts[string(gen.VectorStoreFileObjectStatusCancelled)],
	}
	c.Total = c.InProgress + c.Completed + c.Failed + c.Cancelled
	obj.FileCounts = c
	obj.Status = gen.VectorStoreObjectStatusCompleted
	if c.InProgress > 0 {
		obj.Status = gen.VectorStoreObjectStatusInProgress
	}
	obj.Metadata = emptyMetadata(obj.Metadata)
	if obj.ExpiresAfter != nil && obj.LastActiveAt != nil {
		at := *obj.LastActiveAt + obj.ExpiresAfter.Days*86400
		obj.ExpiresAt = &at
		if s.now() >= at {
			obj.Status = gen.VectorStoreObjectStatusExpired
		}
	}
	return obj, nil
}

// getVectorStore returns the view of a vector store, or 404.
func (s *Server) getVectorStore(ctx context.Context, project, id string) (gen.VectorStoreObject, error) {
	if !validID(id) {
		return gen.VectorStoreObject{}, errNotFound("vector_store", id)
	}
	v, err := s.db.GetVectorStore(ctx, project, id)
	if err != nil {
		return gen.VectorStoreObject{}, storeErr(err, "vector_store", id)
	}
	return s.vectorStoreView(ctx, project, v)
}

// getVSFile returns a vector store file, or 404.
func (s *Server) getVSFile(ctx context.Context, project, vsID, fileID string) (vsFileRecord, error) {
	if !validID(vsID) {
		return vsFileRecord{}, errNotFound("vector_store", vsID)
	}
	if !validID(fileID) {
		return vsFileRecord{}, errNotFound("file", fileID)
	}
	if _, err := s.db.GetVectorStore(ctx, project, vsID); err != nil {
		return vsFileRecord{}, storeErr(err, "vector_store", vsID)
	}
	f, err := s.db.GetVectorStoreFile(ctx, project, vsID, fileID)
	if err != nil {
		return vsFileRecord{}, storeErr(err, "file", fileID)
	}
	return decodeVSFile(f)
}

// eachVSFile calls fn with each file of a vector store (of batchID and
// status when not empty), in pages; an error from fn stops and is
// returned.
func (s *Server) eachVSFile(ctx context.Context, project, vsID, batchID, status string, fn func(store.VectorStoreFile) error) error {
	lp := store.ListParams{Limit: vsCountsPage}
	for {
		pg, err := s.db.ListVectorStoreFiles(ctx, project, vsID, batchID, status, lp)
		if err != nil {
			return err
		}
		for _, f := range pg.Items {
			if err := fn(f); err != nil {
				return err
			}
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return nil
		}
		lp.After = pg.Items[len(pg.Items)-1].FileID
	}
}

// batchView returns the object of a stored batch as of now: its file
// counts from the files it attached, and its status.
func (s *Server) batchView(ctx context.Context, project string, b store.FileBatch) (gen.VectorStoreFileBatchObject, error) {
	obj, err := decodeData[gen.VectorStoreFileBatchObject](b.Data)
	if err != nil {
		return obj, err
	}
	var c gen.VectorStoreFileBatchFileCounts
	err = s.eachVSFile(ctx, project, b.VectorStoreID, b.ID, "", func(f store.VectorStoreFile) error {
		c.Total++
		switch gen.VectorStoreFileObjectStatus(f.Status) {
		case gen.VectorStoreFileObjectStatusInProgress:
			c.InProgress++
		case gen.VectorStoreFileObjectStatusCompleted:
			c.Completed++
		case gen.VectorStoreFileObjectStatusFailed:
			c.Failed++
		case gen.VectorStoreFileObjectStatusCancelled:
			c.Cancelled++
		}
		return nil
	})
	if err != nil {
		return obj, storeErr(err, "vector_store", b.VectorStoreID)
	}
	obj.FileCounts = c
	if obj.Status != gen.VectorStoreFileBatchObjectStatusCancelled {
		switch {
		case c.InProgress > 0:
			obj.Status = gen.VectorStoreFileBatchObjectStatusInProgress
		case c.Total > 0 && c.Failed == c.Total:
			obj.Status = gen.VectorStoreFileBatchObjectStatusFailed
		default:
			obj.Status = gen.VectorStoreFileBatchObjectStatusCompleted
		}
	}
	return obj, nil
}

// getBatch returns a stored batch, or 404.
func (s *Server) getBatch(ctx context.Context, project, vsID, batchID string) (store.FileBatch, error) {
	if !validID(vsID) {
		return store.FileBatch{}, errNotFound("vector_store", vsID)
	}
	if !validID(batchID) {
		return store.FileBatch{}, errNotFound("batch", batchID)
	}
	if _, err := s.db.GetVectorStore(ctx, project, vsID); err != nil {
		return store.FileBatch{}, storeErr(err, "vector_store", vsID)
	}
	b, err := s.db.GetFileBatch(ctx, project, vsID, batchID)
	if err != nil {
		return store.FileBatch{}, storeErr(err, "batch", batchID)
	}
	return b, nil
}

// newVSFile returns a vector store file to attach, in_progress, and the
// job that will process it.
func (s *Server) newVSFile(project, vsID, fileID string, attrs *gen.VectorStoreFileAttributes, cs *gen.ChunkingStrategyResponse) (store.VectorStoreFile, store.Job, error) {
	if cs == nil {
		cs = defaultChunking()
	}
	rec := vsFileRecord{
		Obj: gen.VectorStoreFileObject{
			Id:               fileID,
			Object:           "vector_store.file",
			CreatedAt:        s.now(),
			VectorStoreId:    vsID,
			Status:           gen.VectorStoreFileObjectStatusInProgress,
			Attributes:       cloneAttributes(attrs),
			ChunkingStrategy: cs,
		},
		Attach: newID("attach_"),
	}
	if rec.Obj.Attributes == nil {
		rec.Obj.Attributes = &gen.VectorStoreFileAttributes{}
	}
	data, err := encodeData(rec)
	if err != nil {
		return store.VectorStoreFile{}, store.Job{}, err
	}
	f := store.VectorStoreFile{Project: project, VectorStoreID: vsID, FileID: fileID, Status: string(rec.Obj.Status),
		CreatedAt: int64(rec.Obj.CreatedAt), Data: data}
	return f, s.ingestJob(project, vsID, fileID, rec.Attach), nil
}

// vectorStoreSpec is what a new vector store is made of.
type vectorStoreSpec struct {
	id       string // "": a new id
	name     *string
	metadata *gen.Metadata
	expires  *gen.VectorStoreExpirationAfter
	fileIDs  []string
	chunking *gen.ChunkingStrategyResponse
}

// createVectorStore writes a new vector store with its files attached
// and their ingestion jobs, in one transaction, and returns its view. On
// an error, the returned object still has the vector store's id: the
// store may have been written (the write's outcome is unknown, or only
// reading it back failed).
func (s *Server) createVectorStore(ctx context.Context, project string, sp vectorStoreSpec) (gen.VectorStoreObject, error) {
	now := s.now()
	if sp.id == "" {
		sp.id = newID(prefixVectorStore)
	}
	obj := gen.VectorStoreObject{
		Id:           sp.id,
		Object:       "vector_store",
		CreatedAt:    now,
		LastActiveAt: &now,
		Metadata:     emptyMetadata(sp.metadata),
		Status:       gen.VectorStoreObjectStatusCompleted,
	}
	if sp.name != nil {
		obj.Name = *sp.name
	}
	if sp.expires != nil {
		e := *sp.expires
		obj.ExpiresAfter = &e
	}
	data, err := encodeData(obj)
	if err != nil {
		return obj, err
	}
	var files []store.VectorStoreFile
	var jobs []store.Job
	seen := map[string]bool{}
	for _, id := range sp.fileIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		f, j, err := s.newVSFile(project, obj.Id, id, nil, sp.chunking)
		if err != nil {
			return obj, err
		}
		files, jobs = append(files, f), append(jobs, j)
	}
	sv := store.VectorStore{Project: project, ID: obj.Id, CreatedAt: int64(now), Data: data}
	if c := claimFence(ctx, intentVectorStore, obj.Id); c != nil {
		err = s.db.CreateVectorStoreClaimed(ctx, *c, sv, files, s.durable(jobs)...)
	} else {
		err = s.db.CreateVectorStore(ctx, sv, files, s.durable(jobs)...)
	}
	if err != nil {
		return obj, storeErr(err, "vector_store", obj.Id)
	}
	s.afterAttach(ctx, project, obj.Id, files)
	view, err := s.getVectorStore(ctx, project, obj.Id)
	if err != nil {
		return obj, err
	}
	return view, nil
}

// settleUsage writes a vector store's usage_bytes, the sum over its
// completed files, when none of its files is in progress (or always, when
// force). Errors are logged: usage is a figure, not a state.
func (s *Server) settleUsage(ctx context.Context, project, vsID string, force bool) {
	if !force {
		counts, err := s.db.VectorStoreFileCounts(ctx, project, vsID)
		if err != nil || counts[string(gen.VectorStoreFileObjectStatusInProgress)] > 0 {
			return
		}
	}
	usage := 0
	err := s.eachVSFile(ctx, project, vsID, "", string(gen.VectorStoreFileObjectStatusCompleted), func(f store.VectorStoreFile) error {
		rec, err := decodeVSFile(f)
		if err != nil {
			return err
		}
		usage += rec.Obj.UsageBytes
		return nil
	})
	if err == nil {
		_, err = s.db.UpdateVectorStore(ctx, project, vsID, func(v *store.VectorStore) error {
			obj, err := decodeData[gen.VectorStoreObject](v.Data)
			if err != nil {
				return err
			}
			if obj.UsageBytes == usage {
				return errUnchanged
			}
			obj.UsageBytes = usage
			v.Data, err = encodeData(obj)
			return err
		})
	}
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("vector store: usage_bytes not updated", "vector_store_id", vsID, "err", err.Error())
	}
}

// errUnchanged ends an update function that has nothing to write.
var errUnchanged = errors.New("unchanged")

// touchVectorStore sets a vector store's last_active_at to now (a search
// keeps it active). It writes only when the second changed.
func (s *Server) touchVectorStore(ctx context.Context, project, vsID string) {
	now := s.now()
	_, err := s.db.UpdateVectorStore(ctx, project, vsID, func(v *store.VectorStore) error {
		obj, err := decodeData[gen.VectorStoreObject](v.Data)
		if err != nil {
			return err
		}
		if obj.LastActiveAt != nil && *obj.LastActiveAt == now {
			return errUnchanged
		}
		obj.LastActiveAt = &now
		v.Data, err = encodeData(obj)
		return err
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("vector store: last_active_at not updated", "vector_store_id", vsID, "err", err.Error())
	}
}

// vectorStoreExists reports whether id names a vector store of project.
func (s *Server) vectorStoreExists(ctx context.Context, project, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	_, err := s.db.GetVectorStore(ctx, project, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("vector store %s: %w", truncateForMessage(id), err)
}
