package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/assistants-go/assistants/server"
)

// serveConfig holds the serve command's flags.
type serveConfig struct {
	addr      string
	apiKey    string
	stepDelay time.Duration
	grace     time.Duration // --shutdown-grace
	logLevel  string
	logFormat string // --log-format: text or json
	// metricsAddr is where the Prometheus metrics page listens (--metrics-addr); empty: nowhere.
	metricsAddr string
	backend     *server.ChatModel // nil: the scripted model
	storeKind   storeKind         // --data, --memory or --database-url
	storeAt     string            // the data directory or the database URL
	logger      *slog.Logger
}

func serveFlags(args []string, out io.Writer) (*serveConfig, []server.Option, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	c := &serveConfig{}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.apiKey, "api-key", "", "turn auth on with this key (default: off; prefer --api-key-env)")
	apiKeyEnv := fs.String("api-key-env", "", "turn auth on with the key in this environment variable")
	fs.DurationVar(&c.stepDelay, "step-delay", 50*time.Millisecond, "delay before each run state change, and between two words of the scripted model's replies (0 = immediate)")
	fs.DurationVar(&c.grace, "shutdown-grace", defaultShutdownGrace, "on SIGINT/SIGTERM, how long open event streams may go on before they end with an error event")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on stderr: text (key=value) or json (one object a line)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, on a listener of their own (default: off)")
	rate := fs.Float64("rate-limit", 0, "requests per second allowed to each API key (with auth off, each client address), per replica; over it: 429 with Retry-After (default 0: no limit)")
	burst := fs.Int("rate-burst", 0, "requests a key may make at once before --rate-limit applies (default 0: one second's worth, at least 1)")
	keySecretEnv := fs.String("key-secret-env", envKeySecret, "accept the API keys kept in the store (assistants keys create), hashed with the secret in this environment variable (at least 32 bytes); when the variable is empty, store keys are off")
	keyTTL := fs.Duration("key-cache-ttl", server.DefaultKeyCacheTTL, "how long a replica trusts a store key it looked up: a revoked key stops working on every replica within this")
	maxRuns := fs.Int("max-concurrent-runs", defaultMaxConcurrentRuns, "active runs allowed to each project at once, across replicas (counted in the store); over it createRun answers 429 with Retry-After (0: no limit)")
	insecure := fs.Bool("insecure-no-auth", false, "serve without any API key on a non-loopback --addr (refused otherwise)")
	idemBytes := fs.Int64("idempotency-max-bytes", server.DefaultIdempotencyMaxBytes, "memory for the replies remembered for Idempotency-Key retries; the oldest are forgotten first")
	var ro server.RiverOptions
	fs.DurationVar(&ro.JobTimeout, "job-timeout", 0, "with --data or --database-url: how long one job of the run engine (a model round) may run before it is cancelled and run again (default 10m, a run's lifetime)")
	fs.DurationVar(&ro.RescueAfter, "rescue-after", 0, "with --data or --database-url: a round's (or cancel's) job runs at once in the replica that wrote it, and its copy in the database becomes due this long after, for any replica to run when that replica died; a job River runs that stays running this long is taken for stuck and run again. A killed replica's run goes on within about this (plus up to 30s) (default --job-timeout plus 1m; at least --job-timeout; a job is cancelled a margin, 1m or half of --job-timeout, before this, so a smaller value shortens --job-timeout; the clocks of the replicas and the database must agree within that margin)")
	bf := addBackendFlags(fs, os.Getenv)
	sf := addStoreFlags(fs, os.Getenv)
	if err := parseFlags(fs, args, out); err != nil {
		return nil, nil, err
	}
	explicitURL := false
	fs.Visit(func(f *flag.Flag) { explicitURL = explicitURL || f.Name == "database-url" })
	var err error
	if c.storeKind, c.storeAt, err = sf.choice(explicitURL); err != nil {
		return nil, nil, err
	}
	if *apiKeyEnv != "" {
		c.apiKey = os.Getenv(*apiKeyEnv)
		if c.apiKey == "" {
			return nil, nil, fmt.Errorf("--api-key-env %s: the variable is empty", *apiKeyEnv)
		}
	}
	var keySecret []byte
	if *keySecretEnv != "" {
		if v := os.Getenv(*keySecretEnv); v != "" {
			if len(v) < server.MinKeySecretBytes {
				return nil, nil, fmt.Errorf("--key-secret-env %s: the secret must be at least %d bytes", *keySecretEnv, server.MinKeySecretBytes)
			}
			keySecret = []byte(v)
		}
	}
	if *maxRuns < 0 {
		return nil, nil, usagef("serve: --max-concurrent-runs %d: cannot be negative", *maxRuns)
	}
	if c.apiKey == "" && keySecret == nil && !*insecure && !isLoopback(c.addr) {
		return nil, nil, usagef("serve: --addr %s is not a loopback address and no API key is configured: give --api-key-env (or $%s for the keys of `assistants keys`), or --insecure-no-auth to serve everyone", c.addr, envKeySecret)
	}
	if *idemBytes <= 0 {
		return nil, nil, usagef("serve: --idempotency-max-bytes %d: must be positive", *idemBytes)
	}
	if *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0) {
		return nil, nil, usagef("serve: --rate-limit %v: must be a number of requests per second, 0 or more", *rate)
	}
	if *burst < 0 {
		return nil, nil, usagef("serve: --rate-burst %d: cannot be negative", *burst)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, nil, usagef("serve: --log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch c.logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	default:
		return nil, nil, usagef("serve: --log-format %q: use text or json", c.logFormat)
	}
	c.logger = logger
	opts := []server.Option{
		server.WithStepDelay(c.stepDelay),
		server.WithWordDelay(c.stepDelay), // a reply streams for a while: a replica can die mid-reply
		server.WithLogger(logger),
		server.WithIdempotencyMaxBytes(*idemBytes),
		server.WithRiver(ro),
	}
	if *rate > 0 {
		opts = append(opts, server.WithRateLimit(*rate, *burst))
	}
	if c.backend, err = bf.model(os.Getenv, logger); err != nil {
		return nil, nil, err
	}
	if c.backend != nil {
		opts = append(opts, server.WithModel(c.backend))
	}
	emb, err := bf.embedder(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if emb != nil {
		opts = append(opts, server.WithEmbedder(emb))
	}
	if c.apiKey != "" {
		opts = append(opts, server.WithAPIKeys(c.apiKey))
	}
	if keySecret != nil {
		opts = append(opts, server.WithKeySecret(keySecret), server.WithKeyCacheTTL(*keyTTL))
	}
	opts = append(opts, server.WithMaxConcurrentRuns(*maxRuns))
	return c, opts, nil
}

// defaultMaxConcurrentRuns is serve's --max-concurrent-runs default: far
// above what one team's code keeps going at once, low enough that one
// client's runaway loop cannot take every worker of a shared deployment.
const defaultMaxConcurrentRuns = 64

// isLoopback reports whether addr (host:port) listens on a loopback
// address only ("localhost", 127.0.0.0/8, ::1); an empty host or 0.0.0.0
// listens everywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultShutdownGrace is serve's --shutdown-grace default.
const defaultShutdownGrace = 10 * time.Second

// closeWait bounds how long serve waits, once the grace period is over, for
// the connections to finish before it closes them.
const closeWait = 5 * time.Second

// serve runs the server until ctx ends, then shuts down: no new runs, the
// listener closes, open event streams get c.grace to end on their own and
// are then ended with an "error" event.
func serve(ctx context.Context, args []string, out io.Writer) error {
	c, opts, err := serveFlags(args, out)
	if err != nil {
		return err
	}
	st, where, err := openStore(ctx, c.storeKind, c.storeAt, c.logger, true)
	if err != nil {
		return err
	}
	defer st.Close() // after the server's Close (deferred below)
	fmt.Fprintln(out, where)
	opts = append(opts, server.WithStore(st))
	srv := server.New(opts...)
	defer srv.Close()
	bindBackend(c.backend, srv)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(out, "listening on http://%s/v1\n", ln.Addr())
	if c.metricsAddr != "" {
		mln, err := net.Listen("tcp", c.metricsAddr)
		if err != nil {
			_ = hs.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		mhs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- mhs.Serve(mln) }()
		// Closed last, so the drain can still be watched.
		defer mhs.Close()
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", mln.Addr())
	}
	select {
	case err := <-errc:
		_ = hs.Close()
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(out, "shutting down: open event streams get up to %s (interrupt again to exit at once)\n", c.grace)
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), c.grace)
	defer cancelGrace()
	drained := make(chan error, 1)
	go func() { drained <- srv.Shutdown(graceCtx) }()
	// The listener closes now; in-flight requests finish, and the streams
	// end within the grace period (srv.Shutdown ends the late ones).
	hsCtx, cancelHS := context.WithTimeout(context.Background(), c.grace+closeWait)
	defer cancelHS()
	if err := hs.Shutdown(hsCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(out, "closing the connections still open: %v\n", err)
		_ = hs.Close()
	}
	if err := <-drained; err != nil {
		fmt.Fprintf(out, "grace period over: %v\n", err)
	}
	fmt.Fprintln(out, "server stopped")
	return nil
}
