package poller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
)

// Every terminal status ends PollUntilDone with the right (run, error).
func TestPollUntilDoneTerminalStatuses(t *testing.T) {
	tests := []struct {
		status  string
		run     func(map[string]any)
		wantErr *poller.RunError
		wantMsg string
	}{
		{status: "completed"},
		{status: "requires_action", run: func(m map[string]any) {
			m["required_action"] = map[string]any{"type": "submit_tool_outputs", "submit_tool_outputs": map[string]any{
				"tool_calls": []any{map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "f", "arguments": "{}"}}}}}
		}},
		{
			status:  "failed",
			run:     func(m map[string]any) { m["last_error"] = map[string]any{"code": "server_error", "message": "boom"} },
			wantErr: &poller.RunError{Status: "failed", Code: "server_error", Message: "boom"},
			wantMsg: "poller: run run_1 failed: server_error: boom",
		},
		{status: "cancelled", wantErr: &poller.RunError{Status: "cancelled"}, wantMsg: "poller: run run_1 cancelled"},
		{
			status:  "expired",
			wantErr: &poller.RunError{Status: "expired"}, wantMsg: "poller: run run_1 expired",
		},
		{
			status:  "incomplete",
			run:     func(m map[string]any) { m["incomplete_details"] = map[string]any{"reason": "max_completion_tokens"} },
			wantErr: &poller.RunError{Status: "incomplete", IncompleteReason: "max_completion_tokens"},
			wantMsg: "poller: run run_1 incomplete: max_completion_tokens",
		},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newFake(t, reply{status: "queued"}, reply{status: "in_progress"}, reply{status: "cancelling"},
					reply{status: tt.status, run: tt.run})
				run, err := poller.New(c, "thread_1", "run_1").PollUntilDone(t.Context())
				require.NotNil(t, run)
				assert.Equal(t, gen.RunObjectStatus(tt.status), run.Status)
				assert.Len(t, f.requests(), 4)
				if tt.wantErr == nil {
					require.NoError(t, err)
					if tt.status == "requires_action" {
						require.NotNil(t, run.RequiredAction)
						assert.Equal(t, "call_1", run.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id)
					}
					return
				}
				var re *poller.RunError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tt.wantErr.Status, re.Status)
				assert.Equal(t, tt.wantErr.Code, re.Code)
				assert.Equal(t, tt.wantErr.Message, re.Message)
				assert.Equal(t, tt.wantErr.IncompleteReason, re.IncompleteReason)
				assert.Same(t, run, re.Run)
				assert.Equal(t, tt.wantMsg, err.Error())
			})
		})
	}
}

// The wait follows the openai-poll-after-ms header of the latest reply, read
// again each time, and falls back to DefaultInterval without it.
func TestIntervalFromHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t,
			reply{status: "queued", pollAfter: "200"},
			reply{status: "in_progress", pollAfter: "50"},
			reply{status: "in_progress", pollAfter: "1500"},
			reply{status: "in_progress"},                    // no header: 1s
			reply{status: "in_progress", pollAfter: "-5"},   // invalid: 1s
			reply{status: "in_progress", pollAfter: "soon"}, // invalid: 1s
			reply{status: "completed"},
		)
		_, err := poller.New(c, "thread_1", "run_1").PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Equal(t, ms(200, 50, 1500, 1000, 1000, 1000), f.gaps())
	})
}

// An explicit Interval wins over the header.
func TestIntervalOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t,
			reply{status: "queued", pollAfter: "200"},
			reply{status: "in_progress", pollAfter: "5000"},
			reply{status: "completed"},
		)
		_, err := poller.New(c, "thread_1", "run_1", poller.WithInterval(300*time.Millisecond)).PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Equal(t, ms(300, 300), f.gaps())
	})
}

