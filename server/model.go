package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval/cite"
)

// Model writes the assistant's side of a run. The run engine calls Respond
// once per model round: when a run starts, and again each time the tool
// outputs it asked for have been submitted.
//
// Respond gets everything a chat model needs in ModelInput and returns either
// a reply (ModelOutput.Text), tool calls (ModelOutput.ToolCalls), or both.
// While it writes the reply it may call emit with successive fragments of the
// text; the engine turns each call into a thread.message.delta event. A model
// that does not stream may ignore emit: the engine then sends the whole Text
// as one delta.
//
// The engine maps the outcome onto the run:
//   - tool calls: the run moves to requires_action (at most one round of
//     calls is pending at a time);
//   - text only: the run completes with one assistant message;
//   - Truncated, or usage beyond the run's max_prompt_tokens or
//     max_completion_tokens: the run ends incomplete;
//   - an error: the run fails. A *ModelError sets the run's last_error code
//     and message; any other error gives code server_error and a generic
//     message (the error itself is logged, not shown). When ctx's deadline
//     (the run's expires_at) has passed the run expires instead; when the run
//     is cancelled ctx is cancelled and the result is ignored.
//
// Respond must return promptly once ctx is done. It is called concurrently
// for different runs, so implementations must be safe for concurrent use.
// Respond must not keep in or its slices after it returns, and must not call
// emit after it returns.
type Model interface {
	Respond(ctx context.Context, in *ModelInput, emit func(delta string)) (*ModelOutput, error)
}

// ModelInput is what the model sees for one round of a run.
//
// A Chat Completions backend maps it like this: Run.Instructions becomes the
// system message; Messages (text parts as text, image_url and image_file parts
// as image parts) become the user and assistant messages; Functions with
// Run.ToolChoice and Run.ParallelToolCalls become tools, tool_choice and
// parallel_tool_calls; Run.Temperature, Run.TopP, Run.ResponseFormat and
// Run.Model map one to one; Run.MaxCompletionTokens minus Used.CompletionTokens
// is the remaining completion budget; each round of ToolOutputs becomes one
// assistant message with tool_calls followed by one tool message per output;
// FileSearch becomes a function named FileSearchToolName; max_prompt_tokens
// drops the oldest messages by their tokens (package tokenize).
type ModelInput struct {
	// Assistant is the assistant that runs, as it was when the run was created.
	Assistant gen.AssistantObject
	// Run is the run as it is now. Its fields already merge the request and
	// the assistant: Instructions includes additional_instructions; Model,
	// Tools, Temperature, TopP, ResponseFormat, ToolChoice, ParallelToolCalls,
	// TruncationStrategy and the max_*_tokens caps are the effective values.
	Run gen.RunObject
	// Messages is the thread's history, oldest first, after the run's
	// truncation_strategy (last_messages keeps the newest N; auto keeps all).
	// It includes the messages this run wrote in earlier rounds.
	Messages []gen.MessageObject
	// Functions are the run's function tools, in the order of Run.Tools.
	// Other tool kinds are in Run.Tools only; file_search also comes as
	// FileSearch when there is something to search.
	Functions []gen.FunctionObject
	// ToolOutputs are the tool calls the model made in earlier rounds of this
	// run, each with the output that was submitted (or, for file_search,
	// that the server wrote), oldest round first and in call order within a
	// round. Empty on the first round.
	ToolOutputs []ToolOutput
	// Used is the usage of the earlier rounds of this run.
	Used Usage
	// FileSearch is the run's file_search tool, when the run has it and the
	// assistant or the thread has vector stores to search; nil otherwise.
	// The model searches by calling FileSearchToolName (see FileSearch).
	FileSearch *FileSearch
}

// FileSearchToolName is the name a model calls the file_search tool by: a
// ToolCall with this Name and Arguments {"query": "..."} (or {"queries":
// ["...", ...]}). The engine runs such calls itself, without
// requires_action: the run gets a tool_calls step with a file_search call,
// the results become the call's ToolOutput (Output for a chat model, and
// Results), and the model is asked again in the same round of the run.
const FileSearchToolName = "file_search"

