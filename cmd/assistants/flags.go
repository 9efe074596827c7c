package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// usageError is a mistake on the command line (an unknown command or flag,
// a bad value, a stray argument, a negative duration). run answers it with
// exit status 2; every other error exits 1.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// parseFlags parses a subcommand's flags; fs is named after the
// subcommand. -h, -help and --help print its usage to stdout and return
// flag.ErrHelp (exit status 0). An unknown flag, a bad value, a positional
// argument (no subcommand takes any) or a negative duration returns a
// *usageError naming it.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	name := fs.Name()
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: assistants %s [flags]\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	fs.SetOutput(io.Discard) // errors are reported once, by run
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		return usagef("%s: %w (run \"assistants %s -h\" for its flags)", name, err, name)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q: this command takes only flags (run \"assistants %s -h\")", name, fs.Arg(0), name)
	}
	var neg error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || neg != nil {
			return
		}
		if d, ok := g.Get().(time.Duration); ok && d < 0 {
			neg = usagef("%s: -%s %s: a duration cannot be negative", name, f.Name, d)
		}
	})
	return neg
}