// Backoff grows the wait geometrically, capped at MaxInterval (and the
// default cap when MaxInterval is 0); the base is never cut by the cap.
func TestBackoff(t *testing.T) {
	tests := []struct {
		name string
		opts []func(*poller.Options)
		want []time.Duration
	}{
		{"capped", []func(*poller.Options){poller.WithInterval(100 * time.Millisecond), poller.WithBackoff(2, 500*time.Millisecond)},
			ms(100, 200, 400, 500, 500, 500)},
		{"default cap", []func(*poller.Options){poller.WithInterval(10 * time.Second), poller.WithBackoff(3, 0)},
			ms(10000, 30000, 30000, 30000, 30000, 30000)},
		{"cap below base", []func(*poller.Options){poller.WithInterval(2 * time.Second), poller.WithBackoff(2, time.Second)},
			ms(2000, 2000, 2000, 2000, 2000, 2000)},
		{"factor 1 is no growth", []func(*poller.Options){poller.WithInterval(time.Second), poller.WithBackoff(1, time.Minute)},
			ms(1000, 1000, 1000, 1000, 1000, 1000)},
		{"header base", []func(*poller.Options){func(o *poller.Options) { o.Backoff = 1.5 }},
			ms(200, 300, 450, 675, 1012, 1518)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				script := make([]reply, 0, 7)
				for range 6 {
					script = append(script, reply{status: "in_progress", pollAfter: "200"})
				}
				script = append(script, reply{status: "completed"})
				f, c := newFake(t, script...)
				_, err := poller.New(c, "thread_1", "run_1", tt.opts...).PollUntilDone(t.Context())
				require.NoError(t, err)
				got := f.gaps()
				for i := range got {
					got[i] = got[i].Truncate(time.Millisecond)
				}
				assert.Equal(t, tt.want, got)
			})
		})
	}
}

// A transient error (500, 503, dropped connection) does not end the poll:
// the next poll comes after the interval.
func TestTransientErrorsKeepPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t,
			reply{status: "queued"},
			reply{code: 500},
			reply{code: 503},
			reply{drop: true},
			reply{code: 429},
			reply{status: "completed"},
		)
		run, err := poller.New(c, "thread_1", "run_1", poller.WithInterval(250*time.Millisecond)).PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, ms(250, 250, 250, 250, 250), f.gaps())
	})
}

// A 404 (or another permanent API error) ends the poll with that error.
func TestPermanentErrorEnds(t *testing.T) {
	for _, code := range []int{404, 401, 400} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newFake(t, reply{status: "queued"}, reply{code: code}, reply{status: "completed"})
				p := poller.New(c, "thread_1", "run_1")
				run, err := p.PollUntilDone(t.Context())
				var apiErr *assistants.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, code, apiErr.StatusCode)
				assert.NotContains(t, err.Error(), "sk-test-key")
				require.NotNil(t, run, "the last run seen is returned")
				assert.Equal(t, gen.RunObjectStatusQueued, run.Status)
				assert.Len(t, f.requests(), 2)
				assert.True(t, p.Done())
				_, rerr := p.Result()
				assert.Equal(t, err, rerr)
			})
		})
	}
}

// An unknown status waits like a pending one: the polls are an interval
// apart, never back to back.
func TestUnknownStatusWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t,
			reply{status: "thinking_hard"},
			reply{status: "thinking_hard"},
			reply{status: "thinking_hard"},
			reply{status: "completed"},
		)
		p := poller.New(c, "thread_1", "run_1")
		run, err := p.PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, ms(1000, 1000, 1000), f.gaps())
	})
	// And forever unknown is bounded only by ctx: over 10s of virtual time
	// at most 11 requests are made.
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t, reply{status: "thinking_hard"})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		run, err := poller.New(c, "thread_1", "run_1").PollUntilDone(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotNil(t, run)
		assert.Equal(t, gen.RunObjectStatus("thinking_hard"), run.Status)
		assert.LessOrEqual(t, len(f.requests()), 11)
		assert.GreaterOrEqual(t, len(f.requests()), 10)
	})
}

