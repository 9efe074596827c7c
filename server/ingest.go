package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/extract"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
	pgsearch "github.com/assistants-go/assistants/server/store/postgres/searchindex"
	"github.com/assistants-go/assistants/server/store/sqlite"
	sqlitesearch "github.com/assistants-go/assistants/server/store/sqlite/searchindex"
)

// Vector store file processing through the retrieval pipeline
// (server/retrieval): the file's text is extracted (extract.Text), cut
// into chunks by tokens (the o200k_base tokenizer, the file's static or
// auto chunking strategy), embedded (Options.Embedder, default the
// built-in lexical embed.Hashing, behind the embedding space guard of
// embedding.go) and put in the server's search index:
//
//   - on SQLite and PostgreSQL, the store's own search index
//     (store/sqlite/searchindex: FTS5 and packed vectors;
//     store/postgres/searchindex: tsvector and packed vectors): the chunks
//     and their embeddings, with the embedding model and dimension, are
//     rows of the database, so every replica searches every vector store
//     as soon as its files are processed, and a restart keeps them;
//   - on any other store (memory), an in-memory index of this process.
//
// A file ends completed with usage_bytes = the bytes of its extracted text
// plus 4 bytes per dimension of each chunk's vector, or failed with a
// last_error: unsupported_file or invalid_file with the extractor's reason,
// invalid_file for a file without words, that is gone, or that is larger
// than Options.MaxFileBytes (uploaded under a larger limit), server_error with
// the reason when the embedding failed or its model is not the index's
// (see embedding.go), server_error for anything else (a panic included).
// Processing runs as durable jobs (ingestjobs.go). Searches return only
// the chunks of completed files, so chunks written before their file's
// status (or left in an in-memory index by an earlier attachment of a
// file, until its new processing replaces them) are never found.

// searchState is a server's retrieval pipeline and index.
type searchState struct {
	mu  sync.Mutex
	p   *retrieval.Pipeline
	idx index.Index   // the index of p
	mem *memory.Index // the index, when it is in process memory
	err error         // a lasting error (the stored vectors' model is another)
	// inflight are the attachments being processed in this process.
	inflight map[ingestArgs]chan struct{}
}

// claim makes a the only processing of its attachment in this process:
// another one (the request's and the job's, with StepDelay 0) waits for
// it to end, then finds the file processed. release ends the claim.
func (st *searchState) claim(ctx context.Context, a ingestArgs) (release func(), err error) {
	for {
		st.mu.Lock()
		if st.inflight == nil {
			st.inflight = map[ingestArgs]chan struct{}{}
		}
		busy, ok := st.inflight[a]
		if !ok {
			done := make(chan struct{})
			st.inflight[a] = done
			st.mu.Unlock()
			return func() {
				st.mu.Lock()
				delete(st.inflight, a)
				st.mu.Unlock()
				close(done)
			}, nil
		}
		st.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ingestSem bounds the files a server processes at once.
type ingestSem struct {
	once sync.Once
	ch   chan struct{}
}

// pipeline returns the server's retrieval pipeline, built on first use:
// its index is the store's when the store has one (SQLite, PostgreSQL),
// else in memory. It fails, clearly and for good, when the store holds
// vectors of another embedding model or dimension than the server's
// embedder (with the default embedder: than both versions of the built-in
// one); other errors (the database busy or unreachable, in either open)
// are returned uncached and tried again on the next call. The built-in
// embedder's version follows the store's vectors: it is chosen again
// (forgetPipeline) when the store refuses the chosen version's vectors
// because another replica wrote the other version's. ctx is the first
// caller's; the index outlives it (its cancellation is dropped).
func (s *Server) pipeline(ctx context.Context) (*retrieval.Pipeline, error) {
	st := &s.st.search
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.p != nil || st.err != nil {
		return st.p, st.err
	}
	var e embed.Embedder = s.opts.Embedder
	if e == nil {
		h, err := embed.NewHashing()
		if err != nil {
			return nil, err
		}
		e = h
	}
	idx, err := s.openIndex(ctx, e)
	if isModelError(err) && s.opts.Embedder == nil {
		// The store's vectors may come from the built-in embedder's
		// version 1 (servers before version 2): keep searching them with
		// it rather than refuse every search of a store the operator never
		// chose a model for. Files added are embedded with version 1 too;
		// once the store holds no vectors (its vector stores' files
		// deleted), the next start uses the current version.
		old, oerr := embed.NewHashing(func(o *embed.HashingOptions) { o.Version = 1 })
		if oerr != nil {
			return nil, fmt.Errorf("file_search: the built-in embedder's version 1: %w", oerr)
		}
		oidx, oerr := s.openIndex(ctx, old)
		switch {
		case oerr == nil:
			s.log.Warn("file_search: the store's vectors come from an earlier version of the built-in embedder; searching and adding files with it",
				"model", old.Model(), "current", e.Model())
			e, idx, err = old, oidx, nil
		case !isModelError(oerr):
			// Not an answer about the store's vectors (the database busy
			// or unreachable): nothing is cached, the next call tries
			// again. Only both versions refused is a lasting mismatch.
			return nil, fmt.Errorf("file_search: opening the search index for %s: %w", old.Model(), oerr)
		}
	}
	if err != nil {
		if isModelError(err) {
			st.err = &embedSpaceError{msg: embeddingModelMessage(err)}
			s.log.Error("file_search: the store's vectors are of another embedding model; searches and new files are refused", "err", err.Error())
			return nil, st.err
		}
		return nil, err
	}
	p, err := retrieval.New(func(o *retrieval.Options) {
		o.Index = idx
		o.Embedder = &spaceGuard{inner: e}
	})
	if err != nil {
		return nil, err
	}
	st.p, st.idx = p, idx
	return p, nil
}

// forgetPipeline drops p, the server's pipeline with the built-in
// embedder, after the store refused its vectors as of another model
// (ErrModel from a Put): another replica,
// started while the store held vectors of the other version of the
// built-in embedder (or none), wrote that version's. The next pipeline
// call chooses again from what the store holds. A pipeline already
// replaced, or a lasting error, is left as it is. The dropped index is
// closed: a search that got it just before may fail once.
func (s *Server) forgetPipeline(p *retrieval.Pipeline) {
	st := &s.st.search
	st.mu.Lock()
	defer st.mu.Unlock()
	if p == nil || st.p != p {
		return
	}
	if c, ok := st.idx.(io.Closer); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("file_search: closing the search index", "err", err.Error())
		}
	}
	s.log.Warn("file_search: the store holds vectors of another embedding model than this server chose; choosing again",
		"model", p.Embedder().Model())
	st.p, st.idx = nil, nil
}

