package helpers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen"
)

// Tool is one function tool: its definition (sent to the API in an
// assistant's or run's tools list) and its handler (run when the model asks
// for the function). Build one with Func (typed) or RawFunc (raw JSON), or
// implement it yourself. Call must be safe for concurrent use.
type Tool interface {
	// Name is the function name the model calls, e.g. "get_weather".
	Name() string
	// Definition is the "function" tool with its JSON Schema parameters.
	Definition() gen.AssistantTool
	// Call runs the function with the model's raw JSON arguments and
	// returns the output string sent back to the run. A non-nil error is
	// turned into an error output by Registry.Execute.
	Call(ctx context.Context, arguments string) (string, error)
}

// ErrUnknownTool is wrapped by the error Registry.Execute hands to
// ExecOptions.FormatError (and OnToolResult) when the model calls a function
// the registry does not have, or a tool call whose type is not "function".
var ErrUnknownTool = errors.New("unknown tool")

// ErrToolTimeout is wrapped by the error Registry.Execute hands to
// ExecOptions.FormatError (and OnToolResult) when a call did not return
// within ExecOptions.CallTimeout.
var ErrToolTimeout = errors.New("tool call timed out")

// ErrInvalidArguments is wrapped by the error a Func tool returns when the
// model's arguments are not valid JSON, do not match the schema derived from
// Args (a missing required property, an unknown property, a wrong type), or
// cannot be decoded into Args.
var ErrInvalidArguments = errors.New("invalid arguments")

// PanicError is the error Registry.Execute hands to ExecOptions.FormatError
// (and OnToolResult) when a handler, or the OnToolCall hook run before it,
// panics. Its Error text names the tool and the panic value but not the
// stack, so the default error output sent to the model carries no stack
// trace.
type PanicError struct {
	// Tool is the name of the tool that panicked, or whose OnToolCall hook
	// did.
	Tool string
	// Hook is "OnToolCall" when that hook panicked (the handler did not
	// run); empty when the handler panicked.
	Hook string
	// Value is the value passed to panic.
	Value any
	// Stack is the goroutine's stack at the time of the panic, for logs.
	Stack []byte
}

// Error returns "tool NAME panicked: VALUE", or "OnToolCall hook for tool
// NAME panicked: VALUE".
func (e *PanicError) Error() string {
	if e.Hook != "" {
		return fmt.Sprintf("%s hook for tool %s panicked: %v", e.Hook, e.Tool, e.Value)
	}
	return fmt.Sprintf("tool %s panicked: %v", e.Tool, e.Value)
}

// Unwrap returns the panic value when it is an error, else nil.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// validToolName reports whether name follows the API's rule for function
// names, ^[A-Za-z0-9_-]{1,64}$ (checked by hand: a package-level regexp
// would link the regexp engine into every program importing helpers).
func validToolName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// invalidTool is implemented by tools whose construction failed (Func with an
// Args type that has no JSON Schema); NewRegistry reports the error.
type invalidTool interface {
	constructionError() error
}

// functionTool builds the gen.AssistantTool for a FunctionObject.
func functionTool(def gen.FunctionObject) (gen.AssistantTool, error) {
	var t gen.AssistantTool
	err := t.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: def})
	return t, err
}

// rawTool is the Tool built by RawFunc.
type rawTool struct {
	def gen.FunctionObject
	fn  func(ctx context.Context, arguments string) (string, error)
	err error
}

// RawFunc makes a Tool from a function definition written by hand (its
// Parameters are sent as given; nil means the function takes no arguments)
// and a handler that receives the model's arguments as raw JSON and returns
// the output as is. A nil fn or an invalid name is reported by NewRegistry.
func RawFunc(def gen.FunctionObject, fn func(ctx context.Context, arguments string) (string, error)) Tool {
	t := &rawTool{def: def, fn: fn}
	if fn == nil {
		t.err = fmt.Errorf("helpers: tool %q: nil handler", def.Name)
	}
	return t
}

