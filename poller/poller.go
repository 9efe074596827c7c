// Package poller follows a run of the Assistants API until it stops: until
// it completes, fails, is cancelled, expires, ends incomplete, or requires
// action (tool outputs).
//
// It is modelled on the Azure SDK's runtime.Poller and the AWS SDK v2
// waiters. A Poller is driven step by step (Poll, Done, Result) or all at
// once (PollUntilDone); CreateAndPoll, CreateThreadAndRunAndPoll and
// SubmitToolOutputsAndPoll start a run (or resume it) and wait for it.
//
//	run, err := poller.CreateAndPoll(ctx, client, threadID, gen.CreateRunRequest{AssistantId: asstID})
//	var runErr *poller.RunError
//	switch {
//	case errors.As(err, &runErr): // failed, cancelled, expired or incomplete
//	case err != nil: // the request failed, or ctx ended
//	case run.Status == gen.RunObjectStatusRequiresAction: // submit tool outputs
//	default: // completed
//	}
//
// Between two polls a Poller waits Options.Interval, or when that is 0 the
// time the server asks for in the openai-poll-after-ms reply header (read
// again on every reply), or DefaultInterval. The wait may grow by
// Options.Backoff up to Options.MaxInterval. A cancelled context ends a wait
// at once.
package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/editors"
)

// DefaultInterval is the wait between two polls when Options.Interval is 0
// and the last reply carried no openai-poll-after-ms header.
const DefaultInterval = time.Second

// DefaultMaxInterval caps the growing wait when Options.Backoff is above 1
// and Options.MaxInterval is 0.
const DefaultMaxInterval = 30 * time.Second

// PollAfterHeader is the reply header in which the server suggests, in
// milliseconds, how long to wait before the next poll.
const PollAfterHeader = "openai-poll-after-ms"

// ErrNotDone is returned by Poller.Result while the run has not stopped.
var ErrNotDone = errors.New("poller: run not done")

// RunGetter reads a run: the typed call of *assistants.Client. The poller
// passes it an assistants.ReplyHeader editor to read the reply's
// openai-poll-after-ms hint; an implementation that ignores the editors (a
// test fake) gets the default interval.
type RunGetter interface {
	GetRun(ctx context.Context, threadID string, runID string, reqEditors ...gen.RequestEditorFn) (*gen.RunObject, error)
}

// RunCreator creates a run on a thread: the typed call of
// *assistants.Client.
type RunCreator interface {
	CreateRun(ctx context.Context, threadID string, params *gen.CreateRunParams, body gen.CreateRunJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.RunObject, error)
}

// ThreadAndRunCreator creates a thread and a run on it in one request: the
// typed call of *assistants.Client.
type ThreadAndRunCreator interface {
	CreateThreadAndRun(ctx context.Context, body gen.CreateThreadAndRunJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.RunObject, error)
}

// ToolOutputsSubmitter submits tool outputs to a run that requires action:
// the typed call of *assistants.Client.
type ToolOutputsSubmitter interface {
	SubmitToolOutputsToRun(ctx context.Context, threadID string, runID string, body gen.SubmitToolOutputsToRunJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.RunObject, error)
}

// Options configures a Poller. Pass functions that modify it to New,
// NewFromRun and the ...AndPoll helpers; the zero value is the default.
type Options struct {
	// Interval is the wait between two polls. Default (0): the
	// openai-poll-after-ms header of the last reply, read again on every
	// reply, or DefaultInterval (1s) when the header is absent or invalid.
	Interval time.Duration
	// Backoff, when above 1, multiplies the wait after each poll that
	// finds the run still pending (or fails transiently), so the n-th
	// consecutive wait is base*Backoff^(n-1), capped by MaxInterval.
	// Default (0, or 1 or less): no growth.
	Backoff float64
	// MaxInterval caps the wait grown by Backoff; it never shortens the
	// base interval itself. Default (0): DefaultMaxInterval (30s).
	MaxInterval time.Duration
	// RequestEditors are passed to every request the poller makes.
	// Default: none.
	RequestEditors []gen.RequestEditorFn
}

// WithInterval returns an option setting Options.Interval.
func WithInterval(d time.Duration) func(*Options) { return func(o *Options) { o.Interval = d } }

