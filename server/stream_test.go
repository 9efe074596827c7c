package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// The stream tests run over real HTTP (assistantstest.NewServer checks every
// event against the spec); reading a stream to its end is what waits.

type event struct {
	name string
	data []byte
}

// scanEvents reads server-sent events from r until EOF or a read error,
// which it returns (nil at a clean EOF).
func scanEvents(r io.Reader, each func(event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var ev event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				if !each(ev) {
					return nil
				}
			}
			ev = event{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
	return sc.Err()
}

// readEvents reads a whole event stream answer.
func readEvents(t *testing.T, resp *http.Response) []event {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"), resp.Header.Get("Content-Type"))
	var evs []event
	require.NoError(t, scanEvents(resp.Body, func(ev event) bool { evs = append(evs, ev); return true }))
	return evs
}

func names(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.name
	}
	return out
}

func decode[T any](t *testing.T, ev event) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(ev.data, &v), "%s: %s", ev.name, ev.data)
	return v
}

// messageEvents is the expected event sequence of a reply of n deltas.
func messageEvents(n int) []string {
	out := []string{"thread.run.step.created", "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress"}
	for range n {
		out = append(out, "thread.message.delta")
	}
	return append(out, "thread.message.completed", "thread.run.step.completed")
}

// deltaText concatenates the text of the thread.message.delta events.
func deltaText(t *testing.T, evs []event) (string, int) {
	t.Helper()
	var b strings.Builder
	n := 0
	for _, ev := range evs {
		if ev.name != "thread.message.delta" {
			continue
		}
		n++
		d := decode[gen.MessageDeltaObject](t, ev)
		assert.Equal(t, gen.MessageDeltaObjectObject("thread.message.delta"), d.Object)
		require.NotNil(t, d.Delta.Content)
		for _, c := range *d.Delta.Content {
			tx := c
			require.Equal(t, gen.MessageDeltaContentTypeText, tx.Type)
			require.NotNil(t, tx.Text)
			b.WriteString(*tx.Text.Value)
		}
	}
	return b.String(), n
}

func TestStreamCreateRun(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hello stream world")
	tr := true
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	evs := readEvents(t, resp)

	want := append([]string{"thread.run.created", "thread.run.queued", "thread.run.in_progress"}, messageEvents(5)...)
	want = append(want, "thread.run.completed", "done")
	require.Equal(t, want, names(evs))
	assert.Equal(t, "[DONE]", string(evs[len(evs)-1].data))

	created := decode[gen.RunObject](t, evs[0])
	assert.Equal(t, gen.RunObjectStatusQueued, created.Status)
	assert.Equal(t, gen.RunObjectStatusInProgress, decode[gen.RunObject](t, evs[2]).Status)
	done := decode[gen.RunObject](t, evs[len(evs)-2])
	assert.Equal(t, created.Id, done.Id)
	assert.Equal(t, gen.RunObjectStatusCompleted, done.Status)
	require.NotNil(t, done.Usage)

	step := decode[gen.RunStepObject](t, evs[3])
	assert.Equal(t, gen.RunStepObjectTypeMessageCreation, step.Type)
	msg := decode[gen.MessageObject](t, evs[5])
	assert.Equal(t, gen.MessageObjectStatusInProgress, msg.Status)
	assert.Empty(t, msg.Content)
	text, n := deltaText(t, evs)
	assert.Equal(t, 5, n, "the reply streams word by word")
	assert.Equal(t, "You said: hello stream world", text)
	final := decode[gen.MessageObject](t, evs[len(evs)-4])
	assert.Equal(t, text, server.MessageText(final))
	assert.Equal(t, msg.Id, final.Id)
	assert.Equal(t, gen.MessageObjectStatusCompleted, final.Status)

	// The streamed run is the stored run.
	assert.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, created.Id).Status)
}

func TestStreamCreateThreadAndRun(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	a := x.assistant(gen.CreateAssistantRequest{})
	msgs := []gen.CreateMessageRequest{{Role: "user", Content: msgContent("hi")}}
	tr := true
	resp, err := x.c.ClientWithResponses.CreateThreadAndRun(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id, Stream: &tr,
		Thread: &gen.CreateThreadRequest{Messages: &msgs}})
	require.NoError(t, err)
	evs := readEvents(t, resp)
	want := append([]string{"thread.created", "thread.run.created", "thread.run.queued", "thread.run.in_progress"}, messageEvents(3)...)
	want = append(want, "thread.run.completed", "done")
	require.Equal(t, want, names(evs))
	th := decode[gen.ThreadObject](t, evs[0])
	assert.Equal(t, gen.ThreadObjectObject("thread"), th.Object)
	assert.Equal(t, th.Id, decode[gen.RunObject](t, evs[1]).ThreadId)
	assert.Equal(t, "You said: hi", lastText(t, x.messages(th.Id)))
}

