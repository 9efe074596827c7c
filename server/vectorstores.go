package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/extract"
	"github.com/assistants-go/assistants/server/store"
)

// Vector stores.
//
// Vector stores, their files and batches are kept in the store (see
// vsstore.go). Files attached to a vector store (directly, through a
// batch, or when the store is created) start in_progress, with a durable
// job that processes them (ingestjobs.go, ingest.go): a file whose text
// can be extracted is chunked by tokens, embedded and indexed and becomes
// completed and searchable; an unknown, unsupported, empty or unreadable
// file becomes failed with last_error, and the batch's other files go on.
// Detaching a file, deleting it or deleting the store drops its chunks
// from the index. The store is in_progress while any of its files is,
// completed otherwise. A batch is in_progress while any of the files it
// attached is, then completed (failed when every file failed); cancelling
// it marks its unprocessed files cancelled and the batch cancelled.
// file_counts are counted from the files on every read.

const (
	// maxBatchFiles bounds the files of one file batch (and of a vector
	// store built from tool resources).
	maxBatchFiles = 2000
	// maxStoreCreateFiles bounds the file_ids of createVectorStore.
	maxStoreCreateFiles = 500
	// Default chunking (the API's "auto").
	defaultChunkTokens   = chunk.AutoMaxTokens
	defaultOverlapTokens = chunk.AutoOverlapTokens
	maxSearchResults     = 50
	defaultSearchResults = 10
)

// ListVectorStores returns a page of vector stores.
func (s *Server) ListVectorStores(ctx context.Context, req genserver.ListVectorStoresRequestObject) (genserver.ListVectorStoresResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	pg, err := s.db.ListVectorStores(ctx, projectOf(ctx), storeList(lp))
	if err != nil {
		return nil, storeErr(err, "vector_store", "")
	}
	data := make([]gen.VectorStoreObject, 0, len(pg.Items))
	for _, v := range pg.Items {
		obj, err := s.vectorStoreView(ctx, projectOf(ctx), v)
		if err != nil {
			return nil, err
		}
		data = append(data, obj)
	}
	first, last := firstLast(data, func(v gen.VectorStoreObject) string { return v.Id })
	return genserver.ListVectorStores200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: pg.HasMore}, nil
}

// CreateVectorStore creates a vector store, attaching file_ids if given.
func (s *Server) CreateVectorStore(ctx context.Context, req genserver.CreateVectorStoreRequestObject) (genserver.CreateVectorStoreResponseObject, error) {
	b := req.Body
	if b == nil {
		b = &gen.CreateVectorStoreRequest{}
	}
	if err := validateMetadata(b.Metadata); err != nil {
		return nil, err
	}
	if err := validateName(b.Name); err != nil {
		return nil, err
	}
	if err := validateExpiresAfter(b.ExpiresAfter); err != nil {
		return nil, err
	}
	cs, err := chunkingFromRequest("chunking_strategy", b.ChunkingStrategy)
	if err != nil {
		return nil, err
	}
	var fileIDs []string
	if b.FileIds != nil {
		fileIDs = *b.FileIds
	}
	if err := checkFileIDFormat("file_ids", fileIDs, maxStoreCreateFiles); err != nil {
		return nil, err
	}
	view, err := s.createVectorStore(ctx, projectOf(ctx), vectorStoreSpec{id: createdID(ctx, intentVectorStore, prefixVectorStore), name: b.Name, metadata: b.Metadata, expires: b.ExpiresAfter, fileIDs: fileIDs, chunking: cs})
	if err != nil {
		return nil, err
	}
	return genserver.CreateVectorStore200JSONResponse(view), nil
}

// GetVectorStore returns one vector store.
func (s *Server) GetVectorStore(ctx context.Context, req genserver.GetVectorStoreRequestObject) (genserver.GetVectorStoreResponseObject, error) {
	v, err := s.getVectorStore(ctx, projectOf(ctx), req.VectorStoreId)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStore200JSONResponse(v), nil
}