// WithBackoff returns an option setting Options.Backoff and
// Options.MaxInterval.
func WithBackoff(factor float64, maxInterval time.Duration) func(*Options) {
	return func(o *Options) { o.Backoff, o.MaxInterval = factor, maxInterval }
}

// RunError is the error for a run that stopped without completing: its
// status is failed, cancelled, expired or incomplete. Match it with
// errors.As; the run itself is returned next to it as well.
type RunError struct {
	// Run is the final run.
	Run *gen.RunObject
	// Status is the run's final status.
	Status gen.RunObjectStatus
	// Code is last_error.code (e.g. "server_error", "rate_limit_exceeded");
	// empty when the run has no last_error.
	Code string
	// Message is last_error.message; empty when the run has no last_error.
	Message string
	// IncompleteReason is incomplete_details.reason (e.g.
	// "max_completion_tokens") for an incomplete run; empty otherwise.
	IncompleteReason string
}

// Error returns e.g. "poller: run run_abc failed: server_error: boom" or
// "poller: run run_abc incomplete: max_prompt_tokens".
func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString("poller: run ")
	if e.Run != nil && e.Run.Id != "" {
		b.WriteString(e.Run.Id)
		b.WriteString(" ")
	}
	b.WriteString(string(e.Status))
	switch {
	case e.Code != "" && e.Message != "":
		fmt.Fprintf(&b, ": %s: %s", e.Code, e.Message)
	case e.Code != "" || e.Message != "":
		fmt.Fprintf(&b, ": %s%s", e.Code, e.Message)
	}
	if e.IncompleteReason != "" {
		fmt.Fprintf(&b, ": %s", e.IncompleteReason)
	}
	return b.String()
}

// newRunError builds the RunError of a run in a failure state.
func newRunError(run *gen.RunObject) *RunError {
	e := &RunError{Run: run, Status: run.Status}
	if run.LastError != nil {
		e.Code = string(run.LastError.Code)
		e.Message = run.LastError.Message
	}
	if run.IncompleteDetails != nil && run.IncompleteDetails.Reason != nil {
		e.IncompleteReason = string(*run.IncompleteDetails.Reason)
	}
	return e
}

// IsTerminal reports whether a run in this status has stopped: it will not
// change without the caller (requires_action) or at all (completed, failed,
// cancelled, expired, incomplete). queued, in_progress, cancelling and any
// status this package does not know are not terminal.
func IsTerminal(s gen.RunObjectStatus) bool {
	switch s {
	case gen.RunObjectStatusRequiresAction, gen.RunObjectStatusCompleted,
		gen.RunObjectStatusFailed, gen.RunObjectStatusCancelled,
		gen.RunObjectStatusExpired, gen.RunObjectStatusIncomplete:
		return true
	}
	return false
}

// outcome is the (run, error) a poll of a terminal run stands for:
// requires_action and completed give a nil error, the failure states a
// *RunError.
func outcome(run *gen.RunObject) error {
	switch run.Status {
	case gen.RunObjectStatusFailed, gen.RunObjectStatusCancelled,
		gen.RunObjectStatusExpired, gen.RunObjectStatusIncomplete:
		return newRunError(run)
	}
	return nil
}

// IsTransient reports whether err from a request is worth retrying by
// polling again:
//   - an *assistants.APIError with status 408, 429 or 5xx;
//   - a connection-level failure: a timeout (assistants.ErrAttemptTimeout, a
//     net.Error whose Timeout is true), a refused, reset or aborted
//     connection, a network or host that cannot be reached, a body cut short
//     (io.EOF, io.ErrUnexpectedEOF), a temporary DNS failure, or any other
//     failure of the connection reported in a *url.Error or *net.OpError
//     that assistants.IsPermanent does not call permanent.
//
// Not transient: nil, context cancellation, other API errors (400, 401, 403,
// 404, ...), undecodable replies (assistants.ErrUnexpectedReply), a DNS name
// that does not exist, and every error assistants.IsPermanent reports: TLS
// certificate and x509 failures, a credential that could not be obtained
// (e.g. a failing Azure AD token source, assistants.ErrCredentials), an
// unsupported protocol scheme and an invalid URL. The wrapped error of a
// *url.Error is what is classified, not the wrapper.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *assistants.APIError
	if errors.As(err, &apiErr) {
		c := apiErr.StatusCode
		return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
	}
	if errors.Is(err, assistants.ErrUnexpectedReply) || assistants.IsPermanent(err) {
		return false
	}
	if errors.Is(err, assistants.ErrAttemptTimeout) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	for _, errno := range transientErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	// Another failure of the connection (e.g. an HTTP/2 GOAWAY, a closed
	// idle connection): polling again is the best bet.
	var urlErr *url.Error
	var opErr *net.OpError
	return errors.As(err, &urlErr) || errors.As(err, &opErr)
}

