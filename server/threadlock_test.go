package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// TestThreadLockIsAtomic opens the window between CreateMessage's
// active-run check and its write on purpose (a test hook), and starts a run
// on the same thread inside it. The run must wait for the message: when it
// slips in, its model round starts without the message that the server then
// accepts (a user message on a locked thread).
func TestThreadLockIsAtomic(t *testing.T) {
	// seen receives the texts of each model round's messages.
	seen := make(chan []string, 4)
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		var texts []string
		for _, m := range in.Messages {
			texts = append(texts, server.MessageText(m))
		}
		seen <- texts
		return &server.ModelOutput{Text: "ok"}, nil
	})
	srv, ctx := newTestServer(t, server.WithModel(model))
	x := &rt{t: t, ctx: ctx, srv: srv, c: srv.Client}
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("first")

	type result struct {
		status int
		body   []byte
		err    error
	}
	runDone := make(chan result, 1)
	var once sync.Once
	srv.Server.SetMessageCheckedHook(func() {
		once.Do(func() {
			go func() {
				r, err := x.c.CreateRunWithResponse(context.WithoutCancel(ctx), thread, nil, gen.CreateRunRequest{AssistantId: a.Id})
				if err != nil {
					runDone <- result{err: err}
					return
				}
				runDone <- result{status: r.StatusCode(), body: r.Body}
			}()
			// When the run can slip into the window, its first model
			// round comes at once; give it ample time to show up.
			select {
			case texts := <-seen:
				seen <- texts
			case <-time.After(500 * time.Millisecond):
			}
		})
	})
	mr, err := x.c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent("second")})
	require.NoError(t, err)
	rr := <-runDone
	require.NoError(t, rr.err)
	require.Equal(t, http.StatusOK, rr.status, "body: %s", rr.body)
	require.Equal(t, http.StatusOK, mr.StatusCode(), "body: %s", mr.Body)

	var texts []string
	select {
	case texts = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's model round never came")
	}
	assert.Equal(t, []string{"first", "second"}, texts,
		"the message was accepted, so the run, which waited for it, must see it")
}

// TestThreadLockConcurrent races messages and runs on one thread, many
// times, under -race: a message is either refused because a run is active,
// or stored where the run cannot miss it: before the run started (and the
// run sees it) or after the run ended.
func TestThreadLockConcurrent(t *testing.T) {
	var mu sync.Mutex
	inputs := map[string][]string{} // run id -> message texts it saw
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		var texts []string
		for _, m := range in.Messages {
			texts = append(texts, server.MessageText(m))
		}
		mu.Lock()
		inputs[in.Run.Id] = texts
		mu.Unlock()
		return &server.ModelOutput{Text: "ok"}, nil
	})
	srv, ctx := newTestServer(t, server.WithModel(model))
	x := &rt{t: t, ctx: ctx, srv: srv, c: srv.Client}
	a := x.assistant(gen.CreateAssistantRequest{})
	for round := range 20 {
		thread := x.thread("start")
		var wg sync.WaitGroup
		var msgStatus, runStatus int
		var runID string
		text := fmt.Sprint("m", round)
		wg.Go(func() {
			r, err := x.c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent(text)})
			if assert.NoError(t, err) {
				msgStatus = r.StatusCode()
			}
		})
		wg.Go(func() {
			r, err := x.c.CreateRunWithResponse(ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.Id})
			if assert.NoError(t, err) {
				runStatus = r.StatusCode()
				if r.JSON200 != nil {
					runID = r.JSON200.Id
				}
			}
		})
		wg.Wait()
		require.Equal(t, http.StatusOK, runStatus)
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, msgStatus)
		require.Eventually(t, func() bool {
			return x.get(thread, runID).Status == gen.RunObjectStatusCompleted
		}, 10*time.Second, time.Millisecond)
		mu.Lock()
		saw := inputs[runID]
		mu.Unlock()
		// Ids sort by creation: a message accepted while no run was
		// active comes either before the run's reply, and then the run saw
		// it, or after the run ended.
		msgs := x.messages(thread)
		mi, ri := -1, -1
		for i, m := range msgs {
			switch {
			case m.Role == "user" && server.MessageText(m) == text:
				mi = i
			case m.Role == "assistant":
				ri = i
			}
		}
		require.GreaterOrEqual(t, ri, 0, "the run's reply")
		if msgStatus != http.StatusOK {
			assert.Equal(t, -1, mi, "a refused message is not stored")
			continue
		}
		require.GreaterOrEqual(t, mi, 0, "an accepted message is stored")
		if mi < ri {
			assert.Contains(t, saw, text, "a message stored before the run's reply was there when the run started")
		} else {
			assert.NotContains(t, saw, text)
		}
	}
}

