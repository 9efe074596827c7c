package retrieval

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/chunk"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

type question struct {
	text, file, answer string
}

func loadQuestions(t testing.TB) []question {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "quality", "questions.tsv"))
	require.NoError(t, err)
	defer f.Close()
	var qs []question
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		require.Len(t, parts, 3, "line %q", line)
		qs = append(qs, question{parts[0], parts[1], parts[2]})
	}
	require.NoError(t, sc.Err())
	return qs
}

// qualityStrategy cuts the documents (about 220 tokens each) into a few
// chunks each, so that finding the right passage, not just the right
// file, is measured.
var qualityStrategy = chunk.Strategy{MaxTokens: 100, OverlapTokens: 20}

// Metrics are retrieval quality figures over a question set.
type Metrics struct {
	RecallAt5 float64 // share of questions with a relevant chunk in the top 5
	MRR       float64 // mean of 1/rank of the first relevant chunk in the top 10 (0 if none)
}

func measure(t testing.TB, p *Pipeline, qs []question, mode Mode) Metrics {
	t.Helper()
	var m Metrics
	for _, q := range qs {
		res, err := p.Search(ctx, Request{Queries: []string{q.text}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}, Mode: mode, MaxResults: 10})
		require.NoError(t, err)
		for i, r := range res {
			if r.Chunk.FileID == q.file && strings.Contains(r.Chunk.Text, q.answer) {
				if i < 5 {
					m.RecallAt5++
				}
				m.MRR += 1 / float64(i+1)
				break
			}
		}
	}
	m.RecallAt5 /= float64(len(qs))
	m.MRR /= float64(len(qs))
	return m
}

func qualityPipeline(t testing.TB, opts ...func(*Options)) *Pipeline {
	t.Helper()
	p, err := New(opts...)
	require.NoError(t, err)
	docs, err := filepath.Glob(filepath.Join("testdata", "quality", "docs", "*.md"))
	require.NoError(t, err)
	require.Len(t, docs, 20)
	for _, d := range docs {
		b, err := os.ReadFile(d)
		require.NoError(t, err)
		_, err = p.Ingest(ctx, index.Ref{VectorStoreID: "vs", FileID: filepath.Base(d)}, string(b), qualityStrategy)
		require.NoError(t, err)
	}
	return p
}

// splitQuestions splits the labelled set deterministically into a tuning
// half (the questions at even positions of the file) and a held-out half
// (odd positions). The file lists each document's questions together, so
// both halves cover every document. Constants of the ranking (the fusion
// weights) are chosen on the tuning half only; the held-out half checks
// that the choice carries over to questions it was not chosen on.
func splitQuestions(qs []question) (tuning, heldOut []question) {
	for i, q := range qs {
		if i%2 == 0 {
			tuning = append(tuning, q)
		} else {
			heldOut = append(heldOut, q)
		}
	}
	return tuning, heldOut
}

