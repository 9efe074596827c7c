package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// ---- stream shapes ----

// rawSSE streams chunks as `data:` lines and nothing else: no [DONE]. The
// handler returns normally, so the body ends cleanly (a proxy that closed
// the stream).
func rawSSE(chunks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range chunks {
			fmt.Fprintf(w, "data: %s\n\n", c)
			w.(http.Flusher).Flush()
		}
	}
}

// crashSSE streams chunks, then drops the connection without ending the
// chunked body (a worker that crashed): the client reads an unexpected EOF.
func crashSSE(chunks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range chunks {
			fmt.Fprintf(w, "data: %s\n\n", c)
		}
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
}

func contentChunk(s string) string {
	b, _ := json.Marshal(s)
	return `{"choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}`
}

// TestChatBackendCutStream: a stream that ends without finish_reason and
// without [DONE] fails the round; either one alone is a complete reply.
func TestChatBackendCutStream(t *testing.T) {
	halfCall := `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Pa"}}]}}]}`
	tests := []struct {
		name   string
		reply  func(w http.ResponseWriter, r *http.Request)
		failed bool
		text   string
	}{
		{name: "text cut cleanly", reply: rawSSE(contentChunk("Half an ")), failed: true},
		{name: "tool call cut cleanly", reply: rawSSE(halfCall), failed: true},
		{name: "text cut by a crash", reply: crashSSE(contentChunk("Half an ")), failed: true},
		{name: "tool call cut by a crash", reply: crashSSE(halfCall), failed: true},
		{name: "empty 200 body", reply: rawSSE(), failed: true},
		{name: "finish_reason without [DONE] is complete", reply: rawSSE(contentChunk("All."), `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`), text: "All."},
		{name: "[DONE] without finish_reason is complete", reply: sseReply(contentChunk("All.")), text: "All."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeChat(t, tt.reply)
			out, err := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()}).
				Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			if !tt.failed {
				require.NoError(t, err)
				assert.Equal(t, tt.text, out.Text)
				return
			}
			var me *server.ModelError
			require.ErrorAs(t, err, &me, "got output %+v", out)
			assert.Equal(t, server.ModelErrServer, me.Code)
			assert.Contains(t, me.Message, "backend stream ended early")
		})
	}
}

// TestChatBackendCutStreamFailsRun: through the server, a cut stream fails
// the run (never completed with half a message, never requires_action with
// half the arguments).
func TestChatBackendCutStreamFailsRun(t *testing.T) {
	tests := []struct {
		name  string
		reply func(w http.ResponseWriter, r *http.Request)
		tools bool
	}{
		{name: "half a message", reply: rawSSE(contentChunk("The weather in Paris is "))},
		{name: "half the arguments", reply: crashSSE(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Pa"}}]}}]}`), tools: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeChat(t, tt.reply)
			x := newRT(t, cbServer(t, fake))
			req := gen.CreateAssistantRequest{Model: "gpt-4o"}
			if tt.tools {
				req.Tools = &[]gen.AssistantTool{fnTool("get_weather")}
			}
			a := x.assistant(req)
			th := x.thread("weather in Paris?")
			run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
			var rerr *poller.RunError
			require.ErrorAs(t, err, &rerr)
			require.NotNil(t, run)
			assert.Equal(t, gen.RunObjectStatusFailed, run.Status)
			require.NotNil(t, run.LastError)
			assert.Equal(t, gen.RunObjectLastErrorCodeServerError, run.LastError.Code)
			assert.Contains(t, run.LastError.Message, "backend stream ended early")
			for _, m := range x.messages(th) {
				if m.Role == gen.MessageObjectRoleAssistant {
					assert.NotEqual(t, gen.MessageObjectStatusCompleted, m.Status, "a half message must not be completed")
				}
			}
		})
	}
}

// ---- redaction ----

// keyOf returns a deterministic key of n characters from alphabet.
func keyOf(prefix string, n int, alphabet string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < n; i++ {
		b.WriteByte(alphabet[(i*7+i/len(alphabet))%len(alphabet)])
	}
	return b.String()
}

// lockedBuf is a goroutine-safe log sink.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// assertNoKeyPiece fails when any 10 consecutive characters of key (or of
// its URL-encoded form) appear in s.
func assertNoKeyPiece(t *testing.T, key, s string) {
	t.Helper()
	for _, form := range []string{key, url.QueryEscape(key)} {
		for i := 0; i+10 <= len(form); i++ {
			if strings.Contains(s, form[i:i+10]) {
				t.Fatalf("key piece %q leaked in %q", form[i:i+10], s)
			}
		}
	}
}

