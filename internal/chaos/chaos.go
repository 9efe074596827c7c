// Package chaos runs many concurrent tool-calling conversations against the
// embedded server with seeded faults turned on, and checks that nothing is lost
// or done twice: every run completes, every tool call the server asks for is
// executed exactly once, and retries create no duplicate messages or runs.
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/server"
)

// Config sets the size and the faults of a chaos run.
type Config struct {
	// Conversations is the number of conversations. Default 200.
	Conversations int
	// Concurrency bounds the conversations in flight. Default 20.
	Concurrency int
	// Seed makes the faults reproducible. Default 1.
	Seed int64
	// Faults are the fault rates. Default: DefaultFaults.
	Faults *server.FaultRates
	// StepDelay is the server's delay before each run state change. Default 5ms.
	StepDelay time.Duration
	// Log receives one line per surfaced error. Default: discard.
	Log io.Writer
	// ServerOptions are added to the embedded server's options (after the
	// step delay and the faults). Default: none. The tests use them to
	// switch protections off (server.Options.DisableIdempotency,
	// DisableStreamReattach) and show that the harness then reports.
	ServerOptions []server.Option
	// ClientOptions are added to the client's options. Default: none.
	ClientOptions []assistants.Option
	// Restarts, when set, runs the conversations against `assistants
	// serve` processes on a durable store that are killed and restarted
	// during the run (see Restarts) instead of the embedded server; Faults
	// and ServerOptions do not apply then. Default: nil (embedded server).
	Restarts *Restarts
}

// DefaultFaults are the rates of make chaos. Before the work: 10% 500/503,
// 5% 429 with Retry-After, 2% dropped connections, latency jitter. After
// the work (only idempotent retries and stream reattaching hide these): 3%
// replies lost after the handler ran, 3% replies cut mid-body (JSON after
// half its bytes, streams after 0 to 6 events), 3% connections reset while
// the handler runs. And 20% of event streams cut after 0 to 6 events.
var DefaultFaults = server.FaultRates{
	ServerError: 0.05, Unavailable: 0.05, RateLimit: 0.05, RetryAfter: 20 * time.Millisecond,
	Drop: 0.02, Jitter: 5 * time.Millisecond,
	DropAfter: 0.03, CutBody: 0.03, Reset: 0.03,
	CutStream: 0.2, CutAfter: 0, CutAfterMax: 6,
}

// Result is what a chaos run counted.
type Result struct {
	Runs, Completed, Lost, Duplicated int
	ToolCallsAsked, ToolExecutions    int
	// ExactlyOnce is true when every tool call the server asked for ran once.
	ExactlyOnce bool
	// Errors are the errors surfaced to callers, each with its conversation.
	Errors []error
	// Restarts is the number of server processes killed and started again
	// (Config.Restarts); -1 without Config.Restarts.
	Restarts int
}

// Line is the final summary line.
func (r Result) Line() string {
	line := fmt.Sprintf("chaos: runs=%d completed=%d lost=%d duplicated=%d tool_calls_exactly_once=%t",
		r.Runs, r.Completed, r.Lost, r.Duplicated, r.ExactlyOnce)
	if r.Restarts >= 0 {
		line += fmt.Sprintf(" restarts=%d", r.Restarts)
	}
	return line
}

