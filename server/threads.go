package server

import (
	"context"
	"fmt"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// maxThreadMessages bounds the messages a thread may be created with.
const maxThreadMessages = 32

// CreateThread stores a new thread and the messages it starts with.
func (s *Server) CreateThread(ctx context.Context, req genserver.CreateThreadRequestObject) (genserver.CreateThreadResponseObject, error) {
	th, err := s.insertThread(ctx, req.Body)
	if err != nil {
		return nil, err
	}
	return genserver.CreateThread200JSONResponse(th), nil
}

// GetThread returns one thread.
func (s *Server) GetThread(ctx context.Context, req genserver.GetThreadRequestObject) (genserver.GetThreadResponseObject, error) {
	th, err := s.getThreadObject(ctx, req.ThreadId)
	if err != nil {
		return nil, err
	}
	return genserver.GetThread200JSONResponse(th), nil
}

// ModifyThread changes a thread's metadata and tool resources.
func (s *Server) ModifyThread(ctx context.Context, req genserver.ModifyThreadRequestObject) (genserver.ModifyThreadResponseObject, error) {
	if !validID(req.ThreadId) {
		return nil, errNotFound("thread", req.ThreadId)
	}
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	if err := validateMetadata(b.Metadata); err != nil {
		return nil, err
	}
	if _, err := s.getThreadObject(ctx, req.ThreadId); err != nil {
		return nil, err
	}
	if b.ToolResources != nil {
		if err := s.checkToolResources(ctx, b.ToolResources); err != nil {
			return nil, err
		}
	}
	var th gen.ThreadObject
	_, err := s.db.UpdateThread(ctx, projectOf(ctx), req.ThreadId, func(st *store.Thread) error {
		var err error
		if th, err = decodeData[gen.ThreadObject](st.Data); err != nil {
			return err
		}
		if b.ToolResources != nil {
			th.ToolResources = cloneToolResources(b.ToolResources)
		}
		if b.Metadata != nil {
			th.Metadata = cloneMetadata(b.Metadata)
		}
		st.Data, err = encodeData(th)
		return err
	})
	if err != nil {
		return nil, storeErr(err, "thread", req.ThreadId)
	}
	return genserver.ModifyThread200JSONResponse(th), nil
}

// DeleteThread removes a thread and its messages, and stops and forgets its
// runs.
func (s *Server) DeleteThread(ctx context.Context, req genserver.DeleteThreadRequestObject) (genserver.DeleteThreadResponseObject, error) {
	if !validID(req.ThreadId) {
		return nil, errNotFound("thread", req.ThreadId)
	}
	unlock := s.threads.lock(req.ThreadId)
	err := s.db.DeleteThread(ctx, projectOf(ctx), req.ThreadId)
	unlock()
	if err != nil {
		return nil, storeErr(err, "thread", req.ThreadId)
	}
	s.eng.forgetThread(req.ThreadId)
	return genserver.DeleteThread200JSONResponse{Id: req.ThreadId, Object: "thread.deleted", Deleted: true}, nil
}

// getThreadObject returns a copy of a stored thread, or a 404.
func (s *Server) getThreadObject(ctx context.Context, id string) (gen.ThreadObject, error) {
	if !validID(id) {
		return gen.ThreadObject{}, errNotFound("thread", id)
	}
	t, err := s.db.GetThread(ctx, projectOf(ctx), id)
	if err != nil {
		return gen.ThreadObject{}, storeErr(err, "thread", id)
	}
	return decodeData[gen.ThreadObject](t.Data)
}

// insertThread validates req (which may be nil: an empty thread) and stores
// the thread with its messages, all created now. Nothing is stored when req
// is invalid. It does not take the thread's mutex: nobody can add a message or a run to
// a thread before it is stored.
func (s *Server) insertThread(ctx context.Context, req *gen.CreateThreadRequest) (gen.ThreadObject, error) {
	th, st, msgs, made, err := s.buildThread(ctx, req)
	if err != nil {
		return gen.ThreadObject{}, err
	}
	err = made.write(ctx, func() error {
		if c := claimFence(ctx, intentThread, st.ID); c != nil {
			return s.db.CreateThreadClaimed(ctx, st, msgs, *c)
		}
		return s.db.CreateThread(ctx, st, msgs)
	})
	if err != nil {
		return gen.ThreadObject{}, storeErr(err, "thread", th.Id)
	}
	return th, nil
}

// buildThread validates req and returns the thread and messages it
// describes, as API and store values; nothing is stored but the vector
// store asked for with tool_resources (see createToolResources), which
// it returns as made: the caller writes the thread through made.write
// (see madeStores). When buildThread fails, it has deleted that store.
func (s *Server) buildThread(ctx context.Context, req *gen.CreateThreadRequest) (_ gen.ThreadObject, _ store.Thread, _ []store.Message, made *madeStores, _ error) {
	fail := func(err error) (gen.ThreadObject, store.Thread, []store.Message, *madeStores, error) {
		made.undo(ctx)
		return gen.ThreadObject{}, store.Thread{}, nil, nil, err
	}
	if req == nil {
		req = &gen.CreateThreadRequest{}
	}
	if err := validateMetadata(req.Metadata); err != nil {
		return fail(err)
	}
	var msgs []gen.CreateMessageRequest
	if req.Messages != nil {
		msgs = *req.Messages
	}
	if len(msgs) > maxThreadMessages {
		return fail(errBadRequest("messages", "Invalid 'messages': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxThreadMessages, len(msgs)))
	}
	id := newID(prefixThread)
	if in := intentFrom(ctx); in != nil && in.ThreadID != "" && (in.Object == intentThread || in.Object == "" && in.RunID != "") {
		id = in.ThreadID // createThread's or createThreadAndRun's, named by its Idempotency-Key claim (idemshared.go)
	}
	th := gen.ThreadObject{
		Id:        id,
		Object:    "thread",
		CreatedAt: s.now(),
		Metadata:  emptyMetadata(req.Metadata),
	}
	built := make([]gen.MessageObject, 0, len(msgs))
	for i, m := range msgs {
		bm, err := s.buildMessage(ctx, th.Id, m, fmt.Sprintf("messages[%d].", i))
		if err != nil {
			return fail(err)
		}
		built = append(built, bm)
	}
	tr, made, err := s.createToolResources(ctx, req.ToolResources)
	if err != nil {
		return fail(err)
	}
	if tr == nil {
		tr = &gen.ToolResources{}
	}
	th.ToolResources = tr
	data, err := encodeData(th)
	if err != nil {
		return fail(err)
	}
	msgs2 := make([]store.Message, 0, len(built))
	for _, m := range built {
		sm, err := storeMessage(projectOf(ctx), m)
		if err != nil {
			return fail(err)
		}
		msgs2 = append(msgs2, sm)
	}
	return th, store.Thread{Project: projectOf(ctx), ID: th.Id, CreatedAt: int64(th.CreatedAt), Data: data}, msgs2, made, nil
}
