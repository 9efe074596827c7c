// Package chunk splits text into overlapping chunks measured in tokens,
// following the API's chunking strategies: "static" with
// max_chunk_size_tokens between 100 and 4096 and chunk_overlap_tokens at
// most half of it, and "auto", which is static 800/400.
package chunk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// Limits of a static strategy, and the auto strategy's sizes, as the API
// documents them.
const (
	MinMaxTokens      = 100
	MaxMaxTokens      = 4096
	AutoMaxTokens     = 800
	AutoOverlapTokens = 400
)

// Strategy is a static chunking strategy: chunks of at most MaxTokens
// tokens, each starting MaxTokens-OverlapTokens tokens after the previous
// one. The zero value is not valid; Auto returns the default.
type Strategy struct {
	MaxTokens     int
	OverlapTokens int
}

// Auto returns the "auto" strategy: 800 tokens with 400 of overlap.
func Auto() Strategy { return Strategy{MaxTokens: AutoMaxTokens, OverlapTokens: AutoOverlapTokens} }

// ParamError is a strategy the API refuses: Param names the field (under
// the prefix given to Validate) and Message is the API's message.
type ParamError struct {
	Param   string
	Message string
}

func (e *ParamError) Error() string { return e.Message }

// Validate checks s against the API's rules for a static strategy. param
// is where the strategy sits in the request (e.g. "chunking_strategy" or
// "files[2].chunking_strategy"); the error is a *ParamError naming
// param+".static.max_chunk_size_tokens" or
// param+".static.chunk_overlap_tokens".
func (s Strategy) Validate(param string) error {
	if s.MaxTokens < MinMaxTokens || s.MaxTokens > MaxMaxTokens {
		p := param + ".static.max_chunk_size_tokens"
		return &ParamError{Param: p, Message: fmt.Sprintf("Invalid '%s': expected an integer between %d and %d.", p, MinMaxTokens, MaxMaxTokens)}
	}
	if s.OverlapTokens < 0 || s.OverlapTokens > s.MaxTokens/2 {
		p := param + ".static.chunk_overlap_tokens"
		return &ParamError{Param: p, Message: fmt.Sprintf("Invalid '%s': expected an integer between 0 and half of max_chunk_size_tokens.", p)}
	}
	return nil
}

// Chunk is one piece of a text.
type Chunk struct {
	// Index is the chunk's position among the text's chunks, from 0.
	Index int
	// Text is text[Start:End].
	Text string
	// Start and End are byte offsets in the text, on character boundaries.
	Start, End int
	// FirstToken is the position in the text's tokens of the chunk's first
	// token: FirstToken+Tokens of the last chunk is the text's token count.
	FirstToken int
	// Tokens is the number of tokens the chunk was cut at: at most the
	// strategy's MaxTokens. A character that byte-level BPE split between
	// two tokens goes whole to the later chunk, so a chunk's text can hold
	// up to three bytes more or less than its tokens.
	Tokens int
}

// ErrInvalidStrategy wraps a Validate error returned by Split.
var ErrInvalidStrategy = errors.New("chunk: invalid strategy")

// Split cuts text into chunks by the tokens of tok. Chunks that hold only
// white space are left out, so an empty or blank text has no chunks. text
// must be valid UTF-8.
func Split(text string, s Strategy, tok *tokenize.Tokenizer) ([]Chunk, error) {
	if err := s.Validate("chunking_strategy"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidStrategy, err)
	}
	b, err := tok.Boundaries(text)
	if err != nil {
		return nil, fmt.Errorf("chunk: %w", err)
	}
	n := len(b) - 1
	step := s.MaxTokens - s.OverlapTokens
	var out []Chunk
	for i := 0; i < n; i += step {
		j := min(n, i+s.MaxTokens)
		// A character split between two tokens goes whole to the chunk
		// where it ends, so chunks without overlap tile the text.
		start, end := tokenize.RuneStart(text, b[i]), tokenize.RuneStart(text, b[j])
		if strings.TrimSpace(text[start:end]) != "" {
			out = append(out, Chunk{Index: len(out), Text: text[start:end], Start: start, End: end, FirstToken: i, Tokens: j - i})
		}
		if j == n {
			break
		}
	}
	return out, nil
}
