package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// Run limits, as the API documents them.
const (
	maxRunTools      = 20
	minTokenCap      = 256
	maxRunInstrChars = 256000
)

// runParams are the fields createRun and createThreadAndRun share.
type runParams struct {
	AssistantID            string
	Model                  *string
	Instructions           *string
	AdditionalInstructions *string
	AdditionalMessages     []gen.CreateMessageRequest
	Tools                  *[]gen.AssistantTool
	Metadata               *gen.Metadata
	Temperature            *float32
	TopP                   *float32
	ResponseFormat         *gen.AssistantsApiResponseFormatOption
	ToolChoice             *gen.AssistantsApiToolChoiceOption
	ParallelToolCalls      *bool
	TruncationStrategy     *gen.TruncationObject
	MaxPromptTokens        *int
	MaxCompletionTokens    *int
	Stream                 bool
	IncludeResults         bool // include[] asks for file_search results (filesearch.go)
}

// validate checks the run-level fields (the assistant is checked by startRun).
func (p *runParams) validate() error {
	if p.AssistantID == "" {
		return errBadRequest("assistant_id", "Missing required parameter: 'assistant_id'.")
	}
	if p.Model != nil && *p.Model == "" {
		return errBadRequest("model", "Invalid 'model': expected a non-empty string.")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"instructions", p.Instructions}, {"additional_instructions", p.AdditionalInstructions}} {
		if f.v != nil && len(*f.v) > maxRunInstrChars {
			return errBadRequest(f.name, "Invalid '%s': string too long. Expected a string with maximum length %d.", f.name, maxRunInstrChars)
		}
	}
	if p.Tools != nil {
		if len(*p.Tools) > maxRunTools {
			return errBadRequest("tools", "Invalid 'tools': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxRunTools, len(*p.Tools))
		}
		if err := validateTools("tools", *p.Tools); err != nil {
			return err
		}
	}
	if err := validateMetadata(p.Metadata); err != nil {
		return err
	}
	if p.Temperature != nil && (*p.Temperature < 0 || *p.Temperature > 2) {
		return errBadRequest("temperature", "Invalid 'temperature': expected a number between 0 and 2.")
	}
	if p.TopP != nil && (*p.TopP < 0 || *p.TopP > 1) {
		return errBadRequest("top_p", "Invalid 'top_p': expected a number between 0 and 1.")
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"max_prompt_tokens", p.MaxPromptTokens}, {"max_completion_tokens", p.MaxCompletionTokens}} {
		if f.v != nil && *f.v < minTokenCap {
			return errBadRequest(f.name, "Invalid '%s': integer below minimum value. Expected a value >= %d, but got %d instead.", f.name, minTokenCap, *f.v)
		}
	}
	if ts := p.TruncationStrategy; ts != nil {
		switch ts.Type {
		case gen.TruncationObjectTypeAuto:
		case gen.TruncationObjectTypeLastMessages:
			if ts.LastMessages == nil || *ts.LastMessages < 1 {
				return errBadRequest("truncation_strategy.last_messages", "Invalid 'truncation_strategy.last_messages': expected an integer >= 1 with type 'last_messages'.")
			}
		default:
			return errBadRequest("truncation_strategy.type", "Invalid value for 'truncation_strategy.type': expected one of 'auto' or 'last_messages'.")
		}
	}
	if p.ResponseFormat != nil {
		if err := checkResponseFormat(*p.ResponseFormat); err != nil {
			return err
		}
	}
	return nil
}

// checkResponseFormat accepts "auto" or a format object with a type.
func checkResponseFormat(rf gen.AssistantsApiResponseFormatOption) error {
	if s, err := rf.AsResponseFormatMode(); err == nil {
		if s == gen.ResponseFormatModeAuto {
			return nil
		}
		return errBadRequest("response_format", "Invalid value for 'response_format': expected 'auto' or a format object.")
	}
	f, err := rf.AsAssistantsApiResponseFormat()
	if err != nil {
		return errBadRequest("response_format", "Invalid 'response_format': expected 'auto' or a format object.")
	}
	var probe struct {
		Type string `json:"type"`
	}
	b, _ := f.MarshalJSON()
	if json.Unmarshal(b, &probe) != nil || probe.Type == "" {
		return errBadRequest("response_format.type", "Missing required parameter: 'response_format.type'.")
	}
	return nil
}

