package chaos

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/server"
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

// TestChaosHasTeeth switches each protection off in turn (60 conversations
// each) and checks that the harness reports what that lets through: with
// the server's idempotency off, retries after lost or cut replies do the
// work twice; with stream reattaching off, a streamed run whose reply was
// lost cannot be recovered; with the client's retry of cut bodies off, a
// cut reply is an error.
func TestChaosHasTeeth(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the parallel subtests
	for _, tc := range []struct {
		name   string
		cfg    Config
		report func(Result) bool
	}{
		{"idempotency off", Config{ServerOptions: []server.Option{func(o *server.Options) { o.DisableIdempotency = true }}},
			func(r Result) bool { return r.Duplicated > 0 || r.Lost > 0 }},
		// With make chaos's rates a run of 60 lost 2 to 6 conversations,
		// and once none (the cuts fall by the order requests arrive in):
		// streams are cut three times as often here.
		{"stream reattach off", Config{ServerOptions: []server.Option{func(o *server.Options) { o.DisableStreamReattach = true }},
			Faults: streamCuts(0.6)},
			func(r Result) bool { return r.Lost > 0 }},
		{"cut-body retry off", Config{ClientOptions: []assistants.Option{assistants.WithCutBodyRetry(false)}},
			// A cut reply is an error for the caller: a lost conversation,
			// or a read-back that could not be made.
			func(r Result) bool { return r.Lost > 0 || len(r.Errors) > 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cfg := tc.cfg
			cfg.Conversations, cfg.Concurrency, cfg.Seed = 60, 20, 7
			// 6 retries instead of Run's 12: a retry that can never succeed
			// (a 409 with reattaching off) gives up in seconds, not a minute.
			cfg.ClientOptions = append([]assistants.Option{assistants.WithMaxRetries(6)}, cfg.ClientOptions...)
			res, err := Run(ctx, cfg)
			require.NoError(t, err)
			t.Log(res.Line())
			assert.True(t, tc.report(res), "the harness must report the fault this protection hides: %s", res.Line())
		})
	}
}

// streamCuts returns DefaultFaults with event streams cut at rate.
func streamCuts(rate float64) *server.FaultRates {
	f := DefaultFaults
	f.CutStream = rate
	return &f
}
