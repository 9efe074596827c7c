package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemo runs the main job against the in-process server and checks that it
// shows the tool call, the completed run and the summary.
func TestDemo(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "")
	var out bytes.Buffer
	require.NoError(t, demo(context.Background(), []string{"--step-delay", "0"}, &out))
	s := out.String()
	for _, want := range []string{
		"target: embedded server",
		`tool call: get_weather({"city":"Paris"})`,
		"completed",
		"summary: 2 messages",
		"get_weather returned:",
	} {
		require.Contains(t, s, want)
	}
}

// TestServe starts the server on a free port, reads the readiness line, makes
// one request and shuts it down by cancelling the context (as SIGINT does).
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--addr", "127.0.0.1:0", "--step-delay", "0", "--log-level", "error"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
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
