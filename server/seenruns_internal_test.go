package server

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// interfering is a store whose next UpdateRun of a run (once armed) is
// preceded by another write of that run: its metadata changes, as if
// another request wrote the run between the round's reading it and its
// last write.
type interfering struct {
	store.Store
	armed atomic.Bool
}

func (s *interfering) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	if s.armed.CompareAndSwap(true, false) {
		_, _, err := s.Store.UpdateRun(ctx, project, threadID, id, func(r *store.Run) (store.RunChange, error) {
			var obj map[string]any
			if err := json.Unmarshal(r.Data, &obj); err != nil {
				return store.RunChange{}, err
			}
			obj["metadata"] = map[string]string{"written": "between"}
			data, err := json.Marshal(obj)
			r.Data = data
			return store.RunChange{}, err
		})
		if err != nil {
			return store.Run{}, nil, err
		}
	}
	return s.Store.UpdateRun(ctx, project, threadID, id, fn)
}

// TestRoundLastWriteWorkedOutAhead: a round's last write is worked out
// before the write on the run as this process last wrote it (seenruns.go),
// and applied when the stored run is still that one; when another write
// came between, the write works it out again on the stored run, whose
// change it keeps.
func TestRoundLastWriteWorkedOutAhead(t *testing.T) {
	for name, open := range startStores() {
		t.Run(name, func(t *testing.T) {
			var raw *interfering // the server's view; the queue keeps the store itself
			f := newStartFixtureOn(t, open(t), func(st store.Store) store.Store {
				raw = &interfering{Store: st}
				return raw
			}, 0, RiverOptions{})
			e := f.s.eng

			run, err := f.createRun(f.thread("hello"))
			require.NoError(t, err)
			f.waitStatus(run.ThreadId, run.Id, gen.RunObjectStatusCompleted)
			require.Equal(t, int64(1), e.seen.ahead.Load(), "the last write was not the one worked out ahead")
			// The run is seen completed once its write commits; the cache
			// forgets it when the write returns, just after.
			for _, cached := e.seen.get(run.Id); cached; _, cached = e.seen.get(run.Id) {
				select {
				case <-f.ctx.Done():
					t.Fatal("an ended run stays in the cache")
				case <-time.After(time.Millisecond):
				}
			}

			raw.armed.Store(true)
			run, err = f.createRun(f.thread("hello"))
			require.NoError(t, err)
			f.waitStatus(run.ThreadId, run.Id, gen.RunObjectStatusCompleted)
			require.False(t, raw.armed.Load(), "the round made no write")
			require.Equal(t, int64(1), e.seen.ahead.Load(), "a change worked out on a run that another write changed since was applied")
			got, err := f.raw.GetRun(f.ctx, store.DefaultProject, run.ThreadId, run.Id)
			require.NoError(t, err)
			obj, _, err := decodeRun(got)
			require.NoError(t, err)
			require.NotNil(t, obj.Metadata)
			require.Equal(t, "between", (*obj.Metadata)["written"], "the write between was lost")
			require.Equal(t, gen.RunObjectStatusCompleted, obj.Status)
		})
	}
}

// TestSeenRunsKeepTheNewestRow: a row put after a newer one of its run
// (createRun's, put after the round's first write) leaves the newer one,
// and a run that ended stays ended whatever older row comes after.
func TestSeenRunsKeepTheNewestRow(t *testing.T) {
	row := func(status string, seq int64) store.Run {
		return store.Run{ID: "run_1", Status: status, LastSeq: seq, Data: []byte(status)}
	}
	cases := []struct {
		name   string
		puts   []store.Run
		want   store.Run
		active bool
	}{
		{"in order", []store.Run{row("queued", 2), row("in_progress", 3)}, row("in_progress", 3), true},
		{"created put late", []store.Run{row("in_progress", 3), row("queued", 2)}, row("in_progress", 3), true},
		{"a write without events", []store.Run{row("in_progress", 3), row("requires_action", 3)}, row("requires_action", 3), true},
		{"ended", []store.Run{row("queued", 2), row("completed", 13)}, store.Run{}, false},
		{"created put after the end", []store.Run{row("in_progress", 3), row("completed", 13), row("queued", 2)}, store.Run{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s seenRuns
			for _, r := range c.puts {
				s.put(r)
			}
			got, ok := s.get("run_1")
			require.Equal(t, c.active, ok)
			if c.active {
				require.Equal(t, c.want, got)
			}
		})
	}
}