// FileSearch is the file_search tool as a model round sees it.
type FileSearch struct {
	// VectorStoreIDs are the vector stores searched: the assistant's, then
	// the thread's (tool_resources.file_search.vector_store_ids).
	VectorStoreIDs []string
	// MaxNumResults bounds the results of one search: the tool's
	// file_search.max_num_results, default 20.
	MaxNumResults int
	// Ranker and ScoreThreshold are the tool's ranking_options (default
	// "auto" and 0).
	Ranker         string
	ScoreThreshold float64
}

// FileSearchResult is one file found by a file_search call.
type FileSearchResult struct {
	// FileID and Filename name the file.
	FileID, Filename string
	// Score is the file's best chunk's score, 0 to 1.
	Score float64
	// Text is the file's matching chunks, best first, joined by blank lines.
	Text string
}

// FunctionNames returns the names of the run's function tools.
func (in *ModelInput) FunctionNames() []string {
	names := make([]string, 0, len(in.Functions))
	for _, f := range in.Functions {
		names = append(names, f.Name)
	}
	return names
}

// LastUserText returns the text of the newest user message of Messages (its
// text parts joined by newlines), or "" when there is none.
func (in *ModelInput) LastUserText() string {
	for i := len(in.Messages) - 1; i >= 0; i-- {
		if in.Messages[i].Role == gen.MessageObjectRoleUser {
			return MessageText(in.Messages[i])
		}
	}
	return ""
}

// MessageText returns the text parts of m joined by newlines; image and
// refusal parts are left out.
func MessageText(m gen.MessageObject) string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == gen.MessageContentTypeText {
			parts = append(parts, c.Text.Value)
		}
	}
	return strings.Join(parts, "\n")
}

// ToolCall is one function call a model asks for.
type ToolCall struct {
	// ID identifies the call; the client echoes it with the output. When a
	// model leaves it empty the engine assigns a fresh "call_..." id.
	ID string
	// Name is the function's name. It must be one of the run's function
	// tools, or the run fails with server_error.
	Name string
	// Arguments is the call's arguments as a JSON object. Default: "{}".
	Arguments string
}

// ToolOutput is a tool call of an earlier round with its submitted output.
type ToolOutput struct {
	// Call is the call as the model made it (with the id the engine used).
	Call ToolCall
	// Output is what the client submitted for it.
	Output string
	// Round numbers the model rounds of the run from 0; calls of one round
	// share it.
	Round int
	// Results are a file_search call's results, best first, numbered from 0
	// as Output numbers them; nil for function calls. A citation of result
	// n of the output at index m of ModelInput.ToolOutputs is the marker
	// 【m:n†filename】 (cite.Marker); the engine turns the markers of the
	// answer into file_citation annotations.
	Results []FileSearchResult
}

// Usage counts the tokens of one model round or of a whole run.
type Usage struct {
	// PromptTokens are the tokens the model read.
	PromptTokens int
	// CompletionTokens are the tokens the model wrote.
	CompletionTokens int
}

// Total returns PromptTokens + CompletionTokens.
func (u Usage) Total() int { return u.PromptTokens + u.CompletionTokens }

// ModelOutput is the result of one model round.
type ModelOutput struct {
	// Text is the full reply, written as one assistant message. It is
	// authoritative: the emitted deltas are only for streaming. Empty when the
	// round only calls tools.
	Text string
	// ToolCalls are the function calls the model asks for. When not empty the
	// run requires action. Default: none.
	ToolCalls []ToolCall
	// Usage is the round's token usage.
	Usage Usage
	// Truncated reports that the model stopped at a token limit (a Chat
	// Completions finish_reason of "length"): the run ends incomplete.
	Truncated bool
}

// Model error codes: the values of a run's last_error.code.
const (
	// ModelErrServer is a failure of the model or its backend.
	ModelErrServer = "server_error"
	// ModelErrRateLimit is a rate limit or quota error of the backend.
	ModelErrRateLimit = "rate_limit_exceeded"
	// ModelErrInvalidPrompt is a prompt the model refuses.
	ModelErrInvalidPrompt = "invalid_prompt"
)

// ModelError is an error a Model returns to fail the run with a given
// last_error. Code is one of the ModelErr constants (others are reported as
// server_error); Message is shown to the client as is, so it must not carry
// secrets. Err, if set, is the underlying cause (logged, not shown).
type ModelError struct {
	Code    string
	Message string
	Err     error
}

