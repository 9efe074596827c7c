// Package server is an embedded Assistants v2 server. It implements the
// strict server interface generated from the project's spec (package gen),
// keeps its objects in a store (package server/store: in memory, SQLite or
// PostgreSQL), moves runs through the API's states with durable jobs, and
// has a pluggable model (a deterministic scripted one by default),
// server-sent event streams, request validation, optional auth with API
// keys of projects (keys.go, project.go: every object belongs to its key's
// project), per-key limits, health checks and Prometheus metrics,
// idempotency keys and seeded fault injection.
//
// It serves the API under /v1. Use it in tests through package assistantstest,
// or as a process through cmd/assistants.
//
// # Storage
//
// Options.Store keeps assistants, threads, messages, files (their bytes
// streamed in and out), runs with their steps and events, and idempotency
// records; the default is a new in-memory store. Several servers
// (replicas) may share one PostgreSQL database; a SQLite file serves one
// process, which finds everything again after a restart. What a server
// keeps in memory besides (open event streams, the rounds it runs, recent
// idempotency keys) is a cache of its own work. Vector stores, their files
// and batches are in the store too, and their files are processed by
// durable jobs; on SQLite and PostgreSQL the search index (chunks,
// embeddings with their model and dimension, keyword terms) is in the
// database as well, so every replica searches every vector store. With
// the memory store the search index is in process memory.
//
// # Runs
//
// A run goes queued -> in_progress -> completed, requires_action (then,
// once the tool outputs are submitted, queued -> in_progress again), failed,
// incomplete or expired; cancelRun moves it to cancelling, then cancelled.
// Every transition is one store write carrying the run's steps, messages
// and events and the job of the next transition (engine.go, jobs.go): a
// model round, a cancel, an expiry at expires_at. Jobs run in process for
// the memory store and on River for the SQL stores (riverqueue.go), where
// a run whose replica died goes on elsewhere after Options.River's
// RescueAfter. A run in requires_action holds no worker.
//
// Each state change waits Options.StepDelay (default 50ms), so that
// polling sees the states; run replies carry the openai-poll-after-ms
// hint. With no step delay, a run whose round this process starts at once
// is written in_progress by the request that starts it (createRun,
// createThreadAndRun, submitToolOuputsToRun: its answer says
// in_progress, its events still go queued then in_progress), one write
// fewer (startnow.go). A run expires 10 minutes after its creation (expires_at). While a
// run is active its thread is locked: no other run, no new message (the
// store enforces it). With stream: true, createRun, createThreadAndRun and
// submitToolOuputsToRun answer with the API's server-sent events (each with
// its per-run id, read back from the store), ending with done.
//
// # The scripted model
//
// The default Model (Scripted) is deterministic and needs no network:
//
//   - When the latest user message names one or more of the run's function
//     tools as whole words, the run requires action with one call per named
//     tool; a call's arguments are the JSON object written right after the
//     name, or {}: `please get_weather {"city":"Paris"}`.
//   - Once the outputs are submitted, the reply quotes each tool's name and
//     output: `get_weather returned: {"temp":21}`.
//   - Otherwise, when the run has file_search and the assistant or the
//     thread has vector stores, the model searches for the user's text (the
//     server runs the search: a tool_calls step with a file_search call,
//     no requires_action) and replies with the best result's first sentence
//     and one citation, `Emperor penguins eat krill. 【0:0†penguins.md】`,
//     annotated as a file_citation (see filesearch.go); with no result,
//     `I found nothing about that in the files.`
//   - Otherwise the reply echoes the user: `You said: <text>`.
//
// Replies stream word by word (Options.WordDelay apart) and usage counts words. Script plays a fixed
// list of turns instead, for tests; ModelFunc adapts a function; any other
// backend implements Model.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/retrieval/embed"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// Options configures a Server. The zero value of every field means its default.
type Options struct {
	// APIKeys, when not empty, turns auth on: every request must carry one of
	// these keys (or, with KeySecret, a key of the store) as "Authorization:
	// Bearer <key>" or "api-key: <key>". These keys act in
	// store.DefaultProject: the single-project shortcut (serve
	// --api-key-env). Default: none (auth off: every request acts in the
	// default project).
	APIKeys []string
	// KeySecret, when set, turns auth on with the keys kept in the store
	// (`assistants keys create`): a request's key is found by its
	// HMAC-SHA256 under this secret, at least MinKeySecretBytes long, and
	// acts in the key's project. A shorter secret is refused: New logs
	// ErrKeySecretTooShort and every store key is refused (auth stays on).
	// See keys.go. Default: none.
	KeySecret []byte
	// KeyCacheTTL is how long a replica trusts a store key it looked up:
	// a revoked key stops working on every replica within it.
	// Default (and for a value ≤ 0): DefaultKeyCacheTTL (30s).
	KeyCacheTTL time.Duration
	// MaxConcurrentRuns bounds the active runs (queued, in_progress,
	// requires_action, cancelling) of one project; a run over it is
	// answered 429. See runlimit.go. Default: 0, no limit.
	MaxConcurrentRuns int
	// StepDelay is how long the run engine waits before each state change of a
	// run (queued -> in_progress -> ...), so that polling is real.
	// Default: 50ms. Set NoDelay for fast tests.
	StepDelay time.Duration
	// NoDelay makes every state change immediate (StepDelay 0). Default: false.
	NoDelay bool
	// Model writes the assistant's replies. Default: the scripted model (see Scripted).
	Model Model
	// WordDelay is how long the default scripted model (Model not set)
	// waits between two words of a reply, so that a reply streams for a
	// while, as a real model's does. Default: 0, no wait. (assistants
	// serve sets it to its --step-delay.)
	WordDelay time.Duration
	// MaxBodyBytes bounds JSON request bodies. Default: 4 MiB.
	MaxBodyBytes int64
	// MaxFileBytes bounds one uploaded file. Default: 64 MiB.
	MaxFileBytes int64
	// PollAfter is the value of the openai-poll-after-ms hint on run replies.
	// Default: the step delay, at least 10ms.
	PollAfter time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered. Default: 10 minutes.
	IdempotencyTTL time.Duration
	// IdempotencyMaxBytes bounds the memory of the replies remembered for
	// Idempotency-Keys; the oldest are forgotten first.
	// Default: DefaultIdempotencyMaxBytes (64 MiB).
	IdempotencyMaxBytes int64
	// DisableIdempotency turns Idempotency-Key handling off: every request
	// does its work. For testing only (it shows that the chaos harness
	// catches the duplicates it lets through). Default: false.
	DisableIdempotency bool
	// DisableStreamReattach answers a repeat of a streamed request with 409
	// idempotency_key_stream_in_use instead of reattaching it to its run's
	// events. For testing only. Default: false.
	DisableStreamReattach bool
	// Faults injects errors, latency and cut streams. Default: none.
	Faults *Faults
	// Logger receives structured logs. It never sees API keys. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// DisableValidation turns off the OpenAPI request validation. Default: false.
	DisableValidation bool
	// Store keeps the server's objects. The server does not close it: its
	// opener does, after Server.Close. Default: a new in-memory store
	// (store/memory), so nothing survives the process.
	Store store.Store
	// Queue runs the run engine's jobs (model rounds, cancels, expiries),
	// which the store enqueues with the writes that call for them.
	// Default: for a store that keeps its jobs in process (store/memory),
	// an in-process runner; for the SQLite and PostgreSQL stores, River
	// workers on the store's database (see riverqueue.go and River).
	Queue Queue
	// River tunes the River queue of a SQL store: job timeout, the time
	// after which a killed replica's run goes on elsewhere, poll interval,
	// workers. Default: see RiverOptions.
	River RiverOptions
	// ReadyChecks are what GET /readyz asks, beside the server's own check
	// (ready once New returned, unready once Shutdown or Close began): a
	// store's ping, its migrations, its queue workers. See health.go.
	// Default: none.
	ReadyChecks []ReadyCheck
	// RateLimit is the steady request rate, in requests per second, that
	// each API key (with auth off: each client address) may make; a request
	// over it is answered 429 with Retry-After. Limits are per replica.
	// See ratelimit.go. Default: 0, no limit.
	RateLimit float64
	// RateBurst is how many requests a key may make at once before
	// RateLimit applies. Default: RateLimit rounded up, at least 1 (one
	// second's worth).
	RateBurst int
	// Embedder embeds the chunks of vector store files and the queries of
	// searches (the search endpoint and file_search in runs), e.g.
	// embed.NewOpenAI for an OpenAI-compatible /embeddings endpoint.
	// The server binds itself to the embedding space (model and
	// dimension) of the first vectors it gets and refuses any other:
	// a file then fails and a search answers 409 embedding_model_changed
	// (see embedding.go); vectors of two models are never compared. On
	// SQLite and PostgreSQL the vectors are stored with their model and
	// dimension, and a server whose embedder is not the stored vectors'
	// refuses the same way.
	// Default: the built-in embed.Hashing, a deterministic offline
	// lexical stand-in (256 dimensions), not a semantic model.
	Embedder embed.Embedder
}

