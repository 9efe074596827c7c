package retrieval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/filter"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

var ctx = context.Background()

func hit(file string, i int) index.Hit {
	return index.Hit{Chunk: index.Chunk{Ref: index.Ref{VectorStoreID: "vs", FileID: file}, Index: i}}
}

func TestFuse(t *testing.T) {
	kw := []index.Hit{hit("a", 0), hit("b", 0), hit("c", 0)}
	vec := []index.Hit{hit("b", 0), hit("d", 0), hit("a", 0)}
	got := Fuse(60, kw, vec)
	require.Len(t, got, 4)
	var order []string
	for _, r := range got {
		order = append(order, r.Chunk.FileID)
		assert.Greater(t, r.Score, 0.0)
		assert.LessOrEqual(t, r.Score, 1.0)
	}
	// b: 1/62+1/61, a: 1/61+1/63, d: 1/62, c: 1/63.
	assert.Equal(t, []string{"b", "a", "d", "c"}, order)
	assert.InDelta(t, (1.0/62+1.0/61)/(2.0/61), got[0].Score, 1e-12)
	assert.Equal(t, []int{2, 1}, got[0].Ranks)
	assert.Equal(t, []int{0, 2}, got[2].Ranks)

	top := Fuse(0, []index.Hit{hit("x", 0)}, []index.Hit{hit("x", 0)})
	assert.Equal(t, 1.0, top[0].Score, "first everywhere scores 1")
	one := Fuse(60, []index.Hit{hit("x", 0)}, nil)
	assert.InDelta(t, 0.5, one[0].Score, 1e-12, "first in one of two lists")
	assert.Empty(t, Fuse(60))
	dup := Fuse(60, []index.Hit{hit("x", 0), hit("x", 0)})
	assert.Equal(t, 1.0, dup[0].Score, "a repeated hit counts once per list")
}

func TestFuseWeighted(t *testing.T) {
	kw := []index.Hit{hit("a", 0), hit("b", 0)}
	vec := []index.Hit{hit("b", 0), hit("a", 0)}
	assert.Equal(t, Fuse(60, kw, vec)[0].Score, FuseWeighted(60, nil, kw, vec)[0].Score)
	got := FuseWeighted(60, []float64{1, 0.5}, kw, vec)
	assert.Equal(t, "a", got[0].Chunk.FileID, "the heavier list's first wins")
	assert.InDelta(t, (1.0/61+0.5/62)/(1.5/61), got[0].Score, 1e-12)
	top := FuseWeighted(60, []float64{3, 0.2}, []index.Hit{hit("x", 0)}, []index.Hit{hit("x", 0)})
	assert.InDelta(t, 1.0, top[0].Score, 1e-12, "still 1 for first everywhere")
}

func scored(file string, i int, s float64) index.Hit {
	h := hit(file, i)
	h.Score = s
	return h
}

func TestFuseScores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lists  []ScoreList
		order  []string
		scores []float64
		ranks  [][]int
	}{
		{
			name: "keyword divided by its best, cosine as it is, weights summing to 1",
			lists: []ScoreList{
				{Hits: []index.Hit{scored("a", 0, 8), scored("b", 0, 4)}, Weight: 3},
				{Hits: []index.Hit{scored("b", 0, 0.9), scored("c", 0, 0.5)}, Weight: 1, Bounded: true},
			},
			// a: 0.75×1; b: 0.75×0.5 + 0.25×0.9; c: 0.25×0.5.
			order:  []string{"a", "b", "c"},
			scores: []float64{0.75, 0.6, 0.125},
			ranks:  [][]int{{1, 0}, {2, 1}, {0, 2}},
		},
		{
			name: "score gaps count, not only ranks: a clear keyword winner stays first",
			lists: []ScoreList{
				{Hits: []index.Hit{scored("a", 0, 10), scored("b", 0, 1)}, Weight: 0.5},
				{Hits: []index.Hit{scored("b", 0, 0.31), scored("a", 0, 0.30)}, Weight: 0.5, Bounded: true},
			},
			order:  []string{"a", "b"},
			scores: []float64{0.65, 0.205},
			ranks:  [][]int{{1, 2}, {2, 1}},
		},
		{
			name:   "first everywhere with a perfect cosine scores 1; non-positive weights count 1",
			lists:  []ScoreList{{Hits: []index.Hit{scored("x", 0, 3)}}, {Hits: []index.Hit{scored("x", 0, 1)}, Weight: -2, Bounded: true}},
			order:  []string{"x"},
			scores: []float64{1},
			ranks:  [][]int{{1, 1}},
		},
		{
			name:   "a bounded score above 1 is clamped; a repeated hit counts once",
			lists:  []ScoreList{{Hits: []index.Hit{scored("x", 0, 1.2), scored("x", 0, 1.2)}, Bounded: true}},
			order:  []string{"x"},
			scores: []float64{1},
			ranks:  [][]int{{1}},
		},
		{
			name:   "equal scores in order of file",
			lists:  []ScoreList{{Hits: []index.Hit{scored("b", 0, 2), scored("a", 0, 2)}}},
			order:  []string{"a", "b"},
			scores: []float64{1, 1},
			ranks:  [][]int{{2}, {1}},
		},
		{name: "no lists", lists: nil},
		{name: "empty lists", lists: []ScoreList{{}, {Bounded: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FuseScores(tc.lists...)
			require.Len(t, got, len(tc.order))
			for i, r := range got {
				assert.Equal(t, tc.order[i], r.Chunk.FileID, "result %d", i)
				assert.InDelta(t, tc.scores[i], r.Score, 1e-12, "result %d", i)
				assert.Equal(t, tc.ranks[i], r.Ranks, "result %d", i)
			}
		})
	}
}

