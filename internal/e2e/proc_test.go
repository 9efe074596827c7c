package e2e

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/servetest"
)

// The assistants binary, built once for the package's tests.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// serveBinary builds cmd/assistants once and returns its path; TestMain
// removes it.
func serveBinary(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the process tests kill with SIGKILL and read /proc: Linux only")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "assistants-e2e-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildBin, buildErr = servetest.Build(ctx, buildDir)
	})
	require.NoError(t, buildErr)
	return buildBin
}

// pickupFlags make a replica pick up a run whose driver died sooner than
// the documented default (River's rescue of a job running longer than
// --rescue-after, checked every 30s by the elected leader; a killed
// leader's lease runs out after about 15s): rounds here last a few
// seconds at most.
var pickupFlags = []string{"--job-timeout", "10s", "--rescue-after", "10s"}

// startServe starts `assistants serve args...` on a free port (unless args
// name --addr) and kills it when the test ends.
func startServe(t testing.TB, args ...string) *servetest.Proc {
	t.Helper()
	bin := serveBinary(t)
	hasAddr := false
	for _, a := range args {
		hasAddr = hasAddr || a == "--addr"
	}
	if !hasAddr {
		args = append([]string{"--addr", "127.0.0.1:0"}, args...)
	}
	args = append([]string{"--log-level", "warn"}, args...)
	p, err := servetest.Start(t.Context(), bin, args...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("serve %s stderr:\n%s", p.Addr, p.Stderr())
		}
	})
	return p
}