// ModifyVectorStore changes a vector store's name, metadata or expiry.
func (s *Server) ModifyVectorStore(ctx context.Context, req genserver.ModifyVectorStoreRequestObject) (genserver.ModifyVectorStoreResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	if err := validateMetadata(b.Metadata); err != nil {
		return nil, err
	}
	if err := validateName(b.Name); err != nil {
		return nil, err
	}
	if err := validateExpiresAfter(b.ExpiresAfter); err != nil {
		return nil, err
	}
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	v, err := s.db.UpdateVectorStore(ctx, projectOf(ctx), req.VectorStoreId, func(v *store.VectorStore) error {
		obj, err := decodeData[gen.VectorStoreObject](v.Data)
		if err != nil {
			return err
		}
		if b.Name != nil {
			obj.Name = *b.Name
		}
		if b.Metadata != nil {
			obj.Metadata = cloneMetadata(b.Metadata)
		}
		if b.ExpiresAfter != nil {
			e := *b.ExpiresAfter
			obj.ExpiresAfter = &e
		}
		v.Data, err = encodeData(obj)
		return err
	})
	if err != nil {
		return nil, storeErr(err, "vector_store", req.VectorStoreId)
	}
	view, err := s.vectorStoreView(ctx, projectOf(ctx), v)
	if err != nil {
		return nil, err
	}
	return genserver.ModifyVectorStore200JSONResponse(view), nil
}

// DeleteVectorStore deletes a vector store (its files stay uploaded).
func (s *Server) DeleteVectorStore(ctx context.Context, req genserver.DeleteVectorStoreRequestObject) (genserver.DeleteVectorStoreResponseObject, error) {
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	if err := s.deleteVectorStore(ctx, projectOf(ctx), req.VectorStoreId); err != nil {
		return nil, storeErr(err, "vector_store", req.VectorStoreId)
	}
	return genserver.DeleteVectorStore200JSONResponse{Id: req.VectorStoreId, Object: "vector_store.deleted", Deleted: true}, nil
}

// deleteVectorStore deletes a vector store of project with its files'
// attachments and their ingest jobs (the store's DeleteVectorStore), and
// drops its chunks from the in-memory index: DELETE
// /v1/vector_stores/{vector_store_id}, and the undoing of the vector
// stores a failed create made for its tool_resources (madeStores). It
// returns the store's error as is (store.ErrNotFound: no such store).
func (s *Server) deleteVectorStore(ctx context.Context, project, id string) error {
	if err := s.db.DeleteVectorStore(ctx, project, id); err != nil {
		return err
	}
	s.unindexVectorStore(id) // the store's own index dropped them with the store
	return nil
}

// listVSFiles answers a list of a vector store's files (of batchID when
// not empty), optionally only those with a status (filter).
func (s *Server) listVSFiles(ctx context.Context, project, vsID, batchID string, lp listParams, filter *string) ([]gen.VectorStoreFileObject, string, string, bool, error) {
	if filter != nil && !gen.ListVectorStoreFilesParamsFilter(*filter).Valid() {
		return nil, "", "", false, errBadRequest("filter", "Invalid value for 'filter': expected one of 'in_progress', 'completed', 'failed' or 'cancelled'.")
	}
	status := ""
	if filter != nil {
		status = *filter
	}
	pg, err := s.db.ListVectorStoreFiles(ctx, project, vsID, batchID, status, storeList(lp))
	if err != nil {
		return nil, "", "", false, storeErr(err, "vector_store", vsID)
	}
	data := make([]gen.VectorStoreFileObject, 0, len(pg.Items))
	for _, f := range pg.Items {
		rec, err := decodeVSFile(f)
		if err != nil {
			return nil, "", "", false, err
		}
		data = append(data, rec.Obj)
	}
	first, last := firstLast(data, func(f gen.VectorStoreFileObject) string { return f.Id })
	return data, first, last, pg.HasMore, nil
}

