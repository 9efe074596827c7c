package helpers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// submitFault is what the fake does with one submission.
type submitFault int

const (
	submitOK         submitFault = iota
	acceptThen500                // take the outputs, answer 500
	acceptThenDrop               // take the outputs, drop the connection
	reject500                    // answer 500 without taking the outputs
	acceptThenForget             // answer 200, but keep asking for the same calls
)

// tlFake is a stateful fake of the run endpoints (get, submit, cancel,
// create) for the tool loop, served in process (an http.RoundTripper
// calling the handler through httptest.ResponseRecorder) so that it runs in
// a synctest bubble.
type tlFake struct {
	t  *testing.T
	mu sync.Mutex
	// rounds are the required actions, in order: (id, name, arguments)
	// triples. After the last one the run completes (or finalStatus).
	rounds      [][]string
	finalStatus string
	// endless makes every round require action with new call ids.
	endless bool
	// faults[n] is applied to the n-th submission (default submitOK).
	faults map[int]submitFault

	status  string
	round   int
	submits [][]gen.SubmitToolOutputsRunRequestToolOutput
	cancels int
	gets    int
	creates []map[string]any
}

func newTLFake(t *testing.T, rounds ...[]string) (*tlFake, *assistants.Client) {
	t.Helper()
	f := &tlFake{t: t, rounds: rounds, status: "queued", finalStatus: "completed", faults: map[int]submitFault{}}
	c, err := assistants.New(
		assistants.WithBaseURL("http://fake.test/v1"),
		assistants.WithAPIKey("sk-test-key"),
		assistants.WithMaxRetries(0),
		assistants.WithHTTPClient(&http.Client{Transport: f}),
	)
	require.NoError(t, err)
	return f, c
}

// pendingCalls returns the current round's calls as JSON values.
func (f *tlFake) pendingCalls() []any {
	var triples []string
	if f.endless {
		triples = []string{fmt.Sprint("call_r", f.round), "echo", fmt.Sprintf(`{"n":%d}`, f.round)}
	} else {
		triples = f.rounds[f.round]
	}
	var tc []any
	for i := 0; i+2 < len(triples); i += 3 {
		tc = append(tc, map[string]any{"id": triples[i], "type": "function",
			"function": map[string]any{"name": triples[i+1], "arguments": triples[i+2]}})
	}
	return tc
}

func (f *tlFake) runJSON() []byte {
	m := map[string]any{
		"id": "run_1", "object": "thread.run", "created_at": 1, "assistant_id": "asst_1", "thread_id": "thread_1",
		"status": f.status, "model": "m", "instructions": "", "tools": []any{}, "parallel_tool_calls": true,
		"response_format": "auto",
	}
	if f.status == "requires_action" {
		m["required_action"] = map[string]any{"type": "submit_tool_outputs",
			"submit_tool_outputs": map[string]any{"tool_calls": f.pendingCalls()}}
	}
	if f.status == "failed" {
		m["last_error"] = map[string]any{"code": "server_error", "message": "model crashed"}
	}
	b, _ := json.Marshal(m)
	return b
}

// advance moves a queued/in_progress run on: to its next required action
// or to the final status.
func (f *tlFake) advance() {
	switch f.status {
	case "queued", "in_progress":
		if f.endless || f.round < len(f.rounds) {
			f.status = "requires_action"
		} else {
			f.status = f.finalStatus
		}
	case "cancelling":
		f.status = "cancelled"
	}
}

