package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestTakeJobs(t *testing.T) {
	s := memory.New()
	ctx := t.Context()
	th := store.Thread{ID: "thread_1"}
	if err := s.CreateThread(ctx, th, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.CreateRun(ctx, store.NewRun{Run: store.Run{ID: "run_1", ThreadID: th.ID, Status: store.RunQueued},
		Jobs: []store.Job{{Args: kindJob("start")}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("no wake-up after a write with a job")
	}
	jobs := s.TakeJobs()
	if len(jobs) != 1 || jobs[0].Args.Kind() != "start" {
		t.Fatalf("jobs %+v", jobs)
	}
	if left, _ := s.ListJobs(ctx, ""); len(left) != 0 || len(s.TakeJobs()) != 0 {
		t.Fatalf("jobs left after TakeJobs: %v", left)
	}
}

type kindJob string

func (k kindJob) Kind() string { return string(k) }

func BenchmarkListMessages(b *testing.B) { storetest.BenchListMessages(b, memory.New(), nil) }

// BenchmarkConversation: the store's work in a conversation of the server
// (storetest.BenchConversation).
func BenchmarkConversation(b *testing.B) { storetest.BenchConversation(b, memory.New()) }
