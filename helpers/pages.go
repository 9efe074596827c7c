package helpers

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/assistants-go/assistants/gen"
)

// ErrRepeatedCursor is wrapped by the error a list iterator yields when the
// server hands back a cursor the iterator has already followed, i.e. the
// pages form a cycle. Without this check such a server would make the
// iterator run forever. A server that answers a cursor with a page ending in
// that same cursor, or in the one before it, is caught before that page is
// yielded; a longer cycle of n pages is caught within about 2n further pages
// (the check keeps constant memory), so some items may have been yielded
// twice by then.
var ErrRepeatedCursor = errors.New("helpers: list cursor repeated")

// AssistantLister is the part of *assistants.Client that Assistants
// uses.
type AssistantLister interface {
	ListAssistants(ctx context.Context, params *gen.ListAssistantsParams, reqEditors ...gen.RequestEditorFn) (*gen.ListAssistantsResponse, error)
}

// MessageLister is the part of *assistants.Client that Messages uses.
type MessageLister interface {
	ListMessages(ctx context.Context, threadID string, params *gen.ListMessagesParams, reqEditors ...gen.RequestEditorFn) (*gen.ListMessagesResponse, error)
}

// RunLister is the part of *assistants.Client that Runs uses.
type RunLister interface {
	ListRuns(ctx context.Context, threadID string, params *gen.ListRunsParams, reqEditors ...gen.RequestEditorFn) (*gen.ListRunsResponse, error)
}

// RunStepLister is the part of *assistants.Client that RunSteps uses.
type RunStepLister interface {
	ListRunSteps(ctx context.Context, threadID string, runID string, params *gen.ListRunStepsParams, reqEditors ...gen.RequestEditorFn) (*gen.ListRunStepsResponse, error)
}

// FileLister is the part of *assistants.Client that Files uses.
type FileLister interface {
	ListFiles(ctx context.Context, params *gen.ListFilesParams, reqEditors ...gen.RequestEditorFn) (*gen.ListFilesResponse, error)
}

// VectorStoreLister is the part of *assistants.Client that
// VectorStores uses.
type VectorStoreLister interface {
	ListVectorStores(ctx context.Context, params *gen.ListVectorStoresParams, reqEditors ...gen.RequestEditorFn) (*gen.ListVectorStoresResponse, error)
}

// VectorStoreFileLister is the part of *assistants.Client that
// VectorStoreFiles uses.
type VectorStoreFileLister interface {
	ListVectorStoreFiles(ctx context.Context, vectorStoreID string, params *gen.ListVectorStoreFilesParams, reqEditors ...gen.RequestEditorFn) (*gen.ListVectorStoreFilesResponse, error)
}

// VectorStoreBatchFileLister is the part of *assistants.Client that
// VectorStoreBatchFiles uses.
type VectorStoreBatchFileLister interface {
	ListFilesInVectorStoreBatch(ctx context.Context, vectorStoreID string, batchID string, params *gen.ListFilesInVectorStoreBatchParams, reqEditors ...gen.RequestEditorFn) (*gen.ListVectorStoreFilesResponse, error)
}

