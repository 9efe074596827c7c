package server_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// sqlStores opens a fresh SQLite store and, when PostgreSQL is reachable,
// a PostgreSQL store on a schema of its own (pgtest skips otherwise).
func sqlStores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"SQLite": func(t *testing.T) store.Store {
			st := openSQLiteAt(t, t.TempDir())
			t.Cleanup(func() { st.Close() })
			return st
		},
		"PostgreSQL": func(t *testing.T) store.Store {
			u := pgtest.Schema(t)
			st, err := postgres.Open(t.Context(), u, func(o *postgres.Options) { o.Logger = slog.New(slog.DiscardHandler) })
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// runJobs lists the store's unfinished round and cancel jobs as
// "kind/state".
func runJobs(t *testing.T, ctx context.Context, st store.Store) []string {
	t.Helper()
	jobs, err := st.ListJobs(ctx, "")
	require.NoError(t, err)
	var out []string
	for _, j := range jobs {
		if j.Kind == server.KindRunRound || j.Kind == server.KindRunCancel {
			out = append(out, j.Kind+"/"+j.State)
		}
	}
	return out
}

// waitStatus polls a run until its status is one of want.
func waitStatus(t *testing.T, ctx context.Context, c *assistants.Client, threadID, runID string, want ...gen.RunObjectStatus) gen.RunObject {
	t.Helper()
	for {
		r, err := assistants.Result[gen.RunObject](c.GetRunWithResponse(ctx, threadID, runID))
		require.NoError(t, err)
		if slices.Contains(want, r.Status) {
			return *r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s is %s, want %v", runID, r.Status, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitNoRunJobs polls until the store has no round or cancel job left.
func waitNoRunJobs(t *testing.T, ctx context.Context, st store.Store, what string) {
	t.Helper()
	for {
		left := runJobs(t, ctx, st)
		if len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: jobs left: %v", what, left)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func newThreadAndRun(t *testing.T, ctx context.Context, c *assistants.Client, asstID, text string) gen.RunObject {
	t.Helper()
	msgs := []gen.CreateMessageRequest{{Role: "user", Content: msgContent(text)}}
	r, err := assistants.Result[gen.RunObject](c.CreateThreadAndRunWithResponse(ctx, gen.CreateThreadAndRunRequest{
		AssistantId: asstID, Thread: &gen.CreateThreadRequest{Messages: &msgs}}))
	require.NoError(t, err)
	return *r
}

// TestInlineRunsDeleteTheirBackups: on the SQL stores a round (or cancel)
// job runs inline in the process that committed it, with a backup job
// scheduled RescueAfter ahead in case that process dies. A round that
// ends its run (completed, requires_action), a round stopped by a cancel,
// and the cancel job itself delete their backups: the job table keeps no
// scheduled row to fire, uselessly, minutes later.
func TestInlineRunsDeleteTheirBackups(t *testing.T) {
	for name, open := range sqlStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			st := open(t)
			_, c, _ := serveOn(t, st, paced)
			asst, err := assistants.Result[gen.AssistantObject](c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o",
				Tools: &[]gen.AssistantTool{fnTool("get_weather")}}))
			require.NoError(t, err)

			r := newThreadAndRun(t, ctx, c, asst.Id, "hello")
			waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusCompleted)
			assert.Empty(t, runJobs(t, ctx, st), "a completed run's backup is deleted with its last write")

			r = newThreadAndRun(t, ctx, c, asst.Id, `please get_weather {"city":"Rome"}`)
			w := waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusRequiresAction)
			assert.Empty(t, runJobs(t, ctx, st), "a run waiting for outputs has no round job")
			outs := []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &w.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id, Output: assistants.Ptr("25")}}
			_, err = assistants.Result[gen.RunObject](c.SubmitToolOutputsToRunWithResponse(ctx, r.ThreadId, r.Id,
				gen.SubmitToolOutputsRunRequest{ToolOutputs: outs}))
			require.NoError(t, err)
			waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusCompleted)
			assert.Empty(t, runJobs(t, ctx, st), "the next round's backup is deleted too")

			r = newThreadAndRun(t, ctx, c, asst.Id, longWords(2000)) // 2000 words at 1ms: a round of seconds
			waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusInProgress)
			_, err = assistants.Result[gen.RunObject](c.CancelRunWithResponse(ctx, r.ThreadId, r.Id))
			require.NoError(t, err)
			waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusCancelled)
			waitNoRunJobs(t, ctx, st, "after a cancel")
		})
	}
}

// TestInlineRoundStoppedReleasesItsBackup: a server closed while a round
// runs inline makes the round's backup available at once, and a server
// started on the same database runs it (long before RescueAfter, the
// default 11 minutes, which the test does not wait for).
func TestInlineRoundStoppedReleasesItsBackup(t *testing.T) {
	for name, open := range sqlStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			st := open(t)
			// A poll interval short enough for the test, long enough that
			// a run on River's polling alone is seen to wait for it.
			ro := server.WithRiver(server.RiverOptions{PollInterval: 100 * time.Millisecond})
			_, c, stop := serveOn(t, st, ro, paced)
			asst, err := assistants.Result[gen.AssistantObject](c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"}))
			require.NoError(t, err)
			r := newThreadAndRun(t, ctx, c, asst.Id, longWords(1500))
			waitStatus(t, ctx, c, r.ThreadId, r.Id, gen.RunObjectStatusInProgress)
			require.Equal(t, []string{server.KindRunRound + "/scheduled"}, runJobs(t, ctx, st), "the running round's backup")
			t0 := time.Now()
			stop()
			require.Equal(t, []string{server.KindRunRound + "/available"}, runJobs(t, ctx, st), "released by the stop")

			_, c2, _ := serveOn(t, st, ro, paced)
			end := waitStatus(t, ctx, c2, r.ThreadId, r.Id, gen.RunObjectStatusCompleted, gen.RunObjectStatusFailed)
			require.Equal(t, gen.RunObjectStatusCompleted, end.Status, "last error: %+v", end.LastError)
			t.Logf("completed %s after the stop", time.Since(t0).Round(time.Millisecond))
			waitNoRunJobs(t, ctx, st, "after the run completed on River")
		})
	}
}

// paced makes the scripted model wait a millisecond between two words
// (WordDelay, not serveOn's step delay): the echo of longWords keeps its
// round running.
var paced = server.WithWordDelay(time.Millisecond)

// longWords is a user message whose echo the scripted model streams one
// word per word delay (paced).
func longWords(n int) string {
	b := make([]byte, 0, n*6)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, "word"...)
		b = append(b, byte('a'+i%26))
	}
	return string(b)
}