// Run runs the conversations against a fresh embedded server on loopback,
// or against serve processes that are killed and restarted (cfg.Restarts).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Conversations <= 0 {
		cfg.Conversations = 200
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Faults == nil {
		f := DefaultFaults
		cfg.Faults = &f
	}
	if cfg.StepDelay == 0 {
		cfg.StepDelay = 5 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}

	// Enough retries that a run of faults on one request is ridden out.
	// DefaultFaults fault about 26% of requests. With 6 retries, all 7
	// attempts of one request fail with probability 0.26^7 = 8e-5, and a
	// 200-conversation run sends about 4000 requests: one run in four lost
	// a conversation to chance alone (seen), which is noise, not a finding.
	// With 12 retries it is 0.26^13 = 2.5e-8 a request, 1e-4 a run.
	copts := []assistants.Option{assistants.WithAPIKey("chaos"), assistants.WithMaxRetries(12)}
	var cl *cluster
	if cfg.Restarts != nil {
		var err error
		if cl, err = startCluster(ctx, *cfg.Restarts, cfg.StepDelay); err != nil {
			return Result{}, err
		}
		defer cl.stop()
		copts = append(copts, assistants.WithBaseURL("http://replicas/v1"), assistants.WithHTTPClient(&http.Client{Transport: cl}))
	} else {
		base, stop, err := embedded(cfg)
		if err != nil {
			return Result{}, err
		}
		defer stop()
		copts = append(copts, assistants.WithBaseURL(base))
	}
	client, err := assistants.New(append(copts, cfg.ClientOptions...)...)
	if err != nil {
		return Result{}, err
	}

	// Handler executions by tool call id.
	var mu sync.Mutex
	executions := map[string]int{}
	type args struct {
		City string `json:"city"`
	}
	reg, err := helpers.NewRegistry(helpers.RawFunc(gen.FunctionObject{Name: "get_weather"}, func(ctx context.Context, arguments string) (string, error) {
		var a args
		_ = json.Unmarshal([]byte(arguments), &a)
		return `{"city":"` + a.City + `","temp_c":21}`, nil
	}))
	if err != nil {
		return Result{}, err
	}
	tools := reg.Tools()
	asst, err := assistants.Result[gen.AssistantObject](client.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &tools}))
	if err != nil {
		return Result{}, fmt.Errorf("create assistant: %w", err)
	}
	execOpts := helpers.ExecOptions{OnToolCall: func(_ context.Context, call gen.RunToolCallObject) {
		mu.Lock()
		executions[call.Id]++
		mu.Unlock()
	}}

	res := Result{Runs: cfg.Conversations, Restarts: -1}
	killerDone := make(chan error, 1)
	killCtx, stopKilling := context.WithCancel(ctx)
	defer stopKilling()
	if cl != nil {
		go func() { killerDone <- cl.killer(killCtx, cfg.Seed) }()
	} else {
		killerDone <- nil
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	outcomes := make([]conversation, cfg.Conversations)
	for i := range cfg.Conversations {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outcomes[i] = converse(ctx, client, asst.Id, reg, execOpts, i)
		}()
	}
	wg.Wait()
	stopKilling()
	if err := <-killerDone; err != nil {
		return Result{}, err
	}
	if cl != nil {
		res.Restarts = int(cl.restarts.Load())
	}

	asked := map[string]bool{}
	for i, o := range outcomes {
		if o.err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("conversation %d: %w", i, o.err))
			fmt.Fprintf(cfg.Log, "conversation %d: %v\n", i, o.err)
		}
		if o.state != "" {
			fmt.Fprintf(cfg.Log, "conversation %d did not complete: %s\n", i, o.state)
		}
		if o.completed {
			res.Completed++
		} else {
			res.Lost++
		}
		res.Duplicated += o.duplicates
		if o.duplicates > 0 {
			fmt.Fprintf(cfg.Log, "conversation %d has duplicates: %s\n", i, o.dupState)
		}
		for _, id := range o.calls {
			asked[id] = true
		}
	}
	res.ToolCallsAsked = len(asked)
	res.ExactlyOnce = true
	for id := range asked {
		if executions[id] != 1 {
			res.ExactlyOnce = false
			fmt.Fprintf(cfg.Log, "tool call %s executed %d times\n", id, executions[id])
		}
	}
	for id, n := range executions {
		res.ToolExecutions += n
		if !asked[id] {
			res.ExactlyOnce = false
			fmt.Fprintf(cfg.Log, "tool call %s executed but not found in any run step\n", id)
		}
	}
	return res, nil
}

type conversation struct {
	completed  bool
	duplicates int
	dupState   string   // the thread's messages and runs, when duplicated
	calls      []string // tool call ids the server asked for (from run steps)
	err        error
	// state describes the thread's runs and steps as read back at the
	// end, for a conversation that did not complete (see describe).
	state string
}

