package helpers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// stFixtureEvents decodes a whole fixture, which must end with done.
func stFixtureEvents(t *testing.T, name string) []StreamEvent {
	t.Helper()
	evs, err := stDecodeAll(t, bytes.NewReader(stFixture(t, name)))
	require.NoError(t, err)
	return evs
}

// stAddUntil adds events to acc until (not including) the first event named
// stop, and returns the rest.
func stAddUntil(t *testing.T, acc *Accumulator, evs []StreamEvent, stop string) []StreamEvent {
	t.Helper()
	for i, ev := range evs {
		if ev.Name == stop {
			return evs[i:]
		}
		require.NoError(t, acc.Add(ev))
	}
	return nil
}

// stDecodeEvent decodes one event from its name and JSON data.
func stDecodeEvent(t *testing.T, name, data string) StreamEvent {
	t.Helper()
	s := NewStream(t.Context(), stNopCloser(strings.NewReader("event: "+name+"\ndata: "+data+"\n\n")), nil)
	require.True(t, s.Next(), "%v", s.Err())
	ev := s.Event()
	require.NoError(t, s.Close())
	return ev
}

func stNopCloser(r *strings.Reader) *stCloseCounter { return &stCloseCounter{Reader: r} }

const stTextRunFinal = "Hello! The answer is 42【4:0†source】."

func TestAccumulatorTextRun(t *testing.T) {
	evs := stFixtureEvents(t, "text_run.sse")
	var acc Accumulator
	var streamed strings.Builder
	var events []string
	acc.OnTextDelta = func(messageID, text string) {
		assert.Equal(t, "msg_123", messageID)
		streamed.WriteString(text)
	}
	acc.OnEvent = func(ev StreamEvent) { events = append(events, ev.Name) }

	rest := stAddUntil(t, &acc, evs, EventMessageCompleted)
	// Before the completed event the text and the annotation come from the deltas.
	msg, ok := acc.Message("msg_123")
	require.True(t, ok)
	assert.Equal(t, stTextRunFinal, MessageText(msg))
	assert.Equal(t, stTextRunFinal, streamed.String())
	assert.Equal(t, gen.MessageObjectStatus("in_progress"), msg.Status)
	require.Len(t, msg.Content, 1)
	txt := msg.Content[0].Text
	require.Equal(t, gen.MessageContentTypeText, msg.Content[0].Type)
	require.Len(t, txt.Annotations, 1)
	cite := txt.Annotations[0]
	require.Equal(t, gen.MessageContentTextAnnotationTypeFileCitation, cite.Type)
	assert.Equal(t, "file_abc", cite.FileCitation.FileId)
	assert.Equal(t, 23, cite.StartIndex)
	assert.Equal(t, "【4:0†source】", cite.Text)
	raw, _ := json.Marshal(txt.Annotations[0])
	assert.NotContains(t, string(raw), `"index"`, "the delta's index is not part of the annotation")
	assert.Equal(t, gen.RunObjectStatus("in_progress"), acc.Run().Status)

	for _, ev := range rest {
		require.NoError(t, acc.Add(ev))
	}
	msgs := acc.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, gen.MessageObjectStatus("completed"), msgs[0].Status)
	assert.Equal(t, stTextRunFinal, MessageText(msgs[0]), "the completed snapshot agrees with the deltas")
	run := acc.Run()
	require.NotNil(t, run)
	assert.Equal(t, gen.RunObjectStatus("completed"), run.Status)
	require.NotNil(t, run.Usage)
	assert.Equal(t, 29, run.Usage.TotalTokens)
	steps := acc.RunSteps()
	require.Len(t, steps, 1)
	assert.Equal(t, gen.RunStepObjectStatus("completed"), steps[0].Status)
	assert.Nil(t, acc.Thread())
	assert.Equal(t, stEventNames(evs), events, "OnEvent sees every event")
}

func TestAccumulatorThreadAndRun(t *testing.T) {
	var acc Accumulator
	var streamed strings.Builder
	acc.OnTextDelta = func(_, text string) { streamed.WriteString(text) }
	s := NewStream(t.Context(), stNopCloser(strings.NewReader(string(stFixture(t, "thread_and_run.sse")))), nil)
	require.NoError(t, acc.Consume(s))
	require.NotNil(t, acc.Thread())
	assert.Equal(t, "thread_123", acc.Thread().Id)
	msgs := acc.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "Hi there\nmultiline", MessageText(msgs[0]))
	assert.Equal(t, MessageText(msgs[0]), streamed.String())
}