// checkToolChoice checks that a tool_choice is a known mode, or names a tool
// the run has.
func checkToolChoice(tc *gen.AssistantsApiToolChoiceOption, tools []gen.AssistantTool) error {
	if tc == nil {
		return nil
	}
	b, _ := tc.MarshalJSON()
	if string(b) == "null" || len(b) == 0 {
		return nil
	}
	if s, err := tc.AsToolChoiceMode(); err == nil {
		switch s {
		case gen.ToolChoiceModeAuto, gen.ToolChoiceModeNone, gen.ToolChoiceModeRequired:
			return nil
		}
		return errBadRequest("tool_choice", "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named tool.")
	}
	var named struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(b, &named) != nil {
		return errBadRequest("tool_choice", "Invalid 'tool_choice': expected a string or a named tool.")
	}
	if named.Type == "function" && (named.Function == nil || named.Function.Name == "") {
		return errBadRequest("tool_choice.function.name", "Missing required parameter: 'tool_choice.function.name'.")
	}
	for _, t := range tools {
		kind, _ := t.Discriminator()
		if kind != named.Type {
			continue
		}
		if kind != "function" {
			return nil
		}
		if f, err := t.AsAssistantToolsFunction(); err == nil && named.Function != nil && f.Function.Name == named.Function.Name {
			return nil
		}
	}
	if named.Type == "function" && named.Function != nil {
		return errBadRequest("tool_choice", "Invalid 'tool_choice': the run has no function tool named '%s'.", truncateForMessage(named.Function.Name))
	}
	return errBadRequest("tool_choice", "Invalid 'tool_choice': the run has no '%s' tool.", truncateForMessage(named.Type))
}

// newRunObject builds a queued run from the request and the assistant, as
// the API fills in a run: request values override the assistant's.
func (s *Server) newRunObject(threadID string, a gen.AssistantObject, p *runParams) gen.RunObject {
	now := s.now()
	exp := now + int(runTTL/time.Second)
	run := gen.RunObject{
		Id:                  newID(prefixRun),
		Object:              "thread.run",
		CreatedAt:           now,
		ThreadId:            threadID,
		AssistantId:         a.Id,
		Status:              gen.RunObjectStatusQueued,
		ExpiresAt:           &exp,
		Model:               a.Model,
		Tools:               slices.Clone(a.Tools),
		Metadata:            emptyMetadata(p.Metadata),
		Temperature:         a.Temperature,
		TopP:                a.TopP,
		MaxPromptTokens:     p.MaxPromptTokens,
		MaxCompletionTokens: p.MaxCompletionTokens,
		ParallelToolCalls:   true,
	}
	if a.Instructions != nil {
		run.Instructions = *a.Instructions
	}
	if p.Instructions != nil {
		run.Instructions = *p.Instructions
	}
	if p.AdditionalInstructions != nil && *p.AdditionalInstructions != "" {
		if run.Instructions != "" {
			run.Instructions += "\n"
		}
		run.Instructions += *p.AdditionalInstructions
	}
	if p.Model != nil {
		run.Model = *p.Model
	}
	if p.Tools != nil {
		run.Tools = slices.Clone(*p.Tools)
	}
	if run.Tools == nil {
		run.Tools = []gen.AssistantTool{}
	}
	if p.Temperature != nil {
		t := *p.Temperature
		run.Temperature = &t
	}
	if p.TopP != nil {
		t := *p.TopP
		run.TopP = &t
	}
	if p.ParallelToolCalls != nil {
		run.ParallelToolCalls = *p.ParallelToolCalls
	}
	switch {
	case p.ResponseFormat != nil:
		run.ResponseFormat = *p.ResponseFormat
	case a.ResponseFormat != nil:
		run.ResponseFormat = *a.ResponseFormat
	default:
		_ = run.ResponseFormat.FromResponseFormatMode(gen.ResponseFormatModeAuto)
	}
	if b, _ := run.ResponseFormat.MarshalJSON(); len(b) == 0 || string(b) == "null" {
		_ = run.ResponseFormat.FromResponseFormatMode(gen.ResponseFormatModeAuto)
	}
	tc := gen.AssistantsApiToolChoiceOption{}
	if p.ToolChoice != nil {
		tc = *p.ToolChoice
	}
	if b, _ := tc.MarshalJSON(); len(b) == 0 || string(b) == "null" {
		_ = tc.FromToolChoiceMode(gen.ToolChoiceModeAuto)
	}
	run.ToolChoice = &tc
	if p.TruncationStrategy != nil {
		ts := *p.TruncationStrategy
		if ts.LastMessages != nil {
			n := *ts.LastMessages
			ts.LastMessages = &n
		}
		run.TruncationStrategy = &ts
	} else {
		run.TruncationStrategy = &gen.TruncationObject{Type: gen.TruncationObjectTypeAuto}
	}
	if run.MaxPromptTokens != nil {
		n := *run.MaxPromptTokens
		run.MaxPromptTokens = &n
	}
	if run.MaxCompletionTokens != nil {
		n := *run.MaxCompletionTokens
		run.MaxCompletionTokens = &n
	}
	return run
}