func TestNewRejectsUnknownFusion(t *testing.T) {
	_, err := New(func(o *Options) { o.Fusion = Fusion(7) })
	assert.ErrorContains(t, err, "unknown fusion 7")
}

// TestRankFusionOption: Options.Fusion RankFusion still fuses by rank.
func TestRankFusionOption(t *testing.T) {
	p := newTestPipeline(t)
	r, err := New(func(o *Options) { o.Index = p.o.Index; o.Fusion = RankFusion; o.KeywordWeight, o.VectorWeight = 1, 1 })
	require.NoError(t, err)
	res, err := r.Search(ctx, Request{Queries: []string{"reset the router"}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}})
	require.NoError(t, err)
	require.NotEmpty(t, res)
	assert.Equal(t, "router.md", res[0].Chunk.FileID)
	assert.Equal(t, []int{1, 1}, res[0].Ranks)
	assert.InDelta(t, 1, res[0].Score, 1e-12, "first in both lists scores 1 by rank")
}

func newTestPipeline(t *testing.T) *Pipeline {
	t.Helper()
	p, err := New()
	require.NoError(t, err)
	docs := map[string]string{
		"refunds.md":  "Refunds are paid within fourteen days to the original card. Damaged parcels are refunded in full.",
		"shipping.md": "Parcels ship from the Rotterdam warehouse on weekdays. Express shipping costs nine euros.",
		"garden.md":   "Tomatoes need six hours of sun. Water the tomato beds in the morning, never at noon.",
		"router.md":   "To reset the router, hold the reset button for ten seconds until the light blinks amber.",
	}
	for name, text := range docs {
		_, err := p.Ingest(ctx, index.Ref{VectorStoreID: "vs", FileID: name}, text, chunk.Auto())
		require.NoError(t, err)
	}
	return p
}

func TestSearch(t *testing.T) {
	p := newTestPipeline(t)
	scope := index.Scope{VectorStoreIDs: []string{"vs"}}
	for _, mode := range []Mode{Hybrid, KeywordOnly, VectorOnly} {
		t.Run(mode.String(), func(t *testing.T) {
			res, err := p.Search(ctx, Request{Queries: []string{"how long do refunds take?"}, Scope: scope, Mode: mode})
			require.NoError(t, err)
			require.NotEmpty(t, res)
			assert.Equal(t, "refunds.md", res[0].Chunk.FileID)
			assert.Contains(t, res[0].Chunk.Text, "fourteen days")
			for i, r := range res {
				assert.Greater(t, r.Score, 0.0)
				assert.LessOrEqual(t, r.Score, 1.0)
				if i > 0 {
					assert.LessOrEqual(t, r.Score, res[i-1].Score)
				}
			}
		})
	}
}

