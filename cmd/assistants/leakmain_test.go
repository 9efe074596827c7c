package main

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a run engine loop, a
// stream reader, a poll wait, an upload pipe, a connection loop) outlives them.
// serve's default data directory is a temporary one for every test (and the
// processes they start), never the user's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "assistants-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}