// Cancelling the context ends a wait at once (0 virtual time later), and a
// request in flight too.
func TestCancellationLatency(t *testing.T) {
	t.Run("during wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, c := newFake(t, reply{status: "in_progress"})
			ctx, cancel := context.WithCancel(t.Context())
			var cancelledAt time.Time
			time.AfterFunc(2500*time.Millisecond, func() { cancelledAt = time.Now(); cancel() })
			run, err := poller.New(c, "thread_1", "run_1", poller.WithInterval(time.Hour)).PollUntilDone(ctx)
			returned := time.Now()
			require.ErrorIs(t, err, context.Canceled)
			require.NotNil(t, run)
			assert.Equal(t, time.Duration(0), returned.Sub(cancelledAt))
		})
	})
	t.Run("during request", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, c := newFake(t, reply{status: "in_progress"})
			f.block = true
			ctx, cancel := context.WithCancel(t.Context())
			var cancelledAt time.Time
			time.AfterFunc(time.Second, func() { cancelledAt = time.Now(); cancel() })
			_, err := poller.New(c, "thread_1", "run_1").PollUntilDone(ctx)
			require.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, time.Duration(0), time.Since(cancelledAt))
		})
	})
	t.Run("real time", func(t *testing.T) {
		_, c := newFake(t, reply{status: "in_progress"})
		ctx, cancel := context.WithCancel(t.Context())
		p := poller.New(c, "thread_1", "run_1", poller.WithInterval(time.Hour))
		_, err := p.Poll(ctx)
		require.NoError(t, err)
		done := make(chan time.Time)
		go func() {
			_, _ = p.PollUntilDone(ctx)
			done <- time.Now()
		}()
		start := time.Now()
		cancel()
		latency := (<-done).Sub(start)
		t.Logf("cancellation latency (real time): %v", latency)
		assert.Less(t, latency, 10*time.Millisecond)
	})
}

// The step API: Poll does one GET, Done/Result report the state.
func TestStepAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t, reply{status: "queued"}, reply{code: 500}, reply{status: "completed"})
		p := poller.New(c, "thread_1", "run_1")
		assert.False(t, p.Done())
		run, err := p.Result()
		assert.Nil(t, run)
		assert.ErrorIs(t, err, poller.ErrNotDone)

		run, err = p.Poll(t.Context())
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusQueued, run.Status)
		assert.False(t, p.Done())

		run, err = p.Poll(t.Context())
		var apiErr *assistants.APIError
		require.ErrorAs(t, err, &apiErr, "a transient error is returned by Poll")
		assert.True(t, poller.IsTransient(err))
		assert.Equal(t, gen.RunObjectStatusQueued, run.Status, "with the last run seen")
		assert.False(t, p.Done(), "but does not end it")

		run, err = p.Poll(t.Context())
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.True(t, p.Done())
		res, err := p.Result()
		require.NoError(t, err)
		assert.Same(t, run, res)
		assert.Len(t, f.requests(), 3)
		assert.Equal(t, "/v1/threads/thread_1/runs/run_1", f.requests()[0].path)
		assert.Equal(t, http.MethodGet, f.requests()[0].method)

		// Done: PollUntilDone makes no request.
		res2, err := p.PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Same(t, run, res2)
		assert.Len(t, f.requests(), 3)
	})
}

// NewFromRun starts from a run in hand: a terminal one is done with no
// request; a pending one waits the hint before the first GET.
func TestNewFromRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := newFake(t, reply{status: "completed"})
		failed := &gen.RunObject{Id: "run_9", ThreadId: "thread_1", Status: gen.RunObjectStatusFailed,
			LastError: &gen.RunLastError{Code: "rate_limit_exceeded", Message: "slow down"}}
		p := poller.NewFromRun(c, failed, 0)
		assert.True(t, p.Done())
		run, err := p.PollUntilDone(t.Context())
		var re *poller.RunError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "rate_limit_exceeded", re.Code)
		assert.Same(t, failed, run)
		assert.Empty(t, f.requests())

		start := time.Now()
		pending := &gen.RunObject{Id: "run_1", ThreadId: "thread_1", Status: gen.RunObjectStatusQueued}
		run, err = poller.NewFromRun(c, pending, 700*time.Millisecond).PollUntilDone(t.Context())
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		require.Len(t, f.requests(), 1)
		assert.Equal(t, 700*time.Millisecond, f.requests()[0].at.Sub(start))

		_, err = poller.NewFromRun(c, nil, 0).PollUntilDone(t.Context())
		require.Error(t, err)
		_, err = poller.New(c, "", "run_1").PollUntilDone(t.Context())
		require.ErrorContains(t, err, "empty thread or run id")
	})
}

