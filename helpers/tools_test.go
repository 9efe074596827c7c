package helpers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// tlCall is a tool call for Execute.
func tlCall(id, name, args string) gen.RunToolCallObject {
	return gen.RunToolCallObject{Id: id, Type: "function", Function: gen.RunToolCallFunction{Name: name, Arguments: args}}
}

// tlFunctionDef decodes a tool definition back into its function object.
func tlFunctionDef(t *testing.T, tool gen.AssistantTool) gen.FunctionObject {
	t.Helper()
	fn, err := tool.AsAssistantToolsFunction()
	require.NoError(t, err)
	require.Equal(t, gen.AssistantToolsFunctionType("function"), fn.Type)
	return fn.Function
}

type weatherArgs struct {
	City string `json:"city" jsonschema:"the city, e.g. Paris"`
	Unit string `json:"unit,omitempty" jsonschema:"celsius or fahrenheit"`
}

type nestedArgs struct {
	Points []struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	} `json:"points"`
	Tags  map[string]string `json:"tags,omitempty"`
	Limit *int              `json:"limit,omitempty"`
	OK    bool              `json:"ok"`
	skip  int               //lint:ignore U1000 the schema must leave unexported fields out
	Skip2 int               `json:"-"`
}

type emptyArgs struct{}

type sName string

