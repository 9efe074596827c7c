package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoadShort runs the load generator briefly against one SQLite server:
// conversations complete, no request fails, and the report has every
// route and the server's memory.
func TestLoadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and runs it for seconds; make load runs it in full")
	}
	const secretEnv = "ASSISTANTS_KEY_SECRET"
	before, had := os.LookupEnv(secretEnv)
	var out bytes.Buffer
	if err := run(t.Context(), 4, 3*time.Second, []string{"sqlite"}, 0, &out); err != nil {
		t.Fatal(err)
	}
	if after, has := os.LookupEnv(secretEnv); after != before || has != had {
		t.Errorf("run changed this process's $%s (the children's environment only)", secretEnv)
	}
	s := out.String()
	m := regexp.MustCompile(`conversations: (\d+), `).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no conversations line:\n%s", s)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatalf("no conversation completed:\n%s", s)
	}
	for _, want := range []string{"errors (not 2xx, not 429): 0 ", "| createThread |", "| createRun |", "| getRun |",
		"| listMessages |", "| createMessage |", "resident memory at the end: "} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("the report lacks %q:\n%s", want, s)
		}
	}
}
