package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// madeStoresUndoTimeout bounds the deletion of the vector stores of a
// create that failed (madeStores.undo).
const madeStoresUndoTimeout = 10 * time.Second

// madeStores are the vector stores that createToolResources made for a
// create request's tool_resources.file_search.vector_stores (an
// assistant's, a thread's, or createThreadAndRun's thread's), before the
// object that references them is written. Until that write commits,
// nothing references them: a request that does not write its object
// deletes them (undo when it fails before its write, write when the
// write itself fails and certainly stored nothing), so a failed create
// leaves no vector store behind, nor its files' attachments and ingest
// jobs. Only the stores the request made are listed: never one it named
// by id (vector_store_ids), nor one that existed before it.
//
// A nil *madeStores (the request made none) does nothing.
type madeStores struct {
	s       *Server
	project string
	ids     []string
}

// add records id, a vector store made (or perhaps made: see
// createToolResources) for the request, and returns m, allocated on the
// first call.
func (m *madeStores) add(s *Server, project, id string) *madeStores {
	if m == nil {
		m = &madeStores{s: s, project: project}
	}
	m.ids = append(m.ids, id)
	return m
}

// undo deletes the stores, as DELETE /v1/vector_stores/{vector_store_id}
// does (deleteVectorStore), with a context that outlives the request's (a
// request whose client went away still cleans up) and is bounded by
// madeStoresUndoTimeout. A store already gone is fine; another failure is
// logged, and that store stays. It never changes the request's answer.
func (m *madeStores) undo(ctx context.Context) {
	if m == nil || len(m.ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), madeStoresUndoTimeout)
	defer cancel()
	for _, id := range m.ids {
		if err := m.s.deleteVectorStore(ctx, m.project, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			m.s.log.Warn("tool_resources: a vector store made for an object that was not written could not be deleted",
				"vector_store_id", id, "err", err.Error())
		}
	}
	m.ids = nil
}

// write runs write, the store write of the object that references the
// stores (its create, or createThreadAndRun's run with its thread), and
// returns write's error unchanged. When that error says the write stored
// nothing (wroteNothing), the stores are deleted (undo). When the write
// committed, or may have (an error whose outcome is unknown, such as a
// connection lost during the commit), they are kept: the object, which a
// retry of its Idempotency-Key may be answered with, may reference them,
// and a reference to a deleted store is worse than a store left
// unreferenced; the latter is logged.
func (m *madeStores) write(ctx context.Context, write func() error) error {
	doneBefore := ctx.Err() != nil
	err := write()
	switch {
	case err == nil || m == nil || len(m.ids) == 0:
	case wroteNothing(err, doneBefore):
		m.undo(ctx)
	default:
		m.s.log.Warn("tool_resources: the write of an object failed and may have committed; the vector stores made for it are kept",
			"vector_store_ids", strings.Join(m.ids, ","), "err", err.Error())
	}
	return err
}

// wroteNothing reports whether err, the error of the write of a created
// object (as the store returned it, or as storeErr turned it into an
// answer), certainly means that nothing of the write was stored:
//
//   - an answer of ours (*apiError): a check that failed before the
//     write, or a store sentinel below that storeErr translated;
//   - a store sentinel: every store checks these inside the write's
//     transaction, which is rolled back (store.ErrClaimLost: the
//     Idempotency-Key claim the create is fenced on was taken over, see
//     claimFence; store.ErrConflict, store.ErrNotFound,
//     store.ErrThreadLocked, store.ErrInvalid), or before it
//     (store.ErrClosed);
//   - the request's context's error, when that context was done before
//     the write began (doneBefore): a store then fails the write before it
//     sends anything (the SQL stores do; the memory store does not look at
//     the context and commits: no error then).
//
// Any other error (a driver's, a context ending during the write) may
// have come after the commit: the outcome is unknown.
func wroteNothing(err error, doneBefore bool) bool {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return true
	case errors.Is(err, store.ErrClaimLost), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrThreadLocked), errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrClosed):
		return true
	case doneBefore && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return true
	}
	return false
}
