package retrieval

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// failingKeyword is an index whose keyword search fails (an injected
// fault) and which counts its vector searches; serial says whether it
// asks for the halves in turn.
type failingKeyword struct {
	index.Index
	err     error
	serial  bool
	vectors atomic.Int32
}

func (f *failingKeyword) SerialSearches() bool { return f.serial }

func (f *failingKeyword) SearchKeyword(context.Context, string, index.Scope, int) ([]index.Hit, error) {
	return nil, f.err
}

func (f *failingKeyword) SearchVector(ctx context.Context, q []float32, s index.Scope, k int) ([]index.Hit, error) {
	f.vectors.Add(1)
	return f.Index.SearchVector(ctx, q, s, k)
}

// countingEmbedder counts the embedder's calls.
type countingEmbedder struct {
	embed.Embedder
	calls atomic.Int32
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.calls.Add(1)
	return c.Embedder.Embed(ctx, texts)
}

// TestKeywordFailureEndsSearch: a hybrid search whose keyword half fails
// returns that error; with an index asking for the halves in turn the
// vector half (the query's embedding and the vector search) is not run at
// all.
func TestKeywordFailureEndsSearch(t *testing.T) {
	for _, serial := range []bool{true, false} {
		t.Run(map[bool]string{true: "serial", false: "concurrent"}[serial], func(t *testing.T) {
			base := newTestPipeline(t)
			down := errors.New("keyword index down")
			x := &failingKeyword{Index: base.o.Index, err: down, serial: serial}
			emb := &countingEmbedder{Embedder: base.o.Embedder}
			p, err := New(func(o *Options) { o.Index, o.Embedder = x, emb })
			require.NoError(t, err)
			_, err = p.Search(ctx, Request{Queries: []string{"refunds", "parcels"}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}})
			require.ErrorIs(t, err, down)
			if serial {
				assert.Zero(t, emb.calls.Load(), "the query was embedded after the keyword half failed")
				assert.Zero(t, x.vectors.Load(), "the vector half ran after the keyword half failed")
			}
		})
	}
}
