package e2e

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// stores opens each store for a test; each is closed when the test ends,
// after the server that uses it.
var stores = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"memory", func(t testing.TB) store.Store { return memory.New() }},
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), t.TempDir(), quietSQLite)
	require.NoError(t, err)
	return st
}

func openPostgres(t testing.TB) store.Store {
	t.Helper()
	u := pgtest.Schema(t) // skips, loudly, or fails with CI=true when unreachable
	st, err := postgres.Open(context.Background(), u, quietPostgres)
	require.NoError(t, err)
	return st
}

// startServer starts an in-process server on st (closed after the server
// when the test ends) on a loopback port, with every reply checked against
// the spec, and returns it.
func startServer(t testing.TB, st store.Store, opts ...server.Option) *assistantstest.Server {
	t.Helper()
	t.Cleanup(func() { require.NoError(t, st.Close()) }) // runs after the server's cleanup
	opts = append([]server.Option{server.WithStepDelay(2 * time.Millisecond), server.WithStore(st)}, opts...)
	return assistantstest.NewServer(t, opts...)
}

// TestFlows runs the end-to-end flows on every store, each through the HTTP
// API of an in-process server with its replies checked against the spec.
func TestFlows(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, s.open(t))
			runFlows(t, newClient(t, srv.URL))
		})
	}
}

// TestReopen: what one server wrote to a store, a second server on the
// same database reads (the SQL stores; memory dies with its process).
func TestReopen(t *testing.T) {
	for _, s := range stores[1:] {
		t.Run(s.name, func(t *testing.T) {
			ctx := t.Context()
			var reopen func() store.Store
			switch s.name {
			case "sqlite":
				dir := t.TempDir()
				reopen = func() store.Store {
					st, err := sqlite.OpenDir(ctx, dir, quietSQLite)
					require.NoError(t, err)
					return st
				}
			default:
				u := pgtest.Schema(t)
				reopen = func() store.Store {
					st, err := postgres.Open(ctx, u, quietPostgres)
					require.NoError(t, err)
					return st
				}
			}
			st := reopen()
			a1, err := assistantstest.Start(server.WithStepDelay(time.Millisecond), server.WithStore(st))
			require.NoError(t, err)
			c := newClient(t, a1.URL)
			a := createAssistant(t, ctx, c, "kept")
			th := createThread(t, ctx, c, "hello")
			r := createRun(t, ctx, c, th.Id, a.Id)
			done := waitRun(t, ctx, c, th.Id, r.Id)
			require.Equal(t, "completed", string(done.Status))
			f := uploadFile(t, ctx, c, "kept.bin", fileBytes(300<<10))
			require.NoError(t, a1.Close(), "replies that do not match the spec")
			require.NoError(t, st.Close())

			srv2 := startServer(t, reopen())
			c2 := newClient(t, srv2.URL)
			require.Equal(t, []string{"user: hello", "assistant: You said: hello"}, messageTexts(t, ctx, c2, th.Id))
			got := waitRun(t, ctx, c2, th.Id, r.Id)
			require.Equal(t, done.Id, got.Id)
			require.Equal(t, done.Status, got.Status)
			d, err := c2.DownloadFileWithResponse(ctx, f.Id)
			require.NoError(t, err)
			require.Equal(t, fileBytes(300<<10), d.Body)
			ga, err := c2.GetAssistantWithResponse(ctx, a.Id)
			require.NoError(t, err)
			require.NotNil(t, ga.JSON200, "body: %s", ga.Body)
		})
	}
}

var discard = slog.New(slog.DiscardHandler)

var (
	quietSQLite   = func(o *sqlite.Options) { o.Logger = discard }
	quietPostgres = func(o *postgres.Options) { o.Logger = discard }
)
