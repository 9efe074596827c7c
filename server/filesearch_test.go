package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

func fileSearchTool(maxResults int, threshold float32) gen.AssistantTool {
	var tool gen.AssistantTool
	fs := gen.AssistantToolsFileSearch{Type: "file_search"}
	if maxResults > 0 || threshold > 0 {
		ranker := gen.FileSearchRankerAuto
		fs.FileSearch = &gen.AssistantToolsFileSearchOptions{RankingOptions: &gen.FileSearchRankingOptions{Ranker: &ranker, ScoreThreshold: threshold}}
		if maxResults > 0 {
			fs.FileSearch.MaxNumResults = &maxResults
		}
	}
	_ = tool.FromAssistantToolsFileSearch(fs)
	return tool
}

// checkCitations checks, independently of package cite, that every
// file_citation annotation of a message's text names a marker that stands
// in the text exactly at [start_index, end_index) (code points), and
// returns the cited file ids.
func checkCitations(t *testing.T, m gen.MessageObject) (string, []string) {
	t.Helper()
	require.Len(t, m.Content, 1)
	tx := m.Content[0]
	require.Equal(t, gen.MessageContentTypeText, tx.Type)
	runes := []rune(tx.Text.Value)
	var files []string
	for i, a := range tx.Text.Annotations {
		fc := a
		require.Equal(t, gen.MessageContentTextAnnotationTypeFileCitation, fc.Type, "annotation %d", i)
		assert.Equal(t, "file_citation", string(fc.Type))
		require.True(t, 0 <= fc.StartIndex && fc.StartIndex < fc.EndIndex && fc.EndIndex <= len(runes), "annotation %d: [%d,%d) in %d characters", i, fc.StartIndex, fc.EndIndex, len(runes))
		assert.Equal(t, fc.Text, string(runes[fc.StartIndex:fc.EndIndex]), "annotation %d", i)
		assert.True(t, strings.HasPrefix(fc.Text, "【") && strings.HasSuffix(fc.Text, "】") && strings.Contains(fc.Text, "†"), "marker %q", fc.Text)
		files = append(files, fc.FileCitation.FileId)
	}
	return tx.Text.Value, files
}

func fileSearchCalls(t *testing.T, st gen.RunStepObject) []gen.RunStepDetailsToolCallsFileSearchObject {
	t.Helper()
	d, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
	require.NoError(t, err)
	var out []gen.RunStepDetailsToolCallsFileSearchObject
	for _, c := range d.ToolCalls {
		fs, err := c.AsRunStepDetailsToolCallsFileSearchObject()
		require.NoError(t, err)
		require.Equal(t, "file_search", string(fs.Type))
		out = append(out, fs)
	}
	return out
}

