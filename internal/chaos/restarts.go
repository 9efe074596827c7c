package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistants-go/assistants/internal/pgtest/pgschema"

	"github.com/assistants-go/assistants/internal/servetest"
)

// Restarts runs the conversations against `assistants serve` child
// processes on a durable store instead of the embedded server, and kills
// them (SIGKILL) and starts them again on the same data while the
// conversations go on. The client reaches the replicas through a router
// that spreads requests over the replicas that are up, as a load balancer
// would; a request cut by a kill is retried by the client.
type Restarts struct {
	// Binary is the assistants command to run as `Binary serve ...`.
	// Required.
	Binary string
	// Store is "sqlite" (Replicas must be 1) or "postgres". Default
	// "sqlite". "memory" (serve --memory, one replica) keeps nothing across
	// a kill: the tests use it to show that the harness reports lost runs.
	Store string
	// DataDir is serve's --data for SQLite. Required for SQLite.
	DataDir string
	// DatabaseURL is the PostgreSQL database for Store "postgres"; Run makes
	// a schema of its own in it and drops it at the end. Required for
	// PostgreSQL.
	DatabaseURL string
	// Replicas is the number of serve processes. Default 1 for SQLite, 2
	// for PostgreSQL.
	Replicas int
	// KillEvery is the mean time between two kills (each kill picks a
	// replica at random, with the run's seed). Default 1.5s.
	KillEvery time.Duration
	// Kills bounds the number of kills, so that the runs stranded by the
	// last ones are picked up (after the serve's --rescue-after, once a
	// live replica leads River's maintenance) and the conversations end.
	// Default 6.
	Kills int
	// Down is how long a killed replica stays down before it is started
	// again on the same address. Default 200ms.
	Down time.Duration
	// ServeArgs are added to every serve command line (after --data or
	// --database-url, --addr and --step-delay), e.g. the job rescue time.
	// Default: none.
	ServeArgs []string
	// Log receives the replicas' stderr when one fails to start. Default:
	// discard.
	Log io.Writer
}

// cluster is the running replicas.
type cluster struct {
	cfg      Restarts
	args     []string // serve's flags, without --addr
	mu       sync.Mutex
	procs    []*servetest.Proc // nil while a replica is down
	addrs    []string          // each replica's address, kept across restarts
	next     atomic.Uint64     // round robin
	restarts atomic.Int64
	dropDB   func()
}

// startCluster starts the replicas and waits until each listens.
func startCluster(ctx context.Context, rc Restarts, stepDelay time.Duration) (*cluster, error) {
	if rc.Binary == "" {
		return nil, errors.New("chaos restarts: no serve binary")
	}
	if rc.Store == "" {
		rc.Store = "sqlite"
	}
	if rc.KillEvery <= 0 {
		rc.KillEvery = 1500 * time.Millisecond
	}
	if rc.Kills <= 0 {
		rc.Kills = 6
	}
	if rc.Down <= 0 {
		rc.Down = 200 * time.Millisecond
	}
	if rc.Log == nil {
		rc.Log = io.Discard
	}
	c := &cluster{cfg: rc, dropDB: func() {}}
	switch rc.Store {
	case "sqlite":
		if rc.DataDir == "" {
			return nil, errors.New("chaos restarts: SQLite needs a data directory")
		}
		if rc.Replicas == 0 {
			rc.Replicas = 1
		}
		if rc.Replicas != 1 {
			return nil, errors.New("chaos restarts: SQLite runs one replica")
		}
		c.args = []string{"--data", rc.DataDir}
	case "memory":
		rc.Replicas = 1
		c.args = []string{"--memory"}
	case "postgres":
		if rc.Replicas == 0 {
			rc.Replicas = 2
		}
		if rc.DatabaseURL == "" {
			return nil, errors.New("chaos restarts: PostgreSQL needs a database URL")
		}
		u, drop, err := pgschema.Fresh(ctx, rc.DatabaseURL, "chaos_")
		if err != nil {
			return nil, fmt.Errorf("chaos restarts: %w", err)
		}
		c.dropDB = drop
		c.args = []string{"--database-url", u}
	default:
		return nil, fmt.Errorf("chaos restarts: unknown store %q (sqlite or postgres)", rc.Store)
	}
	c.cfg = rc
	c.args = append(c.args, "--step-delay", stepDelay.String(), "--log-level", "error")
	c.args = append(c.args, rc.ServeArgs...)
	c.procs = make([]*servetest.Proc, rc.Replicas)
	c.addrs = make([]string, rc.Replicas)
	for i := range rc.Replicas {
		if err := c.start(ctx, i, "127.0.0.1:0"); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// start starts replica i on addr.
func (c *cluster) start(ctx context.Context, i int, addr string) error {
	var p *servetest.Proc
	var err error
	for range 50 { // the address may take a moment to be free again
		p, err = servetest.Start(ctx, c.cfg.Binary, append([]string{"--addr", addr}, c.args...)...)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(c.cfg.Log, "replica %d: %v\n", i, err)
		return fmt.Errorf("chaos restarts: replica %d: %w", i, err)
	}
	c.mu.Lock()
	c.procs[i], c.addrs[i] = p, p.Addr
	c.mu.Unlock()
	return nil
}

// killer kills a replica about every KillEvery, Kills times or until ctx
// ends, and starts it again after Down. It returns the first failure to restart.
func (c *cluster) killer(ctx context.Context, seed int64) error {
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0x6b696c6c))
	for range c.cfg.Kills {
		// Exponential gaps, at least a tenth of the mean.
		gap := time.Duration(float64(c.cfg.KillEvery) * max(0.1, -math.Log(1-rng.Float64())))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(gap):
		}
		i := rng.IntN(len(c.procs))
		c.mu.Lock()
		p, addr := c.procs[i], c.addrs[i]
		c.procs[i] = nil
		c.mu.Unlock()
		if err := p.Kill(); err != nil {
			return fmt.Errorf("chaos restarts: kill replica %d: %w", i, err)
		}
		c.restarts.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(c.cfg.Down):
		}
		// Started even when ctx ended, so that the run's read-back finds
		// every replica up.
		if err := c.start(context.WithoutCancel(ctx), i, addr); err != nil {
			return err
		}
	}
	return nil
}

// RoundTrip sends the request to the next replica that is up (all of
// them being down, to the next one: the request fails and the client
// retries it).
func (c *cluster) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	n := len(c.addrs)
	start := int(c.next.Add(1) % uint64(n))
	addr := c.addrs[start]
	for k := range n {
		if j := (start + k) % n; c.procs[j] != nil {
			addr = c.addrs[j]
			break
		}
	}
	c.mu.Unlock()
	r2 := r.Clone(r.Context())
	r2.URL.Host = addr
	r2.Host = addr
	return http.DefaultTransport.RoundTrip(r2)
}

// stop kills every replica and drops the PostgreSQL schema.
func (c *cluster) stop() {
	c.mu.Lock()
	procs := append([]*servetest.Proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			_ = p.Stop(10 * time.Second)
		}
	}
	c.dropDB()
}
