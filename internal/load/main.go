// Command load is the server's load test (make load): it starts `assistants
// serve` as child processes on loopback, one on SQLite and then two
// replicas on one PostgreSQL database, and runs -clients concurrent
// clients that each hold full conversations for -duration against them
// (a client talks to one replica, the clients spread over the replicas).
// A conversation is: createThread with a user message, createRun, getRun
// polled until completed, listMessages, then a second turn (createMessage,
// createRun, getRun..., listMessages). Every request carries an API key
// made with `assistants keys create`, so auth, the request log and the
// limits run as in production.
//
// It prints, per store, conversations per second, p50 and p99 latency per
// route, the errors (any answer but 2xx; 429s are counted apart and
// retried after Retry-After) and each server's resident memory at the
// end, as a Markdown table for docs/benchmarks.md.
//
//	go run ./internal/load [-clients 64] [-duration 60s] [-stores sqlite,postgres]
//
// PostgreSQL is read from ASSISTANTS_TEST_DATABASE_URL (default the local
// test database); the run makes a schema of its own and drops it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/internal/pgtest/pgschema"
	"github.com/assistants-go/assistants/internal/servetest"
)

func main() {
	clients := flag.Int("clients", 64, "concurrent clients, each holding one conversation at a time")
	duration := flag.Duration("duration", 60*time.Second, "how long the clients run, per store")
	stores := flag.String("stores", "sqlite,postgres", "the stores to load, in order: sqlite (one server), postgres (two replicas)")
	stepDelay := flag.Duration("step-delay", 0, "serve's --step-delay (0: runs move as fast as the server can)")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := run(ctx, *clients, *duration, strings.Split(*stores, ","), *stepDelay, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, clients int, d time.Duration, stores []string, stepDelay time.Duration, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "assistants-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := servetest.Build(ctx, tmp)
	if err != nil {
		return err
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	env := []string{"ASSISTANTS_KEY_SECRET=" + hex.EncodeToString(secret[:])} // the children's, not this process's
	commit := "unknown"
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(out, "load: %d clients, %s per store, serve --step-delay %s, commit %s, %s\n\n", clients, d, stepDelay, commit, loadAvg())
	for _, st := range stores {
		var storeArgs []string
		replicas := 1
		var drop func()
		switch st {
		case "sqlite":
			storeArgs = []string{"--data", tmp + "/data"}
		case "postgres":
			u, dr, err := pgschema.Fresh(ctx, pgtest.BaseURL(), "load_")
			if err != nil {
				return fmt.Errorf("%w (set %s, or start the local one: %s)", err, pgtest.EnvURL, pgtest.StartHint)
			}
			storeArgs, replicas, drop = []string{"--database-url", u}, 2, dr
		default:
			return fmt.Errorf("unknown store %q", st)
		}
		rep, err := loadStore(ctx, bin, env, storeArgs, replicas, clients, d, stepDelay)
		if drop != nil {
			drop()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		rep.store = st
		rep.write(out)
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}

// report is one store's figures.
type report struct {
	store         string
	replicas      int
	clients       int
	elapsed       time.Duration
	conversations int64
	errors        map[string]int64 // "route status" -> count
	throttled     int64            // 429s
	lat           map[string][]time.Duration
	rss           []int64
}

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "### %s, %d replica(s), %d clients, %s\n\n", r.store, r.replicas, r.clients, r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "- conversations: %d, %.1f per second\n", r.conversations, float64(r.conversations)/r.elapsed.Seconds())
	var errs int64
	var names []string
	for k, v := range r.errors {
		errs += v
		names = append(names, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(names)
	fmt.Fprintf(w, "- errors (not 2xx, not 429): %d %s\n", errs, strings.Join(names, ", "))
	fmt.Fprintf(w, "- 429 answers (retried): %d\n", r.throttled)
	var rss []string
	for _, b := range r.rss {
		rss = append(rss, fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)))
	}
	fmt.Fprintf(w, "- resident memory at the end: %s\n\n", strings.Join(rss, ", "))
	fmt.Fprintln(w, "| route | requests | p50 | p99 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	routes := make([]string, 0, len(r.lat))
	for k := range r.lat {
		routes = append(routes, k)
	}
	slices.Sort(routes)
	for _, k := range routes {
		l := r.lat[k]
		slices.Sort(l)
		fmt.Fprintf(w, "| %s | %d | %s | %s |\n", k, len(l), pct(l, 0.50), pct(l, 0.99))
	}
	fmt.Fprintln(w)
}

func pct(l []time.Duration, p float64) string {
	if len(l) == 0 {
		return "-"
	}
	i := min(len(l)-1, int(float64(len(l))*p))
	d := l[i]
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

// loadStore starts the replicas, makes a key and an assistant, runs the
// clients for d and reads the replicas' memory.
func loadStore(ctx context.Context, bin string, env, storeArgs []string, replicas, clients int, d, stepDelay time.Duration) (*report, error) {
	kc := exec.CommandContext(ctx, bin, append([]string{"keys", "create", "--project", "load"}, storeArgs...)...)
	kc.Env = append(os.Environ(), env...)
	out, err := kc.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("keys create: %w: %s", err, out)
	}
	m := regexp.MustCompile(`(?m)^key: (\S+)$`).FindSubmatch(out)
	if m == nil {
		return nil, errors.New("keys create printed no key")
	}
	key := string(m[1])
	var procs []*servetest.Proc
	defer func() {
		for _, p := range procs {
			_ = p.Stop(10 * time.Second)
		}
	}()
	for range replicas {
		args := append([]string{"--addr", "127.0.0.1:0", "--step-delay", stepDelay.String(), "--log-level", "error"}, storeArgs...)
		p, err := servetest.StartEnv(ctx, bin, env, args...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients}, Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	rep := &report{replicas: replicas, clients: clients, errors: map[string]int64{}, lat: map[string][]time.Duration{}}
	var mu sync.Mutex
	c0 := &client{hc: hc, base: procs[0].URL, key: key, rep: rep, mu: &mu}
	var asst struct{ ID string }
	if err := c0.call(ctx, "createAssistant", "POST", "/assistants", map[string]any{"model": "gpt-4o", "instructions": "Answer briefly."}, &asst); err != nil {
		return nil, fmt.Errorf("create the assistant: %w", err)
	}
	rep.lat = map[string][]time.Duration{} // the setup is not measured
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var conv atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		c := &client{hc: hc, base: procs[i%replicas].URL, key: key, rep: rep, mu: &mu}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; runCtx.Err() == nil; n++ {
				if c.conversation(runCtx, asst.ID, i, n) == nil {
					conv.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	rep.elapsed = time.Since(start)
	rep.conversations = conv.Load()
	for _, p := range procs {
		b, err := p.RSS()
		if err != nil {
			return nil, err
		}
		rep.rss = append(rep.rss, b)
	}
	return rep, nil
}

// client is one simulated user.
type client struct {
	hc   *http.Client
	base string
	key  string
	rep  *report
	mu   *sync.Mutex
}

var errStopped = errors.New("the run's time is up")

// conversation holds one conversation of two turns.
func (c *client) conversation(ctx context.Context, assistantID string, i, n int) error {
	var th struct{ ID string }
	if err := c.call(ctx, "createThread", "POST", "/threads", map[string]any{"messages": []any{
		map[string]any{"role": "user", "content": fmt.Sprintf("Hello from client %d, conversation %d.", i, n)}}}, &th); err != nil {
		return err
	}
	for turn := range 2 {
		if turn > 0 {
			if err := c.call(ctx, "createMessage", "POST", "/threads/"+th.ID+"/messages",
				map[string]any{"role": "user", "content": "And one more thing."}, nil); err != nil {
				return err
			}
		}
		var run struct {
			ID     string
			Status string
		}
		if err := c.call(ctx, "createRun", "POST", "/threads/"+th.ID+"/runs", map[string]any{"assistant_id": assistantID}, &run); err != nil {
			return err
		}
		for run.Status != "completed" {
			switch run.Status {
			case "queued", "in_progress":
			default:
				c.fail("getRun", "run "+run.Status)
				return fmt.Errorf("run %s", run.Status)
			}
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return err
			}
			if err := c.call(ctx, "getRun", "GET", "/threads/"+th.ID+"/runs/"+run.ID, nil, &run); err != nil {
				return err
			}
		}
		if err := c.call(ctx, "listMessages", "GET", "/threads/"+th.ID+"/messages?limit=10", nil, nil); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errStopped
	}
}

func (c *client) fail(route, what string) {
	c.mu.Lock()
	c.rep.errors[route+" "+what]++
	c.mu.Unlock()
}

// call sends one request and decodes the answer into v (when not nil). A
// 429 is counted and retried after Retry-After; any other failure is an
// error of the route. A request cut by the end of the run counts nothing.
func (c *client) call(ctx context.Context, route, method, path string, body, v any) error {
	for {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("OpenAI-Beta", "assistants=v2")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			c.fail(route, "transport: "+firstWords(err.Error()))
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		el := time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return errStopped
			}
			c.fail(route, "read")
			return err
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			c.mu.Lock()
			c.rep.throttled++
			c.mu.Unlock()
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("retry-after-ms")); err == nil {
				wait = time.Duration(s) * time.Millisecond
			}
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
			continue
		}
		c.mu.Lock()
		c.rep.lat[route] = append(c.rep.lat[route], el)
		c.mu.Unlock()
		if resp.StatusCode/100 != 2 {
			c.fail(route, strconv.Itoa(resp.StatusCode))
			return fmt.Errorf("%s: %d %s", route, resp.StatusCode, data)
		}
		if v != nil {
			return json.Unmarshal(data, v)
		}
		return nil
	}
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 6 {
		f = f[len(f)-6:]
	}
	return strings.Join(f, " ")
}
