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

// --- building streams ---

// stRunJSON is a run object in status st; calls are (id, name, arguments)
// triples of the required action when st is requires_action.
func stRunJSON(st string, calls ...string) string {
	r := map[string]any{
		"id": "run_1", "object": "thread.run", "created_at": 1, "assistant_id": "asst_1", "thread_id": "thread_1",
		"status": st, "model": "m", "instructions": "", "tools": []any{}, "parallel_tool_calls": true,
		"response_format": "auto",
	}
	if len(calls) > 0 {
		var tc []any
		for i := 0; i+2 < len(calls); i += 3 {
			tc = append(tc, map[string]any{"id": calls[i], "type": "function",
				"function": map[string]any{"name": calls[i+1], "arguments": calls[i+2]}})
		}
		r["required_action"] = map[string]any{"type": "submit_tool_outputs",
			"submit_tool_outputs": map[string]any{"tool_calls": tc}}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func stSSE(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }

const stDone = "event: done\ndata: [DONE]\n\n"

// stTextEvents is a message written by the assistant, as deltas.
func stTextEvents(id string, pieces ...string) string {
	var b strings.Builder
	b.WriteString(stSSE(EventMessageCreated, `{"id":"`+id+`","object":"thread.message","created_at":1,"thread_id":"thread_1","status":"in_progress","role":"assistant","content":[]}`))
	for _, p := range pieces {
		q, _ := json.Marshal(p)
		b.WriteString(stSSE(EventMessageDelta, `{"id":"`+id+`","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":`+string(q)+`}}]}}`))
	}
	return b.String()
}

// stRequiresAction is the stream of a run that stops for tool calls.
func stRequiresAction(calls ...string) string {
	return stSSE(EventRunInProgress, stRunJSON("in_progress")) + stSSE(EventRunRequiresAction, stRunJSON("requires_action", calls...)) + stDone
}

// --- a fake client ---

// stFakeClient implements StreamRunToolsClient without HTTP: each call
// answers from the scripted replies, and the calls are recorded.
type stFakeClient struct {
	mu sync.Mutex
	// create is the body of the createRun stream.
	create string
	// submit answers the n-th (0-based) submission: a stream body, or an
	// error to return instead.
	submit func(n int, outputs []gen.SubmitToolOutputsRunRequestToolOutput) (string, error)
	// getRun answers the n-th (0-based) GetRun with a run JSON.
	getRun func(n int) string

	submits [][]gen.SubmitToolOutputsRunRequestToolOutput
	gets    int
	cancels int
}

func stStreamResponse(body string) *http.Response {
	h := http.Header{}
	h.Set("Content-Type", "text/event-stream")
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func (f *stFakeClient) CreateRunWithBody(ctx context.Context, threadID string, _ *gen.CreateRunParams, _ string, r io.Reader, _ ...gen.RequestEditorFn) (*http.Response, error) {
	var body gen.CreateRunJSONRequestBody
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		return nil, err
	}
	if body.Stream == nil || !*body.Stream {
		return nil, errors.New("stream must be true")
	}
	return stStreamResponse(f.create), nil
}

func (f *stFakeClient) SubmitToolOutputsToRunWithBody(ctx context.Context, threadID, runID string, _ string, r io.Reader, _ ...gen.RequestEditorFn) (*http.Response, error) {
	var body gen.SubmitToolOutputsToRunJSONRequestBody
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		return nil, err
	}
	if body.Stream == nil || !*body.Stream {
		return nil, errors.New("stream must be true")
	}
	if threadID != "thread_1" || runID != "run_1" {
		return nil, fmt.Errorf("unexpected ids %s %s", threadID, runID)
	}
	f.mu.Lock()
	n := len(f.submits)
	f.submits = append(f.submits, body.ToolOutputs)
	f.mu.Unlock()
	s, err := f.submit(n, body.ToolOutputs)
	if err != nil {
		return nil, err
	}
	return stStreamResponse(s), nil
}

func (f *stFakeClient) GetRun(ctx context.Context, threadID, runID string, _ ...gen.RequestEditorFn) (*gen.RunObject, error) {
	f.mu.Lock()
	n := f.gets
	f.gets++
	f.mu.Unlock()
	if f.getRun == nil {
		return nil, errors.New("unexpected GetRun")
	}
	var run gen.RunObject
	if err := json.Unmarshal([]byte(f.getRun(n)), &run); err != nil {
		return nil, err
	}
	return &run, nil
}

func (f *stFakeClient) CancelRun(ctx context.Context, threadID, runID string, _ ...gen.RequestEditorFn) (*gen.RunObject, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	f.mu.Lock()
	f.cancels++
	f.mu.Unlock()
	var run gen.RunObject
	_ = json.Unmarshal([]byte(stRunJSON("cancelling")), &run)
	return &run, nil
}

// stOutputs returns the submitted outputs as id -> output.
func stOutputs(outs []gen.SubmitToolOutputsRunRequestToolOutput) map[string]string {
	m := map[string]string{}
	for _, o := range outs {
		if o.ToolCallId != nil && o.Output != nil {
			m[*o.ToolCallId] = *o.Output
		}
	}
	return m
}

// stWeatherRegistry has get_weather, which counts its calls.
func stWeatherRegistry(t *testing.T, calls *atomic.Int32) *Registry {
	t.Helper()
	reg, err := NewRegistry(RawFunc(gen.FunctionObject{Name: "get_weather"}, func(ctx context.Context, args string) (string, error) {
		calls.Add(1)
		var a struct{ City string }
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			return "", err
		}
		return "sunny in " + a.City, nil
	}))
	require.NoError(t, err)
	return reg
}

