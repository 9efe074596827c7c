//go:build tools

// This file pins benchstat in go.mod, so that "go run
// golang.org/x/perf/cmd/benchstat" (as make bench-peers does) always runs
// the same version and needs only the module proxy.
package bench

import (
	_ "golang.org/x/perf/cmd/benchstat"
)