// closeSearch releases the search index's resources (the SQLite index's
// read connections); the server is closing.
func (s *Server) closeSearch() {
	st := &s.st.search
	st.mu.Lock()
	defer st.mu.Unlock()
	if c, ok := st.idx.(io.Closer); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("file_search: closing the search index", "err", err.Error())
		}
	}
	st.idx = nil
	st.err = errors.Join(errShutdown, st.err)
	st.p = nil
}

// errShutdown: the server closed its search index.
var errShutdown = errors.New("the server is shutting down")

// openIndex returns the search index for the server's store. The index
// outlives ctx: it is opened with ctx's values but not its cancellation.
func (s *Server) openIndex(ctx context.Context, e embed.Embedder) (index.Index, error) {
	ctx = context.WithoutCancel(ctx)
	if err := s.hooks.openIndex(e.Model()); err != nil {
		return nil, err
	}
	switch x := s.db.(type) {
	case *sqlite.Store:
		return sqlitesearch.New(ctx, x, func(o *sqlitesearch.Options) { o.Model, o.Dimension = e.Model(), e.Dimension() })
	case *postgres.Store:
		return pgsearch.New(ctx, x, func(o *pgsearch.Options) { o.Model, o.Dimension = e.Model(), e.Dimension() })
	}
	m := memory.New()
	s.st.search.mem = m
	return m, nil
}

// isModelError reports whether err is a store index's refusal of vectors
// of another embedding model or dimension.
func isModelError(err error) bool {
	return errors.Is(err, sqlitesearch.ErrModel) || errors.Is(err, pgsearch.ErrModel)
}

// embeddingModelMessage is what a file's last_error and a search's 409 say
// when the store's vectors are of another model than the server's.
func embeddingModelMessage(err error) string {
	return "The embedding model changed: " + err.Error() +
		". Vectors of two models are never mixed: start the server with the model the stored vectors come from, or delete and re-add the vector stores' files to embed them again."
}

// ingestResult is a processed file: its name and the bytes it takes.
type ingestResult struct {
	filename   string
	usageBytes int
	chunks     int
}

