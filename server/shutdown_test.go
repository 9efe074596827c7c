package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// sseReader reads server-sent events one at a time from a live stream.
type sseReader struct{ sc *bufio.Scanner }

// next returns the next event, or ok false at the end of the stream.
func (r sseReader) next() (name string, data []byte, ok bool) {
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "" && name != "":
			return name, data, true
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
	return "", nil, false
}

// post sends a JSON POST to the test server.
func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	return resp
}

// openStream creates an assistant and starts createThreadAndRun with
// stream: true; it returns the stream once its first event (thread.created)
// arrived, so the stream is open on the server.
func openStream(t *testing.T, base string) (*http.Response, sseReader) {
	t.Helper()
	resp := post(t, base+"/v1/assistants", `{"model":"gpt-4o"}`)
	var asst gen.AssistantObject
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&asst))
	resp.Body.Close()
	resp = post(t, base+"/v1/threads/runs", `{"assistant_id":"`+asst.Id+`","stream":true,"thread":{"messages":[{"role":"user","content":"hello"}]}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	r := sseReader{sc: sc}
	name, _, ok := r.next()
	require.True(t, ok)
	require.Equal(t, "thread.created", name)
	return resp, r
}

// waitDraining waits (bounded) until the server refuses new runs, which
// Shutdown does first.
func waitDraining(t *testing.T, base string) {
	t.Helper()
	resp := post(t, base+"/v1/assistants", `{"model":"gpt-4o"}`)
	var asst gen.AssistantObject
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&asst))
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := post(t, base+"/v1/threads/runs", `{"assistant_id":"`+asst.Id+`"}`)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, time.Now().Before(deadline), "the server still takes new runs after Shutdown")
		time.Sleep(time.Millisecond)
	}
}

// blockingModel answers only once release is closed (or its run stops).
func blockingModel(release <-chan struct{}) server.Model {
	return server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
		select {
		case <-release:
			emit("done")
			return &server.ModelOutput{Text: "done"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// TestShutdownEndsLateStreamsWithErrorEvent: a stream still open when the
// grace period ends gets a final error event in the API's shape (its data
// an error object), no done event, and then the end of the connection.
func TestShutdownEndsLateStreamsWithErrorEvent(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := server.New(server.WithStepDelay(0), server.WithModel(blockingModel(release)))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	resp, stream := openStream(t, hs.URL)
	defer resp.Body.Close()

	grace, endGrace := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(grace) }()
	waitDraining(t, hs.URL)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned before its grace period ended, with a stream open: %v", err)
	default:
	}
	endGrace()

	var names []string
	var last []byte
	for {
		name, data, ok := stream.next()
		if !ok {
			break
		}
		names = append(names, name)
		last = data
	}
	require.NotEmpty(t, names)
	assert.Equal(t, "error", names[len(names)-1], "events: %v", names)
	assert.NotContains(t, names, "done")
	var e gen.Error
	require.NoError(t, json.Unmarshal(last, &e), "%s", last)
	assert.Equal(t, "server_error", e.Type)
	assert.Contains(t, e.Message, "shutting down")

	select {
	case err := <-shut:
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.Canceled), "%v", err)
		assert.Contains(t, err.Error(), "ended 1 open event streams")
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after its grace period")
	}
}

// TestShutdownWaitsForOpenStreams: Shutdown returns nil only once the open
// stream has ended on its own, with its done event.
func TestShutdownWaitsForOpenStreams(t *testing.T) {
	release := make(chan struct{})
	srv := server.New(server.WithStepDelay(0), server.WithModel(blockingModel(release)))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	resp, stream := openStream(t, hs.URL)
	defer resp.Body.Close()

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	waitDraining(t, hs.URL)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a stream still open: %v", err)
	default:
	}
	close(release)

	var names []string
	for {
		name, _, ok := stream.next()
		if !ok {
			break
		}
		names = append(names, name)
	}
	require.NotEmpty(t, names)
	assert.Equal(t, "done", names[len(names)-1], "events: %v", names)
	assert.Contains(t, names, "thread.run.completed")
	assert.NotContains(t, names, "error")

	select {
	case err := <-shut:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return once the last stream ended")
	}
}

// TestShutdownWithoutStreams returns at once.
func TestShutdownWithoutStreams(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
}

// TestStreamOpenedAfterShutdownEndsAtOnce: once Shutdown was called, a new
// stream (here: tool outputs submitted with stream: true) is taken but
// ends at once with the error event.
func TestStreamOpenedAfterShutdownEndsAtOnce(t *testing.T) {
	srv := server.New(server.WithStepDelay(0))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()

	resp := post(t, hs.URL+"/v1/assistants", `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather"}}]}`)
	var asst gen.AssistantObject
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&asst))
	resp.Body.Close()
	resp = post(t, hs.URL+"/v1/threads/runs", `{"assistant_id":"`+asst.Id+`","stream":true,"thread":{"messages":[{"role":"user","content":"call get_weather"}]}}`)
	var run gen.RunObject
	stream := sseReader{sc: bufio.NewScanner(resp.Body)}
	for {
		name, data, ok := stream.next()
		require.True(t, ok, "the stream ended before requires_action")
		if name == "thread.run.requires_action" {
			require.NoError(t, json.Unmarshal(data, &run))
			break
		}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.NotNil(t, run.RequiredAction)
	call := run.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx)) // no stream open: returns at once

	resp = post(t, hs.URL+"/v1/threads/"+run.ThreadId+"/runs/"+run.Id+"/submit_tool_outputs",
		`{"stream":true,"tool_outputs":[{"tool_call_id":"`+call+`","output":"sunny"}]}`)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	stream = sseReader{sc: bufio.NewScanner(resp.Body)}
	var names []string
	for {
		name, _, ok := stream.next()
		if !ok {
			break
		}
		names = append(names, name)
	}
	assert.Equal(t, []string{"error"}, names)
}