// A run with file_search and an assistant vector store: the server searches
// (no requires_action), the run shows a tool_calls step with the
// file_search call, and the answer (the scripted model's rule) cites the
// best file with an annotation whose indices match the text.
func TestFileSearchRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		penguins := upload(t, x.ctx, x.c, "penguins.md", "# Penguins\n\nEmperor penguins eat krill and fish. They breed in the Antarctic winter.")
		whales := upload(t, x.ctx, x.c, "whales.txt", "Blue whales are the largest animals. They eat krill from the sea.")
		vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{penguins.Id, whales.Id}})
		require.NoError(t, err)
		require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
		settle(stepDelay)

		a := x.assistant(gen.CreateAssistantRequest{
			Tools:         &[]gen.AssistantTool{fileSearchTool(0, 0)},
			ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}},
		})
		thread := x.thread("What do emperor penguins eat?")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(10 * stepDelay)
		got := x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusCompleted, got.Status, "last_error: %+v", got.LastError)
		assert.Nil(t, got.RequiredAction)

		msgs := x.messages(thread)
		require.Len(t, msgs, 2)
		text, files := checkCitations(t, msgs[1])
		assert.Equal(t, "Emperor penguins eat krill and fish. 【0:0†penguins.md】", text, "the heading line is left out")
		assert.Equal(t, []string{penguins.Id}, files)

		steps := x.steps(thread, run.Id)
		require.Len(t, steps, 2)
		assert.Equal(t, gen.RunStepObjectTypeToolCalls, steps[0].Type)
		assert.Equal(t, gen.RunStepObjectStatusCompleted, steps[0].Status)
		calls := fileSearchCalls(t, steps[0])
		require.Len(t, calls, 1)
		require.NotNil(t, calls[0].FileSearch.RankingOptions)
		assert.Equal(t, gen.FileSearchRankerAuto, calls[0].FileSearch.RankingOptions.Ranker)
		assert.Nil(t, calls[0].FileSearch.Results, "results only with include[]")
		assert.Equal(t, gen.RunStepObjectTypeMessageCreation, steps[1].Type)

		// With include[], the results and their content.
		inc := []gen.ListRunStepsParamsInclude{"step_details.tool_calls[*].file_search.results[*].content"}
		asc := gen.ListRunStepsParamsOrder("asc")
		lr, err := x.c.ListRunStepsWithResponse(x.ctx, thread, run.Id, &gen.ListRunStepsParams{Order: &asc, Include: &inc})
		require.NoError(t, err)
		require.NotNil(t, lr.JSON200, "body: %s", lr.Body)
		calls = fileSearchCalls(t, lr.JSON200.Data[0])
		require.NotNil(t, calls[0].FileSearch.Results)
		res := *calls[0].FileSearch.Results
		require.Len(t, res, 2, "both files share words with the question")
		assert.Equal(t, penguins.Id, res[0].FileId)
		assert.Equal(t, "penguins.md", res[0].FileName)
		assert.Greater(t, res[0].Score, res[1].Score)
		require.NotNil(t, res[0].Content)
		require.NotEmpty(t, *res[0].Content)
		assert.Contains(t, *(*res[0].Content)[0].Text, "Emperor penguins eat krill")

		ginc := []gen.GetRunStepParamsInclude{"step_details.tool_calls[*].file_search.results[*].content"}
		gs, err := x.c.GetRunStepWithResponse(x.ctx, thread, run.Id, steps[0].Id, &gen.GetRunStepParams{Include: &ginc})
		require.NoError(t, err)
		require.NotNil(t, gs.JSON200, "body: %s", gs.Body)
		require.NotNil(t, fileSearchCalls(t, *gs.JSON200)[0].FileSearch.Results)
		gs, err = x.c.GetRunStepWithResponse(x.ctx, thread, run.Id, steps[0].Id, nil)
		require.NoError(t, err)
		assert.Nil(t, fileSearchCalls(t, *gs.JSON200)[0].FileSearch.Results)

		bad := []gen.GetRunStepParamsInclude{"step_details.everything"}
		gs, err = x.c.GetRunStepWithResponse(x.ctx, thread, run.Id, steps[0].Id, &gen.GetRunStepParams{Include: &bad})
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadRequest, gs.StatusCode(), "body: %s", gs.Body)
	})
}