// TestChatBackendRedactThenTruncate: a backend error repeating the key is
// redacted before it is cut, with keys of real length and in encoded forms.
func TestChatBackendRedactThenTruncate(t *testing.T) {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	keys := map[string]string{
		"openai project key":   keyOf("sk-proj-", 164, alnum),
		"azure key":            keyOf("", 32, "0123456789abcdef"),
		"gateway key with +/=": keyOf("", 44, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") + "=",
	}
	echoes := []struct {
		name string
		form func(key string) string
	}{
		{name: "plain", form: func(k string) string { return "Incorrect API key provided: " + k + ". See the docs." }},
		{name: "at the start", form: func(k string) string { return k + " is not valid" }},
		{name: "url-encoded", form: func(k string) string { return "POST /v1/chat?key=" + url.QueryEscape(k) + " refused" }},
		{name: "json-escaped", form: func(k string) string {
			b, _ := json.Marshal(k)
			return `upstream said {"key":` + strings.ReplaceAll(string(b), "/", `\/`) + `}`
		}},
	}
	paths := []struct {
		name  string
		reply func(msg string) func(w http.ResponseWriter, r *http.Request)
	}{
		{name: "401 JSON", reply: func(msg string) func(w http.ResponseWriter, r *http.Request) { return statusReply(401, msg) }},
		{name: "502 text", reply: func(msg string) func(w http.ResponseWriter, r *http.Request) {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, msg, http.StatusBadGateway) }
		}},
		{name: "error chunk", reply: func(msg string) func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg}})
			return sseReply(contentChunk("x"), string(b))
		}},
	}
	for kname, key := range keys {
		for _, e := range echoes {
			for _, p := range paths {
				t.Run(kname+"/"+e.name+"/"+p.name, func(t *testing.T) {
					fake := newFakeChat(t, p.reply(e.form(key)))
					logs := &lockedBuf{}
					m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), APIKey: key,
						Logger: slog.New(slog.NewTextHandler(logs, nil))})
					_, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
					var me *server.ModelError
					require.ErrorAs(t, err, &me)
					assert.Contains(t, me.Message, "[redacted]")
					assertNoKeyPiece(t, key, me.Message)
					assertNoKeyPiece(t, key, err.Error())
					assertNoKeyPiece(t, key, logs.String())
				})
			}
		}
	}
	t.Run("message still cut to length", func(t *testing.T) {
		key := keys["openai project key"]
		fake := newFakeChat(t, statusReply(401, "Incorrect API key provided: "+key+strings.Repeat(" and more", 50)))
		_, err := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), APIKey: key}).
			Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
		var me *server.ModelError
		require.ErrorAs(t, err, &me)
		assert.Contains(t, me.Message, "answered 401: Incorrect API key provided: [redacted] and more")
		assert.Less(t, len(me.Message), 140)
	})
}

// ---- parallel tool calls ----

// TestChatBackendToolCallShapes assembles the tool calls of the stream
// shapes real backends send.
func TestChatBackendToolCallShapes(t *testing.T) {
	two := []server.ToolCall{
		{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`},
		{ID: "call_2", Name: "get_weather", Arguments: `{"city":"Tokyo"}`},
	}
	finish := `{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`
	tests := []struct {
		name   string
		chunks []string
		want   []server.ToolCall
	}{
		{name: "OpenAI: id and name first, arguments in index-only fragments", chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":\"Tokyo\"}"}}]},"finish_reason":null}]}`,
			finish, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`,
		}, want: two},
		{name: "vLLM: id repeated on every fragment", chunks: []string{
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"arguments":"{\"city\": "}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"arguments":"\"Paris\"}"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_weather"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"arguments":"{\"city\": \"Tokyo\"}"}}]}}]}`,
			finish,
		}, want: []server.ToolCall{
			{ID: "call_1", Name: "get_weather", Arguments: `{"city": "Paris"}`},
			{ID: "call_2", Name: "get_weather", Arguments: `{"city": "Tokyo"}`},
		}},
		{name: "Ollama 0.20: each call whole in its own chunk, all index 0", chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_2","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}`,
		}, want: two},
		{name: "Ollama before index: no index field, one chunk per call", chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}`,
		}, want: two},
		{name: "Ollama before index: no index field, both calls in one chunk", chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}`,
		}, want: two},
		{name: "llama.cpp: id and name first, arguments streamed, next index", chunks: []string{
			`{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}],"object":"chat.completion.chunk"}`,
			`{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}}],"object":"chat.completion.chunk"}`,
			`{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city\":\"Paris\"}"}}]}}],"object":"chat.completion.chunk"}`,
			`{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}}],"object":"chat.completion.chunk"}`,
			`{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"Tokyo\"}"}}]}}],"object":"chat.completion.chunk"}`,
			`{"choices":[{"finish_reason":"tool_calls","index":0,"delta":{}}],"object":"chat.completion.chunk","usage":{"completion_tokens":20,"prompt_tokens":50}}`,
		}, want: two},
		{name: "a fresh id on a continuation fragment does not split the call", chunks: []string{
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_x","function":{"arguments":"\"Paris\"}"}}]}}]}`,
			finish,
		}, want: two[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeChat(t, sseReply(tt.chunks...))
			out, err := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()}).
				Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			require.NoError(t, err)
			assert.Equal(t, tt.want, out.ToolCalls)
			for _, c := range out.ToolCalls {
				assert.True(t, json.Valid([]byte(c.Arguments)), "arguments %q", c.Arguments)
			}
		})
	}
}

