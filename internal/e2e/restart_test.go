package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// longText is a user message whose echo the scripted model streams word by
// word, one step delay per word: a run that stays in progress for a while.
func longText(words int) string {
	w := make([]string, words)
	for i := range w {
		w[i] = "word" + string(rune('a'+i%26))
	}
	return strings.Join(w, " ")
}

// TestRestartSQLite starts serve on SQLite, creates everything (a completed
// run, a run waiting in requires_action, a run in progress, an uploaded
// file, a vector store), kills the process with SIGKILL, starts it again on
// the same --data and checks that everything is there, that the waiting run
// finishes after the submit and that the run that was in progress finishes
// with one assistant message (its dead attempt's partial message is not
// duplicated), as does a run created just before the kill (its job was
// committed with it).
func TestRestartSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a1 := startServe(t, append([]string{"--data", dir, "--step-delay", "5ms"}, pickupFlags...)...)
	require.Equal(t, []string{"data: " + dir}, a1.Lines)
	c := newClient(t, a1.URL)

	asst := createAssistant(t, ctx, c, "survivor")
	done := createThread(t, ctx, c, "hello before the crash")
	r1 := createRun(t, ctx, c, done.Id, asst.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), waitRun(t, ctx, c, done.Id, r1.Id).Status)

	tools := createThread(t, ctx, c, `please get_weather {"city":"Paris"}`)
	r2 := createRun(t, ctx, c, tools.Id, asst.Id)
	waiting := waitRun(t, ctx, c, tools.Id, r2.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), waiting.Status)
	call := waiting.RequiredAction.SubmitToolOutputs.ToolCalls[0]

	data := fileBytes(700 << 10)
	file := uploadFile(t, ctx, c, "big.bin", data)
	doc := uploadFile(t, ctx, c, "penguins.md", []byte("Penguins eat krill."))
	vs, err := assistants.Result[gen.VectorStoreObject](c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("kept"), FileIds: &[]string{doc.Id}}))
	require.NoError(t, err)
	require.Equal(t, gen.VectorStoreObjectStatus("completed"), waitVectorStore(t, ctx, c, vs.Id).Status)

	long := longText(300) // 300 words at 5ms: about 1.5s of streaming
	busy := createThread(t, ctx, c, long)
	r3 := createRun(t, ctx, c, busy.Id, asst.Id)
	for { // until the run is in progress, then kill
		r, err := assistants.Result[gen.RunObject](c.GetRunWithResponse(ctx, busy.Id, r3.Id))
		require.NoError(t, err)
		require.False(t, terminal(r.Status), "the run ended before the kill: %s", r.Status)
		if r.Status == "in_progress" {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // into the reply's streaming
	// A run killed right after its creation was answered: its job must
	// have been committed with it.
	fresh := createThread(t, ctx, c, "created just before the kill")
	r5 := createRun(t, ctx, c, fresh.Id, asst.Id)
	require.NoError(t, a1.Kill())

	a2 := startServe(t, append([]string{"--data", dir, "--step-delay", "5ms"}, pickupFlags...)...)
	c = newClient(t, a2.URL)

	got, err := assistants.Result[gen.AssistantObject](c.GetAssistantWithResponse(ctx, asst.Id))
	require.NoError(t, err)
	assert.Equal(t, asst, *got)
	assert.Equal(t, []string{"user: hello before the crash", "assistant: You said: hello before the crash"}, messageTexts(t, ctx, c, done.Id))
	g1, err := assistants.Result[gen.RunObject](c.GetRunWithResponse(ctx, done.Id, r1.Id))
	require.NoError(t, err)
	assert.Equal(t, gen.RunObjectStatus("completed"), g1.Status)

	f, err := c.DownloadFileWithResponse(ctx, file.Id)
	require.NoError(t, err)
	require.Equal(t, 200, f.StatusCode(), "body: %.200s", f.Body)
	assert.True(t, len(f.Body) == len(data) && string(f.Body) == string(data), "the file's %d bytes after the restart (got %d)", len(data), len(f.Body))
	gvs := waitVectorStore(t, ctx, c, vs.Id)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Total: 1}, gvs.FileCounts)
	var q gen.VectorStoreSearchQuery
	require.NoError(t, q.FromVectorStoreSearchQueryText("krill"))
	res, err := assistants.Result[gen.VectorStoreSearchResultsPage](c.SearchVectorStoreWithResponse(ctx, vs.Id, gen.VectorStoreSearchRequest{Query: q}))
	require.NoError(t, err)
	require.NotEmpty(t, res.Data)
	assert.Equal(t, doc.Id, res.Data[0].FileId)

	// The waiting run still waits, for the same call, and finishes after
	// the submit.
	still := waitRun(t, ctx, c, tools.Id, r2.Id)
	require.Equal(t, gen.RunObjectStatus("requires_action"), still.Status)
	require.Len(t, still.RequiredAction.SubmitToolOutputs.ToolCalls, 1)
	assert.Equal(t, call.Id, still.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id, "the same call id after the restart")
	submit(t, ctx, c, still, func(gen.RunToolCallObject) string { return `{"temp_c":19}` })
	fin := waitRun(t, ctx, c, tools.Id, r2.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), fin.Status, "last error: %+v", fin.LastError)
	assert.Equal(t, []string{`user: please get_weather {"city":"Paris"}`, `assistant: get_weather returned: {"temp_c":19}`}, messageTexts(t, ctx, c, tools.Id))

	// The run that was in progress is picked up and finishes, with one
	// assistant message.
	pctx, pcancel := context.WithTimeout(ctx, pickupWithin)
	defer pcancel()
	end := waitRun(t, pctx, c, busy.Id, r3.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), end.Status, "last error: %+v", end.LastError)
	assert.Equal(t, []string{"user: " + long, "assistant: You said: " + long}, messageTexts(t, ctx, c, busy.Id))

	end5 := waitRun(t, pctx, c, fresh.Id, r5.Id)
	require.Equal(t, gen.RunObjectStatus("completed"), end5.Status, "the run created just before the kill: last error: %+v", end5.LastError)
	assert.Equal(t, []string{"user: created just before the kill", "assistant: You said: created just before the kill"}, messageTexts(t, ctx, c, fresh.Id))

	// The restarted server makes new objects as before.
	th := createThread(t, ctx, c, "after the crash")
	r4 := createRun(t, ctx, c, th.Id, asst.Id)
	assert.Equal(t, gen.RunObjectStatus("completed"), waitRun(t, ctx, c, th.Id, r4.Id).Status)
}
