package server_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// TestCloseLeavesNoGoroutine leaves runs in every active state, with an
// event stream open, and checks that Close stops everything.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	started := make(chan struct{}, 1)
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		if strings.Contains(in.LastUserText(), "block") {
			emit("waiting ")
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return server.Scripted().Respond(ctx, in, emit)
	})
	srv := server.New(server.WithStepDelay(0), server.WithModel(model))
	hs := httptest.NewServer(srv.Handler())
	c, err := assistants.New(assistants.WithBaseURL(hs.URL+"/v1"), assistants.WithAPIKey("sk-test"),
		assistants.WithMaxRetries(0), assistants.WithHTTPClient(hs.Client()))
	require.NoError(t, err)
	x := &rt{t: t, ctx: t.Context(), c: c}
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("lookup")}})

	// A run waiting for tool outputs.
	waiting := x.thread("lookup")
	run := x.run(waiting, gen.CreateRunRequest{AssistantId: a.Id})
	assert.Equal(t, gen.RunObjectStatusRequiresAction, waitForEnd(t, x, waiting, run.Id).Status)

	// A run stuck in the model, streamed.
	blocked := x.thread("block")
	tr := true
	resp, err := c.ClientWithResponses.CreateRun(t.Context(), blocked, nil, gen.CreateRunRequest{AssistantId: a.Id, Stream: &tr})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var streamErr error
	var evs []event
	streaming := make(chan struct{}) // closed at the stream's first event
	var once sync.Once
	ended := make(chan struct{})
	wg.Go(func() {
		defer close(ended)
		defer resp.Body.Close()
		streamErr = scanEvents(resp.Body, func(ev event) bool {
			evs = append(evs, ev)
			once.Do(func() { close(streaming) })
			return true
		})
	})
	<-started
	select { // the stream is open and delivering when Close comes
	case <-streaming:
	case <-ended:
		t.Fatalf("the stream ended before its first event: %v", streamErr)
	}

	// A queued run that a long step delay holds (on a second server).
	slow := server.New()
	sh := httptest.NewServer(slow.Handler())
	sc, err := assistants.New(assistants.WithBaseURL(sh.URL+"/v1"), assistants.WithAPIKey("sk-test"),
		assistants.WithMaxRetries(0), assistants.WithHTTPClient(sh.Client()))
	require.NoError(t, err)
	sx := &rt{t: t, ctx: t.Context(), c: sc}
	sa := sx.assistant(gen.CreateAssistantRequest{})
	sx.run(sx.thread("hi"), gen.CreateRunRequest{AssistantId: sa.Id})

	require.NoError(t, srv.Close())
	require.NoError(t, slow.Close())
	wg.Wait()
	assert.NoError(t, streamErr, "the stream ends cleanly when the server closes")
	require.NotEmpty(t, evs)
	assert.NotEqual(t, "done", evs[len(evs)-1].name, "a stream cut by Close has no done event")

	// After Close, new runs are refused; the runs stay where they were.
	r := x.createRun(x.thread("hi"), gen.CreateRunRequest{AssistantId: a.Id})
	assert.Equal(t, 503, r.StatusCode(), "body: %s", r.Body)
	assert.Equal(t, gen.RunObjectStatusRequiresAction, x.get(waiting, run.Id).Status)

	hs.Close()
	sh.Close()
}
