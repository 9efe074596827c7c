package storetest

import (
	"testing"

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