func (t *rawTool) Name() string { return t.def.Name }

func (t *rawTool) Definition() gen.AssistantTool {
	at, _ := functionTool(t.def) // marshalling a FunctionObject cannot fail for maps of JSON values
	return at
}

func (t *rawTool) Call(ctx context.Context, arguments string) (string, error) {
	if t.fn == nil {
		return "", t.err
	}
	return t.fn(ctx, arguments)
}

func (t *rawTool) constructionError() error { return t.err }

// funcTool is the Tool built by Func.
type funcTool[Args, Result any] struct {
	name, description string
	fn                func(ctx context.Context, args Args) (Result, error)
	params            gen.FunctionParameters
	schema            *argSchema
	err               error
}

// Func makes a typed Tool. The parameters JSON Schema is derived from Args
// with the rules of github.com/google/jsonschema-go's ForType (without
// linking it): Args must be a struct (or a pointer to one); properties take
// their names from the json tags, fields tagged omitempty or omitzero are
// optional and all others are required, unknown properties are not allowed
// (additionalProperties: false), and a `jsonschema:"..."` tag is the
// property's description. Pointers and slices also accept null; sized
// integers carry their range as minimum and maximum; maps are objects of
// their value's schema; time.Time is a string.
//
// Call decodes the arguments strictly: malformed JSON, a missing required
// property, an unknown property or a wrong type gives an error wrapping
// ErrInvalidArguments that tells the model what was wrong, and fn is not
// called. Empty arguments count as {}. The Result is sent as is when it is a
// string (or a type whose underlying type is string), otherwise encoded as
// JSON.
//
// An Args type that cannot be described by JSON Schema (a channel, a func, a
// non-struct) or an invalid name or nil fn does not panic here: NewRegistry
// reports it.
func Func[Args, Result any](name, description string, fn func(ctx context.Context, args Args) (Result, error)) Tool {
	t := &funcTool[Args, Result]{name: name, description: description, fn: fn}
	if fn == nil {
		t.err = fmt.Errorf("helpers: tool %q: nil handler", name)
		return t
	}
	params, schema, err := schemaFor[Args]()
	if err != nil {
		t.err = fmt.Errorf("helpers: tool %q: %w", name, err)
		return t
	}
	t.params, t.schema = params, schema
	return t
}

// schemaFor derives the parameters schema of Args.
func schemaFor[Args any]() (gen.FunctionParameters, *argSchema, error) {
	rt := reflect.TypeFor[Args]()
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt.Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("arguments type %s is not a struct; function parameters must be a JSON object", rt)
	}
	s, err := deriveSchema(rt)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving JSON Schema of %s: %w", rt, err)
	}
	params := gen.FunctionParameters(s.toParams())
	if _, ok := params["properties"]; !ok {
		// An empty struct: the API wants an explicit (empty) property list.
		params["properties"] = map[string]any{}
	}
	return params, s, nil
}

func (t *funcTool[Args, Result]) Name() string { return t.name }

func (t *funcTool[Args, Result]) Definition() gen.AssistantTool {
	def := gen.FunctionObject{Name: t.name}
	if t.description != "" {
		d := t.description
		def.Description = &d
	}
	if t.params != nil {
		p := t.params
		def.Parameters = &p
	}
	at, _ := functionTool(def)
	return at
}

func (t *funcTool[Args, Result]) constructionError() error { return t.err }

func (t *funcTool[Args, Result]) Call(ctx context.Context, arguments string) (string, error) {
	if t.err != nil {
		return "", t.err
	}
	args, err := t.decode(arguments)
	if err != nil {
		return "", err
	}
	res, err := t.fn(ctx, args)
	if err != nil {
		return "", err
	}
	if rv := reflect.ValueOf(res); rv.IsValid() && rv.Kind() == reflect.String {
		return rv.String(), nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return "", fmt.Errorf("encoding the result of %s: %w", t.name, err)
	}
	return string(b), nil
}

