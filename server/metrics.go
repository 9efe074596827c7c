package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/assistants-go/assistants/server/store"
)

// metrics is one Server's Prometheus registry and series. Every label value
// comes from a small fixed set (an operationId, a status code, a run
// status, an error class): never a key, an object id or message text. Its
// methods are safe on a nil *metrics (they do nothing).
//
// The series, all under the assistants_ namespace:
//
//	assistants_http_requests_total{operation,status}        requests answered, by operationId ("unmatched" for paths the API does not serve) and HTTP status ("dropped": the connection was cut)
//	assistants_http_request_duration_seconds{operation}     time to answer, the whole event stream included
//	assistants_sse_subscribers                              event streams open now
//	assistants_runs_total{status}                           runs entering each status (queued, in_progress, requires_action, cancelling, cancelled, failed, completed, incomplete, expired)
//	assistants_model_round_duration_seconds{outcome}        model rounds: ok, error, cancelled
//	assistants_model_tokens_total{kind}                     tokens the model used: prompt, completion
//	assistants_backend_errors_total{class}                  failed model rounds by class (see backendErrorClass)
//	assistants_job_duration_seconds{kind,outcome}           queue jobs by kind (round, cancel, expire: the run engine's; ingest: a vector store file's ingestion) and outcome: ok, error
//	assistants_job_wait_seconds{kind}                       time from a job's scheduled time to its start (queue latency)
//	assistants_queue_jobs{state}                            the queue's unfinished jobs by state (available, scheduled, running, retryable...), read from the store at each scrape
//
// and the Go runtime's and the process's standard go_* and process_* series.
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	sse           prometheus.Gauge
	runs          *prometheus.CounterVec
	rounds        *prometheus.HistogramVec
	tokens        *prometheus.CounterVec
	backendErrors *prometheus.CounterVec
	jobs          *prometheus.HistogramVec
	jobWait       *prometheus.HistogramVec
}

// newMetrics returns a metrics with its own registry, so that servers (and
// tests) never share series.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "assistants", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests answered, by operationId and status code.",
	}, []string{"operation", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "assistants", Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time to answer an HTTP request (an event stream: until it ends), by operationId.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"operation"})
	m.sse = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "assistants", Name: "sse_subscribers",
		Help: "Server-sent event streams open now.",
	})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "assistants", Name: "runs_total",
		Help: "Runs entering each status.",
	}, []string{"status"})
	m.rounds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "assistants", Subsystem: "model", Name: "round_duration_seconds",
		Help:    "Duration of one model round, by outcome (ok, error, cancelled).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"outcome"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "assistants", Subsystem: "model", Name: "tokens_total",
		Help: "Tokens used by model rounds, by kind (prompt, completion).",
	}, []string{"kind"})
	m.backendErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "assistants", Name: "backend_errors_total",
		Help: "Failed model rounds, by error class.",
	}, []string{"class"})
	m.jobs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "assistants", Subsystem: "job", Name: "duration_seconds",
		Help:    "Duration of the run engine's jobs, by kind and outcome (ok, error).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"kind", "outcome"})
	m.jobWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "assistants", Subsystem: "job", Name: "wait_seconds",
		Help:    "Time from a job's scheduled time to its start, by kind: the queue's latency.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"kind"})
	m.reg.MustRegister(m.requests, m.latency, m.sse, m.runs, m.rounds, m.tokens, m.backendErrors, m.jobs, m.jobWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler returns the handler of the server's metrics page, in the
// Prometheus text format. cmd/assistants serves it on its own listener
// (serve --metrics-addr); it is not part of Handler, so the API's clients
// never see it.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil})
}

// MetricsRegistry returns the server's own Prometheus registry, on which a
// store or queue can register its series (queue depth, job latency). It is
// never the global default registry: each Server has its own.
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metrics.reg }

