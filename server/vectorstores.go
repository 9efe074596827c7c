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
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// Vector stores.
//
// Files attached to a vector store (directly, through a batch, or when the
// store is created) start in_progress and are processed one StepDelay later
// by a background task (at once, before the reply, when StepDelay is 0): a
// file whose text can be extracted is chunked by tokens, embedded and
// indexed (ingest.go) and becomes completed and searchable; an unknown,
// unsupported, empty or unreadable file becomes failed with last_error.
// Detaching a file, deleting it or deleting the store drops its chunks
// from the index. The
// store is in_progress while any of its files is, completed otherwise. A
// batch is in_progress until all its files are processed, then completed
// (failed when every file failed); cancelling it marks its unprocessed
// files cancelled and the batch cancelled. file_counts are recomputed on
// every change.

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

// vsFileData is what processing extracted from a file (its chunks are in
// the retrieval index).
type vsFileData struct {
	text string
}

// ListVectorStores returns a page of vector stores.
func (s *Server) ListVectorStores(ctx context.Context, req genserver.ListVectorStoresRequestObject) (genserver.ListVectorStoresResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	recs := s.st.vectorStores.all()
	items := make([]gen.VectorStoreObject, 0, len(recs))
	project := projectOf(ctx)
	for _, r := range recs {
		if r.project != project {
			continue
		}
		items = append(items, s.vectorStoreView(r))
	}
	s.mu.RUnlock()
	data, first, last, more := page(items, func(v gen.VectorStoreObject) string { return v.Id }, lp)
	return genserver.ListVectorStores200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
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
	s.mu.Lock()
	rec := s.newVectorStoreLocked(projectOf(ctx), b.Name, b.Metadata, b.ExpiresAfter, fileIDs, cs)
	view := s.vectorStoreView(rec)
	s.mu.Unlock()
	return genserver.CreateVectorStore200JSONResponse(view), nil
}

// GetVectorStore returns one vector store.
func (s *Server) GetVectorStore(ctx context.Context, req genserver.GetVectorStoreRequestObject) (genserver.GetVectorStoreResponseObject, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, err := s.lookupVectorStoreLocked(ctx, req.VectorStoreId)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStore200JSONResponse(s.vectorStoreView(rec)), nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.lookupVectorStoreLocked(ctx, req.VectorStoreId)
	if err != nil {
		return nil, err
	}
	if b.Name != nil {
		rec.obj.Name = *b.Name
	}
	if b.Metadata != nil {
		rec.obj.Metadata = cloneMetadata(b.Metadata)
	}
	if b.ExpiresAfter != nil {
		e := *b.ExpiresAfter
		rec.obj.ExpiresAfter = &e
	}
	s.refreshVectorStoreLocked(rec)
	return genserver.ModifyVectorStore200JSONResponse(s.vectorStoreView(rec)), nil
}

