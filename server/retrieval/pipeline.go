package retrieval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// Pipeline chunks, embeds, indexes and searches files' text. It is safe
// for concurrent use. Create one with New.
type Pipeline struct {
	o Options
}

// Options configure New.
type Options struct {
	// Tokenizer cuts chunks by tokens. Default: tokenize.Default()
	// (o200k_base).
	Tokenizer *tokenize.Tokenizer
	// Embedder embeds chunks and queries. Default: the built-in
	// embed.Hashing (256 dimensions), a lexical stand-in.
	Embedder embed.Embedder
	// Index keeps and searches the chunks. Default: a memory.Index.
	Index index.Index
	// Candidates is how many hits each search (keyword, vector) of each
	// query hands to fusion; at least MaxResults are always taken.
	// Default 50.
	Candidates int
	// Fusion is how Hybrid mode merges the keyword and vector lists.
	// Default ScoreFusion.
	Fusion Fusion
	// RRFK is reciprocal rank fusion's k (Fusion RankFusion only).
	// Default DefaultRRFK (60).
	RRFK int
	// EmbedBatch is how many chunks go to one Embed call. Default 256.
	EmbedBatch int
	// KeywordWeight and VectorWeight weigh the keyword and vector lists in
	// hybrid fusion (see FuseScores and FuseWeighted); only their ratio
	// matters. Default DefaultKeywordWeight and DefaultVectorWeight (0.55
	// and 0.45). Set both or neither: a non-positive one takes its default.
	KeywordWeight, VectorWeight float64
}

// Fusion is a way to merge the keyword and vector lists of a Hybrid
// search.
type Fusion int

// Fusions.
const (
	// ScoreFusion is a convex combination of the lists' normalised scores
	// (FuseScores): BM25 divided by the query's best BM25, cosine
	// similarity as it is.
	ScoreFusion Fusion = iota
	// RankFusion is weighted reciprocal rank fusion (FuseWeighted): only
	// ranks count.
	RankFusion
)

// Default fusion weights of the keyword and vector lists. They were
// chosen on the tuning half of the labelled set in testdata/quality
// (TestFusionWeightChosenOnTuningHalf checks that they are among the best
// there) with the built-in embedder, and held to the requirement on the
// other half: hybrid search no worse than keyword-only or vector-only
// search. A semantic embedder ranks differently; its weight would be
// chosen again (Options.KeywordWeight).
const (
	DefaultKeywordWeight = 0.55
	DefaultVectorWeight  = 1 - DefaultKeywordWeight
)

// New returns a pipeline.
func New(opts ...func(*Options)) (*Pipeline, error) {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	if o.Tokenizer == nil {
		o.Tokenizer = tokenize.Default()
	}
	if o.Embedder == nil {
		h, err := embed.NewHashing()
		if err != nil {
			return nil, err
		}
		o.Embedder = h
	}
	if o.Index == nil {
		o.Index = memory.New()
	}
	if o.Candidates <= 0 {
		o.Candidates = 50
	}
	if o.RRFK <= 0 {
		o.RRFK = DefaultRRFK
	}
	if o.EmbedBatch <= 0 {
		o.EmbedBatch = 256
	}
	if o.KeywordWeight <= 0 {
		o.KeywordWeight = DefaultKeywordWeight
	}
	if o.VectorWeight <= 0 {
		o.VectorWeight = DefaultVectorWeight
	}
	if o.Fusion != ScoreFusion && o.Fusion != RankFusion {
		return nil, fmt.Errorf("retrieval: unknown fusion %d", int(o.Fusion))
	}
	return &Pipeline{o: o}, nil
}

// Tokenizer returns the pipeline's tokenizer.
func (p *Pipeline) Tokenizer() *tokenize.Tokenizer { return p.o.Tokenizer }

// Embedder returns the pipeline's embedder; its Model and Dimension are
// what the store must keep with the vectors.
func (p *Pipeline) Embedder() embed.Embedder { return p.o.Embedder }

// IngestStats describe an ingested file.
type IngestStats struct {
	// Chunks is the number of chunks indexed.
	Chunks int
	// Tokens is the number of tokens of the text (up to the last chunk
	// that is not blank).
	Tokens int
}

// ErrNoText is returned by Ingest for a text with nothing to index.
var ErrNoText = errors.New("retrieval: the text has no words to index")