// ListVectorStoreFiles returns a page of a vector store's files, optionally
// only those with a status (filter).
func (s *Server) ListVectorStoreFiles(ctx context.Context, req genserver.ListVectorStoreFilesRequestObject) (genserver.ListVectorStoreFilesResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	data, first, last, more, err := s.listVSFiles(ctx, projectOf(ctx), req.VectorStoreId, "", lp, (*string)(p.Filter))
	if err != nil {
		return nil, err
	}
	return genserver.ListVectorStoreFiles200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// CreateVectorStoreFile attaches a file to a vector store. An unknown file
// id is accepted and ends failed, like an empty file.
func (s *Server) CreateVectorStoreFile(ctx context.Context, req genserver.CreateVectorStoreFileRequestObject) (genserver.CreateVectorStoreFileResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	if b.FileId == "" {
		return nil, errBadRequest("file_id", "Missing required parameter: 'file_id'.")
	}
	if err := checkFileIDFormat("file_id", []string{b.FileId}, 1); err != nil {
		return nil, err
	}
	if err := validateAttributes("attributes", b.Attributes); err != nil {
		return nil, err
	}
	cs, err := chunkingFromRequest("chunking_strategy", b.ChunkingStrategy)
	if err != nil {
		return nil, err
	}
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	f, job, err := s.newVSFile(projectOf(ctx), req.VectorStoreId, b.FileId, b.Attributes, cs)
	if err != nil {
		return nil, err
	}
	if err := s.db.PutVectorStoreFile(ctx, f, s.durable([]store.Job{job})...); err != nil {
		return nil, storeErr(err, "vector_store", req.VectorStoreId)
	}
	s.afterAttach(ctx, projectOf(ctx), req.VectorStoreId, []store.VectorStoreFile{f})
	rec, err := s.getVSFile(ctx, projectOf(ctx), req.VectorStoreId, b.FileId)
	if err != nil {
		return nil, err
	}
	return genserver.CreateVectorStoreFile200JSONResponse(rec.Obj), nil
}

// GetVectorStoreFile returns one file of a vector store.
func (s *Server) GetVectorStoreFile(ctx context.Context, req genserver.GetVectorStoreFileRequestObject) (genserver.GetVectorStoreFileResponseObject, error) {
	rec, err := s.getVSFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStoreFile200JSONResponse(rec.Obj), nil
}

// DeleteVectorStoreFile detaches a file from a vector store; the file stays
// uploaded.
func (s *Server) DeleteVectorStoreFile(ctx context.Context, req genserver.DeleteVectorStoreFileRequestObject) (genserver.DeleteVectorStoreFileResponseObject, error) {
	if _, err := s.getVSFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId); err != nil {
		return nil, err
	}
	if err := s.db.DeleteVectorStoreFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId); err != nil {
		return nil, storeErr(err, "file", req.FileId)
	}
	s.unindexFile(req.VectorStoreId, req.FileId)
	s.settleUsage(ctx, projectOf(ctx), req.VectorStoreId, true)
	return genserver.DeleteVectorStoreFile200JSONResponse{Id: req.FileId, Object: "vector_store.file.deleted", Deleted: true}, nil
}

// UpdateVectorStoreFileAttributes replaces a vector store file's attributes
// (null clears them).
func (s *Server) UpdateVectorStoreFileAttributes(ctx context.Context, req genserver.UpdateVectorStoreFileAttributesRequestObject) (genserver.UpdateVectorStoreFileAttributesResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	if err := validateAttributes("attributes", req.Body.Attributes); err != nil {
		return nil, err
	}
	if _, err := s.getVSFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId); err != nil {
		return nil, err
	}
	var out gen.VectorStoreFileObject
	_, err := s.db.UpdateVectorStoreFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		rec, err := decodeVSFile(*f)
		if err != nil {
			return nil, err
		}
		rec.Obj.Attributes = cloneAttributes(req.Body.Attributes)
		out = rec.Obj
		f.Data, err = encodeData(rec)
		return nil, err
	})
	if err != nil {
		return nil, storeErr(err, "file", req.FileId)
	}
	return genserver.UpdateVectorStoreFileAttributes200JSONResponse(out), nil
}

// RetrieveVectorStoreFileContent returns a processed file's text, split in
// parts at blank lines (extracted again from the uploaded file). A file
// not (or not yet) processed has no content.
func (s *Server) RetrieveVectorStoreFileContent(ctx context.Context, req genserver.RetrieveVectorStoreFileContentRequestObject) (genserver.RetrieveVectorStoreFileContentResponseObject, error) {
	rec, err := s.getVSFile(ctx, projectOf(ctx), req.VectorStoreId, req.FileId)
	if err != nil {
		return nil, err
	}
	var text string
	if rec.Obj.Status == gen.VectorStoreFileObjectStatusCompleted {
		file, data, err := s.readFileIn(ctx, projectOf(ctx), req.FileId)
		var ae *apiError
		switch {
		case err == nil:
			if t, xerr := extract.Text(file.Filename, data); xerr == nil {
				text = t
			}
		case !errors.As(err, &ae):
			return nil, err
		}
	}
	parts := []gen.VectorStoreFileContentPart{}
	for _, p := range splitParagraphs(text) {
		parts = append(parts, gen.VectorStoreFileContentPart{Type: ptrOf("text"), Text: ptrOf(p)})
	}
	return genserver.RetrieveVectorStoreFileContent200JSONResponse{Object: "vector_store.file_content.page", Data: parts, HasMore: false}, nil
}

