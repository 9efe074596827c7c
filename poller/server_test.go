package poller_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// Against the embedded server, with its run steps on the bubble's clock:
// the poller waits for queued/in_progress and sees completed; the virtual
// time taken matches the server's step delays and the poll interval.
func TestAgainstEmbeddedServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(300*time.Millisecond))
		c := srv.Client
		ctx := t.Context()
		asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
		require.NoError(t, err)
		msgs := []gen.CreateMessageRequest{userMessage("hi")}
		start := time.Now()
		run, err := poller.CreateThreadAndRunAndPoll(ctx, c, gen.CreateThreadAndRunRequest{
			AssistantId: asst.Id, Thread: &gen.CreateThreadRequest{Messages: &msgs},
		}, poller.WithInterval(100*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		elapsed := time.Since(start)
		assert.Zero(t, elapsed%(100*time.Millisecond), "polls happen on the interval grid: %v", elapsed)
		assert.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
		assert.Equal(t, "You said: hi", lastReply(ctx, c, run.ThreadId))

		// Unknown ids: 404 ends the poll (the deadline only guards against a
		// poller that would keep going).
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err = poller.New(c, run.ThreadId, "run_missing").PollUntilDone(dctx)
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 404, apiErr.StatusCode)
	})
}