func stStartLoop(ctx context.Context, t *testing.T, f *stFakeClient, reg *Registry, acc *Accumulator, opts ...func(*ToolLoopOptions)) (*gen.RunObject, error) {
	t.Helper()
	return StreamRunTools(ctx, f, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1"}, reg, acc, opts...)
}

func TestStreamToolLoop(t *testing.T) {
	const weather = `{"city":"Paris"}`
	tests := []struct {
		name      string
		client    *stFakeClient
		opts      []func(*ToolLoopOptions)
		wantErr   error  // nil: no error
		wantState string // final run status
		wantCalls int32  // handler executions
		wantSubs  int    // submissions
		wantGets  int
		wantText  string // accumulated message text, "" to skip
	}{
		{
			name: "one round then completed",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(n int, outs []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					if stOutputs(outs)["call_1"] != "sunny in Paris" {
						return "", fmt.Errorf("bad outputs %v", stOutputs(outs))
					}
					return stSSE(EventRunInProgress, stRunJSON("in_progress")) + stTextEvents("msg_1", "It is", " sunny.") +
						stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
				},
			},
			wantState: "completed", wantCalls: 1, wantSubs: 1, wantText: "It is sunny.",
		},
		{
			name: "two rounds",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(n int, _ []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					if n == 0 {
						return stRequiresAction("call_2", "get_weather", `{"city":"Rome"}`, "call_3", "get_weather", `{"city":"Oslo"}`), nil
					}
					return stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
				},
			},
			wantState: "completed", wantCalls: 3, wantSubs: 2,
		},
		{
			name: "create stream cut after requires_action: read back, run once",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stSSE(EventRunRequiresAction, stRunJSON("requires_action", "call_1", "get_weather", weather)),
				getRun: func(int) string { return stRunJSON("requires_action", "call_1", "get_weather", weather) },
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
				},
			},
			wantState: "completed", wantCalls: 1, wantSubs: 1, wantGets: 1,
		},
		{
			name: "submit stream cut mid-run: poll until completed",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stSSE(EventRunInProgress, stRunJSON("in_progress")) + stTextEvents("msg_1", "partial"), nil
				},
				getRun: func(n int) string {
					if n < 3 {
						return stRunJSON("in_progress")
					}
					return stRunJSON("completed")
				},
			},
			wantState: "completed", wantCalls: 1, wantSubs: 1, wantGets: 4, wantText: "partial",
		},
		{
			name: "submit stream cut, run asks again for the same calls: cached outputs resubmitted",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(n int, outs []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					if stOutputs(outs)["call_1"] != "sunny in Paris" {
						return "", fmt.Errorf("bad outputs %v", stOutputs(outs))
					}
					if n == 0 {
						return "event: thread.run.in_pro", nil // cut before the server took the outputs
					}
					return stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
				},
				getRun: func(int) string { return stRunJSON("requires_action", "call_1", "get_weather", weather) },
			},
			wantState: "completed", wantCalls: 1, wantSubs: 2, wantGets: 1,
		},
		{
			name: "submission fails once: read back and resubmit without re-running",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(n int, _ []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					if n == 0 {
						return "", errors.New("connection reset by peer")
					}
					return stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
				},
				getRun: func(int) string { return stRunJSON("requires_action", "call_1", "get_weather", weather) },
			},
			wantState: "completed", wantCalls: 1, wantSubs: 2, wantGets: 1,
		},
		{
			name: "error event: read back a failed run, a RunError",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stSSE(EventRunInProgress, stRunJSON("in_progress")) +
						stSSE(EventError, `{"message":"boom","type":"server_error","code":null,"param":null}`), nil
				},
				getRun: func(int) string { return stRunJSON("failed") },
			},
			wantErr: &poller.RunError{}, wantState: "failed", wantCalls: 1, wantSubs: 1, wantGets: 1,
		},
		{
			name: "submit stream without run events: read back",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stTextEvents("msg_1", "ok") + stDone, nil
				},
				getRun: func(int) string { return stRunJSON("completed") },
			},
			wantState: "completed", wantCalls: 1, wantSubs: 1, wantGets: 1, wantText: "ok",
		},
		{
			name: "run keeps asking for answered calls: error after SubmitAttempts replays",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stRequiresAction("call_1", "get_weather", weather), nil
				},
			},
			wantErr: errors.New("keeps asking for the outputs of calls already answered"), wantState: "requires_action",
			wantCalls: 1, wantSubs: 4,
		},
		{
			name: "no tool call: completed without submission",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stTextEvents("msg_1", "Hi") + stSSE(EventRunCompleted, stRunJSON("completed")) + stDone,
			},
			wantState: "completed", wantText: "Hi",
		},
		{
			name: "max rounds: cancel and error",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_0", "get_weather", weather),
				submit: func(n int, _ []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return stRequiresAction(fmt.Sprintf("call_%d", n+1), "get_weather", weather), nil
				},
			},
			opts:    []func(*ToolLoopOptions){WithMaxRounds(2)},
			wantErr: ErrMaxRounds, wantState: "cancelling", wantCalls: 2, wantSubs: 2,
		},
		{
			name: "submissions keep failing: error with the run",
			client: &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", weather),
				submit: func(int, []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
					return "", errors.New("connection refused")
				},
				getRun: func(int) string { return stRunJSON("requires_action", "call_1", "get_weather", weather) },
			},
			wantErr: errors.New("connection refused"), wantState: "requires_action", wantCalls: 1, wantSubs: 3, wantGets: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				reg := stWeatherRegistry(t, &calls)
				var acc Accumulator
				var streamed strings.Builder
				acc.OnTextDelta = func(_, s string) { streamed.WriteString(s) }
				run, err := stStartLoop(t.Context(), t, tt.client, reg, &acc, tt.opts...)
				var runErr *poller.RunError
				switch {
				case tt.wantErr == nil:
					require.NoError(t, err)
				case errors.Is(tt.wantErr, ErrMaxRounds):
					require.ErrorIs(t, err, ErrMaxRounds)
					var mr *MaxRoundsError
					require.ErrorAs(t, err, &mr)
					assert.Equal(t, 2, mr.Rounds)
				case errors.As(tt.wantErr, &runErr):
					require.ErrorAs(t, err, &runErr)
					assert.Equal(t, gen.RunObjectStatus(tt.wantState), runErr.Status)
				default:
					require.ErrorContains(t, err, tt.wantErr.Error())
				}
				require.NotNil(t, run, "the run is never lost")
				assert.Equal(t, "run_1", run.Id)
				assert.Equal(t, gen.RunObjectStatus(tt.wantState), run.Status)
				assert.Equal(t, tt.wantCalls, calls.Load(), "handler executions")
				assert.Len(t, tt.client.submits, tt.wantSubs, "submissions")
				assert.Equal(t, tt.wantGets, tt.client.gets, "GetRun calls")
				if tt.wantText != "" {
					assert.Equal(t, tt.wantText, streamed.String())
					msgs := acc.Messages()
					require.NotEmpty(t, msgs)
					assert.Equal(t, tt.wantText, MessageText(msgs[0]))
				}
				if errors.Is(tt.wantErr, ErrMaxRounds) {
					assert.Equal(t, 1, tt.client.cancels)
				} else {
					assert.Zero(t, tt.client.cancels)
				}
				if run.Status == "completed" {
					assert.Equal(t, gen.RunObjectStatus("completed"), acc.Run().Status)
				}
			})
		})
	}
}

func TestStreamToolLoopPollInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gets []time.Duration
		start := time.Now()
		f := &stFakeClient{
			create: stSSE(EventRunCreated, stRunJSON("queued")) + stSSE(EventRunInProgress, stRunJSON("in_progress")), // cut
			getRun: func(n int) string {
				gets = append(gets, time.Since(start))
				if n < 2 {
					return stRunJSON("queued")
				}
				return stRunJSON("completed")
			},
		}
		run, err := stStartLoop(t.Context(), t, f, stWeatherRegistry(t, new(atomic.Int32)), nil,
			WithPollOptions(poller.WithInterval(250*time.Millisecond)))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatus("completed"), run.Status)
		assert.Equal(t, []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond}, gets)
	})
}

func TestStreamToolLoopCancellation(t *testing.T) {
	t.Run("ctx cancelled in a handler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var calls atomic.Int32
			reg, err := NewRegistry(RawFunc(gen.FunctionObject{Name: "get_weather"}, func(ctx context.Context, _ string) (string, error) {
				calls.Add(1)
				cancel() // the user gives up while the tool runs
				<-ctx.Done()
				return "", ctx.Err()
			}))
			require.NoError(t, err)
			f := &stFakeClient{create: stSSE(EventRunCreated, stRunJSON("queued")) + stRequiresAction("call_1", "get_weather", "{}")}
			run, err := stStartLoop(ctx, t, f, reg, nil)
			require.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, 1, f.cancels, "the run is cancelled on the server, with a fresh context")
			require.NotNil(t, run)
			assert.Equal(t, gen.RunObjectStatus("cancelling"), run.Status)
			assert.Empty(t, f.submits)
		})
	})
	t.Run("deadline while polling a cut run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f := &stFakeClient{
				create: stSSE(EventRunCreated, stRunJSON("queued")), // cut, and the run never moves
				getRun: func(int) string { return stRunJSON("in_progress") },
			}
			start := time.Now()
			run, err := stStartLoop(ctx, t, f, stWeatherRegistry(t, new(atomic.Int32)), nil)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 10*time.Second, time.Since(start))
			assert.Equal(t, 1, f.cancels)
			require.NotNil(t, run)
			// One GetRun per second; at 10s the poll timer and the deadline
			// fire together and either may win.
			assert.InDelta(t, 10, f.gets, 1, "one GetRun per second")
		})
	})
	t.Run("stalled stream ends on the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = io.WriteString(pw, stSSE(EventRunCreated, stRunJSON("queued"))) }()
			f := &stFakeClient{}
			run, err := StreamToolLoop(ctx, f, NewStream(ctx, pr, nil), stWeatherRegistry(t, new(atomic.Int32)), nil)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.NotNil(t, run)
			assert.Equal(t, 1, f.cancels)
		})
	})
}