// TestThreadLocksIndependent holds CreateMessage on one thread between its
// active-run check and its write (a test hook), and meanwhile creates a run,
// a thread with its run, and a message on other threads: they must not wait
// for the held thread. (They did, behind one server-wide mutex, and every
// create waited for the store's commit before it.)
func TestThreadLocksIndependent(t *testing.T) {
	srv, ctx := newTestServer(t)
	x := &rt{t: t, ctx: ctx, srv: srv, c: srv.Client}
	a := x.assistant(gen.CreateAssistantRequest{})
	held := x.thread("held")
	// Other threads on mutexes of their own (threads share one of 256 when
	// their ids say so).
	other := func() string {
		for {
			if th := x.thread("other"); !srv.Server.SameThreadMutex(th, held) {
				return th
			}
		}
	}
	runThread, msgThread := other(), other()

	release := make(chan struct{})
	others := make(chan error, 1)
	var first atomic.Bool // (a sync.Once would hold the other message)
	srv.Server.SetMessageCheckedHook(func() {
		if !first.CompareAndSwap(false, true) {
			return
		}
		func() {
			go func() {
				others <- func() error {
					r, err := x.c.CreateRunWithResponse(ctx, runThread, nil, gen.CreateRunRequest{AssistantId: a.Id})
					if err != nil || r.StatusCode() != http.StatusOK {
						return fmt.Errorf("create run: %v %s", err, r.Body)
					}
					tr, err := x.c.CreateThreadAndRunWithResponse(ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id})
					if err != nil || tr.StatusCode() != http.StatusOK {
						return fmt.Errorf("create thread and run: %v %s", err, tr.Body)
					}
					m, err := x.c.CreateMessageWithResponse(ctx, msgThread, gen.CreateMessageRequest{Role: "user", Content: msgContent("other")})
					if err != nil || m.StatusCode() != http.StatusOK {
						return fmt.Errorf("create message: %v %s", err, m.Body)
					}
					return nil
				}()
			}()
			// The held message waits here until the others are done, or
			// until the deadline says they waited for it.
			select {
			case err := <-others:
				others <- err
			case <-time.After(10 * time.Second):
				others <- fmt.Errorf("writes to other threads waited for the held thread")
			}
			close(release)
		}()
	})
	mr, err := x.c.CreateMessageWithResponse(ctx, held, gen.CreateMessageRequest{Role: "user", Content: msgContent("second")})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, mr.StatusCode(), "body: %s", mr.Body)
	<-release
	require.NoError(t, <-others)
}

// slowClaims is a memory store whose claim of an Idempotency-Key for a
// message, once armed, waits for release before it returns: the request
// then holds its claim while other requests go on.
type slowClaims struct {
	*memory.Store
	armed   atomic.Bool
	claimed chan struct{}
	release chan struct{}
}

func (s *slowClaims) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	old, ok, err := s.Store.ClaimIdempotencyKey(ctx, rec, now)
	if ok && strings.Contains(string(rec.Body), "thread.message") && s.armed.CompareAndSwap(true, false) {
		close(s.claimed)
		<-s.release
	}
	return old, ok, err
}

// TestKeyedMessageSortsAfterWhatItWaitedFor: a keyed createMessage (our
// client sends an Idempotency-Key) that waits between its claim and its
// write while a run starts and completes on the thread gets an id that
// sorts after the run's reply, which did not see it. (Its id was once
// chosen with the claim: it then sorted before the reply it never reached.)
func TestKeyedMessageSortsAfterWhatItWaitedFor(t *testing.T) {
	st := &slowClaims{Store: memory.New(), claimed: make(chan struct{}), release: make(chan struct{})}
	var mu sync.Mutex
	var saw []string
	model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range in.Messages {
			saw = append(saw, server.MessageText(m))
		}
		return &server.ModelOutput{Text: "ok"}, nil
	})
	srv, ctx := newTestServer(t, server.WithModel(model), server.WithStore(st))
	x := &rt{t: t, ctx: ctx, srv: srv, c: srv.Client}
	a := x.assistant(gen.CreateAssistantRequest{})
	thread := x.thread("start")

	st.armed.Store(true)
	var wg sync.WaitGroup
	var status int
	wg.Go(func() {
		r, err := x.c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent("late")})
		if assert.NoError(t, err) {
			status = r.StatusCode()
		}
	})
	<-st.claimed // the message's request holds its claim, and waits
	run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
	require.Eventually(t, func() bool { return x.get(thread, run.Id).Status == gen.RunObjectStatusCompleted },
		10*time.Second, time.Millisecond)
	close(st.release)
	wg.Wait()
	require.Equal(t, http.StatusOK, status)

	mu.Lock()
	assert.NotContains(t, saw, "late", "the run started before the message was written")
	mu.Unlock()
	msgs := x.messages(thread)
	var order []string
	for _, m := range msgs {
		order = append(order, string(m.Role)+":"+server.MessageText(m))
	}
	assert.Equal(t, []string{"user:start", "assistant:ok", "user:late"}, order, "messages in the order they were written")
}