// Option changes Options.
type Option func(*Options)

// WithAPIKeys turns auth on with the given keys.
func WithAPIKeys(keys ...string) Option {
	return func(o *Options) { o.APIKeys = append(o.APIKeys, keys...) }
}

// WithStepDelay sets the delay before each run state change (default 50ms; 0 means immediate).
func WithStepDelay(d time.Duration) Option {
	return func(o *Options) {
		o.StepDelay = d
		o.NoDelay = d <= 0
	}
}

// WithModel sets the model that writes replies (default: the scripted model).
func WithModel(m Model) Option { return func(o *Options) { o.Model = m } }

// WithWordDelay sets how long the default scripted model waits between
// two words of a reply (default 0: no wait).
func WithWordDelay(d time.Duration) Option { return func(o *Options) { o.WordDelay = d } }

// WithFaults turns on fault injection (default: none).
func WithFaults(f *Faults) Option { return func(o *Options) { o.Faults = f } }

// WithLogger sets the structured logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithMaxFileBytes bounds one uploaded file (default 64 MiB).
func WithMaxFileBytes(n int64) Option { return func(o *Options) { o.MaxFileBytes = n } }

// WithQueue sets what runs the run engine's jobs (default: in process, for
// the memory store).
func WithQueue(q Queue) Option { return func(o *Options) { o.Queue = q } }