// transientErrnos are the system errors of a connection that may work
// when tried again.
var transientErrnos = []error{
	syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
}

// MaxRetryAfter bounds the wait a 429 or 503 reply's Retry-After or
// retry-after-ms header can ask the poller for: a longer hint waits
// MaxRetryAfter.
const MaxRetryAfter = time.Minute

// retryAfterHint returns the wait that err's reply asks for when err is a
// 429 or 503 *assistants.APIError with a Retry-After or retry-after-ms
// header (capped at MaxRetryAfter), else 0.
func retryAfterHint(err error, now time.Time) time.Duration {
	var apiErr *assistants.APIError
	if !errors.As(err, &apiErr) || (apiErr.StatusCode != http.StatusTooManyRequests && apiErr.StatusCode != http.StatusServiceUnavailable) {
		return 0
	}
	// Read hints up to a day, then cap them, so a long one still waits long.
	d, ok := assistants.RetryAfter(apiErr.Header, now, 24*time.Hour)
	if !ok {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// PollAfter returns the wait the server suggests in the openai-poll-after-ms
// header of h, or 0 when the header is absent, not a whole number of
// milliseconds, or not positive.
func PollAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get(PollAfterHeader))
	if v == "" {
		return 0
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// Poller follows one run. Use it from one goroutine at a time. Its states:
// pending (Done false) until a poll finds the run in a terminal status
// (see IsTerminal) or fails permanently (e.g. 404); then Done is true and
// Result returns the outcome for good.
type Poller struct {
	client    RunGetter
	threadID  string
	runID     string
	opts      Options
	last      *gen.RunObject
	hint      time.Duration // last reply's openai-poll-after-ms; 0 none
	header    http.Header   // the last reply's header, stored by editors' last one
	editors   []gen.RequestEditorFn
	retry     time.Duration // last failed reply's Retry-After (429, 503); 0 none
	pending   int           // consecutive polls that did not end it
	done      bool
	err       error
	lastErr   error // the transient error of the last poll; nil after a success
	waitFirst bool  // the next PollUntilDone step waits before polling
}

// New returns a Poller for the run runID on thread threadID, e.g. to resume
// following a run whose ids were saved. Its first Poll is a GET at once; it
// is pending until then.
func New(client RunGetter, threadID, runID string, opts ...func(*Options)) *Poller {
	p := &Poller{client: client, threadID: threadID, runID: runID}
	for _, o := range opts {
		if o != nil {
			o(&p.opts)
		}
	}
	return p
}

// NewFromRun returns a Poller that starts from run, as returned by the
// request that created or changed it; hint is that reply's
// openai-poll-after-ms wait (see PollAfter; 0 for none). When run is
// already terminal the Poller is done at once; otherwise PollUntilDone
// waits one interval before its first GET. A nil run gives a done Poller
// whose Result is an error.
func NewFromRun(client RunGetter, run *gen.RunObject, hint time.Duration, opts ...func(*Options)) *Poller {
	p := New(client, "", "", opts...)
	if run == nil {
		p.done, p.err = true, errors.New("poller: NewFromRun: nil run")
		return p
	}
	p.threadID, p.runID = run.ThreadId, run.Id
	p.hint = hint
	p.observe(run)
	p.waitFirst = !p.done
	return p
}

// observe records a run read from the server.
func (p *Poller) observe(run *gen.RunObject) {
	p.last = run
	if IsTerminal(run.Status) {
		p.done, p.err = true, outcome(run)
		return
	}
	p.pending++
}

// Poll makes one GET of the run (even when it is done, to refresh it) and
// returns what it found:
//   - a terminal run: the run, and nil for requires_action and completed or
//     a *RunError for failed, cancelled, expired and incomplete; Done is
//     then true;
//   - a pending run (queued, in_progress, cancelling, unknown): the run and
//     nil;
//   - a failed request: the last run seen (nil before any) and the error.
//     A permanent error (see IsTransient; e.g. a 404 or an untrusted TLS
//     certificate) makes the Poller done with it; a transient one or a done
//     ctx leaves it pending. When ctx is done the error matches ctx.Err()
//     and wraps the last real error as PollUntilDone describes.
func (p *Poller) Poll(ctx context.Context) (*gen.RunObject, error) {
	p.waitFirst = true
	if p.runID == "" || p.threadID == "" {
		p.done, p.err = true, errors.New("poller: empty thread or run id")
		return nil, p.err
	}
	if p.editors == nil {
		p.editors = editors.WithReplyHeader(p.opts.RequestEditors, &p.header)
	}
	p.header = nil
	run, err := p.client.GetRun(ctx, p.threadID, p.runID, p.editors...)
	if p.header != nil {
		p.hint = PollAfter(p.header)
	}
	p.retry = 0
	if err != nil {
		if ctx.Err() != nil {
			return p.last, p.ctxErr(ctx, fmt.Errorf("poller: get run %s: %w", p.runID, err))
		}
		err = fmt.Errorf("poller: get run %s: %w", p.runID, err)
		if IsTransient(err) {
			p.pending++
			p.lastErr = err
			p.retry = retryAfterHint(err, time.Now())
			return p.last, err
		}
		p.done, p.err = true, err
		return p.last, err
	}
	p.done, p.err, p.lastErr = false, nil, nil
	p.observe(run)
	if p.done {
		return run, p.err
	}
	return run, nil
}

// ctxErr is the error for a poll or a wait that ctx ended: ctx.Err() joined
// with the last real error seen, which is reqErr, the failed request's own
// error, when it says more than ctx's (e.g. the *APIError of the attempt
// before the client's retry wait), else the transient error of the last
// poll. errors.Is finds ctx's error in it and errors.As the real one.
func (p *Poller) ctxErr(ctx context.Context, reqErr error) error {
	cerr := ctx.Err()
	last := p.lastErr
	var apiErr *assistants.APIError
	if reqErr != nil && (errors.As(reqErr, &apiErr) || !errors.Is(reqErr, cerr)) {
		last = reqErr
	}
	if last == nil {
		return cerr
	}
	return fmt.Errorf("%w; last error: %w", cerr, last)
}

// Done reports whether the Poller has stopped: the last poll found the run
// terminal or failed permanently.
func (p *Poller) Done() bool { return p.done }

// Result returns the outcome once Done: the final run with nil
// (requires_action, completed) or a *RunError (failed, cancelled, expired,
// incomplete), or the last run seen and the permanent request error. Before
// that it returns the last run seen (nil before any) and ErrNotDone.
func (p *Poller) Result() (*gen.RunObject, error) {
	if !p.done {
		return p.last, ErrNotDone
	}
	return p.last, p.err
}

// NextInterval is how long to wait before the next poll: Options.Interval,
// else the last reply's openai-poll-after-ms, else DefaultInterval; grown by
// Options.Backoff for each consecutive pending poll beyond the first, up to
// Options.MaxInterval. After a 429 or 503 reply that carried Retry-After or
// retry-after-ms, it is at least that wait (at most MaxRetryAfter).
func (p *Poller) NextInterval() time.Duration {
	return max(p.interval(), p.retry)
}

// interval is NextInterval without the server's Retry-After.
func (p *Poller) interval() time.Duration {
	base := p.opts.Interval
	if base <= 0 {
		base = p.hint
	}
	if base <= 0 {
		base = DefaultInterval
	}
	if p.opts.Backoff <= 1 || p.pending <= 1 {
		return base
	}
	limit := p.opts.MaxInterval
	if limit <= 0 {
		limit = DefaultMaxInterval
	}
	if limit < base {
		return base
	}
	d := float64(base) * math.Pow(p.opts.Backoff, float64(p.pending-1))
	if d >= float64(limit) || math.IsInf(d, 0) || math.IsNaN(d) {
		return limit
	}
	return time.Duration(d)
}

// PollUntilDone polls, waiting NextInterval between polls, until Done, and
// returns Result. A transient request error (see IsTransient) does not end
// it: the next poll comes after the interval, or after the wait a 429 or 503
// reply asked for. A permanent one ends it with that error. When ctx ends,
// the current wait or request stops at once and PollUntilDone returns the
// last run seen and an error that matches ctx.Err() with errors.Is and,
// when a poll failed since the last good one, also wraps that poll's error
// (errors.As finds e.g. its *assistants.APIError).
func (p *Poller) PollUntilDone(ctx context.Context) (*gen.RunObject, error) {
	for !p.Done() {
		if p.waitFirst {
			if err := wait(ctx, p.NextInterval()); err != nil {
				return p.last, p.ctxErr(ctx, nil)
			}
		}
		if _, err := p.Poll(ctx); err != nil && ctx.Err() != nil {
			return p.last, err
		}
	}
	return p.Result()
}

// wait sleeps d or until ctx is done, whichever comes first.
func wait(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RunCreateGetter is what CreateAndPoll needs.
type RunCreateGetter interface {
	RunCreator
	RunGetter
}

// ThreadAndRunCreateGetter is what CreateThreadAndRunAndPoll needs.
type ThreadAndRunCreateGetter interface {
	ThreadAndRunCreator
	RunGetter
}

// ToolOutputsSubmitGetter is what SubmitToolOutputsAndPoll needs.
type ToolOutputsSubmitGetter interface {
	ToolOutputsSubmitter
	RunGetter
}

// options applies opts to a fresh Options.
func options(opts []func(*Options)) Options {
	var o Options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// CreateAndPoll creates a run on thread threadID and polls it until it
// stops, honouring the creation reply's openai-poll-after-ms. body.Stream is
// cleared (polling needs a JSON reply). The results are those of
// Poller.PollUntilDone; a failed creation returns nil and the error (it is
// not retried here, the client's transport already retries).
func CreateAndPoll(ctx context.Context, client RunCreateGetter, threadID string, body gen.CreateRunJSONRequestBody, opts ...func(*Options)) (*gen.RunObject, error) {
	o := options(opts)
	body.Stream = nil
	var h http.Header
	run, err := client.CreateRun(ctx, threadID, nil, body, editors.WithReplyHeader(o.RequestEditors, &h)...)
	if err != nil {
		return nil, fmt.Errorf("poller: create run: %w", err)
	}
	return NewFromRun(client, run, PollAfter(h), opts...).PollUntilDone(ctx)
}

// CreateThreadAndRunAndPoll creates a thread and a run on it and polls the
// run until it stops, like CreateAndPoll. The thread id is the returned
// run's ThreadId.
func CreateThreadAndRunAndPoll(ctx context.Context, client ThreadAndRunCreateGetter, body gen.CreateThreadAndRunJSONRequestBody, opts ...func(*Options)) (*gen.RunObject, error) {
	o := options(opts)
	body.Stream = nil
	var h http.Header
	run, err := client.CreateThreadAndRun(ctx, body, editors.WithReplyHeader(o.RequestEditors, &h)...)
	if err != nil {
		return nil, fmt.Errorf("poller: create thread and run: %w", err)
	}
	return NewFromRun(client, run, PollAfter(h), opts...).PollUntilDone(ctx)
}

// SubmitToolOutputsAndPoll submits tool outputs to run runID (which must
// require action) and polls it until it stops again, like CreateAndPoll.
// body.Stream is cleared. A failed submission returns nil and the error.
func SubmitToolOutputsAndPoll(ctx context.Context, client ToolOutputsSubmitGetter, threadID, runID string, body gen.SubmitToolOutputsRunRequest, opts ...func(*Options)) (*gen.RunObject, error) {
	o := options(opts)
	body.Stream = nil
	var h http.Header
	run, err := client.SubmitToolOutputsToRun(ctx, threadID, runID, body, editors.WithReplyHeader(o.RequestEditors, &h)...)
	if err != nil {
		return nil, fmt.Errorf("poller: submit tool outputs to run %s: %w", runID, err)
	}
	return NewFromRun(client, run, PollAfter(h), opts...).PollUntilDone(ctx)
}
