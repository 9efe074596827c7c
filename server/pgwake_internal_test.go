package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// TestParseWake: a listener wakes the runs a v1 payload or an untagged one
// (the format before tags) names, and every stream for a payload of any
// other tag or one it cannot read.
func TestParseWake(t *testing.T) {
	run := newID(prefixRun)
	for _, c := range []struct {
		name    string
		payload string
		ids     []string // nil: every stream (all)
	}{
		{"v1 one id", "v1:" + run, []string{run}},
		{"v1 batch", "v1:run_a,run_b,run_c", []string{"run_a", "run_b", "run_c"}},
		{"legacy one id", run, []string{run}},
		{"legacy short id", "run_probe", []string{"run_probe"}},
		{"legacy batch", "run_a," + run, []string{"run_a", run}},
		{"longest id", "v1:" + strings.Repeat("r", 128), []string{strings.Repeat("r", 128)}},

		{"unknown version", "v2:run_a,run_b", nil},
		{"unknown version, other layout", "v2:run_a:7;run_b:9", nil},
		{"unknown version, no body", "v2:", nil},
		{"tag of another case", "V1:run_a", nil},
		{"empty tag", ":run_a", nil},
		{"empty", "", nil},
		{"v1 without ids", "v1:", nil},
		{"v1 empty id", "v1:run_a,,run_b", nil},
		{"v1 trailing comma", "v1:run_a,", nil},
		{"legacy empty id", "run_a,", nil},
		{"garbage", "hello, world!", nil},
		{"garbage bytes", "run_\x00\xff", nil},
		{"id too long", "v1:" + strings.Repeat("r", 129), nil},
		{"json", `{"run_id":"run_a"}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ids, all := parseWake(c.payload)
			require.Equal(t, c.ids == nil, all, "all")
			require.Equal(t, c.ids, ids)
		})
	}
}

// TestParseWakeReadsWakePayloads: what the notifier sends, the listener
// reads back as the same runs.
func TestParseWakeReadsWakePayloads(t *testing.T) {
	batch := map[string]bool{}
	for range 500 {
		batch[newID(prefixRun)] = true
	}
	got := map[string]bool{}
	for _, p := range wakePayloads(batch) {
		ids, all := parseWake(p)
		require.False(t, all, p)
		for _, id := range ids {
			got[id] = true
		}
	}
	require.Equal(t, batch, got)
}

// TestWakePayloads: a batch's run ids go out in as few payloads as the
// limit allows, each beginning with the tag and under the limit with it,
// and every id exactly once.
func TestWakePayloads(t *testing.T) {
	// n ids of idLen bytes each: a payload holds perPayload of them.
	fixed := func(n, idLen int) (map[string]bool, int) {
		ids := map[string]bool{}
		for i := range n {
			ids[fmt.Sprintf("run_%0*d", idLen-len("run_"), i)] = true
		}
		perPayload := (maxWakePayload - len(wakeTag) + 1) / (idLen + 1)
		return ids, (n + perPayload - 1) / perPayload
	}
	// ids whose payload is exactly the limit long, plus extra bytes: one
	// payload, or two when extra > 0.
	exact := func(extra int) (map[string]bool, int) {
		ids := map[string]bool{}
		size := len(wakeTag) - 1 // without the first id's comma
		for i := 0; size+1+36 <= maxWakePayload-40; i++ {
			id := fmt.Sprintf("run_%032d", i)
			ids[id] = true
			size += 1 + len(id)
		}
		ids["run_"+strings.Repeat("x", maxWakePayload-size-1-len("run_")+extra)] = true
		if extra > 0 {
			return ids, 2
		}
		return ids, 1
	}
	for _, c := range []struct {
		name string
		ids  map[string]bool
		want int // payloads
	}{
		{"none", map[string]bool{}, 0},
		{"one", map[string]bool{"run_a": true}, 1},
		{"two", map[string]bool{"run_a": true, "run_b": true}, 1},
		{"too long for any payload", map[string]bool{strings.Repeat("r", maxWakePayload): true}, 1},
	} {
		t.Run(c.name, func(t *testing.T) { checkWakePayloads(t, c.ids, c.want) })
	}
	for _, n := range []int{300, 1000, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ids, want := fixed(n, 36) // newID's run ids are 36 bytes
			checkWakePayloads(t, ids, want)
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		ids, want := exact(0)
		checkWakePayloads(t, ids, want)
	})
	t.Run("one byte over the limit", func(t *testing.T) {
		ids, want := exact(1)
		checkWakePayloads(t, ids, want)
	})
}

// checkWakePayloads checks wakePayloads(ids): want payloads, each the tag
// and ids joined by commas, no longer than the limit (but for an id too
// long alone), and every id in exactly one.
func checkWakePayloads(t *testing.T, ids map[string]bool, want int) {
	t.Helper()
	out := wakePayloads(ids)
	seen := map[string]int{}
	for _, p := range out {
		require.True(t, strings.HasPrefix(p, wakeTag), "untagged payload %.40q", p)
		list := strings.Split(strings.TrimPrefix(p, wakeTag), ",")
		if len(list) > 1 || len(wakeTag)+len(list[0]) <= maxWakePayload {
			require.LessOrEqual(t, len(p), maxWakePayload)
		}
		for _, id := range list {
			seen[id]++
		}
	}
	require.Len(t, seen, len(ids))
	for id, c := range seen {
		require.True(t, ids[id], "%.40q not in the batch", id)
		require.Equal(t, 1, c, id)
	}
	require.Len(t, out, want, "as few payloads as the limit allows")
}

// TestUnknownWakeLogged: the payloads the listener cannot read are all
// counted but logged at most once per unknownWakeLogEvery, each log with
// the count since the one before.
func TestUnknownWakeLogged(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := &pgWake{}
	for range 100 {
		w.unknownPayload(log, "v2:run_a")
	}
	require.Equal(t, int64(100), w.unknown.Load())
	require.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	require.Contains(t, buf.String(), "count=1 ")
	require.Contains(t, buf.String(), "payload_start=v2:run_a")

	// An interval later, the next one is logged with those in between.
	w.unknownLoggedAt = w.unknownLoggedAt.Add(-unknownWakeLogEvery)
	buf.Reset()
	w.unknownPayload(log, strings.Repeat("x", 100))
	require.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	require.Contains(t, buf.String(), "count=100 ")
	require.Contains(t, buf.String(), "payload_start="+strings.Repeat("x", 32)+"\n")
}

// pgWakeServer starts a server on a fresh PostgreSQL schema and returns
// it with its store once its listener is up: a probe notification woke a
// stream of run_probe, which stays open (probe) for the test.
func pgWakeServer(t *testing.T) (srv *Server, st *postgres.Store, probe *subscriber) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = quiet })
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	srv = New(WithStore(st), WithStepDelay(0))
	t.Cleanup(func() { _ = srv.Close() })
	e := srv.eng
	require.NotNil(t, e.pg)

	probe = e.subscribe("run_probe", 0)
	t.Cleanup(probe.end)
	deadline := time.Now().Add(30 * time.Second)
	for up := false; !up; {
		e.pg.notify("run_probe")
		select {
		case <-probe.signal:
			up = true
		case <-time.After(50 * time.Millisecond):
			require.False(t, time.Now().After(deadline), "the listener never woke a stream")
		}
	}
	return srv, st, probe
}

// TestPGWakeBatches: the wake-ups queued while the notifier is busy go out
// in one notification, and a replica's listener wakes the streams of every
// run a notification names.
func TestPGWakeBatches(t *testing.T) {
	srv, st, _ := pgWakeServer(t)
	e := srv.eng

	// Many wake-ups queued at once: fewer notifications than runs, and
	// each run's stream woken.
	const n = 200
	subs := make([]*subscriber, n)
	for i := range subs {
		subs[i] = e.subscribe(fmt.Sprintf("run_%03d", i), 0)
		defer subs[i].end()
	}
	conn, err := st.Pool().Acquire(t.Context())
	require.NoError(t, err)
	defer func() { _ = conn.Conn().Close(t.Context()); conn.Release() }()
	_, err = conn.Exec(t.Context(), "LISTEN "+runEventsChannel)
	require.NoError(t, err)

	w := &pgWake{pool: st.Pool(), out: make(chan string, 1024)}
	for i := range n {
		w.notify(fmt.Sprintf("run_%03d", i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.notifier(ctx, srv) }()
	defer func() { cancel(); <-done }()

	got, notes := map[string]bool{}, 0
	for len(got) < n {
		wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
		note, err := conn.Conn().WaitForNotification(wctx)
		wcancel()
		require.NoError(t, err, "%d of %d runs notified", len(got), n)
		notes++
		require.True(t, strings.HasPrefix(note.Payload, wakeTag), "untagged payload %.40q", note.Payload)
		ids, all := parseWake(note.Payload)
		require.False(t, all, "payload %.40q", note.Payload)
		for _, id := range ids {
			got[id] = true
		}
	}
	require.Less(t, notes, n/10, "one notification per run")
	for i, s := range subs {
		select {
		case <-s.signal:
		case <-time.After(30 * time.Second):
			t.Fatalf("the stream of run_%03d was not woken", i)
		}
	}
}

// TestPGWakeFormats: a replica's listener reads the payloads other
// replicas send with pg_notify: v1 and untagged ones (an older replica's)
// wake the runs they name, and one of an unknown version (a newer
// replica's) or one it cannot read wakes every stream, that of a run it
// does not name too, and is counted.
func TestPGWakeFormats(t *testing.T) {
	srv, st, _ := pgWakeServer(t)
	e := srv.eng
	unknown0 := e.pg.unknown.Load()
	unknowns := 0
	for _, c := range []struct {
		name    string
		payload func(run string) string
		woken   bool // the stream of run
	}{
		{"v1", func(run string) string { return "v1:run_other," + run }, true},
		{"v1 other run", func(string) string { return "v1:run_other" }, false},
		{"legacy id", func(run string) string { return run }, true},
		{"legacy batch", func(run string) string { return "run_other," + run }, true},
		{"legacy other run", func(string) string { return "run_other" }, false},
		{"unknown version", func(string) string { return "v2:run_other" }, true},
		{"unknown version naming the run", func(run string) string { return "v9:" + run + ";seq=7" }, true},
		{"garbage", func(string) string { return "not a run id" }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := newID(prefixRun)
			s := e.subscribe(run, 0)
			defer s.end()
			// A probe of this case alone (pgWakeServer's may still be in
			// flight): its notification comes after the case's, and the
			// listener handles them in order, so once the probe is woken
			// the case's payload was handled.
			probeRun := newID(prefixRun)
			probe := e.subscribe(probeRun, 0)
			defer probe.end()
			_, all := parseWake(c.payload(run))
			if all {
				unknowns++
			}
			_, err := st.Pool().Exec(t.Context(), "SELECT pg_notify($1, $2)", runEventsChannel, c.payload(run))
			require.NoError(t, err)
			_, err = st.Pool().Exec(t.Context(), "SELECT pg_notify($1, $2)", runEventsChannel, wakeTag+probeRun)
			require.NoError(t, err)
			select {
			case <-probe.signal:
			case <-time.After(30 * time.Second):
				t.Fatal("the probe's notification never woke its stream")
			}
			select {
			case <-s.signal:
				require.True(t, c.woken, "the stream of a run not named was woken")
			default:
				require.False(t, c.woken, "the stream was not woken")
			}
		})
	}
	require.Equal(t, int64(unknowns), e.pg.unknown.Load()-unknown0, "payloads counted as unknown")
}