// WithRiver tunes the River queue of a SQL store (default: see
// RiverOptions).
func WithRiver(ro RiverOptions) Option { return func(o *Options) { o.River = ro } }

// WithStore sets where the server keeps its objects (default: a new
// in-memory store).
func WithStore(st store.Store) Option { return func(o *Options) { o.Store = st } }

// WithEmbedder sets the embedder of vector store files and searches
// (default: the built-in lexical embed.Hashing). See Options.Embedder.
func WithEmbedder(e embed.Embedder) Option { return func(o *Options) { o.Embedder = e } }

// WithMaxBodyBytes bounds JSON request bodies (default 4 MiB).
func WithMaxBodyBytes(n int64) Option { return func(o *Options) { o.MaxBodyBytes = n } }

// Server is an Assistants v2 server. Create it with New; it is safe for
// concurrent use. Close stops its background work (and its job workers);
// it does not close Options.Store.
type Server struct {
	opts Options
	log  *slog.Logger

	// db keeps assistants, threads, messages and files (Options.Store).
	db store.Store
	// threads serializes, within this process, the writes of one thread
	// that check the run engine's thread lock (a message and a run on one
	// thread; threadlocks.go). It is never held across file processing.
	threads *threadLocks
	st      *memState // search index and ingestion slots (store.go)
	eng     *engine   // runs and run steps, and their state machine (engine.go)

	bg     sync.WaitGroup     // run engine and vector store goroutines
	ctx    context.Context    // cancelled by Close; parent of background work
	cancel context.CancelFunc //

	handler http.Handler
	mux     *http.ServeMux // the router inside handler (see handler.go)
	drain   drainState     // open event streams, for Shutdown (shutdown.go)

	hooks testHooks // nil outside tests (hooks.go)

	metrics *metrics // this server's Prometheus registry and series (metrics.go)

	keys *keyCache // the store's API keys, when Options.KeySecret is set (keys.go)
}

