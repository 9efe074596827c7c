package server_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// tcpProxy forwards connections to target until Cut, which closes every
// connection and refuses new ones until Restore: PostgreSQL "goes away"
// for the server only, while the shared database keeps serving the other
// tests.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// setCut cuts (closing every open connection) or restores the link.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// TestReadyzFollowsPostgres: /readyz is ready with PostgreSQL reachable,
// unready (the store check failing) while the link to it is cut, and
// ready again once it is back, with no restart. The link runs through a
// TCP proxy in the test: the shared PostgreSQL itself is never stopped.
func TestReadyzFollowsPostgres(t *testing.T) {
	u, err := url.Parse(pgtest.Schema(t))
	require.NoError(t, err)
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr()

	quiet := slog.New(slog.DiscardHandler)
	ctx := t.Context()
	st, err := postgres.Open(ctx, u.String(), func(o *postgres.Options) { o.Logger = quiet })
	require.NoError(t, err)
	defer st.Close()
	srv := server.New(server.WithStore(st), server.WithStepDelay(0))
	defer srv.Close()
	h := srv.Handler()

	// state waits (bounded) until /readyz answers want and returns its
	// reply. The wait is for connections to fail or come back, which no
	// injected clock can stand for.
	state := func(want int) probeReply {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, p, _ := probe(t, h, "GET", "/readyz")
			if code == want {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz stayed %d (%+v), want %d", code, p, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	checks := func(p probeReply) map[string]string {
		m := map[string]string{}
		for _, c := range p.Checks {
			m[c.Name] = c.Status
		}
		return m
	}

	p := state(http.StatusOK)
	require.Equal(t, map[string]string{"server": "ok", "store": "ok", "migrations": "ok", "queue": "ok"}, checks(p))

	proxy.setCut(true)
	p = state(http.StatusServiceUnavailable)
	require.Equal(t, "unready", p.Status)
	require.Equal(t, "error", checks(p)["store"], "%+v", p)
	for _, c := range p.Checks {
		require.NotContains(t, c.Error, u.Host, "no address in the unauthenticated answer")
	}

	proxy.setCut(false)
	p = state(http.StatusOK)
	require.Equal(t, "ready", p.Status)

	// And the API works again.
	c := &isoEnv{h: h}
	code, body := c.do(t, "", "GET", "/v1/assistants", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
}
