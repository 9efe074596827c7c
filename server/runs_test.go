package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// Helpers for the run tests. Most run tests use an in-process server inside
// a synctest bubble with the default 50ms step delay: time is fake, so the
// delays cost nothing, and settle makes the engine's progress deterministic.

const stepDelay = 50 * time.Millisecond

// settle lets fake time pass and waits until every goroutine of the bubble
// is blocked: the run engine has done everything it can do by then.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// rt is a test fixture: a client and the ids tests need.
type rt struct {
	t   *testing.T
	ctx context.Context
	srv *assistantstest.Server
	c   *assistants.Client
}

func newRT(t *testing.T, srv *assistantstest.Server) *rt {
	return &rt{t: t, ctx: t.Context(), srv: srv, c: srv.Client}
}

func msgContent(s string) gen.CreateMessageRequest_Content {
	var c gen.CreateMessageRequest_Content
	_ = c.FromCreateMessageText(s)
	return c
}

func fnTool(name string) gen.AssistantTool {
	var tool gen.AssistantTool
	_ = tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: name}})
	return tool
}

func (x *rt) assistant(req gen.CreateAssistantRequest) gen.AssistantObject {
	x.t.Helper()
	if req.Model == "" {
		req.Model = "gpt-4o"
	}
	r, err := x.c.CreateAssistantWithResponse(x.ctx, req)
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return *r.JSON200
}

// thread creates a thread with one user message per text.
func (x *rt) thread(texts ...string) string {
	x.t.Helper()
	msgs := []gen.CreateMessageRequest{}
	for _, s := range texts {
		msgs = append(msgs, gen.CreateMessageRequest{Role: "user", Content: msgContent(s)})
	}
	r, err := x.c.CreateThreadWithResponse(x.ctx, gen.CreateThreadRequest{Messages: &msgs})
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return r.JSON200.Id
}

func (x *rt) createRun(thread string, req gen.CreateRunRequest) *gen.CreateRunReply {
	x.t.Helper()
	r, err := x.c.CreateRunWithResponse(x.ctx, thread, nil, req)
	require.NoError(x.t, err)
	return r
}

func (x *rt) run(thread string, req gen.CreateRunRequest) gen.RunObject {
	x.t.Helper()
	r := x.createRun(thread, req)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return *r.JSON200
}

func (x *rt) get(thread, run string) gen.RunObject {
	x.t.Helper()
	r, err := x.c.GetRunWithResponse(x.ctx, thread, run)
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return *r.JSON200
}

func (x *rt) steps(thread, run string) []gen.RunStepObject {
	x.t.Helper()
	asc := gen.ListRunStepsParamsOrder("asc")
	r, err := x.c.ListRunStepsWithResponse(x.ctx, thread, run, &gen.ListRunStepsParams{Order: &asc})
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return r.JSON200.Data
}

// messages returns a thread's messages, oldest first.
func (x *rt) messages(thread string) []gen.MessageObject {
	x.t.Helper()
	asc := gen.ListMessagesParamsOrder("asc")
	r, err := x.c.ListMessagesWithResponse(x.ctx, thread, &gen.ListMessagesParams{Order: &asc})
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return r.JSON200.Data
}

func (x *rt) submit(thread, run string, outs map[string]string) *gen.SubmitToolOutputsToRunReply {
	x.t.Helper()
	var list []gen.SubmitToolOutputsRunRequestToolOutput
	for id, o := range outs {
		list = append(list, gen.SubmitToolOutputsRunRequestToolOutput{ToolCallId: &id, Output: &o})
	}
	r, err := x.c.SubmitToolOutputsToRunWithResponse(x.ctx, thread, run, gen.SubmitToolOutputsRunRequest{ToolOutputs: list})
	require.NoError(x.t, err)
	return r
}

func lastText(t *testing.T, msgs []gen.MessageObject) string {
	t.Helper()
	require.NotEmpty(t, msgs)
	return server.MessageText(msgs[len(msgs)-1])
}

// apiError checks an error reply and returns its error object.
func apiError(t *testing.T, status int, body []byte, gotStatus int) gen.Error {
	t.Helper()
	require.Equal(t, status, gotStatus, "body: %s", body)
	var e gen.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotEmpty(t, e.Error.Message)
	return e.Error
}

func param(e gen.Error) string {
	if e.Param == nil {
		return ""
	}
	return *e.Param
}

func stepCalls(t *testing.T, st gen.RunStepObject) []gen.RunStepDetailsToolCallsFunctionObject {
	t.Helper()
	d, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
	require.NoError(t, err)
	var out []gen.RunStepDetailsToolCallsFunctionObject
	for _, c := range d.ToolCalls {
		f, err := c.AsRunStepDetailsToolCallsFunctionObject()
		require.NoError(t, err)
		out = append(out, f)
	}
	return out
}

// ---- the run paths ----

func TestRunCompletesThroughItsStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hello world")
		start := int(time.Now().Unix())

		cr := x.createRun(thread, gen.CreateRunRequest{AssistantId: a.Id})
		require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
		assert.Equal(t, "50", cr.HTTPResponse.Header.Get("openai-poll-after-ms"))
		run := *cr.JSON200
		assert.Equal(t, gen.RunObjectStatusQueued, run.Status)
		assert.Equal(t, gen.RunObjectObject("thread.run"), run.Object)
		assert.Equal(t, thread, run.ThreadId)
		assert.Equal(t, a.Id, run.AssistantId)
		assert.Equal(t, "gpt-4o", run.Model)
		require.NotNil(t, run.ExpiresAt)
		assert.Equal(t, run.CreatedAt+600, *run.ExpiresAt)
		assert.Nil(t, run.StartedAt)
		assert.Nil(t, run.Usage)
		assert.True(t, run.ParallelToolCalls)
		require.NotNil(t, run.TruncationStrategy)
		assert.Equal(t, gen.TruncationObjectTypeAuto, run.TruncationStrategy.Type)

		synctest.Wait()
		assert.Equal(t, gen.RunObjectStatusQueued, x.get(thread, run.Id).Status, "the step delay holds the run in queued")

		settle(stepDelay)
		got := x.get(thread, run.Id)
		assert.Equal(t, gen.RunObjectStatusInProgress, got.Status)
		require.NotNil(t, got.StartedAt)
		assert.GreaterOrEqual(t, *got.StartedAt, start)
		during := x.messages(thread)
		require.Len(t, during, 2, "with a step delay the reply is stored before the run ends")
		assert.Equal(t, gen.MessageObjectStatusInProgress, during[1].Status)
		assert.Equal(t, "You said: hello world", server.MessageText(during[1]))

		settle(stepDelay)
		got = x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusCompleted, got.Status)
		require.NotNil(t, got.CompletedAt)
		assert.Nil(t, got.ExpiresAt, "expires_at is cleared at the end")
		assert.Nil(t, got.FailedAt)
		assert.Nil(t, got.CancelledAt)
		assert.Nil(t, got.LastError)
		assert.Nil(t, got.RequiredAction)
		require.NotNil(t, got.Usage)
		assert.Equal(t, server.Usage{PromptTokens: 2, CompletionTokens: 4}.Total(), got.Usage.TotalTokens)
		assert.Equal(t, 2, got.Usage.PromptTokens)
		assert.Equal(t, 4, got.Usage.CompletionTokens)

		msgs := x.messages(thread)
		require.Len(t, msgs, 2)
		reply := msgs[1]
		assert.Equal(t, "You said: hello world", server.MessageText(reply))
		assert.Equal(t, gen.MessageObjectRoleAssistant, reply.Role)
		assert.Equal(t, gen.MessageObjectStatusCompleted, reply.Status)
		require.NotNil(t, reply.RunId)
		assert.Equal(t, run.Id, *reply.RunId)
		require.NotNil(t, reply.AssistantId)
		assert.Equal(t, a.Id, *reply.AssistantId)

		steps := x.steps(thread, run.Id)
		require.Len(t, steps, 1)
		st := steps[0]
		assert.Equal(t, gen.RunStepObjectTypeMessageCreation, st.Type)
		assert.Equal(t, gen.RunStepObjectStatusCompleted, st.Status)
		require.NotNil(t, st.CompletedAt)
		require.NotNil(t, st.Usage)
		assert.Equal(t, 6, st.Usage.TotalTokens)
		mc, err := st.StepDetails.AsRunStepDetailsMessageCreationObject()
		require.NoError(t, err)
		assert.Equal(t, reply.Id, mc.MessageCreation.MessageId)

		gs, err := x.c.GetRunStepWithResponse(x.ctx, thread, run.Id, st.Id, nil)
		require.NoError(t, err)
		require.NotNil(t, gs.JSON200, "body: %s", gs.Body)
		assert.Equal(t, st.Id, gs.JSON200.Id)
	})
}

// With WordDelay the default scripted model waits between two words of its
// reply: the run streams its reply for three word delays ("You said: hello
// world" is four words) before the step delay that completes it.
func TestWordDelayPacesTheScriptedReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const word = 30 * time.Millisecond
		x := newRT(t, assistantstest.NewInProcessServer(t, server.WithWordDelay(word)))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hello world")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(stepDelay)
		require.Equal(t, gen.RunObjectStatusInProgress, x.get(thread, run.Id).Status)
		assert.Equal(t, "You ", lastText(t, x.messages(thread)), "the first word, at once")
		settle(word)
		assert.Equal(t, "You said: ", lastText(t, x.messages(thread)))
		settle(2 * word)
		assert.Equal(t, gen.RunObjectStatusInProgress, x.get(thread, run.Id).Status, "the reply took three word delays")
		settle(stepDelay)
		assert.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
		assert.Equal(t, "You said: hello world", lastText(t, x.messages(thread)))
	})
}

func TestRunRequiresActionThenCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("get_weather"), fnTool("get_time")}})
		thread := x.thread(`please get_weather {"city":"Paris"} and get_time`)
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})

		settle(time.Second)
		got := x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusRequiresAction, got.Status)
		assert.Nil(t, got.Usage, "usage is null until the run ends")
		require.NotNil(t, got.ExpiresAt)
		require.NotNil(t, got.RequiredAction)
		assert.Equal(t, gen.RunObjectRequiredActionType("submit_tool_outputs"), got.RequiredAction.Type)
		calls := got.RequiredAction.SubmitToolOutputs.ToolCalls
		require.Len(t, calls, 2)
		assert.Equal(t, "get_weather", calls[0].Function.Name)
		assert.JSONEq(t, `{"city":"Paris"}`, calls[0].Function.Arguments)
		assert.Equal(t, "get_time", calls[1].Function.Name)
		assert.Equal(t, "{}", calls[1].Function.Arguments)
		for _, c := range calls {
			assert.True(t, strings.HasPrefix(c.Id, "call_"), c.Id)
			assert.Equal(t, gen.RunToolCallObjectType("function"), c.Type)
		}

		steps := x.steps(thread, run.Id)
		require.Len(t, steps, 1)
		assert.Equal(t, gen.RunStepObjectTypeToolCalls, steps[0].Type)
		assert.Equal(t, gen.RunStepObjectStatusInProgress, steps[0].Status)
		assert.Nil(t, steps[0].Usage)
		sc := stepCalls(t, steps[0])
		require.Len(t, sc, 2)
		assert.Equal(t, calls[0].Id, sc[0].Id)
		assert.Nil(t, sc[0].Function.Output, "no output before submission")

		// Still requires action after a while: the engine waits for outputs.
		settle(time.Minute)
		assert.Equal(t, gen.RunObjectStatusRequiresAction, x.get(thread, run.Id).Status)

		sr := x.submit(thread, run.Id, map[string]string{calls[0].Id: `{"temp":21}`, calls[1].Id: "noon"})
		require.NotNil(t, sr.JSON200, "body: %s", sr.Body)
		assert.Equal(t, gen.RunObjectStatusQueued, sr.JSON200.Status)
		assert.Nil(t, sr.JSON200.RequiredAction)
		assert.NotEmpty(t, sr.HTTPResponse.Header.Get("openai-poll-after-ms"))

		settle(time.Second)
		got = x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusCompleted, got.Status)
		require.NotNil(t, got.Usage)
		assert.Positive(t, got.Usage.TotalTokens)
		assert.Equal(t, "get_weather returned: {\"temp\":21}\nget_time returned: noon", lastText(t, x.messages(thread)))

		steps = x.steps(thread, run.Id)
		require.Len(t, steps, 2)
		assert.Equal(t, gen.RunStepObjectStatusCompleted, steps[0].Status)
		require.NotNil(t, steps[0].Usage)
		sc = stepCalls(t, steps[0])
		require.NotNil(t, sc[0].Function.Output)
		assert.Equal(t, `{"temp":21}`, *sc[0].Function.Output)
		require.NotNil(t, sc[1].Function.Output)
		assert.Equal(t, "noon", *sc[1].Function.Output)
		assert.Equal(t, gen.RunStepObjectTypeMessageCreation, steps[1].Type)
		assert.Equal(t, gen.RunStepObjectStatusCompleted, steps[1].Status)
	})
}