// The tool's max_num_results and ranking_options, from the run's tools,
// apply to the search and show in the step.
func TestFileSearchRunOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		var ids []string
		for _, f := range []struct{ name, text string }{
			{"a.txt", "Krill are small crustaceans."}, {"b.txt", "Penguins eat krill."}, {"c.txt", "Whales eat krill."},
		} {
			ids = append(ids, upload(t, x.ctx, x.c, f.name, f.text).Id)
		}
		vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &ids})
		require.NoError(t, err)
		settle(stepDelay)
		a := x.assistant(gen.CreateAssistantRequest{
			Tools:         &[]gen.AssistantTool{fileSearchTool(0, 0)},
			ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}},
		})
		inc := []gen.ListRunStepsParamsInclude{"step_details.tool_calls[*].file_search.results[*].content"}
		results := func(tool gen.AssistantTool) ([]gen.RunStepDetailsToolCallsFileSearchResultObject, *gen.RunStepDetailsToolCallsFileSearchRankingOptionsObject) {
			thread := x.thread("krill")
			run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id, Tools: &[]gen.AssistantTool{tool}})
			settle(10 * stepDelay)
			require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
			asc := gen.ListRunStepsParamsOrder("asc")
			lr, err := x.c.ListRunStepsWithResponse(x.ctx, thread, run.Id, &gen.ListRunStepsParams{Order: &asc, Include: &inc})
			require.NoError(t, err)
			require.NotNil(t, lr.JSON200, "body: %s", lr.Body)
			c := fileSearchCalls(t, lr.JSON200.Data[0])[0]
			require.NotNil(t, c.FileSearch.Results)
			return *c.FileSearch.Results, c.FileSearch.RankingOptions
		}
		all, _ := results(fileSearchTool(0, 0))
		require.Len(t, all, 3)
		one, _ := results(fileSearchTool(1, 0))
		assert.Len(t, one, 1)
		cut := (all[0].Score + all[2].Score) / 2 // above the last file's score
		require.Less(t, all[2].Score, all[0].Score)
		high, ro := results(fileSearchTool(0, cut))
		require.NotNil(t, ro)
		assert.InDelta(t, cut, ro.ScoreThreshold, 1e-6)
		assert.NotEmpty(t, high)
		assert.Less(t, len(high), 3)
		for _, r := range high {
			assert.GreaterOrEqual(t, r.Score, cut)
		}
	})
}

// A file attached to a message for file_search goes into a thread vector
// store that expires 7 days after its last activity, and the run cites it.
func TestFileSearchThreadAttachments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		f := upload(t, x.ctx, x.c, "refunds.md", "Refunds are paid within 14 days. Contact support for help.")
		a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)}})
		tool := gen.MessageAttachmentTool{Type: gen.MessageAttachmentToolTypeFileSearch}
		msgs := []gen.CreateMessageRequest{{Role: "user", Content: msgContent("When are refunds paid?"),
			Attachments: &[]gen.MessageAttachment{{FileId: &f.Id, Tools: &[]gen.MessageAttachmentTool{tool}}}}}
		tr, err := x.c.CreateThreadWithResponse(x.ctx, gen.CreateThreadRequest{Messages: &msgs})
		require.NoError(t, err)
		require.NotNil(t, tr.JSON200, "body: %s", tr.Body)
		thread := tr.JSON200.Id
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(10 * stepDelay)
		got := x.get(thread, run.Id)
		require.Equal(t, gen.RunObjectStatusCompleted, got.Status, "last_error: %+v", got.LastError)
		ms := x.messages(thread)
		text, files := checkCitations(t, ms[len(ms)-1])
		assert.Equal(t, "Refunds are paid within 14 days. 【0:0†refunds.md】", text)
		assert.Equal(t, []string{f.Id}, files)

		th, err := x.c.GetThreadWithResponse(x.ctx, thread)
		require.NoError(t, err)
		require.NotNil(t, th.JSON200.ToolResources)
		require.NotNil(t, th.JSON200.ToolResources.FileSearch)
		ids := *th.JSON200.ToolResources.FileSearch.VectorStoreIds
		require.Len(t, ids, 1)
		vs, err := x.c.GetVectorStoreWithResponse(x.ctx, ids[0])
		require.NoError(t, err)
		require.NotNil(t, vs.JSON200.ExpiresAfter)
		assert.Equal(t, 7, vs.JSON200.ExpiresAfter.Days)
		assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Total: 1}, vs.JSON200.FileCounts)

		// Eight days later the store has expired: it is not searched.
		settle(8 * 24 * time.Hour)
		vs, err = x.c.GetVectorStoreWithResponse(x.ctx, ids[0])
		require.NoError(t, err)
		assert.Equal(t, gen.VectorStoreObjectStatusExpired, vs.JSON200.Status)
		_, err = x.c.CreateMessageWithResponse(x.ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent("And exchanges?")})
		require.NoError(t, err)
		run = x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(10 * stepDelay)
		require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
		assert.Equal(t, "You said: And exchanges?", lastText(t, x.messages(thread)))
		assert.Len(t, x.steps(thread, run.Id), 1, "no search step")
	})
}

