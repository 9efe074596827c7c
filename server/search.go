package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/retrieval"
	"github.com/assistants-go/assistants/server/retrieval/filter"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store"
)

// Vector store search runs the retrieval pipeline (server/retrieval): the
// query (or each query) is searched by keyword (BM25) and by vector
// (Options.Embedder) among the chunks of the store's completed files that
// pass the attribute filter (the filter applies before ranking), and the
// two rankings are fused (retrieval.FuseScores) into a score in 0..1; a
// chunk's score is its best over the queries. Chunks under
// ranking_options.score_threshold are dropped, the best max_num_results
// chunks are kept and grouped by file: a result is a file, its best
// chunk's score and its chunks (at most maxChunksPerResult), best first.
// With rewrite_query, the chat backend (when the server has one) rewrites
// the queries first, and search_query shows them (see rewrite.go).

const (
	maxChunksPerResult = 3
	maxQueries         = 10
	maxQueryLen        = 4096
	maxFilterDepth     = 8
)

// SearchVectorStore searches a vector store's completed files.
func (s *Server) SearchVectorStore(ctx context.Context, req genserver.SearchVectorStoreRequestObject) (genserver.SearchVectorStoreResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	queries, err := searchQueries(b.Query)
	if err != nil {
		return nil, err
	}
	spec := searchSpec{queries: queries, limit: defaultSearchResults}
	if b.MaxNumResults != nil {
		if *b.MaxNumResults < 1 || *b.MaxNumResults > maxSearchResults {
			return nil, errBadRequest("max_num_results", "Invalid 'max_num_results': expected an integer between 1 and %d.", maxSearchResults)
		}
		spec.limit = *b.MaxNumResults
	}
	if ro := b.RankingOptions; ro != nil {
		if ro.Ranker != nil && !ro.Ranker.Valid() {
			return nil, errBadRequest("ranking_options.ranker", "Invalid value for 'ranking_options.ranker'.")
		}
		if ro.Ranker != nil {
			spec.ranker = string(*ro.Ranker)
		}
		if ro.ScoreThreshold != nil {
			if *ro.ScoreThreshold < 0 || *ro.ScoreThreshold > 1 {
				return nil, errBadRequest("ranking_options.score_threshold", "Invalid 'ranking_options.score_threshold': expected a number between 0 and 1.")
			}
			spec.threshold = float64(*ro.ScoreThreshold)
		}
	}
	if b.Filters != nil {
		raw, err := b.Filters.MarshalJSON()
		if err != nil {
			return nil, errBadRequest("filters", "Invalid 'filters': expected a filter object.")
		}
		f, err := filter.Parse(raw, "filters", maxFilterDepth)
		if err != nil {
			var pe *filter.ParamError
			if errors.As(err, &pe) {
				return nil, errBadRequest(pe.Param, "%s", pe.Message)
			}
			return nil, errBadRequest("filters", "Invalid 'filters': %s", err.Error())
		}
		spec.filter = f
	}
	if _, err := s.getVectorStore(ctx, projectOf(ctx), req.VectorStoreId); err != nil {
		return nil, err
	}
	s.touchVectorStore(ctx, projectOf(ctx), req.VectorStoreId)
	if err := s.addStore(ctx, &spec, projectOf(ctx), req.VectorStoreId); err != nil {
		return nil, err
	}
	if b.RewriteQuery != nil && *b.RewriteQuery {
		spec.queries = s.rewriteQueries(ctx, spec.queries) // see rewrite.go
	}
	found, err := s.searchFiles(ctx, spec)
	if err != nil {
		return nil, embeddingAPIError(err)
	}
	data := make([]gen.VectorStoreSearchResultItem, 0, len(found))
	for _, fr := range found {
		content := make([]gen.VectorStoreSearchResultContentObject, 0, len(fr.chunks))
		for _, c := range fr.chunks {
			content = append(content, gen.VectorStoreSearchResultContentObject{Type: "text", Text: c})
		}
		data = append(data, gen.VectorStoreSearchResultItem{
			FileId:     fr.fileID,
			Filename:   fr.filename,
			Score:      float32(fr.score),
			Attributes: cloneAttributes(fr.attrs),
			Content:    content,
		})
	}
	return genserver.SearchVectorStore200JSONResponse{
		Object:      "vector_store.search_results.page",
		SearchQuery: spec.queries,
		Data:        data,
		HasMore:     false,
	}, nil
}