func TestStreamToolCallsAndSubmit(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("get_weather")}})
	thread := x.thread(`please get_weather {"city":"Paris","unit":"celsius","days":[1,2,3]}`)
	tr := true
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	evs := readEvents(t, resp)
	got := names(evs)
	require.Equal(t, []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress"}, got[:5])
	require.Equal(t, []string{"thread.run.requires_action", "done"}, got[len(got)-2:])
	deltas := evs[5 : len(evs)-2]
	require.GreaterOrEqual(t, len(deltas), 3, "the call's arguments arrive in fragments")

	// Rebuild the call from the step deltas, as a stream accumulator would.
	var id, name, args string
	for _, ev := range deltas {
		require.Equal(t, "thread.run.step.delta", ev.name)
		d := decode[gen.RunStepDeltaObject](t, ev)
		require.NotNil(t, d.Delta.StepDetails)
		tc, err := d.Delta.StepDetails.AsRunStepDeltaStepDetailsToolCallsObject()
		require.NoError(t, err)
		require.NotNil(t, tc.ToolCalls)
		for _, c := range *tc.ToolCalls {
			f, err := c.AsRunStepDeltaStepDetailsToolCallsFunctionObject()
			require.NoError(t, err)
			assert.Equal(t, 0, f.Index)
			if f.Id != nil {
				id = *f.Id
			}
			if f.Function != nil && f.Function.Name != nil {
				name = *f.Function.Name
			}
			if f.Function != nil && f.Function.Arguments != nil {
				args += *f.Function.Arguments
			}
		}
	}
	ra := decode[gen.RunObject](t, evs[len(evs)-2])
	require.NotNil(t, ra.RequiredAction)
	call := ra.RequiredAction.SubmitToolOutputs.ToolCalls[0]
	assert.Equal(t, call.Id, id)
	assert.Equal(t, "get_weather", name)
	assert.Equal(t, call.Function.Arguments, args)
	assert.JSONEq(t, `{"city":"Paris","unit":"celsius","days":[1,2,3]}`, args)

	out := `{"temp":21}`
	resp, err = x.c.ClientWithResponses.SubmitToolOutputsToRun(x.ctx, thread, ra.Id, gen.SubmitToolOutputsRunRequest{Stream: &tr,
		ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &call.Id, Output: &out}}})
	require.NoError(t, err)
	evs = readEvents(t, resp)
	want := append([]string{"thread.run.queued", "thread.run.step.completed", "thread.run.in_progress"}, messageEvents(3)...)
	want = append(want, "thread.run.completed", "done")
	require.Equal(t, want, names(evs))
	st := decode[gen.RunStepObject](t, evs[1])
	assert.Equal(t, gen.RunStepObjectTypeToolCalls, st.Type)
	calls := stepCalls(t, st)
	require.NotNil(t, calls[0].Function.Output)
	assert.Equal(t, out, *calls[0].Function.Output)
	text, _ := deltaText(t, evs)
	assert.Equal(t, `get_weather returned: {"temp":21}`, text)
}

func TestStreamEndsWithTheRunsEndState(t *testing.T) {
	t.Run("failed", func(t *testing.T) {
		model := server.Script(server.Turn{Text: "oops", Err: &server.ModelError{Code: server.ModelErrServer, Message: "Broke."}})
		x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), server.WithModel(model)))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hi")
		tr := true
		resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
		require.NoError(t, err)
		evs := readEvents(t, resp)
		got := names(evs)
		require.Equal(t, []string{"thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"}, got[len(got)-4:])
		assert.Equal(t, "Broke.", decode[gen.RunObject](t, evs[len(evs)-2]).LastError.Message)
	})
	t.Run("cancelled", func(t *testing.T) {
		model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
			emit("working ")
			<-ctx.Done()
			return nil, ctx.Err()
		})
		x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), server.WithModel(model)))
		a := x.assistant(gen.CreateAssistantRequest{})
		thread := x.thread("hi")
		tr := true
		resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
		require.NoError(t, err)
		defer resp.Body.Close()
		var evs []event
		var runID string
		err = scanEvents(resp.Body, func(ev event) bool {
			evs = append(evs, ev)
			switch ev.name {
			case "thread.run.created":
				runID = decode[gen.RunObject](t, ev).Id
			case "thread.message.delta": // the model is now waiting: cancel from another request
				cr, err := x.c.CancelRunWithResponse(x.ctx, thread, runID)
				require.NoError(t, err)
				require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
			}
			return true
		})
		require.NoError(t, err)
		got := names(evs)
		require.Equal(t, []string{"thread.run.cancelling", "thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled", "done"}, got[len(got)-5:])
	})
}