// The parameters schema is derived from the Args struct.
func TestFuncSchemaDerivation(t *testing.T) {
	tests := []struct {
		name string
		tool Tool
		want string
	}{
		{"tags, descriptions, optional", Func("get_weather", "Current weather", func(context.Context, weatherArgs) (string, error) { return "", nil }),
			`{"type":"object","additionalProperties":false,"required":["city"],"properties":{
				"city":{"type":"string","description":"the city, e.g. Paris"},
				"unit":{"type":"string","description":"celsius or fahrenheit"}}}`},
		{"nested, slices, maps, pointers, skipped fields", Func("plot", "", func(context.Context, nestedArgs) (string, error) { return "", nil }),
			`{"type":"object","additionalProperties":false,"required":["points","ok"],"properties":{
				"points":{"type":["null","array"],"items":{"type":"object","additionalProperties":false,"required":["x","y"],
					"properties":{"x":{"type":"number"},"y":{"type":"number"}}}},
				"tags":{"type":"object","additionalProperties":{"type":"string"}},
				"limit":{"type":["null","integer"]},
				"ok":{"type":"boolean"}}}`},
		{"empty struct", Func("ping", "", func(context.Context, emptyArgs) (string, error) { return "", nil }),
			`{"type":"object","additionalProperties":false,"properties":{}}`},
		{"pointer to struct", Func("ptr", "", func(context.Context, *weatherArgs) (string, error) { return "", nil }),
			`{"type":"object","additionalProperties":false,"required":["city"],"properties":{
				"city":{"type":"string","description":"the city, e.g. Paris"},
				"unit":{"type":"string","description":"celsius or fahrenheit"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry(tt.tool)
			require.NoError(t, err)
			def := tlFunctionDef(t, tt.tool.Definition())
			require.NotNil(t, def.Parameters)
			got, err := json.Marshal(def.Parameters)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(got))
			assert.Equal(t, tt.tool.Name(), def.Name)
		})
	}
	def := tlFunctionDef(t, tests[0].tool.Definition())
	require.NotNil(t, def.Description)
	assert.Equal(t, "Current weather", *def.Description)
	assert.Nil(t, tlFunctionDef(t, tests[1].tool.Definition()).Description, "an empty description is omitted")
}

// Strict decoding: the handler only sees arguments that match the schema.
func TestFuncDecodesStrictly(t *testing.T) {
	var got weatherArgs
	calls := 0
	tool := Func("get_weather", "", func(_ context.Context, a weatherArgs) (map[string]any, error) {
		calls++
		got = a
		return map[string]any{"city": a.City, "temp": 21}, nil
	})
	tests := []struct {
		args    string
		wantOut string
		wantErr string // substring; "" for success
	}{
		{`{"city":"Paris"}`, `{"city":"Paris","temp":21}`, ""},
		{`{"city":"Oslo","unit":"celsius"}`, `{"city":"Oslo","temp":21}`, ""},
		{` {"city":"Rome"} `, `{"city":"Rome","temp":21}`, ""},
		{`{}`, "", `missing properties: ["city"]`},
		{``, "", `missing properties: ["city"]`},
		{`{"city":"Paris","country":"FR"}`, "", `additional properties ["country"]`},
		{`{"city":42}`, "", `/properties/city: type: 42 has type "integer", want "string"`},
		{`{"city":"Paris"`, "", "malformed JSON"},
		{`{"city":"Paris"} {"city":"Oslo"}`, "", "data after the arguments object"},
		{`["Paris"]`, "", "arguments must be a JSON object"},
		{`null`, "", "arguments must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			calls = 0
			out, err := tool.Call(context.Background(), tt.args)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.JSONEq(t, tt.wantOut, out)
				assert.Equal(t, 1, calls)
				return
			}
			require.ErrorIs(t, err, ErrInvalidArguments)
			assert.ErrorContains(t, err, "invalid arguments for get_weather")
			assert.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, 0, calls, "the handler is not called with bad arguments")
		})
	}
	_, err := tool.Call(context.Background(), `{"city":"Lima","unit":"kelvin"}`)
	require.NoError(t, err)
	assert.Equal(t, weatherArgs{City: "Lima", Unit: "kelvin"}, got)

	// Nested objects are strict too; pointer Args are allocated.
	nested := Func("plot", "", func(_ context.Context, a *nestedArgs) (string, error) {
		return fmt.Sprint(len(a.Points), a.OK), nil
	})
	out, err := nested.Call(context.Background(), `{"points":[{"x":1,"y":2.5}],"ok":true}`)
	require.NoError(t, err)
	assert.Equal(t, "1 true", out)
	_, err = nested.Call(context.Background(), `{"points":[{"x":1,"y":2,"z":3}],"ok":true}`)
	assert.ErrorIs(t, err, ErrInvalidArguments)
	_, err = nested.Call(context.Background(), `{"points":[],"ok":true,"limit":1.5}`)
	assert.ErrorIs(t, err, ErrInvalidArguments)
}

// A string Result is sent as is; anything else as JSON.
func TestFuncResultEncoding(t *testing.T) {
	ctx := context.Background()
	out, err := Func("s", "", func(context.Context, emptyArgs) (string, error) { return `not "json"`, nil }).Call(ctx, "{}")
	require.NoError(t, err)
	assert.Equal(t, `not "json"`, out)
	out, err = Func("n", "", func(context.Context, emptyArgs) (sName, error) { return "named", nil }).Call(ctx, "{}")
	require.NoError(t, err)
	assert.Equal(t, "named", out)
	out, err = Func("i", "", func(context.Context, emptyArgs) (int, error) { return 7, nil }).Call(ctx, "{}")
	require.NoError(t, err)
	assert.Equal(t, "7", out)
	out, err = Func("r", "", func(context.Context, emptyArgs) (json.RawMessage, error) { return json.RawMessage(`{"a":1}`), nil }).Call(ctx, "{}")
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, out)
	out, err = Func("p", "", func(context.Context, emptyArgs) (*weatherArgs, error) { return nil, nil }).Call(ctx, "{}")
	require.NoError(t, err)
	assert.Equal(t, "null", out)
	_, err = Func("c", "", func(context.Context, emptyArgs) (chan int, error) { return make(chan int), nil }).Call(ctx, "{}")
	assert.ErrorContains(t, err, "encoding the result of c")
	_, err = Func("e", "", func(context.Context, emptyArgs) (string, error) { return "", errors.New("nope") }).Call(ctx, "{}")
	assert.EqualError(t, err, "nope")
}

func TestNewRegistryErrors(t *testing.T) {
	ok := Func("ok", "", func(context.Context, emptyArgs) (string, error) { return "", nil })
	raw := func(name string) Tool {
		return RawFunc(gen.FunctionObject{Name: name}, func(context.Context, string) (string, error) { return "", nil })
	}
	var nilFn func(context.Context, emptyArgs) (string, error)
	tests := []struct {
		name  string
		tools []Tool
		want  string
	}{
		{"duplicate", []Tool{ok, raw("ok")}, `duplicate tool name "ok"`},
		{"nil", []Tool{ok, nil}, "tool 1 is nil"},
		{"typed nil", []Tool{(*rawTool)(nil)}, "tool 0 is nil"},
		{"empty name", []Tool{raw("")}, `invalid name ""`},
		{"bad name", []Tool{raw("get weather")}, `invalid name "get weather"`},
		{"long name", []Tool{raw(strings.Repeat("a", 65))}, "invalid name"},
		{"channel args", []Tool{Func("c", "", func(context.Context, struct{ C chan int }) (string, error) { return "", nil })}, `tool "c": deriving JSON Schema`},
		{"non-struct args", []Tool{Func("s", "", func(context.Context, string) (string, error) { return "", nil })}, "is not a struct"},
		{"map args", []Tool{Func("m", "", func(context.Context, map[string]any) (string, error) { return "", nil })}, "is not a struct"},
		{"nil func", []Tool{Func("f", "", nilFn)}, `tool "f": nil handler`},
		{"nil raw func", []Tool{RawFunc(gen.FunctionObject{Name: "r"}, nil)}, `tool "r": nil handler`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRegistry(tt.tools...)
			assert.Nil(t, r)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Panics(t, func() { MustRegistry(ok, ok) })
	// A broken tool called directly returns its construction error.
	_, err := Func("s", "", func(context.Context, string) (string, error) { return "", nil }).Call(context.Background(), "{}")
	assert.ErrorContains(t, err, "is not a struct")
}

func TestRegistryTools(t *testing.T) {
	params := gen.FunctionParameters{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}}
	desc := "raw search"
	reg, err := NewRegistry(
		Func("b_second", "B", func(context.Context, emptyArgs) (string, error) { return "", nil }),
		RawFunc(gen.FunctionObject{Name: "a_first", Description: &desc, Parameters: &params},
			func(_ context.Context, args string) (string, error) { return "raw:" + args, nil }),
	)
	require.NoError(t, err)
	tools := reg.Tools()
	require.Len(t, tools, 2)
	assert.Equal(t, "b_second", tlFunctionDef(t, tools[0]).Name, "registration order")
	a := tlFunctionDef(t, tools[1])
	assert.Equal(t, "a_first", a.Name)
	assert.Equal(t, params, *a.Parameters)
	assert.Equal(t, "raw search", *a.Description)
	b, err := json.Marshal(tools[1])
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"function","function":{"name":"a_first","description":"raw search","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}`, string(b))

	tool, ok := reg.Lookup("a_first")
	require.True(t, ok)
	out, err := tool.Call(context.Background(), `{"q":1}`)
	require.NoError(t, err)
	assert.Equal(t, `raw:{"q":1}`, out, "RawFunc passes arguments through unchecked")
	_, ok = reg.Lookup("zzz")
	assert.False(t, ok)

	empty, err := NewRegistry()
	require.NoError(t, err)
	assert.Empty(t, empty.Tools())
	var nilReg *Registry
	assert.Nil(t, nilReg.Tools())
}

// outputsByID maps the outputs of Execute by call id.
func outputsByID(t *testing.T, outs []gen.SubmitToolOutputsRunRequestToolOutput) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, o := range outs {
		require.NotNil(t, o.ToolCallId)
		require.NotNil(t, o.Output)
		m[*o.ToolCallId] = *o.Output
	}
	return m
}

// Failures become error outputs; outputs keep the calls' order.
func TestExecuteErrorOutputs(t *testing.T) {
	reg := MustRegistry(
		Func("get_weather", "", func(_ context.Context, a weatherArgs) (string, error) { return "sunny in " + a.City, nil }),
		Func("fail", "", func(context.Context, emptyArgs) (string, error) { return "", errors.New("database is down") }),
		Func("boom", "", func(context.Context, emptyArgs) (string, error) { panic("index out of range") }),
	)
	calls := []gen.RunToolCallObject{
		tlCall("c1", "get_weather", `{"city":"Paris"}`),
		tlCall("c2", "fail", `{}`),
		tlCall("c3", "boom", `{}`),
		tlCall("c4", "nope", `{}`),
		tlCall("c5", "get_weather", `{"town":"Paris"}`),
		{Id: "c6", Type: "code_interpreter"},
	}
	var mu sync.Mutex
	var started []string
	results := map[string]error{}
	outs, err := reg.Execute(context.Background(), calls, ExecOptions{
		OnToolCall: func(_ context.Context, c gen.RunToolCallObject) {
			mu.Lock()
			defer mu.Unlock()
			started = append(started, c.Id)
		},
		OnToolResult: func(_ context.Context, c gen.RunToolCallObject, _ string, err error) {
			mu.Lock()
			defer mu.Unlock()
			results[c.Id] = err
		},
	})
	require.NoError(t, err)
	require.Len(t, outs, len(calls))
	for i, o := range outs {
		assert.Equal(t, calls[i].Id, *o.ToolCallId, "order kept")
	}
	m := outputsByID(t, outs)
	assert.Equal(t, "sunny in Paris", m["c1"])
	assert.JSONEq(t, `{"error":"database is down"}`, m["c2"])
	assert.JSONEq(t, `{"error":"tool boom panicked: index out of range"}`, m["c3"])
	assert.JSONEq(t, `{"error":"unknown tool \"nope\": available tools are get_weather, fail, boom"}`, m["c4"])
	assert.Contains(t, m["c5"], `invalid arguments for get_weather`)
	assert.Contains(t, m["c5"], `town`)
	assert.Contains(t, m["c6"], `tool call type \"code_interpreter\" is not supported`)
	assert.ElementsMatch(t, []string{"c1", "c2", "c3", "c4", "c5", "c6"}, started)

	assert.NoError(t, results["c1"])
	var pe *PanicError
	require.ErrorAs(t, results["c3"], &pe)
	assert.Equal(t, "boom", pe.Tool)
	assert.Equal(t, "index out of range", pe.Value)
	assert.Contains(t, string(pe.Stack), "helpers")
	assert.NotContains(t, m["c3"], "goroutine", "no stack trace is sent to the model")
	assert.ErrorIs(t, results["c4"], ErrUnknownTool)
	assert.ErrorIs(t, results["c5"], ErrInvalidArguments)
	assert.ErrorIs(t, results["c6"], ErrUnknownTool)
}

// FormatError decides the error output; a panicking formatter falls back to
// the default.
func TestExecuteFormatError(t *testing.T) {
	sentinel := errors.New("sentinel")
	reg := MustRegistry(
		Func("fail", "", func(context.Context, emptyArgs) (string, error) { return "", fmt.Errorf("wrapped: %w", sentinel) }),
		Func("panic_err", "", func(context.Context, emptyArgs) (string, error) { panic(sentinel) }),
	)
	outs, err := reg.Execute(context.Background(), []gen.RunToolCallObject{tlCall("a", "fail", "{}"), tlCall("b", "panic_err", "{}")},
		ExecOptions{FormatError: func(name string, err error) string {
			return fmt.Sprintf("ERROR in %s (sentinel=%v)", name, errors.Is(err, sentinel))
		}})
	require.NoError(t, err)
	m := outputsByID(t, outs)
	assert.Equal(t, "ERROR in fail (sentinel=true)", m["a"])
	assert.Equal(t, "ERROR in panic_err (sentinel=true)", m["b"], "PanicError unwraps an error value")

	outs, err = reg.Execute(context.Background(), []gen.RunToolCallObject{tlCall("a", "fail", "{}")},
		ExecOptions{FormatError: func(string, error) string { panic("bad formatter") }})
	require.NoError(t, err)
	assert.JSONEq(t, `{"error":"wrapped: sentinel"}`, *outs[0].Output)
}

// At most Concurrency handlers run at once, and all of them do run at once
// up to that bound (proved with synctest.Wait, not timing).
func TestExecuteConcurrencyBound(t *testing.T) {
	for _, limit := range []int{1, 3, 0} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var inFlight, peak atomic.Int32
				release := make(chan struct{})
				reg := MustRegistry(Func("slow", "", func(ctx context.Context, _ emptyArgs) (string, error) {
					n := inFlight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					<-release
					inFlight.Add(-1)
					return "done", nil
				}))
				calls := make([]gen.RunToolCallObject, 12)
				for i := range calls {
					calls[i] = tlCall(fmt.Sprint("c", i), "slow", "{}")
				}
				var outs []gen.SubmitToolOutputsRunRequestToolOutput
				var err error
				finished := make(chan struct{})
				go func() {
					outs, err = reg.Execute(context.Background(), calls, ExecOptions{Concurrency: limit})
					close(finished)
				}()
				want := int32(limit)
				if limit == 0 {
					want = DefaultConcurrency
				}
				synctest.Wait()
				assert.Equal(t, want, inFlight.Load(), "exactly the bound is running")
				close(release)
				<-finished
				require.NoError(t, err)
				assert.Len(t, outs, 12)
				assert.Equal(t, want, peak.Load())
			})
		})
	}
}