func TestRunFailsOnModelError(t *testing.T) {
	cases := []struct {
		name     string
		turn     server.Turn
		code     gen.RunObjectLastErrorCode
		message  string
		partial  bool
		stepCode gen.RunStepObjectLastErrorCode
	}{
		{"rate limit", server.Turn{Err: &server.ModelError{Code: server.ModelErrRateLimit, Message: "Slow down."}},
			gen.RunObjectLastErrorCodeRateLimitExceeded, "Slow down.", false, ""},
		{"invalid prompt", server.Turn{Err: &server.ModelError{Code: server.ModelErrInvalidPrompt, Message: "No."}},
			gen.RunObjectLastErrorCodeInvalidPrompt, "No.", false, ""},
		{"unknown code is a server error", server.Turn{Err: &server.ModelError{Code: "teapot", Message: "Odd."}},
			gen.RunObjectLastErrorCodeServerError, "Odd.", false, ""},
		{"plain error shows no detail", server.Turn{Err: errors.New("dial tcp: secret-host refused")},
			gen.RunObjectLastErrorCodeServerError, "Sorry, something went wrong.", false, ""},
		{"after part of a message", server.Turn{Text: "half a", Err: &server.ModelError{Code: server.ModelErrServer, Message: "Broke."}},
			gen.RunObjectLastErrorCodeServerError, "Broke.", true, gen.RunStepObjectLastErrorCodeServerError},
		{"calls an unknown function", server.Turn{ToolCalls: []server.ToolCall{{Name: "nope"}}},
			gen.RunObjectLastErrorCodeServerError, "The model called a function the run does not have: nope.", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(server.Script(tc.turn))))
				a := x.assistant(gen.CreateAssistantRequest{})
				thread := x.thread("hi")
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				settle(time.Second)
				got := x.get(thread, run.Id)
				require.Equal(t, gen.RunObjectStatusFailed, got.Status)
				require.NotNil(t, got.FailedAt)
				require.NotNil(t, got.LastError)
				assert.Equal(t, tc.code, got.LastError.Code)
				assert.Equal(t, tc.message, got.LastError.Message)
				assert.Nil(t, got.CompletedAt)
				assert.NotNil(t, got.Usage)

				steps := x.steps(thread, run.Id)
				if !tc.partial {
					assert.Empty(t, steps)
					return
				}
				require.Len(t, steps, 1)
				assert.Equal(t, gen.RunStepObjectStatusFailed, steps[0].Status)
				require.NotNil(t, steps[0].LastError)
				assert.Equal(t, tc.stepCode, steps[0].LastError.Code)
				require.NotNil(t, steps[0].FailedAt)
				msgs := x.messages(thread)
				m := msgs[len(msgs)-1]
				assert.Equal(t, gen.MessageObjectStatusIncomplete, m.Status)
				require.NotNil(t, m.IncompleteDetails)
				assert.Equal(t, gen.MessageObjectIncompleteDetailsReasonRunFailed, m.IncompleteDetails.Reason)
				assert.Equal(t, "half a", server.MessageText(m))

				// The thread is free again.
				x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			})
		})
	}
}

func TestRunIncomplete(t *testing.T) {
	long := strings.Repeat("word ", 300)
	cap256 := 256
	cases := []struct {
		name   string
		model  server.Model
		req    func(a string) gen.CreateRunRequest
		reason gen.RunObjectIncompleteDetailsReason
		words  int // words of the (cut) reply, 0: do not check
	}{
		{"scripted model cut at max_completion_tokens", server.Scripted(),
			func(a string) gen.CreateRunRequest {
				return gen.CreateRunRequest{AssistantId: a, MaxCompletionTokens: &cap256}
			}, gen.RunObjectIncompleteDetailsReasonMaxCompletionTokens, 256},
		{"prompt over max_prompt_tokens", server.Scripted(),
			func(a string) gen.CreateRunRequest {
				return gen.CreateRunRequest{AssistantId: a, MaxPromptTokens: &cap256}
			}, gen.RunObjectIncompleteDetailsReasonMaxPromptTokens, 0},
		{"model reports truncation", server.Script(server.Turn{Text: "cut short", Truncated: true}),
			func(a string) gen.CreateRunRequest { return gen.CreateRunRequest{AssistantId: a} },
			gen.RunObjectIncompleteDetailsReasonMaxCompletionTokens, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(tc.model)))
				a := x.assistant(gen.CreateAssistantRequest{})
				thread := x.thread(long)
				run := x.run(thread, tc.req(a.Id))
				settle(time.Second)
				got := x.get(thread, run.Id)
				require.Equal(t, gen.RunObjectStatusIncomplete, got.Status)
				require.NotNil(t, got.IncompleteDetails)
				require.NotNil(t, got.IncompleteDetails.Reason)
				assert.Equal(t, tc.reason, *got.IncompleteDetails.Reason)
				require.NotNil(t, got.Usage)
				m := x.messages(thread)[1]
				assert.Equal(t, gen.MessageObjectStatusIncomplete, m.Status)
				require.NotNil(t, m.IncompleteDetails)
				assert.Equal(t, gen.MessageObjectIncompleteDetailsReasonMaxTokens, m.IncompleteDetails.Reason)
				if tc.words > 0 {
					assert.Len(t, strings.Fields(server.MessageText(m)), tc.words)
				}
				steps := x.steps(thread, run.Id)
				require.Len(t, steps, 1)
				assert.Equal(t, gen.RunStepObjectStatusCompleted, steps[0].Status)
			})
		})
	}
}