func (f *tlFake) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		_ = req.Body.Close()
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	drop := f.serve(rec, req, body)
	if drop {
		return nil, errors.New("connection reset by fake")
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func (f *tlFake) fail(w *httptest.ResponseRecorder, code int, msg string) {
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
	_, _ = w.Write(b)
}

// serve handles one request; it returns true to drop the connection.
func (f *tlFake) serve(w *httptest.ResponseRecorder, req *http.Request, body []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(req.URL.Path, "/v1")
	switch {
	case req.Method == http.MethodPost && path == "/threads/thread_1/runs":
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		f.creates = append(f.creates, m)
		f.status = "queued"
		_, _ = w.Write(f.runJSON())
	case req.Method == http.MethodGet && path == "/threads/thread_1/runs/run_1":
		f.gets++
		_, _ = w.Write(f.runJSON())
		f.advance()
	case req.Method == http.MethodPost && path == "/threads/thread_1/runs/run_1/cancel":
		f.cancels++
		if f.status == "completed" || f.status == "failed" || f.status == "cancelled" {
			f.fail(w, 400, "run already ended")
			return false
		}
		f.status = "cancelling"
		_, _ = w.Write(f.runJSON())
	case req.Method == http.MethodPost && path == "/threads/thread_1/runs/run_1/submit_tool_outputs":
		var sub gen.SubmitToolOutputsRunRequest
		if err := json.Unmarshal(body, &sub); err != nil {
			f.fail(w, 400, "bad body")
			return false
		}
		n := len(f.submits)
		f.submits = append(f.submits, sub.ToolOutputs)
		fault := f.faults[n]
		if fault == reject500 {
			f.fail(w, 500, "overloaded")
			return false
		}
		if f.status != "requires_action" {
			f.fail(w, 400, "run is not waiting for tool outputs")
			return false
		}
		// Every pending call must be answered.
		want := map[string]bool{}
		for _, c := range f.pendingCalls() {
			want[c.(map[string]any)["id"].(string)] = true
		}
		for _, o := range sub.ToolOutputs {
			delete(want, *o.ToolCallId)
		}
		if len(want) > 0 {
			f.fail(w, 400, "missing tool outputs")
			return false
		}
		if fault != acceptThenForget {
			f.round++
			f.status = "queued"
		}
		switch fault {
		case acceptThen500:
			f.fail(w, 500, "lost the answer")
		case acceptThenDrop:
			return true
		default:
			_, _ = w.Write(f.runJSON())
		}
	default:
		f.fail(w, 404, "no route "+req.Method+" "+path)
	}
	return false
}

func (f *tlFake) snapshot() (submits [][]gen.SubmitToolOutputsRunRequestToolOutput, cancels int, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]gen.SubmitToolOutputsRunRequestToolOutput(nil), f.submits...), f.cancels, f.status
}

// barrier releases its waiters once n have arrived; a waiter gives up after
// a minute (of virtual time in a bubble), which only happens when the calls
// do not run concurrently.
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

// reset makes the barrier usable for another n arrivals.
func (b *barrier) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.arrived, b.all = 0, make(chan struct{})
}

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.arrived++
	all := b.all
	if b.arrived == b.n {
		close(all)
	}
	b.mu.Unlock()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("barrier: the calls did not run concurrently")
	}
}

type echoArgs struct {
	N int `json:"n"`
}

// One round with 3 parallel calls (a barrier proves they ran at once), a
// failing handler, a panic, an unknown tool and bad arguments; all outputs
// go in one submission and the run completes.
func TestRunToolLoopOneRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t, []string{
			"call_a", "together", `{"n":1}`,
			"call_b", "together", `{"n":2}`,
			"call_c", "together", `{"n":3}`,
			"call_d", "fails", `{}`,
			"call_e", "panics", `{}`,
			"call_f", "no_such_tool", `{}`,
			"call_g", "together", `{"n":"four"}`,
		})
		bar := newBarrier(3)
		var handled atomic.Int32
		reg := MustRegistry(
			Func("together", "", func(ctx context.Context, a echoArgs) (string, error) {
				handled.Add(1)
				if err := bar.wait(ctx); err != nil {
					return "", err
				}
				return fmt.Sprint("together ", a.N), nil
			}),
			Func("fails", "", func(context.Context, emptyArgs) (string, error) { return "", errors.New("backend unavailable") }),
			Func("panics", "", func(context.Context, emptyArgs) (string, error) { panic("nil map") }),
		)
		var results sync.Map
		run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg, WithExecOptions(ExecOptions{
			OnToolResult: func(_ context.Context, call gen.RunToolCallObject, out string, err error) {
				results.Store(call.Id, err)
			},
		}))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		subs, cancels, _ := f.snapshot()
		require.Len(t, subs, 1, "all outputs in one submission")
		assert.Zero(t, cancels)
		m := outputsByID(t, subs[0])
		assert.Equal(t, "together 1", m["call_a"])
		assert.Equal(t, "together 2", m["call_b"])
		assert.Equal(t, "together 3", m["call_c"])
		assert.JSONEq(t, `{"error":"backend unavailable"}`, m["call_d"])
		assert.JSONEq(t, `{"error":"tool panics panicked: nil map"}`, m["call_e"])
		assert.Contains(t, m["call_f"], `unknown tool \"no_such_tool\"`)
		assert.Contains(t, m["call_g"], `invalid arguments for together`)
		assert.Contains(t, m["call_g"], `/properties/n`)
		assert.Equal(t, int32(3), handled.Load(), "bad arguments never reach the handler")
		e, _ := results.Load("call_e")
		assert.IsType(t, &PanicError{}, e)
	})
}

