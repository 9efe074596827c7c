package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
