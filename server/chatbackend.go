package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// ChatBackendOptions configures ChatBackend. The zero value of every field
// means its default.
type ChatBackendOptions struct {
	// BaseURL is the backend's API root; requests go to
	// BaseURL + "/chat/completions" (e.g. "https://api.openai.com/v1",
	// "http://localhost:11434/v1"). Required.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>" when not empty. It never
	// appears in errors or logs. Default: none.
	APIKey string
	// ModelMap maps assistant model names to backend model names
	// (e.g. "gpt-4o" -> "llama3.1"). Unmapped names pass through. Default: none.
	ModelMap map[string]string
	// HTTPClient sends the requests. Default: a client with no overall
	// timeout (Timeout bounds each request).
	HTTPClient *http.Client
	// Timeout bounds one backend request, from sending it to the end of the
	// streamed reply; each retry after a 429 gets its own. When it passes
	// the run fails with server_error. Default: 2 minutes.
	Timeout time.Duration
	// DropUnsupportedTools drops code_interpreter tools (and a tool_choice
	// naming one) with a logged warning. Default: false, a run that needs
	// one fails with server_error and a message saying why. file_search is
	// supported: it is offered to the model as a function named
	// FileSearchToolName when the round has ModelInput.FileSearch, and the
	// server runs its calls.
	DropUnsupportedTools bool
	// NoImages makes runs whose messages hold image parts fail clearly
	// instead of sending them (for text-only backends). Default: false,
	// image_url parts pass through and image_file parts are sent as base64
	// data URLs (which needs UseFiles).
	NoImages bool
	// RateLimitRetries is how many times one model round retries a backend
	// answer of 429 Too Many Requests before the run fails with
	// rate_limit_exceeded. Default (0): 2, so at most 3 requests; a negative
	// value disables retries.
	RateLimitRetries int
	// RateLimitMaxWait is the longest wait before one retry. The wait is the
	// answer's retry-after-ms or Retry-After (seconds or an HTTP date); when
	// it asks for longer than RateLimitMaxWait the run fails at once. Without
	// either header the waits are 1s, 2s, 4s, ... capped at RateLimitMaxWait.
	// Default: 30s.
	RateLimitMaxWait time.Duration
	// Logger receives warnings (dropped tools, backend errors). Default: discard.
	Logger *slog.Logger
}

// FileSource reads a stored file's bytes; *Server implements it.
type FileSource interface {
	// FileContent returns the bytes and content type of a stored file.
	FileContent(ctx context.Context, fileID string) (data []byte, contentType string, err error)
}

// FileContent returns the bytes and content type of an uploaded file, or a
// not-found error. The returned slice must not be modified.
func (s *Server) FileContent(ctx context.Context, fileID string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	f, data, err := s.readFile(ctx, fileID)
	if err != nil {
		return nil, "", err
	}
	return data, f.ContentType, nil
}

// ChatModel is a Model backed by any server that speaks the Chat
// Completions API (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp). Each
// model round is one streamed POST {BaseURL}/chat/completions. Create it with
// ChatBackend; it is safe for concurrent use.
type ChatModel struct {
	o        ChatBackendOptions
	hc       *http.Client
	log      *slog.Logger
	files    atomic.Pointer[fileSourceBox]
	endpoint string    // BaseURL's path + "/chat/completions", query kept
	host     string    // BaseURL's host[:port], the only part errors show
	urlErr   error     // BaseURL does not parse
	secrets  *redactor // the key's forms; nil without a key
}

type fileSourceBox struct{ fs FileSource }