// Several rounds in a row; each call id runs once.
func TestRunToolLoopRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t,
			[]string{"c1", "echo", `{"n":1}`},
			[]string{"c2", "echo", `{"n":2}`, "c3", "echo", `{"n":3}`},
			[]string{"c4", "echo", `{"n":4}`},
		)
		var calls atomic.Int32
		reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { calls.Add(1); return a.N * 10, nil }))
		run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg, WithMaxRounds(3))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		subs, _, _ := f.snapshot()
		require.Len(t, subs, 3)
		assert.Equal(t, map[string]string{"c2": "20", "c3": "30"}, outputsByID(t, subs[1]))
		assert.Equal(t, int32(4), calls.Load())
	})
}

// Exactly once: the server takes the outputs but the answer is lost (500,
// dropped connection); or refuses them (500) before taking them; or takes
// them and asks again. Handlers run once per call id in every case.
func TestRunToolLoopExactlyOnce(t *testing.T) {
	tests := []struct {
		name        string
		fault       submitFault
		wantSubmits int
	}{
		{"accepted then 500", acceptThen500, 1},
		{"accepted then dropped", acceptThenDrop, 1},
		{"refused with 500", reject500, 2},
		{"accepted and asked again", acceptThenForget, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newTLFake(t,
					[]string{"c1", "echo", `{"n":1}`, "c2", "echo", `{"n":2}`},
					[]string{"c3", "echo", `{"n":3}`},
				)
				f.faults[0] = tt.fault
				counts := map[int]int{}
				var mu sync.Mutex
				reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) {
					mu.Lock()
					defer mu.Unlock()
					counts[a.N]++
					return a.N, nil
				}))
				run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg)
				require.NoError(t, err)
				assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
				assert.Equal(t, map[int]int{1: 1, 2: 1, 3: 1}, counts, "each handler ran once")
				subs, _, _ := f.snapshot()
				require.Len(t, subs, tt.wantSubmits+1)
				if tt.wantSubmits == 2 {
					assert.Equal(t, outputsByID(t, subs[0]), outputsByID(t, subs[1]), "the cached outputs are resubmitted")
				}
			})
		})
	}
}

// A submission that keeps failing while the run still waits gives up after
// SubmitAttempts with the submission's error and the run.
func TestRunToolLoopSubmitGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t, []string{"c1", "echo", `{"n":1}`})
		for i := range 10 {
			f.faults[i] = reject500
		}
		var calls atomic.Int32
		reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { calls.Add(1); return a.N, nil }))
		run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg)
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 500, apiErr.StatusCode)
		require.NotNil(t, run)
		assert.Equal(t, gen.RunObjectStatusRequiresAction, run.Status)
		subs, _, _ := f.snapshot()
		assert.Len(t, subs, DefaultSubmitAttempts)
		assert.Equal(t, int32(1), calls.Load())
	})
}

