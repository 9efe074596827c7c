// Command assistants serves the embedded Assistants v2 server, runs the demo
// or runs the chaos harness.
//
//	assistants serve [--addr 127.0.0.1:8080] [--data DIR | --memory | --database-url postgres://...] [--api-key-env VAR] [--step-delay 50ms] ...
//	assistants demo  [--step-delay 50ms]
//	assistants chaos [--conversations 200] [--concurrency 20] [--seed 1] [--restarts [--stores sqlite,postgres]]
//	assistants keys create --project NAME | keys list | keys revoke ID  [--data DIR | --database-url URL]
//	assistants help [serve|demo|chaos|keys]
//
// Every subcommand prints its flags with -h (exit status 0). A mistake on
// the command line (an unknown flag or command, a stray argument, a
// negative duration) exits 2 with a message; any other failure exits 1.
//
// serve keeps its data in SQLite under --data DIR (default
// $XDG_DATA_HOME/assistants, or ~/.local/share/assistants), in PostgreSQL
// with --database-url (several replicas may share one database), or in
// process memory with --memory. It prints where ("data: DIR", "database:
// URL" without its password, or "data: in memory ..."), then answers under
// /v1 and prints "listening on http://HOST:PORT/v1" once it accepts
// connections. On SIGINT or SIGTERM it shuts down gracefully: no new
// runs, open event streams get up to --shutdown-grace to finish and are then
// ended with an "error" event. A second SIGINT or SIGTERM exits at once
// (status 130 or 143).
// demo runs the main job against an in-process server, or against
// OPENAI_BASE_URL (with OPENAI_API_KEY) when that is set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // the first signal: shut down gracefully
		s := <-sigs
		fmt.Fprintf(os.Stderr, "assistants: second %v: exiting at once\n", s)
		os.Exit(signalStatus(s))
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// signalStatus is the shell's exit status for death by signal s: 128+s.
func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// run runs the command line args (without the program name) and returns
// the exit status: 0 on success and after -h, 2 on a usage mistake, 1 on
// any other error. Errors are printed to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout)
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "assistants:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "assistants:", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("no command given\n%s", usage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout)
	case "demo":
		return demo(ctx, args[1:], stdout)
	case "chaos":
		return runChaos(ctx, args[1:], stdout)
	case "keys":
		return keysCmd(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		if args[0] == "help" && len(args) > 1 {
			switch args[1] {
			case "serve", "demo", "chaos", "keys":
				return dispatch(ctx, []string{args[1], "-h"}, stdout)
			}
			return usagef("help: unknown command %q\n%s", args[1], usage)
		}
		if len(args) > 1 {
			return usagef("%s: unexpected argument %q\n%s", args[0], args[1], usage)
		}
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return usagef("unknown command %q\n%s", args[0], usage)
	}
}

const usage = `usage:
  assistants serve [flags]   serve the embedded Assistants v2 API under /v1
  assistants demo  [flags]   run the demo against the embedded server (or OPENAI_BASE_URL)
  assistants chaos [flags]   concurrent conversations against the server with seeded faults (--restarts: killed and restarted servers)
  assistants keys create --project NAME | list | revoke ID   manage the API keys in the store (--data / --database-url)
  assistants help [command]  print this, or a command's flags
run "assistants <command> -h" for a command's flags`
