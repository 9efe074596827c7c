package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// idEvent is a server-sent event with its id ("" when it has none).
type idEvent struct {
	id, name, data string
}

// scanIDEvents reads the events of r until EOF or a read error (returned;
// nil at a clean EOF).
func scanIDEvents(r io.Reader, each func(idEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var ev idEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" && !each(ev) {
				return nil
			}
			ev = idEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return sc.Err()
}

// keyedPost posts body to path with an Idempotency-Key and, when lastID is
// not empty, a Last-Event-ID.
func keyedPost(t *testing.T, ctx context.Context, srv *assistantstest.Server, path, body, key, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+srv.APIKey)
	req.Header.Set("Idempotency-Key", key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := srv.HTTP.Client().Do(req)
	require.NoError(t, err)
	return resp
}

func readIDEvents(t *testing.T, resp *http.Response) []idEvent {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var evs []idEvent
	require.NoError(t, scanIDEvents(strings.NewReader(string(b)), func(ev idEvent) bool { evs = append(evs, ev); return true }))
	return evs
}

func (x *rt) runCount(thread string) int {
	x.t.Helper()
	r, err := x.c.ListRunsWithResponse(x.ctx, thread, nil)
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200)
	return len(r.JSON200.Data)
}

// TestStreamRetryReattaches: a repeat of a streamed createRun with the same
// Idempotency-Key gets the same run's events (the same ids and data), from
// the start or after the Last-Event-ID it names; no second run is made.
func TestStreamRetryReattaches(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0))
	x := newRT(t, srv)
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hello there")
	body := `{"assistant_id":"` + a.Id + `","stream":true}`
	path := "/threads/" + thread + "/runs"

	first := readIDEvents(t, keyedPost(t, x.ctx, srv, path, body, "k1", ""))
	require.Greater(t, len(first), 6)
	require.Equal(t, "thread.run.created", first[0].name)
	require.Equal(t, "done", first[len(first)-1].name)
	for i, ev := range first[:len(first)-1] {
		assert.Equal(t, strconv.Itoa(i+1), ev.id, "ids are dense from 1: %s", ev.name)
	}

	resp := keyedPost(t, x.ctx, srv, path, body, "k1", "")
	assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
	again := readIDEvents(t, resp)
	assert.Equal(t, first, again, "a retry gets the stream again from the start")

	after := readIDEvents(t, keyedPost(t, x.ctx, srv, path, body, "k1", first[3].id))
	assert.Equal(t, first[4:], after, "a retry naming Last-Event-ID resumes after it")

	last := first[len(first)-2].id
	assert.Equal(t, []idEvent{{name: "done", data: "[DONE]"}}, readIDEvents(t, keyedPost(t, x.ctx, srv, path, body, "k1", last)))

	bad := keyedPost(t, x.ctx, srv, path, body, "k1", "nope")
	b, _ := io.ReadAll(bad.Body)
	_ = bad.Body.Close()
	e := apiError(t, http.StatusBadRequest, b, bad.StatusCode)
	assert.Equal(t, "Last-Event-ID", param(e))

	assert.Equal(t, 1, x.runCount(thread), "no second run")
}

// TestStreamRetryReattachesLive: a repeat that arrives while the first
// stream is still going gets the events so far and then the rest live.
func TestStreamRetryReattachesLive(t *testing.T) {
	gate := make(chan struct{})
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		emit("before ")
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		emit("after")
		return &server.ModelOutput{Text: "before after"}, nil
	})
	srv := assistantstest.NewServer(t, server.WithStepDelay(0), server.WithModel(model))
	x := newRT(t, srv)
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hi")
	body := `{"assistant_id":"` + a.Id + `","stream":true}`
	path := "/threads/" + thread + "/runs"

	resp1 := keyedPost(t, x.ctx, srv, path, body, "live", "")
	defer resp1.Body.Close()
	br := bufio.NewReader(resp1.Body)
	var firstPart []idEvent
	require.NoError(t, scanIDEvents(br, func(ev idEvent) bool {
		firstPart = append(firstPart, ev)
		return ev.name != "thread.message.delta"
	}))

	resp2 := keyedPost(t, x.ctx, srv, path, body, "live", "")
	close(gate)
	second := readIDEvents(t, resp2)
	var rest []idEvent
	require.NoError(t, scanIDEvents(br, func(ev idEvent) bool { rest = append(rest, ev); return true }))
	assert.Equal(t, append(firstPart, rest...), second)
	assert.Equal(t, "done", second[len(second)-1].name)
	assert.Equal(t, 1, x.runCount(thread))
}

