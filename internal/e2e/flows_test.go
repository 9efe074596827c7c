package e2e

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
)

// flows are the end-to-end flows every store must pass, each on a client
// of a running server.
var flows = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, c *assistants.Client)
}{
	{"assistant", flowAssistant},
	{"thread and messages", flowThreadMessages},
	{"run to completed", flowRunCompleted},
	{"tool call with submit", flowToolCall},
	{"streaming", flowStreaming},
	{"files", flowFiles},
	{"vector store", flowVectorStore},
	{"thread lock", flowThreadLock},
}

// runFlows runs every flow as a subtest against c.
func runFlows(t *testing.T, c *assistants.Client) {
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			f.run(t, ctx, c)
		})
	}
}

// weatherTool is the function tool of the flows' assistants.
var weatherTool = func() gen.AssistantTool {
	var tool gen.AssistantTool
	if err := tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "get_weather"}}); err != nil {
		panic(err)
	}
	return tool
}()

// newClient returns a client of the API at base (".../v1") that retries
// nothing, so a test sees each reply.
func newClient(t testing.TB, base string) *assistants.Client {
	t.Helper()
	c, err := assistants.New(assistants.WithBaseURL(base), assistants.WithAPIKey("sk-e2e"), assistants.WithMaxRetries(0))
	require.NoError(t, err)
	return c
}

func createAssistant(t testing.TB, ctx context.Context, c *assistants.Client, name string) gen.AssistantObject {
	t.Helper()
	tools := []gen.AssistantTool{weatherTool}
	a, err := assistants.Result[gen.AssistantObject](c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Name: &name, Tools: &tools}))
	require.NoError(t, err)
	return *a
}

func createThread(t testing.TB, ctx context.Context, c *assistants.Client, texts ...string) gen.ThreadObject {
	t.Helper()
	var msgs []gen.CreateMessageRequest
	for _, s := range texts {
		msgs = append(msgs, assistants.UserMessage(s))
	}
	th, err := assistants.Result[gen.ThreadObject](c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{Messages: &msgs}))
	require.NoError(t, err)
	return *th
}

func addMessage(t testing.TB, ctx context.Context, c *assistants.Client, threadID, text string) gen.MessageObject {
	t.Helper()
	m, err := assistants.Result[gen.MessageObject](c.CreateMessageWithResponse(ctx, threadID, assistants.UserMessage(text)))
	require.NoError(t, err)
	return *m
}

func createRun(t testing.TB, ctx context.Context, c *assistants.Client, threadID, assistantID string) gen.RunObject {
	t.Helper()
	r, err := assistants.Result[gen.RunObject](c.CreateRunWithResponse(ctx, threadID, nil, gen.CreateRunRequest{AssistantId: assistantID}))
	require.NoError(t, err)
	return *r
}

// terminal reports whether a run in status s has ended or waits for the
// caller.
func terminal(s gen.RunObjectStatus) bool {
	switch s {
	case "queued", "in_progress", "cancelling":
		return false
	}
	return true
}

// waitRun polls the run (every 10ms, until ctx ends) until it is no longer
// queued, in progress or cancelling, and returns it.
func waitRun(t testing.TB, ctx context.Context, c *assistants.Client, threadID, runID string) gen.RunObject {
	t.Helper()
	var last gen.RunObject
	for {
		r, err := assistants.Result[gen.RunObject](c.GetRunWithResponse(ctx, threadID, runID))
		if err == nil {
			last = *r
			if terminal(r.Status) {
				return *r
			}
		} else if ctx.Err() == nil {
			require.NoError(t, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s still %q when the wait ended: %v", runID, last.Status, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// messageTexts lists a thread's messages oldest first as "role: text".
func messageTexts(t testing.TB, ctx context.Context, c *assistants.Client, threadID string) []string {
	t.Helper()
	asc := gen.ListMessagesParamsOrder("asc")
	var out []string
	for m, err := range helpers.Messages(ctx, c, threadID, &gen.ListMessagesParams{Order: &asc}) {
		require.NoError(t, err)
		out = append(out, string(m.Role)+": "+helpers.MessageText(m))
	}
	return out
}

// submit answers every tool call of a run in requires_action with output
// (the call's arguments echoed into it) and returns the run.
func submit(t testing.TB, ctx context.Context, c *assistants.Client, run gen.RunObject, output func(call gen.RunToolCallObject) string) gen.RunObject {
	t.Helper()
	require.Equal(t, gen.RunObjectStatus("requires_action"), run.Status)
	require.NotNil(t, run.RequiredAction)
	var outs []gen.SubmitToolOutputsRunRequestToolOutput
	for _, call := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		outs = append(outs, gen.SubmitToolOutputsRunRequestToolOutput{ToolCallId: assistants.Ptr(call.Id), Output: assistants.Ptr(output(call))})
	}
	r, err := assistants.Result[gen.RunObject](c.SubmitToolOutputsToRunWithResponse(ctx, run.ThreadId, run.Id, gen.SubmitToolOutputsRunRequest{ToolOutputs: outs}))
	require.NoError(t, err)
	return *r
}

func flowAssistant(t *testing.T, ctx context.Context, c *assistants.Client) {
	a := createAssistant(t, ctx, c, "flow assistant")
	assert.True(t, strings.HasPrefix(a.Id, "asst_"), a.Id)
	g, err := assistants.Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, a.Id))
	require.NoError(t, err)
	assert.Equal(t, a, *g)

	m, err := assistants.Result[gen.AssistantObject](c.ModifyAssistantWithResponse(ctx, a.Id, gen.ModifyAssistantRequest{Name: assistants.Ptr("renamed")}))
	require.NoError(t, err)
	require.NotNil(t, m.Name)
	assert.Equal(t, "renamed", *m.Name)
	assert.Len(t, m.Tools, 1, "the tools are kept")

	found := false
	for x, err := range helpers.Assistants(ctx, c, nil) {
		require.NoError(t, err)
		found = found || x.Id == a.Id
	}
	assert.True(t, found, "the assistant is listed")

	d, err := c.DeleteAssistantWithResponse(ctx, a.Id)
	require.NoError(t, err)
	require.NotNil(t, d.JSON200, "body: %s", d.Body)
	assert.True(t, d.JSON200.Deleted)
	g2, err := c.GetAssistantWithResponse(ctx, a.Id)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, g2.StatusCode(), "body: %s", g2.Body)
}