// ingestFile extracts, chunks, embeds and indexes one file as ref's
// chunks. On failure it returns the file's last_error (nil with an error
// when the failure is not the file's: the context ended, or the index's
// ErrModel, the store holding vectors of another model) and leaves the
// index without new chunks for ref.
func ingestFile(ctx context.Context, p *retrieval.Pipeline, ref index.Ref, filename string, data []byte, s chunk.Strategy) (ingestResult, *gen.VectorStoreFileLastError, error) {
	text, err := extract.Text(filename, data)
	if err != nil {
		var xe *extract.Error
		if errors.As(err, &xe) {
			code := gen.VectorStoreFileObjectLastErrorCodeInvalidFile
			if xe.Code == extract.CodeUnsupported {
				code = gen.VectorStoreFileObjectLastErrorCodeUnsupportedFile
			}
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: code, Message: xe.Message}, nil
		}
		return ingestResult{}, serverFileError(), nil
	}
	stats, err := p.Ingest(ctx, ref, text, s)
	if err != nil {
		if ctx.Err() != nil {
			return ingestResult{}, nil, ctx.Err()
		}
		if errors.Is(err, retrieval.ErrNoText) {
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeInvalidFile,
				Message: fmt.Sprintf("The file %s has no words to index.", truncateForMessage(filename))}, nil
		}
		if why := embeddingReason(err); why != "" {
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
				Message: fmt.Sprintf("The file %s was not indexed: %s", truncateForMessage(filename), why)}, nil
		}
		if isModelError(err) {
			return ingestResult{}, nil, err // the caller chooses the model again (ingestOne)
		}
		if errors.Is(err, sqlitesearch.ErrNoFile) || errors.Is(err, pgsearch.ErrNoFile) {
			return ingestResult{}, nil, errGone
		}
		return ingestResult{}, nil, err
	}
	usage := len(text) + stats.Chunks*4*p.Embedder().Dimension()
	return ingestResult{filename: filename, usageBytes: usage, chunks: stats.Chunks}, nil, nil
}

// errGone: the vector store file left while it was processed.
var errGone = errors.New("the vector store file is gone")

func serverFileError() *gen.VectorStoreFileLastError {
	return &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
		Message: "The server had an error while processing the file."}
}

// strategyOf returns the chunking strategy a vector store file reports.
func strategyOf(cs *gen.ChunkingStrategyResponse) chunk.Strategy {
	m, o := chunkSizes(cs)
	return chunk.Strategy{MaxTokens: m, OverlapTokens: o}
}

// unindexFile removes a vector store file's chunks from an in-memory
// index (the store's own index loses them with the file's row).
func (s *Server) unindexFile(vectorStoreID, fileID string) {
	if m := s.memIndex(); m != nil {
		_ = m.Delete(context.Background(), index.Ref{VectorStoreID: vectorStoreID, FileID: fileID})
	}
}

// unindexVectorStore removes a vector store's chunks from an in-memory
// index.
func (s *Server) unindexVectorStore(vectorStoreID string) {
	if m := s.memIndex(); m != nil {
		_ = m.DeleteVectorStore(context.Background(), vectorStoreID)
	}
}

// memIndex returns the server's in-memory index, or nil when it has none
// (yet, or because its index is the store's).
func (s *Server) memIndex() *memory.Index {
	st := &s.st.search
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.mem
}