// The ...AndPoll helpers make the request, honour its reply's hint, clear
// stream, and poll.
func TestAndPollHelpers(t *testing.T) {
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *assistants.Client) (*gen.RunObject, error)
		wantPath string
	}{
		{"CreateAndPoll", func(ctx context.Context, c *assistants.Client) (*gen.RunObject, error) {
			stream := true
			return poller.CreateAndPoll(ctx, c, "thread_1", gen.CreateRunRequest{AssistantId: "asst_1", Stream: &stream})
		}, "/v1/threads/thread_1/runs"},
		{"CreateThreadAndRunAndPoll", func(ctx context.Context, c *assistants.Client) (*gen.RunObject, error) {
			stream := true
			return poller.CreateThreadAndRunAndPoll(ctx, c, gen.CreateThreadAndRunRequest{AssistantId: "asst_1", Stream: &stream})
		}, "/v1/threads/runs"},
		{"SubmitToolOutputsAndPoll", func(ctx context.Context, c *assistants.Client) (*gen.RunObject, error) {
			id, out := "call_1", "42"
			stream := true
			return poller.SubmitToolOutputsAndPoll(ctx, c, "thread_1", "run_1", gen.SubmitToolOutputsRunRequest{
				Stream: &stream, ToolOutputs: []gen.SubmitToolOutputsRunRequestToolOutput{{ToolCallId: &id, Output: &out}}})
		}, "/v1/threads/thread_1/runs/run_1/submit_tool_outputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newFake(t, reply{status: "queued", pollAfter: "350"}, reply{status: "in_progress"}, reply{status: "completed"})
				run, err := tt.call(t.Context(), c)
				require.NoError(t, err)
				assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
				rs := f.requests()
				require.Len(t, rs, 3)
				assert.Equal(t, http.MethodPost, rs[0].method)
				assert.Equal(t, tt.wantPath, rs[0].path)
				assert.NotContains(t, rs[0].body, "stream")
				assert.Equal(t, ms(350, 1000), f.gaps())
			})
		})
		t.Run(tt.name+" error", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newFake(t, reply{code: 400})
				run, err := tt.call(t.Context(), c)
				assert.Nil(t, run)
				var apiErr *assistants.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, 400, apiErr.StatusCode)
				assert.Len(t, f.requests(), 1)
			})
		})
	}
}

