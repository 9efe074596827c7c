package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// BenchMessages is the size of the thread BenchListMessages lists.
const BenchMessages = 100_000

// BenchListMessages measures listing 100 messages of a thread of
// BenchMessages (of 2 KB each, like the server's load figures): the newest
// page, a page after a cursor in the middle, and a page before it. The
// thread is written once, in one transaction, before the timer starts;
// then settle, when not nil, runs (PostgreSQL: ANALYZE, as autovacuum
// would after such a load; without statistics its planner may sort the
// whole thread).
func BenchListMessages(b *testing.B, s store.Store, settle func()) {
	ctx := b.Context()
	th := store.Thread{ID: newID("thread_"), Data: data("t")}
	body := make([]byte, 2048)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	msgs := make([]store.Message, BenchMessages)
	for i := range msgs {
		msgs[i] = store.Message{ID: newID("msg_"), CreatedAt: int64(i), Data: body}
	}
	if err := s.CreateThread(ctx, th, msgs); err != nil {
		b.Fatal(err)
	}
	// Another thread, so that the list has to pick its thread's rows.
	other := store.Thread{ID: newID("thread_")}
	if err := s.CreateThread(ctx, other, []store.Message{{ID: newID("msg_")}}); err != nil {
		b.Fatal(err)
	}
	if settle != nil {
		settle()
	}
	mid := msgs[BenchMessages/2].ID
	for _, c := range []struct {
		name string
		lp   store.ListParams
	}{
		{"newest", store.ListParams{Limit: 100, Desc: true}},
		{"after_middle", store.ListParams{Limit: 100, Desc: true, After: mid}},
		{"before_middle", store.ListParams{Limit: 100, Desc: true, Before: mid}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.ListMessages(ctx, "", th.ID, "", c.lp)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Items) != 100 || !p.HasMore {
					b.Fatalf("page of %d, has_more %v", len(p.Items), p.HasMore)
				}
			}
		})
	}
}

// BenchConversation measures the store's own work in one of the server's
// conversations (internal/e2e BenchmarkStores/*/Conversation) without the
// server: createThreadAndRun's write (a thread, its message, the run, its
// first events and its round's backup job), the round's reads (the
// assistant and the run), the round's last write (the run completed, the
// reply, its step, the round's events, the backup deleted) and one poll
// that sees it completed. The data are of the server's sizes. 32
// conversations run at once per GOMAXPROCS, as in BenchmarkStores. It is a
// floor for the server's conversation: what the store costs before HTTP,
// JSON and the run engine. Sub-benchmarks: "whole" is all of it,
// "writes" the two writes alone.
func BenchConversation(b *testing.B, s store.Store) {
	c := conversation{s: s, asst: store.Assistant{ID: newID("asst_"), Data: sized("a", 500)},
		run: sized("r", 700), step: sized("s", 600), msg: sized("m", 450)}
	if err := s.CreateAssistant(b.Context(), c.asst); err != nil {
		b.Fatal(err)
	}
	c.created = c.events("thread.run.created", "thread.run.queued")
	c.round = c.events("thread.run.in_progress", "thread.run.step.created", "thread.run.step.in_progress",
		"thread.message.created", "thread.message.in_progress", "thread.message.delta", "thread.message.delta",
		"thread.message.delta", "thread.message.completed", "thread.run.step.completed", "thread.run.completed")
	for _, reads := range []bool{true, false} {
		name := "whole"
		if !reads {
			name = "writes"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.once(b.Context(), reads); err != nil {
						b.Error(err) // not Fatal: this is not the benchmark's goroutine
						return
					}
				}
			})
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "conv/s")
			}
		})
	}
}

// conversation is what BenchConversation writes: the assistant, and data
// and events of the server's sizes.
type conversation struct {
	s              store.Store
	asst           store.Assistant
	run, step, msg []byte
	created, round []store.Event
}

// events returns events of the types, with data of their kind's size.
func (c *conversation) events(types ...string) []store.Event {
	evs := make([]store.Event, len(types))
	for i, t := range types {
		d := c.run
		switch {
		case strings.Contains(t, "step"):
			d = c.step
		case strings.HasSuffix(t, "delta"):
			d = sized("d", 150)
		case strings.HasPrefix(t, "thread.message"):
			d = c.msg
		}
		evs[i] = store.Event{Type: t, Data: d}
	}
	return evs
}

// once runs one conversation; without reads, its two writes alone.
func (c *conversation) once(ctx context.Context, reads bool) error {
	th := store.Thread{ID: newID("thread_"), CreatedAt: 1, Data: sized("t", 200)}
	r := store.Run{ID: newID("run_"), ThreadID: th.ID, AssistantID: c.asst.ID, Status: store.RunQueued,
		CreatedAt: 2, ExpiresAt: 600, Data: c.run, State: []byte(`{"round":0}`)}
	var job int64
	if _, _, err := c.s.CreateRun(ctx, store.NewRun{Thread: &th, Run: r,
		Messages: []store.Message{{ID: newID("msg_"), CreatedAt: 1, Data: c.msg}},
		Events:   c.created,
		Jobs:     []store.Job{{Args: testJob{RunID: r.ID}, ScheduledAt: time.Now().Add(10 * time.Minute), ID: &job}}}); err != nil {
		return err
	}
	if reads {
		if _, err := c.s.GetAssistant(ctx, "", c.asst.ID); err != nil {
			return err
		}
		if _, err := c.s.GetRun(ctx, "", th.ID, r.ID); err != nil {
			return err
		}
	}
	if _, _, err := c.s.UpdateRun(ctx, "", th.ID, r.ID, func(run *store.Run) (store.RunChange, error) {
		run.Status = "completed"
		return store.RunChange{
			Messages:   []store.Message{{ID: newID("msg_"), RunID: r.ID, CreatedAt: 3, Data: c.msg}},
			Steps:      []store.Step{{ID: newID("step_"), CreatedAt: 3, Data: c.step}},
			Events:     c.round,
			DeleteJobs: []int64{job},
		}, nil
	}); err != nil {
		return err
	}
	if !reads {
		return nil
	}
	got, err := c.s.GetRun(ctx, "", th.ID, r.ID)
	if err == nil && got.Status != "completed" {
		err = fmt.Errorf("run %s is %s, want completed", r.ID, got.Status)
	}
	return err
}

// sized returns JSON data of about n bytes.
func sized(tag string, n int) []byte {
	return []byte(`{"` + tag + `":"` + strings.Repeat("x", max(0, n-8)) + `"}`)
}