func TestCancelRun(t *testing.T) {
	t.Run("while the model writes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			returned := make(chan error, 1)
			model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
				emit("thinking ")
				<-ctx.Done() // a model that only stops when told
				returned <- ctx.Err()
				return nil, ctx.Err()
			})
			x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
			a := x.assistant(gen.CreateAssistantRequest{})
			thread := x.thread("hi")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			settle(time.Second)
			require.Equal(t, gen.RunObjectStatusInProgress, x.get(thread, run.Id).Status)

			cr, err := x.c.CancelRunWithResponse(x.ctx, thread, run.Id)
			require.NoError(t, err)
			require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
			assert.Equal(t, gen.RunObjectStatusCancelling, cr.JSON200.Status)
			assert.NotEmpty(t, cr.HTTPResponse.Header.Get("openai-poll-after-ms"))

			synctest.Wait() // no time passes: the model must have been stopped at once
			select {
			case err := <-returned:
				assert.ErrorIs(t, err, context.Canceled)
			default:
				t.Fatal("the model's context was not cancelled promptly")
			}
			assert.Equal(t, gen.RunObjectStatusCancelling, x.get(thread, run.Id).Status)

			settle(stepDelay)
			got := x.get(thread, run.Id)
			require.Equal(t, gen.RunObjectStatusCancelled, got.Status)
			require.NotNil(t, got.CancelledAt)
			assert.NotNil(t, got.Usage)
			steps := x.steps(thread, run.Id)
			require.Len(t, steps, 1)
			assert.Equal(t, gen.RunStepObjectStatusCancelled, steps[0].Status)
			require.NotNil(t, steps[0].CancelledAt)
			m := x.messages(thread)[1]
			assert.Equal(t, gen.MessageObjectStatusIncomplete, m.Status)
			require.NotNil(t, m.IncompleteDetails)
			assert.Equal(t, gen.MessageObjectIncompleteDetailsReasonRunCancelled, m.IncompleteDetails.Reason)

			// A finished run cannot be cancelled.
			cr, err = x.c.CancelRunWithResponse(x.ctx, thread, run.Id)
			require.NoError(t, err)
			e := apiError(t, http.StatusBadRequest, cr.Body, cr.StatusCode())
			assert.Equal(t, "Cannot cancel run with status 'cancelled'.", e.Message)
		})
	})
	t.Run("while queued", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			x := newRT(t, assistantstest.NewInProcessServer(t))
			a := x.assistant(gen.CreateAssistantRequest{})
			thread := x.thread("hi")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			cr, err := x.c.CancelRunWithResponse(x.ctx, thread, run.Id)
			require.NoError(t, err)
			require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
			settle(time.Second)
			got := x.get(thread, run.Id)
			assert.Equal(t, gen.RunObjectStatusCancelled, got.Status)
			assert.Nil(t, got.StartedAt, "it never started")
			assert.Empty(t, x.steps(thread, run.Id))
			assert.Len(t, x.messages(thread), 1)
		})
	})
	t.Run("while it requires action", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			x := newRT(t, assistantstest.NewInProcessServer(t))
			a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
			thread := x.thread("lookup")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			settle(time.Second)
			require.Equal(t, gen.RunObjectStatusRequiresAction, x.get(thread, run.Id).Status)
			_, err := x.c.CancelRunWithResponse(x.ctx, thread, run.Id)
			require.NoError(t, err)
			settle(time.Second)
			got := x.get(thread, run.Id)
			assert.Equal(t, gen.RunObjectStatusCancelled, got.Status)
			assert.Nil(t, got.RequiredAction)
			steps := x.steps(thread, run.Id)
			require.Len(t, steps, 1)
			assert.Equal(t, gen.RunStepObjectStatusCancelled, steps[0].Status)
			sr := x.submit(thread, run.Id, map[string]string{"call_x": "late"})
			apiError(t, http.StatusBadRequest, sr.Body, sr.StatusCode())
		})
	})
}

func TestRunExpires(t *testing.T) {
	t.Run("waiting for tool outputs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			x := newRT(t, assistantstest.NewInProcessServer(t))
			a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
			thread := x.thread("lookup")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			settle(9 * time.Minute)
			got := x.get(thread, run.Id)
			require.Equal(t, gen.RunObjectStatusRequiresAction, got.Status)
			callID := got.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id

			settle(2 * time.Minute)
			got = x.get(thread, run.Id)
			require.Equal(t, gen.RunObjectStatusExpired, got.Status)
			assert.Nil(t, got.RequiredAction)
			assert.NotNil(t, got.ExpiresAt)
			steps := x.steps(thread, run.Id)
			require.Len(t, steps, 1)
			assert.Equal(t, gen.RunStepObjectStatusExpired, steps[0].Status)
			assert.NotNil(t, steps[0].ExpiredAt)

			sr := x.submit(thread, run.Id, map[string]string{callID: "late"})
			apiError(t, http.StatusBadRequest, sr.Body, sr.StatusCode())
			// The thread is unlocked.
			x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		})
	})
	t.Run("seen late with an injected clock", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func(o *server.Options) {
			o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		}
		x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), clock))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
		thread := x.thread("lookup")
		tr := true
		resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
		require.NoError(t, err)
		events := readEvents(t, resp)
		require.Equal(t, "thread.run.requires_action", events[len(events)-2].name)
		var run gen.RunObject
		require.NoError(t, json.Unmarshal(events[0].data, &run))
		assert.Equal(t, int(now.Unix())+600, *run.ExpiresAt)

		mu.Lock()
		now = now.Add(10 * time.Minute)
		mu.Unlock()
		got := x.get(thread, run.Id)
		assert.Equal(t, gen.RunObjectStatusExpired, got.Status)
		active, err := x.c.CreateRunWithResponse(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id})
		require.NoError(t, err)
		require.NotNil(t, active.JSON200, "the expired run no longer locks the thread: %s", active.Body)
	})
	t.Run("while the model writes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			model := server.Script(server.Turn{Text: "too slow", Delay: 11 * time.Minute})
			x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
			a := x.assistant(gen.CreateAssistantRequest{})
			thread := x.thread("hi")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			settle(9 * time.Minute)
			require.Equal(t, gen.RunObjectStatusInProgress, x.get(thread, run.Id).Status)
			settle(2 * time.Minute)
			got := x.get(thread, run.Id)
			assert.Equal(t, gen.RunObjectStatusExpired, got.Status)
			assert.Len(t, x.messages(thread), 1, "no reply was written")
		})
	})
}

