package chunk

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		s         Strategy
		wantParam string
		wantMsg   string
	}{
		{"auto", Auto(), "", ""},
		{"smallest", Strategy{100, 50}, "", ""},
		{"largest", Strategy{4096, 2048}, "", ""},
		{"no overlap", Strategy{500, 0}, "", ""},
		{"odd max, half rounded down", Strategy{101, 50}, "", ""},
		{"too small", Strategy{99, 0}, "chunking_strategy.static.max_chunk_size_tokens",
			"Invalid 'chunking_strategy.static.max_chunk_size_tokens': expected an integer between 100 and 4096."},
		{"too large", Strategy{4097, 0}, "chunking_strategy.static.max_chunk_size_tokens",
			"Invalid 'chunking_strategy.static.max_chunk_size_tokens': expected an integer between 100 and 4096."},
		{"zero value", Strategy{}, "chunking_strategy.static.max_chunk_size_tokens",
			"Invalid 'chunking_strategy.static.max_chunk_size_tokens': expected an integer between 100 and 4096."},
		{"overlap over half", Strategy{101, 51}, "chunking_strategy.static.chunk_overlap_tokens",
			"Invalid 'chunking_strategy.static.chunk_overlap_tokens': expected an integer between 0 and half of max_chunk_size_tokens."},
		{"negative overlap", Strategy{800, -1}, "chunking_strategy.static.chunk_overlap_tokens",
			"Invalid 'chunking_strategy.static.chunk_overlap_tokens': expected an integer between 0 and half of max_chunk_size_tokens."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate("chunking_strategy")
			if tt.wantParam == "" {
				assert.NoError(t, err)
				return
			}
			var pe *ParamError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.wantParam, pe.Param)
			assert.Equal(t, tt.wantMsg, pe.Message)
		})
	}
}

func TestSplit(t *testing.T) {
	tok := tokenize.Default()
	words := make([]string, 0, 3000)
	for i := range 3000 {
		words = append(words, []string{"alpha", "beta", "gamma", "delta", "épsilon", "日本", "🎉"}[i%7])
	}
	long := strings.Join(words, " ")
	tests := []struct {
		name string
		text string
		s    Strategy
	}{
		{"auto", long, Auto()},
		{"static no overlap", long, Strategy{100, 0}},
		{"static half overlap", long, Strategy{100, 50}},
		{"static large", long, Strategy{4096, 2048}},
		{"short text", "just a few words", Auto()},
		{"split characters", strings.Repeat("𓀀𓀁𓀂 ", 400), Strategy{100, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks, err := Split(tt.text, tt.s, tok)
			require.NoError(t, err)
			require.NotEmpty(t, chunks)
			total := tok.Count(tt.text)
			step := tt.s.MaxTokens - tt.s.OverlapTokens
			wantN := 1
			if total > tt.s.MaxTokens {
				wantN = 1 + (total-tt.s.MaxTokens+step-1)/step
			}
			assert.Len(t, chunks, wantN)
			for i, c := range chunks {
				assert.Equal(t, i, c.Index)
				assert.Equal(t, i*step, c.FirstToken)
				assert.Equal(t, tt.text[c.Start:c.End], c.Text)
				assert.True(t, utf8.ValidString(c.Text), "chunk %d cut inside a character", i)
				assert.LessOrEqual(t, c.Tokens, tt.s.MaxTokens)
				// Re-tokenizing a chunk alone can differ at its edges by the
				// bytes of one split character, never by more.
				assert.LessOrEqual(t, tok.Count(c.Text), tt.s.MaxTokens+4, "chunk %d", i)
				if i > 0 {
					prev := chunks[i-1]
					assert.Greater(t, c.Start, prev.Start)
					if tt.s.OverlapTokens > 0 {
						assert.Less(t, c.Start, prev.End, "chunk %d overlaps the previous one", i)
					} else {
						assert.Equal(t, prev.End, c.Start, "chunk %d: no overlap, no gap", i)
					}
				}
			}
			assert.Equal(t, 0, chunks[0].Start)
			last := chunks[len(chunks)-1]
			assert.Equal(t, len(tt.text), last.End, "the chunks reach the end")
			assert.Equal(t, total, last.FirstToken+last.Tokens)
		})
	}
}

func TestSplitBlankAndInvalid(t *testing.T) {
	tok := tokenize.Default()
	chunks, err := Split("", Auto(), tok)
	require.NoError(t, err)
	assert.Empty(t, chunks)
	chunks, err = Split(" \n\t \n", Auto(), tok)
	require.NoError(t, err)
	assert.Empty(t, chunks)

	_, err = Split("text", Strategy{MaxTokens: 10}, tok)
	assert.True(t, errors.Is(err, ErrInvalidStrategy))
	_, err = Split("bad \xff", Auto(), tok)
	assert.ErrorContains(t, err, "not valid UTF-8")
}
