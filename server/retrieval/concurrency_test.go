package retrieval

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
)

// meetingIndex is a memory index whose keyword search waits for the
// vector search to start (or for its context to end): a pipeline that
// runs them in turn never sees them meet.
type meetingIndex struct {
	*memory.Index
	vectorStarted chan struct{}
	keywordDone   atomic.Bool
	vectorSawDone atomic.Bool
	serial        bool
}

func (m *meetingIndex) SearchKeyword(ctx context.Context, q string, s index.Scope, k int) ([]index.Hit, error) {
	defer m.keywordDone.Store(true)
	if !m.serial {
		select {
		case <-m.vectorStarted:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.Index.SearchKeyword(ctx, q, s, k)
}

func (m *meetingIndex) SearchVector(ctx context.Context, q []float32, s index.Scope, k int) ([]index.Hit, error) {
	m.vectorSawDone.Store(m.keywordDone.Load())
	close(m.vectorStarted)
	return m.Index.SearchVector(ctx, q, s, k)
}

type serialIndex struct{ *meetingIndex }

func (serialIndex) SerialSearches() bool { return true }

// TestHybridHalves: a hybrid search runs its keyword and vector halves at
// the same time (the keyword half waits for the vector half to start and
// finishes); for an index.Serial index it runs them in turn (the vector
// half starts after the keyword half ended).
func TestHybridHalves(t *testing.T) {
	for _, serial := range []bool{false, true} {
		m := &meetingIndex{Index: memory.New(), vectorStarted: make(chan struct{}), serial: serial}
		var x index.Index = m
		if serial {
			x = serialIndex{m}
		}
		p, err := New(func(o *Options) { o.Index = x })
		require.NoError(t, err)
		_, err = p.Ingest(ctx, index.Ref{VectorStoreID: "vs", FileID: "f"}, "The lighthouse lantern is lit at dusk.", qualityStrategy)
		require.NoError(t, err)
		c, cancel := context.WithTimeout(ctx, 30*time.Second) // bounds a pipeline that would wait forever
		res, err := p.Search(c, Request{Queries: []string{"lighthouse lantern"}, Scope: index.Scope{VectorStoreIDs: []string{"vs"}}})
		cancel()
		require.False(t, errors.Is(err, context.DeadlineExceeded), "serial=%v: the halves never met", serial)
		require.NoError(t, err)
		require.NotEmpty(t, res)
		require.Equal(t, serial, m.vectorSawDone.Load(), "serial=%v: the vector half started after the keyword half ended", serial)
	}
}
