// Command pgcheck says, in one loud line, when the PostgreSQL that tests use
// (ASSISTANTS_TEST_DATABASE_URL) is unreachable: go test shows nothing of a
// passing package, so the skip notice of package pgtest is only seen with
// -v. With CI=true an unreachable database makes it exit 1. It prints
// nothing when the database answers.
//
//	go run ./internal/pgtest/pgcheck
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/assistants-go/assistants/internal/pgtest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pgtest.Ping(ctx)
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		fmt.Fprintf(os.Stderr, "pgcheck: CI=true and %s\n", pgtest.Unreachable(err))
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "*** PostgreSQL tests will be SKIPPED: %s ***\n", pgtest.Unreachable(err))
}