func urlErr(err error) error {
	return &url.Error{Op: "Get", URL: "https://api.example.com/v1/threads/t/runs/r", Err: err}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"500", &assistants.APIError{StatusCode: 500}, true},
		{"502 wrapped", fmt.Errorf("x: %w", &assistants.APIError{StatusCode: 502}), true},
		{"429", &assistants.APIError{StatusCode: 429}, true},
		{"408", &assistants.APIError{StatusCode: 408}, true},
		{"404", &assistants.APIError{StatusCode: 404}, false},
		{"400", &assistants.APIError{StatusCode: 400}, false},
		{"url error", &url.Error{Op: "Get", URL: "http://x", Err: errors.New("dial tcp: refused")}, true},
		{"net error", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"attempt timeout", assistants.ErrAttemptTimeout, true},
		{"canceled", context.Canceled, false},
		{"canceled in url error", &url.Error{Op: "Get", URL: "http://x", Err: context.Canceled}, false},
		{"unexpected reply", assistants.ErrUnexpectedReply, false},
		{"other", errors.New("json: bad"), false},
		// The error a *url.Error wraps decides, not the wrapper.
		{"refused in url error", urlErr(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true},
		{"reset in url error", urlErr(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{"EOF in url error", urlErr(io.EOF), true},
		{"timeout in url error", urlErr(timeoutErr{}), true},
		{"DNS temporary", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "server misbehaving", Name: "api.example.com", IsTemporary: true}}), true},
		{"DNS timeout", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "i/o timeout", Name: "api.example.com", IsTimeout: true}}), true},
		{"DNS no such host", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "api.example.com", IsNotFound: true}}), false},
		{"TLS certificate", urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		{"x509 hostname", urlErr(x509.HostnameError{Host: "api.example.com"}), false},
		{"token source", urlErr(fmt.Errorf("%w: Azure AD token: %w", assistants.ErrCredentials, errors.New("AADSTS7000215"))), false},
		{"unsupported protocol", urlErr(errors.New(`unsupported protocol scheme "ftp"`)), false},
		{"invalid URL", &url.Error{Op: "parse", URL: "http://[::1", Err: errors.New("missing ']' in host")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, poller.IsTransient(tt.err))
		})
	}
}

func TestPollAfter(t *testing.T) {
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"250", 250 * time.Millisecond}, {" 1000 ", time.Second}, {"0", 0}, {"-1", 0}, {"1.5", 0},
		{"abc", 0}, {"99999999999999999999", 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.v != "" {
			h.Set(poller.PollAfterHeader, tt.v)
		}
		assert.Equal(t, tt.want, poller.PollAfter(h), "header %q", tt.v)
	}
}

func TestRunErrorMessage(t *testing.T) {
	tests := []struct {
		e    poller.RunError
		want string
	}{
		{poller.RunError{Status: "failed", Code: "server_error", Message: "boom"}, "poller: run failed: server_error: boom"},
		{poller.RunError{Run: &gen.RunObject{Id: "run_x"}, Status: "failed", Message: "boom"}, "poller: run run_x failed: boom"},
		{poller.RunError{Status: "expired"}, "poller: run expired"},
		{poller.RunError{Status: "incomplete", IncompleteReason: "max_prompt_tokens"}, "poller: run incomplete: max_prompt_tokens"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.e.Error())
	}
}

func TestIsTerminal(t *testing.T) {
	for s, want := range map[gen.RunObjectStatus]bool{
		"queued": false, "in_progress": false, "cancelling": false, "weird": false, "": false,
		"requires_action": true, "completed": true, "failed": true, "cancelled": true, "expired": true, "incomplete": true,
	} {
		assert.Equal(t, want, poller.IsTerminal(s), "%q", s)
	}
}

// *assistants.Client satisfies every client interface with its typed calls.
var (
	_ poller.RunGetter                = (*assistants.Client)(nil)
	_ poller.RunCreator               = (*assistants.Client)(nil)
	_ poller.ThreadAndRunCreator      = (*assistants.Client)(nil)
	_ poller.ToolOutputsSubmitter     = (*assistants.Client)(nil)
	_ poller.RunCreateGetter          = (*assistants.Client)(nil)
	_ poller.ThreadAndRunCreateGetter = (*assistants.Client)(nil)
	_ poller.ToolOutputsSubmitGetter  = (*assistants.Client)(nil)
)