func TestSearchOptions(t *testing.T) {
	p := newTestPipeline(t)
	scope := index.Scope{VectorStoreIDs: []string{"vs"}}

	res, err := p.Search(ctx, Request{Queries: []string{"reset the router", "tomato sun"}, Scope: scope})
	require.NoError(t, err)
	files := map[string]bool{}
	for _, r := range res[:2] {
		files[r.Chunk.FileID] = true
	}
	assert.Equal(t, map[string]bool{"router.md": true, "garden.md": true}, files, "each query's best chunk leads")

	res, err = p.Search(ctx, Request{Queries: []string{"parcels"}, Scope: scope, MaxResults: 1})
	require.NoError(t, err)
	assert.Len(t, res, 1)

	all, err := p.Search(ctx, Request{Queries: []string{"parcels"}, Scope: scope})
	require.NoError(t, err)
	require.Greater(t, len(all), 1)
	cut := (all[0].Score + all[len(all)-1].Score) / 2
	res, err = p.Search(ctx, Request{Queries: []string{"parcels"}, Scope: scope, ScoreThreshold: cut})
	require.NoError(t, err)
	assert.NotEmpty(t, res)
	assert.Less(t, len(res), len(all))
	for _, r := range res {
		assert.GreaterOrEqual(t, r.Score, cut)
	}

	f, err := filter.Parse([]byte(`{"type":"eq","key":"topic","value":"garden"}`), "filters", 0)
	require.NoError(t, err)
	attrs := map[string]filter.Attributes{"garden.md": {"topic": filter.String("garden")}}
	res, err = p.Search(ctx, Request{Queries: []string{"refunds for parcels"}, Scope: index.Scope{
		VectorStoreIDs: []string{"vs"},
		Allow:          func(r index.Ref) bool { return f.Match(attrs[r.FileID]) },
	}})
	require.NoError(t, err)
	for _, r := range res {
		assert.Equal(t, "garden.md", r.Chunk.FileID, "filtered before ranking")
	}

	for _, bad := range []Request{{}, {Queries: []string{" "}}, {Queries: []string{"x"}, ScoreThreshold: 1.5}} {
		_, err := p.Search(ctx, bad)
		assert.Error(t, err)
	}
}

func TestIngestErrors(t *testing.T) {
	p := newTestPipeline(t)
	ref := index.Ref{VectorStoreID: "vs", FileID: "refunds.md"}
	_, err := p.Ingest(ctx, ref, "   \n ", chunk.Auto())
	assert.ErrorIs(t, err, ErrNoText)
	_, err = p.Ingest(ctx, ref, "text", chunk.Strategy{MaxTokens: 5})
	assert.ErrorIs(t, err, chunk.ErrInvalidStrategy)
	res, err := p.Search(ctx, Request{Queries: []string{"refunds"}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}})
	require.NoError(t, err)
	assert.Equal(t, "refunds.md", res[0].Chunk.FileID, "a failed ingest leaves the file's chunks")

	failing := errors.New("backend down")
	p2, err := New(func(o *Options) { o.Embedder = failEmbedder{failing} })
	require.NoError(t, err)
	_, err = p2.Ingest(ctx, ref, "some text", chunk.Auto())
	assert.ErrorIs(t, err, failing)
}

type failEmbedder struct{ err error }

func (f failEmbedder) Embed(context.Context, []string) ([][]float32, error) { return nil, f.err }
func (failEmbedder) Model() string                                          { return "fail" }
func (failEmbedder) Dimension() int                                         { return 3 }

func TestIngestStatsAndDelete(t *testing.T) {
	p, err := New()
	require.NoError(t, err)
	text := strings.Repeat("word ", 1000)
	st, err := p.Ingest(ctx, index.Ref{VectorStoreID: "vs", FileID: "f"}, text, chunk.Strategy{MaxTokens: 300, OverlapTokens: 100})
	require.NoError(t, err)
	assert.Equal(t, p.Tokenizer().Count(text), st.Tokens)
	assert.Equal(t, 5, st.Chunks) // 1000 tokens: chunks start at tokens 0, 200, 400, 600 and 800
	require.NoError(t, p.Delete(ctx, index.Ref{VectorStoreID: "vs", FileID: "f"}))
	res, err := p.Search(ctx, Request{Queries: []string{"word"}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}})
	require.NoError(t, err)
	assert.Empty(t, res)
}

func TestGroupByFile(t *testing.T) {
	r := func(file string, i int, s float64) Result {
		return Result{Chunk: index.Chunk{Ref: index.Ref{VectorStoreID: "vs", FileID: file}, Index: i}, Score: s}
	}
	got := GroupByFile([]Result{r("a", 0, .9), r("b", 3, .8), r("a", 2, .7), r("a", 1, .6), r("c", 0, .5)}, 2)
	require.Len(t, got, 3)
	assert.Equal(t, "a", got[0].Ref.FileID)
	assert.Equal(t, .9, got[0].Score)
	assert.Len(t, got[0].Chunks, 2)
	assert.Equal(t, []string{"b", "c"}, []string{got[1].Ref.FileID, got[2].Ref.FileID})
	assert.Len(t, GroupByFile([]Result{r("a", 0, 1), r("a", 1, 1), r("a", 2, 1)}, 0)[0].Chunks, 3)
}

func TestModeForRanker(t *testing.T) {
	for _, r := range []string{"", "auto", "none", "default-2024-11-15", "default_2024_08_21"} {
		m, err := ModeForRanker(r)
		assert.NoError(t, err)
		assert.Equal(t, Hybrid, m)
	}
	_, err := ModeForRanker("bm25")
	assert.ErrorContains(t, err, `unknown ranker "bm25"`)
	assert.Equal(t, "Mode(9)", fmt.Sprint(Mode(9)))
}