// ingestOne processes one vector store file, when the attachment a names
// is still in_progress: it reads the file's bytes, ingests them and
// writes the end (completed or failed) in one store update that checks
// again that the attachment is the same and still in_progress. A file
// detached, cancelled or replaced meanwhile is left as it is (its chunks
// dropped from an in-memory index). It returns an error only when the
// job must run again (the store failed, the context ended).
func (s *Server) ingestOne(ctx context.Context, a ingestArgs) (err error) {
	release, err := s.st.search.claim(ctx, a)
	if err != nil {
		return err
	}
	defer release()
	ref := index.Ref{VectorStoreID: a.VectorStoreID, FileID: a.FileID}
	cur, err := s.db.GetVectorStoreFile(ctx, a.Project, a.VectorStoreID, a.FileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rec, err := decodeVSFile(cur)
	if err != nil {
		return err
	}
	if rec.Attach != a.Attach || rec.Obj.Status != gen.VectorStoreFileObjectStatusInProgress {
		return nil
	}

	var res ingestResult
	var lastErr *gen.VectorStoreFileLastError
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.logPanic("vector store file processing panicked", p, "vector_store_id", a.VectorStoreID, "file_id", a.FileID)
				res, lastErr, err = ingestResult{}, serverFileError(), nil
			}
		}()
		s.hooks.processFile(ctx, a.FileID)
		if err = ctx.Err(); err != nil {
			return
		}
		file, data, rerr := s.readFileIn(ctx, a.Project, a.FileID)
		if rerr != nil {
			if err = ctx.Err(); err != nil {
				return
			}
			var ae *apiError
			if !errors.As(rerr, &ae) {
				err = rerr // the store failed: again later
				return
			}
			lastErr = &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeInvalidFile,
				Message: fmt.Sprintf("No file found with id '%s'.", truncateForMessage(a.FileID))}
			return
		}
		if int64(len(data)) > s.opts.MaxFileBytes {
			lastErr = &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeInvalidFile,
				Message: fmt.Sprintf("The file %s is larger than this server's limit of %d bytes.", truncateForMessage(file.Filename), s.opts.MaxFileBytes)}
			return
		}
		for try := 0; ; try++ {
			p, perr := s.pipeline(ctx)
			if perr != nil {
				var se *embedSpaceError
				if errors.As(perr, &se) {
					lastErr = &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
						Message: fmt.Sprintf("The file %s was not indexed: %s", truncateForMessage(file.Filename), se.msg)}
					return
				}
				err = perr
				return
			}
			res, lastErr, err = ingestFile(ctx, p, ref, file.Filename, data, strategyOf(rec.Obj.ChunkingStrategy))
			if !isModelError(err) {
				return
			}
			if try > 0 || s.opts.Embedder != nil {
				// Refused again with the model chosen from what the store
				// holds, or the operator chose the model: the file fails,
				// saying so.
				lastErr = &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
					Message: fmt.Sprintf("The file %s was not indexed: %s", truncateForMessage(file.Filename), embeddingModelMessage(err))}
				res, err = ingestResult{}, nil
				return
			}
			// The store holds vectors of another model than p's, the
			// built-in embedder's (another replica chose its other
			// version): choose again from the store's vectors and try
			// once more.
			s.forgetPipeline(p)
		}
	}()
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}

	wrote := false
	_, uerr := s.db.UpdateVectorStoreFile(ctx, a.Project, a.VectorStoreID, a.FileID, func(f *store.VectorStoreFile) ([]store.Chunk, error) {
		now, err := decodeVSFile(*f)
		if err != nil {
			return nil, err
		}
		if now.Attach != a.Attach || now.Obj.Status != gen.VectorStoreFileObjectStatusInProgress {
			return nil, errUnchanged
		}
		if lastErr != nil {
			now.Obj.Status = gen.VectorStoreFileObjectStatusFailed
			now.Obj.LastError = lastErr
		} else {
			now.Obj.Status = gen.VectorStoreFileObjectStatusCompleted
			now.Obj.UsageBytes = res.usageBytes
			now.Filename = res.filename
		}
		f.Status = string(now.Obj.Status)
		f.Data, err = encodeData(now)
		wrote = err == nil
		return nil, err
	})
	switch {
	case uerr == nil:
	case errors.Is(uerr, errUnchanged), errors.Is(uerr, store.ErrNotFound):
	default:
		return uerr
	}
	if !wrote {
		// Left or cancelled meanwhile: its chunks go, unless they are now
		// another attachment's, or this attachment's completed by another
		// processor.
		if f, err := s.db.GetVectorStoreFile(ctx, a.Project, a.VectorStoreID, a.FileID); err == nil {
			if now, err := decodeVSFile(f); err == nil && (now.Attach != a.Attach || now.Obj.Status == gen.VectorStoreFileObjectStatusCompleted) {
				return nil
			}
		}
		s.dropChunks(ctx, ref)
		return nil
	}
	s.settleUsage(ctx, a.Project, a.VectorStoreID, false)
	return nil
}

// dropChunks removes a vector store file's chunks from the server's index
// (nothing happens when they are gone already).
func (s *Server) dropChunks(ctx context.Context, ref index.Ref) {
	if p, err := s.pipeline(ctx); err == nil {
		_ = p.Delete(context.WithoutCancel(ctx), ref)
	}
}

// readFileIn returns an uploaded file's metadata and bytes (at most
// MaxFileBytes, a longer file is cut there); a file that does not exist
// or expired is an API error (404), a failure of the store is not.
func (s *Server) readFileIn(ctx context.Context, project, id string) (store.File, []byte, error) {
	if !validID(id) {
		return store.File{}, nil, errNotFound("file", id)
	}
	f, err := s.db.GetFile(ctx, project, id)
	if err != nil {
		return store.File{}, nil, storeErr(err, "file", id)
	}
	if s.fileExpired(f) {
		return store.File{}, nil, errNotFound("file", id)
	}
	rc, err := s.db.OpenFile(ctx, project, id)
	if err != nil {
		return store.File{}, nil, storeErr(err, "file", id)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, s.opts.MaxFileBytes+1))
	if err != nil {
		return store.File{}, nil, storeErr(err, "file", id)
	}
	return f, data, nil
}
