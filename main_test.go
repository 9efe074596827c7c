package assistants_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a retry wait, a body
// reader, an idle connection's reader loop) outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
