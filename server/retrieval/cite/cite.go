// Package cite builds the file_citation annotations of an answer: marker
// texts like 【4:0†refunds.md】 placed in the answer, with start_index and
// end_index that locate each marker in the text exactly.
//
// # Index units
//
// StartIndex and EndIndex count Unicode code points (characters), not
// bytes and not UTF-16 units: runes in Go, str indices in Python. The API
// does not state its unit; the markers it documents ("【4:0†source】"
// spanning 12 between start_index and end_index) rule out bytes (the
// brackets and dagger are 3 bytes each in UTF-8), and OpenAI's own
// servers and SDK examples index Python strings, which count code points.
// Code points and UTF-16 units differ only for characters outside the
// Basic Multilingual Plane (most emoji): a JavaScript client must convert
// for those. Check verifies annotations in this unit.
package cite

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Source is what a citation points to: a file of a search result.
type Source struct {
	FileID   string
	Filename string
}

// Annotation is a file_citation: Text is the marker exactly as it stands
// in the answer at [StartIndex, EndIndex) (code points), citing FileID.
type Annotation struct {
	Text       string
	FileID     string
	StartIndex int
	EndIndex   int
}

// Marker returns the marker text 【m:n†filename】: m is the index of the
// message (tool output) that holds the results, n the result's index in
// it. Brackets and the dagger in filename become ( ) and +, and line
// breaks spaces, so a marker always parses back.
func Marker(m, n int, filename string) string {
	return "【" + strconv.Itoa(m) + ":" + strconv.Itoa(n) + "†" + cleanName(filename) + "】"
}

var nameCleaner = strings.NewReplacer("【", "(", "】", ")", "†", "+", "\r\n", " ", "\n", " ", "\r", " ")

func cleanName(name string) string {
	name = strings.TrimSpace(nameCleaner.Replace(name))
	if name == "" {
		return "source"
	}
	return name
}

// Builder writes an answer and its citations. The zero value is ready.
type Builder struct {
	sb    strings.Builder
	runes int
	anns  []Annotation
}

// WriteString appends answer text.
func (b *Builder) WriteString(s string) {
	b.sb.WriteString(s)
	b.runes += utf8.RuneCountInString(s)
}

// Cite appends the marker of result n of message m, citing src.
func (b *Builder) Cite(m, n int, src Source) {
	mk := Marker(m, n, src.Filename)
	start := b.runes
	b.WriteString(mk)
	b.anns = append(b.anns, Annotation{Text: mk, FileID: src.FileID, StartIndex: start, EndIndex: b.runes})
}

// String returns the answer written so far.
func (b *Builder) String() string { return b.sb.String() }

// Annotations returns the citations written so far, in text order.
func (b *Builder) Annotations() []Annotation { return append([]Annotation(nil), b.anns...) }

// Resolve turns the citation markers a model wrote into annotations.
// A marker is 【 then an optional "m:" and a result number n, then
// optionally † and any name, then 】 (so 【0†x】, 【4:0†x.pdf】, 【2】). Each
// marker whose n is a result (0 <= n < len(sources)) is rewritten to
// Marker(m, n, sources[n].Filename) and annotated; the others are removed
// with the space before them, so no marker in the answer is left
// unresolved. Text in 【】 that is not a marker stays as it is.
func Resolve(text string, m int, sources []Source) (string, []Annotation) {
	var b Builder
	rest := text
	for {
		i := strings.Index(rest, "【")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		j := strings.Index(rest[i:], "】")
		if j < 0 {
			b.WriteString(rest)
			break
		}
		inner := rest[i+len("【") : i+j]
		end := i + j + len("】")
		n, ok := parseMarker(inner)
		switch {
		case !ok:
			b.WriteString(rest[:end])
		case n < len(sources):
			b.WriteString(rest[:i])
			b.Cite(m, n, sources[n])
		default:
			b.WriteString(strings.TrimRight(rest[:i], " "))
		}
		rest = rest[end:]
	}
	return b.String(), b.anns
}

// parseMarker reads "[m:]n[†name]" and returns n.
func parseMarker(s string) (int, bool) {
	if k := strings.Index(s, "†"); k >= 0 {
		s = s[:k]
	}
	if k := strings.IndexByte(s, ':'); k >= 0 {
		if !digits(s[:k]) {
			return 0, false
		}
		s = s[k+1:]
	}
	if !digits(s) || len(s) > 6 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Check verifies annotations against text: each one's indices are in
// range, in order, not overlapping, and the code points between them are
// exactly its Text. It returns the first problem found.
func Check(text string, anns []Annotation) error {
	runes := []rune(text)
	prev := 0
	for i, a := range anns {
		if a.StartIndex < prev || a.EndIndex < a.StartIndex || a.EndIndex > len(runes) {
			return fmt.Errorf("annotation %d: indices [%d, %d) out of order or past the text's %d characters", i, a.StartIndex, a.EndIndex, len(runes))
		}
		if got := string(runes[a.StartIndex:a.EndIndex]); got != a.Text {
			return fmt.Errorf("annotation %d: text[%d:%d] is %q, the annotation says %q", i, a.StartIndex, a.EndIndex, got, a.Text)
		}
		prev = a.EndIndex
	}
	return nil
}