// Past MaxRounds the loop cancels the run and returns a *MaxRoundsError.
func TestRunToolLoopMaxRounds(t *testing.T) {
	for _, tt := range []struct {
		opt  []func(*ToolLoopOptions)
		want int
	}{{nil, DefaultMaxRounds}, {[]func(*ToolLoopOptions){WithMaxRounds(2)}, 2}} {
		t.Run(fmt.Sprint(tt.want), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newTLFake(t)
				f.endless = true
				var calls atomic.Int32
				reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { calls.Add(1); return a.N, nil }))
				run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg, tt.opt...)
				require.ErrorIs(t, err, ErrMaxRounds)
				var mr *MaxRoundsError
				require.ErrorAs(t, err, &mr)
				assert.Equal(t, tt.want, mr.Rounds)
				assert.Equal(t, "run_1", mr.RunID)
				assert.Equal(t, fmt.Sprintf("helpers: run run_1: too many tool rounds (limit %d)", tt.want), err.Error())
				assert.Equal(t, int32(tt.want), calls.Load())
				_, cancels, status := f.snapshot()
				assert.Equal(t, 1, cancels, "the run is cancelled")
				assert.Equal(t, "cancelling", status)
				assert.Equal(t, gen.RunObjectStatusCancelling, run.Status)
			})
		})
	}
}

// Cancelling ctx (while a handler runs, or while polling) cancels the run,
// best effort, and returns ctx's error.
func TestRunToolLoopCancellation(t *testing.T) {
	t.Run("during handler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, c := newTLFake(t, []string{"c1", "block", `{}`})
			ctx, cancel := context.WithCancel(t.Context())
			reg := MustRegistry(Func("block", "", func(hctx context.Context, _ emptyArgs) (string, error) {
				cancel()
				<-hctx.Done()
				return "", hctx.Err()
			}))
			run, err := RunToolLoop(ctx, c, "thread_1", "run_1", reg)
			require.ErrorIs(t, err, context.Canceled)
			require.NotNil(t, run)
			assert.Equal(t, gen.RunObjectStatusCancelling, run.Status)
			subs, cancels, _ := f.snapshot()
			assert.Equal(t, 1, cancels)
			assert.Empty(t, subs, "nothing is submitted after cancellation")
		})
	})
	t.Run("during poll wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, c := newTLFake(t, []string{"c1", "echo", `{"n":1}`})
			f.status = "in_progress"
			f.rounds = nil
			f.finalStatus = "in_progress" // never ends
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			run, err := RunToolLoop(ctx, c, "thread_1", "run_1", MustRegistry(), WithPollOptions(poller.WithInterval(time.Hour)))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 5*time.Second, time.Since(start), "returns as the deadline passes")
			assert.Equal(t, gen.RunObjectStatusCancelling, run.Status)
			_, cancels, _ := f.snapshot()
			assert.Equal(t, 1, cancels)
		})
	})
}

// A run that fails ends the loop with a *poller.RunError; a missing run
// with the 404.
func TestRunToolLoopEndStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t, []string{"c1", "echo", `{"n":1}`})
		f.finalStatus = "failed"
		reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { return a.N, nil }))
		run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg)
		var re *poller.RunError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "model crashed", re.Message)
		assert.Equal(t, gen.RunObjectStatusFailed, run.Status)
		_, cancels, _ := f.snapshot()
		assert.Zero(t, cancels, "a final run is not cancelled")

		run, err = RunToolLoop(t.Context(), c, "thread_1", "run_404", reg)
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 404, apiErr.StatusCode)
		assert.Nil(t, run)
	})
}

// RunTools creates the run, then loops.
func TestRunTools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t, []string{"c1", "echo", `{"n":5}`})
		reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { return a.N, nil }))
		stream, tools := true, reg.Tools()
		run, err := RunTools(t.Context(), c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1", Tools: &tools, Stream: &stream}, reg)
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		require.Len(t, f.creates, 1)
		assert.NotContains(t, f.creates[0], "stream")
		assert.Len(t, f.creates[0]["tools"], 1)
		subs, _, _ := f.snapshot()
		require.Len(t, subs, 1)
		assert.Equal(t, map[string]string{"c1": "5"}, outputsByID(t, subs[0]))

		_, err = RunTools(t.Context(), c, "thread_missing", gen.CreateRunRequest{AssistantId: "asst_1"}, reg)
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 404, apiErr.StatusCode)
	})
}

