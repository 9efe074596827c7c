package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval"
	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/extract"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
)

// Vector store file processing through the retrieval pipeline
// (server/retrieval): the file's text is extracted (extract.Text), cut
// into chunks by tokens (the o200k_base tokenizer, the file's static or
// auto chunking strategy), embedded with the built-in lexical embedder and
// put in the server's in-memory index (keyword and vector). Every Server
// has its own pipeline and index, built on first use. The embedder is
// Options.Embedder (default: the built-in lexical embed.Hashing), behind
// the embedding space guard (embedding.go).
//
// A file ends completed with usage_bytes = the bytes of its extracted text
// plus 4 bytes per dimension of each chunk's vector (what the index keeps),
// or failed with a last_error: unsupported_file or invalid_file with the
// extractor's reason, invalid_file for a file without words, server_error
// with the reason when the embedding failed or changed model (see
// embedding.go), server_error for anything else. The functions here take plain values, so that the
// durable store's job worker can call them as they are.

// searchState is a server's retrieval pipeline and index, built once.
type searchState struct {
	once sync.Once
	idx  *memory.Index
	p    *retrieval.Pipeline
	err  error
	busy map[string]bool // vector stores with a background processor (s.mu)
}

// pipeline returns the server's retrieval pipeline.
func (s *Server) pipeline() (*retrieval.Pipeline, error) {
	st := &s.st.search
	st.once.Do(func() {
		st.idx = memory.New()
		var e embed.Embedder = s.opts.Embedder
		if e == nil {
			if e, st.err = embed.NewHashing(); st.err != nil {
				return
			}
		}
		st.p, st.err = retrieval.New(func(o *retrieval.Options) {
			o.Index = st.idx
			o.Embedder = &spaceGuard{inner: e}
		})
	})
	return st.p, st.err
}

// ingestResult is a processed file: its text (for the file content
// endpoint) and the bytes it takes.
type ingestResult struct {
	text       string
	usageBytes int
	chunks     int
}

// ingestFile extracts, chunks, embeds and indexes one file as ref's
// chunks. On failure it returns the file's last_error and leaves the index
// without chunks for ref.
func ingestFile(ctx context.Context, p *retrieval.Pipeline, ref index.Ref, filename string, data []byte, s chunk.Strategy) (ingestResult, *gen.VectorStoreFileLastError) {
	text, err := extract.Text(filename, data)
	if err != nil {
		_ = p.Delete(ctx, ref)
		var xe *extract.Error
		if errors.As(err, &xe) {
			code := gen.VectorStoreFileObjectLastErrorCodeInvalidFile
			if xe.Code == extract.CodeUnsupported {
				code = gen.VectorStoreFileObjectLastErrorCodeUnsupportedFile
			}
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: code, Message: xe.Message}
		}
		return ingestResult{}, serverFileError()
	}
	stats, err := p.Ingest(ctx, ref, text, s)
	if err != nil {
		_ = p.Delete(ctx, ref)
		if errors.Is(err, retrieval.ErrNoText) {
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeInvalidFile,
				Message: fmt.Sprintf("The file %s has no words to index.", truncateForMessage(filename))}
		}
		if why := embeddingReason(err); why != "" {
			return ingestResult{}, &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
				Message: fmt.Sprintf("The file %s was not indexed: %s", truncateForMessage(filename), why)}
		}
		return ingestResult{}, serverFileError()
	}
	usage := len(text) + stats.Chunks*4*p.Embedder().Dimension()
	return ingestResult{text: text, usageBytes: usage, chunks: stats.Chunks}, nil
}

func serverFileError() *gen.VectorStoreFileLastError {
	return &gen.VectorStoreFileLastError{Code: gen.VectorStoreFileObjectLastErrorCodeServerError,
		Message: "The server had an error while processing the file."}
}

// strategyOf returns the chunking strategy a vector store file reports.
func strategyOf(cs *gen.ChunkingStrategyResponse) chunk.Strategy {
	m, o := chunkSizes(cs)
	return chunk.Strategy{MaxTokens: m, OverlapTokens: o}
}

// unindexFile removes a vector store file's chunks from the index (a file
// detached, or deleted).
func (s *Server) unindexFile(vectorStoreID, fileID string) {
	if p, err := s.pipeline(); err == nil {
		_ = p.Delete(context.Background(), index.Ref{VectorStoreID: vectorStoreID, FileID: fileID})
	}
}