func TestStreamCutByFaultHook(t *testing.T) {
	faults := &server.Faults{Global: server.FaultRates{CutStream: 1, CutAfter: 4}}
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), server.WithFaults(faults)))
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hello")
	tr := true
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var evs []event
	err = scanEvents(resp.Body, func(ev event) bool { evs = append(evs, ev); return true })
	require.Error(t, err, "a cut stream ends with a broken connection, not a clean end")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created"}, names(evs))
}

func TestStreamClientDisconnectDoesNotStopTheRun(t *testing.T) {
	gate := make(chan struct{})
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		emit("after ")
		emit("the client left")
		return &server.ModelOutput{Text: "after the client left"}, nil
	})
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0), server.WithModel(model)))
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hi")

	ctx, cancel := context.WithCancel(x.ctx)
	tr := true
	resp, err := x.c.ClientWithResponses.CreateRun(ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	var run gen.RunObject
	// Events arrive live: the model has not answered yet.
	err = scanEvents(resp.Body, func(ev event) bool {
		if ev.name == "thread.run.created" {
			run = decode[gen.RunObject](t, ev)
		}
		return ev.name != "thread.run.in_progress"
	})
	require.NoError(t, err)
	require.NotEmpty(t, run.Id)
	cancel()
	_ = resp.Body.Close()
	close(gate)

	got := waitForEnd(t, x, thread, run.Id)
	assert.Equal(t, gen.RunObjectStatusCompleted, got.Status)
	assert.Equal(t, "after the client left", lastText(t, x.messages(thread)))
}

// waitForEnd polls a run over real HTTP until it leaves the active states,
// for tests that cannot use a synctest bubble. It does not sleep: each poll
// is a request.
func waitForEnd(t *testing.T, x *rt, thread, run string) gen.RunObject {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got := x.get(thread, run)
		switch got.Status {
		case gen.RunObjectStatusQueued, gen.RunObjectStatusInProgress, gen.RunObjectStatusCancelling:
			continue
		}
		return got
	}
	t.Fatalf("run %s did not end", run)
	return gen.RunObject{}
}

func TestStreamRefusedRequestsAnswerJSON(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	tr := true
	thread := x.thread("hi")
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: "asst_nope", Stream: &tr})
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"))
	var e gen.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e))
	require.NotNil(t, e.Error.Param)
	assert.Equal(t, "assistant_id", *e.Error.Param)
}

func TestManyConcurrentStreamedRuns(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(time.Millisecond)))
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
	const n = 12
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			errs <- func() error {
				text := fmt.Sprintf("message %d", i)
				if i%2 == 1 {
					text = fmt.Sprintf(`lookup {"i":%d}`, i)
				}
				msgs := []gen.CreateMessageRequest{{Role: "user", Content: msgContent(text)}}
				tr := true
				resp, err := x.c.ClientWithResponses.CreateThreadAndRun(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id, Stream: &tr,
					Thread: &gen.CreateThreadRequest{Messages: &msgs}})
				if err != nil {
					return err
				}
				var evs []event
				err = scanEvents(resp.Body, func(ev event) bool { evs = append(evs, ev); return true })
				_ = resp.Body.Close()
				if err != nil {
					return err
				}
				if len(evs) < 2 || evs[len(evs)-1].name != "done" {
					return fmt.Errorf("stream %d: %v", i, names(evs))
				}
				var run gen.RunObject
				if err := json.Unmarshal(evs[len(evs)-2].data, &run); err != nil {
					return err
				}
				if run.Status == gen.RunObjectStatusRequiresAction {
					call := run.RequiredAction.SubmitToolOutputs.ToolCalls[0]
					out := "ok"
					resp, err := x.c.ClientWithResponses.SubmitToolOutputsToRun(x.ctx, run.ThreadId, run.Id, gen.SubmitToolOutputsRunRequest{Stream: &tr,
						ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &call.Id, Output: &out}}})
					if err != nil {
						return err
					}
					evs = nil
					err = scanEvents(resp.Body, func(ev event) bool { evs = append(evs, ev); return true })
					_ = resp.Body.Close()
					if err != nil {
						return err
					}
					if err := json.Unmarshal(evs[len(evs)-2].data, &run); err != nil {
						return err
					}
				}
				if run.Status != gen.RunObjectStatusCompleted {
					return fmt.Errorf("run %d ended %s", i, run.Status)
				}
				return nil
			}()
		}()
		// Readers at the same time.
		go func() {
			_, err := x.c.ListAssistantsWithResponse(x.ctx, nil)
			errs <- err
		}()
	}
	for range 2 * n {
		require.NoError(t, <-errs)
	}
}
