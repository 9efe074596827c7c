package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

const cbKey = "sk-backend-secret-123"

// cbUnion decodes raw JSON into a generated (union) type.
func cbUnion[T any](t *testing.T, raw string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(raw), &v))
	return v
}

func cbMsg(t *testing.T, role string, parts ...string) gen.MessageObject {
	t.Helper()
	m := gen.MessageObject{Id: "msg_x", Role: gen.MessageObjectRole(role)}
	for _, p := range parts {
		if strings.HasPrefix(p, "{") {
			m.Content = append(m.Content, cbUnion[gen.MessageContent](t, p))
			continue
		}
		m.Content = append(m.Content, gen.MessageContent{Type: gen.MessageContentTypeText, Text: gen.MessageContentText{Value: p}})
	}
	return m
}

type cbFiles map[string][]byte

func (f cbFiles) FileContent(_ context.Context, id string) ([]byte, string, error) {
	b, ok := f[id]
	if !ok {
		return nil, "", errors.New("no such file")
	}
	return b, "image/png", nil
}

func cbPtr[T any](v T) *T { return &v }

// TestChatBackendRequestMapping checks the request body for each mapping.
func TestChatBackendRequestMapping(t *testing.T) {
	desc := "Get the weather."
	fn := gen.FunctionObject{Name: "get_weather", Description: &desc, Strict: cbPtr(true),
		Parameters: &gen.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}
	tests := []struct {
		name  string
		in    func(t *testing.T) *server.ModelInput
		check func(t *testing.T, body map[string]any)
	}{
		{
			name: "system message, messages and model map",
			in: func(t *testing.T) *server.ModelInput {
				return &server.ModelInput{Run: gen.RunObject{Model: "gpt-4o", Instructions: "Be brief.\nAlso polite."},
					Messages: []gen.MessageObject{cbMsg(t, "user", "hi"), cbMsg(t, "assistant", "hello"), cbMsg(t, "user", "how", "are you?")}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, "llama3.1", b["model"])
				assert.Equal(t, true, b["stream"])
				assert.Equal(t, map[string]any{"include_usage": true}, b["stream_options"])
				assert.JSONEq(t, `[{"role":"system","content":"Be brief.\nAlso polite."},{"role":"user","content":"hi"},
					{"role":"assistant","content":"hello"},{"role":"user","content":"how\nare you?"}]`, jsonOf(t, b["messages"]))
				assert.NotContains(t, b, "tools")
				assert.NotContains(t, b, "tool_choice")
				assert.NotContains(t, b, "parallel_tool_calls")
				assert.NotContains(t, b, "response_format")
			},
		},
		{
			name: "image parts",
			in: func(t *testing.T) *server.ModelInput {
				return &server.ModelInput{Run: gen.RunObject{Model: "m"}, Messages: []gen.MessageObject{cbMsg(t, "user", "look",
					`{"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"low"}}`,
					`{"type":"image_file","image_file":{"file_id":"file_png"}}`)}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `[{"role":"user","content":[{"type":"text","text":"look"},
					{"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"low"}},
					{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw=="}}]}]`, jsonOf(t, b["messages"]))
			},
		},
		{
			name: "tools, named tool_choice, parallel_tool_calls",
			in: func(t *testing.T) *server.ModelInput {
				tc := cbUnion[gen.AssistantsApiToolChoiceOption](t, `{"type":"function","function":{"name":"get_weather"}}`)
				return &server.ModelInput{Run: gen.RunObject{Model: "m", ToolChoice: &tc, ParallelToolCalls: false},
					Functions: []gen.FunctionObject{fn}, Messages: []gen.MessageObject{cbMsg(t, "user", "x")}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `[{"type":"function","function":{"name":"get_weather","description":"Get the weather.","strict":true,
					"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`, jsonOf(t, b["tools"]))
				assert.JSONEq(t, `{"type":"function","function":{"name":"get_weather"}}`, jsonOf(t, b["tool_choice"]))
				assert.Equal(t, false, b["parallel_tool_calls"])
			},
		},
		{
			name: "tool_choice required",
			in: func(t *testing.T) *server.ModelInput {
				tc := cbUnion[gen.AssistantsApiToolChoiceOption](t, `"required"`)
				return &server.ModelInput{Run: gen.RunObject{Model: "m", ToolChoice: &tc, ParallelToolCalls: true},
					Functions: []gen.FunctionObject{{Name: "f"}}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, "required", b["tool_choice"])
				assert.Equal(t, true, b["parallel_tool_calls"])
			},
		},
		{
			name: "tool_choice none",
			in: func(t *testing.T) *server.ModelInput {
				tc := cbUnion[gen.AssistantsApiToolChoiceOption](t, `"none"`)
				return &server.ModelInput{Run: gen.RunObject{Model: "m", ToolChoice: &tc}, Functions: []gen.FunctionObject{{Name: "f"}}}
			},
			check: func(t *testing.T, b map[string]any) { assert.Equal(t, "none", b["tool_choice"]) },
		},
		{
			name: "temperature, top_p, json_schema response_format, max tokens",
			in: func(t *testing.T) *server.ModelInput {
				rf := cbUnion[gen.AssistantsApiResponseFormatOption](t, `{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}}`)
				return &server.ModelInput{Run: gen.RunObject{Model: "m", Temperature: cbPtr[float32](0.5), TopP: cbPtr[float32](0.25),
					ResponseFormat: rf, MaxCompletionTokens: cbPtr(100)}, Used: server.Usage{CompletionTokens: 30}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, 0.5, b["temperature"])
				assert.Equal(t, 0.25, b["top_p"])
				assert.JSONEq(t, `{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}}`, jsonOf(t, b["response_format"]))
				assert.Equal(t, float64(70), b["max_completion_tokens"])
			},
		},
		{
			name: "json_object response_format, auto omitted",
			in: func(t *testing.T) *server.ModelInput {
				return &server.ModelInput{Run: gen.RunObject{Model: "m", ResponseFormat: cbUnion[gen.AssistantsApiResponseFormatOption](t, `{"type":"json_object"}`)}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `{"type":"json_object"}`, jsonOf(t, b["response_format"]))
			},
		},
		{
			name: "max_prompt_tokens limits the history",
			in: func(t *testing.T) *server.ModelInput {
				long := strings.Repeat("word ", 100)
				return &server.ModelInput{Run: gen.RunObject{Model: "m", MaxPromptTokens: cbPtr(20)},
					Messages: []gen.MessageObject{cbMsg(t, "user", long), cbMsg(t, "assistant", long), cbMsg(t, "user", "newest")}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `[{"role":"user","content":"newest"}]`, jsonOf(t, b["messages"]))
			},
		},
		{
			name: "tool outputs become an assistant tool_calls message and tool messages",
			in: func(t *testing.T) *server.ModelInput {
				return &server.ModelInput{Run: gen.RunObject{Model: "m"}, Functions: []gen.FunctionObject{{Name: "a"}, {Name: "b"}},
					Messages: []gen.MessageObject{cbMsg(t, "user", "go")},
					ToolOutputs: []server.ToolOutput{
						{Call: server.ToolCall{ID: "call_1", Name: "a", Arguments: `{"x":1}`}, Output: "one", Round: 0},
						{Call: server.ToolCall{ID: "call_2", Name: "b", Arguments: `{}`}, Output: "two", Round: 0},
						{Call: server.ToolCall{ID: "call_3", Name: "a", Arguments: `{}`}, Output: "three", Round: 1},
					}}
			},
			check: func(t *testing.T, b map[string]any) {
				assert.JSONEq(t, `[{"role":"user","content":"go"},
					{"role":"assistant","content":null,"tool_calls":[
						{"id":"call_1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},
						{"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]},
					{"role":"tool","tool_call_id":"call_1","content":"one"},
					{"role":"tool","tool_call_id":"call_2","content":"two"},
					{"role":"assistant","content":null,"tool_calls":[{"id":"call_3","type":"function","function":{"name":"a","arguments":"{}"}}]},
					{"role":"tool","tool_call_id":"call_3","content":"three"}]`, jsonOf(t, b["messages"]))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeChat(t, textReply(1, 1, "ok"))
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), APIKey: cbKey, ModelMap: map[string]string{"gpt-4o": "llama3.1"}})
			m.UseFiles(cbFiles{"file_png": {0x89, 'P', 'N', 'G'}})
			out, err := m.Respond(t.Context(), tt.in(t), func(string) {})
			require.NoError(t, err)
			assert.Equal(t, "ok", out.Text)
			reqs := fake.requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "Bearer "+cbKey, fake.auth[0])
			tt.check(t, reqs[0])
		})
	}
}