// unindexVectorStore removes a vector store's chunks from the index.
func (s *Server) unindexVectorStore(vectorStoreID string) {
	if p, err := s.pipeline(); err == nil {
		_ = p.DeleteVectorStore(context.Background(), vectorStoreID)
	}
}

// processStore processes a vector store's in_progress files in the
// background, one at a time, holding s.mu only to pick a file and to
// record its result, so that a large file does not hold other requests
// up. One processor runs per vector store; one started while another runs
// leaves the work to it (the running one picks up files attached
// meanwhile). A file detached, cancelled or whose store is deleted while it
// is processed has its chunks dropped again.
func (s *Server) processStore(ctx context.Context, vectorStoreID string) {
	s.mu.Lock()
	rec, ok := s.st.vectorStores.get(vectorStoreID)
	if !ok || s.st.search.busy[vectorStoreID] {
		s.mu.Unlock()
		return
	}
	if s.st.search.busy == nil {
		s.st.search.busy = map[string]bool{}
	}
	s.st.search.busy[vectorStoreID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.st.search.busy, vectorStoreID)
		s.mu.Unlock()
	}()
	for ctx.Err() == nil {
		s.mu.Lock()
		if cur, ok := s.st.vectorStores.get(vectorStoreID); !ok || cur != rec {
			s.mu.Unlock()
			return
		}
		var f *vsFileRec
		for _, c := range rec.files.all() {
			if c.obj.Status == gen.VectorStoreFileObjectStatusInProgress {
				f = c
				break
			}
		}
		if f == nil {
			s.mu.Unlock()
			return
		}
		fileID := f.obj.Id
		s.mu.Unlock()
		file, data, err := s.readFile(withProject(ctx, rec.project), fileID) // without the lock: the bytes come from the store
		s.mu.Lock()
		if err != nil {
			if cur, ok := rec.files.get(fileID); ok && cur == f && f.obj.Status == gen.VectorStoreFileObjectStatusInProgress {
				s.processFileSafelyLocked(rec, f) // fails it: no such file
				s.afterProcessLocked(rec, f)
			}
			s.mu.Unlock()
			continue
		}
		ref := index.Ref{VectorStoreID: rec.obj.Id, FileID: f.obj.Id}
		filename, strategy := file.Filename, strategyOf(f.obj.ChunkingStrategy)
		s.mu.Unlock()

		res, lastErr := s.ingestSafely(ctx, ref, filename, data, strategy)

		s.mu.Lock()
		cur, attached := rec.files.get(f.obj.Id)
		store, alive := s.st.vectorStores.get(vectorStoreID)
		switch {
		case alive && store == rec && attached && cur == f && f.obj.Status == gen.VectorStoreFileObjectStatusInProgress:
			if lastErr != nil {
				f.data = nil
				f.obj.Status = gen.VectorStoreFileObjectStatusFailed
				f.obj.LastError = lastErr
			} else {
				f.data = &vsFileData{text: res.text}
				f.filename = filename
				f.obj.Status = gen.VectorStoreFileObjectStatusCompleted
				f.obj.UsageBytes = res.usageBytes
			}
			s.afterProcessLocked(rec, f)
		case !alive || store != rec || !attached || (cur == f && f.obj.Status == gen.VectorStoreFileObjectStatusCancelled):
			// Gone or cancelled meanwhile: its chunks go too.
			s.unindexFile(ref.VectorStoreID, ref.FileID)
		}
		s.mu.Unlock()
	}
}

// ingestSafely is ingestFile with the test hook, and with a panic turned
// into a server_error last_error.
func (s *Server) ingestSafely(ctx context.Context, ref index.Ref, filename string, data []byte, strategy chunk.Strategy) (res ingestResult, lastErr *gen.VectorStoreFileLastError) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic("vector store file processing panicked", p, "vector_store_id", ref.VectorStoreID, "file_id", ref.FileID)
			res, lastErr = ingestResult{}, serverFileError()
		}
	}()
	s.hooks.processFile(ref.FileID)
	p, err := s.pipeline()
	if err != nil {
		return ingestResult{}, serverFileError()
	}
	return ingestFile(ctx, p, ref, filename, data, strategy)
}

// afterProcessLocked records a processed file's status in its batch and
// recomputes the store's counts.
func (s *Server) afterProcessLocked(rec *vectorStoreRec, f *vsFileRec) {
	if f.batchID != "" {
		if b, ok := rec.batches.get(f.batchID); ok {
			b.status[f.obj.Id] = f.obj.Status
		}
	}
	s.refreshVectorStoreLocked(rec)
}
