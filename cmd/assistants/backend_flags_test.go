package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
)

func TestBackendFlags(t *testing.T) {
	env := map[string]string{"MY_KEY": "sk-secret-777", "EMPTY": ""}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		args    []string
		backend bool
		err     string
	}{
		{name: "default is the scripted model", args: nil},
		{name: "backend with key and map", args: []string{"--backend-url", "http://h/v1", "--backend-key-env", "MY_KEY", "--model-map", "gpt-4o=llama3.1, a=b"}, backend: true},
		{name: "empty key variable", args: []string{"--backend-url", "http://h/v1", "--backend-key-env", "EMPTY"}, err: "--backend-key-env EMPTY: the variable is empty"},
		{name: "bad map", args: []string{"--backend-url", "http://h/v1", "--model-map", "gpt-4o"}, err: `"gpt-4o" is not name=backend-name`},
		{name: "bad url", args: []string{"--backend-url", "localhost:1234"}, err: "want an http:// or https:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			bf := addBackendFlags(fs, getenv)
			require.NoError(t, fs.Parse(tt.args))
			m, err := bf.model(getenv, nil)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				assert.NotContains(t, err.Error(), "sk-secret-777")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.backend, m != nil)
		})
	}
	mm, err := parseModelMap("gpt-4o=llama3.1, a=b")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"gpt-4o": "llama3.1", "a": "b"}, mm)
}

// TestDemoWithBackend runs the demo with a fake Chat Completions backend
// configured through the environment, as `make demo` would.
func TestDemoWithBackend(t *testing.T) {
	var calls atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer sk-demo-backend" {
			http.Error(w, `{"error":{"message":"no key"}}`, http.StatusUnauthorized)
			return
		}
		var body struct {
			Model    string           `json:"model"`
			Messages []map[string]any `json:"messages"`
			Tools    []any            `json:"tools"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "text/event-stream")
		last := body.Messages[len(body.Messages)-1]
		fileSearch := strings.Contains(fmt.Sprint(body.Tools), "file_search") // the demo's file search part
		switch {
		case fileSearch && last["role"] != "tool":
			fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_demo2","type":"function","function":{"name":"file_search","arguments":"{\"query\":\"refunds\"}"}}]}}]}`+"\n\n")
		case fileSearch:
			fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"Within 14 days 【0:0†refunds.md】."}}]}`+"\n\n")
		case len(body.Tools) > 0 && last["role"] != "tool":
			fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_demo1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}]}`+"\n\n")
		default:
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"backend %s says sunny\"}}]}\n\n", body.Model)
		}
		fmt.Fprint(w, `data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`+"\n\ndata: [DONE]\n\n")
	}))
	defer fake.Close()
	t.Setenv("OPENAI_BASE_URL", "")
	t.Setenv(envBackendURL, fake.URL)
	t.Setenv(envBackendKeyEnv, "DEMO_BACKEND_KEY")
	t.Setenv("DEMO_BACKEND_KEY", "sk-demo-backend")
	t.Setenv(envModelMap, "")
	var out bytes.Buffer
	err := demo(context.Background(), []string{"--step-delay", "0"}, &out)
	require.NoError(t, err, out.String())
	s := out.String()
	assert.Contains(t, s, "model: Chat Completions backend at "+fake.URL)
	assert.Contains(t, s, `tool call: get_weather({"city":"Paris"})`)
	assert.Contains(t, s, "says sunny")
	assert.Contains(t, s, "assistant: Within 14 days 【0:0†refunds.md】.")
	assert.Contains(t, s, "citation 【0:0†refunds.md】 at [15,31) -> refunds.md")
	assert.NotContains(t, s, "sk-demo-backend")
	assert.Positive(t, calls.Load())
	assert.False(t, strings.Contains(s, "failed"), s)
}

// fakeEmbeddingsEndpoint answers POST /v1/embeddings with a vector of dim
// numbers per input (1 at the input's length mod dim) and records the
// Authorization headers and inputs it got.
type fakeEmbeddingsEndpoint struct {
	*httptest.Server
	auth   chan string
	inputs chan []string
}