// TestRetrievalQuality measures recall@5 and MRR@10 of keyword-only,
// vector-only (built-in hashing embedder) and hybrid search over the
// labelled set in testdata/quality (run with -v to see the figures), on
// the tuning half, the held-out half and the whole set (see
// splitQuestions).
//
// The requirement, hybrid no worse than the best single ranker,
// is asserted on both recall@5 and MRR, on the tuning half, the held-out
// half and the whole set, with no slack beyond floating-point rounding.
// On the held-out half hybrid ties keyword-only search on both (0.985 /
// 0.920): one question rises from rank 3 to 2 ("How long is maternity
// leave?"), one falls from 2 to 3 ("What does a second size swap
// cost?"). With version 1 of the built-in embedder (every word weighing
// the same, each feature hashed once) and its weight (0.45), hybrid MRR
// on the held-out half was 0.915 against keyword's 0.920, and this test
// fails.
//
// Floors: with about 3 chunks per document and 60 chunks in all, a random
// ranking has recall@5 near 0.08 and MRR near 0.05. The floors sit a few
// points under the figures measured (printed by the test), so a change
// that loses more than a handful of questions fails; they are not targets
// to tune against.
func TestRetrievalQuality(t *testing.T) {
	qs := loadQuestions(t)
	require.GreaterOrEqual(t, len(qs), 100)
	p := qualityPipeline(t)

	// Every question is answerable: some chunk of its file holds the phrase.
	for _, q := range qs {
		res, err := p.Search(ctx, Request{Queries: []string{q.answer}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}, Mode: KeywordOnly, MaxResults: 50})
		require.NoError(t, err)
		found := false
		for _, r := range res {
			found = found || r.Chunk.FileID == q.file && strings.Contains(r.Chunk.Text, q.answer)
		}
		require.True(t, found, "no chunk of %s holds %q", q.file, q.answer)
	}

	tuning, heldOut := splitQuestions(qs)
	t.Logf("%d questions (%d tuning, %d held out), %d documents, chunks of %d tokens with %d overlap",
		len(qs), len(tuning), len(heldOut), 20, qualityStrategy.MaxTokens, qualityStrategy.OverlapTokens)
	var whole [3]Metrics
	for _, set := range []struct {
		name string
		qs   []question
	}{
		{"tuning", tuning},
		{"held-out", heldOut},
		{"all", qs},
	} {
		kw := measure(t, p, set.qs, KeywordOnly)
		vec := measure(t, p, set.qs, VectorOnly)
		hyb := measure(t, p, set.qs, Hybrid)
		whole = [3]Metrics{kw, vec, hyb}
		for _, m := range []struct {
			name string
			m    Metrics
		}{{"keyword", kw}, {"vector", vec}, {"hybrid", hyb}} {
			t.Logf("%-8s %-8s recall@5 %.3f  MRR@10 %.3f", set.name, m.name, m.m.RecallAt5, m.m.MRR)
		}
		for _, c := range []struct {
			metric           string
			hyb, best, other float64
		}{
			{"recall@5", hyb.RecallAt5, kw.RecallAt5, vec.RecallAt5},
			{"MRR", hyb.MRR, kw.MRR, vec.MRR},
		} {
			best := max(c.best, c.other)
			assert.GreaterOrEqual(t, c.hyb, best-fpSlack, "%s: hybrid %s is no worse than the best single ranker", set.name, c.metric)
		}
	}
	kw, vec, hyb := whole[0], whole[1], whole[2]
	for _, f := range []struct {
		name      string
		m         Metrics
		recall, r float64
	}{
		{"keyword", kw, floorKeywordRecall, floorKeywordMRR},
		{"vector", vec, floorVectorRecall, floorVectorMRR},
		{"hybrid", hyb, floorHybridRecall, floorHybridMRR},
	} {
		assert.GreaterOrEqual(t, f.m.RecallAt5, f.recall, "%s recall@5 floor", f.name)
		assert.GreaterOrEqual(t, f.m.MRR, f.r, "%s MRR floor", f.name)
	}
}

// TestFusionWeightChosenOnTuningHalf shows how DefaultKeywordWeight was
// chosen: hybrid search (score fusion, the built-in embedder) on the
// tuning half only, for keyword weights 0.05 to 0.95 in steps of 0.05 (the
// vector weight is the rest), ranked by recall@5 + MRR. The default must
// be among the best: 0.50, 0.55 and 0.60 tie, and the default is the
// middle of them. The held-out half is not looked at here.
func TestFusionWeightChosenOnTuningHalf(t *testing.T) {
	qs := loadQuestions(t)
	tuning, _ := splitQuestions(qs)
	idx := qualityPipeline(t).o.Index
	objective := func(w float64) float64 {
		p, err := New(func(o *Options) { o.Index = idx; o.KeywordWeight = w; o.VectorWeight = 1 - w })
		require.NoError(t, err)
		m := measure(t, p, tuning, Hybrid)
		t.Logf("keyword weight %.2f: recall@5 %.3f  MRR@10 %.3f", w, m.RecallAt5, m.MRR)
		return m.RecallAt5 + m.MRR
	}
	best := 0.0
	for i := 1; i <= 19; i++ {
		best = max(best, objective(float64(i)/20))
	}
	got := objective(DefaultKeywordWeight)
	assert.InDelta(t, best, got, fpSlack, "DefaultKeywordWeight %.2f is among the best weights on the tuning half", DefaultKeywordWeight)
	assert.InDelta(t, 1, DefaultKeywordWeight+DefaultVectorWeight, 1e-12)
}

// Floors of TestRetrievalQuality (whole set).
// Measured: keyword 0.963/0.878, vector 0.844/0.742, hybrid 0.963/0.885
// (recall@5/MRR@10; int8 vectors in the memory index).
const (
	floorKeywordRecall = 0.92
	floorKeywordMRR    = 0.82
	floorVectorRecall  = 0.80
	floorVectorMRR     = 0.68
	floorHybridRecall  = 0.92
	floorHybridMRR     = 0.82
)

// fpSlack absorbs floating-point rounding only: a metric is a sum of
// 1/rank terms over at most a few hundred questions.
const fpSlack = 1e-9