func flowThreadMessages(t *testing.T, ctx context.Context, c *assistants.Client) {
	th := createThread(t, ctx, c, "first")
	m2 := addMessage(t, ctx, c, th.Id, "second")
	for i := range 25 {
		addMessage(t, ctx, c, th.Id, fmt.Sprintf("more %02d", i))
	}
	texts := messageTexts(t, ctx, c, th.Id)
	require.Len(t, texts, 27)
	assert.Equal(t, []string{"user: first", "user: second", "user: more 00"}, texts[:3])
	assert.Equal(t, "user: more 24", texts[26])

	// One page of 5 after the second message, oldest first.
	asc := gen.ListMessagesParamsOrder("asc")
	lim := 5
	page, err := assistants.Result[gen.ListMessagesResponse](c.ListMessagesWithResponse(ctx, th.Id, &gen.ListMessagesParams{Order: &asc, Limit: &lim, After: &m2.Id}))
	require.NoError(t, err)
	require.Len(t, page.Data, 5)
	assert.True(t, page.HasMore)
	assert.Equal(t, "more 00", helpers.MessageText(page.Data[0]))

	g, err := assistants.Result[gen.MessageObject](c.GetMessageWithResponse(ctx, th.Id, m2.Id))
	require.NoError(t, err)
	assert.Equal(t, "second", helpers.MessageText(*g))

	md := gen.Metadata{"k": "v"}
	_, err = assistants.Result[gen.ThreadObject](c.ModifyThreadWithResponse(ctx, th.Id, gen.ModifyThreadRequest{Metadata: &md}))
	require.NoError(t, err)
	gt, err := assistants.Result[gen.ThreadObject](c.GetThreadWithResponse(ctx, th.Id))
	require.NoError(t, err)
	require.NotNil(t, gt.Metadata)
	assert.Equal(t, md, *gt.Metadata)

	d, err := c.DeleteThreadWithResponse(ctx, th.Id)
	require.NoError(t, err)
	require.NotNil(t, d.JSON200, "body: %s", d.Body)
	gm, err := c.GetMessageWithResponse(ctx, th.Id, m2.Id)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, gm.StatusCode(), "a deleted thread's messages are gone: %s", gm.Body)
}

func flowRunCompleted(t *testing.T, ctx context.Context, c *assistants.Client) {
	a := createAssistant(t, ctx, c, "runner")
	th := createThread(t, ctx, c, "hello there")
	r := createRun(t, ctx, c, th.Id, a.Id)
	assert.Equal(t, gen.RunObjectStatus("queued"), r.Status)
	done := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), done.Status, "last error: %+v", done.LastError)
	assert.NotNil(t, done.CompletedAt)
	assert.Equal(t, []string{"user: hello there", "assistant: You said: hello there"}, messageTexts(t, ctx, c, th.Id))

	steps, err := assistants.Result[gen.ListRunStepsResponse](c.ListRunStepsWithResponse(ctx, th.Id, r.Id, nil))
	require.NoError(t, err)
	require.Len(t, steps.Data, 1)
	assert.Equal(t, gen.RunStepObjectStatus("completed"), steps.Data[0].Status)

	runs, err := assistants.Result[gen.ListRunsResponse](c.ListRunsWithResponse(ctx, th.Id, nil))
	require.NoError(t, err)
	require.Len(t, runs.Data, 1)
	assert.Equal(t, r.Id, runs.Data[0].Id)
}

