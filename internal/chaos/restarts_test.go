package chaos

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/internal/servetest"
)

// pickupArgs make a replica pick up a run whose driver was killed sooner
// than serve's default: a job running for 10s is taken for stuck (rounds
// here last well under a second).
var pickupArgs = []string{"--job-timeout", "10s", "--rescue-after", "10s"}

// serveBinary builds the assistants command for the restart runs.
func serveBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the restart runs kill processes with SIGKILL: Linux only")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin, err := servetest.Build(ctx, t.TempDir())
	require.NoError(t, err)
	return bin
}

// TestChaosRestartsShort is the short version of make chaos --restarts: 24
// conversations (half polling, half streaming) while serve processes are
// killed with SIGKILL (3 kills, about 700ms apart) and started again: on
// SQLite (one replica) and on PostgreSQL (two replicas behind a
// round-robin router). Nothing may be lost or duplicated, every tool call
// runs once, and at least two kills happened.
func TestChaosRestartsShort(t *testing.T) {
	bin := serveBinary(t)
	for _, tc := range []struct {
		store string
		rc    func(t *testing.T) Restarts
	}{
		{"sqlite", func(t *testing.T) Restarts { return Restarts{DataDir: t.TempDir()} }},
		{"postgres", func(t *testing.T) Restarts { return Restarts{DatabaseURL: pgtest.Schema(t)} }},
	} {
		t.Run(tc.store, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
			defer cancel()
			rc := tc.rc(t)
			rc.Binary, rc.Store, rc.KillEvery, rc.Kills, rc.ServeArgs = bin, tc.store, 700*time.Millisecond, 3, pickupArgs
			var log bytes.Buffer
			rc.Log = &log
			res, err := Run(ctx, Config{Conversations: 24, Concurrency: 6, Seed: 11, StepDelay: 100 * time.Millisecond, Log: &log, Restarts: &rc})
			require.NoError(t, err, log.String())
			t.Log(res.Line())
			t.Logf("tool calls asked=%d executions=%d errors=%d\n%s", res.ToolCallsAsked, res.ToolExecutions, len(res.Errors), log.String())
			assert.Zero(t, res.Lost, "lost runs")
			assert.Zero(t, res.Duplicated, "duplicated messages or runs")
			assert.True(t, res.ExactlyOnce, "every asked tool call executed exactly once")
			assert.Equal(t, 24, res.ToolCallsAsked, "one get_weather call per conversation")
			assert.GreaterOrEqual(t, res.Restarts, 2, "the run must see kills")
		})
	}
}

// TestChaosRestartsHasTeeth runs the restarts on serve --memory, which
// keeps nothing across a kill: the harness must report lost runs.
func TestChaosRestartsHasTeeth(t *testing.T) {
	bin := serveBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rc := Restarts{Binary: bin, Store: "memory", KillEvery: 400 * time.Millisecond, Log: &log}
	res, err := Run(ctx, Config{Conversations: 16, Concurrency: 4, Seed: 11, StepDelay: 100 * time.Millisecond, Log: &log, Restarts: &rc})
	require.NoError(t, err)
	t.Log(res.Line())
	assert.Positive(t, res.Restarts)
	assert.True(t, res.Lost > 0 || len(res.Errors) > 0, "a server that forgets on a kill must be reported: %s", res.Line())
}