// Error returns the code and message, and the cause when there is one.
func (e *ModelError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("model error %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("model error %s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *ModelError) Unwrap() error { return e.Err }

// ModelFunc adapts a function to the Model interface.
type ModelFunc func(ctx context.Context, in *ModelInput, emit func(delta string)) (*ModelOutput, error)

// Respond calls f.
func (f ModelFunc) Respond(ctx context.Context, in *ModelInput, emit func(delta string)) (*ModelOutput, error) {
	return f(ctx, in, emit)
}

// Scripted returns the default model: deterministic, instant, no network.
// Its rules, for each model round:
//
//  1. After tool outputs were submitted, the reply quotes each output of the
//     latest round, one line per call: `get_weather returned: {"temp":21}`.
//  2. Otherwise, when the latest user message names one or more of the run's
//     function tools as whole words, the model calls each of them once, in
//     order of appearance (see ParseToolCalls); a call's arguments are the
//     JSON object written right after the name, or {}. Example:
//     `please get_weather {"city":"Paris"}`. tool_choice changes this: "none"
//     never calls tools; "required" calls the first function tool with {} when
//     none is named; a named function is called (once) whether named or not.
//  3. Otherwise, when the round has file_search (ModelInput.FileSearch) and
//     tool_choice is not "none", the model searches for the latest user
//     message: one call of FileSearchToolName with {"query": <text>}. On the
//     round after a search (rule 1 does not apply to file_search outputs),
//     the reply is the first sentence of the best result's text (Markdown
//     heading lines left out) followed by
//     one citation of it, 【m:0†filename】 (m: the output's index in
//     ToolOutputs), which the engine turns into a file_citation annotation:
//     `Penguins eat krill. 【0:0†penguins.md】`. With no result the reply is
//     `I found nothing about that in the files.`
//  4. Otherwise the reply echoes the latest user message: `You said: <text>`
//     (`You said nothing.` when there is none).
//
// Replies are emitted word by word, at once (the server's default
// scripted model, when Options.Model is not set, waits Options.WordDelay
// between two words). Usage counts words: prompt tokens are the
// words of the instructions, the messages and the tool outputs; completion
// tokens are the words of the reply (or of the calls' names and arguments).
// When the run has max_completion_tokens and the reply is longer, it is cut
// to that many words and the run ends incomplete.
func Scripted() Model { return scripted{} }

// scripted is the scripted model; pace is waited between two words of a
// reply, so that a reply streams for a while as a real model's does.
type scripted struct{ pace time.Duration }

func (m scripted) Respond(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prompt := countWords(in.Run.Instructions)
	for _, m := range in.Messages {
		prompt += countWords(MessageText(m))
	}
	for _, o := range in.ToolOutputs {
		prompt += countWords(o.Output)
	}
	out := &ModelOutput{Usage: Usage{PromptTokens: prompt}}

	if n := len(in.ToolOutputs); n > 0 && in.ToolOutputs[n-1].Call.Name == FileSearchToolName {
		return m.reply(ctx, in, out, scriptedAnswer(n-1, in.ToolOutputs[n-1].Results), emit)
	}
	if n := len(in.ToolOutputs); n > 0 {
		last := in.ToolOutputs[n-1].Round
		var lines []string
		for _, o := range in.ToolOutputs {
			if o.Round == last {
				lines = append(lines, o.Call.Name+" returned: "+o.Output)
			}
		}
		return m.reply(ctx, in, out, strings.Join(lines, "\n"), emit)
	}

	text := in.LastUserText()
	if calls := scriptedCalls(in, text); len(calls) > 0 {
		for _, c := range calls {
			out.ToolCalls = append(out.ToolCalls, ToolCall{Name: c.Name, Arguments: c.Arguments})
			out.Usage.CompletionTokens += 1 + countWords(c.Arguments)
		}
		return out, nil
	}
	if in.FileSearch != nil && strings.TrimSpace(text) != "" {
		if mode, _ := toolChoice(in.Run.ToolChoice); mode != "none" {
			args, _ := json.Marshal(map[string]string{"query": text})
			out.ToolCalls = []ToolCall{{Name: FileSearchToolName, Arguments: string(args)}}
			out.Usage.CompletionTokens = 1 + countWords(text)
			return out, nil
		}
	}
	if strings.TrimSpace(text) == "" {
		return m.reply(ctx, in, out, "You said nothing.", emit)
	}
	return m.reply(ctx, in, out, "You said: "+text, emit)
}

// scriptedAnswer is the scripted model's answer from the results of the
// file_search output at index m: the best result's first sentence and its
// citation.
func scriptedAnswer(m int, results []FileSearchResult) string {
	if len(results) == 0 {
		return "I found nothing about that in the files."
	}
	return firstSentence(results[0].Text) + " " + cite.Marker(m, 0, results[0].Filename)
}

// firstSentence returns text's first sentence (up to the first ., ! or ?
// followed by a space or the end), leaving out Markdown heading lines, with
// its white space collapsed; at most 300 bytes of it, cut at a word.
func firstSentence(text string) string {
	var words []string
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			words = append(words, strings.Fields(line)...)
		}
	}
	var b strings.Builder
	for _, w := range words {
		if b.Len()+len(w) > 300 && b.Len() > 0 {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		if strings.HasSuffix(w, ".") || strings.HasSuffix(w, "!") || strings.HasSuffix(w, "?") {
			break
		}
	}
	return b.String()
}

