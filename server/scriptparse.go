package server

import (
	"bytes"
	"encoding/json"
	"strings"
)

// ScriptedCall is one function call the scripted model found in a user message.
type ScriptedCall struct {
	// Name is the function tool's name, as registered on the assistant or run.
	Name string
	// Arguments is a compact JSON object: the object written right after the
	// name in the message, or "{}" when there is none or it is not valid JSON.
	Arguments string
}

// ParseToolCalls applies the scripted model's rule for tool calls to text: every
// function name in tools that appears in text as a whole word (not inside a
// longer identifier) becomes one call, in order of first appearance, and each
// name appears at most once. A JSON object written right after the name (after
// optional white space) becomes the call's arguments; anything else gives "{}".
//
// It never fails: unknown names, broken JSON and odd bytes simply give fewer
// calls or empty arguments.
func ParseToolCalls(text string, tools []string) []ScriptedCall {
	type hit struct {
		pos  int
		name string
	}
	var hits []hit
	seen := make(map[string]bool, len(tools))
	for _, name := range tools {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if pos := wholeWord(text, name); pos >= 0 {
			hits = append(hits, hit{pos, name})
		}
	}
	// Order of appearance; a longer name wins a tie at the same position.
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && (hits[j].pos < hits[j-1].pos || (hits[j].pos == hits[j-1].pos && len(hits[j].name) > len(hits[j-1].name))); j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	calls := make([]ScriptedCall, 0, len(hits))
	for _, h := range hits {
		calls = append(calls, ScriptedCall{Name: h.name, Arguments: argumentsAfter(text[h.pos+len(h.name):])})
	}
	return calls
}

// isNameByte reports whether b can be part of a function name (a-z, A-Z, 0-9, _ and -).
func isNameByte(b byte) bool {
	return b == '_' || b == '-' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// wholeWord returns the first index of name in text where it is not part of a
// longer name, or -1.
func wholeWord(text, name string) int {
	for from := 0; from <= len(text)-len(name); {
		i := strings.Index(text[from:], name)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(name)
		if (i == 0 || !isNameByte(text[i-1])) && (end == len(text) || !isNameByte(text[end])) {
			return i
		}
		from = i + 1
	}
	return -1
}

// argumentsAfter decodes a JSON object at the start of rest (after white space).
func argumentsAfter(rest string) string {
	rest = strings.TrimLeft(rest, " \t\r\n")
	if !strings.HasPrefix(rest, "{") {
		return "{}"
	}
	dec := json.NewDecoder(strings.NewReader(rest))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return "{}"
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return "{}"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return "{}"
	}
	return buf.String()
}
