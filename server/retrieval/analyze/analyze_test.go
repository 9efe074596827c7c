package analyze

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTermList(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"punctuation only", " ,.;-- ", nil},
		{"stop words dropped", "The refunds of the order", []string{"refund", "order"}},
		{"case and digits", "Error E1234 in Model-X7", []string{"error", "e1234", "model", "x7"}},
		{"unicode", "Café naïve ÜBER straße", []string{"café", "naïve", "über", "straße"}},
		{"folding", "batteries boxes classes glass status processing added", []string{"battery", "box", "class", "glass", "status", "process", "add"}},
		{"short words kept", "bus gas ties", []string{"bus", "gas", "tie"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, TermList(tt.in))
		})
	}
}

func TestLongTermsAreCut(t *testing.T) {
	long := strings.Repeat("é", 100)
	terms := TermList(long)
	if assert.Len(t, terms, 1) {
		assert.LessOrEqual(t, len(terms[0]), MaxTermBytes)
		assert.True(t, strings.HasPrefix(long, terms[0]), "cut on a rune boundary")
	}
}

func TestWordsStopsEarly(t *testing.T) {
	var got []string
	Words("one two three", func(w string) bool {
		got = append(got, w)
		return len(got) < 2
	})
	assert.Equal(t, []string{"one", "two"}, got)
}