// TestStreamRetryReattachesThreadAndRunAndSubmit: createThreadAndRun
// replays its thread.created first; submitToolOuputsToRun replays the
// events from its submission on, not the run's earlier ones.
func TestStreamRetryReattachesThreadAndRunAndSubmit(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0))
	x := newRT(t, srv)
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})
	body := `{"assistant_id":"` + a.Id + `","stream":true,"thread":{"messages":[{"role":"user","content":"please lookup"}]}}`

	first := readIDEvents(t, keyedPost(t, x.ctx, srv, "/threads/runs", body, "tr", ""))
	require.Equal(t, "thread.created", first[0].name)
	assert.Empty(t, first[0].id, "thread.created is not one of the run's events")
	assert.Equal(t, "thread.run.requires_action", first[len(first)-2].name)
	again := readIDEvents(t, keyedPost(t, x.ctx, srv, "/threads/runs", body, "tr", ""))
	assert.Equal(t, first, again)

	run := decode[gen.RunObject](t, event{data: []byte(first[len(first)-2].data)})
	require.NotNil(t, run.RequiredAction)
	call := run.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id
	sbody := `{"stream":true,"tool_outputs":[{"tool_call_id":"` + call + `","output":"42"}]}`
	spath := "/threads/" + run.ThreadId + "/runs/" + run.Id + "/submit_tool_outputs"
	sub := readIDEvents(t, keyedPost(t, x.ctx, srv, spath, sbody, "sub", ""))
	require.Equal(t, "thread.run.queued", sub[0].name)
	assert.Equal(t, "thread.run.completed", sub[len(sub)-2].name)
	n, _ := strconv.Atoi(first[len(first)-2].id)
	assert.Equal(t, strconv.Itoa(n+1), sub[0].id, "ids go on from the first stream's")
	assert.Equal(t, sub, readIDEvents(t, keyedPost(t, x.ctx, srv, spath, sbody, "sub", "")))
	assert.Equal(t, sub[3:], readIDEvents(t, keyedPost(t, x.ctx, srv, spath, sbody, "sub", sub[2].id)))

	// The first stream, asked again after its end, still ends at requires_action.
	assert.Equal(t, first[len(first)-3:], readIDEvents(t, keyedPost(t, x.ctx, srv, "/threads/runs", body, "tr", first[len(first)-4].id)))
	assert.Equal(t, 1, x.runCount(run.ThreadId))
	steps := x.steps(run.ThreadId, run.Id)
	assert.Len(t, steps, 2, "one tool_calls step and one message step")
}

// TestStreamReattachCanBeSwitchedOff: with DisableStreamReattach a repeat
// gets the old 409 idempotency_key_stream_in_use.
func TestStreamReattachCanBeSwitchedOff(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0), func(o *server.Options) { o.DisableStreamReattach = true })
	x := newRT(t, srv)
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("hi")
	body := `{"assistant_id":"` + a.Id + `","stream":true}`
	path := "/threads/" + thread + "/runs"
	readIDEvents(t, keyedPost(t, x.ctx, srv, path, body, "off", ""))
	resp := keyedPost(t, x.ctx, srv, path, body, "off", "")
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	e := apiError(t, http.StatusConflict, b, resp.StatusCode)
	require.NotNil(t, e.Code)
	assert.Equal(t, "idempotency_key_stream_in_use", *e.Code)
	assert.Equal(t, 1, x.runCount(thread))
}
