package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

// PackedEventsSchema is the schema version whose migration lets a row of
// run_events hold the events of one write (first_seq).
const PackedEventsSchema = 6

// EventsWrittenBeforePacking checks that a run's events written by a
// binary of the schema before PackedEventsSchema (one row each, as those
// binaries wrote them) read back after the upgrade, followed by the events
// written after it, from every point. older opens a store at the schema
// before; exec runs a statement (? placeholders) on a store older opened;
// current opens the same data at the binary's schema, after older's store
// is closed.
func EventsWrittenBeforePacking(t *testing.T, older func(*testing.T) store.Store, exec func(s store.Store, query string, args ...any) error, current func(*testing.T) store.Store) {
	ctx := ctxT(t)
	s := older(t)
	th := newThread(t, s)
	r := queuedRun(th.ID)
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: r})
	must(t, err)
	var want []store.Event
	for seq := int64(1); seq <= 3; seq++ {
		e := store.Event{RunID: r.ID, Seq: seq, Type: fmt.Sprintf("before.%d", seq), Data: data(fmt.Sprint(seq))}
		must(t, exec(s, `INSERT INTO run_events (run_id, seq, type, data) VALUES (?, ?, ?, ?)`, e.RunID, e.Seq, e.Type, e.Data))
		want = append(want, e)
	}
	must(t, exec(s, `UPDATE runs SET last_seq = ? WHERE id = ?`, int64(len(want)), r.ID))
	must(t, s.Close())

	s = current(t)
	for _, n := range []int{4, 1} {
		evs := make([]store.Event, n)
		for i := range evs {
			evs[i] = store.Event{Type: fmt.Sprintf("after.%d", len(want)+i+1), Data: data(fmt.Sprint(len(want) + i + 1))}
		}
		_, got, err := s.UpdateRun(ctx, "", th.ID, r.ID, func(*store.Run) (store.RunChange, error) {
			return store.RunChange{Events: evs}, nil
		})
		must(t, err)
		want = append(want, got...)
	}
	for after := 0; after <= len(want); after++ {
		got, err := s.ListRunEvents(ctx, r.ID, int64(after), 0)
		must(t, err)
		if len(got) != len(want)-after {
			t.Fatalf("after %d: %d events, want %d", after, len(got), len(want)-after)
		}
		for i, e := range got {
			w := want[after+i]
			if e.Seq != int64(after+i+1) || e.Seq != w.Seq || e.Type != w.Type || !bytes.Equal(e.Data, w.Data) {
				t.Fatalf("after %d: event %d is %+v, want %+v", after, i, e, w)
			}
		}
	}
}