// Ingest splits text into chunks by s, embeds them and puts them in the
// index as ref's chunks (replacing any it had). On error the index is
// unchanged.
func (p *Pipeline) Ingest(ctx context.Context, ref index.Ref, text string, s chunk.Strategy) (IngestStats, error) {
	chunks, err := chunk.Split(text, s, p.o.Tokenizer)
	if err != nil {
		return IngestStats{}, fmt.Errorf("retrieval: %w", err)
	}
	if len(chunks) == 0 {
		return IngestStats{}, ErrNoText
	}
	out := make([]index.Chunk, len(chunks))
	texts := make([]string, len(chunks))
	for i, c := range chunks {
		out[i] = index.Chunk{Ref: ref, Index: c.Index, Text: c.Text}
		texts[i] = c.Text
	}
	for from := 0; from < len(texts); from += p.o.EmbedBatch {
		to := min(len(texts), from+p.o.EmbedBatch)
		vecs, err := p.o.Embedder.Embed(ctx, texts[from:to])
		if err != nil {
			return IngestStats{}, fmt.Errorf("retrieval: embedding: %w", err)
		}
		if len(vecs) != to-from {
			return IngestStats{}, fmt.Errorf("retrieval: the embedder returned %d vectors for %d chunks", len(vecs), to-from)
		}
		for i, v := range vecs {
			out[from+i].Vector = v
		}
	}
	if err := p.o.Index.Put(ctx, ref, out); err != nil {
		return IngestStats{}, fmt.Errorf("retrieval: %w", err)
	}
	last := chunks[len(chunks)-1]
	return IngestStats{Chunks: len(chunks), Tokens: last.FirstToken + last.Tokens}, nil
}

// Delete removes a file's chunks from the index.
func (p *Pipeline) Delete(ctx context.Context, ref index.Ref) error {
	return p.o.Index.Delete(ctx, ref)
}

// DeleteVectorStore removes the chunks of a vector store's files.
func (p *Pipeline) DeleteVectorStore(ctx context.Context, vectorStoreID string) error {
	return p.o.Index.DeleteVectorStore(ctx, vectorStoreID)
}

// Mode is which rankers a search uses.
type Mode int

// Modes of search.
const (
	// Hybrid fuses keyword and vector search (the default).
	Hybrid Mode = iota
	// KeywordOnly ranks by BM25 alone.
	KeywordOnly
	// VectorOnly ranks by vector similarity alone.
	VectorOnly
)

