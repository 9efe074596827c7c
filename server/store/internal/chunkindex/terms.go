package chunkindex

import (
	"slices"
	"strconv"
	"strings"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
)

// maxPositions is the most positions PostgreSQL keeps per lexeme.
const maxPositions = 256

// maxPosition is PostgreSQL's largest tsvector position.
const maxPosition = 16383

// Terms returns text's index terms (package analyze: the in-memory
// index's analysis) joined by spaces: what the SQLite FTS5 table of store
// migration 2 held (its ascii tokenizer splits on the spaces and nothing
// else; terms hold letters, digits and marks only). The index no longer
// writes it; tests write such rows to check that they are moved.
func Terms(text string) string {
	var b strings.Builder
	analyze.Terms(text, func(t string) bool {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t)
		return true
	})
	return b.String()
}

// QueryTerms returns the distinct index terms of a query, in order.
func QueryTerms(query string) []string {
	var out []string
	analyze.Terms(query, func(t string) bool {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
		return true
	})
	return out
}

// TSVector returns the PostgreSQL tsvector literal of text's index terms,
// each with its positions (its term frequency is their count, up to 256),
// and the number of terms: what store migration 2's tsvector column held.
// The index no longer writes it; tests write such rows to check that they
// are moved.
func TSVector(text string) (string, int) {
	pos := map[string][]int{}
	var order []string
	n := 0
	analyze.Terms(text, func(t string) bool {
		n++
		p := pos[t]
		if p == nil {
			order = append(order, t)
		}
		if len(p) < maxPositions {
			pos[t] = append(p, min(n, maxPosition))
		}
		return true
	})
	var b strings.Builder
	for i, t := range order {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(TSLexeme(t))
		b.WriteByte(':')
		for j, p := range pos[t] {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(p))
		}
	}
	return b.String(), n
}

// TSLexeme quotes a term as a tsvector or tsquery lexeme.
func TSLexeme(t string) string {
	t = strings.ReplaceAll(t, `\`, `\\`)
	return "'" + strings.ReplaceAll(t, "'", "''") + "'"
}