// CreateVectorStoreFileBatch attaches several files at once, either
// file_ids with shared attributes and chunking, or files each with their
// own.
func (s *Server) CreateVectorStoreFileBatch(ctx context.Context, req genserver.CreateVectorStoreFileBatchRequestObject) (genserver.CreateVectorStoreFileBatchResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	type item struct {
		id    string
		attrs *gen.VectorStoreFileAttributes
		cs    *gen.ChunkingStrategyResponse
	}
	var items []item
	switch {
	case b.FileIds != nil && b.Files != nil:
		return nil, errBadRequest("files", "Invalid request: give either 'file_ids' or 'files', not both.")
	case b.FileIds != nil:
		if err := checkFileIDFormat("file_ids", *b.FileIds, maxBatchFiles); err != nil {
			return nil, err
		}
		if err := validateAttributes("attributes", b.Attributes); err != nil {
			return nil, err
		}
		cs, err := chunkingFromRequest("chunking_strategy", b.ChunkingStrategy)
		if err != nil {
			return nil, err
		}
		for _, id := range *b.FileIds {
			items = append(items, item{id: id, attrs: b.Attributes, cs: cs})
		}
	case b.Files != nil:
		if len(*b.Files) > maxBatchFiles {
			return nil, errBadRequest("files", "Invalid 'files': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxBatchFiles, len(*b.Files))
		}
		for i, f := range *b.Files {
			param := fmt.Sprintf("files[%d]", i)
			if err := checkFileIDFormat(param+".file_id", []string{f.FileId}, 1); err != nil {
				return nil, err
			}
			if err := validateAttributes(param+".attributes", f.Attributes); err != nil {
				return nil, err
			}
			cs, err := chunkingFromRequest(param+".chunking_strategy", f.ChunkingStrategy)
			if err != nil {
				return nil, err
			}
			items = append(items, item{id: f.FileId, attrs: f.Attributes, cs: cs})
		}
	default:
		return nil, errBadRequest("file_ids", "Missing required parameter: 'file_ids' (or 'files').")
	}
	if len(items) == 0 {
		return nil, errBadRequest("file_ids", "Invalid 'file_ids': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	obj := gen.VectorStoreFileBatchObject{
		Id:            createdID(ctx, intentFileBatch, prefixFileBatch), // the Idempotency-Key claim's, if any (idemshared.go)
		Object:        "vector_store.files_batch",
		CreatedAt:     s.now(),
		VectorStoreId: req.VectorStoreId,
		Status:        gen.VectorStoreFileBatchObjectStatusInProgress,
	}
	data, err := encodeData(obj)
	if err != nil {
		return nil, err
	}
	var files []store.VectorStoreFile
	var jobs []store.Job
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.id] {
			continue
		}
		seen[it.id] = true
		f, j, err := s.newVSFile(projectOf(ctx), req.VectorStoreId, it.id, it.attrs, it.cs)
		if err != nil {
			return nil, err
		}
		f.BatchID = obj.Id
		files, jobs = append(files, f), append(jobs, j)
	}
	batch := store.FileBatch{Project: projectOf(ctx), ID: obj.Id, VectorStoreID: req.VectorStoreId, CreatedAt: int64(obj.CreatedAt), Data: data}
	if c := claimFence(ctx, intentFileBatch, batch.ID); c != nil {
		err = s.db.CreateFileBatchClaimed(ctx, *c, batch, files, s.durable(jobs)...)
	} else {
		err = s.db.CreateFileBatch(ctx, batch, files, s.durable(jobs)...)
	}
	if err != nil {
		return nil, storeErr(err, "vector_store", req.VectorStoreId)
	}
	s.afterAttach(ctx, projectOf(ctx), req.VectorStoreId, files)
	view, err := s.batchView(ctx, projectOf(ctx), batch)
	if err != nil {
		return nil, err
	}
	return genserver.CreateVectorStoreFileBatch200JSONResponse(view), nil
}