func TestStreamToolLoopNoRun(t *testing.T) {
	tests := []struct {
		name, create, want string
	}{
		{"error event first", stSSE(EventError, `{"message":"Invalid assistant","type":"invalid_request_error"}`), "Invalid assistant"},
		{"empty stream", "", "without any event"},
		{"done without run", stDone, "without a run event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &stFakeClient{create: tt.create}
			run, err := stStartLoop(t.Context(), t, f, stWeatherRegistry(t, new(atomic.Int32)), nil)
			require.ErrorContains(t, err, tt.want)
			assert.Nil(t, run)
			assert.Zero(t, f.cancels)
		})
	}
}

func TestStreamToolLoopHandlerFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, err := NewRegistry(
			RawFunc(gen.FunctionObject{Name: "panics"}, func(context.Context, string) (string, error) { panic("kaboom") }),
			RawFunc(gen.FunctionObject{Name: "fails"}, func(context.Context, string) (string, error) { return "", errors.New("no such city") }),
		)
		require.NoError(t, err)
		var got map[string]string
		f := &stFakeClient{
			create: stSSE(EventRunCreated, stRunJSON("queued")) +
				stRequiresAction("call_p", "panics", "{}", "call_f", "fails", "{}", "call_u", "unknown_tool", "{}"),
			submit: func(_ int, outs []gen.SubmitToolOutputsRunRequestToolOutput) (string, error) {
				got = stOutputs(outs)
				return stSSE(EventRunCompleted, stRunJSON("completed")) + stDone, nil
			},
		}
		run, err := stStartLoop(t.Context(), t, f, reg, nil)
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatus("completed"), run.Status)
		require.Len(t, got, 3, "every call gets an output")
		assert.Contains(t, got["call_p"], "kaboom")
		assert.Contains(t, got["call_f"], "no such city")
		assert.Contains(t, got["call_u"], "error")
	})
}

