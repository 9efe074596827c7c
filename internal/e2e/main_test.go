package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine (a server's run
// engine, a River client, a store's pool, a child process's reader)
// outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
