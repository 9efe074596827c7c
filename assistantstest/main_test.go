package assistantstest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a run engine loop, a
// stream reader, a poll wait, an upload pipe, a connection loop) outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