// ChatBackend returns a Model that turns each run round into a Chat
// Completions request (see docs/backend.md for the mapping). Use it with
// WithModel, then call UseFiles with the Server so that image_file parts can
// be sent.
func ChatBackend(o ChatBackendOptions) *ChatModel {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	switch {
	case o.RateLimitRetries == 0:
		o.RateLimitRetries = defaultRateLimitRetries
	case o.RateLimitRetries < 0:
		o.RateLimitRetries = 0
	}
	if o.RateLimitMaxWait <= 0 {
		o.RateLimitMaxWait = defaultRateLimitMaxWait
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	m := &ChatModel{o: o, hc: o.HTTPClient, log: o.Logger, secrets: newRedactor(o.APIKey), host: "(invalid URL)"}
	if u, err := url.Parse(o.BaseURL); err != nil {
		m.urlErr = err
	} else {
		m.host = u.Host
		u.Path = strings.TrimRight(u.Path, "/") + "/chat/completions"
		u.RawPath = ""
		m.endpoint = u.String()
	}
	if m.hc == nil {
		m.hc = &http.Client{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

// UseFiles sets where image_file parts are read from (normally the Server
// the model serves). Default: none; a run with an image_file part then fails
// with server_error.
func (m *ChatModel) UseFiles(fs FileSource) { m.files.Store(&fileSourceBox{fs: fs}) }

// ---- request shapes ----

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *chatStreamOpts `json:"stream_options,omitempty"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          any             `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	Temperature         *float32        `json:"temperature,omitempty"`
	TopP                *float32        `json:"top_p,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
}

type chatStreamOpts struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // string, []chatPart, or nil
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
}

type chatImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

type chatTool struct {
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters,omitempty"`
	Strict      *bool          `json:"strict,omitempty"`
}

type chatToolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function chatToolCallFunc `json:"function"`
}

type chatToolCallFunc struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string        `json:"content"`
			ToolCalls []chatToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// errUnsupported is a run the backend cannot serve.
func errUnsupported(format string, args ...any) *ModelError {
	return &ModelError{Code: ModelErrServer, Message: fmt.Sprintf(format, args...)}
}

// buildRequest maps one model round onto a Chat Completions request.
func (m *ChatModel) buildRequest(ctx context.Context, in *ModelInput) (*chatRequest, error) {
	run := in.Run
	req := &chatRequest{Model: run.Model, Stream: true, StreamOptions: &chatStreamOpts{IncludeUsage: true}}
	if mapped, ok := m.o.ModelMap[run.Model]; ok && mapped != "" {
		req.Model = mapped
	}

	// Tools: functions, and file_search as a function the server runs.
	// A file_search tool with nothing to search (no FileSearch this round)
	// is simply not offered.
	var unsupported []string
	for _, t := range run.Tools {
		if k, _ := t.Discriminator(); k != "function" && k != "file_search" {
			unsupported = append(unsupported, k)
		}
	}
	mode, forced, forcedKind := chatToolChoice(run.ToolChoice)
	if forcedKind == "file_search" && in.FileSearch != nil {
		forced, forcedKind = FileSearchToolName, "function"
	}
	if forcedKind != "" && forcedKind != "function" {
		unsupported = append(unsupported, forcedKind)
	}
	if len(unsupported) > 0 {
		if !m.o.DropUnsupportedTools {
			return nil, errUnsupported("The model backend speaks Chat Completions, which cannot run the %s tool; remove it from the assistant or run (or start the server with --drop-unsupported-tools).", strings.Join(dedupe(unsupported), " and "))
		}
		m.log.Warn("chat backend: dropping unsupported tools", "run_id", run.Id, "tools", strings.Join(dedupe(unsupported), ","))
		if forcedKind != "" && forcedKind != "function" {
			mode, forced = "auto", ""
		}
	}
	for _, f := range in.Functions {
		ct := chatTool{Type: "function", Function: chatFunction{Name: f.Name, Strict: f.Strict}}
		if f.Description != nil {
			ct.Function.Description = *f.Description
		}
		if f.Parameters != nil {
			ct.Function.Parameters = map[string]any(*f.Parameters)
		}
		req.Tools = append(req.Tools, ct)
	}
	if in.FileSearch != nil {
		req.Tools = append(req.Tools, fileSearchFunction())
	}
	if len(req.Tools) > 0 {
		switch {
		case forced != "":
			req.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": forced}}
		case mode == "none" || mode == "auto" || mode == "required":
			if run.ToolChoice != nil {
				req.ToolChoice = mode
			}
		}
		p := run.ParallelToolCalls
		req.ParallelToolCalls = &p
	}

	req.Temperature, req.TopP = run.Temperature, run.TopP
	if rf, err := json.Marshal(run.ResponseFormat); err == nil {
		if t := bytes.TrimSpace(rf); len(t) > 0 && t[0] == '{' {
			req.ResponseFormat = rf
		}
	}
	if run.MaxCompletionTokens != nil {
		left := max(*run.MaxCompletionTokens-in.Used.CompletionTokens, 1)
		req.MaxCompletionTokens = &left
	}

	// Messages.
	if run.Instructions != "" {
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: run.Instructions})
	}
	history := make([]chatMessage, 0, len(in.Messages))
	for _, msg := range in.Messages {
		cm, err := m.message(ctx, msg)
		if err != nil {
			return nil, err
		}
		if cm != nil {
			history = append(history, *cm)
		}
	}
	rounds := toolRounds(in.ToolOutputs)
	if run.MaxPromptTokens != nil {
		// The instructions and this run's tool rounds (file_search results
		// can be long) are always sent: the history gets what is left.
		tok := tokenize.ForModel(req.Model)
		budget := *run.MaxPromptTokens - tok.Count(run.Instructions)
		for _, r := range rounds {
			budget -= messageTokens(r.Content, tok)
			for _, c := range r.ToolCalls {
				budget -= tok.Count(c.Function.Name) + tok.Count(c.Function.Arguments)
			}
		}
		history = limitHistory(history, budget, tok)
	}
	req.Messages = append(req.Messages, history...)
	req.Messages = append(req.Messages, rounds...)
	return req, nil
}

