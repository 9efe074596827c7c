// Package servetest runs `assistants serve` as child processes, for the
// tests and the chaos harness that kill a server (SIGKILL) and start it
// again on the same data: Build compiles the command, Start runs it and
// waits for its readiness line, Proc.Kill kills it, Proc.RSS reads its
// resident memory.
package servetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Package is the import path of the command Build compiles.
const Package = "github.com/assistants-go/assistants/cmd/assistants"

// Build compiles the assistants command into dir and returns the binary's
// path. It runs `go build` (so it needs the Go toolchain and the module's
// sources, as tests have).
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "assistants")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, Package)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", Package, err, out)
	}
	return bin, nil
}

// ReadyTimeout bounds how long Start waits for the readiness line.
const ReadyTimeout = 60 * time.Second

// Proc is a running `assistants serve`.
type Proc struct {
	// URL is the API's base URL, "http://HOST:PORT/v1".
	URL string
	// Addr is HOST:PORT, to start a successor on the same address.
	Addr string
	// Lines are the lines serve printed before its readiness line
	// ("data: DIR", ...).
	Lines []string

	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed once the process was waited for
	err    error         // Wait's error, set before done closes
}

// Start runs `bin serve args...` and waits (up to ReadyTimeout, or until
// ctx ends) for its "listening on" line. The caller ends it with Kill or
// Stop. Pass --addr 127.0.0.1:0 for a free port, or a previous Proc's Addr
// to take its place.
func Start(ctx context.Context, bin string, args ...string) (*Proc, error) {
	return StartEnv(ctx, bin, nil, args...)
}

// StartEnv is Start with env ("NAME=value") added to this process's
// environment for the child only.
func StartEnv(ctx context.Context, bin string, env []string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			l := sc.Text()
			if !sent {
				if strings.HasPrefix(l, "listening on ") {
					ready <- strings.TrimPrefix(l, "listening on ")
					sent = true
					continue
				}
				p.Lines = append(p.Lines, l) // read by Start only after ready or done
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case u := <-ready:
		p.URL = u
		p.Addr = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/v1")
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("serve %s exited before listening (%v); output: %q; stderr:\n%s", strings.Join(args, " "), p.err, p.Lines, p.Stderr())
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = p.Kill()
	return nil, fmt.Errorf("serve %s: not listening within %s; stderr:\n%s", strings.Join(args, " "), ReadyTimeout, p.Stderr())
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Kill kills the process with SIGKILL (no shutdown of any kind) and waits
// for it. Killing an ended process does nothing.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// Stop asks the process to shut down (SIGTERM), waits up to d, then kills
// it. It returns the exit error when it did not exit cleanly in time.
func (p *Proc) Stop(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		_ = p.Kill()
		return fmt.Errorf("serve did not stop within %s after SIGTERM", d)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stderr returns what the process wrote on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// RSS returns the process's resident set size in bytes, read from
// /proc/PID/status (VmRSS); Linux only.
func (p *Proc) RSS() (int64, error) { return RSS(p.PID()) }

// RSS returns the resident set size of process pid in bytes (Linux).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("resident memory: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("resident memory: %q: %w", l, err)
				}
				return n << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("resident memory: no VmRSS line in /proc/%d/status", pid)
}

// syncBuffer is a bytes.Buffer safe for concurrent use, bounded to its last
// 1 MiB.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		s.b.Next(s.b.Len() - 1<<19)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