// A cancelled ctx stops Execute: no new handlers start, running ones see the
// cancellation, and ctx.Err() is returned.
func TestExecuteCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var started atomic.Int32
		reg := MustRegistry(Func("wait", "", func(ctx context.Context, _ emptyArgs) (string, error) {
			started.Add(1)
			<-ctx.Done()
			return "", ctx.Err()
		}))
		ctx, cancel := context.WithCancel(context.Background())
		calls := []gen.RunToolCallObject{tlCall("a", "wait", "{}"), tlCall("b", "wait", "{}"), tlCall("c", "wait", "{}")}
		time.AfterFunc(time.Second, cancel)
		outs, err := reg.Execute(ctx, calls, ExecOptions{Concurrency: 2})
		assert.Nil(t, outs)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, int32(2), started.Load(), "the third call never started")

		outs, err = reg.Execute(ctx, calls, ExecOptions{})
		assert.Nil(t, outs)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, int32(2), started.Load())
	})
}

func TestDefaultFormatError(t *testing.T) {
	assert.Equal(t, `{"error":"say \"hi\"\n"}`, DefaultFormatError("x", errors.New("say \"hi\"\n")))
}

// A panicking OnToolCall hook is recovered like a panicking handler: that
// call gets an error output (the handler does not run), the others run, and
// a panicking OnToolResult changes nothing.
func TestExecuteHookPanics(t *testing.T) {
	tests := []struct {
		name       string
		onCall     func(context.Context, gen.RunToolCallObject)
		onResult   func(context.Context, gen.RunToolCallObject, string, error)
		wantA      string // output of call a (its hook panics when onCall does)
		wantRanA   bool
		wantResult bool // OnToolResult saw a *PanicError for a
	}{
		{
			name: "OnToolCall panics for one call",
			onCall: func(_ context.Context, c gen.RunToolCallObject) {
				if c.Id == "a" {
					panic("metrics backend gone")
				}
			},
			wantA:      `{"error":"OnToolCall hook for tool echo panicked: metrics backend gone"}`,
			wantResult: true,
		},
		{
			name:     "OnToolResult panics",
			onResult: func(context.Context, gen.RunToolCallObject, string, error) { panic("logger closed") },
			wantA:    `"a"`, wantRanA: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			ran := map[string]bool{}
			var resultErr error
			reg := MustRegistry(Func("echo", "", func(_ context.Context, a struct {
				ID string `json:"id"`
			}) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				ran[a.ID] = true
				return `"` + a.ID + `"`, nil
			}))
			onResult := tt.onResult
			if onResult == nil {
				onResult = func(_ context.Context, c gen.RunToolCallObject, _ string, err error) {
					if c.Id == "a" {
						resultErr = err
					}
				}
			}
			outs, err := reg.Execute(t.Context(), []gen.RunToolCallObject{tlCall("a", "echo", `{"id":"a"}`), tlCall("b", "echo", `{"id":"b"}`)},
				ExecOptions{OnToolCall: tt.onCall, OnToolResult: onResult})
			require.NoError(t, err)
			m := outputsByID(t, outs)
			assert.JSONEq(t, tt.wantA, m["a"])
			assert.Equal(t, `"b"`, m["b"], "the other call is unaffected")
			assert.Equal(t, tt.wantRanA, ran["a"])
			assert.True(t, ran["b"])
			if tt.wantResult {
				var pe *PanicError
				require.ErrorAs(t, resultErr, &pe)
				assert.Equal(t, "OnToolCall", pe.Hook)
				assert.Equal(t, "echo", pe.Tool)
				assert.NotEmpty(t, pe.Stack)
			}
		})
	}
}