// TestStreamToolLoopOverHTTP runs the loop through the generated client
// against an httptest server that plays a run with one tool call.
func TestStreamToolLoopOverHTTP(t *testing.T) {
	var submitted atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/threads/thread_1/runs":
			_, _ = io.WriteString(w, stSSE(EventRunCreated, stRunJSON("queued"))+stRequiresAction("call_1", "get_weather", `{"city":"Paris"}`))
		case r.Method == http.MethodPost && r.URL.Path == "/threads/thread_1/runs/run_1/submit_tool_outputs":
			var body gen.SubmitToolOutputsRunRequest
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Stream == nil || !*body.Stream {
				http.Error(w, "bad submission", http.StatusBadRequest)
				return
			}
			submitted.Store(stOutputs(body.ToolOutputs))
			_, _ = io.WriteString(w, stTextEvents("msg_1", "Sunny", " in Paris.")+stSSE(EventRunCompleted, stRunJSON("completed"))+stDone)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := stClient(t, srv.URL)
	var calls atomic.Int32
	var acc Accumulator
	run, err := StreamRunTools(t.Context(), c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1"},
		stWeatherRegistry(t, &calls), &acc)
	require.NoError(t, err)
	assert.Equal(t, gen.RunObjectStatus("completed"), run.Status)
	assert.Equal(t, int32(1), calls.Load())
	assert.Equal(t, map[string]string{"call_1": "sunny in Paris"}, submitted.Load())
	assert.Equal(t, "Sunny in Paris.", MessageText(acc.Messages()[0]))
	var apiErr *assistants.APIError
	_, err = StreamRunTools(t.Context(), c, "thread_nope", gen.CreateRunRequest{AssistantId: "asst_1"},
		stWeatherRegistry(t, &calls), nil)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
}

// TestStreamToolLoopEndToEnd runs the streaming tool loop against the
// embedded server: the scripted model calls get_weather, the loop runs it
// once, submits with a stream and the run completes with the tool's output
// quoted in the reply.
func TestStreamToolLoopEndToEnd(t *testing.T) {
	type args struct {
		City string `json:"city"`
	}
	type result struct {
		TempC int    `json:"temp_c"`
		City  string `json:"city"`
	}
	newReg := func(calls *atomic.Int32) *Registry {
		return MustRegistry(Func("get_weather", "Current weather in a city.", func(ctx context.Context, a args) (result, error) {
			calls.Add(1)
			return result{TempC: 21, City: a.City}, nil
		}))
	}
	const want = `get_weather returned: {"temp_c":21,"city":"Paris"}`

	t.Run("clean streams", func(t *testing.T) {
		srv := assistantstest.NewServer(t, server.WithStepDelay(0))
		var calls atomic.Int32
		reg := newReg(&calls)
		asstID, threadID := stAssistantThread(t, srv, reg.Tools(), `please get_weather {"city":"Paris"}`)
		var acc Accumulator
		var streamed strings.Builder
		acc.OnTextDelta = func(_, s string) { streamed.WriteString(s) }
		var toolArgs strings.Builder
		acc.OnToolCallDelta = func(d ToolCallDelta) { toolArgs.WriteString(d.Arguments) }
		run, err := StreamRunTools(t.Context(), srv.Client, threadID, gen.CreateRunRequest{AssistantId: asstID}, reg, &acc)
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, int32(1), calls.Load())
		assert.JSONEq(t, `{"city":"Paris"}`, toolArgs.String(), "tool call arguments streamed")
		assert.Equal(t, want, streamed.String())
		msgs := acc.Messages()
		require.NotEmpty(t, msgs)
		last := msgs[len(msgs)-1]
		stored, err := srv.Client.GetMessage(t.Context(), threadID, last.Id)
		require.NoError(t, err)
		assert.Equal(t, want, MessageText(*stored))
		steps := acc.RunSteps()
		require.Len(t, steps, 2, "a tool_calls step and a message_creation step")
	})

	t.Run("every stream cut", func(t *testing.T) {
		faults := &server.Faults{Seed: 7, Routes: map[string]server.FaultRates{
			"POST /v1/threads/{thread_id}/runs":                              {CutStream: 1, CutAfter: 3},
			"POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": {CutStream: 1, CutAfter: 2},
		}}
		srv := assistantstest.NewServer(t, server.WithStepDelay(0), server.WithFaults(faults), assistantstest.WithoutResponseValidation())
		var calls atomic.Int32
		reg := newReg(&calls)
		asstID, threadID := stAssistantThread(t, srv, reg.Tools(), `please get_weather {"city":"Paris"}`)
		c := &stCountingClient{Client: srv.Client}
		run, err := StreamRunTools(t.Context(), c, threadID, gen.CreateRunRequest{AssistantId: asstID}, reg, nil,
			WithPollOptions(poller.WithInterval(time.Millisecond)))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, c.gets.Load(), int32(2), "both cuts were recovered by reading the run back")
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, int32(1), calls.Load(), "the handler ran once despite the cuts")
		list, err := srv.Client.ListMessages(t.Context(), threadID, nil)
		require.NoError(t, err)
		require.NotEmpty(t, list.Data)
		assert.Equal(t, want, MessageText(list.Data[0]), "the reply is there even though no stream showed it")
	})
}

