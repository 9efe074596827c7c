package server

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// writeLog is a memory store that records what each UpdateRun wrote. With
// release set, the first write that stores a message delta, once
// committed, closes held and waits for release before it returns: the
// write is in flight while the model goes on.
type writeLog struct {
	*memory.Store
	release chan struct{}
	held    chan struct{}

	mu     sync.Mutex
	writes []store.RunChange
}

func (s *writeLog) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	var change store.RunChange
	r, evs, err := s.Store.UpdateRun(ctx, project, threadID, id, func(r *store.Run) (store.RunChange, error) {
		c, err := fn(r)
		change = c
		return c, err
	})
	if err != nil {
		return r, evs, err
	}
	s.mu.Lock()
	s.writes = append(s.writes, change)
	var held chan struct{}
	if s.release != nil && s.held != nil && slices.ContainsFunc(change.Events, func(ev store.Event) bool { return ev.Type == "thread.message.delta" }) {
		held, s.held = s.held, nil
	}
	s.mu.Unlock()
	if held != nil {
		close(held)
		<-s.release
	}
	return r, evs, err
}

// deltaValues returns the text of the thread.message.delta events of evs.
func deltaValues(t *testing.T, evs []store.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Type != "thread.message.delta" {
			continue
		}
		var d gen.MessageDeltaObject
		require.NoError(t, json.Unmarshal(ev.Data, &d))
		require.NotNil(t, d.Delta.Content)
		require.Len(t, *d.Delta.Content, 1)
		out = append(out, *(*d.Delta.Content)[0].Text.Value)
	}
	return out
}

// TestWriterCoalescesDeltas: the deltas a model emits while a write is in
// flight, or all of them for a model that does not wait for the store, are
// stored together, each still its own thread.message.delta event in the
// order emitted; the deltas left when the model returns go in the round's
// final write (the run completes, or fails). The message stored by every
// write holds the text of the delta events stored so far. One write per
// delta (the writer before coalescing) takes N+2 writes for N deltas.
func TestWriterCoalescesDeltas(t *testing.T) {
	words := strings.Fields(strings.Repeat("many words in a burst ", 8))
	for i := range words {
		words[i] += " "
	}
	failure := &ModelError{Code: ModelErrServer, Message: "The model broke."}
	cases := []struct {
		name   string
		deltas []string // emitted: the first alone, the rest while its write is held in the store
		text   string   // the reply of a model that does not stream
		err    error    // returned after the deltas
		writes int      // UpdateRun calls from in_progress to the end
		tail   []string // the deltas of the last write
		status gen.RunObjectStatus
		msg    gen.MessageObjectStatus
	}{
		{name: "a burst behind a write in flight", deltas: words, writes: 3, tail: words[1:],
			status: gen.RunObjectStatusCompleted, msg: gen.MessageObjectStatusCompleted},
		{name: "a model that does not stream", text: "the whole reply", writes: 2, tail: []string{"the whole reply"},
			status: gen.RunObjectStatusCompleted, msg: gen.MessageObjectStatusCompleted},
		{name: "a model that fails after a burst", deltas: words[:3], err: failure, writes: 3, tail: words[1:3],
			status: gen.RunObjectStatusFailed, msg: gen.MessageObjectStatusIncomplete},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &writeLog{Store: memory.New()}
				if len(tc.deltas) > 0 {
					st.release, st.held = make(chan struct{}), make(chan struct{})
				}
				held := st.held
				model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
					if len(tc.deltas) > 0 {
						emit(tc.deltas[0])
						<-held // the first delta's write is committed, and held in the store
						for _, d := range tc.deltas[1:] {
							emit(d)
						}
					}
					if tc.err != nil {
						return nil, tc.err
					}
					return &ModelOutput{Text: tc.text}, nil
				})
				f := newResumeFixture(t, model, nil, WithStore(st))
				a := f.round(t)
				st.mu.Lock()
				st.writes = nil
				st.mu.Unlock()

				done := make(chan error, 1)
				go func() { done <- f.s.eng.work(f.ctx, a) }()
				if st.release != nil {
					synctest.Wait() // the model returned, or waits in emit for the store
					close(st.release)
				}
				require.NoError(t, <-done)

				emitted := tc.deltas
				if tc.text != "" {
					emitted = []string{tc.text}
				}
				var stored []string
				for i, w := range st.writes {
					stored = append(stored, deltaValues(t, w.Events)...)
					for _, m := range w.Messages {
						msg, err := decodeData[gen.MessageObject](m.Data)
						require.NoError(t, err)
						assert.Equal(t, strings.Join(stored, ""), MessageText(msg), "write %d: the message holds the deltas stored so far", i)
					}
				}
				assert.Equal(t, emitted, stored, "every delta, once, in order")
				assert.Equal(t, tc.writes, len(st.writes), "writes from in_progress to the end")
				require.NotEmpty(t, st.writes)
				assert.Equal(t, tc.tail, deltaValues(t, st.writes[len(st.writes)-1].Events), "the final write stores the deltas left")

				assert.Equal(t, tc.status, f.get(t).Status)
				msgs := f.assistantMessages(t)
				require.Len(t, msgs, 1)
				assert.Equal(t, strings.Join(emitted, ""), MessageText(msgs[0]))
				assert.Equal(t, tc.msg, msgs[0].Status)
				require.NoError(t, f.s.Close())
			})
		})
	}
}