// TestChatBackendOllamaParallelThroughServer: two Ollama-style calls reach
// requires_action as two calls with their own arguments.
func TestChatBackendOllamaParallelThroughServer(t *testing.T) {
	fake := newFakeChat(t, sseReply(
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_p","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}`,
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_t","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},"finish_reason":null}]}`,
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}`))
	x := newRT(t, cbServer(t, fake))
	a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &[]gen.AssistantTool{fnTool("get_weather")}})
	th := x.thread("weather in Paris and Tokyo?")
	run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, gen.RunObjectStatusRequiresAction, run.Status)
	calls := run.RequiredAction.SubmitToolOutputs.ToolCalls
	require.Len(t, calls, 2)
	assert.Equal(t, "call_p", calls[0].Id)
	assert.Equal(t, `{"city":"Paris"}`, calls[0].Function.Arguments)
	assert.Equal(t, "call_t", calls[1].Id)
	assert.Equal(t, `{"city":"Tokyo"}`, calls[1].Function.Arguments)
}

// ---- unreachable backends ----

// TestChatBackendUnreachableClasses: last_error names the host and the
// cause class, never the key or the URL's query.
func TestChatBackendUnreachableClasses(t *testing.T) {
	const secretQuery = "api-version=2024-10-21&key=query-secret-777"
	noDNS := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Resolver: &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			return nil, errors.New("no DNS server in this test")
		}}}).DialContext}}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := closed.Listener.Addr().String()
	closed.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")

	tests := []struct {
		name  string
		base  string
		hc    *http.Client
		host  string
		class string
	}{
		{name: "DNS", base: "http://backend.example.invalid:8000/v1?" + secretQuery, hc: noDNS, host: "backend.example.invalid:8000", class: "DNS lookup failed"},
		{name: "refused", base: "http://" + closedHost + "/v1?" + secretQuery, host: closedHost, class: "connection refused"},
		{name: "TLS", base: tlsSrv.URL + "/v1?" + secretQuery, hc: &http.Client{Transport: &http.Transport{}}, host: tlsHost, class: "TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &lockedBuf{}
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: tt.base, APIKey: cbKey, HTTPClient: tt.hc,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			_, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			var me *server.ModelError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, server.ModelErrServer, me.Code)
			assert.Contains(t, me.Message, tt.host)
			assert.Contains(t, me.Message, tt.class)
			for _, s := range []string{me.Message, err.Error(), logs.String()} {
				assert.NotContains(t, s, cbKey)
				assert.NotContains(t, s, "query-secret-777")
				assert.NotContains(t, s, "api-version")
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// A backend that accepts the request and never answers; the
			// transport's own header timeout fires (fake time).
			hc := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 3 * time.Second,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, s := net.Pipe()
					go func() { _, _ = io.Copy(io.Discard, s) }()
					return c, nil
				}}}
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: "http://slow.backend.test/v1?" + secretQuery, APIKey: cbKey, HTTPClient: hc})
			_, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			var me *server.ModelError
			require.ErrorAs(t, err, &me)
			assert.Contains(t, me.Message, "slow.backend.test")
			assert.Contains(t, me.Message, "timed out")
			assert.NotContains(t, err.Error(), "query-secret-777")
			hc.CloseIdleConnections()
		})
	})
}

// ---- 429 retries ----

// retryReply answers 429 with the given headers.
func retryReply(headers map[string]string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		statusReply(http.StatusTooManyRequests, "Rate limit reached")(w, r)
	}
}

// bubbleStart passes the synctest bubble's start time to the fake server.
var bubbleStart lockedTime

type lockedTime struct {
	mu sync.Mutex
	t  time.Time
}

func (l *lockedTime) set(t time.Time) { l.mu.Lock(); l.t = t; l.mu.Unlock() }
func (l *lockedTime) get() time.Time  { l.mu.Lock(); defer l.mu.Unlock(); return l.t }

// TestChatBackendRateLimitRetry: a 429 is retried after its Retry-After,
// within the configured bounds, on a fake clock.
func TestChatBackendRateLimitRetry(t *testing.T) {
	ok := textReply(1, 1, "fine")
	tests := []struct {
		name     string
		opts     server.ChatBackendOptions
		replies  []func(w http.ResponseWriter, r *http.Request)
		cancelAt time.Duration
		wantErr  string // "" means success
		requests int
		elapsed  time.Duration
	}{
		{name: "Retry-After seconds", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(map[string]string{"Retry-After": "7"}), retryReply(map[string]string{"Retry-After": "3"}), ok},
			requests: 3, elapsed: 10 * time.Second},
		{name: "retry-after-ms wins", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(map[string]string{"Retry-After": "7", "retry-after-ms": "1500"}), ok},
			requests: 2, elapsed: 1500 * time.Millisecond},
		{name: "Retry-After HTTP date", replies: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, r *http.Request) {
				// The fake server runs outside the test's bubble: the date is
				// taken from the bubble's clock when the test starts.
				retryReply(map[string]string{"Retry-After": bubbleStart.get().Add(5 * time.Second).UTC().Format(http.TimeFormat)})(w, r)
			}, ok},
			requests: 2, elapsed: 5 * time.Second},
		{name: "no header: default backoff 1s then 2s", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(nil), retryReply(nil), ok},
			requests: 3, elapsed: 3 * time.Second},
		{name: "default attempts exhausted", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(map[string]string{"Retry-After": "1"})},
			wantErr: "answered 429 (tried 3 times)", requests: 3, elapsed: 2 * time.Second},
		{name: "Retry-After beyond the max wait fails at once", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(map[string]string{"Retry-After": "120"}), ok},
			wantErr: "asked to retry after 2m0s", requests: 1},
		{name: "custom bounds", opts: server.ChatBackendOptions{RateLimitRetries: 4, RateLimitMaxWait: 2 * time.Minute},
			replies: []func(http.ResponseWriter, *http.Request){retryReply(map[string]string{"Retry-After": "120"})},
			wantErr: "answered 429 (tried 5 times)", requests: 5, elapsed: 8 * time.Minute},
		{name: "retries disabled", opts: server.ChatBackendOptions{RateLimitRetries: -1},
			replies: []func(http.ResponseWriter, *http.Request){retryReply(map[string]string{"Retry-After": "1"}), ok},
			wantErr: "answered 429", requests: 1},
		{name: "cancelled while waiting", replies: []func(http.ResponseWriter, *http.Request){
			retryReply(map[string]string{"Retry-After": "20"}), ok},
			cancelAt: 5 * time.Second, wantErr: context.Canceled.Error(), requests: 1, elapsed: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The fake server starts outside the bubble: its goroutines wait
			// on the network, which a bubble cannot wait for.
			fake := newFakeChat(t, tt.replies...)
			synctest.Test(t, func(t *testing.T) {
				bubbleStart.set(time.Now())
				o := tt.opts
				o.BaseURL = fake.url()
				o.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				m := server.ChatBackend(o)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.cancelAt > 0 {
					time.AfterFunc(tt.cancelAt, cancel)
				}
				start := time.Now()
				out, err := m.Respond(ctx, &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
				elapsed := time.Since(start)
				if tt.wantErr == "" {
					require.NoError(t, err)
					assert.Equal(t, "fine", out.Text)
				} else {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tt.wantErr)
					var me *server.ModelError
					if errors.As(err, &me) {
						assert.Equal(t, server.ModelErrRateLimit, me.Code)
					}
				}
				assert.Len(t, fake.requests(), tt.requests)
				assert.Equal(t, tt.elapsed, elapsed)
			})
		})
	}
}