// message maps one thread message; nil when it has no content to send.
func (m *ChatModel) message(ctx context.Context, msg gen.MessageObject) (*chatMessage, error) {
	role := "user"
	if msg.Role == gen.MessageObjectRoleAssistant {
		role = "assistant"
	}
	var parts []chatPart
	hasImage := false
	for _, c := range msg.Content {
		switch c.Type {
		case gen.MessageContentTypeText:
			parts = append(parts, chatPart{Type: "text", Text: c.Text.Value})
		case gen.MessageContentTypeImageUrl:
			u := c
			if role != "user" {
				continue // Chat Completions takes images in user messages only
			}
			if m.o.NoImages {
				return nil, errUnsupported("The model backend does not accept images (message %s has an image_url part).", truncateForMessage(msg.Id))
			}
			p := chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: u.ImageUrl.Url}}
			if u.ImageUrl.Detail != nil {
				p.ImageURL.Detail = string(*u.ImageUrl.Detail)
			}
			parts, hasImage = append(parts, p), true
		case gen.MessageContentTypeImageFile:
			f := c
			if role != "user" {
				continue // Chat Completions takes images in user messages only
			}
			if m.o.NoImages {
				return nil, errUnsupported("The model backend does not accept images (message %s has an image_file part).", truncateForMessage(msg.Id))
			}
			box := m.files.Load()
			if box == nil || box.fs == nil {
				return nil, errUnsupported("The model backend cannot read image file %s: no file source is configured.", truncateForMessage(f.ImageFile.FileId))
			}
			data, ct, err := box.fs.FileContent(ctx, f.ImageFile.FileId)
			if err != nil {
				return nil, &ModelError{Code: ModelErrServer, Message: "The image file " + truncateForMessage(f.ImageFile.FileId) + " cannot be read.", Err: err}
			}
			if !strings.HasPrefix(ct, "image/") {
				ct = http.DetectContentType(data)
			}
			p := chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(data)}}
			if f.ImageFile.Detail != nil {
				p.ImageURL.Detail = string(*f.ImageFile.Detail)
			}
			parts, hasImage = append(parts, p), true
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	if !hasImage {
		texts := make([]string, len(parts))
		for i, p := range parts {
			texts[i] = p.Text
		}
		return &chatMessage{Role: role, Content: strings.Join(texts, "\n")}, nil
	}
	return &chatMessage{Role: role, Content: parts}, nil
}