// decode checks arguments against the schema and decodes them into Args.
func (t *funcTool[Args, Result]) decode(arguments string) (Args, error) {
	var args Args
	raw := strings.TrimSpace(arguments)
	if raw == "" {
		raw = "{}"
	}
	var instance any
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&instance); err != nil {
		return args, fmt.Errorf("%w for %s: malformed JSON: %v", ErrInvalidArguments, t.name, err)
	}
	if dec.More() {
		return args, fmt.Errorf("%w for %s: malformed JSON: data after the arguments object", ErrInvalidArguments, t.name)
	}
	if _, ok := instance.(map[string]any); !ok {
		return args, fmt.Errorf("%w for %s: arguments must be a JSON object", ErrInvalidArguments, t.name)
	}
	if err := t.schema.validate(numbersToFloat(instance)); err != nil {
		msg := strings.TrimPrefix(err.Error(), "validating root: ")
		return args, fmt.Errorf("%w for %s: %s", ErrInvalidArguments, t.name, msg)
	}
	sd := json.NewDecoder(bytes.NewReader([]byte(raw)))
	sd.DisallowUnknownFields()
	target := any(&args)
	if rt := reflect.TypeFor[Args](); rt.Kind() == reflect.Pointer {
		// Args is *T: allocate the T so the decoder fills it.
		v := reflect.New(rt.Elem())
		reflect.ValueOf(&args).Elem().Set(v)
		target = v.Interface()
	}
	if err := sd.Decode(target); err != nil {
		return args, fmt.Errorf("%w for %s: %v", ErrInvalidArguments, t.name, err)
	}
	return args, nil
}

// numbersToFloat turns json.Number values into float64 (or int64 when
// exact) so the schema validator sees ordinary JSON values.
func numbersToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbersToFloat(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbersToFloat(e)
		}
		return x
	default:
		return v
	}
}

// Registry holds the function tools of an assistant or run: their
// definitions (Tools) and their handlers (Execute). It is built once with
// NewRegistry and is then safe for concurrent use.
type Registry struct {
	tools  []Tool
	byName map[string]Tool
}

// NewRegistry makes a Registry of tools, in the given order. It returns an
// error for a nil tool, an invalid name (the API allows letters, digits,
// underscores and dashes, up to 64), a duplicate name, or a tool whose
// construction failed (e.g. Func with an Args type that has no JSON Schema).
// No tools gives an empty registry, which answers every call with an error
// output.
func NewRegistry(tools ...Tool) (*Registry, error) {
	r := &Registry{byName: make(map[string]Tool, len(tools))}
	for i, t := range tools {
		if t == nil || (reflect.ValueOf(t).Kind() == reflect.Pointer && reflect.ValueOf(t).IsNil()) {
			return nil, fmt.Errorf("helpers: NewRegistry: tool %d is nil", i)
		}
		if it, ok := t.(invalidTool); ok {
			if err := it.constructionError(); err != nil {
				return nil, fmt.Errorf("helpers: NewRegistry: %w", err)
			}
		}
		name := t.Name()
		if !validToolName(name) {
			return nil, fmt.Errorf("helpers: NewRegistry: tool %d: invalid name %q (want 1 to 64 letters, digits, underscores or dashes)", i, name)
		}
		if _, dup := r.byName[name]; dup {
			return nil, fmt.Errorf("helpers: NewRegistry: duplicate tool name %q", name)
		}
		r.byName[name] = t
		r.tools = append(r.tools, t)
	}
	return r, nil
}

// MustRegistry is NewRegistry that panics on error, for package-level
// registries built from literals.
func MustRegistry(tools ...Tool) *Registry {
	r, err := NewRegistry(tools...)
	if err != nil {
		panic(err)
	}
	return r
}

// Tools returns the tools list for CreateAssistantRequest.Tools or
// CreateRunRequest.Tools, in registration order; a fresh slice each call.
func (r *Registry) Tools() []gen.AssistantTool {
	if r == nil {
		return nil
	}
	out := make([]gen.AssistantTool, len(r.tools))
	for i, t := range r.tools {
		out[i] = t.Definition()
	}
	return out
}