func TestAccumulatorToolCalls(t *testing.T) {
	evs := stFixtureEvents(t, "tool_call.sse")
	var acc Accumulator
	args := map[int]string{}
	var firsts []ToolCallDelta
	acc.OnToolCallDelta = func(d ToolCallDelta) {
		assert.Equal(t, "step_tool", d.StepID)
		args[d.Index] += d.Arguments
		if d.ID != "" {
			firsts = append(firsts, d)
		}
	}
	for _, ev := range evs {
		require.NoError(t, acc.Add(ev))
	}
	assert.Equal(t, map[int]string{0: `{"city":"Paris"}`, 1: `{}`}, args)
	require.Len(t, firsts, 2)
	assert.Equal(t, ToolCallDelta{StepID: "step_tool", Index: 0, Type: "function", ID: "call_weather", Name: "get_weather"}, firsts[0])
	assert.Equal(t, "get_time", firsts[1].Name)

	steps := acc.RunSteps()
	require.Len(t, steps, 1)
	details, err := steps[0].StepDetails.AsRunStepDetailsToolCallsObject()
	require.NoError(t, err)
	require.Len(t, details.ToolCalls, 2)
	fn, err := details.ToolCalls[0].AsRunStepDetailsToolCallsFunctionObject()
	require.NoError(t, err)
	assert.Equal(t, "call_weather", fn.Id)
	assert.Equal(t, "get_weather", fn.Function.Name)
	assert.Equal(t, `{"city":"Paris"}`, fn.Function.Arguments)
	assert.Nil(t, fn.Function.Output)
	fn2, err := details.ToolCalls[1].AsRunStepDetailsToolCallsFunctionObject()
	require.NoError(t, err)
	assert.Equal(t, "call_time", fn2.Id)

	run := acc.Run()
	require.NotNil(t, run)
	assert.Equal(t, gen.RunObjectStatus("requires_action"), run.Status)
	require.NotNil(t, run.RequiredAction)
	assert.Len(t, run.RequiredAction.SubmitToolOutputs.ToolCalls, 2)
}

func TestAccumulatorCodeInterpreter(t *testing.T) {
	evs := stFixtureEvents(t, "code_interpreter.sse")
	var acc Accumulator
	var input strings.Builder
	acc.OnToolCallDelta = func(d ToolCallDelta) { input.WriteString(d.Input) }
	rest := stAddUntil(t, &acc, evs, EventRunStepCompleted)
	assert.Equal(t, "print(6*7)", input.String())

	check := func(t *testing.T) {
		steps := acc.RunSteps()
		require.Len(t, steps, 1)
		details, err := steps[0].StepDetails.AsRunStepDetailsToolCallsObject()
		require.NoError(t, err)
		require.Len(t, details.ToolCalls, 1)
		ci, err := details.ToolCalls[0].AsRunStepDetailsToolCallsCodeObject()
		require.NoError(t, err)
		assert.Equal(t, "call_code", ci.Id)
		assert.Equal(t, "print(6*7)", ci.CodeInterpreter.Input)
		require.Len(t, ci.CodeInterpreter.Outputs, 2)
		logs, err := ci.CodeInterpreter.Outputs[0].AsRunStepDetailsToolCallsCodeOutputLogsObject()
		require.NoError(t, err)
		assert.Equal(t, "42\n", logs.Logs)
		img, err := ci.CodeInterpreter.Outputs[1].AsRunStepDetailsToolCallsCodeOutputImageObject()
		require.NoError(t, err)
		assert.Equal(t, "file_img", img.Image.FileId)
		for _, o := range ci.CodeInterpreter.Outputs {
			raw, _ := o.MarshalJSON()
			assert.NotContains(t, string(raw), `"index"`)
		}
	}
	t.Run("from the deltas", check)
	for _, ev := range rest {
		require.NoError(t, acc.Add(ev))
	}
	t.Run("from the completed snapshot", check)
	assert.Equal(t, gen.RunStepObjectStatus("completed"), acc.RunSteps()[0].Status)
}

