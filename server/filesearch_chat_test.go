package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// With the Chat Completions backend, file_search is a function the model
// can call, also with --drop-unsupported-tools, a tool_choice naming
// file_search forces it, and file_search outputs go back as tool messages.
func TestChatBackendFileSearchMapping(t *testing.T) {
	fsTool := cbUnion[gen.AssistantTool](t, `{"type":"file_search"}`)
	ciTool := cbUnion[gen.AssistantTool](t, `{"type":"code_interpreter"}`)
	namedFS := cbUnion[gen.AssistantsApiToolChoiceOption](t, `{"type":"file_search"}`)
	search := &server.FileSearch{VectorStoreIDs: []string{"vs_1"}, MaxNumResults: 20, Ranker: "auto"}
	toolNames := func(t *testing.T, b map[string]any) []string {
		var names []string
		tools, _ := b["tools"].([]any)
		for _, tl := range tools {
			names = append(names, tl.(map[string]any)["function"].(map[string]any)["name"].(string))
		}
		return names
	}
	tests := []struct {
		name  string
		drop  bool
		in    *server.ModelInput
		check func(t *testing.T, b map[string]any)
	}{
		{name: "offered after the functions", in: &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fnTool("f"), fsTool}},
			Functions: []gen.FunctionObject{{Name: "f"}}, FileSearch: search},
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, []string{"f", "file_search"}, toolNames(t, b))
				fn := b["tools"].([]any)[1].(map[string]any)["function"].(map[string]any)
				assert.JSONEq(t, `{"type":"object","properties":{"query":{"type":"string","description":"What to search for, in the words the files would use."}},"required":["query"]}`, jsonOf(t, fn["parameters"]))
				assert.Contains(t, fn["description"], "【0:1†name.md】")
			}},
		{name: "kept with drop-unsupported-tools, code_interpreter dropped", drop: true,
			in: &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{ciTool, fsTool}}, FileSearch: search},
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, []string{"file_search"}, toolNames(t, b))
			}},
		{name: "tool_choice file_search forces the function",
			in: &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fsTool}, ToolChoice: &namedFS}, FileSearch: search},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `{"type":"function","function":{"name":"file_search"}}`, jsonOf(t, b["tool_choice"]))
			}},
		{name: "nothing to search: not offered, no error",
			in: &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fsTool}}},
			check: func(t *testing.T, b map[string]any) {
				assert.Nil(t, b["tools"])
			}},
		{name: "results go back as a tool message",
			in: &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fsTool}}, FileSearch: search,
				Messages: []gen.MessageObject{cbMsg(t, "user", "what do penguins eat?")},
				ToolOutputs: []server.ToolOutput{{Call: server.ToolCall{ID: "call_1", Name: server.FileSearchToolName, Arguments: `{"query":"penguins eat"}`},
					Output: "【0:0†p.md】 (score 1.000)\nPenguins eat krill.", Results: []server.FileSearchResult{{FileID: "file-1", Filename: "p.md", Score: 1, Text: "Penguins eat krill."}}}}},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `[{"role":"user","content":"what do penguins eat?"},
					{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"file_search","arguments":"{\"query\":\"penguins eat\"}"}}]},
					{"role":"tool","tool_call_id":"call_1","content":"【0:0†p.md】 (score 1.000)\nPenguins eat krill."}]`, jsonOf(t, b["messages"]))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeChat(t, textReply(1, 1, "ok"))
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), DropUnsupportedTools: tt.drop})
			_, err := m.Respond(t.Context(), tt.in, func(string) {})
			require.NoError(t, err)
			require.Len(t, fake.requests(), 1)
			tt.check(t, fake.requests()[0])
		})
	}
}

