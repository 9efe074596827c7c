// Package tokenize counts and splits text into the tokens of OpenAI's BPE
// encodings, offline: the vocabularies are compiled into the binary (from
// github.com/tiktoken-go/tokenizer), so nothing is downloaded at run time.
//
// The server uses it to chunk files by tokens and to count prompt tokens
// for max_prompt_tokens truncation.
package tokenize

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// Encodings known to New.
const (
	// O200kBase is the encoding of the gpt-4o, gpt-4.1, gpt-5 and o-series
	// models, and the default.
	O200kBase = "o200k_base"
	// Cl100kBase is the encoding of gpt-4, gpt-3.5-turbo and the
	// text-embedding-3 and ada-002 embedding models.
	Cl100kBase = "cl100k_base"
)

// Tokenizer counts and splits text into tokens. It is safe for concurrent
// use. Create one with New, Default or ForModel.
type Tokenizer struct {
	codec tokenizer.Codec
	name  string
}

var cache sync.Map // encoding name -> *Tokenizer

// New returns the tokenizer of an encoding (O200kBase or Cl100kBase).
// Tokenizers are shared: building one costs tens of milliseconds once per
// process.
func New(encoding string) (*Tokenizer, error) {
	if t, ok := cache.Load(encoding); ok {
		return t.(*Tokenizer), nil
	}
	switch encoding {
	case O200kBase, Cl100kBase:
	default:
		return nil, fmt.Errorf("tokenize: unknown encoding %q (known: %s, %s)", encoding, O200kBase, Cl100kBase)
	}
	c, err := tokenizer.Get(tokenizer.Encoding(encoding))
	if err != nil {
		return nil, fmt.Errorf("tokenize: %s: %w", encoding, err)
	}
	t, _ := cache.LoadOrStore(encoding, &Tokenizer{codec: c, name: encoding})
	return t.(*Tokenizer), nil
}

// Default returns the O200kBase tokenizer.
func Default() *Tokenizer {
	t, err := New(O200kBase)
	if err != nil {
		panic(err) // the encoding is compiled in: this cannot fail
	}
	return t
}

// ForModel returns the tokenizer of a model name: Cl100kBase for gpt-4
// (not gpt-4o or gpt-4.1), gpt-3.5 and the text-embedding models,
// O200kBase for everything else (newer and unknown models).
func ForModel(model string) *Tokenizer {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 { // "openai/gpt-4"
		m = m[i+1:]
	}
	m = strings.TrimPrefix(m, "ft:")
	switch {
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "gpt-4."):
	case strings.HasPrefix(m, "gpt-4"), strings.HasPrefix(m, "gpt-3.5"), strings.HasPrefix(m, "gpt-35"),
		strings.HasPrefix(m, "text-embedding-"):
		t, _ := New(Cl100kBase)
		return t
	}
	return Default()
}

// Encoding returns the name of the tokenizer's encoding.
func (t *Tokenizer) Encoding() string { return t.name }

// Count returns the number of tokens of text. Invalid UTF-8 counts as
// U+FFFD replacement characters.
func (t *Tokenizer) Count(text string) int {
	if text == "" {
		return 0
	}
	n, err := t.codec.Count(strings.ToValidUTF8(text, "\uFFFD"))
	if err != nil {
		// The split pattern has no backtracking limit that plain text can
		// reach; fall back to the usual estimate rather than fail a count.
		return (len(text) + 3) / 4
	}
	return n
}

// Boundaries returns the byte offsets in text where its tokens start, plus
// len(text) at the end: token i is text[b[i]:b[i+1]], and len(b)-1 is the
// token count. Byte-level BPE may split a multi-byte character between
// two tokens, so a boundary can fall inside a UTF-8 sequence; use
// RuneStart to move it. text must be valid UTF-8 (an error otherwise).
func (t *Tokenizer) Boundaries(text string) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("tokenize: text is not valid UTF-8")
	}
	if text == "" {
		return []int{0}, nil
	}
	_, toks, err := t.codec.Encode(text)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	b := make([]int, 0, len(toks)+1)
	off := 0
	for _, tok := range toks {
		b = append(b, off)
		off += len(tok)
	}
	if off != len(text) {
		return nil, fmt.Errorf("tokenize: tokens cover %d of %d bytes", off, len(text))
	}
	return append(b, off), nil
}

// RuneStart moves the byte offset i in text back to the start of the
// character it falls in (i itself when it already is one, or len(text)).
func RuneStart(text string, i int) int {
	for i > 0 && i < len(text) && !utf8.RuneStart(text[i]) {
		i--
	}
	return i
}

// IDs returns the token IDs of text. In OpenAI's BPE encodings a token's
// ID is its merge rank: tokens merged earlier, lower IDs, are the more
// frequent byte sequences of the encoding's training text, which is what
// the built-in embedder's term weights rely on. Invalid UTF-8 is encoded
// as U+FFFD replacement characters.
func (t *Tokenizer) IDs(text string) ([]uint, error) {
	if text == "" {
		return nil, nil
	}
	ids, _, err := t.codec.Encode(strings.ToValidUTF8(text, "\uFFFD"))
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return ids, nil
}