func (m Mode) String() string {
	switch m {
	case Hybrid:
		return "hybrid"
	case KeywordOnly:
		return "keyword"
	case VectorOnly:
		return "vector"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ModeForRanker maps a ranking_options.ranker of the API to a mode. Every
// documented value ("auto", "default-2024-11-15" and "none" for vector
// store search, "auto" and "default_2024_08_21" for the file_search tool,
// and "" for none given) searches Hybrid: the pipeline has no re-ranking
// stage beyond fusion, so "none", which turns re-ranking off, changes
// nothing. Other values are an error.
func ModeForRanker(ranker string) (Mode, error) {
	switch ranker {
	case "", "auto", "none", "default-2024-11-15", "default_2024_08_21":
		return Hybrid, nil
	}
	return Hybrid, fmt.Errorf("retrieval: unknown ranker %q", ranker)
}

// Request is a search.
type Request struct {
	// Queries are the texts searched for (at least one). A chunk's score
	// is its best over the queries.
	Queries []string
	// Scope is which vector stores and files may be returned (the
	// attribute filter goes in Scope.Allow).
	Scope index.Scope
	// Mode picks the rankers. Default Hybrid.
	Mode Mode
	// ScoreThreshold drops results scoring below it (0..1). Default 0.
	ScoreThreshold float64
	// MaxResults bounds the results. Default 10.
	MaxResults int
}

// Result is a chunk found by Search.
type Result struct {
	// Chunk is the chunk (without its vector).
	Chunk index.Chunk
	// Score is the fused score, 0 to 1 (see FuseScores and Fuse).
	Score float64
	// Ranks are the chunk's ranks in the lists fused for its best query:
	// [keyword, vector] for Hybrid, one rank otherwise; 0 where absent. They
	// let a user see why a chunk was found.
	Ranks []int
}

// Search runs req: for each query the keyword and vector searches (as
// Mode says) within the scope, fused as Options.Fusion says, then the
// best score of each chunk over the queries, the threshold and the limit.
// With ScoreFusion a KeywordOnly search scores BM25 divided by the
// query's best and a VectorOnly search the cosine similarity.
func (p *Pipeline) Search(ctx context.Context, req Request) ([]Result, error) {
	if len(req.Queries) == 0 {
		return nil, errors.New("retrieval: no query")
	}
	for i, q := range req.Queries {
		if strings.TrimSpace(q) == "" {
			return nil, fmt.Errorf("retrieval: query %d is empty", i)
		}
	}
	if req.ScoreThreshold < 0 || req.ScoreThreshold > 1 {
		return nil, fmt.Errorf("retrieval: score threshold %v is not between 0 and 1", req.ScoreThreshold)
	}
	limit := req.MaxResults
	if limit <= 0 {
		limit = 10
	}
	depth := max(p.o.Candidates, limit)
	// The keyword searches run beside the query's embedding and the
	// vector searches (unless the index is an index.Serial asking for them
	// in turn): a hybrid search takes about as long as the slower half.
	// The first half to fail ends the search: its error is returned, the
	// other half is cancelled (or, in turn, not started).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	kwHits := make([][]index.Hit, len(req.Queries))
	var wg sync.WaitGroup
	keyword := func() {
		for i, q := range req.Queries {
			hits, err := p.o.Index.SearchKeyword(ctx, q, req.Scope, depth)
			if err != nil {
				fail(fmt.Errorf("retrieval: keyword search: %w", err))
				return
			}
			kwHits[i] = hits
		}
	}
	serial, _ := p.o.Index.(index.Serial)
	switch {
	case req.Mode == VectorOnly:
	case serial != nil && serial.SerialSearches(), req.Mode == KeywordOnly:
		keyword()
		if first != nil {
			return nil, first // the vector half is not run
		}
	default:
		wg.Go(keyword)
	}
	vecHits, err := p.searchVectors(ctx, req, depth)
	if err != nil {
		fail(err)
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	best := map[chunkKey]Result{}
	for i := range req.Queries {
		var lists []ScoreList
		if req.Mode != VectorOnly {
			lists = append(lists, ScoreList{Hits: kwHits[i], Weight: p.o.KeywordWeight})
		}
		if req.Mode != KeywordOnly {
			lists = append(lists, ScoreList{Hits: vecHits[i], Weight: p.o.VectorWeight, Bounded: true})
		}
		var fused []Result
		if p.o.Fusion == RankFusion {
			weights := make([]float64, len(lists))
			hits := make([][]index.Hit, len(lists))
			for j, l := range lists {
				weights[j], hits[j] = l.Weight, l.Hits
			}
			fused = FuseWeighted(p.o.RRFK, weights, hits...)
		} else {
			fused = FuseScores(lists...)
		}
		for _, r := range fused {
			key := chunkKey{r.Chunk.Ref, r.Chunk.Index}
			if old, ok := best[key]; !ok || r.Score > old.Score {
				best[key] = r
			}
		}
	}
	out := make([]Result, 0, len(best))
	for _, r := range best {
		if r.Score >= req.ScoreThreshold {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareResults)
	return out[:min(limit, len(out))], nil
}

// searchVectors embeds req's queries and runs their vector searches (none
// for KeywordOnly).
func (p *Pipeline) searchVectors(ctx context.Context, req Request, depth int) ([][]index.Hit, error) {
	if req.Mode == KeywordOnly {
		return nil, nil
	}
	qvecs, err := p.o.Embedder.Embed(ctx, req.Queries)
	if err != nil {
		return nil, fmt.Errorf("retrieval: embedding the query: %w", err)
	}
	if len(qvecs) != len(req.Queries) {
		return nil, fmt.Errorf("retrieval: the embedder returned %d vectors for %d queries", len(qvecs), len(req.Queries))
	}
	out := make([][]index.Hit, len(req.Queries))
	for i := range req.Queries {
		hits, err := p.o.Index.SearchVector(ctx, qvecs[i], req.Scope, depth)
		if err != nil {
			return nil, fmt.Errorf("retrieval: vector search: %w", err)
		}
		out[i] = hits
	}
	return out, nil
}

// FileResult is a file's share of search results: the file, its best
// score and its chunks, best first.
type FileResult struct {
	Ref    index.Ref
	Score  float64
	Chunks []Result
}

// GroupByFile gathers results (best first) by file, keeping at most
// maxChunks chunks per file (all when 0 or less); files come in order of
// their best result.
func GroupByFile(results []Result, maxChunks int) []FileResult {
	var out []FileResult
	at := map[index.Ref]int{}
	for _, r := range results {
		i, ok := at[r.Chunk.Ref]
		if !ok {
			i = len(out)
			at[r.Chunk.Ref] = i
			out = append(out, FileResult{Ref: r.Chunk.Ref, Score: r.Score})
		}
		if maxChunks <= 0 || len(out[i].Chunks) < maxChunks {
			out[i].Chunks = append(out[i].Chunks, r)
		}
	}
	return out
}