func newFakeEmbeddingsEndpoint(t *testing.T, dim int) *fakeEmbeddingsEndpoint {
	f := &fakeEmbeddingsEndpoint{auth: make(chan string, 100), inputs: make(chan []string, 100)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body struct {
			Input []string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.auth <- r.Header.Get("Authorization")
		f.inputs <- body.Input
		var b strings.Builder
		b.WriteString(`{"object":"list","data":[`)
		for i, in := range body.Input {
			v := make([]string, dim)
			for j := range v {
				v[j] = "0"
			}
			v[len(in)%dim] = "1"
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"index":%d,"embedding":[%s]}`, i, strings.Join(v, ","))
		}
		b.WriteString("]}")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, b.String())
	}))
	t.Cleanup(f.Close)
	return f
}

// recv returns the next value of ch, or fails the test after 10 seconds.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("the embeddings endpoint got no request")
		panic("unreachable")
	}
}

// The embedding flags: the URL defaults to --backend-url, the key comes
// only from the environment (--embedding-key-env, or --backend-key-env
// when the embeddings go to the backend's own URL, never to another
// host), and bad combinations are refused without showing a key.
func TestEmbeddingFlags(t *testing.T) {
	fake := newFakeEmbeddingsEndpoint(t, 8)
	env := map[string]string{"CHAT_KEY": "sk-chat-secret-1", "EMB_KEY": "sk-emb-secret-2", "EMPTY": ""}
	getenv := func(k string) string { return env[k] }
	u := fake.URL + "/v1"
	tests := []struct {
		name string
		args []string
		auth string // the Authorization header the endpoint gets; "-" for no embedder
		err  string
	}{
		{name: "default: the built-in embedder", args: nil, auth: "-"},
		{name: "backend only: still the built-in embedder", args: []string{"--backend-url", u, "--backend-key-env", "CHAT_KEY"}, auth: "-"},
		{name: "model on the backend URL with its key", args: []string{"--backend-url", u, "--backend-key-env", "CHAT_KEY", "--embedding-model", "m"}, auth: "Bearer sk-chat-secret-1"},
		{name: "own URL and key", args: []string{"--embedding-url", u, "--embedding-model", "m", "--embedding-key-env", "EMB_KEY"}, auth: "Bearer sk-emb-secret-2"},
		{name: "own key over the backend's", args: []string{"--backend-url", u, "--backend-key-env", "CHAT_KEY", "--embedding-model", "m", "--embedding-key-env", "EMB_KEY"}, auth: "Bearer sk-emb-secret-2"},
		{name: "another host never gets the backend key", args: []string{"--backend-url", "http://chat.invalid/v1", "--backend-key-env", "CHAT_KEY", "--embedding-url", u, "--embedding-model", "m"}, auth: ""},
		{name: "model without URL", args: []string{"--embedding-model", "m"}, err: "set --embedding-url (or --backend-url) too"},
		{name: "URL without model", args: []string{"--embedding-url", u}, err: "set --embedding-model too"},
		{name: "key without model", args: []string{"--embedding-key-env", "EMB_KEY"}, err: "set --embedding-model too"},
		{name: "bad URL", args: []string{"--embedding-url", "localhost:1", "--embedding-model", "m"}, err: "want an http:// or https:// URL"},
		{name: "empty key variable", args: []string{"--embedding-url", u, "--embedding-model", "m", "--embedding-key-env", "EMPTY"}, err: "--embedding-key-env EMPTY: the variable is empty"},
		{name: "negative dimensions", args: []string{"--embedding-url", u, "--embedding-model", "m", "--embedding-dimensions", "-1"}, err: "cannot be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			bf := addBackendFlags(fs, getenv)
			require.NoError(t, fs.Parse(tt.args))
			e, err := bf.embedder(getenv)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				assert.NotContains(t, err.Error(), "sk-")
				return
			}
			require.NoError(t, err)
			if tt.auth == "-" {
				assert.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			assert.Equal(t, "m", e.Model())
			vecs, err := e.Embed(t.Context(), []string{"hello"})
			require.NoError(t, err)
			require.Len(t, vecs, 1)
			assert.Len(t, vecs[0], 8)
			assert.Equal(t, tt.auth, recv(t, fake.auth))
			recv(t, fake.inputs)
		})
	}
}

// serve's flags put the embeddings endpoint behind the server: ingesting a
// file and searching a vector store embed there, with the key from the
// environment.
func TestServeEmbeddingFlags(t *testing.T) {
	fake := newFakeEmbeddingsEndpoint(t, 8)
	t.Setenv("TEST_EMB_KEY", "sk-emb-serve-3")
	_, opts, err := serveFlags([]string{"--step-delay", "0", "--log-level", "error",
		"--embedding-url", fake.URL + "/v1", "--embedding-model", "fake-embed", "--embedding-key-env", "TEST_EMB_KEY"}, io.Discard)
	require.NoError(t, err)
	srv := assistantstest.NewServer(t, opts...)
	ctx := t.Context()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("purpose", "assistants"))
	fw, err := mw.CreateFormFile("file", "penguins.txt")
	require.NoError(t, err)
	_, _ = io.WriteString(fw, "Emperor penguins eat krill.")
	require.NoError(t, mw.Close())
	f, err := srv.Client.CreateFileWithBodyWithResponse(ctx, mw.FormDataContentType(), &body)
	require.NoError(t, err)
	require.NotNil(t, f.JSON200, "body: %s", f.Body)
	vs, err := srv.Client.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{f.JSON200.Id}})
	require.NoError(t, err)
	require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
	assert.Equal(t, []string{"Emperor penguins eat krill."}, recv(t, fake.inputs), "the chunk was embedded by the endpoint")
	assert.Equal(t, "Bearer sk-emb-serve-3", recv(t, fake.auth))
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := srv.Client.GetVectorStoreWithResponse(ctx, vs.JSON200.Id)
		require.NoError(t, err)
		require.NotNil(t, g.JSON200)
		if g.JSON200.FileCounts.InProgress == 0 {
			assert.Equal(t, 1, g.JSON200.FileCounts.Completed)
			break
		}
		require.True(t, time.Now().Before(deadline))
		time.Sleep(5 * time.Millisecond)
	}
	r, err := srv.Client.SearchVectorStoreWithBodyWithResponse(ctx, vs.JSON200.Id, "application/json", strings.NewReader(`{"query":"krill"}`))
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	require.Len(t, r.JSON200.Data, 1)
	assert.Equal(t, []string{"krill"}, recv(t, fake.inputs), "the query was embedded by the endpoint")
}
