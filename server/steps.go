package server

import (
	"context"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
)

// ListRunSteps returns a page of a run's steps (message_creation and
// tool_calls, with their details and usage).
func (s *Server) ListRunSteps(ctx context.Context, req genserver.ListRunStepsRequestObject) (genserver.ListRunStepsResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	include, err := includeParam(p.Include)
	if err != nil {
		return nil, err
	}
	data, more, err := s.eng.listSteps(ctx, req.ThreadId, req.RunId, lp)
	if err != nil {
		return nil, err
	}
	for i := range data {
		data[i] = stepView(data[i], include) // filesearch.go
	}
	first, last := firstLast(data, func(st gen.RunStepObject) string { return st.Id })
	if data == nil {
		data = []gen.RunStepObject{}
	}
	return genserver.ListRunSteps200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// GetRunStep returns one step of a run.
func (s *Server) GetRunStep(ctx context.Context, req genserver.GetRunStepRequestObject) (genserver.GetRunStepResponseObject, error) {
	include, err := includeParam(req.Params.Include)
	if err != nil {
		return nil, err
	}
	st, err := s.eng.getStep(ctx, req.ThreadId, req.RunId, req.StepId)
	if err != nil {
		return nil, err
	}
	return genserver.GetRunStep200JSONResponse(stepView(st, include)), nil
}