// GetVectorStoreFileBatch returns one file batch.
func (s *Server) GetVectorStoreFileBatch(ctx context.Context, req genserver.GetVectorStoreFileBatchRequestObject) (genserver.GetVectorStoreFileBatchResponseObject, error) {
	b, err := s.getBatch(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId)
	if err != nil {
		return nil, err
	}
	view, err := s.batchView(ctx, projectOf(ctx), b)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStoreFileBatch200JSONResponse(view), nil
}

// CancelVectorStoreFileBatch cancels a batch: the batch becomes cancelled,
// then its files not yet processed become cancelled (and leave the vector
// store's in_progress count; a job that finishes one meanwhile drops its
// chunks). Cancelling a cancelled batch returns it unchanged; a completed
// or failed batch cannot be cancelled (400).
func (s *Server) CancelVectorStoreFileBatch(ctx context.Context, req genserver.CancelVectorStoreFileBatchRequestObject) (genserver.CancelVectorStoreFileBatchResponseObject, error) {
	b, err := s.getBatch(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId)
	if err != nil {
		return nil, err
	}
	view, err := s.batchView(ctx, projectOf(ctx), b)
	if err != nil {
		return nil, err
	}
	switch view.Status {
	case gen.VectorStoreFileBatchObjectStatusCancelled:
		return genserver.CancelVectorStoreFileBatch200JSONResponse(view), nil
	case gen.VectorStoreFileBatchObjectStatusInProgress:
	default:
		return nil, errBadRequest("batch_id", "Cannot cancel a batch with status '%s'.", view.Status)
	}
	b, err = s.db.UpdateFileBatch(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId, func(fb *store.FileBatch) error {
		obj, err := decodeData[gen.VectorStoreFileBatchObject](fb.Data)
		if err != nil {
			return err
		}
		obj.Status = gen.VectorStoreFileBatchObjectStatusCancelled
		fb.Data, err = encodeData(obj)
		return err
	})
	if err != nil {
		return nil, storeErr(err, "batch", req.BatchId)
	}
	var pending []string
	err = s.eachVSFile(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId, string(gen.VectorStoreFileObjectStatusInProgress), func(f store.VectorStoreFile) error {
		pending = append(pending, f.FileID)
		return nil
	})
	if err != nil {
		return nil, storeErr(err, "vector_store", req.VectorStoreId)
	}
	for _, id := range pending {
		_, err := s.db.UpdateVectorStoreFile(ctx, projectOf(ctx), req.VectorStoreId, id, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
			rec, err := decodeVSFile(*f)
			if err != nil {
				return nil, err
			}
			if f.BatchID != req.BatchId || rec.Obj.Status != gen.VectorStoreFileObjectStatusInProgress {
				return nil, errUnchanged
			}
			rec.Obj.Status = gen.VectorStoreFileObjectStatusCancelled
			f.Status = string(rec.Obj.Status)
			f.Data, err = encodeData(rec)
			return nil, err
		})
		if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound) {
			return nil, storeErr(err, "file", id)
		}
	}
	s.settleUsage(ctx, projectOf(ctx), req.VectorStoreId, false)
	view, err = s.batchView(ctx, projectOf(ctx), b)
	if err != nil {
		return nil, err
	}
	return genserver.CancelVectorStoreFileBatch200JSONResponse(view), nil
}