// searchSpec is a search over vector stores in plain values, shared by
// the search endpoint and the file_search tool of runs.
type searchSpec struct {
	queries   []string
	filter    *filter.Filter // nil: every file
	ranker    string         // ranking_options.ranker ("" for none)
	threshold float64        // ranking_options.score_threshold
	limit     int            // max_num_results (chunks)
	storeIDs  []string
	files     map[index.Ref]searchFile // the completed files allowed
}

// searchFile is a completed vector store file a search may return.
type searchFile struct {
	filename string
	attrs    *gen.VectorStoreFileAttributes
}

// addStore adds a vector store's completed files that pass the filter to
// the search.
func (s *Server) addStore(ctx context.Context, sp *searchSpec, project, vsID string) error {
	sp.storeIDs = append(sp.storeIDs, vsID)
	if sp.files == nil {
		sp.files = map[index.Ref]searchFile{}
	}
	err := s.eachVSFile(ctx, project, vsID, "", string(gen.VectorStoreFileObjectStatusCompleted), func(f store.VectorStoreFile) error {
		rec, err := decodeVSFile(f)
		if err != nil {
			return err
		}
		if sp.filter != nil && !sp.filter.Match(fileAttributes(rec.Obj.Attributes)) {
			return nil
		}
		sp.files[index.Ref{VectorStoreID: vsID, FileID: f.FileID}] = searchFile{filename: rec.Filename, attrs: rec.Obj.Attributes}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile: nothing to search
	}
	return storeErr(err, "vector_store", vsID)
}

// fileAttributes converts a file's attributes for filter.Match.
func fileAttributes(a *gen.VectorStoreFileAttributes) filter.Attributes {
	if a == nil || len(*a) == 0 {
		return nil
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return nil
	}
	attrs, err := filter.ParseAttributes(raw)
	if err != nil {
		return nil
	}
	return attrs
}

// fileHit is a file found by searchFiles, with its best chunks.
type fileHit struct {
	vectorStoreID string
	fileID        string
	filename      string
	attrs         *gen.VectorStoreFileAttributes
	score         float64
	chunks        []string
}

// searchFiles runs spec through the pipeline and groups the chunks found
// by file, best file first.
func (s *Server) searchFiles(ctx context.Context, spec searchSpec) ([]fileHit, error) {
	mode, err := retrieval.ModeForRanker(spec.ranker)
	if err != nil {
		return nil, errBadRequest("ranking_options.ranker", "Invalid value for 'ranking_options.ranker'.")
	}
	if len(spec.files) == 0 {
		return nil, nil
	}
	p, err := s.pipeline(ctx)
	if errors.Is(err, errShutdown) {
		return nil, errShuttingDown()
	}
	if err != nil {
		return nil, err
	}
	results, err := p.Search(ctx, retrieval.Request{
		Queries: spec.queries,
		Scope: index.Scope{VectorStoreIDs: spec.storeIDs, Allow: func(r index.Ref) bool {
			_, ok := spec.files[r]
			return ok
		}},
		Mode:           mode,
		ScoreThreshold: spec.threshold,
		MaxResults:     spec.limit,
	})
	if err != nil {
		return nil, fmt.Errorf("file search: %w", err)
	}
	var out []fileHit
	for _, fr := range retrieval.GroupByFile(results, maxChunksPerResult) {
		sf := spec.files[fr.Ref]
		h := fileHit{vectorStoreID: fr.Ref.VectorStoreID, fileID: fr.Ref.FileID, filename: sf.filename, attrs: sf.attrs, score: fr.Score}
		for _, c := range fr.Chunks {
			h.chunks = append(h.chunks, c.Chunk.Text)
		}
		out = append(out, h)
	}
	return out, nil
}

// searchQueries returns the query texts of a search request.
func searchQueries(q gen.VectorStoreSearchQuery) ([]string, error) {
	var qs []string
	if one, err := q.AsVectorStoreSearchQueryText(); err == nil {
		qs = []string{one}
	} else if many, err := q.AsVectorStoreSearchQueryTexts(); err == nil {
		qs = many
	} else {
		return nil, errBadRequest("query", "Invalid 'query': expected a string or an array of strings.")
	}
	if len(qs) == 0 || len(qs) > maxQueries {
		return nil, errBadRequest("query", "Invalid 'query': expected 1 to %d queries.", maxQueries)
	}
	for i, one := range qs {
		if strings.TrimSpace(one) == "" || len(one) > maxQueryLen {
			p := "query"
			if len(qs) > 1 {
				p = fmt.Sprintf("query[%d]", i)
			}
			return nil, errBadRequest(p, "Invalid '%s': expected a non-empty string of at most %d bytes.", p, maxQueryLen)
		}
	}
	return slices.Clone(qs), nil
}