// scriptedCalls applies the tool-call rule and tool_choice.
func scriptedCalls(in *ModelInput, text string) []ScriptedCall {
	names := in.FunctionNames()
	if len(names) == 0 {
		return nil
	}
	mode, forced := toolChoice(in.Run.ToolChoice)
	if mode == "none" {
		return nil
	}
	calls := ParseToolCalls(text, names)
	if forced != "" {
		for _, c := range calls {
			if c.Name == forced {
				return []ScriptedCall{c}
			}
		}
		for _, n := range names {
			if n == forced {
				return []ScriptedCall{{Name: forced, Arguments: "{}"}}
			}
		}
		return nil
	}
	if len(calls) == 0 && mode == "required" {
		return []ScriptedCall{{Name: names[0], Arguments: "{}"}}
	}
	if len(calls) > 1 && !in.Run.ParallelToolCalls {
		calls = calls[:1]
	}
	return calls
}

// toolChoice decodes a tool_choice: the mode ("auto", "none", "required",
// or "" when a tool is named) and a forced function name.
func toolChoice(tc *gen.AssistantsApiToolChoiceOption) (mode, function string) {
	if tc == nil {
		return "auto", ""
	}
	if s, err := tc.AsToolChoiceMode(); err == nil {
		return string(s), ""
	}
	if named, err := tc.AsAssistantsNamedToolChoice(); err == nil {
		if f, err := named.AsAssistantsNamedToolChoiceFunction(); err == nil && f.Type == "function" && f.Function != nil {
			return "", f.Function.Name
		}
		return "", ""
	}
	return "auto", ""
}

// reply emits text word by word, m.pace apart, applying the completion
// budget.
func (m scripted) reply(ctx context.Context, in *ModelInput, out *ModelOutput, text string, emit func(string)) (*ModelOutput, error) {
	words := splitWords(text)
	if limit := in.Run.MaxCompletionTokens; limit != nil {
		budget := max(*limit-in.Used.CompletionTokens, 0)
		if len(words) > budget {
			words = words[:budget]
			out.Truncated = true
		}
	}
	var b strings.Builder
	for i, w := range words {
		if i > 0 && m.pace > 0 && !sleep(ctx, m.pace) {
			return nil, ctx.Err()
		}
		b.WriteString(w)
		emit(w)
	}
	out.Text = b.String()
	out.Usage.CompletionTokens = len(words)
	return out, nil
}

// splitWords cuts text into words, each with the white space that follows
// it (white space before the first word stays with it).
func splitWords(text string) []string {
	var out []string
	start, inWord, seenWord := 0, false, false
	for i, r := range text {
		space := unicode.IsSpace(r)
		if !space && !inWord && seenWord {
			out = append(out, text[start:i])
			start = i
		}
		if !space {
			seenWord = true
		}
		inWord = !space
	}
	if seenWord {
		out = append(out, text[start:])
	}
	return out
}

func countWords(s string) int { return len(strings.Fields(s)) }

