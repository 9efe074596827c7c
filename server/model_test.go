package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

func textMsg(role gen.MessageObjectRole, text string) gen.MessageObject {
	c := gen.MessageContent{Type: gen.MessageContentTypeText, Text: gen.MessageContentText{Value: text, Annotations: []gen.MessageContentTextAnnotation{}}}
	return gen.MessageObject{Role: role, Content: []gen.MessageContent{c}}
}

func toolChoice(t *testing.T, raw string) *gen.AssistantsApiToolChoiceOption {
	t.Helper()
	var tc gen.AssistantsApiToolChoiceOption
	require.NoError(t, tc.UnmarshalJSON([]byte(raw)))
	return &tc
}

func TestScriptedRules(t *testing.T) {
	user := func(s string) gen.MessageObject { return textMsg(gen.MessageObjectRoleUser, s) }
	fns := func(names ...string) []gen.FunctionObject {
		var out []gen.FunctionObject
		for _, n := range names {
			out = append(out, gen.FunctionObject{Name: n})
		}
		return out
	}
	cap3 := 3
	cases := []struct {
		name      string
		in        server.ModelInput
		text      string
		calls     []server.ToolCall
		truncated bool
	}{
		{name: "echo", in: server.ModelInput{Messages: []gen.MessageObject{user("hello there")}},
			text: "You said: hello there"},
		{name: "echo of the latest user message only",
			in:   server.ModelInput{Messages: []gen.MessageObject{user("first"), textMsg(gen.MessageObjectRoleAssistant, "reply"), user("second")}},
			text: "You said: second"},
		{name: "nothing to echo", in: server.ModelInput{}, text: "You said nothing."},
		{name: "a named tool with arguments",
			in:    server.ModelInput{Functions: fns("get_weather"), Messages: []gen.MessageObject{user(`please get_weather {"city": "Paris"}`)}},
			calls: []server.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}},
		{name: "a named tool without arguments",
			in:    server.ModelInput{Functions: fns("get_weather"), Messages: []gen.MessageObject{user("get_weather now")}},
			calls: []server.ToolCall{{Name: "get_weather", Arguments: "{}"}}},
		{name: "names must be whole words",
			in:   server.ModelInput{Functions: fns("get_weather"), Messages: []gen.MessageObject{user("my_get_weather2 please")}},
			text: "You said: my_get_weather2 please"},
		{name: "names in an older message do not count",
			in:   server.ModelInput{Functions: fns("lookup"), Messages: []gen.MessageObject{user("lookup"), user("thanks")}},
			text: "You said: thanks"},
		{name: "several tools in order of appearance",
			in:    server.ModelInput{Functions: fns("a_fn", "b_fn"), Run: gen.RunObject{ParallelToolCalls: true}, Messages: []gen.MessageObject{user(`b_fn {"x":1} then a_fn`)}},
			calls: []server.ToolCall{{Name: "b_fn", Arguments: `{"x":1}`}, {Name: "a_fn", Arguments: "{}"}}},
		{name: "parallel_tool_calls false keeps the first",
			in:    server.ModelInput{Functions: fns("a_fn", "b_fn"), Messages: []gen.MessageObject{user("a_fn b_fn")}},
			calls: []server.ToolCall{{Name: "a_fn", Arguments: "{}"}}},
		{name: "tool_choice none",
			in:   server.ModelInput{Functions: fns("lookup"), Run: gen.RunObject{ToolChoice: toolChoice(t, `"none"`)}, Messages: []gen.MessageObject{user("lookup")}},
			text: "You said: lookup"},
		{name: "tool_choice required",
			in:    server.ModelInput{Functions: fns("lookup", "other"), Run: gen.RunObject{ToolChoice: toolChoice(t, `"required"`)}, Messages: []gen.MessageObject{user("hi")}},
			calls: []server.ToolCall{{Name: "lookup", Arguments: "{}"}}},
		{name: "tool_choice names a function",
			in: server.ModelInput{Functions: fns("lookup", "other"), Run: gen.RunObject{ToolChoice: toolChoice(t, `{"type":"function","function":{"name":"other"}}`)},
				Messages: []gen.MessageObject{user(`lookup and other {"q":2}`)}},
			calls: []server.ToolCall{{Name: "other", Arguments: `{"q":2}`}}},
		{name: "outputs are quoted",
			in: server.ModelInput{Functions: fns("get_weather"), Messages: []gen.MessageObject{user("get_weather")},
				ToolOutputs: []server.ToolOutput{{Call: server.ToolCall{ID: "call_1", Name: "get_weather", Arguments: "{}"}, Output: `{"temp":21}`}}},
			text: `get_weather returned: {"temp":21}`},
		{name: "only the latest round is quoted",
			in: server.ModelInput{Functions: fns("a", "b"), ToolOutputs: []server.ToolOutput{
				{Call: server.ToolCall{Name: "a"}, Output: "1", Round: 0},
				{Call: server.ToolCall{Name: "b"}, Output: "2", Round: 1},
				{Call: server.ToolCall{Name: "a"}, Output: "3", Round: 1}}},
			text: "b returned: 2\na returned: 3"},
		{name: "max_completion_tokens cuts the reply",
			in:   server.ModelInput{Run: gen.RunObject{MaxCompletionTokens: &cap3}, Messages: []gen.MessageObject{user("one two three four")}},
			text: "You said: one ", truncated: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var deltas []string
			out, err := server.Scripted().Respond(t.Context(), &tc.in, func(d string) { deltas = append(deltas, d) })
			require.NoError(t, err)
			assert.Equal(t, tc.text, out.Text)
			assert.Equal(t, tc.calls, out.ToolCalls)
			assert.Equal(t, tc.truncated, out.Truncated)
			assert.Equal(t, tc.text, strings.Join(deltas, ""), "the deltas add up to the text")
			if tc.text != "" {
				assert.Equal(t, len(strings.Fields(tc.text)), len(deltas), "one delta per word")
				assert.Equal(t, len(strings.Fields(tc.text)), out.Usage.CompletionTokens)
			} else {
				assert.Empty(t, deltas)
				assert.Positive(t, out.Usage.CompletionTokens)
			}
		})
	}
}

