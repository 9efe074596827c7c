package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// TestStoreFlags: which store the flags choose and where, and the
// mistakes (two stores at once, a URL that is not PostgreSQL's) that are
// usage errors naming the flags, never quoting a password.
func TestStoreFlags(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	cwd, err := os.Getwd()
	require.NoError(t, err)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		kind storeKind
		at   string
		err  string
	}{
		{name: "default: SQLite under XDG_DATA_HOME", env: map[string]string{"XDG_DATA_HOME": xdg, "HOME": home}, kind: kindSQLite, at: filepath.Join(xdg, "assistants")},
		{name: "default: SQLite under HOME", env: map[string]string{"HOME": home}, kind: kindSQLite, at: filepath.Join(home, ".local", "share", "assistants")},
		{name: "relative XDG_DATA_HOME is ignored", env: map[string]string{"XDG_DATA_HOME": "rel", "HOME": home}, kind: kindSQLite, at: filepath.Join(home, ".local", "share", "assistants")},
		{name: "--data is made absolute", args: []string{"--data", "d"}, kind: kindSQLite, at: filepath.Join(cwd, "d")},
		{name: "--memory", args: []string{"--memory"}, kind: kindMemory},
		{name: "--database-url", args: []string{"--database-url", "postgres://u@h:5432/db"}, kind: kindPostgres, at: "postgres://u@h:5432/db"},
		{name: "env database URL", env: map[string]string{envDatabaseURL: "postgresql://h/db"}, kind: kindPostgres, at: "postgresql://h/db"},
		{name: "--memory wins over the env URL", env: map[string]string{envDatabaseURL: "postgresql://h/db"}, args: []string{"--memory"}, kind: kindMemory},
		{name: "--data wins over the env URL", env: map[string]string{envDatabaseURL: "postgresql://h/db"}, args: []string{"--data", "/x"}, kind: kindSQLite, at: "/x"},
		{name: "--data and --memory", args: []string{"--data", "/x", "--memory"}, err: "at most one of --data, --memory and --database-url"},
		{name: "--memory and --database-url", args: []string{"--memory", "--database-url", "postgres://h/db"}, err: "at most one of"},
		{name: "not a postgres URL", args: []string{"--database-url", "mysql://u:hunter2@h/db"}, err: "want a postgres:// or postgresql:// URL"},
		{name: "unparsable URL", args: []string{"--database-url", "postgres://u:hun ter2@h:x/db"}, err: "want a postgres:// or postgresql:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"XDG_DATA_HOME", "HOME", envDatabaseURL} {
				t.Setenv(k, tt.env[k])
			}
			c, _, err := serveFlags(tt.args, io.Discard)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				var ue *usageError
				assert.True(t, errors.As(err, &ue), "a usage error (exit status 2)")
				assert.NotContains(t, err.Error(), "hunter2")
				assert.NotContains(t, err.Error(), "hun ter2")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.kind, c.storeKind)
			assert.Equal(t, tt.at, c.storeAt)
		})
	}
}

// TestRedactURL: the database URL printed at start has no password.
func TestRedactURL(t *testing.T) {
	assert.Equal(t, "postgres://u:xxxxx@h:5432/db?sslmode=disable", redactURL("postgres://u:s3cret@h:5432/db?sslmode=disable"))
	assert.Equal(t, "postgres://h/db", redactURL("postgres://h/db"))
	err := scrub(errors.New(`cannot parse "postgres://u:s3cret@h/db"`), "postgres://u:s3cret@h/db")
	assert.NotContains(t, err.Error(), "s3cret")
}

// startInProcess runs serve(args) until the test ends and returns the lines
// it printed before "listening on" and the base URL.
func startInProcess(t *testing.T, args ...string) (before []string, base string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append([]string{"--addr", "127.0.0.1:0", "--step-delay", "0", "--log-level", "error"}, args...), pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop after its context was cancelled")
		}
	})
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err, "serve ended before listening; lines: %q", before)
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "listening on ") {
			go io.Copy(io.Discard, br) //nolint:errcheck
			return before, strings.TrimPrefix(line, "listening on ")
		}
		before = append(before, line)
	}
}

// TestServeStores starts serve on each store and checks the line it prints
// about its data and that it answers; the SQLite database is created under
// the data directory (the default one when no flag is given).
func TestServeStores(t *testing.T) {
	get := func(t *testing.T, base string) {
		resp, err := http.Get(base + "/assistants")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	t.Run("no flags: SQLite in the default data directory", func(t *testing.T) {
		xdg := t.TempDir()
		t.Setenv("XDG_DATA_HOME", xdg)
		t.Setenv(envDatabaseURL, "")
		before, base := startInProcess(t)
		dir := filepath.Join(xdg, "assistants")
		assert.Equal(t, []string{"data: " + dir}, before)
		get(t, base)
		assert.FileExists(t, filepath.Join(dir, sqlite.FileName))
	})
	t.Run("--data", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "dir")
		before, base := startInProcess(t, "--data", dir)
		assert.Equal(t, []string{"data: " + dir}, before)
		get(t, base)
		assert.FileExists(t, filepath.Join(dir, sqlite.FileName))
	})
	t.Run("--memory", func(t *testing.T) {
		before, base := startInProcess(t, "--memory")
		assert.Equal(t, []string{"data: in memory (lost when the process ends)"}, before)
		get(t, base)
	})
	t.Run("--database-url", func(t *testing.T) {
		u := pgtest.Schema(t)
		before, base := startInProcess(t, "--database-url", u)
		require.Len(t, before, 1)
		assert.Equal(t, "database: "+redactURL(u), before[0])
		get(t, base)
	})
	t.Run("unreachable database: an error, no server", func(t *testing.T) {
		err := serve(context.Background(), []string{"--addr", "127.0.0.1:0", "--database-url", "postgres://u:pw-777@127.0.0.1:1/db?connect_timeout=2"}, io.Discard)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "--database-url postgres://u:xxxxx@127.0.0.1:1/db")
		assert.NotContains(t, err.Error(), "pw-777")
	})
}

// TestServeRiverFlags: --job-timeout and --rescue-after reach the server's
// River options (zero: the server's defaults); negative durations are
// usage errors.
func TestServeRiverFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want server.RiverOptions
		err  string
	}{
		{args: nil, want: server.RiverOptions{}},
		{args: []string{"--job-timeout", "3s", "--rescue-after", "4s"}, want: server.RiverOptions{JobTimeout: 3 * time.Second, RescueAfter: 4 * time.Second}},
		{args: []string{"--rescue-after", "-1s"}, err: "-rescue-after -1s: a duration cannot be negative"},
	} {
		_, opts, err := serveFlags(append([]string{"--memory"}, tc.args...), io.Discard)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		var o server.Options
		for _, f := range opts {
			f(&o)
		}
		assert.Equal(t, tc.want, o.River, "%v", tc.args)
	}
}