func flowToolCall(t *testing.T, ctx context.Context, c *assistants.Client) {
	a := createAssistant(t, ctx, c, "tools")
	th := createThread(t, ctx, c, `please get_weather {"city":"Paris"}`)
	r := createRun(t, ctx, c, th.Id, a.Id)
	waiting := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), waiting.Status, "last error: %+v", waiting.LastError)
	calls := waiting.RequiredAction.SubmitToolOutputs.ToolCalls
	require.Len(t, calls, 1)
	assert.Equal(t, "get_weather", calls[0].Function.Name)
	assert.JSONEq(t, `{"city":"Paris"}`, calls[0].Function.Arguments)

	// The call is handed out with the same id on every read.
	again := waitRun(t, ctx, c, th.Id, r.Id)
	assert.Equal(t, calls[0].Id, again.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id)

	submit(t, ctx, c, waiting, func(gen.RunToolCallObject) string { return `{"temp_c":21}` })
	done := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), done.Status, "last error: %+v", done.LastError)
	assert.Equal(t, []string{`user: please get_weather {"city":"Paris"}`, `assistant: get_weather returned: {"temp_c":21}`}, messageTexts(t, ctx, c, th.Id))

	// The run steps name the same call.
	var ids []string
	for st, err := range helpers.RunSteps(ctx, c, th.Id, r.Id, nil) {
		require.NoError(t, err)
		if d, err := st.StepDetails.AsRunStepDetailsToolCallsObject(); err == nil && d.Type == "tool_calls" {
			for _, tc := range d.ToolCalls {
				if fn, err := tc.AsRunStepDetailsToolCallsFunctionObject(); err == nil && fn.Type == "function" {
					ids = append(ids, fn.Id)
				}
			}
		}
	}
	assert.Equal(t, []string{calls[0].Id}, ids)
}

func flowStreaming(t *testing.T, ctx context.Context, c *assistants.Client) {
	a := createAssistant(t, ctx, c, "streamer")
	th := createThread(t, ctx, c, `please get_weather {"city":"Oslo"}`)
	reg, err := helpers.NewRegistry(helpers.RawFunc(gen.FunctionObject{Name: "get_weather"}, func(_ context.Context, args string) (string, error) {
		return `{"args":` + args + `,"temp_c":-3}`, nil
	}))
	require.NoError(t, err)
	var events []string
	var text strings.Builder
	acc := &helpers.Accumulator{
		OnEvent:     func(ev helpers.StreamEvent) { events = append(events, ev.Name) },
		OnTextDelta: func(_, s string) { text.WriteString(s) },
	}
	run, err := helpers.StreamRunTools(ctx, c, th.Id, gen.CreateRunRequest{AssistantId: a.Id}, reg, acc)
	require.NoError(t, err)
	require.Equal(t, gen.RunObjectStatus("completed"), run.Status)
	want := `get_weather returned: {"args":{"city":"Oslo"},"temp_c":-3}`
	assert.Equal(t, want, text.String(), "the streamed deltas")
	for _, e := range []string{"thread.run.created", "thread.run.requires_action", "thread.message.delta", "thread.run.completed"} {
		assert.Contains(t, events, e)
	}
	assert.Less(t, slices.Index(events, "thread.run.requires_action"), slices.Index(events, "thread.run.completed"))
	assert.Equal(t, []string{`user: please get_weather {"city":"Oslo"}`, "assistant: " + want}, messageTexts(t, ctx, c, th.Id))
}

// uploadFile uploads data as a file for assistants.
func uploadFile(t testing.TB, ctx context.Context, c *assistants.Client, name string, data []byte) gen.OpenAIFile {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("purpose", "assistants"))
	fw, err := mw.CreateFormFile("file", name)
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	f, err := assistants.Result[gen.OpenAIFile](c.CreateFileWithBodyWithResponse(ctx, mw.FormDataContentType(), &buf))
	require.NoError(t, err)
	return *f
}