// request records one answered request.
func (m *metrics) request(op string, status int, dropped bool, d time.Duration) {
	if m == nil {
		return
	}
	if op == "" {
		op = "unmatched"
	}
	code := strconv.Itoa(status)
	if dropped {
		code = "dropped"
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// streamOpened and streamClosed track the open event streams.
func (m *metrics) streamOpened() {
	if m != nil {
		m.sse.Inc()
	}
}

func (m *metrics) streamClosed() {
	if m != nil {
		m.sse.Dec()
	}
}

// runStatuses are the statuses counted by runEvent: the names that follow
// "thread.run." in the events of a run's own state changes.
var runStatuses = map[string]bool{
	"queued": true, "in_progress": true, "requires_action": true, "cancelling": true, "cancelled": true,
	"failed": true, "completed": true, "incomplete": true, "expired": true,
}

// runEvent counts a run entering a status, from the name of the event the
// engine publishes for it ("thread.run.completed"). Other events (steps,
// messages, deltas, thread.run.created) are ignored. The engine calls it
// from its one publishing function, for every event.
func (m *metrics) runEvent(name string) {
	if m == nil {
		return
	}
	if st, ok := strings.CutPrefix(name, "thread.run."); ok && runStatuses[st] {
		m.runs.WithLabelValues(st).Inc()
	}
}

// modelRound records one model round that began at start and returned out
// and err (after a panic was recovered into err). A round whose context
// ended (the run was cancelled or expired, the server closed) is
// "cancelled" and no backend error.
func (m *metrics) modelRound(ctx context.Context, start time.Time, out **ModelOutput, err *error) {
	if m == nil {
		return
	}
	d := time.Since(start).Seconds()
	switch {
	case *err == nil && *out != nil:
		m.rounds.WithLabelValues("ok").Observe(d)
		u := (*out).Usage
		m.tokens.WithLabelValues("prompt").Add(float64(max(u.PromptTokens, 0)))
		m.tokens.WithLabelValues("completion").Add(float64(max(u.CompletionTokens, 0)))
	case ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		m.rounds.WithLabelValues("cancelled").Observe(d)
	default:
		m.rounds.WithLabelValues("error").Observe(d)
		m.backendErrors.WithLabelValues(backendErrorClass(*err)).Inc()
	}
}

// Backend error classes, the values of assistants_backend_errors_total's
// class label.
const (
	errClassTimeout         = "timeout"            // the backend (or the run's time) ran out
	errClassRateLimit       = "rate_limit"         // the backend answered 429 (after the retries)
	errClassInvalidPrompt   = "invalid_prompt"     // the model refused the prompt
	errClassHTTP4xx         = "http_4xx"           // the backend answered another 4xx
	errClassHTTP5xx         = "http_5xx"           // the backend answered 5xx
	errClassDNS             = "dns"                // the backend's host name did not resolve
	errClassRefused         = "connection_refused" // nothing listens at the backend's address
	errClassTLS             = "tls"                // the TLS handshake failed
	errClassClosed          = "connection_closed"  // the backend closed the connection or cut the stream
	errClassConnection      = "connection"         // another connection failure
	errClassMalformedStream = "malformed_stream"   // the backend's stream did not parse
	errClassStreamEnded     = "stream_ended_early" // the stream ended before the reply did
	errClassNoOutput        = "no_output"          // the model returned neither output nor error
	errClassPanic           = "panic"              // the model panicked
	errClassServer          = "server_error"       // any other ModelError
	errClassOther           = "other"              // an error that is no ModelError
)

// backendErrorClass names the class of a failed model round, from the
// classification the chat backend already made (chatbackend.go,
// chatbackend_errors.go): its ModelError code, its cause and the fixed
// start of its message. The result is always one of the errClass
// constants, never text from the error.
func backendErrorClass(err error) string {
	if err == nil {
		return errClassNoOutput
	}
	if errors.Is(err, errModelPanicked) {
		return errClassPanic
	}
	if errors.Is(err, errBackendTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return errClassTimeout
	}
	var me *ModelError
	if !errors.As(err, &me) {
		return errClassOther
	}
	switch me.Code {
	case ModelErrRateLimit:
		return errClassRateLimit
	case ModelErrInvalidPrompt:
		return errClassInvalidPrompt
	}
	msg := me.Message
	if rest, ok := strings.CutPrefix(msg, "The model backend answered "); ok && len(rest) >= 3 {
		switch rest[0] {
		case '4':
			return errClassHTTP4xx
		case '5':
			return errClassHTTP5xx
		}
	}
	if strings.HasPrefix(msg, "The model backend sent a malformed stream") {
		return errClassMalformedStream
	}
	for _, c := range []struct{ net, class string }{
		{netClassDNS, errClassDNS}, {netClassRefused, errClassRefused}, {netClassTLS, errClassTLS},
		{netClassTimeout, errClassTimeout}, {netClassClosed, errClassClosed}, {netClassOther, errClassConnection},
	} {
		if strings.HasSuffix(msg, ": "+c.net+".") || strings.HasSuffix(msg, ": "+c.net+").") {
			return c.class
		}
	}
	if strings.HasPrefix(msg, "The model backend stream ended early") {
		return errClassStreamEnded
	}
	return errClassServer
}

type jobScheduledKey struct{}

// withJobScheduled returns ctx carrying the time a job was due (its queue
// sets it; see timedWork).
func withJobScheduled(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, jobScheduledKey{}, at)
}

// jobKindLabel is a job kind's metrics label: round, cancel, expire
// (assistants.run_*) or ingest (assistants.vector_store_file_ingest).
func jobKindLabel(kind string) string {
	if kind == kindIngestFile {
		return "ingest"
	}
	return strings.TrimPrefix(kind, "assistants.run_")
}

// timedWork wraps the engine's work function: each job's wait (from the
// time its queue says it was due) and duration by kind and outcome.
func (m *metrics) timedWork(work func(context.Context, store.JobArgs) error) func(context.Context, store.JobArgs) error {
	if m == nil {
		return work
	}
	return func(ctx context.Context, args store.JobArgs) error {
		start := time.Now()
		kind := jobKindLabel(args.Kind())
		if at, ok := ctx.Value(jobScheduledKey{}).(time.Time); ok && !at.IsZero() {
			m.jobWait.WithLabelValues(kind).Observe(max(0, start.Sub(at).Seconds()))
		}
		err := work(ctx, args)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		m.jobs.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
		return err
	}
}

// queueCollector reports the queue's unfinished jobs by state, counted by
// the store (store.Store.CountJobs) at each scrape (bounded by
// queueScrapeTimeout).
type queueCollector struct {
	db   store.Store
	desc *prometheus.Desc
}

const queueScrapeTimeout = 2 * time.Second

// queueStates are always reported (0 when none), so that the series exist.
var queueStates = []string{"available", "scheduled", "running", "retryable"}

func newQueueCollector(db store.Store) *queueCollector {
	return &queueCollector{db: db, desc: prometheus.NewDesc("assistants_queue_jobs",
		"Unfinished jobs of the run engine's queue, by state.", []string{"state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A store that does not answer
// leaves the series out of this scrape.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	n, err := c.db.CountJobs(ctx) // one COUNT(*) GROUP BY state, not the jobs
	if err != nil {
		return
	}
	for _, s := range queueStates {
		if _, ok := n[s]; !ok {
			n[s] = 0 // the series exist, 0 when none
		}
	}
	for st, v := range n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), st)
	}
}