// toolRounds turns earlier rounds' calls and outputs into an assistant
// message with tool_calls followed by one tool message per output.
func toolRounds(outs []ToolOutput) []chatMessage {
	var msgs []chatMessage
	for i := 0; i < len(outs); {
		j := i
		for j < len(outs) && outs[j].Round == outs[i].Round {
			j++
		}
		a := chatMessage{Role: "assistant", Content: nil}
		for _, o := range outs[i:j] {
			a.ToolCalls = append(a.ToolCalls, chatToolCall{ID: o.Call.ID, Type: "function",
				Function: chatToolCallFunc{Name: o.Call.Name, Arguments: o.Call.Arguments}})
		}
		msgs = append(msgs, a)
		for _, o := range outs[i:j] {
			msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: o.Call.ID, Content: o.Output})
		}
		i = j
	}
	return msgs
}

// limitHistory keeps the newest messages whose tokens (counted by tok, see
// messageTokens) fit budget (always at least the newest one).
func limitHistory(h []chatMessage, budget int, tok *tokenize.Tokenizer) []chatMessage {
	total, start := 0, len(h)
	for start > 0 {
		n := messageTokens(h[start-1].Content, tok)
		if total+n > budget && start < len(h) {
			break
		}
		total += n
		start--
	}
	return h[start:]
}

// messageTokens counts a message's tokens as Chat Completions bills them:
// its text's tokens, 85 per image (the low-detail price) and 3 for the
// message's framing.
func messageTokens(c any, tok *tokenize.Tokenizer) int {
	const perMessage, perImage = 3, 85
	switch v := c.(type) {
	case string:
		return perMessage + tok.Count(v)
	case []chatPart:
		n := perMessage
		for _, p := range v {
			n += tok.Count(p.Text)
			if p.ImageURL != nil {
				n += perImage
			}
		}
		return n
	}
	return perMessage
}

// fileSearchFunction is the file_search tool as a Chat Completions
// function: the server runs its calls (see filesearch.go).
func fileSearchFunction() chatTool {
	return chatTool{Type: "function", Function: chatFunction{
		Name: FileSearchToolName,
		Description: "Search the files the user gave for passages relevant to a query. " +
			"Results are numbered; cite a result you use by writing its marker, e.g. 【0:1†name.md】, right after the statement it supports.",
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"query": map[string]any{"type": "string", "description": "What to search for, in the words the files would use."},
			},
			"required": []string{"query"},
		},
	}}
}