// Annotations index code points: a file name and text with characters of
// several UTF-8 lengths still give indices that match the text.
func TestFileSearchCitationIndicesUnicode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newRT(t, assistantstest.NewInProcessServer(t))
		f := upload(t, x.ctx, x.c, "café 🐧 notes.txt", "Der Pinguin frisst Krill — 🐧 überall. Zweiter Satz.")
		vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{f.Id}})
		require.NoError(t, err)
		settle(stepDelay)
		a := x.assistant(gen.CreateAssistantRequest{
			Tools:         &[]gen.AssistantTool{fileSearchTool(0, 0)},
			ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}},
		})
		thread := x.thread("Was frisst der Pinguin?")
		run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
		settle(10 * stepDelay)
		require.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
		ms := x.messages(thread)
		text, files := checkCitations(t, ms[len(ms)-1])
		assert.Equal(t, "Der Pinguin frisst Krill — 🐧 überall. 【0:0†café 🐧 notes.txt】", text)
		assert.Equal(t, []string{f.Id}, files)
		assert.NotEqual(t, len(text), utf8.RuneCountInString(text), "the text has multi-byte characters")

		// The raw JSON of the annotation, as a client sees it.
		r, err := x.c.ListMessagesWithResponse(x.ctx, thread, nil)
		require.NoError(t, err)
		var page struct {
			Data []struct {
				Content []struct {
					Text struct {
						Value       string `json:"value"`
						Annotations []struct {
							Text       string `json:"text"`
							StartIndex int    `json:"start_index"`
							EndIndex   int    `json:"end_index"`
						} `json:"annotations"`
					} `json:"text"`
				} `json:"content"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &page))
		tx := page.Data[0].Content[0].Text
		require.Len(t, tx.Annotations, 1)
		ann := tx.Annotations[0]
		assert.Equal(t, ann.Text, string([]rune(tx.Value)[ann.StartIndex:ann.EndIndex]))
	})
}

// The scripted model's file_search rule, round by round.
func TestScriptedFileSearchRule(t *testing.T) {
	user := func(s string) gen.MessageObject { return textMsg(gen.MessageObjectRoleUser, s) }
	fs := &server.FileSearch{VectorStoreIDs: []string{"vs_1"}, MaxNumResults: 20}
	search := server.ToolCall{ID: "call_1", Name: server.FileSearchToolName, Arguments: `{"query":"what do penguins eat?"}`}
	fn := server.ToolCall{ID: "call_2", Name: "get_weather", Arguments: "{}"}
	cases := []struct {
		name  string
		in    server.ModelInput
		text  string
		calls []server.ToolCall
	}{
		{name: "searches for the user's text",
			in:    server.ModelInput{FileSearch: fs, Messages: []gen.MessageObject{user("what do penguins eat?")}},
			calls: []server.ToolCall{{Name: server.FileSearchToolName, Arguments: `{"query":"what do penguins eat?"}`}}},
		{name: "no file_search: echo",
			in:   server.ModelInput{Messages: []gen.MessageObject{user("what do penguins eat?")}},
			text: "You said: what do penguins eat?"},
		{name: "tool_choice none: echo",
			in: server.ModelInput{FileSearch: fs, Run: gen.RunObject{ToolChoice: toolChoice(t, `"none"`)},
				Messages: []gen.MessageObject{user("what do penguins eat?")}},
			text: "You said: what do penguins eat?"},
		{name: "a named function wins",
			in: server.ModelInput{FileSearch: fs, Functions: []gen.FunctionObject{{Name: "get_weather"}},
				Messages: []gen.MessageObject{user("get_weather please")}},
			calls: []server.ToolCall{{Name: "get_weather", Arguments: "{}"}}},
		{name: "answers with the best result's first sentence and its citation",
			in: server.ModelInput{FileSearch: fs, Messages: []gen.MessageObject{user("what do penguins eat?")},
				ToolOutputs: []server.ToolOutput{
					{Call: fn, Output: "sunny", Round: 0},
					{Call: search, Output: "...", Round: 1, Results: []server.FileSearchResult{
						{FileID: "file-1", Filename: "penguins.md", Score: 1, Text: "## Diet\nPenguins eat\n krill! They swim."},
						{FileID: "file-2", Filename: "whales.md", Score: 0.5, Text: "Whales eat krill."},
					}},
				}},
			text: "Penguins eat krill! 【1:0†penguins.md】"},
		{name: "no result",
			in: server.ModelInput{FileSearch: fs, Messages: []gen.MessageObject{user("what do penguins eat?")},
				ToolOutputs: []server.ToolOutput{{Call: search, Output: "No results found."}}},
			text: "I found nothing about that in the files."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := server.Scripted().Respond(t.Context(), &tc.in, func(string) {})
			require.NoError(t, err)
			assert.Equal(t, tc.text, out.Text)
			assert.Equal(t, tc.calls, out.ToolCalls)
		})
	}
}

// Streamed, a file_search run shows the search as a tool_calls step
// (without results), then the cited answer; no requires_action. The server
// of assistantstest.NewServer checks every event against the spec.
func TestFileSearchStream(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	f := upload(t, x.ctx, x.c, "penguins.md", "Emperor penguins eat krill and fish.")
	vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{f.Id}})
	require.NoError(t, err)
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)},
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}}})
	thread := x.thread("What do penguins eat?")
	tr := true
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	evs := readEvents(t, resp)
	want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.completed"}
	want = append(want, messageEvents(7)...) // six words and the marker
	want = append(want, "thread.run.completed", "done")
	require.Equal(t, want, names(evs))
	step := decode[gen.RunStepObject](t, evs[5])
	assert.Equal(t, gen.RunStepObjectTypeToolCalls, step.Type)
	calls := fileSearchCalls(t, step)
	require.Len(t, calls, 1)
	assert.Nil(t, calls[0].FileSearch.Results)
	text, _ := deltaText(t, evs)
	assert.Equal(t, "Emperor penguins eat krill and fish. 【0:0†penguins.md】", text)
	final := decode[gen.MessageObject](t, evs[len(evs)-4])
	got, files := checkCitations(t, final)
	assert.Equal(t, text, got)
	assert.Equal(t, []string{f.Id}, files)
}

// createRun's include[] streams the file_search step with its results.
func TestFileSearchStreamInclude(t *testing.T) {
	x := newRT(t, assistantstest.NewServer(t, server.WithStepDelay(0)))
	f := upload(t, x.ctx, x.c, "penguins.md", "Emperor penguins eat krill and fish.")
	vs, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{f.Id}})
	require.NoError(t, err)
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)},
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}}})
	thread := x.thread("What do penguins eat?")
	tr := true
	inc := []gen.CreateRunParamsInclude{"step_details.tool_calls[*].file_search.results[*].content"}
	resp, err := x.c.ClientWithResponses.CreateRun(x.ctx, thread, &gen.CreateRunParams{Include: &inc}, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	evs := readEvents(t, resp)
	require.Equal(t, "thread.run.step.completed", evs[5].name)
	calls := fileSearchCalls(t, decode[gen.RunStepObject](t, evs[5]))
	require.Len(t, calls, 1)
	require.NotNil(t, calls[0].FileSearch.Results)
	res := *calls[0].FileSearch.Results
	require.Len(t, res, 1)
	assert.Equal(t, "penguins.md", res[0].FileName)
	require.NotNil(t, res[0].Content)
	assert.Equal(t, "Emperor penguins eat krill and fish.", *(*res[0].Content)[0].Text)

	bad := []gen.CreateRunParamsInclude{"everything"}
	r, err := x.c.CreateRunWithResponse(x.ctx, x.thread("hi"), &gen.CreateRunParams{Include: &bad}, gen.CreateRunRequest{AssistantId: a.Id})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, r.StatusCode(), "body: %s", r.Body)
}
