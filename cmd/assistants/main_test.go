package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs the main job against the in-process server and checks that it
// shows the tool call on a line of its own, the streamed answer, the
// completed run and a summary whose columns line up.
func TestDemo(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "")
	var out bytes.Buffer
	require.NoError(t, demo(context.Background(), []string{"--step-delay", "0"}, &out))
	s := out.String()
	for _, want := range []string{
		"target: embedded server",
		"\ntool call: get_weather({\"city\":\"Paris\"})",
		"\nassistant (streaming): get_weather returned:",
		"completed",
		"summary: 2 messages",
	} {
		require.Contains(t, s, want)
	}
	lines := strings.Split(s, "\n")
	for _, l := range lines {
		assert.False(t, strings.HasPrefix(l, "assistant (streaming): tool call"), "tool call printed after the answer's prefix: %q", l)
	}
	// The summary: "  <role>: <text>", the texts in one column.
	i := slicesIndexPrefix(lines, "summary:")
	require.GreaterOrEqual(t, i, 0)
	rows := lines[i+1 : i+3]
	col := -1
	for _, r := range rows {
		m := regexp.MustCompile(`^  (user|assistant): +`).FindString(r)
		require.NotEmpty(t, m, "summary row %q", r)
		if col == -1 {
			col = len(m)
		}
		assert.Equal(t, col, len(m), "summary columns do not line up:\n%s", strings.Join(rows, "\n"))
	}
}

func slicesIndexPrefix(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

// TestServe starts the server on a free port, reads the readiness line, makes
// one request and shuts it down by cancelling the context (as SIGINT does).
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--memory", "--addr", "127.0.0.1:0", "--step-delay", "0", "--log-level", "error"}, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: in memory (lost when the process ends)\n", line)
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "listening on http://127.0.0.1:"), line)
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	require.True(t, strings.HasSuffix(base, "/v1"))

	resp, err := http.Get(base + "/assistants")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	go io.Copy(io.Discard, pr)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}

// buildCommand builds the assistants binary into a temporary folder.
func buildCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "assistants")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// TestCommandLine runs the built command: help and usage mistakes (exit
// statuses and messages), then the signal handling of serve.
func TestCommandLine(t *testing.T) {
	bin := buildCommand(t)

	t.Run("usage", func(t *testing.T) {
		tests := []struct {
			args   []string
			status int
			stdout string // wanted in stdout
			stderr string // wanted in stderr
		}{
			{args: []string{"serve", "--help"}, status: 0, stdout: "usage: assistants serve"},
			{args: []string{"serve", "-h"}, status: 0, stdout: "-shutdown-grace"},
			{args: []string{"demo", "--help"}, status: 0, stdout: "usage: assistants demo"},
			{args: []string{"chaos", "--help"}, status: 0, stdout: "usage: assistants chaos"},
			{args: []string{"--help"}, status: 0, stdout: "assistants serve [flags]"},
			{args: []string{"help"}, status: 0, stdout: "assistants serve [flags]"},
			{args: []string{"help", "serve"}, status: 0, stdout: "-step-delay"},
			{args: nil, status: 2, stderr: "no command given"},
			{args: []string{"bogus"}, status: 2, stderr: `unknown command "bogus"`},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "extra", "--step-delay", "1s"}, status: 2, stderr: `serve: unexpected argument "extra"`},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "extra"}, status: 2, stderr: `unexpected argument "extra"`},
			{args: []string{"demo", "now"}, status: 2, stderr: `demo: unexpected argument "now"`},
			{args: []string{"chaos", "x"}, status: 2, stderr: `chaos: unexpected argument "x"`},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "--nope"}, status: 2, stderr: "flag provided but not defined: -nope"},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "--step-delay", "-1s"}, status: 2, stderr: "-step-delay -1s: a duration cannot be negative"},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "--shutdown-grace", "-5s"}, status: 2, stderr: "-shutdown-grace -5s: a duration cannot be negative"},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "--backend-timeout", "-1m"}, status: 2, stderr: "-backend-timeout -1m0s: a duration cannot be negative"},
			{args: []string{"demo", "--step-delay", "-1ms"}, status: 2, stderr: "-step-delay -1ms: a duration cannot be negative"},
			{args: []string{"serve", "--addr", "127.0.0.1:0", "--log-level", "loud"}, status: 2, stderr: "--log-level"},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				cmd := exec.Command(bin, tt.args...)
				cmd.Env = append(os.Environ(), "OPENAI_BASE_URL=http://127.0.0.1:1/v1") // a demo that ran would fail fast
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				done := make(chan error, 1)
				require.NoError(t, cmd.Start())
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(15 * time.Second):
					_ = cmd.Process.Kill()
					<-done
					t.Fatalf("still running after 15s; stdout:\n%s", stdout.String())
				}
				status := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					status = ee.ExitCode()
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tt.status, status, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
				assert.Contains(t, stdout.String(), tt.stdout)
				assert.Contains(t, stderr.String(), tt.stderr)
				if tt.status != 0 {
					assert.NotContains(t, stdout.String(), "listening on", "a mistaken command line must not start the server")
				}
			})
		}
	})

	if runtime.GOOS == "windows" {
		t.Log("the signal tests need Unix signals; not run on Windows")
		return
	}

	t.Run("second signal exits at once", func(t *testing.T) {
		p := startServe(t, bin, "--step-delay", "1h") // runs stay queued: their streams stay open
		body, ev := p.openStream(t)
		defer body.Close()
		require.Equal(t, "thread.created", ev)

		require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
		p.waitLine(t, "shutting down")
		// The stream is still open (the default grace is 10s); a second
		// interrupt must not wait for it.
		require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
		status := p.wait(t, 5*time.Second)
		assert.Equal(t, 128+int(syscall.SIGINT), status, "stderr:\n%s", p.stderr.String())
		assert.Contains(t, p.stderr.String(), "exiting at once")
	})

	t.Run("shutdown ends late streams with an error event", func(t *testing.T) {
		p := startServe(t, bin, "--step-delay", "1h", "--shutdown-grace", "300ms")
		body, ev := p.openStream(t)
		defer body.Close()
		require.Equal(t, "thread.created", ev)

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		var names []string
		var last string
		sc := bufio.NewScanner(body)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
				names = append(names, name)
			case strings.HasPrefix(line, "data: "):
				last = strings.TrimPrefix(line, "data: ")
			}
		}
		require.NoError(t, sc.Err(), "the stream must end cleanly, after its error event")
		require.NotEmpty(t, names)
		assert.Equal(t, "error", names[len(names)-1], "events: %v", names)
		var e struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		require.NoError(t, json.Unmarshal([]byte(last), &e), last)
		assert.Equal(t, "server_error", e.Type)
		assert.Contains(t, e.Message, "shutting down")

		p.waitLine(t, "server stopped")
		status := p.wait(t, 10*time.Second)
		assert.Equal(t, 0, status, "stderr:\n%s", p.stderr.String())
	})
}