// Lookup returns the tool registered under name.
func (r *Registry) Lookup(name string) (Tool, bool) {
	if r == nil {
		return nil, false
	}
	t, ok := r.byName[name]
	return t, ok
}

// DefaultConcurrency is the number of handlers Registry.Execute runs at once
// when ExecOptions.Concurrency is 0.
const DefaultConcurrency = 8

// DefaultCallTimeout bounds one tool call when ExecOptions.CallTimeout is
// 0: 5 minutes, half the time a run waits for its tool outputs before it
// expires, so the outputs can still be submitted.
const DefaultCallTimeout = 5 * time.Minute

// ExecOptions configures Registry.Execute. The zero value is ready to use.
type ExecOptions struct {
	// Concurrency is the most handlers run at once. Default (0 or less): 8.
	Concurrency int
	// FormatError turns a failed call into the output sent to the model.
	// name is the function the model called; err is the handler's error, a
	// *PanicError, or an error wrapping ErrUnknownTool or
	// ErrInvalidArguments. Default: DefaultFormatError, {"error":"..."}.
	FormatError func(name string, err error) string
	// OnToolCall, when set, is called before each handler runs (not for
	// outputs replayed from a loop's cache), with the call's ctx (bounded by
	// CallTimeout). It is called from several goroutines at once. A panic in
	// it is recovered like a handler's: the handler does not run and the
	// call's output is the error output of a *PanicError whose Hook is
	// "OnToolCall". Default: nil.
	OnToolCall func(ctx context.Context, call gen.RunToolCallObject)
	// OnToolResult, when set, is called after each call with the output
	// sent to the model and the error (nil on success) it was made from. It
	// is called from several goroutines at once. A panic in it is recovered
	// and ignored: the output stays as it was. Default: nil.
	OnToolResult func(ctx context.Context, call gen.RunToolCallObject, output string, err error)
	// CallTimeout bounds each call (OnToolCall and the handler together).
	// When it runs out before the handler returns, Execute stops waiting:
	// the call's output is the error output of an error wrapping
	// ErrToolTimeout, and the handler's ctx is cancelled with that cause
	// (context.Cause), so a handler that ignores its ctx cannot hang Execute
	// or a tool loop. The abandoned handler keeps running on its own
	// goroutine until it returns (Go cannot stop it): one that honours ctx
	// ends at once and leaves nothing behind; one that does not holds its
	// goroutine until it returns. Either way its result is dropped, it no
	// longer counts against Concurrency, and OnToolResult is not called for
	// it again. Default (0): DefaultCallTimeout (5 minutes); negative: no
	// bound (the handler runs on Execute's goroutine, which waits for it,
	// as it does when ctx ends).
	CallTimeout time.Duration
}

// DefaultFormatError is the default ExecOptions.FormatError: the JSON object
// {"error": "<err text>"}.
func DefaultFormatError(name string, err error) string {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	return string(b)
}

// Execute runs calls and returns one tool output per call, in the calls'
// order, ready for SubmitToolOutputsRunRequest.ToolOutputs. The handlers run
// concurrently, at most opts.Concurrency at once, each with ctx. A handler
// error, a panic (recovered), an unknown function name, a call type other
// than "function" and bad arguments all become error outputs made by
// opts.FormatError, so the model can see and correct them.
//
// Execute returns an error only when ctx is done: then it starts no more
// handlers, waits for the running ones to return (handlers must honour ctx;
// one that does not is waited for at most until its CallTimeout) and
// returns nil and ctx.Err().
func (r *Registry) Execute(ctx context.Context, calls []gen.RunToolCallObject, opts ExecOptions) ([]gen.SubmitToolOutputsRunRequestToolOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	format := opts.FormatError
	if format == nil {
		format = DefaultFormatError
	}
	outputs := make([]string, len(calls))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range calls {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outputs[i] = r.callOne(ctx, calls[i], opts, format)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]gen.SubmitToolOutputsRunRequestToolOutput, len(calls))
	for i, c := range calls {
		out[i] = toolOutput(c.Id, outputs[i])
	}
	return out, nil
}

