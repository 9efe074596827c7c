package server

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// threadGoneOnUpdate is a store whose UpdateThread, once armed, finds the
// thread deleted, as when a DeleteThread comes between a round's reading
// the thread and its write.
type threadGoneOnUpdate struct {
	store.Store
	armed atomic.Bool
}

func (s *threadGoneOnUpdate) UpdateThread(ctx context.Context, project, id string, fn func(*store.Thread) error) (store.Thread, error) {
	if s.armed.Load() {
		if err := s.DeleteThread(ctx, project, id); err != nil {
			return store.Thread{}, err
		}
	}
	return s.Store.UpdateThread(ctx, project, id, fn)
}

// TestThreadAttachmentsStoreOfGoneThread: the vector store that a run
// makes for the files attached to its thread's messages (file_search) is
// deleted when the thread is gone before the store could be recorded on
// it; it is kept, on the thread, otherwise.
func TestThreadAttachmentsStoreOfGoneThread(t *testing.T) {
	for name, open := range startStores() {
		t.Run(name, func(t *testing.T) {
			var gone *threadGoneOnUpdate
			f := newStartFixtureOn(t, open(t), func(st store.Store) store.Store {
				gone = &threadGoneOnUpdate{Store: st}
				return gone
			}, 0, RiverOptions{})
			ctx, project := f.ctx, store.DefaultProject
			_, err := f.s.db.CreateFile(ctx, store.File{ID: "file-notes", Filename: "notes.txt", Purpose: "assistants"}, strings.NewReader("Penguins eat krill."), 0, nil)
			require.NoError(t, err)
			thread := func() string {
				id := "file-notes"
				tool := gen.MessageAttachmentTool{Type: gen.MessageAttachmentToolTypeFileSearch}
				msgs := []gen.CreateMessageRequest{{Role: "user", Content: userText(t, "what do penguins eat?"),
					Attachments: &[]gen.MessageAttachment{{FileId: &id, Tools: &[]gen.MessageAttachmentTool{tool}}}}}
				th, err := f.s.insertThread(ctx, &gen.CreateThreadRequest{Messages: &msgs})
				require.NoError(t, err)
				return th.Id
			}
			stores := func() []string {
				pg, err := f.s.db.ListVectorStores(ctx, project, store.ListParams{Limit: 100})
				require.NoError(t, err)
				var ids []string
				for _, v := range pg.Items {
					ids = append(ids, v.ID)
				}
				return ids
			}

			kept := thread()
			th, err := f.s.attachThreadFiles(ctx, project, kept)
			require.NoError(t, err)
			require.NotNil(t, th.ToolResources.FileSearch)
			require.Equal(t, stores(), *th.ToolResources.FileSearch.VectorStoreIds, "the thread's store")

			gone.armed.Store(true)
			_, err = f.s.attachThreadFiles(ctx, project, thread())
			require.Error(t, err)
			require.Equal(t, *th.ToolResources.FileSearch.VectorStoreIds, stores(), "the store made for the gone thread was left")
		})
	}
}