// fileBytes is a file of n bytes that are not all alike, over several of
// the SQL stores' chunks when n is large.
func fileBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func flowFiles(t *testing.T, ctx context.Context, c *assistants.Client) {
	for _, n := range []int{0, 17, 600 << 10} { // empty, small, over two 256 KiB chunks
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := fileBytes(n)
			f := uploadFile(t, ctx, c, fmt.Sprintf("data-%d.bin", n), data)
			assert.Equal(t, n, f.Bytes)
			g, err := assistants.Result[gen.OpenAIFile](c.RetrieveFileWithResponse(ctx, f.Id))
			require.NoError(t, err)
			assert.Equal(t, f, *g)
			d, err := c.DownloadFileWithResponse(ctx, f.Id)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, d.StatusCode())
			assert.True(t, bytes.Equal(data, d.Body), "downloaded %d bytes, uploaded %d", len(d.Body), n)

			found := false
			for x, err := range helpers.Files(ctx, c, nil) {
				require.NoError(t, err)
				found = found || x.Id == f.Id
			}
			assert.True(t, found, "the file is listed")

			del, err := c.DeleteFileWithResponse(ctx, f.Id)
			require.NoError(t, err)
			require.NotNil(t, del.JSON200, "body: %s", del.Body)
			d, err = c.DownloadFileWithResponse(ctx, f.Id)
			require.NoError(t, err)
			assert.Equal(t, http.StatusNotFound, d.StatusCode())
		})
	}
}

// waitVectorStore polls a vector store until it is no longer in progress.
func waitVectorStore(t testing.TB, ctx context.Context, c *assistants.Client, id string) gen.VectorStoreObject {
	t.Helper()
	for {
		vs, err := assistants.Result[gen.VectorStoreObject](c.GetVectorStoreWithResponse(ctx, id))
		require.NoError(t, err)
		if vs.Status != "in_progress" {
			return *vs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vector store %s still in progress: %v", id, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func flowVectorStore(t *testing.T, ctx context.Context, c *assistants.Client) {
	good := uploadFile(t, ctx, c, "penguins.md", []byte("Penguins live in Antarctica.\n\nThey eat krill and fish."))
	other := uploadFile(t, ctx, c, "cats.txt", []byte("Cats sleep most of the day."))
	vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("docs"), FileIds: &[]string{good.Id, other.Id}}))
	require.NoError(t, err)
	done := waitVectorStore(t, ctx, c, vs.Id)
	assert.Equal(t, gen.VectorStoreObjectStatus("completed"), done.Status)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, done.FileCounts)

	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("what do penguins eat"))
	res, err := assistants.Result[gen.VectorStoreSearchResultsPage](c.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q}))
	require.NoError(t, err)
	require.NotEmpty(t, res.Data)
	assert.Equal(t, good.Id, res.Data[0].FileId, "the penguin file ranks first")
	var content strings.Builder
	for _, part := range res.Data[0].Content {
		content.WriteString(part.Text)
	}
	assert.Contains(t, content.String(), "krill")

	// A third file added later, then removed.
	third := uploadFile(t, ctx, c, "owls.txt", []byte("Owls hunt at night."))
	_, err = assistants.Result[gen.VectorStoreFileObject](c.CreateVectorStoreFileWithResponse(ctx, vs.Id, gen.CreateVectorStoreFileRequest{FileId: third.Id}))
	require.NoError(t, err)
	done = waitVectorStore(t, ctx, c, vs.Id)
	assert.Equal(t, 3, done.FileCounts.Total)
	_, err = assistants.Result[gen.DeleteVectorStoreFileResponse](c.DeleteVectorStoreFileWithResponse(ctx, vs.Id, third.Id))
	require.NoError(t, err)
	files, err := assistants.Result[gen.ListVectorStoreFilesResponse](c.ListVectorStoreFilesWithResponse(ctx, vs.Id, nil))
	require.NoError(t, err)
	assert.Len(t, files.Data, 2)
}

func flowThreadLock(t *testing.T, ctx context.Context, c *assistants.Client) {
	a := createAssistant(t, ctx, c, "locker")
	th := createThread(t, ctx, c, "please get_weather")
	r := createRun(t, ctx, c, th.Id, a.Id)
	// While the run is active, no message and no second run.
	m, err := c.CreateMessageWithResponse(ctx, th.Id, assistants.UserMessage("interrupt"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, m.StatusCode(), "body: %s", m.Body)
	r2, err := c.CreateRunWithResponse(ctx, th.Id, nil, gen.CreateRunRequest{AssistantId: a.Id})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, r2.StatusCode(), "body: %s", r2.Body)
	waiting := waitRun(t, ctx, c, th.Id, r.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), waiting.Status)
	cancelled, err := assistants.Result[gen.RunObject](c.CancelRunWithResponse(ctx, th.Id, r.Id))
	require.NoError(t, err)
	assert.Contains(t, []gen.RunObjectStatus{"cancelling", "cancelled"}, cancelled.Status)
	end := waitRun(t, ctx, c, th.Id, r.Id)
	assert.Equal(t, gen.RunObjectStatus("cancelled"), end.Status)
	addMessage(t, ctx, c, th.Id, "after the run")
}
