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

// TestWakePayloads: a batch's run ids go out in as few payloads as the
// limit allows, each under it, and every id exactly once.
func TestWakePayloads(t *testing.T) {
	for _, n := range []int{0, 1, 2, 300, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ids := map[string]bool{}
			bytes := 0
			for i := range n {
				id := fmt.Sprintf("run_%026d", i)
				ids[id] = true
				bytes += len(id) + 1
			}
			out := wakePayloads(ids)
			seen := map[string]int{}
			for _, p := range out {
				require.LessOrEqual(t, len(p), maxWakePayload)
				for id := range strings.SplitSeq(p, ",") {
					seen[id]++
				}
			}
			require.Len(t, seen, n)
			for id, c := range seen {
				require.True(t, ids[id], id)
				require.Equal(t, 1, c, id)
			}
			// As few payloads as the limit allows.
			require.Equal(t, (bytes+maxWakePayload)/(maxWakePayload+1), len(out))
		})
	}
}

// TestPGWakeBatches: the wake-ups queued while the notifier is busy go out
// in one notification, and a replica's listener wakes the streams of every
// run a notification names.
func TestPGWakeBatches(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	st, err := postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = quiet })
	require.NoError(t, err)
	defer st.Close()
	srv := New(WithStore(st), WithStepDelay(0))
	defer srv.Close()
	e := srv.eng
	require.NotNil(t, e.pg)

	// The listener of srv is up once a probe notification wakes a stream.
	probe := e.subscribe("run_probe", 0)
	defer probe.end()
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
		for id := range strings.SplitSeq(note.Payload, ",") {
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