// The ledger runs each call id once, even when it appears twice.
func TestCallLedger(t *testing.T) {
	var n atomic.Int32
	reg := MustRegistry(Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { n.Add(1); return a.N, nil }))
	l := newCallLedger()
	calls := []gen.RunToolCallObject{tlCall("a", "echo", `{"n":1}`), tlCall("a", "echo", `{"n":1}`), tlCall("b", "echo", `{"n":2}`)}
	assert.True(t, l.hasNew(calls))
	outs, err := l.execute(context.Background(), reg, calls, ExecOptions{})
	require.NoError(t, err)
	require.Len(t, outs, 3)
	assert.Equal(t, "a", *outs[1].ToolCallId)
	assert.Equal(t, "1", *outs[1].Output)
	assert.Equal(t, int32(2), n.Load())
	assert.False(t, l.hasNew(calls))
	_, err = l.execute(context.Background(), reg, calls, ExecOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(2), n.Load())
	cached, ok := l.cached(calls[:1])
	require.True(t, ok)
	assert.Equal(t, "1", *cached[0].Output)
	_, ok = l.cached([]gen.RunToolCallObject{tlCall("z", "echo", "{}")})
	assert.False(t, ok)
}

// *assistants.Client satisfies the loops' client interfaces.
var (
	_ ToolLoopClient          = (*assistants.Client)(nil)
	_ RunToolsClient          = (*assistants.Client)(nil)
	_ StreamToolClient        = (*assistants.Client)(nil)
	_ StreamRunToolsClient    = (*assistants.Client)(nil)
	_ VectorStoreBatchClient  = (*assistants.Client)(nil)
	_ VectorStoreUploadClient = (*assistants.Client)(nil)
)

// Against the embedded server (in process, on the bubble's clock): three
// parallel calls meet at a barrier, and with seeded faults on the submit
// and get routes (500s, 503s, dropped connections, before the server acts)
// every run still completes with each handler run once per call id.
func TestRunToolLoopEmbeddedServer(t *testing.T) {
	for _, faulty := range []bool{false, true} {
		t.Run(fmt.Sprintf("faults=%v", faulty), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var opts []server.Option
				opts = append(opts, server.WithStepDelay(50*time.Millisecond))
				if faulty {
					opts = append(opts, assistantstest.WithoutResponseValidation(), server.WithFaults(&server.Faults{Seed: 7, Routes: map[string]server.FaultRates{
						"submitToolOuputsToRun": {ServerError: 0.3, Unavailable: 0.1, Drop: 0.3},
						"getRun":                {ServerError: 0.3, Drop: 0.2},
					}}))
				}
				srv := assistantstest.NewInProcessServer(t, opts...)
				counter := &faultCounter{next: srv.Transport()}
				c, err := srv.NewClient(assistants.WithMaxRetries(2), assistants.WithHTTPClient(&http.Client{Transport: counter}))
				require.NoError(t, err)
				ctx := t.Context()

				var mu sync.Mutex
				counts := map[string]int{}
				bar := newBarrier(3)
				reg := MustRegistry(
					Func("get_weather", "", func(ctx context.Context, a weatherArgs) (string, error) {
						mu.Lock()
						counts["get_weather "+a.City]++
						mu.Unlock()
						if err := bar.wait(ctx); err != nil {
							return "", err
						}
						return "sunny in " + a.City, nil
					}),
					Func("get_time", "", func(ctx context.Context, a weatherArgs) (string, error) {
						mu.Lock()
						counts["get_time "+a.City]++
						mu.Unlock()
						if err := bar.wait(ctx); err != nil {
							return "", err
						}
						return "noon in " + a.City, nil
					}),
					Func("get_news", "", func(ctx context.Context, a emptyArgs) (string, error) {
						mu.Lock()
						counts["get_news"]++
						mu.Unlock()
						if err := bar.wait(ctx); err != nil {
							return "", err
						}
						return "all quiet", nil
					}),
				)
				tools := reg.Tools()
				asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &tools})
				require.NoError(t, err)
				const runs = 5
				for i := range runs {
					bar.reset()
					m := gen.CreateMessageRequest{Role: "user"}
					require.NoError(t, m.Content.FromCreateMessageText(`get_weather {"city":"Paris"} get_time {"city":"Oslo"} get_news`))
					msgs := []gen.CreateMessageRequest{m}
					thread, err := c.CreateThread(ctx, gen.CreateThreadRequest{Messages: &msgs})
					require.NoError(t, err)

					run, err := RunTools(ctx, c, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}, reg,
						WithPollOptions(poller.WithInterval(10*time.Millisecond)))
					require.NoError(t, err, "run %d", i)
					assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)

					order, limit := gen.ListMessagesParamsOrderDesc, 1
					page, err := c.ListMessages(ctx, thread.Id, &gen.ListMessagesParams{Order: &order, Limit: &limit})
					require.NoError(t, err)
					require.Len(t, page.Data, 1)
					assert.Equal(t, "get_weather returned: sunny in Paris\nget_time returned: noon in Oslo\nget_news returned: all quiet", MessageText(page.Data[0]))
				}
				assert.Equal(t, map[string]int{"get_weather Paris": runs, "get_time Oslo": runs, "get_news": runs}, counts, "one handler call per call id")
				if faulty {
					assert.Positive(t, counter.submitFaults.Load(), "faults were injected on submit")
					t.Logf("faults seen by the transport: %d (submit: %d)", counter.faults.Load(), counter.submitFaults.Load())
				} else {
					assert.Zero(t, counter.faults.Load())
				}
			})
		})
	}
}