func TestAccumulatorRefusalAndFailedRun(t *testing.T) {
	evs := stFixtureEvents(t, "run_failed.sse")
	var acc Accumulator
	var streamed strings.Builder
	acc.OnTextDelta = func(_, text string) { streamed.WriteString(text) }
	rest := stAddUntil(t, &acc, evs, EventMessageIncomplete)
	msg, ok := acc.Message("msg_123")
	require.True(t, ok)
	require.Len(t, msg.Content, 1)
	require.Equal(t, gen.MessageContentTypeRefusal, msg.Content[0].Type)
	require.NotNil(t, msg.Content[0].Refusal)
	assert.Equal(t, "I cannot help.", *msg.Content[0].Refusal)
	assert.Equal(t, "I cannot help.", streamed.String())
	assert.Empty(t, MessageText(msg), "a refusal is not text")

	for _, ev := range rest {
		require.NoError(t, acc.Add(ev))
	}
	msg, _ = acc.Message("msg_123")
	assert.Equal(t, gen.MessageObjectStatus("incomplete"), msg.Status)
	require.NotNil(t, msg.IncompleteDetails)
	run := acc.Run()
	assert.Equal(t, gen.RunObjectStatus("failed"), run.Status)
	require.NotNil(t, run.LastError)
	assert.Equal(t, "Something went wrong.", run.LastError.Message)
}

func TestAccumulatorDeltaBeforeSnapshot(t *testing.T) {
	var acc Accumulator
	require.NoError(t, acc.Add(stDecodeEvent(t, EventMessageDelta,
		`{"id":"msg_new","object":"thread.message.delta","delta":{"role":"assistant","content":[{"index":1,"type":"text","text":{"value":"second"}},{"index":0,"type":"text","text":{"value":"first "}}]}}`)))
	msg, ok := acc.Message("msg_new")
	require.True(t, ok)
	assert.Equal(t, "msg_new", msg.Id)
	assert.Equal(t, gen.MessageObjectRole("assistant"), msg.Role)
	assert.Equal(t, "first second", MessageText(msg))
	require.NoError(t, acc.Add(stDecodeEvent(t, EventRunStepDelta,
		`{"id":"step_new","object":"thread.run.step.delta","delta":{"step_details":{"type":"message_creation","message_creation":{"message_id":"msg_new"}}}}`)))
	steps := acc.RunSteps()
	require.Len(t, steps, 1)
	mc, err := steps[0].StepDetails.AsRunStepDetailsMessageCreationObject()
	require.NoError(t, err)
	assert.Equal(t, "msg_new", mc.MessageCreation.MessageId)
	assert.Nil(t, acc.Run())
	_, ok = acc.Message("msg_other")
	assert.False(t, ok)
}

func TestAccumulatorResultsAreCopies(t *testing.T) {
	var acc Accumulator
	for _, ev := range stFixtureEvents(t, "text_run.sse")[:10] {
		require.NoError(t, acc.Add(ev))
	}
	before := MessageText(acc.Messages()[0])
	run := acc.Run()
	run.Status = "mutated"
	assert.NotEqual(t, gen.RunObjectStatus("mutated"), acc.Run().Status)
	require.NoError(t, acc.Add(stDecodeEvent(t, EventMessageDelta,
		`{"id":"msg_123","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":" more"}}]}}`)))
	assert.Equal(t, before+" more", MessageText(acc.Messages()[0]))
}

func TestAccumulatorBadDeltas(t *testing.T) {
	tests := []struct {
		name, event, data, wantErr string
	}{
		{"negative content index", EventMessageDelta,
			`{"id":"m","delta":{"content":[{"index":-1,"type":"text","text":{"value":"x"}}]}}`, "index -1 out of range"},
		{"huge content index", EventMessageDelta,
			`{"id":"m","delta":{"content":[{"index":100000000,"type":"text","text":{"value":"x"}}]}}`, "index 100000000 out of range"},
		{"content without index", EventMessageDelta,
			`{"id":"m","delta":{"content":[{"type":"text","text":{"value":"x"}}]}}`, "without index"},
		{"annotation without index", EventMessageDelta,
			`{"id":"m","delta":{"content":[{"index":0,"type":"text","text":{"annotations":[{"type":"file_path"}]}}]}}`, "annotation without index"},
		{"huge tool call index", EventRunStepDelta,
			`{"id":"s","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":99999999,"type":"function"}]}}}`, "out of range"},
		{"fractional tool call index", EventRunStepDelta,
			`{"id":"s","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":0.5,"type":"function"}]}}}`, "not an integer"},
		{"huge nested output index", EventRunStepDelta,
			`{"id":"s","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":0,"type":"code_interpreter","code_interpreter":{"outputs":[{"index":5000,"type":"logs"}]}}]}}}`, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var acc Accumulator
			called := false
			acc.OnEvent = func(StreamEvent) { called = true }
			err := acc.Add(stDecodeEvent(t, tt.event, tt.data))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), "helpers: accumulate "+tt.event)
			assert.False(t, called, "OnEvent is not called for an event that failed")
			// The accumulator stays usable.
			_ = acc.Messages()
			_ = acc.RunSteps()
		})
	}
}

