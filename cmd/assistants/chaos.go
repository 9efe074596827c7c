package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/assistants-go/assistants/internal/chaos"
)

// runChaos runs the chaos harness (make chaos): N concurrent conversations
// against the embedded server with seeded faults, then one summary line.
func runChaos(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("conversations", 200, "number of conversations (half polling, half streaming)")
	conc := fs.Int("concurrency", 20, "conversations in flight at once")
	seed := fs.Int64("seed", 1, "fault seed (same seed, same faults)")
	if err := parseFlags(fs, args, out); err != nil { // -h, stray arguments, negative durations
		return err
	}
	res, err := chaos.Run(ctx, chaos.Config{Conversations: *n, Concurrency: *conc, Seed: *seed, Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tool calls asked=%d executions=%d errors surfaced=%d\n", res.ToolCallsAsked, res.ToolExecutions, len(res.Errors))
	fmt.Fprintln(out, res.Line())
	if res.Lost > 0 || res.Duplicated > 0 || !res.ExactlyOnce {
		return fmt.Errorf("chaos run failed its checks")
	}
	return nil
}