// converse runs one conversation: a thread, a message naming the tool, and the
// tool loop, by polling for even i and by streaming for odd i. It then reads
// back the thread's messages, runs and steps to count duplicates and calls.
func converse(ctx context.Context, c *assistants.Client, assistantID string, reg *helpers.Registry, exec helpers.ExecOptions, i int) (out conversation) {
	thread, err := assistants.Result[gen.ThreadObject](c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{}))
	if err != nil {
		out.err = fmt.Errorf("create thread: %w", err)
		return out
	}
	var content gen.CreateMessageRequest_Content
	_ = content.FromCreateMessageText(fmt.Sprintf(`please get_weather {"city":"City%d"}`, i))
	if _, err := assistants.Result[gen.MessageObject](c.CreateMessageWithResponse(ctx, thread.Id, gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Content: content})); err != nil {
		out.err = fmt.Errorf("create message: %w", err)
		return out
	}
	body := gen.CreateRunRequest{AssistantId: assistantID}
	var run *gen.RunObject
	if i%2 == 0 {
		run, err = helpers.RunTools(ctx, c, thread.Id, body, reg, helpers.WithExecOptions(exec))
	} else {
		run, err = helpers.StreamRunTools(ctx, c, thread.Id, body, reg, nil, helpers.WithExecOptions(exec))
	}
	if err != nil {
		out.err = fmt.Errorf("run (streaming=%t): %w", i%2 == 1, err)
	}
	out.completed = err == nil && run != nil && run.Status == gen.RunObjectStatusCompleted
	runErr := out.err

	// Read back: one user message, one assistant reply, one run. The
	// conversation's context may have ended (a run that never finished):
	// the read back gets its own time, so that the calls and the state of
	// a lost conversation are still seen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
	defer cancel()
	if !out.completed {
		defer func() { out.state = describe(ctx, c, thread.Id, run) }()
	}
	if runErr != nil {
		defer func() {
			if out.err != runErr {
				out.err = fmt.Errorf("%w; then %w", runErr, out.err)
			}
		}()
	}
	users := 0
	for m, err := range helpers.Messages(ctx, c, thread.Id, nil) {
		if err != nil {
			out.err = fmt.Errorf("list messages: %w", err)
			return out
		}
		if m.Role == gen.MessageObjectRoleUser {
			users++
		}
	}
	runs := 0
	for r, err := range helpers.Runs(ctx, c, thread.Id, nil) {
		if err != nil {
			out.err = fmt.Errorf("list runs: %w", err)
			return out
		}
		runs++
		for st, err := range helpers.RunSteps(ctx, c, thread.Id, r.Id, nil) {
			if err != nil {
				out.err = fmt.Errorf("list run steps: %w", err)
				return out
			}
			details, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
			if err != nil || details.Type != "tool_calls" {
				continue
			}
			for _, tc := range details.ToolCalls {
				if fn, err := tc.AsRunStepDetailsToolCallsFunctionObject(); err == nil && fn.Type == "function" {
					out.calls = append(out.calls, fn.Id)
				}
			}
		}
	}
	out.duplicates = max(users-1, 0) + max(runs-1, 0)
	if out.duplicates > 0 {
		out.dupState = fmt.Sprintf("%d user messages, %d runs; %s", users, runs, describe(ctx, c, thread.Id, run))
	}
	return out
}

// readBackTimeout bounds the read back of one conversation.
const readBackTimeout = 30 * time.Second

// describe returns the runs of a thread with their status, required
// action and steps (with their tool call ids), and the run the client
// last saw: what the log shows for a conversation that did not complete.
func describe(ctx context.Context, c *assistants.Client, threadID string, seen *gen.RunObject) string {
	var b strings.Builder
	fmt.Fprintf(&b, "thread %s", threadID)
	if seen != nil {
		fmt.Fprintf(&b, "; client last saw run %s status=%s", seen.Id, seen.Status)
	}
	for r, err := range helpers.Runs(ctx, c, threadID, nil) {
		if err != nil {
			fmt.Fprintf(&b, "; list runs: %v", err)
			break
		}
		fmt.Fprintf(&b, "; run %s status=%s created_at=%d", r.Id, r.Status, r.CreatedAt)
		if r.RequiredAction != nil {
			ids := make([]string, 0, len(r.RequiredAction.SubmitToolOutputs.ToolCalls))
			for _, tc := range r.RequiredAction.SubmitToolOutputs.ToolCalls {
				ids = append(ids, tc.Id)
			}
			fmt.Fprintf(&b, " required_action=%v", ids)
		}
		if r.LastError != nil {
			fmt.Fprintf(&b, " last_error=%s:%s", r.LastError.Code, r.LastError.Message)
		}
		for st, err := range helpers.RunSteps(ctx, c, threadID, r.Id, nil) {
			if err != nil {
				fmt.Fprintf(&b, "; list run steps: %v", err)
				break
			}
			fmt.Fprintf(&b, "; step %s type=%s status=%s", st.Id, st.Type, st.Status)
			if d, err := st.StepDetails.AsRunStepDetailsToolCallsObject(); err == nil && d.Type == "tool_calls" {
				for _, tc := range d.ToolCalls {
					if fn, err := tc.AsRunStepDetailsToolCallsFunctionObject(); err == nil {
						fmt.Fprintf(&b, " call=%s output_set=%t", fn.Id, fn.Function.Output != nil)
					}
				}
			}
		}
	}
	return b.String()
}

// embedded starts the embedded server with cfg's step delay, faults and
// options on a loopback port.
func embedded(cfg Config) (base string, stop func(), err error) {
	sopts := append([]server.Option{server.WithStepDelay(cfg.StepDelay), server.WithFaults(&server.Faults{Seed: cfg.Seed, Global: *cfg.Faults})}, cfg.ServerOptions...)
	srv := server.New(sopts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		srv.Close()
	}
	return "http://" + ln.Addr().String() + "/v1", stop, nil
}