func TestScriptedUsageCountsWords(t *testing.T) {
	in := server.ModelInput{Run: gen.RunObject{Instructions: "be nice"}, Messages: []gen.MessageObject{textMsg("user", "a b c")}}
	out, err := server.Scripted().Respond(t.Context(), &in, func(string) {})
	require.NoError(t, err)
	assert.Equal(t, server.Usage{PromptTokens: 5, CompletionTokens: 5}, out.Usage)
	assert.Equal(t, 10, out.Usage.Total())
}

func TestScriptedStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := server.Scripted().Respond(ctx, &server.ModelInput{}, func(string) {})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestScriptModel(t *testing.T) {
	t.Run("turns in order, then an error", func(t *testing.T) {
		m := server.Script(server.Turn{Text: "one two"}, server.Turn{ToolCalls: []server.ToolCall{{Name: "f"}}})
		assert.Equal(t, 2, m.Remaining())
		var deltas []string
		out, err := m.Respond(t.Context(), &server.ModelInput{}, func(d string) { deltas = append(deltas, d) })
		require.NoError(t, err)
		assert.Equal(t, "one two", out.Text)
		assert.Equal(t, []string{"one ", "two"}, deltas)
		out, err = m.Respond(t.Context(), &server.ModelInput{}, func(string) {})
		require.NoError(t, err)
		assert.Equal(t, []server.ToolCall{{Name: "f"}}, out.ToolCalls)
		_, err = m.Respond(t.Context(), &server.ModelInput{}, func(string) {})
		var me *server.ModelError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, server.ModelErrServer, me.Code)
		assert.Len(t, m.Inputs(), 3)
		assert.Equal(t, 0, m.Remaining())
	})
	t.Run("delay follows the context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := server.Script(server.Turn{Text: "late", Delay: time.Hour})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			start := time.Now()
			_, err := m.Respond(ctx, &server.ModelInput{}, func(string) {})
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, time.Minute, time.Since(start))
		})
	})
	t.Run("errors wrap", func(t *testing.T) {
		cause := errors.New("backend said no")
		m := server.Script(server.Turn{Err: &server.ModelError{Code: server.ModelErrRateLimit, Message: "Slow down.", Err: cause}})
		_, err := m.Respond(t.Context(), &server.ModelInput{}, func(string) {})
		assert.ErrorIs(t, err, cause)
		var me *server.ModelError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, "Slow down.", me.Message)
	})
}

func TestModelFunc(t *testing.T) {
	var m server.Model = server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		emit(in.LastUserText())
		return &server.ModelOutput{Text: in.LastUserText()}, nil
	})
	in := server.ModelInput{Messages: []gen.MessageObject{textMsg("user", "ping")}}
	var got string
	out, err := m.Respond(t.Context(), &in, func(d string) { got += d })
	require.NoError(t, err)
	assert.Equal(t, "ping", out.Text)
	assert.Equal(t, "ping", got)
}