// Turn is one scripted model round for Script.
type Turn struct {
	// Text is the reply, emitted word by word. Default: none.
	Text string
	// ToolCalls are the calls the round makes; ids left empty are assigned by
	// the engine. Default: none.
	ToolCalls []ToolCall
	// Err, when set, is returned instead of an output, after Text was
	// emitted (use a *ModelError to choose the run's last_error). Default: nil.
	Err error
	// Delay is waited before answering (or until the run's context ends, in
	// which case the context's error is returned). Default: 0.
	Delay time.Duration
	// Usage is reported as is; when zero, words are counted as Scripted does.
	Usage Usage
	// Truncated marks the reply as cut at a token limit (the run ends
	// incomplete). Default: false.
	Truncated bool
}

// ScriptModel is a Model that plays back a fixed list of turns, one per
// model round, across all runs, in order. When the turns run out each further
// round fails the run with a server_error ModelError. It records the input of
// every round. Create it with Script; it is safe for concurrent use.
type ScriptModel struct {
	mu     sync.Mutex
	turns  []Turn
	next   int
	inputs []ModelInput
}

// Script returns a ScriptModel that answers with turns in order.
func Script(turns ...Turn) *ScriptModel {
	return &ScriptModel{turns: append([]Turn(nil), turns...)}
}

// errScriptExhausted is the ModelError of a round with no turn left.
var errScriptExhausted = &ModelError{Code: ModelErrServer, Message: "The scripted model has no turn left."}

// Respond plays the next turn.
func (m *ScriptModel) Respond(ctx context.Context, in *ModelInput, emit func(string)) (*ModelOutput, error) {
	m.mu.Lock()
	m.inputs = append(m.inputs, cloneInput(in))
	if m.next >= len(m.turns) {
		m.mu.Unlock()
		return nil, errScriptExhausted
	}
	t := m.turns[m.next]
	m.next++
	m.mu.Unlock()

	if t.Delay > 0 && !sleep(ctx, t.Delay) {
		return nil, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, w := range splitWords(t.Text) {
		emit(w)
	}
	if t.Err != nil {
		return nil, t.Err
	}
	out := &ModelOutput{Text: t.Text, Truncated: t.Truncated, Usage: t.Usage}
	out.ToolCalls = append(out.ToolCalls, t.ToolCalls...)
	if out.Usage == (Usage{}) {
		out.Usage.PromptTokens = countWords(in.Run.Instructions)
		for _, msg := range in.Messages {
			out.Usage.PromptTokens += countWords(MessageText(msg))
		}
		out.Usage.CompletionTokens = countWords(t.Text)
		for _, c := range t.ToolCalls {
			out.Usage.CompletionTokens += 1 + countWords(c.Arguments)
		}
	}
	return out, nil
}

// Inputs returns a copy of the input of every round played so far (rounds
// with no turn left included), in call order.
func (m *ScriptModel) Inputs() []ModelInput {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ModelInput(nil), m.inputs...)
}

// Remaining returns how many turns have not been played yet.
func (m *ScriptModel) Remaining() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.turns) - m.next
}

// cloneInput copies the slices of in (the engine reuses nothing, but the
// recorded copy must not alias the caller's).
func cloneInput(in *ModelInput) ModelInput {
	c := *in
	c.Messages = append([]gen.MessageObject(nil), in.Messages...)
	c.Functions = append([]gen.FunctionObject(nil), in.Functions...)
	c.ToolOutputs = append([]ToolOutput(nil), in.ToolOutputs...)
	return c
}

// modelFailure maps a model error to a run's last_error code and message.
func modelFailure(err error) (code gen.RunObjectLastErrorCode, msg string, known bool) {
	var me *ModelError
	if errors.As(err, &me) {
		switch me.Code {
		case ModelErrRateLimit:
			code = gen.RunObjectLastErrorCodeRateLimitExceeded
		case ModelErrInvalidPrompt:
			code = gen.RunObjectLastErrorCodeInvalidPrompt
		default:
			code = gen.RunObjectLastErrorCodeServerError
		}
		msg = me.Message
		if msg == "" {
			msg = "The model failed."
		}
		return code, msg, true
	}
	return gen.RunObjectLastErrorCodeServerError, "Sorry, something went wrong.", false
}