func TestAccumulatorConsumeStopsOnBadDelta(t *testing.T) {
	in := "event: thread.message.delta\ndata: {\"id\":\"m\",\"delta\":{\"content\":[{\"index\":-5,\"type\":\"text\"}]}}\n\nevent: done\ndata: [DONE]\n\n"
	body := stNopCloser(strings.NewReader(in))
	s := NewStream(t.Context(), body, nil)
	var acc Accumulator
	err := acc.Consume(s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "out of range")
	assert.Equal(t, int32(1), body.closes.Load())
}

func TestMessageText(t *testing.T) {
	mk := func(parts ...string) gen.MessageObject {
		var m gen.MessageObject
		for _, p := range parts {
			var c gen.MessageContent
			require.NoError(t, json.Unmarshal([]byte(p), &c))
			m.Content = append(m.Content, c)
		}
		return m
	}
	tests := []struct {
		name string
		msg  gen.MessageObject
		want string
	}{
		{"empty", gen.MessageObject{}, ""},
		{"one text part", mk(`{"type":"text","text":{"value":"hello","annotations":[]}}`), "hello"},
		{"parts joined in order, images skipped", mk(
			`{"type":"text","text":{"value":"a","annotations":[]}}`,
			`{"type":"image_file","image_file":{"file_id":"file_1"}}`,
			`{"type":"text","text":{"value":"b","annotations":[]}}`), "ab"},
		{"refusal skipped", mk(`{"type":"refusal","refusal":"no"}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MessageText(tt.msg))
		})
	}
}

func TestAccumulatorImagePartDelta(t *testing.T) {
	var acc Accumulator
	require.NoError(t, acc.Add(stDecodeEvent(t, EventMessageDelta,
		`{"id":"m","delta":{"content":[{"index":0,"type":"text","text":{"value":"see: "}},{"index":1,"type":"image_file","image_file":{"file_id":"file_img"}}]}}`)))
	msg, _ := acc.Message("m")
	require.Len(t, msg.Content, 2)
	require.Equal(t, gen.MessageContentTypeImageFile, msg.Content[1].Type)
	assert.Equal(t, "file_img", msg.Content[1].ImageFile.FileId)
	raw, _ := json.Marshal(msg.Content[1])
	assert.NotContains(t, string(raw), `"index"`)
	assert.Equal(t, "see: ", MessageText(msg))
}

// FuzzAccumulator feeds arbitrary streams through a Stream and an
// Accumulator: nothing may panic, and the results must stay readable.
func FuzzAccumulator(f *testing.F) {
	for _, name := range []string{"text_run.sse", "tool_call.sse", "code_interpreter.sse", "run_failed.sse", "all_events.sse"} {
		b, err := os.ReadFile(filepath.Join("testdata", "streams", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("event: thread.message.delta\ndata: {\"id\":\"m\",\"delta\":{\"content\":[{\"index\":3,\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{\"index\":0,\"type\":\"text\",\"text\":{\"annotations\":[{\"index\":2,\"text\":\"a\"}]}}]}}\n\n"))
	f.Add([]byte("event: thread.run.step.delta\ndata: {\"id\":\"s\",\"delta\":{\"step_details\":{\"type\":\"tool_calls\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":[1]}},{\"index\":0,\"function\":\"x\"}]}}}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var acc Accumulator
		acc.OnTextDelta = func(string, string) {}
		acc.OnToolCallDelta = func(ToolCallDelta) {}
		s := NewStream(context.Background(), io.NopCloser(bytes.NewReader(in)), nil)
		for s.Next() {
			_ = acc.Add(s.Event())
		}
		for _, m := range acc.Messages() {
			_ = MessageText(m)
			if _, err := json.Marshal(m); err != nil {
				t.Fatalf("message does not marshal: %v", err)
			}
		}
		for _, st := range acc.RunSteps() {
			if _, err := json.Marshal(st); err != nil {
				t.Fatalf("run step does not marshal: %v", err)
			}
		}
		_ = acc.Run()
		_ = acc.Thread()
	})
}