// prepareRun checks a run request against the assistant and returns the
// queued run it describes for threadID (not registered yet).
func (s *Server) prepareRun(ctx context.Context, threadID string, p *runParams) (*runRec, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	a, err := s.getAssistant(ctx, p.AssistantID)
	if err != nil {
		return nil, err
	}
	run := s.newRunObject(threadID, a, p)
	if err := checkToolChoice(p.ToolChoice, run.Tools); err != nil {
		return nil, err
	}
	return &runRec{obj: run, asst: a, includeResults: p.IncludeResults}, nil
}

// runMessagesLocked checks a run's additional messages and returns them
// as store values; the thread's mutex is held.
func (s *Server) runMessagesLocked(ctx context.Context, threadID string, p *runParams) ([]store.Message, error) {
	msgs := make([]store.Message, 0, len(p.AdditionalMessages))
	for i, m := range p.AdditionalMessages {
		bm, err := s.buildMessage(ctx, threadID, m, fmt.Sprintf("additional_messages[%d].", i))
		if err != nil {
			return nil, err
		}
		sm, err := storeMessage(projectOf(ctx), bm)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, sm)
	}
	return msgs, nil
}

// startRun checks a run request and writes the run, its additional
// messages and its first job in one transaction (taking the thread's
// lock). With p.Stream, the subscriber sees every event of the run from
// thread.run.created on. The thread's mutex (threadlocks.go) is held around
// the write, so that a run and CreateMessage's check-and-write never
// interleave in this process (the store refuses a message on a locked
// thread across processes).
func (s *Server) startRun(ctx context.Context, threadID string, p *runParams) (gen.RunObject, *subscriber, error) {
	if err := p.validate(); err != nil {
		return gen.RunObject{}, nil, err
	}
	if _, err := s.getThreadObject(ctx, threadID); err != nil {
		return gen.RunObject{}, nil, err
	}
	r, err := s.prepareRun(ctx, threadID, p)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	defer s.threads.lock(threadID)()
	msgs, err := s.runMessagesLocked(ctx, threadID, p)
	if err != nil {
		return gen.RunObject{}, nil, err
	}
	return s.eng.create(ctx, r, nil, msgs, p.Stream)
}

// CreateRun starts a run of an assistant on a thread.
func (s *Server) CreateRun(ctx context.Context, req genserver.CreateRunRequestObject) (genserver.CreateRunResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	p := &runParams{
		AssistantID: b.AssistantId, Model: b.Model, Instructions: b.Instructions,
		AdditionalInstructions: b.AdditionalInstructions, Tools: b.Tools, Metadata: b.Metadata,
		Temperature: b.Temperature, TopP: b.TopP, ResponseFormat: b.ResponseFormat, ToolChoice: b.ToolChoice,
		ParallelToolCalls: b.ParallelToolCalls, TruncationStrategy: b.TruncationStrategy,
		MaxPromptTokens: b.MaxPromptTokens, MaxCompletionTokens: b.MaxCompletionTokens,
		Stream: b.Stream != nil && *b.Stream,
	}
	if b.AdditionalMessages != nil {
		p.AdditionalMessages = *b.AdditionalMessages
	}
	include, err := includeParam(req.Params.Include)
	if err != nil {
		return nil, err
	}
	p.IncludeResults = include
	run, sub, err := s.startRun(ctx, req.ThreadId, p)
	if err != nil {
		return nil, err
	}
	if sub != nil {
		return s.newRunStream(ctx, run.Id, sub, nil), nil
	}
	return s.runReply(run), nil
}