// Assistants iterates over all assistants (GET /assistants), page by page.
// All the list iterators of this package (Assistants, Messages, Runs,
// RunSteps, Files, VectorStores, VectorStoreFiles, VectorStoreBatchFiles)
// behave alike:
//
//   - They page with after = the last_id of the previous page (or the ID of
//     its last item when last_id is empty), starting from the caller's own
//     After when set. Limit, Order, Before and the filters of the caller's
//     params are sent unchanged with every request. A nil params means the
//     server's defaults (for most lists 20 items a page, newest first).
//   - The params struct is copied (deeply) when the iterator is made; it is
//     never changed, and changing it afterwards does not affect the
//     iterator.
//   - Only one page is held at a time, and the next page is requested only
//     when the loop has consumed the previous one. Breaking out of the loop
//     stops all further requests.
//   - Iteration ends after a page with has_more false, or after an empty
//     page.
//   - On an error (a failed request, a non-2xx reply as *assistants.APIError,
//     a done context, a repeated cursor wrapping ErrRepeatedCursor, a bad
//     argument such as a nil client or an empty ID) the iterator yields the
//     zero item with that error once and stops.
//   - The returned sequence may be ranged over more than once; each range
//     starts again from the first page.
func Assistants(ctx context.Context, client AssistantLister, params *gen.ListAssistantsParams) iter.Seq2[gen.AssistantObject, error] {
	var p gen.ListAssistantsParams
	if params != nil {
		p = gen.ListAssistantsParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before)}
	}
	if client == nil {
		return failedList[gen.AssistantObject](errListNilClient("assistants"))
	}
	return paginate(ctx, "assistants", p.After, idOfAssistant,
		func(ctx context.Context, after *string) (listPage[gen.AssistantObject], error) {
			q := p
			q.After = after
			l, err := client.ListAssistants(ctx, &q)
			if err != nil {
				return listPage[gen.AssistantObject]{}, err
			}
			return listPage[gen.AssistantObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// Messages iterates over the messages of thread threadID
// (GET /threads/{thread_id}/messages), page by page. params (nil: server
// defaults, i.e. 20 per page, newest first) is copied and never changed; its
// RunId filter, Limit, Order and Before are sent with every request. Cursors
// follow after = last_id; breaking out of the loop stops requests; an error
// (also an empty threadID) is yielded once and ends the iteration.
func Messages(ctx context.Context, client MessageLister, threadID string, params *gen.ListMessagesParams) iter.Seq2[gen.MessageObject, error] {
	var p gen.ListMessagesParams
	if params != nil {
		p = gen.ListMessagesParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before), RunId: listClone(params.RunId)}
	}
	switch {
	case client == nil:
		return failedList[gen.MessageObject](errListNilClient("messages"))
	case threadID == "":
		return failedList[gen.MessageObject](errors.New("helpers: list messages: empty thread ID"))
	}
	return paginate(ctx, "messages", p.After, idOfMessage,
		func(ctx context.Context, after *string) (listPage[gen.MessageObject], error) {
			q := p
			q.After = after
			l, err := client.ListMessages(ctx, threadID, &q)
			if err != nil {
				return listPage[gen.MessageObject]{}, err
			}
			return listPage[gen.MessageObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// Runs iterates over the runs of thread threadID
// (GET /threads/{thread_id}/runs), page by page. params (nil: server
// defaults) is copied and never changed. Cursors follow after = last_id;
// breaking out of the loop stops requests; an error (also an empty threadID)
// is yielded once and ends the iteration.
func Runs(ctx context.Context, client RunLister, threadID string, params *gen.ListRunsParams) iter.Seq2[gen.RunObject, error] {
	var p gen.ListRunsParams
	if params != nil {
		p = gen.ListRunsParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before)}
	}
	switch {
	case client == nil:
		return failedList[gen.RunObject](errListNilClient("runs"))
	case threadID == "":
		return failedList[gen.RunObject](errors.New("helpers: list runs: empty thread ID"))
	}
	return paginate(ctx, "runs", p.After, idOfRun,
		func(ctx context.Context, after *string) (listPage[gen.RunObject], error) {
			q := p
			q.After = after
			l, err := client.ListRuns(ctx, threadID, &q)
			if err != nil {
				return listPage[gen.RunObject]{}, err
			}
			return listPage[gen.RunObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// RunSteps iterates over the steps of run runID in thread threadID
// (GET /threads/{thread_id}/runs/{run_id}/steps), page by page. params (nil:
// server defaults) is copied and never changed; its Include list is sent with
// every request. Cursors follow after = last_id; breaking out of the loop
// stops requests; an error (also an empty ID) is yielded once and ends the
// iteration.
func RunSteps(ctx context.Context, client RunStepLister, threadID, runID string, params *gen.ListRunStepsParams) iter.Seq2[gen.RunStepObject, error] {
	var p gen.ListRunStepsParams
	if params != nil {
		p = gen.ListRunStepsParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before), Include: listCloneSlice(params.Include)}
	}
	switch {
	case client == nil:
		return failedList[gen.RunStepObject](errListNilClient("run steps"))
	case threadID == "" || runID == "":
		return failedList[gen.RunStepObject](errors.New("helpers: list run steps: empty thread or run ID"))
	}
	return paginate(ctx, "run steps", p.After, idOfRunStep,
		func(ctx context.Context, after *string) (listPage[gen.RunStepObject], error) {
			q := p
			q.After = after
			l, err := client.ListRunSteps(ctx, threadID, runID, &q)
			if err != nil {
				return listPage[gen.RunStepObject]{}, err
			}
			return listPage[gen.RunStepObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// Files iterates over the uploaded files (GET /files), page by page. Unlike
// the other lists, this endpoint takes no before cursor and allows pages of
// up to 10,000 files (server default 10,000, newest first); params (nil:
// server defaults) is copied and never changed and its Purpose filter is sent
// with every request. A server that does not paginate files (has_more false)
// gives a single page. Cursors follow after = last_id; breaking out of the
// loop stops requests; an error is yielded once and ends the iteration.
func Files(ctx context.Context, client FileLister, params *gen.ListFilesParams) iter.Seq2[gen.OpenAIFile, error] {
	var p gen.ListFilesParams
	if params != nil {
		p = gen.ListFilesParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Purpose: listClone(params.Purpose)}
	}
	if client == nil {
		return failedList[gen.OpenAIFile](errListNilClient("files"))
	}
	return paginate(ctx, "files", p.After, idOfFile,
		func(ctx context.Context, after *string) (listPage[gen.OpenAIFile], error) {
			q := p
			q.After = after
			l, err := client.ListFiles(ctx, &q)
			if err != nil {
				return listPage[gen.OpenAIFile]{}, err
			}
			return listPage[gen.OpenAIFile]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// VectorStores iterates over the vector stores (GET /vector_stores), page by
// page. params (nil: server defaults) is copied and never changed. Cursors
// follow after = last_id; breaking out of the loop stops requests; an error
// is yielded once and ends the iteration.
func VectorStores(ctx context.Context, client VectorStoreLister, params *gen.ListVectorStoresParams) iter.Seq2[gen.VectorStoreObject, error] {
	var p gen.ListVectorStoresParams
	if params != nil {
		p = gen.ListVectorStoresParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before)}
	}
	if client == nil {
		return failedList[gen.VectorStoreObject](errListNilClient("vector stores"))
	}
	return paginate(ctx, "vector stores", p.After, idOfVectorStore,
		func(ctx context.Context, after *string) (listPage[gen.VectorStoreObject], error) {
			q := p
			q.After = after
			l, err := client.ListVectorStores(ctx, &q)
			if err != nil {
				return listPage[gen.VectorStoreObject]{}, err
			}
			return listPage[gen.VectorStoreObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// VectorStoreFiles iterates over the files of vector store vectorStoreID
// (GET /vector_stores/{vector_store_id}/files), page by page. params (nil:
// server defaults) is copied and never changed; its Filter (status) is sent
// with every request. Cursors follow after = last_id; breaking out of the
// loop stops requests; an error (also an empty vectorStoreID) is yielded once
// and ends the iteration.
func VectorStoreFiles(ctx context.Context, client VectorStoreFileLister, vectorStoreID string, params *gen.ListVectorStoreFilesParams) iter.Seq2[gen.VectorStoreFileObject, error] {
	var p gen.ListVectorStoreFilesParams
	if params != nil {
		p = gen.ListVectorStoreFilesParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before), Filter: listClone(params.Filter)}
	}
	switch {
	case client == nil:
		return failedList[gen.VectorStoreFileObject](errListNilClient("vector store files"))
	case vectorStoreID == "":
		return failedList[gen.VectorStoreFileObject](errors.New("helpers: list vector store files: empty vector store ID"))
	}
	return paginate(ctx, "vector store files", p.After, idOfVectorStoreFile,
		func(ctx context.Context, after *string) (listPage[gen.VectorStoreFileObject], error) {
			q := p
			q.After = after
			l, err := client.ListVectorStoreFiles(ctx, vectorStoreID, &q)
			if err != nil {
				return listPage[gen.VectorStoreFileObject]{}, err
			}
			return listPage[gen.VectorStoreFileObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// VectorStoreBatchFiles iterates over the files of file batch batchID in
// vector store vectorStoreID
// (GET /vector_stores/{vector_store_id}/file_batches/{batch_id}/files), page
// by page. params (nil: server defaults) is copied and never changed; its
// Filter (status) is sent with every request. Cursors follow
// after = last_id; breaking out of the loop stops requests; an error (also an
// empty ID) is yielded once and ends the iteration.
func VectorStoreBatchFiles(ctx context.Context, client VectorStoreBatchFileLister, vectorStoreID, batchID string, params *gen.ListFilesInVectorStoreBatchParams) iter.Seq2[gen.VectorStoreFileObject, error] {
	var p gen.ListFilesInVectorStoreBatchParams
	if params != nil {
		p = gen.ListFilesInVectorStoreBatchParams{Limit: listClone(params.Limit), Order: listClone(params.Order),
			After: listClone(params.After), Before: listClone(params.Before), Filter: listClone(params.Filter)}
	}
	switch {
	case client == nil:
		return failedList[gen.VectorStoreFileObject](errListNilClient("vector store batch files"))
	case vectorStoreID == "" || batchID == "":
		return failedList[gen.VectorStoreFileObject](errors.New("helpers: list vector store batch files: empty vector store or batch ID"))
	}
	return paginate(ctx, "vector store batch files", p.After, idOfVectorStoreFile,
		func(ctx context.Context, after *string) (listPage[gen.VectorStoreFileObject], error) {
			q := p
			q.After = after
			l, err := client.ListFilesInVectorStoreBatch(ctx, vectorStoreID, batchID, &q)
			if err != nil {
				return listPage[gen.VectorStoreFileObject]{}, err
			}
			return listPage[gen.VectorStoreFileObject]{l.Data, l.HasMore, l.LastId}, nil
		})
}

// listPage is one page of a list reply, reduced to what paging needs.
type listPage[T any] struct {
	data    []T
	hasMore bool
	lastID  string
}

// paginate is the pager behind every list iterator. what names the list in
// errors, start is the caller's own after cursor (nil for none), id gives an
// item's ID (the cursor fallback when a page has no last_id) and fetch gets
// the page after a cursor.
//
// Cycle detection uses Brent's algorithm over the sequence of cursors, so it
// needs constant memory however many pages there are. A cursor equal to one
// of the last two followed is caught at once (cycles of one or two pages),
// any longer cycle within about twice its length more pages.
func paginate[T any](ctx context.Context, what string, start *string, id func(*T) string,
	fetch func(ctx context.Context, after *string) (listPage[T], error),
) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		var cur *string
		if start != nil {
			s := *start
			cur = &s
		}
		// Brent's cycle detection: tortoise jumps to the hare at powers of
		// two. A nil cursor (the first page without after) is "".
		tortoise, prev := listCursor(cur), ""
		power, lam := 1, 0
		for pages := 1; ; pages++ {
			if err := ctx.Err(); err != nil {
				yield(zero, fmt.Errorf("helpers: list %s: %w", what, err))
				return
			}
			pg, err := fetch(ctx, cur)
			if err != nil {
				yield(zero, fmt.Errorf("helpers: list %s: %w", what, err))
				return
			}
			more := pg.hasMore && len(pg.data) > 0
			var next string
			if more {
				next = pg.lastID
				if next == "" {
					next = id(&pg.data[len(pg.data)-1])
				}
				switch {
				case next == "":
					yield(zero, fmt.Errorf("helpers: list %s: page %d has more items but no last_id", what, pages))
					return
				case next == listCursor(cur) || next == prev || next == tortoise:
					yield(zero, fmt.Errorf("helpers: list %s: page %d leads to cursor %q again: %w", what, pages, next, ErrRepeatedCursor))
					return
				}
				if lam++; lam == power {
					tortoise, power, lam = next, power*2, 0
				}
			}
			for i := range pg.data {
				if !yield(pg.data[i], nil) {
					return
				}
			}
			if !more {
				return
			}
			// pg is scoped to this iteration, so the page just yielded is
			// garbage once the next fetch starts: one page is held at a time.
			prev = listCursor(cur)
			cur = &next
		}
	}
}

// failedList returns a sequence that yields err once.
func failedList[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

func errListNilClient(what string) error {
	return fmt.Errorf("helpers: list %s: nil client", what)
}

func listClone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func listCloneSlice[T any](p *[]T) *[]T {
	if p == nil {
		return nil
	}
	v := slices.Clone(*p)
	return &v
}

func listCursor(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func idOfAssistant(a *gen.AssistantObject) string             { return a.Id }
func idOfMessage(m *gen.MessageObject) string                 { return m.Id }
func idOfRun(r *gen.RunObject) string                         { return r.Id }
func idOfRunStep(s *gen.RunStepObject) string                 { return s.Id }
func idOfFile(f *gen.OpenAIFile) string                       { return f.Id }
func idOfVectorStore(v *gen.VectorStoreObject) string         { return v.Id }
func idOfVectorStoreFile(f *gen.VectorStoreFileObject) string { return f.Id }
