package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/assistants-go/assistants/internal/chaos"
)

// defaultChaosDatabaseURL is the PostgreSQL database of chaos --restarts
// when neither --database-url nor the environment names one: the local
// test database.
const defaultChaosDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// chaosPickupArgs are the serve flags of chaos --restarts that make a
// replica pick up a run whose driver was killed sooner than serve's
// default: a job running for 10s is taken for stuck (the chaos rounds last
// well under a second).
var chaosPickupArgs = []string{"--job-timeout", "10s", "--rescue-after", "10s"}

// runChaos runs the chaos harness (make chaos): N concurrent conversations
// against the embedded server with seeded faults, then one summary line.
// With --restarts the conversations run instead against serve processes
// that are killed (SIGKILL) and restarted during the run: on SQLite (one
// replica) and on PostgreSQL (two replicas), one summary line each.
func runChaos(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("conversations", 200, "number of conversations (half polling, half streaming)")
	conc := fs.Int("concurrency", 20, "conversations in flight at once")
	seed := fs.Int64("seed", 1, "fault seed (same seed, same faults)")
	restarts := fs.Bool("restarts", false, "run against serve processes that are killed with SIGKILL and restarted during the run, instead of the embedded server with faults")
	stores := fs.String("stores", "sqlite,postgres", "with --restarts: the stores to run on, in order: sqlite (one replica), postgres (two replicas)")
	dbURL := fs.String("database-url", firstNonEmpty(os.Getenv(envDatabaseURL), os.Getenv("ASSISTANTS_TEST_DATABASE_URL"), defaultChaosDatabaseURL),
		"with --restarts: the PostgreSQL database (a schema of its own is made in it and dropped at the end)")
	killEvery := fs.Duration("kill-every", time.Second, "with --restarts: mean time between two kills")
	kills := fs.Int("kills", 6, "with --restarts: how many kills in all (the runs they strand are then picked up)")
	stepDelay := fs.Duration("step-delay", 0, "the server's delay before each run state change (default 5ms; 50ms with --restarts, so that kills land mid-run)")
	if err := parseFlags(fs, args, out); err != nil { // -h, stray arguments, negative durations
		return err
	}
	if !*restarts {
		res, err := chaos.Run(ctx, chaos.Config{Conversations: *n, Concurrency: *conc, Seed: *seed, StepDelay: *stepDelay, Log: os.Stderr})
		if err != nil {
			return err
		}
		return report(out, res)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chaos --restarts: the serve binary: %w", err)
	}
	if *stepDelay == 0 {
		*stepDelay = 50 * time.Millisecond
	}
	var failed error
	for _, st := range splitList(*stores) {
		rc := &chaos.Restarts{Binary: bin, Store: st, KillEvery: *killEvery, Kills: *kills, ServeArgs: chaosPickupArgs, Log: os.Stderr}
		switch st {
		case "sqlite":
			dir, err := os.MkdirTemp("", "assistants-chaos-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			rc.DataDir = dir
			fmt.Fprintln(out, "restarts on SQLite, one replica:")
		case "postgres":
			rc.DatabaseURL = *dbURL
			fmt.Fprintf(out, "restarts on PostgreSQL (%s), two replicas:\n", redactURL(*dbURL))
		default:
			return usagef("chaos: --stores: unknown store %q (sqlite, postgres)", st)
		}
		res, err := chaos.Run(ctx, chaos.Config{Conversations: *n, Concurrency: *conc, Seed: *seed, StepDelay: *stepDelay, Log: os.Stderr, Restarts: rc})
		if err != nil {
			return scrub(err, *dbURL)
		}
		if err := report(out, res); err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// report prints a chaos run's counts and summary line; it fails when
// anything was lost, duplicated or executed other than once.
func report(out io.Writer, res chaos.Result) error {
	fmt.Fprintf(out, "tool calls asked=%d executions=%d errors surfaced=%d\n", res.ToolCallsAsked, res.ToolExecutions, len(res.Errors))
	fmt.Fprintln(out, res.Line())
	if res.Lost > 0 || res.Duplicated > 0 || !res.ExactlyOnce {
		return fmt.Errorf("chaos run failed its checks")
	}
	return nil
}

// splitList splits "a,b" into its non-empty, trimmed parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// firstNonEmpty returns the first of ss that is not empty.
func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