// stCountingClient counts the GetRun calls of a real client.
type stCountingClient struct {
	*assistants.Client
	gets atomic.Int32
}

func (c *stCountingClient) GetRun(ctx context.Context, threadID, runID string, editors ...gen.RequestEditorFn) (*gen.RunObject, error) {
	c.gets.Add(1)
	return c.Client.GetRun(ctx, threadID, runID, editors...)
}

// stKeyClient records the Idempotency-Key of every createRun.
type stKeyClient struct {
	*assistants.Client
	mu   sync.Mutex
	keys []string
}

func (c *stKeyClient) CreateRunWithBody(ctx context.Context, threadID string, params *gen.CreateRunParams, contentType string, body io.Reader, editors ...gen.RequestEditorFn) (*http.Response, error) {
	probe, _ := http.NewRequest(http.MethodPost, "http://probe", nil)
	for _, e := range editors {
		_ = e(ctx, probe)
	}
	c.mu.Lock()
	c.keys = append(c.keys, probe.Header.Get("Idempotency-Key"))
	c.mu.Unlock()
	return c.ClientWithResponses.CreateRunWithBody(ctx, threadID, params, contentType, body, editors...)
}

// TestStreamRunToolsRetriesAStreamCutBeforeItsFirstEvent: the createRun
// stream is cut before any event, so the loop does not know the run. It
// sends the request again with the same Idempotency-Key, the server
// reattaches it to the same run, and the loop carries on: one run, the tool
// once.
func TestStreamRunToolsRetriesAStreamCutBeforeItsFirstEvent(t *testing.T) {
	faults := &server.Faults{Seed: 3, Routes: map[string]server.FaultRates{
		"createRun": {CutStream: 0.7, CutAfter: -1},
	}}
	srv := assistantstest.NewServer(t, server.WithStepDelay(0), server.WithFaults(faults), assistantstest.WithoutResponseValidation())
	var calls atomic.Int32
	reg := MustRegistry(Func("get_weather", "Current weather in a city.", func(ctx context.Context, a struct {
		City string `json:"city"`
	}) (string, error) {
		calls.Add(1)
		return "sunny in " + a.City, nil
	}))
	asstID, threadID := stAssistantThread(t, srv, reg.Tools(), `please get_weather {"city":"Paris"}`)
	c := &stKeyClient{Client: srv.Client}
	run, err := StreamRunTools(t.Context(), c, threadID, gen.CreateRunRequest{AssistantId: asstID}, reg, nil,
		WithPollOptions(poller.WithInterval(time.Millisecond)))
	require.NoError(t, err, "createRun attempts: %d", len(c.keys))
	assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
	assert.Equal(t, int32(1), calls.Load())
	require.GreaterOrEqual(t, len(c.keys), 2, "the seed cuts the first stream before its first event")
	assert.NotEmpty(t, c.keys[0])
	for _, k := range c.keys {
		assert.Equal(t, c.keys[0], k, "every attempt carries the same key")
	}
	runs, err := srv.Client.ListRuns(t.Context(), threadID, nil)
	require.NoError(t, err)
	assert.Len(t, runs.Data, 1, "no second run")
	t.Logf("createRun attempts: %d", len(c.keys))
}