// A permanent transport error ends PollUntilDone at once with that error,
// instead of polling until the context ends: a failing Azure AD token source
// is called once, an untrusted TLS certificate is met once.
func TestPermanentTransportErrorStops(t *testing.T) {
	t.Run("token source", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeAPI{t: t, script: []reply{{status: "in_progress"}}}
			tokenCalls := 0
			c, err := assistants.New(assistants.WithAzure("https://res.openai.azure.com", "2024-05-01-preview"),
				assistants.WithHTTPClient(&http.Client{Transport: f}),
				assistants.WithAzureADToken(func(context.Context) (string, error) {
					tokenCalls++
					return "", errors.New("AADSTS7000215: invalid client secret")
				}))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			p := poller.New(c, "thread_1", "run_1", poller.WithInterval(10*time.Millisecond))
			_, err = p.PollUntilDone(ctx)
			require.ErrorIs(t, err, assistants.ErrCredentials)
			assert.NotErrorIs(t, err, context.DeadlineExceeded, "it stopped before the context ended")
			assert.Contains(t, err.Error(), "AADSTS7000215")
			assert.Equal(t, 1, tokenCalls)
			assert.Empty(t, f.requests())
			assert.Zero(t, time.Since(start))
			assert.True(t, p.Done())
		})
	})
	t.Run("TLS certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-test-key"),
			assistants.WithHTTPClient(&http.Client{Transport: tr}))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, err = poller.New(c, "thread_1", "run_1", poller.WithInterval(time.Millisecond)).PollUntilDone(ctx)
		var certErr *tls.CertificateVerificationError
		require.ErrorAs(t, err, &certErr)
		assert.NoError(t, ctx.Err(), "it stopped before the context ended")
	})
}

// When the context ends while polls keep failing transiently, the error
// matches the context's and still carries the last poll's error.
func TestPollUntilDoneKeepsLastError(t *testing.T) {
	tests := []struct {
		name   string
		script []reply
		check  func(t *testing.T, err error)
	}{
		{"503", []reply{{status: "queued"}, {code: 503}}, func(t *testing.T, err error) {
			var apiErr *assistants.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 503, apiErr.StatusCode)
		}},
		{"dropped connection", []reply{{drop: true}}, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, errDropped)
		}},
		{"error cleared by a good poll", []reply{{code: 500}, {status: "queued"}}, func(t *testing.T, err error) {
			assert.Equal(t, context.DeadlineExceeded, err, "only the context's error: the last poll went well")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, c := newFake(t, tt.script...)
				ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
				defer cancel()
				_, err := poller.New(c, "thread_1", "run_1").PollUntilDone(ctx)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				tt.check(t, err)
				assert.NotContains(t, err.Error(), "sk-test-key")
			})
		})
	}
}

// A 429 (or 503) that says how long to wait is honoured instead of the
// poll interval, within MaxRetryAfter; without a hint the interval applies.
func TestRetryAfterOnPoll(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		code   int
		opts   []func(*poller.Options)
		want   time.Duration
	}{
		{"Retry-After seconds", map[string]string{"Retry-After": "5"}, 429, nil, 5 * time.Second},
		{"retry-after-ms", map[string]string{"retry-after-ms": "2500"}, 429, nil, 2500 * time.Millisecond},
		{"bad retry-after-ms falls back to Retry-After", map[string]string{"retry-after-ms": "-1", "Retry-After": "4"}, 429, nil, 4 * time.Second},
		{"503 with Retry-After", map[string]string{"Retry-After": "3"}, 503, nil, 3 * time.Second},
		{"long hint is capped", map[string]string{"Retry-After": "3600"}, 429, nil, poller.MaxRetryAfter},
		{"no hint: the interval", nil, 429, nil, time.Second},
		{"hint shorter than the interval: the interval", map[string]string{"Retry-After": "2"}, 429,
			[]func(*poller.Options){poller.WithInterval(10 * time.Second)}, 10 * time.Second},
		{"500 hint is not a rate limit", map[string]string{"Retry-After": "9"}, 500, nil, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := newFake(t, reply{code: tt.code, header: tt.header}, reply{status: "in_progress"}, reply{status: "completed"})
				run, err := poller.New(c, "thread_1", "run_1", tt.opts...).PollUntilDone(t.Context())
				require.NoError(t, err)
				assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
				gaps := f.gaps()
				require.Len(t, gaps, 2)
				assert.Equal(t, tt.want, gaps[0], "the wait after the 429")
				wantAfter := time.Second
				if len(tt.opts) > 0 {
					wantAfter = 10 * time.Second
				}
				assert.Equal(t, wantAfter, gaps[1], "the hint lasts one wait")
			})
		})
	}
}