// panickyStore is a memory store whose first UpdateRun that stores a
// message delta panics before it writes anything.
type panickyStore struct {
	*memory.Store
	once sync.Once
	hit  chan struct{} // closed as the write panics
}

func (s *panickyStore) UpdateRun(ctx context.Context, project, threadID, id string, fn func(*store.Run) (store.RunChange, error)) (store.Run, []store.Event, error) {
	return s.Store.UpdateRun(ctx, project, threadID, id, func(r *store.Run) (store.RunChange, error) {
		c, err := fn(r)
		if err == nil && slices.ContainsFunc(c.Events, func(ev store.Event) bool { return ev.Type == "thread.message.delta" }) {
			s.once.Do(func() {
				close(s.hit)
				panic("the store broke")
			})
		}
		return c, err
	})
}

// TestWriterPanicFailsTheRun: a panic in the drainer's write (its own
// goroutine, out of the round's recover) fails the run with server_error,
// as a panic in the round does, and the process goes on.
func TestWriterPanicFailsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &panickyStore{Store: memory.New(), hit: make(chan struct{})}
		model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
			emit("a ")
			<-st.hit // the drainer's write of the first delta panics
			emit("reply")
			return &ModelOutput{}, nil
		})
		f := newResumeFixture(t, model, nil, WithStore(st))
		a := f.round(t)
		require.NoError(t, f.s.eng.work(f.ctx, a))
		run := f.get(t)
		assert.Equal(t, gen.RunObjectStatusFailed, run.Status)
		require.NotNil(t, run.LastError)
		assert.Equal(t, gen.RunObjectLastErrorCodeServerError, run.LastError.Code)
		require.NoError(t, f.s.Close())
	})
}

// TestLateModelOutputExpiresTheRun: a model that ignores its context and
// answers after the run's expires_at does not complete the run (its
// deltas after the deadline were not stored): the run expires.
func TestLateModelOutputExpiresTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := ModelFunc(func(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
			emit("early ")
			time.Sleep(11 * time.Minute) // past expires_at (10 minutes), ignoring ctx
			emit("late")
			return &ModelOutput{}, nil
		})
		f := newResumeFixture(t, model, nil)
		require.NoError(t, f.s.eng.work(f.ctx, f.round(t)))
		assert.Equal(t, gen.RunObjectStatusExpired, f.get(t).Status)
		for _, m := range f.assistantMessages(t) {
			assert.NotContains(t, MessageText(m), "late", "a delta after the deadline is not stored")
		}
		require.NoError(t, f.s.Close())
	})
}
