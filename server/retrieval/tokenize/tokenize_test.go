package tokenize

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCount(t *testing.T) {
	// Counts published with OpenAI's tiktoken (cl100k "tiktoken is great!" is
	// [83 1609 5963 374 2294 0]).
	tests := []struct {
		enc, text string
		want      int
	}{
		{O200kBase, "", 0},
		{O200kBase, "hello world", 2},
		{Cl100kBase, "hello world", 2},
		{Cl100kBase, "tiktoken is great!", 6},
	}
	for _, tt := range tests {
		t.Run(tt.enc+"/"+tt.text, func(t *testing.T) {
			tok, err := New(tt.enc)
			require.NoError(t, err)
			assert.Equal(t, tt.want, tok.Count(tt.text))
		})
	}
}

func TestNewUnknownEncoding(t *testing.T) {
	_, err := New("p99k_base")
	assert.ErrorContains(t, err, `unknown encoding "p99k_base"`)
}

func TestForModel(t *testing.T) {
	tests := map[string]string{
		"gpt-4o":                 O200kBase,
		"gpt-4o-mini":            O200kBase,
		"gpt-4.1":                O200kBase,
		"gpt-5":                  O200kBase,
		"o3-mini":                O200kBase,
		"scripted":               O200kBase,
		"gpt-4":                  Cl100kBase,
		"gpt-4-turbo":            Cl100kBase,
		"gpt-3.5-turbo":          Cl100kBase,
		"ft:gpt-3.5-turbo:x":     Cl100kBase,
		"text-embedding-3-small": Cl100kBase,
		"openai/gpt-4":           Cl100kBase,
	}
	for model, want := range tests {
		assert.Equal(t, want, ForModel(model).Encoding(), model)
	}
}

func TestBoundariesCoverText(t *testing.T) {
	tok := Default()
	texts := []string{
		"",
		"plain ASCII text, with punctuation!",
		"日本語のテキストと emoji 🎉🎉 and naïve café",
		strings.Repeat("ab ", 1000),
	}
	for _, text := range texts {
		b, err := tok.Boundaries(text)
		require.NoError(t, err)
		assert.Equal(t, 0, b[0])
		assert.Equal(t, len(text), b[len(b)-1])
		assert.Equal(t, tok.Count(text), len(b)-1, "boundaries agree with Count")
		assert.IsIncreasing(t, b[:max(1, len(b))])
	}
}

func TestBoundariesSplitCharacters(t *testing.T) {
	// Rare characters are split into byte-level tokens: RuneStart moves a
	// boundary inside one back to its start.
	text := "𓀀𓀁𓀂"
	b, err := Default().Boundaries(text)
	require.NoError(t, err)
	inside := 0
	for _, i := range b {
		if i < len(text) && !utf8.RuneStart(text[i]) {
			inside++
			assert.True(t, utf8.RuneStart(text[RuneStart(text, i)]))
		}
	}
	assert.Positive(t, inside, "expected a boundary inside a character")
}

func TestBoundariesRejectInvalidUTF8(t *testing.T) {
	_, err := Default().Boundaries("ok \xff\xfe")
	assert.ErrorContains(t, err, "not valid UTF-8")
	assert.Equal(t, Default().Count("ok \uFFFD\uFFFD"), Default().Count("ok \xff\xfe"))
}

func TestConcurrentUse(t *testing.T) {
	tok := Default()
	want := tok.Count("The quick brown fox jumps over the lazy dog.")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				assert.Equal(t, want, tok.Count("The quick brown fox jumps over the lazy dog."))
			}
		})
	}
	wg.Wait()
}

// TestIDs: IDs gives one ID per token, and common words have lower IDs
// (earlier BPE merges) than rare ones.
func TestIDs(t *testing.T) {
	tok := Default()
	for _, s := range []string{" the lighthouse keeper", "日本語", "a\xffb"} {
		ids, err := tok.IDs(s)
		require.NoError(t, err)
		assert.Len(t, ids, tok.Count(s), "%q", s)
	}
	the, err := tok.IDs(" the")
	require.NoError(t, err)
	keeper, err := tok.IDs(" keeper")
	require.NoError(t, err)
	require.Len(t, the, 1)
	require.Len(t, keeper, 1)
	assert.Less(t, the[0], keeper[0])
	ids, err := tok.IDs("")
	require.NoError(t, err)
	assert.Empty(t, ids)
}