// served is a running `assistants serve` child process.
type served struct {
	cmd    *exec.Cmd
	base   string
	lines  chan string // its stdout, line by line
	stderr *lockedBuffer
	done   chan error
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe starts `bin serve` on a free port and waits for its
// readiness line.
func startServe(t *testing.T, bin string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--memory", "--addr", "127.0.0.1:0", "--log-level", "error"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &served{cmd: cmd, lines: make(chan string, 100), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		for range p.lines {
		}
	})
	line := p.waitLine(t, "listening on ")
	p.base = strings.TrimPrefix(line, "listening on ")
	return p
}

// waitLine waits (bounded) for a stdout line starting with prefix.
func (p *served) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("no line %q before the end of the output; stderr:\n%s", prefix, p.stderr.String())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line %q within 20s", prefix)
		}
	}
}

// wait waits up to d for the process to exit and returns its exit status.
func (p *served) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	// The stdout reader calls Wait once stdout closes; drain the lines so
	// that it can.
	timeout := time.After(d)
	lines := p.lines
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
			continue
		case err := <-p.done:
			p.done <- err // for a second wait
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			require.NoError(t, err)
			return 0
		case <-timeout:
			t.Fatalf("the process did not exit within %s; stderr:\n%s", d, p.stderr.String())
		}
	}
}

// openStream creates an assistant and starts a streamed createThreadAndRun;
// it returns the stream and the name of its first event.
func (p *served) openStream(t *testing.T) (io.ReadCloser, string) {
	t.Helper()
	resp, err := http.Post(p.base+"/assistants", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
	require.NoError(t, err)
	var asst struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&asst))
	resp.Body.Close()
	resp, err = http.Post(p.base+"/threads/runs", "application/json",
		strings.NewReader(`{"assistant_id":"`+asst.ID+`","stream":true,"thread":{"messages":[{"role":"user","content":"hi"}]}}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	return readCloser{Reader: br, Closer: resp.Body}, strings.TrimSpace(strings.TrimPrefix(line, "event: "))
}

type readCloser struct {
	io.Reader
	io.Closer
}