// toolOutput builds one submit item.
func toolOutput(id, output string) gen.SubmitToolOutputsRunRequestToolOutput {
	return gen.SubmitToolOutputsRunRequestToolOutput{ToolCallId: &id, Output: &output}
}

// callOne runs one call, turning every failure into an error output, and
// reports it to OnToolResult.
func (r *Registry) callOne(ctx context.Context, call gen.RunToolCallObject, opts ExecOptions, format func(string, error) string) string {
	name := call.Function.Name
	output, err := r.callBounded(ctx, call, opts)
	if err != nil {
		output = safeFormat(format, name, err)
	}
	if opts.OnToolResult != nil {
		func() {
			defer func() { _ = recover() }() // an observer's panic changes nothing
			opts.OnToolResult(ctx, call, output, err)
		}()
	}
	return output
}

// callResult is what invoke returns, passed over a channel.
type callResult struct {
	output string
	err    error
}

// callBounded runs invoke bounded by opts.CallTimeout: on its own goroutine,
// which it abandons when the handler has not returned in time.
func (r *Registry) callBounded(ctx context.Context, call gen.RunToolCallObject, opts ExecOptions) (string, error) {
	timeout := opts.CallTimeout
	if timeout == 0 {
		timeout = DefaultCallTimeout
	}
	if timeout < 0 {
		return r.invoke(ctx, call, opts)
	}
	// One timer decides, so the outcome does not depend on which of two
	// timers at the same instant fires first: the handler's ctx has no
	// deadline of its own and is cancelled with ErrToolTimeout as its cause.
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan callResult, 1) // buffered: an abandoned handler's send never blocks
	go func() {
		output, err := r.invoke(cctx, call, opts)
		done <- callResult{output, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.output, res.err
	case <-timer.C:
		select {
		case res := <-done: // it returned just in time
			return res.output, res.err
		default:
		}
		cancel(ErrToolTimeout)
		return "", fmt.Errorf("%w: %s did not return within %v", ErrToolTimeout, call.Function.Name, timeout)
	}
}

// invoke runs OnToolCall and the handler, turning a panic in either into a
// *PanicError.
func (r *Registry) invoke(ctx context.Context, call gen.RunToolCallObject, opts ExecOptions) (output string, err error) {
	name := call.Function.Name
	hook := ""
	defer func() {
		if p := recover(); p != nil {
			output, err = "", &PanicError{Tool: name, Hook: hook, Value: p, Stack: debug.Stack()}
		}
	}()
	if opts.OnToolCall != nil {
		hook = "OnToolCall"
		opts.OnToolCall(ctx, call)
		hook = ""
	}
	if call.Type != "" && call.Type != "function" {
		return "", fmt.Errorf("%w: tool call type %q is not supported", ErrUnknownTool, call.Type)
	}
	t, ok := r.Lookup(name)
	if !ok {
		return "", fmt.Errorf("%w %q: available tools are %s", ErrUnknownTool, name, r.names())
	}
	return t.Call(ctx, call.Function.Arguments)
}

// safeFormat calls a user FormatError, falling back to the default when it
// panics.
func safeFormat(format func(string, error) string, name string, err error) (s string) {
	defer func() {
		if recover() != nil {
			s = DefaultFormatError(name, err)
		}
	}()
	return format(name, err)
}

// names lists the registered names for error messages.
func (r *Registry) names() string {
	if r == nil || len(r.tools) == 0 {
		return "(none)"
	}
	ns := make([]string, len(r.tools))
	for i, t := range r.tools {
		ns[i] = t.Name()
	}
	return strings.Join(ns, ", ")
}
