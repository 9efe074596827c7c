package server

import (
	"context"
	"encoding/json"
	"strings"
)

// rewrite_query on POST /vector_stores/{id}/search.
//
// With a Chat Completions backend (ChatModel) as the server's model, each
// query of a search that sets rewrite_query is sent to the backend once,
// as model RewriteQueryModel (through ChatBackendOptions.ModelMap), with
// the system prompt RewriteQueryPrompt and the query as the user message;
// the reply's first line (quotes trimmed) replaces the query, and the
// reply's search_query shows what was searched. A failed request, or a
// reply that is empty or longer than a query may be, keeps the query as it
// was (a warning is logged): rewriting only helps, so it never fails the
// search. Without a backend (the scripted model, or any other Model)
// queries are searched as they are, and search_query repeats them.

// RewriteQueryModel is the model name a search's rewrite_query asks the
// Chat Completions backend for, mapped by ChatBackendOptions.ModelMap
// like an assistant's model (e.g. gpt-4o-mini=qwen2.5).
const RewriteQueryModel = "gpt-4o-mini"

// RewriteQueryPrompt is the system prompt of a query rewrite.
const RewriteQueryPrompt = "Rewrite the user's search query for a search over chunks of documents: " +
	"keep its meaning and its key terms, drop filler words and question words, " +
	"and spell out abbreviations you are sure of. " +
	"Answer with the rewritten query only, on one line, without quotes."

// queryRewriter is a model that can rewrite a search query.
type queryRewriter interface {
	rewriteQuery(ctx context.Context, query string) (string, error)
}

// rewriteQueries returns the queries rewritten by the server's model when
// it can, else as they are.
func (s *Server) rewriteQueries(ctx context.Context, queries []string) []string {
	rw, ok := s.opts.Model.(queryRewriter)
	if !ok {
		return queries
	}
	out := make([]string, len(queries))
	for i, q := range queries {
		out[i] = q
		r, err := rw.rewriteQuery(ctx, q)
		if err != nil {
			s.log.Warn("rewrite_query: the backend failed; searching the query as it is", "err", err.Error())
			continue
		}
		r = cleanRewrite(r)
		if r == "" || len(r) > maxQueryLen {
			s.log.Warn("rewrite_query: the backend's reply is not a query; searching the query as it is", "bytes", len(r))
			continue
		}
		out[i] = r
	}
	return out
}

// cleanRewrite keeps a rewrite reply's first non-blank line, without
// surrounding quotes.
func cleanRewrite(r string) string {
	for _, line := range strings.Split(r, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimSpace(strings.Trim(line, "\"'`“”"))
		if line != "" {
			return line
		}
	}
	return ""
}

// rewriteQuery asks the backend to rewrite a search query (one streamed
// chat completion, with the 429 retries of a model round).
func (m *ChatModel) rewriteQuery(ctx context.Context, query string) (string, error) {
	if m.urlErr != nil {
		return "", &ModelError{Code: ModelErrServer, Message: "The model backend URL is invalid.", Err: m.causeOf(m.urlErr)}
	}
	model := RewriteQueryModel
	if to, ok := m.o.ModelMap[model]; ok && to != "" {
		model = to
	}
	body, err := json.Marshal(chatRequest{Model: model, Stream: true, Messages: []chatMessage{
		{Role: "system", Content: RewriteQueryPrompt},
		{Role: "user", Content: query},
	}})
	if err != nil {
		return "", err
	}
	for attempt := 1; ; attempt++ {
		out, rl, err := m.send(ctx, body, func(string) {})
		if rl == nil {
			if err != nil {
				return "", err
			}
			return out.Text, nil
		}
		wait, werr := m.rateLimitWait(ctx, attempt, rl)
		if werr != nil {
			return "", werr
		}
		if !sleep(ctx, wait) {
			return "", ctx.Err()
		}
	}
}