// Through the server: the backend model calls file_search, the server
// searches (no requires_action), sends the results back as a tool message,
// and the model's citation becomes an annotation matching the text.
func TestChatBackendFileSearchThroughServer(t *testing.T) {
	fake := newFakeChat(t,
		toolReply("call_fs1", "file_search", `{"query":"penguins eat"}`),
		textReply(30, 8, "Emperor penguins eat krill ", "【0:0†source】", "."))
	srv := cbServer(t, fake)
	x := newRT(t, srv)
	f := upload(t, x.ctx, x.c, "penguins.md", "Emperor penguins eat krill and fish.")
	vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{f.Id}})
	require.NoError(t, err)
	a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)},
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}}})
	th := x.thread("What do penguins eat?")
	run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, gen.RunObjectStatusCompleted, run.Status, "last_error: %+v", run.LastError)

	reqs := fake.requests()
	require.Len(t, reqs, 2)
	msgs := reqs[1]["messages"].([]any)
	last := msgs[len(msgs)-1].(map[string]any)
	assert.Equal(t, "tool", last["role"])
	assert.Equal(t, "call_fs1", last["tool_call_id"])
	assert.Contains(t, last["content"], "【0:0†penguins.md】")
	assert.Contains(t, last["content"], "Emperor penguins eat krill and fish.")

	ms := x.messages(th)
	text, files := checkCitations(t, ms[len(ms)-1])
	assert.Equal(t, "Emperor penguins eat krill 【0:0†penguins.md】.", text)
	assert.Equal(t, []string{f.Id}, files)
	steps := x.steps(th, run.Id)
	require.Len(t, steps, 2)
	calls := fileSearchCalls(t, steps[0])
	require.Len(t, calls, 1)
	assert.Equal(t, "call_fs1", calls[0].Id)
	require.NotNil(t, steps[0].Usage)
	assert.Equal(t, 18, steps[0].Usage.TotalTokens, "the search round's usage")
	require.NotNil(t, run.Usage)
	assert.Equal(t, 18+38, run.Usage.TotalTokens)
}

// max_prompt_tokens counts real tokens: with o200k_base, single digits
// separated by spaces are a token per byte (59 tokens here), four times
// what four bytes per token says (15), which kept both messages.
func TestChatBackendPromptTokensCounted(t *testing.T) {
	digits := strings.TrimSpace(strings.Repeat("7 ", 30)) // 59 bytes, 59 tokens
	fake := newFakeChat(t, textReply(1, 1, "ok"))
	m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
	in := &server.ModelInput{Run: gen.RunObject{Model: "gpt-4o", MaxPromptTokens: cbPtr(20)},
		Messages: []gen.MessageObject{cbMsg(t, "user", digits), cbMsg(t, "user", "newest")}}
	_, err := m.Respond(t.Context(), in, func(string) {})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"role":"user","content":"newest"}]`, jsonOf(t, fake.requests()[0]["messages"]))

	// With room for both, both go.
	fake = newFakeChat(t, textReply(1, 1, "ok"))
	m = server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
	in.Run.MaxPromptTokens = cbPtr(70) // 3+59 and 3+2
	_, err = m.Respond(t.Context(), in, func(string) {})
	require.NoError(t, err)
	assert.Len(t, fake.requests()[0]["messages"], 2)

	// The run's tool rounds (here a long file_search output) count against
	// the same budget: the oldest message goes again.
	fake = newFakeChat(t, textReply(1, 1, "ok"))
	m = server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
	in.ToolOutputs = []server.ToolOutput{{Call: server.ToolCall{ID: "call_1", Name: server.FileSearchToolName, Arguments: `{"query":"x"}`},
		Output: strings.Repeat("krill ", 40)}}
	_, err = m.Respond(t.Context(), in, func(string) {})
	require.NoError(t, err)
	msgs := fake.requests()[0]["messages"].([]any)
	require.Len(t, msgs, 3, "newest, the tool call and its output: %s", jsonOf(t, msgs))
	assert.Equal(t, map[string]any{"role": "user", "content": "newest"}, msgs[0])
}