// TestChatBackendReplies checks how streamed replies map back.
func TestChatBackendReplies(t *testing.T) {
	t.Run("text deltas and usage", func(t *testing.T) {
		fake := newFakeChat(t, textReply(12, 3, "Hello", ", ", "world"))
		m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
		var deltas []string
		out, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(d string) { deltas = append(deltas, d) })
		require.NoError(t, err)
		assert.Equal(t, []string{"Hello", ", ", "world"}, deltas)
		assert.Equal(t, "Hello, world", out.Text)
		assert.Equal(t, server.Usage{PromptTokens: 12, CompletionTokens: 3}, out.Usage)
		assert.False(t, out.Truncated)
		assert.Empty(t, fake.auth[0], "no key configured, no Authorization header")
	})
	t.Run("tool calls assembled by index keep their ids", func(t *testing.T) {
		fake := newFakeChat(t, sseReply(
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"a","arguments":"{\"q\""}},{"index":1,"id":"call_B","type":"function","function":{"name":"b","arguments":""}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}},{"index":0,"function":{"arguments":":1}"}}]}}]}`,
			`{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}`))
		m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
		out, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
		require.NoError(t, err)
		assert.Equal(t, []server.ToolCall{{ID: "call_A", Name: "a", Arguments: `{"q":1}`}, {ID: "call_B", Name: "b", Arguments: `{}`}}, out.ToolCalls)
		assert.Equal(t, server.Usage{PromptTokens: 5, CompletionTokens: 9}, out.Usage)
	})
	t.Run("finish_reason length is truncated", func(t *testing.T) {
		fake := newFakeChat(t, sseReply(`{"choices":[{"index":0,"delta":{"content":"cut"},"finish_reason":"length"}]}`))
		m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url()})
		out, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
		require.NoError(t, err)
		assert.True(t, out.Truncated)
	})
}

// TestChatBackendErrors checks error mapping and that the key never leaks.
func TestChatBackendErrors(t *testing.T) {
	fs := cbUnion[gen.AssistantTool](t, `{"type":"file_search"}`)
	ci := cbUnion[gen.AssistantTool](t, `{"type":"code_interpreter"}`)
	namedFS := cbUnion[gen.AssistantsApiToolChoiceOption](t, `{"type":"file_search"}`)
	tests := []struct {
		name     string
		reply    func(w http.ResponseWriter, r *http.Request)
		opts     server.ChatBackendOptions
		in       func(t *testing.T) *server.ModelInput
		code     string
		contains string
		noCall   bool
	}{
		{name: "429 without retries", reply: statusReply(429, "slow down "+cbKey), opts: server.ChatBackendOptions{RateLimitRetries: -1},
			code: server.ModelErrRateLimit, contains: "429: slow down [redacted]"},
		{name: "500", reply: statusReply(500, "boom"), code: server.ModelErrServer, contains: "500: boom"},
		{name: "401 leaks no key", reply: statusReply(401, "bad key "+cbKey), code: server.ModelErrServer, contains: "[redacted]"},
		{name: "malformed stream", reply: sseReply(`{not json`), code: server.ModelErrServer, contains: "malformed"},
		{name: "error chunk", reply: sseReply(`{"error":{"message":"overloaded"}}`), code: server.ModelErrServer, contains: "overloaded"},
		{name: "empty stream", reply: func(w http.ResponseWriter, r *http.Request) {}, code: server.ModelErrServer, contains: "backend stream ended early"},
		{name: "code_interpreter tool fails clearly (file_search is served)", in: func(t *testing.T) *server.ModelInput {
			return &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fs, ci}}}
		}, code: server.ModelErrServer, contains: "cannot run the code_interpreter tool;", noCall: true},
		{name: "tool_choice naming file_search with nothing to search fails", in: func(t *testing.T) *server.ModelInput {
			return &server.ModelInput{Run: gen.RunObject{Model: "m", ToolChoice: &namedFS}}
		}, code: server.ModelErrServer, contains: "file_search", noCall: true},
		{name: "images refused", opts: server.ChatBackendOptions{NoImages: true}, in: func(t *testing.T) *server.ModelInput {
			return &server.ModelInput{Run: gen.RunObject{Model: "m"}, Messages: []gen.MessageObject{cbMsg(t, "user", `{"type":"image_url","image_url":{"url":"https://x.test/a.png"}}`)}}
		}, code: server.ModelErrServer, contains: "does not accept images", noCall: true},
		{name: "image_file without a file source", in: func(t *testing.T) *server.ModelInput {
			return &server.ModelInput{Run: gen.RunObject{Model: "m"}, Messages: []gen.MessageObject{cbMsg(t, "user", `{"type":"image_file","image_file":{"file_id":"file_1"}}`)}}
		}, code: server.ModelErrServer, contains: "no file source", noCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := tt.reply
			if reply == nil {
				reply = textReply(1, 1, "ok")
			}
			fake := newFakeChat(t, reply)
			o := tt.opts
			o.BaseURL, o.APIKey = fake.url(), cbKey
			in := &server.ModelInput{Run: gen.RunObject{Model: "m"}}
			if tt.in != nil {
				in = tt.in(t)
			}
			_, err := server.ChatBackend(o).Respond(t.Context(), in, func(string) {})
			var me *server.ModelError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, tt.code, me.Code)
			assert.Contains(t, me.Message, tt.contains)
			assert.NotContains(t, err.Error(), cbKey)
			if tt.noCall {
				assert.Empty(t, fake.requests())
			}
		})
	}

	t.Run("unsupported tools dropped with the option", func(t *testing.T) {
		fake := newFakeChat(t, textReply(1, 1, "ok"))
		m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), DropUnsupportedTools: true})
		in := &server.ModelInput{Run: gen.RunObject{Model: "m", Tools: []gen.AssistantTool{fs}, ToolChoice: &namedFS}, Functions: []gen.FunctionObject{{Name: "f"}}}
		_, err := m.Respond(t.Context(), in, func(string) {})
		require.NoError(t, err)
		b := fake.requests()[0]
		assert.JSONEq(t, `[{"type":"function","function":{"name":"f"}}]`, jsonOf(t, b["tools"]))
		assert.Equal(t, "auto", b["tool_choice"])
	})

	t.Run("timeout fails, no hang", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			})}
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: "http://backend.invalid/v1", HTTPClient: hc, Timeout: 5 * time.Second})
			start := time.Now()
			_, err := m.Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			var me *server.ModelError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, server.ModelErrServer, me.Code)
			assert.Contains(t, me.Message, "did not answer within 5s")
			assert.Equal(t, 5*time.Second, time.Since(start))
		})
	})
}

func TestChatBackendCancelAndUnreachable(t *testing.T) {
	t.Run("cancelled context returns its error, no ModelError", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			})}
			m := server.ChatBackend(server.ChatBackendOptions{BaseURL: "http://backend.invalid/v1", HTTPClient: hc})
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := m.Respond(ctx, &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var me *server.ModelError
			assert.False(t, errors.As(err, &me), "the engine decides (expired run) when the run's own context ends")
		})
	})
	t.Run("unreachable backend", func(t *testing.T) {
		fake := newFakeChat(t, textReply(1, 1, "x"))
		url := fake.url()
		fake.Close()
		_, err := server.ChatBackend(server.ChatBackendOptions{BaseURL: url, APIKey: cbKey}).Respond(t.Context(), &server.ModelInput{Run: gen.RunObject{Model: "m"}}, func(string) {})
		var me *server.ModelError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, server.ModelErrServer, me.Code)
		assert.Contains(t, me.Message, "cannot be reached")
		assert.NotContains(t, err.Error(), cbKey)
	})
}

// TestChatBackendRunTimeouts checks that a backend that never answers ends
// the run (failed on the request timeout, expired at expires_at) and never
// hangs it.
func TestChatBackendRunTimeouts(t *testing.T) {
	hang := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})}
	tests := []struct {
		name    string
		timeout time.Duration
		status  gen.RunObjectStatus
	}{
		{name: "request timeout fails the run", timeout: time.Minute, status: gen.RunObjectStatusFailed},
		{name: "run deadline expires the run", timeout: time.Hour, status: gen.RunObjectStatusExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := server.ChatBackend(server.ChatBackendOptions{BaseURL: "http://backend.invalid/v1", HTTPClient: hang, Timeout: tt.timeout})
				x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(m)))
				a := x.assistant(gen.CreateAssistantRequest{})
				thread := x.thread("hello")
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				settle(11 * time.Minute)
				got := x.get(thread, run.Id)
				require.Equal(t, tt.status, got.Status)
				if tt.status == gen.RunObjectStatusFailed {
					require.NotNil(t, got.LastError)
					assert.Equal(t, gen.RunObjectLastErrorCodeServerError, got.LastError.Code)
					assert.Contains(t, got.LastError.Message, "did not answer within 1m0s")
				}
			})
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cbServer starts the embedded server with a chat backend behind it.
func cbServer(t *testing.T, fake *fakeChat) *assistantstest.Server {
	m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), APIKey: cbKey, ModelMap: map[string]string{"gpt-4o": "llama3.1"}})
	srv := assistantstest.NewServer(t, server.WithModel(m), server.WithStepDelay(0))
	m.UseFiles(srv.Server)
	return srv
}

func TestChatBackendThroughServer(t *testing.T) {
	t.Run("create and poll", func(t *testing.T) {
		fake := newFakeChat(t, textReply(9, 2, "Hi", " there"))
		x := newRT(t, cbServer(t, fake))
		a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o", Instructions: cbPtr("Be kind.")})
		th := x.thread("first", "second")
		run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id, AdditionalInstructions: cbPtr("Answer in English."),
			TruncationStrategy: &gen.TruncationObject{Type: gen.TruncationObjectTypeLastMessages, LastMessages: cbPtr(1)}}, poller.WithInterval(5*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		require.NotNil(t, run.Usage)
		assert.Equal(t, 9, run.Usage.PromptTokens)
		assert.Equal(t, 2, run.Usage.CompletionTokens)
		assert.Equal(t, "Hi there", lastText(t, x.messages(th)))
		steps := x.steps(th, run.Id)
		require.Len(t, steps, 1)
		require.NotNil(t, steps[0].Usage)
		assert.Equal(t, 11, steps[0].Usage.TotalTokens)

		b := fake.requests()[0]
		assert.Equal(t, "llama3.1", b["model"])
		msgs := b["messages"].([]any)
		require.Len(t, msgs, 2, "truncation last_messages=1 keeps one message: %s", jsonOf(t, msgs))
		assert.Equal(t, "system", msgs[0].(map[string]any)["role"])
		assert.Contains(t, msgs[0].(map[string]any)["content"], "Be kind.")
		assert.Contains(t, msgs[0].(map[string]any)["content"], "Answer in English.")
		assert.Equal(t, map[string]any{"role": "user", "content": "second"}, msgs[1])
	})

	t.Run("tool call then submit and poll", func(t *testing.T) {
		fake := newFakeChat(t, toolReply("call_abc123", "get_weather", `{"city":"Paris"}`), textReply(20, 4, "It is ", "sunny."))
		x := newRT(t, cbServer(t, fake))
		a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &[]gen.AssistantTool{fnTool("get_weather")}})
		th := x.thread("weather in Paris?")
		run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
		require.NoError(t, err)
		require.Equal(t, gen.RunObjectStatusRequiresAction, run.Status)
		calls := run.RequiredAction.SubmitToolOutputs.ToolCalls
		require.Len(t, calls, 1)
		assert.Equal(t, "call_abc123", calls[0].Id)
		assert.Equal(t, "get_weather", calls[0].Function.Name)
		assert.Equal(t, `{"city":"Paris"}`, calls[0].Function.Arguments)

		r := x.submit(th, run.Id, map[string]string{"call_abc123": `{"temp":21}`})
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		run, err = poller.New(x.c, th, run.Id, poller.WithInterval(5*time.Millisecond)).PollUntilDone(x.ctx)
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, "It is sunny.", lastText(t, x.messages(th)))
		assert.Equal(t, 20+11, run.Usage.PromptTokens)
		assert.Equal(t, 4+7, run.Usage.CompletionTokens)

		reqs := fake.requests()
		require.Len(t, reqs, 2)
		assert.JSONEq(t, `[{"type":"function","function":{"name":"get_weather"}}]`, jsonOf(t, reqs[0]["tools"]))
		assert.JSONEq(t, `[{"role":"user","content":"weather in Paris?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"call_abc123","content":"{\"temp\":21}"}]`, jsonOf(t, reqs[1]["messages"]))
	})

	t.Run("stream", func(t *testing.T) {
		fake := newFakeChat(t, textReply(3, 3, "one ", "two ", "three"))
		srv := cbServer(t, fake)
		x := newRT(t, srv)
		a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o"})
		th := x.thread("count")
		body := strings.NewReader(`{"assistant_id":"` + a.Id + `","stream":true}`)
		req, err := http.NewRequestWithContext(x.ctx, http.MethodPost, srv.URL+"/threads/"+th+"/runs", body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+srv.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var deltas, events []string
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				events = append(events, event)
			case strings.HasPrefix(line, "data: ") && event == "thread.message.delta":
				var d gen.MessageDeltaObject
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d))
				c := (*d.Delta.Content)[0]
				require.NotNil(t, c.Text)
				deltas = append(deltas, *c.Text.Value)
			}
		}
		require.NoError(t, sc.Err())
		assert.Equal(t, []string{"one ", "two ", "three"}, deltas)
		assert.Contains(t, events, "thread.run.completed")
		assert.Equal(t, "done", events[len(events)-1])
	})

	t.Run("429 is retried, then fails the run with rate_limit_exceeded", func(t *testing.T) {
		fake := newFakeChat(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			statusReply(429, "quota")(w, r)
		})
		x := newRT(t, cbServer(t, fake))
		a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o"})
		th := x.thread("hi")
		run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
		var rerr *poller.RunError
		require.ErrorAs(t, err, &rerr)
		assert.Equal(t, gen.RunObjectStatusFailed, rerr.Status)
		assert.Equal(t, server.ModelErrRateLimit, rerr.Code)
		assert.Contains(t, rerr.Message, "429 (tried 3 times): quota")
		require.NotNil(t, run)
		assert.Equal(t, gen.RunObjectStatusFailed, run.Status)
		assert.Len(t, fake.requests(), 3, "two retries by default")
	})

	t.Run("429 then success completes the run", func(t *testing.T) {
		fake := newFakeChat(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("retry-after-ms", "0")
			statusReply(429, "quota")(w, r)
		}, textReply(2, 2, "made it"))
		x := newRT(t, cbServer(t, fake))
		a := x.assistant(gen.CreateAssistantRequest{Model: "gpt-4o"})
		th := x.thread("hi")
		run, err := poller.CreateAndPoll(x.ctx, x.c, th, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, gen.RunObjectStatusCompleted, run.Status)
		assert.Equal(t, "made it", lastText(t, x.messages(th)))
		assert.Len(t, fake.requests(), 2)
	})
}
