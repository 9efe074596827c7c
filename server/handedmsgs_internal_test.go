package server

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// listing counts the store's ListMessages.
type listing struct {
	store.Store
	lists atomic.Int64
}

func (s *listing) ListMessages(ctx context.Context, project, threadID, runID string, lp store.ListParams) (store.Page[store.Message], error) {
	s.lists.Add(1)
	return s.Store.ListMessages(ctx, project, threadID, runID, lp)
}

// TestCreatedThreadHandsItsMessages: the first round of a run created
// with its thread (createThreadAndRun) gets the thread's messages from the
// write that stored them, without reading them back, and the model sees
// them (here "call lookup", which asks for a tool call); a run on an
// existing thread reads them. (On the SQL stores, whose queue runs the
// round inline; the memory store's queue starts its rounds by itself, and
// its reads are a map's.)
func TestCreatedThreadHandsItsMessages(t *testing.T) {
	for name, open := range startStores() {
		if name == "memory" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var view *listing
			f := newStartFixtureOn(t, open(t), func(st store.Store) store.Store {
				view = &listing{Store: st}
				return view
			}, 0, RiverOptions{})
			msgs := []gen.CreateMessageRequest{{Role: "user", Content: userText(t, "call lookup")}}
			rr, err := f.s.CreateThreadAndRun(f.ctx, genserver.CreateThreadAndRunRequestObject{Body: &gen.CreateThreadAndRunRequest{
				AssistantId: f.asst, Thread: &gen.CreateThreadRequest{Messages: &msgs}}})
			require.NoError(t, err)
			run := rr.(runReply).run
			f.waitStatus(run.ThreadId, run.Id, gen.RunObjectStatusRequiresAction)
			require.Equal(t, int64(0), view.lists.Load(), "the round read the messages of the thread its run was created with")

			run, err = f.createRun(f.thread("hello"))
			require.NoError(t, err)
			f.waitStatus(run.ThreadId, run.Id, gen.RunObjectStatusCompleted)
			require.Positive(t, view.lists.Load(), "a run on an existing thread read no messages")
		})
	}
}