// DeleteVectorStore deletes a vector store (its files stay uploaded).
func (s *Server) DeleteVectorStore(ctx context.Context, req genserver.DeleteVectorStoreRequestObject) (genserver.DeleteVectorStoreResponseObject, error) {
	if !validID(req.VectorStoreId) {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	s.mu.Lock()
	_, ok := s.vectorStoreOf(ctx, req.VectorStoreId)
	ok = ok && s.st.vectorStores.del(req.VectorStoreId)
	if ok {
		s.forgetVectorStore(ctx, req.VectorStoreId) // vssnapshot.go
	}
	s.mu.Unlock()
	if ok {
		s.unindexVectorStore(req.VectorStoreId)
	}
	if !ok {
		return nil, errNotFound("vector_store", req.VectorStoreId)
	}
	return genserver.DeleteVectorStore200JSONResponse{Id: req.VectorStoreId, Object: "vector_store.deleted", Deleted: true}, nil
}

// ListVectorStoreFiles returns a page of a vector store's files, optionally
// only those with a status (filter).
func (s *Server) ListVectorStoreFiles(ctx context.Context, req genserver.ListVectorStoreFilesRequestObject) (genserver.ListVectorStoreFilesResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	if p.Filter != nil && !p.Filter.Valid() {
		return nil, errBadRequest("filter", "Invalid value for 'filter': expected one of 'in_progress', 'completed', 'failed' or 'cancelled'.")
	}
	s.mu.RLock()
	rec, err := s.lookupVectorStoreLocked(ctx, req.VectorStoreId)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	items := filterFiles(rec.files.all(), "", (*string)(p.Filter))
	s.mu.RUnlock()
	data, first, last, more := page(items, func(f gen.VectorStoreFileObject) string { return f.Id }, lp)
	return genserver.ListVectorStoreFiles200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// filterFiles returns the objects of files, keeping those of batchID (when
// not empty) and with status (when not nil).
func filterFiles(files []*vsFileRec, batchID string, status *string) []gen.VectorStoreFileObject {
	out := make([]gen.VectorStoreFileObject, 0, len(files))
	for _, f := range files {
		if batchID != "" && f.batchID != batchID {
			continue
		}
		if status != nil && string(f.obj.Status) != *status {
			continue
		}
		out = append(out, f.obj)
	}
	return out
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
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.lookupVectorStoreLocked(ctx, req.VectorStoreId)
	if err != nil {
		return nil, err
	}
	f := s.attachFileLocked(rec, b.FileId, b.Attributes, cs, "")
	s.scheduleProcessingLocked(rec)
	return genserver.CreateVectorStoreFile200JSONResponse(f.obj), nil
}

// GetVectorStoreFile returns one file of a vector store.
func (s *Server) GetVectorStoreFile(ctx context.Context, req genserver.GetVectorStoreFileRequestObject) (genserver.GetVectorStoreFileResponseObject, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, f, err := s.lookupVectorStoreFileLocked(ctx, req.VectorStoreId, req.FileId)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStoreFile200JSONResponse(f.obj), nil
}

// DeleteVectorStoreFile detaches a file from a vector store; the file stays
// uploaded.
func (s *Server) DeleteVectorStoreFile(ctx context.Context, req genserver.DeleteVectorStoreFileRequestObject) (genserver.DeleteVectorStoreFileResponseObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _, err := s.lookupVectorStoreFileLocked(ctx, req.VectorStoreId, req.FileId)
	if err != nil {
		return nil, err
	}
	rec.files.del(req.FileId)
	s.unindexFile(rec.obj.Id, req.FileId)
	s.refreshVectorStoreLocked(rec)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	_, f, err := s.lookupVectorStoreFileLocked(ctx, req.VectorStoreId, req.FileId)
	if err != nil {
		return nil, err
	}
	f.obj.Attributes = cloneAttributes(req.Body.Attributes)
	return genserver.UpdateVectorStoreFileAttributes200JSONResponse(f.obj), nil
}

// RetrieveVectorStoreFileContent returns a processed file's text, split in
// parts at blank lines. A file not (or not yet) processed has no content.
func (s *Server) RetrieveVectorStoreFileContent(ctx context.Context, req genserver.RetrieveVectorStoreFileContentRequestObject) (genserver.RetrieveVectorStoreFileContentResponseObject, error) {
	s.mu.RLock()
	_, f, err := s.lookupVectorStoreFileLocked(ctx, req.VectorStoreId, req.FileId)
	var text string
	if err == nil && f.data != nil {
		text = f.data.text
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
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
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.lookupVectorStoreLocked(ctx, req.VectorStoreId)
	if err != nil {
		return nil, err
	}
	batch := &batchRec{
		obj: gen.VectorStoreFileBatchObject{
			Id:            newID(prefixFileBatch),
			Object:        "vector_store.files_batch",
			CreatedAt:     s.now(),
			VectorStoreId: rec.obj.Id,
			Status:        gen.VectorStoreFileBatchObjectStatusInProgress,
		},
		status: map[string]gen.VectorStoreFileObjectStatus{},
	}
	rec.batches.put(batch.obj.Id, batch)
	for _, it := range items {
		if _, dup := batch.status[it.id]; dup {
			continue
		}
		batch.fileIDs = append(batch.fileIDs, it.id)
		s.attachFileLocked(rec, it.id, it.attrs, it.cs, batch.obj.Id)
	}
	s.refreshVectorStoreLocked(rec)
	s.scheduleProcessingLocked(rec)
	return genserver.CreateVectorStoreFileBatch200JSONResponse(batch.obj), nil
}

// GetVectorStoreFileBatch returns one file batch.
func (s *Server) GetVectorStoreFileBatch(ctx context.Context, req genserver.GetVectorStoreFileBatchRequestObject) (genserver.GetVectorStoreFileBatchResponseObject, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, b, err := s.lookupBatchLocked(ctx, req.VectorStoreId, req.BatchId)
	if err != nil {
		return nil, err
	}
	return genserver.GetVectorStoreFileBatch200JSONResponse(b.obj), nil
}

// CancelVectorStoreFileBatch cancels a batch: its files not yet processed
// become cancelled (and leave the vector store's in_progress count), and
// the batch becomes cancelled. Cancelling a cancelled batch returns it
// unchanged; a completed or failed batch cannot be cancelled (400).
func (s *Server) CancelVectorStoreFileBatch(ctx context.Context, req genserver.CancelVectorStoreFileBatchRequestObject) (genserver.CancelVectorStoreFileBatchResponseObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, b, err := s.lookupBatchLocked(ctx, req.VectorStoreId, req.BatchId)
	if err != nil {
		return nil, err
	}
	switch b.obj.Status {
	case gen.VectorStoreFileBatchObjectStatusCancelled:
		return genserver.CancelVectorStoreFileBatch200JSONResponse(b.obj), nil
	case gen.VectorStoreFileBatchObjectStatusInProgress:
	default:
		return nil, errBadRequest("batch_id", "Cannot cancel a batch with status '%s'.", b.obj.Status)
	}
	for _, id := range b.fileIDs {
		f, ok := rec.files.get(id)
		if ok && f.batchID == b.obj.Id && f.obj.Status == gen.VectorStoreFileObjectStatusInProgress {
			f.obj.Status = gen.VectorStoreFileObjectStatusCancelled
			b.status[id] = f.obj.Status
		}
	}
	b.obj.Status = gen.VectorStoreFileBatchObjectStatusCancelled
	s.refreshVectorStoreLocked(rec)
	return genserver.CancelVectorStoreFileBatch200JSONResponse(b.obj), nil
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
	s.mu.RLock()
	rec, b, err := s.lookupBatchLocked(ctx, req.VectorStoreId, req.BatchId)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	items := filterFiles(rec.files.all(), b.obj.Id, (*string)(p.Filter))
	s.mu.RUnlock()
	data, first, last, more := page(items, func(f gen.VectorStoreFileObject) string { return f.Id }, lp)
	return genserver.ListFilesInVectorStoreBatch200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// --- store operations (s.mu held) ---

// newVectorStoreLocked creates and stores a vector store with the given
// files attached, and schedules their processing.
func (s *Server) newVectorStoreLocked(project string, name *string, md *gen.Metadata, exp *gen.VectorStoreExpirationAfter, fileIDs []string, cs *gen.ChunkingStrategyResponse) *vectorStoreRec {
	now := s.now()
	rec := &vectorStoreRec{
		project: projectOr(project),
		obj: gen.VectorStoreObject{
			Id:           newID(prefixVectorStore),
			Object:       "vector_store",
			CreatedAt:    now,
			LastActiveAt: &now,
			Metadata:     emptyMetadata(md),
			Status:       gen.VectorStoreObjectStatusCompleted,
		},
		files:   newColl[*vsFileRec](),
		batches: newColl[*batchRec](),
	}
	if name != nil {
		rec.obj.Name = *name
	}
	if exp != nil {
		e := *exp
		rec.obj.ExpiresAfter = &e
	}
	s.st.vectorStores.put(rec.obj.Id, rec)
	for _, id := range fileIDs {
		s.attachFileLocked(rec, id, nil, cs, "")
	}
	s.refreshVectorStoreLocked(rec)
	s.scheduleProcessingLocked(rec)
	return rec
}

// attachFileLocked adds (or re-adds) a file to a vector store, in_progress.
func (s *Server) attachFileLocked(rec *vectorStoreRec, fileID string, attrs *gen.VectorStoreFileAttributes, cs *gen.ChunkingStrategyResponse, batchID string) *vsFileRec {
	if cs == nil {
		cs = defaultChunking()
	}
	f := &vsFileRec{
		obj: gen.VectorStoreFileObject{
			Id:               fileID,
			Object:           "vector_store.file",
			CreatedAt:        s.now(),
			VectorStoreId:    rec.obj.Id,
			Status:           gen.VectorStoreFileObjectStatusInProgress,
			Attributes:       cloneAttributes(attrs),
			ChunkingStrategy: cs,
		},
		batchID: batchID,
		project: rec.project,
	}
	if f.obj.Attributes == nil {
		f.obj.Attributes = &gen.VectorStoreFileAttributes{}
	}
	rec.files.put(fileID, f)
	if batchID != "" {
		if b, ok := rec.batches.get(batchID); ok {
			b.status[fileID] = f.obj.Status
		}
	}
	s.refreshVectorStoreLocked(rec)
	return f
}

// scheduleProcessingLocked processes the vector store's in_progress files
// after StepDelay in the background (processStore), or right away, under
// the lock, when StepDelay is 0.
func (s *Server) scheduleProcessingLocked(rec *vectorStoreRec) {
	if s.opts.StepDelay <= 0 {
		s.processFilesLocked(rec)
		return
	}
	id := rec.obj.Id
	s.goBackground(func(ctx context.Context) {
		if !sleep(ctx, s.opts.StepDelay) {
			return
		}
		s.processStore(ctx, id) // ingest.go: without the lock while a file is ingested
	})
}

// processFilesLocked processes every in_progress file of a vector store.
func (s *Server) processFilesLocked(rec *vectorStoreRec) {
	for _, f := range rec.files.all() {
		if f.obj.Status != gen.VectorStoreFileObjectStatusInProgress {
			continue
		}
		s.processFileSafelyLocked(rec, f)
		if f.batchID != "" {
			if b, ok := rec.batches.get(f.batchID); ok {
				b.status[f.obj.Id] = f.obj.Status
			}
		}
	}
	s.refreshVectorStoreLocked(rec)
}

// processFileLocked extracts, chunks, embeds and indexes one in_progress
// file (see ingest.go): it ends completed, or failed with the reason.
func (s *Server) processFileLocked(f *vsFileRec) {
	fail := func(e *gen.VectorStoreFileLastError) {
		f.data = nil
		f.obj.Status = gen.VectorStoreFileObjectStatusFailed
		f.obj.LastError = e
	}
	file, data, err := s.readFile(withProject(s.ctx, f.project), f.obj.Id)
	if err != nil {
		fail(&gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeInvalidFile,
			Message: fmt.Sprintf("No file found with id '%s'.", truncateForMessage(f.obj.Id))})
		return
	}
	p, err := s.pipeline()
	if err != nil {
		s.log.Error("retrieval pipeline", "err", err.Error())
		fail(serverFileError())
		return
	}
	ref := index.Ref{VectorStoreID: f.obj.VectorStoreId, FileID: f.obj.Id}
	res, lastErr := ingestFile(s.ctx, p, ref, file.Filename, data, strategyOf(f.obj.ChunkingStrategy))
	if lastErr != nil {
		fail(lastErr)
		return
	}
	f.data = &vsFileData{text: res.text}
	f.filename = file.Filename
	f.obj.Status = gen.VectorStoreFileObjectStatusCompleted
	f.obj.UsageBytes = res.usageBytes
}

// refreshVectorStoreLocked recomputes a vector store's file counts, usage
// and status, and those of its batches.
func (s *Server) refreshVectorStoreLocked(rec *vectorStoreRec) {
	var c gen.VectorStoreFileCounts
	usage := 0
	for _, f := range rec.files.all() {
		c.Total++
		switch f.obj.Status {
		case gen.VectorStoreFileObjectStatusInProgress:
			c.InProgress++
		case gen.VectorStoreFileObjectStatusCompleted:
			c.Completed++
			usage += f.obj.UsageBytes
		case gen.VectorStoreFileObjectStatusFailed:
			c.Failed++
		case gen.VectorStoreFileObjectStatusCancelled:
			c.Cancelled++
		}
	}
	rec.obj.FileCounts = c
	rec.obj.UsageBytes = usage
	if c.InProgress > 0 {
		rec.obj.Status = gen.VectorStoreObjectStatusInProgress
	} else {
		rec.obj.Status = gen.VectorStoreObjectStatusCompleted
	}
	for _, b := range rec.batches.all() {
		var bc gen.VectorStoreFileBatchFileCounts
		for _, id := range b.fileIDs {
			bc.Total++
			switch b.status[id] {
			case gen.VectorStoreFileObjectStatusInProgress:
				bc.InProgress++
			case gen.VectorStoreFileObjectStatusCompleted:
				bc.Completed++
			case gen.VectorStoreFileObjectStatusFailed:
				bc.Failed++
			case gen.VectorStoreFileObjectStatusCancelled:
				bc.Cancelled++
			}
		}
		b.obj.FileCounts = bc
		if b.obj.Status == gen.VectorStoreFileBatchObjectStatusInProgress && bc.InProgress == 0 {
			if bc.Total > 0 && bc.Failed == bc.Total {
				b.obj.Status = gen.VectorStoreFileBatchObjectStatusFailed
			} else {
				b.obj.Status = gen.VectorStoreFileBatchObjectStatusCompleted
			}
		}
	}
	s.persistVectorStoreLocked(rec) // vssnapshot.go
}

// vectorStoreView returns the object of a vector store as of now: its
// expiry time and, once past it, status expired.
func (s *Server) vectorStoreView(rec *vectorStoreRec) gen.VectorStoreObject {
	v := rec.obj
	v.Metadata = cloneMetadata(v.Metadata)
	if v.ExpiresAfter != nil && v.LastActiveAt != nil {
		at := *v.LastActiveAt + v.ExpiresAfter.Days*86400
		v.ExpiresAt = &at
		if s.now() >= at {
			v.Status = gen.VectorStoreObjectStatusExpired
		}
	}
	return v
}

func (s *Server) lookupVectorStoreLocked(ctx context.Context, id string) (*vectorStoreRec, error) {
	if !validID(id) {
		return nil, errNotFound("vector_store", id)
	}
	rec, ok := s.vectorStoreOf(ctx, id)
	if !ok {
		return nil, errNotFound("vector_store", id)
	}
	return rec, nil
}

func (s *Server) lookupVectorStoreFileLocked(ctx context.Context, vsID, fileID string) (*vectorStoreRec, *vsFileRec, error) {
	rec, err := s.lookupVectorStoreLocked(ctx, vsID)
	if err != nil {
		return nil, nil, err
	}
	if !validID(fileID) {
		return nil, nil, errNotFound("file", fileID)
	}
	f, ok := rec.files.get(fileID)
	if !ok {
		return nil, nil, errNotFound("file", fileID)
	}
	return rec, f, nil
}

func (s *Server) lookupBatchLocked(ctx context.Context, vsID, batchID string) (*vectorStoreRec, *batchRec, error) {
	rec, err := s.lookupVectorStoreLocked(ctx, vsID)
	if err != nil {
		return nil, nil, err
	}
	if !validID(batchID) {
		return nil, nil, errNotFound("batch", batchID)
	}
	b, ok := rec.batches.get(batchID)
	if !ok {
		return nil, nil, errNotFound("batch", batchID)
	}
	return rec, b, nil
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