// CallTimeout bounds each call: a handler that ignores its ctx is abandoned
// at the timeout with an error output (the others keep their outputs), one
// that honours ctx ends there itself; the default is DefaultCallTimeout and
// a negative value waits as long as the handler takes.
func TestExecuteCallTimeout(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration
		honoursCtx bool
		returnAt   time.Duration // virtual time at which Execute returns
		abandoned  bool          // the output is ErrToolTimeout's
	}{
		{name: "handler ignores ctx", timeout: 2 * time.Second, returnAt: 2 * time.Second, abandoned: true},
		{name: "default timeout", timeout: 0, returnAt: DefaultCallTimeout, abandoned: true},
		{name: "handler honours ctx", timeout: 2 * time.Second, honoursCtx: true, returnAt: 2 * time.Second, abandoned: true},
		{name: "no bound", timeout: -1, returnAt: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				stuckDone := make(chan error, 1)
				reg := MustRegistry(
					Func("stuck", "", func(ctx context.Context, _ emptyArgs) (string, error) {
						defer func() { stuckDone <- context.Cause(ctx) }()
						if tt.honoursCtx {
							<-ctx.Done()
							return "", fmt.Errorf("stuck gave up: %w", context.Cause(ctx))
						}
						<-release // ignores ctx
						return "late", nil
					}),
					Func("quick", "", func(context.Context, emptyArgs) (string, error) { return "fine", nil }),
				)
				if tt.timeout < 0 {
					time.AfterFunc(time.Hour, func() { close(release) })
				}
				var resultErr error
				start := time.Now()
				outs, err := reg.Execute(t.Context(), []gen.RunToolCallObject{tlCall("s", "stuck", "{}"), tlCall("q", "quick", "{}")},
					ExecOptions{CallTimeout: tt.timeout, OnToolResult: func(_ context.Context, c gen.RunToolCallObject, _ string, err error) {
						if c.Id == "s" {
							resultErr = err
						}
					}})
				require.NoError(t, err)
				assert.Equal(t, tt.returnAt, time.Since(start))
				m := outputsByID(t, outs)
				assert.Equal(t, "fine", m["q"])
				if tt.abandoned {
					require.ErrorIs(t, resultErr, ErrToolTimeout)
					assert.JSONEq(t, fmt.Sprintf(`{"error":"tool call timed out: stuck did not return within %v"}`, tt.returnAt), m["s"])
					// The abandoned handler's ctx was cancelled at the
					// timeout with ErrToolTimeout as its cause; it ends
					// when it returns (at once when it honours ctx), and
					// its result is dropped.
					if !tt.honoursCtx {
						close(release)
					}
					assert.Equal(t, ErrToolTimeout, <-stuckDone)
				} else {
					assert.NoError(t, resultErr)
					assert.Equal(t, "late", m["s"])
				}
				synctest.Wait() // every goroutine has ended: nothing is left behind
			})
		})
	}
}