// CreateThreadAndRun creates a thread (with its first messages) and starts a
// run on it.
func (s *Server) CreateThreadAndRun(ctx context.Context, req genserver.CreateThreadAndRunRequestObject) (genserver.CreateThreadAndRunResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	p := &runParams{
		AssistantID: b.AssistantId, Model: b.Model, Instructions: b.Instructions, Tools: b.Tools,
		Metadata: b.Metadata, Temperature: b.Temperature, TopP: b.TopP, ResponseFormat: b.ResponseFormat,
		ToolChoice: b.ToolChoice, ParallelToolCalls: b.ParallelToolCalls, TruncationStrategy: b.TruncationStrategy,
		MaxPromptTokens: b.MaxPromptTokens, MaxCompletionTokens: b.MaxCompletionTokens,
		Stream: b.Stream != nil && *b.Stream,
	}
	// Check everything that can be checked before the thread exists, so a
	// bad request leaves no thread behind.
	r, err := s.prepareRun(ctx, "", p)
	if err != nil {
		return nil, err
	}
	// The thread and its run are stored in one transaction: nobody sees
	// the thread without its run, and a run that cannot be created leaves
	// no thread behind, nor the vector store made for its tool_resources
	// (made.write deletes it when the write stored nothing).
	// The thread is built (and its vector store created) before the
	// thread's mutex is taken: that may process files. The mutex is
	// released before that vector store is deleted.
	th, sth, msgs, made, err := s.buildThread(ctx, b.Thread)
	if err != nil {
		return nil, err
	}
	r.obj.ThreadId = th.Id
	var run gen.RunObject
	var sub *subscriber
	err = made.write(ctx, func() error {
		defer s.threads.lock(th.Id)()
		var err error
		run, sub, err = s.eng.create(ctx, r, &sth, msgs, p.Stream)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sub != nil {
		first := []sseEvent{}
		if data, err := json.Marshal(th); err == nil {
			first = append(first, sseEvent{name: "thread.created", data: data})
		}
		return s.newRunStream(ctx, run.Id, sub, first), nil
	}
	return s.runReply(run), nil
}

// ListRuns returns a page of a thread's runs.
func (s *Server) ListRuns(ctx context.Context, req genserver.ListRunsRequestObject) (genserver.ListRunsResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	if _, err := s.getThreadObject(ctx, req.ThreadId); err != nil {
		return nil, err
	}
	data, more, err := s.eng.listRuns(ctx, req.ThreadId, lp)
	if err != nil {
		return nil, err
	}
	first, last := firstLast(data, func(r gen.RunObject) string { return r.Id })
	if data == nil {
		data = []gen.RunObject{}
	}
	return genserver.ListRuns200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// GetRun returns one run.
func (s *Server) GetRun(ctx context.Context, req genserver.GetRunRequestObject) (genserver.GetRunResponseObject, error) {
	b, err := s.eng.getRunJSON(ctx, req.ThreadId, req.RunId)
	if err != nil {
		return nil, err
	}
	return runReply{enc: b, poll: s.eng.poll}, nil
}

// ModifyRun replaces a run's metadata.
func (s *Server) ModifyRun(ctx context.Context, req genserver.ModifyRunRequestObject) (genserver.ModifyRunResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	if err := validateMetadata(req.Body.Metadata); err != nil {
		return nil, err
	}
	run, err := s.eng.modifyRun(ctx, req.ThreadId, req.RunId, req.Body.Metadata)
	if err != nil {
		return nil, err
	}
	return s.runReply(run), nil
}

// CancelRun asks a run to stop: it answers with the run in status cancelling;
// the run becomes cancelled after the step delay.
func (s *Server) CancelRun(ctx context.Context, req genserver.CancelRunRequestObject) (genserver.CancelRunResponseObject, error) {
	run, err := s.eng.cancelRun(ctx, req.ThreadId, req.RunId)
	if err != nil {
		return nil, err
	}
	return s.runReply(run), nil
}

// SubmitToolOutputsToRun hands the outputs of a requires_action run's tool
// calls over and resumes the run.
func (s *Server) SubmitToolOutputsToRun(ctx context.Context, req genserver.SubmitToolOutputsToRunRequestObject) (genserver.SubmitToolOutputsToRunResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	stream := req.Body.Stream != nil && *req.Body.Stream
	run, sub, err := s.eng.submitToolOutputs(ctx, req.ThreadId, req.RunId, req.Body.ToolOutputs, stream)
	if err != nil {
		return nil, err
	}
	if sub != nil {
		return s.newRunStream(ctx, run.Id, sub, nil), nil
	}
	return s.runReply(run), nil
}

// newRunStream builds the event stream answer for a request.
func (s *Server) newRunStream(ctx context.Context, runID string, sub *subscriber, first []sseEvent) runStream {
	return runStream{e: s.eng, runID: runID, sub: sub, first: first, stop: ctx.Done(), cut: streamCutFrom(ctx)}
}

// runReply is a run answer carrying the openai-poll-after-ms hint. The
// generated 200 responses have no header field, so it implements their
// Visit methods itself.
type runReply struct {
	run  gen.RunObject
	enc  []byte // run's JSON when already known
	poll []string
}

func (s *Server) runReply(run gen.RunObject) runReply {
	return runReply{run: run, poll: s.eng.poll}
}

var jsonContentType = []string{"application/json"}

func (r runReply) write(w http.ResponseWriter) error {
	b := r.enc
	if b == nil {
		var err error
		if b, err = json.Marshal(r.run); err != nil {
			return err
		}
		b = append(b, '\n')
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Openai-Poll-After-Ms"] = r.poll
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b)
	return err
}

// VisitCreateRunResponse writes the run.
func (r runReply) VisitCreateRunResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitCreateThreadAndRunResponse writes the run.
func (r runReply) VisitCreateThreadAndRunResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitGetRunResponse writes the run.
func (r runReply) VisitGetRunResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitModifyRunResponse writes the run.
func (r runReply) VisitModifyRunResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitCancelRunResponse writes the run.
func (r runReply) VisitCancelRunResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitSubmitToolOutputsToRunResponse writes the run.
func (r runReply) VisitSubmitToolOutputsToRunResponse(w http.ResponseWriter) error {
	return r.write(w)
}