// ListFilesInVectorStoreBatch returns a page of the files a batch attached
// that are still in the vector store.
func (s *Server) ListFilesInVectorStoreBatch(ctx context.Context, req genserver.ListFilesInVectorStoreBatchRequestObject) (genserver.ListFilesInVectorStoreBatchResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	if p.Filter != nil && !p.Filter.Valid() {
		return nil, errBadRequest("filter", "Invalid value for 'filter': expected one of 'in_progress', 'completed', 'failed' or 'cancelled'.")
	}
	if _, err := s.getBatch(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId); err != nil {
		return nil, err
	}
	data, first, last, more, err := s.listVSFiles(ctx, projectOf(ctx), req.VectorStoreId, req.BatchId, lp, (*string)(p.Filter))
	if err != nil {
		return nil, err
	}
	return genserver.ListFilesInVectorStoreBatch200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// --- validation helpers ---

func validateName(name *string) error {
	if name != nil && utf8.RuneCountInString(*name) > maxNameLen {
		return errBadRequest("name", "Invalid 'name': string too long. Expected a string with maximum length %d.", maxNameLen)
	}
	return nil
}

func validateExpiresAfter(e *gen.VectorStoreExpirationAfter) error {
	if e == nil {
		return nil
	}
	if e.Anchor != gen.VectorStoreExpirationAfterAnchor("last_active_at") {
		return errBadRequest("expires_after.anchor", "Invalid value for 'expires_after.anchor': expected 'last_active_at'.")
	}
	if e.Days < 1 || e.Days > 365 {
		return errBadRequest("expires_after.days", "Invalid 'expires_after.days': expected an integer between 1 and 365.")
	}
	return nil
}

// checkFileIDFormat checks the count and the shape of file ids given to a
// vector store. Unknown (well-formed) ids are accepted: their vector store
// file ends failed.
func checkFileIDFormat(param string, ids []string, limit int) error {
	if len(ids) > limit {
		return errBadRequest(param, "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, limit, len(ids))
	}
	for i, id := range ids {
		if !validID(id) {
			p := param
			if limit > 1 {
				p = fmt.Sprintf("%s[%d]", param, i)
			}
			return errBadRequest(p, "Invalid '%s': '%s' is not a valid file id.", p, truncateForMessage(id))
		}
	}
	return nil
}

// chunkingFromRequest validates a chunking strategy and returns what the
// file will report (nil: the default).
func chunkingFromRequest(param string, cs *gen.ChunkingStrategyRequestParam) (*gen.ChunkingStrategyResponse, error) {
	if cs == nil {
		return nil, nil
	}
	kind, err := cs.Discriminator()
	if err != nil {
		return nil, errBadRequest(param, "Invalid '%s': expected a chunking strategy object.", param)
	}
	switch kind {
	case "auto":
		return nil, nil
	case "static":
		st, err := cs.AsStaticChunkingStrategyRequestParam()
		if err != nil {
			return nil, errBadRequest(param+".static", "Invalid '%s.static': %s.", param, firstLine(err.Error()))
		}
		strat := chunk.Strategy{MaxTokens: st.Static.MaxChunkSizeTokens, OverlapTokens: st.Static.ChunkOverlapTokens}
		if err := strat.Validate(param); err != nil {
			var pe *chunk.ParamError
			if errors.As(err, &pe) {
				return nil, errBadRequest(pe.Param, "%s", pe.Message)
			}
			return nil, errBadRequest(param, "Invalid '%s': %s", param, err.Error())
		}
		var out gen.ChunkingStrategyResponse
		if err := out.FromStaticChunkingStrategyResponseParam(gen.StaticChunkingStrategyResponseParam{Type: "static", Static: st.Static}); err != nil {
			return nil, err
		}
		return &out, nil
	default:
		return nil, errBadRequest(param+".type", "Invalid value for '%s.type': expected 'auto' or 'static'.", param)
	}
}

func defaultChunking() *gen.ChunkingStrategyResponse {
	var out gen.ChunkingStrategyResponse
	_ = out.FromStaticChunkingStrategyResponseParam(gen.StaticChunkingStrategyResponseParam{
		Type:   "static",
		Static: gen.StaticChunkingStrategy{MaxChunkSizeTokens: defaultChunkTokens, ChunkOverlapTokens: defaultOverlapTokens},
	})
	return &out
}

func chunkSizes(cs *gen.ChunkingStrategyResponse) (maxTokens, overlap int) {
	if cs != nil {
		if st, err := cs.AsStaticChunkingStrategyResponseParam(); err == nil && st.Static.MaxChunkSizeTokens > 0 {
			return st.Static.MaxChunkSizeTokens, st.Static.ChunkOverlapTokens
		}
	}
	return defaultChunkTokens, defaultOverlapTokens
}

func cloneAttributes(a *gen.VectorStoreFileAttributes) *gen.VectorStoreFileAttributes {
	if a == nil {
		return nil
	}
	c := make(gen.VectorStoreFileAttributes, len(*a))
	for k, v := range *a {
		c[k] = v
	}
	return &c
}

// --- text ---

// splitParagraphs splits text at blank lines, dropping empty parts.
func splitParagraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
