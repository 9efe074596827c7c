package chaos

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestChaosShort is the short chaos run of make test: 20 conversations, half by
// polling and half by streaming, with the default seeded faults.
func TestChaosShort(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Config{Conversations: 20, Concurrency: 10, Seed: 7, Log: &log})
	require.NoError(t, err)
	t.Log(res.Line())
	t.Logf("tool calls asked=%d executions=%d errors=%d\n%s", res.ToolCallsAsked, res.ToolExecutions, len(res.Errors), log.String())
	require.Equal(t, 20, res.Runs)
	require.Zero(t, res.Lost, "lost runs")
	require.Zero(t, res.Duplicated, "duplicates created by retries")
	require.True(t, res.ExactlyOnce, "every asked tool call executed exactly once")
	require.Equal(t, 20, res.ToolCallsAsked, "one get_weather call per conversation")
	require.Empty(t, res.Errors)
}