// ---- locks and validation ----

func TestThreadLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
		thread := x.thread("lookup")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})

		for _, phase := range []gen.RunObjectStatus{gen.RunObjectStatusQueued, gen.RunObjectStatusRequiresAction} {
			if phase == gen.RunObjectStatusRequiresAction {
				settle(time.Second)
			}
			require.Equal(t, phase, x.get(thread, run.Id).Status)
			second := x.createRun(thread, gen.CreateRunRequest{AssistantId: a.Id})
			e := apiError(t, http.StatusBadRequest, second.Body, second.StatusCode())
			assert.Equal(t, fmt.Sprintf("Thread %s already has an active run %s.", thread, run.Id), e.Message)
			assert.Equal(t, "invalid_request_error", e.Type)

			cm, err := x.c.CreateMessageWithResponse(x.ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent("more")})
			require.NoError(t, err)
			apiError(t, http.StatusBadRequest, cm.Body, cm.StatusCode())
		}
		// Another thread is not locked.
		other := x.thread("hi")
		x.run(other, gen.CreateRunRequest{AssistantId: a.Id})

		calls := x.get(thread, run.Id).RequiredAction.SubmitToolOutputs.ToolCalls
		x.submit(thread, run.Id, map[string]string{calls[0].Id: "ok"})
		settle(time.Second)
		require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
		cm, err := x.c.CreateMessageWithResponse(x.ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent("more")})
		require.NoError(t, err)
		require.NotNil(t, cm.JSON200, "body: %s", cm.Body)
		x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
	})
}

func TestConcurrentRunsOnOneThreadOnlyOneWins(t *testing.T) {
	hold := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		<-ctx.Done() // the winner stays active until the server closes
		return nil, ctx.Err()
	})
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), server.WithModel(hold)))
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hi")
	const n = 16
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Go(func() {
			r, err := x.c.CreateRunWithResponse(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id})
			if err != nil {
				codes <- -1
				return
			}
			codes <- r.StatusCode()
		})
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	assert.Equal(t, map[int]int{200: 1, 400: n - 1}, got)
}

func TestSubmitToolOutputsValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("a_fn"), fnTool("b_fn")}})
		thread := x.thread("call a_fn and b_fn")

		// Not (yet) waiting for outputs.
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		sr := x.submit(thread, run.Id, map[string]string{"call_1": "x"})
		e := apiError(t, http.StatusBadRequest, sr.Body, sr.StatusCode())
		assert.Equal(t, `Runs in status "queued" do not accept tool outputs.`, e.Message)

		settle(time.Second)
		calls := x.get(thread, run.Id).RequiredAction.SubmitToolOutputs.ToolCalls
		require.Len(t, calls, 2)
		id1, id2 := calls[0].Id, calls[1].Id
		out := "x"
		cases := []struct {
			name string
			outs []gen.SubmitToolOutputsRunRequestToolOutput
			msg  string
		}{
			{"missing one", []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &id1, Output: &out}},
				fmt.Sprintf("Expected tool outputs for call_ids ['%s', '%s'], got ['%s'].", id1, id2, id1)},
			{"none", []gen.SubmitToolOutputsRunRequestToolOutput{}, ""},
			{"unknown id", []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &id1, Output: &out}, {ToolCallId: ptr("call_nope"), Output: &out}}, ""},
			{"duplicate", []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &id1, Output: &out}, {ToolCallId: &id1, Output: &out}}, ""},
			{"no id", []gen.SubmitToolOutputsRunRequestToolOutput{{Output: &out}, {ToolCallId: &id2, Output: &out}}, ""},
		}
		for _, tc := range cases {
			r, err := x.c.SubmitToolOutputsToRunWithResponse(x.ctx, thread, run.Id, gen.SubmitToolOutputsRunRequest{ToolOutputs: tc.outs})
			require.NoError(t, err)
			e := apiError(t, http.StatusBadRequest, r.Body, r.StatusCode())
			assert.Equal(t, "tool_outputs", param(e), tc.name)
			if tc.msg != "" {
				assert.Equal(t, tc.msg, e.Message, tc.name)
			}
			assert.Equal(t, gen.RunObjectStatusRequiresAction, x.get(thread, run.Id).Status, "%s: a refused submission changes nothing", tc.name)
		}

		// Unknown run and thread.
		r, err := x.c.SubmitToolOutputsToRunWithResponse(x.ctx, thread, "run_nope", gen.SubmitToolOutputsRunRequest{ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{}})
		require.NoError(t, err)
		apiError(t, http.StatusNotFound, r.Body, r.StatusCode())

		ok := x.submit(thread, run.Id, map[string]string{id1: "1", id2: "2"})
		require.NotNil(t, ok.JSON200, "body: %s", ok.Body)
		again := x.submit(thread, run.Id, map[string]string{id1: "1", id2: "2"})
		apiError(t, http.StatusBadRequest, again.Body, again.StatusCode())
	})
}

func ptr[T any](v T) *T { return &v }

func TestCreateRunValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
		thread := x.thread("hi")
		var namedOther gen.AssistantsApiToolChoiceOption
		var fnChoice gen.AssistantsNamedToolChoice
		require.NoError(t, fnChoice.FromAssistantsNamedToolChoiceFunction(gen.AssistantsNamedToolChoiceFunction{Type: "function",
			Function: &gen.AssistantsNamedToolChoiceFunctionName{Name: "other"}}))
		require.NoError(t, namedOther.FromAssistantsNamedToolChoice(fnChoice))
		cases := []struct {
			name   string
			thread string
			req    gen.CreateRunRequest
			status int
			param  string
		}{
			{"unknown assistant", thread, gen.CreateRunRequest{AssistantId: "asst_nope"}, 404, "assistant_id"},
			{"unknown thread", "thread_nope", gen.CreateRunRequest{AssistantId: a.Id}, 404, "thread_id"},
			{"bad metadata", thread, gen.CreateRunRequest{AssistantId: a.Id, Metadata: &gen.Metadata{strings.Repeat("k", 65): "v"}}, 400, "metadata"},
			{"tool_choice names a missing function", thread, gen.CreateRunRequest{AssistantId: a.Id, ToolChoice: &namedOther}, 400, "tool_choice"},
			{"bad additional message", thread, gen.CreateRunRequest{AssistantId: a.Id, AdditionalMessages: &[]gen.CreateMessageRequest{{Role: "robot", Content: msgContent("x")}}}, 400, ""},
		}
		for _, tc := range cases {
			r := x.createRun(tc.thread, tc.req)
			e := apiError(t, tc.status, r.Body, r.StatusCode())
			if tc.param != "" {
				assert.Equal(t, tc.param, param(e), tc.name)
			}
		}
		// Nothing was started by the refused requests.
		lr, err := x.c.ListRunsWithResponse(x.ctx, thread, nil)
		require.NoError(t, err)
		require.NotNil(t, lr.JSON200)
		assert.Empty(t, lr.JSON200.Data)
		assert.Len(t, x.messages(thread), 1)
	})
}

func TestRunOverridesAndAdditions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := server.Script(server.Turn{Text: "ok"})
		x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
		temp, topP := float32(0.5), float32(0.25)
		a := x.assistant(gen.CreateAssistantRequest{Instructions: ptr("Be kind."), Temperature: &temp,
			Tools: &[]gen.AssistantTool{fnTool("lookup")}})
		thread := x.thread("one", "two", "three")

		two, mp, mc, par := 2, 1000, 500, false
		var rf gen.AssistantsApiResponseFormatOption
		var jsonObj gen.AssistantsApiResponseFormat
		require.NoError(t, json.Unmarshal([]byte(`{"type":"json_object"}`), &jsonObj))
		require.NoError(t, rf.FromAssistantsApiResponseFormat(jsonObj))
		var none gen.AssistantsApiToolChoiceOption
		require.NoError(t, none.FromToolChoiceMode(gen.ToolChoiceModeNone))
		run := x.run(thread, gen.CreateRunRequest{
			AssistantId:            a.Id,
			Model:                  ptr("gpt-4.1"),
			AdditionalInstructions: ptr("Be brief."),
			AdditionalMessages:     &[]gen.CreateMessageRequest{{Role: "user", Content: msgContent("four")}},
			Tools:                  &[]gen.AssistantTool{fnTool("other_fn")},
			Metadata:               &gen.Metadata{"k": "v"},
			TopP:                   &topP,
			MaxPromptTokens:        &mp,
			MaxCompletionTokens:    &mc,
			ParallelToolCalls:      &par,
			ResponseFormat:         &rf,
			ToolChoice:             &none,
			TruncationStrategy:     &gen.TruncationObject{Type: gen.TruncationObjectTypeLastMessages, LastMessages: &two},
		})
		assert.Equal(t, "gpt-4.1", run.Model)
		assert.Equal(t, "Be kind.\nBe brief.", run.Instructions)
		assert.Equal(t, gen.Metadata{"k": "v"}, *run.Metadata)
		require.NotNil(t, run.Temperature)
		assert.InDelta(t, 0.5, *run.Temperature, 1e-6, "from the assistant")
		require.NotNil(t, run.TopP)
		assert.InDelta(t, 0.25, *run.TopP, 1e-6)
		assert.Equal(t, mp, *run.MaxPromptTokens)
		assert.Equal(t, mc, *run.MaxCompletionTokens)
		assert.False(t, run.ParallelToolCalls)
		require.Len(t, run.Tools, 1)
		f, err := run.Tools[0].AsAssistantToolsFunction()
		require.NoError(t, err)
		assert.Equal(t, "other_fn", f.Function.Name)
		b, _ := run.ResponseFormat.MarshalJSON()
		assert.JSONEq(t, `{"type":"json_object"}`, string(b))
		b, _ = run.ToolChoice.MarshalJSON()
		assert.JSONEq(t, `"none"`, string(b))
		assert.Equal(t, gen.TruncationObjectTypeLastMessages, run.TruncationStrategy.Type)

		// The additional message is in the thread before the run starts.
		msgs := x.messages(thread)
		require.Len(t, msgs, 4)
		assert.Equal(t, "four", server.MessageText(msgs[3]))

		settle(time.Second)
		require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
		inputs := model.Inputs()
		require.Len(t, inputs, 1)
		in := inputs[0]
		assert.Equal(t, "Be kind.\nBe brief.", in.Run.Instructions)
		assert.Equal(t, a.Id, in.Assistant.Id)
		require.Len(t, in.Messages, 2, "truncation_strategy last_messages=2")
		assert.Equal(t, "three", server.MessageText(in.Messages[0]))
		assert.Equal(t, "four", server.MessageText(in.Messages[1]))
		assert.Equal(t, []string{"other_fn"}, in.FunctionNames())
		assert.Empty(t, in.ToolOutputs)
	})
	t.Run("instructions replace the assistant's", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			x := newRT(t, assistantstest.NewInProcessServer(t))
			a := x.assistant(gen.CreateAssistantRequest{Instructions: ptr("Be kind.")})
			thread := x.thread("hi")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id, Instructions: ptr("Be terse."), AdditionalInstructions: ptr("Really.")})
			assert.Equal(t, "Be terse.\nReally.", run.Instructions)
			b, _ := run.ResponseFormat.MarshalJSON()
			assert.Equal(t, `"auto"`, string(b))
			b, _ = run.ToolChoice.MarshalJSON()
			assert.Equal(t, `"auto"`, string(b))
		})
	})
}

func TestListAndModifyRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hi")
		var ids []string
		for range 3 {
			ids = append(ids, x.run(thread, gen.CreateRunRequest{AssistantId: a.Id}).Id)
			settle(time.Second)
		}
		lr, err := x.c.ListRunsWithResponse(x.ctx, thread, nil)
		require.NoError(t, err)
		require.NotNil(t, lr.JSON200, "body: %s", lr.Body)
		require.Len(t, lr.JSON200.Data, 3)
		assert.Equal(t, ids[2], lr.JSON200.Data[0].Id, "newest first by default")
		assert.Equal(t, ids[2], lr.JSON200.FirstId)
		assert.Equal(t, ids[0], lr.JSON200.LastId)
		assert.False(t, lr.JSON200.HasMore)

		one := 1
		asc := gen.ListRunsParamsOrder("asc")
		lr, err = x.c.ListRunsWithResponse(x.ctx, thread, &gen.ListRunsParams{Limit: &one, Order: &asc, After: &ids[0]})
		require.NoError(t, err)
		require.NotNil(t, lr.JSON200, "body: %s", lr.Body)
		require.Len(t, lr.JSON200.Data, 1)
		assert.Equal(t, ids[1], lr.JSON200.Data[0].Id)
		assert.True(t, lr.JSON200.HasMore)

		lr, err = x.c.ListRunsWithResponse(x.ctx, "thread_nope", nil)
		require.NoError(t, err)
		apiError(t, http.StatusNotFound, lr.Body, lr.StatusCode())

		mr, err := x.c.ModifyRunWithResponse(x.ctx, thread, ids[0], gen.ModifyRunRequest{Metadata: &gen.Metadata{"a": "b"}})
		require.NoError(t, err)
		require.NotNil(t, mr.JSON200, "body: %s", mr.Body)
		assert.Equal(t, gen.Metadata{"a": "b"}, *mr.JSON200.Metadata)
		assert.NotEmpty(t, mr.HTTPResponse.Header.Get("openai-poll-after-ms"))
		assert.Equal(t, gen.Metadata{"a": "b"}, *x.get(thread, ids[0]).Metadata)
		mr, err = x.c.ModifyRunWithResponse(x.ctx, thread, ids[0], gen.ModifyRunRequest{Metadata: &gen.Metadata{strings.Repeat("k", 65): "v"}})
		require.NoError(t, err)
		assert.Equal(t, "metadata", param(apiError(t, http.StatusBadRequest, mr.Body, mr.StatusCode())))

		// A run is found only under its own thread.
		other := x.thread("x")
		gr, err := x.c.GetRunWithResponse(x.ctx, other, ids[0])
		require.NoError(t, err)
		assert.Equal(t, "run_id", param(apiError(t, http.StatusNotFound, gr.Body, gr.StatusCode())))
		gs, err := x.c.GetRunStepWithResponse(x.ctx, thread, ids[0], "step_nope", nil)
		require.NoError(t, err)
		assert.Equal(t, "step_id", param(apiError(t, http.StatusNotFound, gs.Body, gs.StatusCode())))
		ls, err := x.c.ListRunStepsWithResponse(x.ctx, thread, "run_nope", nil)
		require.NoError(t, err)
		apiError(t, http.StatusNotFound, ls.Body, ls.StatusCode())
	})
}

func TestDeletingThreadStopsItsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stopped := make(chan struct{})
		model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
			<-ctx.Done()
			close(stopped)
			return nil, ctx.Err()
		})
		x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hi")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(time.Second)
		require.Equal(t, gen.RunObjectStatusInProgress, x.get(thread, run.Id).Status)

		dr, err := x.c.DeleteThreadWithResponse(x.ctx, thread)
		require.NoError(t, err)
		require.NotNil(t, dr.JSON200, "body: %s", dr.Body)
		synctest.Wait()
		select {
		case <-stopped:
		default:
			t.Fatal("the run's model call was not stopped")
		}
		gr, err := x.c.GetRunWithResponse(x.ctx, thread, run.Id)
		require.NoError(t, err)
		apiError(t, http.StatusNotFound, gr.Body, gr.StatusCode())
	})
}

func TestCreateThreadAndRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		a := x.assistant(gen.CreateAssistantRequest{})
		msgs := []gen.CreateMessageRequest{{Role: "user", Content: msgContent("from the start")}}
		r, err := x.c.CreateThreadAndRunWithResponse(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id,
			Thread: &gen.CreateThreadRequest{Messages: &msgs}, Metadata: &gen.Metadata{"x": "y"}})
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		assert.NotEmpty(t, r.HTTPResponse.Header.Get("openai-poll-after-ms"))
		run := *r.JSON200
		assert.Equal(t, gen.Metadata{"x": "y"}, *run.Metadata)
		settle(time.Second)
		assert.Equal(t, gen.RunObjectStatusCompleted, x.get(run.ThreadId, run.Id).Status)
		assert.Equal(t, "You said: from the start", lastText(t, x.messages(run.ThreadId)))

		// Without a thread body: an empty thread.
		r, err = x.c.CreateThreadAndRunWithResponse(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id})
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		settle(time.Second)
		assert.Equal(t, "You said nothing.", lastText(t, x.messages(r.JSON200.ThreadId)))

		// An unknown assistant leaves no thread behind.
		r, err = x.c.CreateThreadAndRunWithResponse(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: "asst_nope",
			Thread: &gen.CreateThreadRequest{Messages: &msgs}})
		require.NoError(t, err)
		assert.Equal(t, "assistant_id", param(apiError(t, http.StatusNotFound, r.Body, r.StatusCode())))
	})
}

func TestMultipleToolRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := server.Script(
			server.Turn{ToolCalls: []server.ToolCall{{ID: "call_one", Name: "step", Arguments: `{"n":1}`}}},
			server.Turn{Text: "halfway", ToolCalls: []server.ToolCall{{Name: "step", Arguments: `{"n":2}`}}},
			server.Turn{Text: "done"},
		)
		x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("step")}})
		thread := x.thread("go")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(time.Second)
		got := x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusRequiresAction, got.Status)
		assert.Equal(t, "call_one", got.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id, "the model's id is kept")
		x.submit(thread, run.Id, map[string]string{"call_one": "first"})
		settle(time.Second)
		got = x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusRequiresAction, got.Status)
		second := got.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id
		x.submit(thread, run.Id, map[string]string{second: "second"})
		settle(time.Second)
		require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)

		steps := x.steps(thread, run.Id)
		var kinds []gen.RunStepObjectType
		for _, s := range steps {
			kinds = append(kinds, s.Type)
			assert.Equal(t, gen.RunStepObjectStatusCompleted, s.Status)
		}
		assert.Equal(t, []gen.RunStepObjectType{"tool_calls", "message_creation", "tool_calls", "message_creation"}, kinds)

		inputs := model.Inputs()
		require.Len(t, inputs, 3)
		require.Len(t, inputs[2].ToolOutputs, 2)
		assert.Equal(t, server.ToolOutput{Call: server.ToolCall{ID: "call_one", Name: "step", Arguments: `{"n":1}`}, Output: "first", Round: 0}, inputs[2].ToolOutputs[0])
		assert.Equal(t, 1, inputs[2].ToolOutputs[1].Round)
		assert.Equal(t, "second", inputs[2].ToolOutputs[1].Output)
		assert.Positive(t, inputs[2].Used.CompletionTokens)
		texts := []string{}
		for _, m := range x.messages(thread) {
			texts = append(texts, server.MessageText(m))
		}
		assert.Equal(t, []string{"go", "halfway", "done"}, texts)
	})
}

func TestRunBadBodiesNever500(t *testing.T) {
	for _, validation := range []bool{true, false} {
		t.Run(fmt.Sprintf("validation=%v", validation), func(t *testing.T) {
			opts := []server.Option{server.WithStepDelay(0)}
			if !validation {
				opts = append(opts, func(o *server.Options) { o.DisableValidation = true })
			}
			x := newRT(t, assistantstest.NewServer(t, opts...))
			a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
			thread := x.thread("lookup")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
			require.Equal(t, gen.RunObjectStatusRequiresAction, waitForEnd(t, x, thread, run.Id).Status)
			A := `"assistant_id":"` + a.Id + `"`
			runs := "/threads/" + thread + "/runs"
			cases := []struct{ method, path, body string }{
				{"POST", runs, `{}`},
				{"POST", runs, `null`},
				{"POST", runs, `[]`},
				{"POST", runs, `{"assistant_id":""}`},
				{"POST", runs, `{"assistant_id":5}`},
				{"POST", runs, `{` + A + `,"tools":[{"type":"nope"}]}`},
				{"POST", runs, `{` + A + `,"tools":[{}]}`},
				{"POST", runs, `{` + A + `,"tools":[{"type":"function","function":{"name":"bad name"}}]}`},
				{"POST", runs, `{` + A + `,"tool_choice":{"type":"function"}}`},
				{"POST", runs, `{` + A + `,"tool_choice":{"type":"file_search"}}`},
				{"POST", runs, `{` + A + `,"tool_choice":42}`},
				{"POST", runs, `{` + A + `,"tool_choice":"sometimes"}`},
				{"POST", runs, `{` + A + `,"response_format":{"type":""}}`},
				{"POST", runs, `{` + A + `,"response_format":7}`},
				{"POST", runs, `{` + A + `,"response_format":"json"}`},
				{"POST", runs, `{` + A + `,"truncation_strategy":{"type":"x"}}`},
				{"POST", runs, `{` + A + `,"truncation_strategy":{"type":"last_messages"}}`},
				{"POST", runs, `{` + A + `,"max_prompt_tokens":1}`},
				{"POST", runs, `{` + A + `,"max_completion_tokens":-5}`},
				{"POST", runs, `{` + A + `,"temperature":9}`},
				{"POST", runs, `{` + A + `,"top_p":-1}`},
				{"POST", runs, `{` + A + `,"model":""}`},
				{"POST", runs, `{` + A + `,"metadata":{"a":5}}`},
				{"POST", runs, `{` + A + `,"additional_messages":[{"role":"user","content":5}]}`},
				{"POST", runs, `{` + A + `,"additional_messages":[{"role":"user"}]}`},
				{"POST", runs, `{` + A + `,"additional_messages":[{"role":"user","content":[]}]}`},
				{"POST", "/threads/runs", `{"assistant_id":"asst_nope"}`},
				{"POST", "/threads/runs", `{` + A + `,"thread":{"messages":[{"role":"x","content":"y"}]}}`},
				{"POST", "/threads/runs", `{` + A + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`},
				{"POST", runs + "/" + run.Id + "/submit_tool_outputs", `{}`},
				{"POST", runs + "/" + run.Id + "/submit_tool_outputs", `{"tool_outputs":null}`},
				{"POST", runs + "/" + run.Id + "/submit_tool_outputs", `{"tool_outputs":[{"tool_call_id":5}]}`},
				{"POST", runs + "/" + run.Id + "/submit_tool_outputs", `{"tool_outputs":[{}]}`},
				{"POST", runs + "/" + run.Id + "/submit_tool_outputs", `{"tool_outputs":[{"tool_call_id":"call_x","output":"y"}]}`},
				{"POST", runs + "/" + run.Id, `{"metadata":{"a":5}}`},
				{"POST", runs + "/" + run.Id, `{"metadata":"x"}`},
				{"POST", runs + "/run_nope/cancel", ``},
				{"GET", runs + "?limit=0", ``},
				{"GET", runs + "?order=sideways", ``},
				{"GET", runs + "/" + run.Id + "/steps?limit=101", ``},
				{"GET", runs + "/" + run.Id + "/steps/step_%00", ``},
				{"GET", "/threads/" + strings.Repeat("x", 300) + "/runs/" + run.Id, ``},
			}
			for _, tc := range cases {
				req, err := http.NewRequestWithContext(x.ctx, tc.method, x.srv.URL+tc.path, strings.NewReader(tc.body))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				resp, err := x.srv.HTTP.Client().Do(req)
				require.NoError(t, err)
				var e gen.ErrorResponse
				derr := json.NewDecoder(resp.Body).Decode(&e)
				_ = resp.Body.Close()
				assert.True(t, resp.StatusCode >= 400 && resp.StatusCode < 500, "%s %s %s -> %d %s", tc.method, tc.path, tc.body, resp.StatusCode, e.Error.Message)
				assert.NoError(t, derr, "%s %s %s: error body", tc.method, tc.path, tc.body)
			}
			assert.Equal(t, gen.RunObjectStatusRequiresAction, x.get(thread, run.Id).Status)
		})
	}
}