// faultCounter counts failed attempts (5xx, 429, dropped connections).
type faultCounter struct {
	next         http.RoundTripper
	faults       atomic.Int32
	submitFaults atomic.Int32
}

func (f *faultCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(req)
	if err != nil || resp.StatusCode >= 500 || resp.StatusCode == 429 {
		f.faults.Add(1)
		if strings.HasSuffix(req.URL.Path, "/submit_tool_outputs") {
			f.submitFaults.Add(1)
		}
	}
	return resp, err
}

// A handler that ignores its ctx does not hang the tool loop: past
// CallTimeout its call gets an error output, the outputs are submitted and
// the run completes.
func TestRunToolLoopCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newTLFake(t, []string{"c1", "hang", `{}`, "c2", "echo", `{"n":2}`})
		release := make(chan struct{})
		reg := MustRegistry(
			Func("hang", "", func(context.Context, emptyArgs) (string, error) { <-release; return "too late", nil }),
			Func("echo", "", func(_ context.Context, a echoArgs) (int, error) { return a.N, nil }),
		)
		run, err := RunToolLoop(t.Context(), c, "thread_1", "run_1", reg,
			WithExecOptions(ExecOptions{CallTimeout: 30 * time.Second, OnToolCall: func(_ context.Context, call gen.RunToolCallObject) {
				if call.Id == "c2" {
					panic("hook bug")
				}
			}}))
		close(release)
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		subs, _, _ := f.snapshot()
		require.Len(t, subs, 1)
		m := outputsByID(t, subs[0])
		assert.Contains(t, m["c1"], "tool call timed out")
		assert.JSONEq(t, `{"error":"OnToolCall hook for tool echo panicked: hook bug"}`, m["c2"])
	})
}

// When ctx ends while requests fail, the loop's error carries the last
// request's error as well as ctx's.
func TestRunToolLoopKeepsLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every request fails with 503.
		c503, err := assistants.New(assistants.WithBaseURL("http://fake.test/v1"), assistants.WithMaxRetries(0),
			assistants.WithHTTPClient(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				rec := httptest.NewRecorder()
				rec.Header().Set("Content-Type", "application/json")
				rec.WriteHeader(503)
				_, _ = rec.WriteString(`{"error":{"message":"overloaded","type":"server_error"}}`)
				resp := rec.Result()
				resp.Request = r
				return resp, nil
			})}))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = RunToolLoop(ctx, c503, "thread_1", "run_1", MustRegistry())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
	})
}

// roundTripFunc is an in-process http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
