// Package analyze turns text into the terms that the keyword index and the
// built-in embedder work on: lower-case words of letters and digits, with a
// light English suffix folding so that "refunds" and "refund" meet, and
// without the most common English function words.
//
// It is deliberately small and language-light: no dictionary, no real
// stemmer. The same analysis must be used when indexing and when querying.
package analyze

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTermBytes bounds a term: longer runs of letters and digits (hashes,
// base64 blobs) are cut to this many bytes, so one blob cannot bloat an
// index.
const MaxTermBytes = 64

// Words calls yield with each word of text, lower-cased, in order. A word
// is a run of letters, digits and marks; anything else separates words.
// It stops early when yield returns false.
func Words(text string, yield func(word string) bool) {
	start := -1
	lower := true
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			isWord := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z'
			if isWord {
				if start < 0 {
					start, lower = i, true
				}
				if c >= 'A' && c <= 'Z' {
					lower = false
				}
			} else if start >= 0 {
				if !emit(text[start:i], lower, yield) {
					return
				}
				start = -1
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
			if start < 0 {
				start = i
			}
			lower = false
		} else if start >= 0 {
			if !emit(text[start:i], lower, yield) {
				return
			}
			start = -1
		}
		i += size
	}
	if start >= 0 {
		emit(text[start:], lower, yield)
	}
}

func emit(w string, lower bool, yield func(string) bool) bool {
	if !lower {
		w = strings.ToLower(w)
	}
	if len(w) > MaxTermBytes {
		cut := MaxTermBytes
		for cut > 0 && !utf8.RuneStart(w[cut]) {
			cut--
		}
		w = w[:cut]
	}
	return yield(w)
}

// Terms calls yield with each index term of text in order: its words,
// folded (see Fold), leaving out stop words.
func Terms(text string, yield func(term string) bool) {
	Words(text, func(w string) bool {
		if IsStopWord(w) {
			return true
		}
		return yield(Fold(w))
	})
}

// TermList returns the index terms of text (see Terms).
func TermList(text string) []string {
	var out []string
	Terms(text, func(t string) bool {
		out = append(out, t)
		return true
	})
	return out
}

// Fold removes common English inflection from a lower-case word: plural
// "-ies" becomes "-y", plural "-es" after s, x, z, ch and sh and a plain
// plural "-s" (not "-ss", "-us" or "-is") are dropped, as are "-ing" and
// "-ed" when at least three letters stay. Words of three bytes or fewer
// are left alone. It is a light touch, not a stemmer: it never maps two
// common unrelated words together on purpose, and it may leave variants
// apart.
func Fold(w string) string {
	n := len(w)
	if n <= 3 {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "zes"),
		strings.HasSuffix(w, "ches"), strings.HasSuffix(w, "shes"):
		return w[:n-2]
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		return w
	case strings.HasSuffix(w, "s"):
		return w[:n-1]
	case strings.HasSuffix(w, "ing") && n >= 6:
		return w[:n-3]
	case strings.HasSuffix(w, "ed") && n >= 5:
		return w[:n-2]
	}
	return w
}

// stopWords are frequent English function words that carry little meaning
// for search.
var stopWords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, w := range strings.Fields(`a an and are as at be been but by can could did do does for from
		had has have he her his how i if in into is it its me my no not of on or our she so such than
		that the their them then there these they this those to too us was we were what when where
		which while who whom why will with would you your`) {
		m[w] = struct{}{}
	}
	return m
}()

// IsStopWord reports whether the lower-case word w is a stop word.
func IsStopWord(w string) bool {
	_, ok := stopWords[w]
	return ok
}
