// Command assistants serves the embedded Assistants v2 server or runs the demo.
//
//	assistants serve [--addr 127.0.0.1:8080] [--api-key KEY] [--step-delay 50ms] ...
//	assistants demo  [--step-delay 50ms]
//
// serve answers under /v1 and prints "listening on http://HOST:PORT/v1" once it
// accepts connections; it shuts down gracefully on SIGINT and SIGTERM.
// demo runs the main job against an in-process server, or against
// OPENAI_BASE_URL (with OPENAI_API_KEY) when that is set.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "assistants:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError()
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], os.Stdout)
	case "demo":
		return demo(ctx, args[1:], os.Stdout)
	case "chaos":
		return runChaos(ctx, args[1:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	default:
		return usageError()
	}
}

const usage = `usage:
  assistants serve [flags]   serve the embedded Assistants v2 API under /v1
  assistants demo  [flags]   run the demo against the embedded server (or OPENAI_BASE_URL)
  assistants chaos [flags]   concurrent conversations against the server with seeded faults
run "assistants serve -h" or "assistants demo -h" for flags`

func usageError() error { return fmt.Errorf("%s", usage) }