var _ genserver.StrictServerInterface = (*Server)(nil)

// New returns a Server with its options applied over the defaults.
func New(opts ...Option) *Server {
	o := Options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.StepDelay == 0 && !o.NoDelay {
		o.StepDelay = 50 * time.Millisecond
	}
	if o.NoDelay {
		o.StepDelay = 0
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 64 << 20
	}
	if o.PollAfter <= 0 {
		o.PollAfter = max(o.StepDelay, 10*time.Millisecond)
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Model == nil {
		o.Model = scripted{pace: o.WordDelay}
	}
	if o.Store == nil {
		o.Store = memory.New()
	}
	s := &Server{opts: o, log: o.Logger, db: o.Store, threads: newThreadLocks(), st: newStore(), metrics: newMetrics()}
	s.metrics.reg.MustRegister(newQueueCollector(o.Store)) // metrics.go
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if len(o.KeySecret) > 0 {
		s.keys = newKeyCache(o.Store, o.KeySecret, o.KeyCacheTTL, o.Now)
		if len(o.KeySecret) < MinKeySecretBytes { // refused: auth stays on, every store key is refused (keys.go)
			s.log.Error("auth: store keys refused", "err", ErrKeySecretTooShort.Error())
		}
	}
	s.eng = newEngine(s)
	s.handler = s.buildHandler()
	if !o.DisableIdempotency {
		s.goBackground(s.sweepIdempotency) // idemshared.go
	}
	if pg, ok := o.Store.(postgresStore); ok {
		s.eng.pg = s.startPGWake(pg.Pool())
	}
	if o.Queue == nil {
		s.opts.Queue = defaultQueue(o.Store, o.River, s.log)
	}
	// vsupgrade.go: snapshots of earlier versions. New has no caller
	// context and the upgrade ends before New returns.
	s.upgradeVectorStores(context.Background())
	if s.opts.Queue != nil {
		if err := s.opts.Queue.Start(s.ctx, s.metrics.timedWork(s.work)); err != nil { // ingestjobs.go: file ingestion, else the run engine
			s.log.Error("run engine: the job queue did not start", "err", err.Error())
		}
	} else {
		s.log.Error("run engine: no job queue for this store: runs stay queued (see Options.Queue)")
	}
	return s
}

// Handler returns the HTTP handler that serves the API under /v1.
func (s *Server) Handler() http.Handler { return s.handler }

// ServeHTTP serves the API under /v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close stops the run engine and every background task, and waits for them.
// Requests still in flight finish; runs still active stay where they are.
func (s *Server) Close() error {
	s.eng.close() // no new runs; open event streams end
	s.cancel()
	if q := s.opts.Queue; q != nil {
		_ = q.Stop(context.Background()) // running jobs end: their contexts are cancelled
	}
	s.bg.Wait()
	s.closeSearch() // ingest.go
	return nil
}

// now returns the current time in Unix seconds, as the API's created_at fields are.
func (s *Server) now() int { return int(s.opts.Now().Unix()) }

// goBackground runs f in a goroutine tracked by Close. A panic in f is
// logged with its stack and goes no further: the process lives. (Callers
// that must mark their object failed recover first: see recover.go.)
func (s *Server) goBackground(f func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer func() {
			if p := recover(); p != nil {
				s.logPanic("background task panicked", p)
			}
		}()
		f(s.ctx)
	}()
}

// sleep waits for d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