// chatToolChoice decodes tool_choice: the mode, a forced function name, and
// the kind of a named tool ("function", "file_search", ...).
func chatToolChoice(tc *gen.AssistantsApiToolChoiceOption) (mode, function, kind string) {
	if tc == nil {
		return "auto", "", ""
	}
	if s, err := tc.AsToolChoiceMode(); err == nil {
		return string(s), "", ""
	}
	if named, err := tc.AsAssistantsNamedToolChoice(); err == nil {
		k, _ := named.Discriminator()
		if k == "function" {
			if f, err := named.AsAssistantsNamedToolChoiceFunction(); err == nil && f.Function != nil {
				return "", f.Function.Name, k
			}
		}
		return "", "", k
	}
	return "auto", "", ""
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// ---- the round ----

// Respond sends one streamed Chat Completions request and maps the reply:
// content deltas are emitted as they arrive; tool calls are assembled from
// their fragments (see callAssembler) and keep the backend's ids; usage and
// finish_reason "length" (Truncated) are reported.
//
// Failures: a 429 is retried (RateLimitRetries, RateLimitMaxWait) and then
// fails the run with rate_limit_exceeded. Any other backend error, a
// malformed stream, a stream that ends without finish_reason and without
// [DONE] ("backend stream ended early"), an unreachable backend (the message
// names the host and the cause class: DNS, refused, TLS, timeout) or Timeout
// gives server_error. Messages never hold the key or the URL's query.
func (m *ChatModel) Respond(ctx context.Context, in *ModelInput, emit func(delta string)) (*ModelOutput, error) {
	req, err := m.buildRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, &ModelError{Code: ModelErrServer, Message: "The request to the model backend cannot be encoded.", Err: err}
	}
	if m.urlErr != nil {
		return nil, &ModelError{Code: ModelErrServer, Message: "The model backend URL is invalid.", Err: m.causeOf(m.urlErr)}
	}
	for attempt := 1; ; attempt++ {
		out, rl, err := m.send(ctx, body, emit)
		if rl == nil {
			return out, err
		}
		wait, werr := m.rateLimitWait(ctx, attempt, rl)
		if werr != nil {
			return nil, werr
		}
		m.log.Warn("chat backend: rate limited, retrying", "host", m.host, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Defaults of the 429 retries.
const (
	defaultRateLimitRetries = 2
	defaultRateLimitMaxWait = 30 * time.Second
	firstRateLimitBackoff   = time.Second
)

// rateLimited is a 429 answer: the error to return and the wait it asked for.
type rateLimited struct {
	err      *ModelError
	detail   string // the backend's message, ": ..." or ""
	after    time.Duration
	hasAfter bool
}

// rateLimitWait returns how long to wait before retrying after the
// attempt-th request was answered 429, or the error that ends the round.
func (m *ChatModel) rateLimitWait(ctx context.Context, attempt int, rl *rateLimited) (time.Duration, error) {
	fail := func(format string, args ...any) error {
		return &ModelError{Code: ModelErrRateLimit, Message: fmt.Sprintf(format, args...) + rl.detail}
	}
	if attempt > m.o.RateLimitRetries {
		if attempt == 1 {
			return 0, rl.err
		}
		return 0, fail("%s (tried %d times)", rateLimitPrefix, attempt)
	}
	wait := rl.after
	if !rl.hasAfter {
		wait = min(firstRateLimitBackoff<<min(attempt-1, 20), m.o.RateLimitMaxWait)
	}
	if wait > m.o.RateLimitMaxWait {
		return 0, fail("%s and asked to retry after %s, longer than the %s this server waits", rateLimitPrefix, wait.Round(time.Millisecond), m.o.RateLimitMaxWait)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, fail("%s and asked to retry after %s, after the run expires", rateLimitPrefix, wait.Round(time.Millisecond))
	}
	return wait, nil
}

const rateLimitPrefix = "The model backend answered 429"

var errBackendTimeout = errors.New("model backend timed out")

// send makes one request. rl is set when the backend answered 429.
func (m *ChatModel) send(ctx context.Context, body []byte, emit func(string)) (out *ModelOutput, rl *rateLimited, err error) {
	rctx, cancel := context.WithTimeoutCause(ctx, m.o.Timeout, errBackendTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, m.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, &ModelError{Code: ModelErrServer, Message: "The model backend URL is invalid.", Err: m.causeOf(err)}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if m.o.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+m.o.APIKey)
	}
	resp, err := m.hc.Do(hreq)
	if err != nil {
		return nil, nil, m.transportError(ctx, rctx, err, false)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		me, detail := m.statusError(resp)
		if resp.StatusCode == http.StatusTooManyRequests {
			after, ok := retryAfter(resp.Header, time.Now())
			return nil, &rateLimited{err: me, detail: detail, after: after, hasAfter: ok}, me
		}
		return nil, nil, me
	}
	out, err = m.readStream(resp.Body, emit)
	if err != nil {
		return nil, nil, m.transportError(ctx, rctx, err, true)
	}
	return out, nil, nil
}

// transportError maps a failed request (streaming false) or stream read.
func (m *ChatModel) transportError(ctx, rctx context.Context, err error, streaming bool) error {
	if ctx.Err() != nil {
		return ctx.Err() // the run was cancelled or expired: the engine decides
	}
	var me *ModelError
	if errors.As(err, &me) {
		return me
	}
	cause := m.causeOf(err)
	if errors.Is(context.Cause(rctx), errBackendTimeout) {
		m.log.Warn("chat backend: timed out", "host", m.host, "timeout", m.o.Timeout)
		return &ModelError{Code: ModelErrServer, Message: fmt.Sprintf("The model backend at %s did not answer within %s.", m.host, m.o.Timeout), Err: errBackendTimeout}
	}
	class := netClass(err)
	m.log.Warn("chat backend: connection failed", "host", m.host, "class", class, "streaming", streaming, "err", cause.Error())
	if streaming {
		return &ModelError{Code: ModelErrServer, Message: fmt.Sprintf("The model backend stream ended early (%s: %s).", m.host, class), Err: cause}
	}
	return &ModelError{Code: ModelErrServer, Message: fmt.Sprintf("The model backend at %s cannot be reached: %s.", m.host, class), Err: cause}
}

// statusError maps a non-2xx answer. The detail is the error message of a
// JSON error body, or the first line of a text/plain body; the key is
// redacted from it before it is cut to length.
func (m *ChatModel) statusError(resp *http.Response) (me *ModelError, detail string) {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	text := ""
	if json.Unmarshal(b, &e) == nil {
		text = e.Error.Message
	} else if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		text, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	if strings.TrimSpace(text) != "" {
		detail = ": " + m.safeDetail(text)
	}
	code := ModelErrServer
	if resp.StatusCode == http.StatusTooManyRequests {
		code = ModelErrRateLimit
	}
	m.log.Warn("chat backend error", "host", m.host, "status", resp.StatusCode, "detail", detail)
	return &ModelError{Code: code, Message: fmt.Sprintf("The model backend answered %d%s", resp.StatusCode, detail)}, detail
}

// errStreamEndedEarly is a stream that stopped before the reply ended.
func errStreamEndedEarly() *ModelError {
	return &ModelError{Code: ModelErrServer,
		Message: "The model backend stream ended early, without a finish_reason or [DONE]; the partial reply was dropped."}
}

// readStream reads the `data:` lines of a streamed chat completion. The
// reply is complete once choice 0 has a finish_reason or [DONE] arrives;
// a stream that ends before either fails (never half a message, never half
// the arguments of a tool call).
func (m *ChatModel) readStream(r io.Reader, emit func(string)) (*ModelOutput, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	out := &ModelOutput{}
	var text strings.Builder
	var calls callAssembler
	done, finished := false, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		if data == "[DONE]" {
			done = true
			break
		}
		if data == "" {
			continue
		}
		var ch chatChunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return nil, &ModelError{Code: ModelErrServer, Message: "The model backend sent a malformed stream.", Err: m.causeOf(err)}
		}
		if ch.Error != nil {
			code := ModelErrServer
			if s, ok := ch.Error.Code.(string); ok && s == ModelErrRateLimit {
				code = ModelErrRateLimit
			}
			detail := m.safeDetail(ch.Error.Message)
			m.log.Warn("chat backend: error in stream", "host", m.host, "detail", detail)
			return nil, &ModelError{Code: code, Message: "The model backend failed: " + detail}
		}
		if ch.Usage != nil {
			out.Usage = Usage{PromptTokens: ch.Usage.PromptTokens, CompletionTokens: ch.Usage.CompletionTokens}
		}
		for _, c := range ch.Choices {
			if c.Index != 0 {
				continue
			}
			if c.Delta.Content != nil && *c.Delta.Content != "" {
				text.WriteString(*c.Delta.Content)
				emit(*c.Delta.Content)
			}
			for k, tc := range c.Delta.ToolCalls {
				calls.add(k, tc)
			}
			if c.FinishReason != nil && *c.FinishReason != "" {
				finished = true
				if *c.FinishReason == "length" {
					out.Truncated = true
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !done && !finished {
		m.log.Warn("chat backend: stream ended early", "host", m.host)
		return nil, errStreamEndedEarly()
	}
	out.Text = text.String()
	out.ToolCalls = calls.result()
	return out, nil
}
