package assistants

import (
	"strings"
	"unicode/utf8"
)

// redacted replaces every secret-looking token that redact finds.
const redacted = "[REDACTED]"

// redact returns s with every secret-looking token replaced by [REDACTED]
// (a bearer token keeps its "Bearer" word). The tokens are those of the
// regular expression
//
//	\bsk-[A-Za-z0-9_*\-]{6,}
//	|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}
//	|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*
//	|\b[A-Za-z0-9]{32,}\b
//
// matched leftmost-first: OpenAI keys (sk-..., sk-proj-..., including the
// masked form the API echoes), bearer tokens, JWTs (Azure AD tokens) and long
// standalone alphanumeric runs such as Azure api-key values (32 hex or 84
// base62 characters). Object IDs (asst_..., run_..., req_...) are joined to
// their prefix by an underscore and so are never matched by the last rule.
//
// The scan is written by hand because a package-level regexp would link the
// regexp engine (and its Unicode tables) into every program that uses the
// client; TestRedactMatchesPattern and FuzzRedact check it against the
// expression above.
func redact(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		end := secretAt(s, i)
		if end < 0 {
			i++
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:i])
		if m := s[i:end]; len(m) > 6 && strings.EqualFold(m[:6], "bearer") {
			b.WriteString(m[:6] + " " + redacted)
		} else {
			b.WriteString(redacted)
		}
		last, i = end, end
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// secretAt returns the end of the secret-looking token that starts at s[i],
// trying redact's four rules in order, or -1 when none matches there.
func secretAt(s string, i int) int {
	boundary := i == 0 || !isWordByte(s[i-1]) // \b before a word byte
	// \bsk-[A-Za-z0-9_*\-]{6,}
	if boundary && strings.HasPrefix(s[i:], "sk-") {
		if n := span(s, i+3, keyByte); n >= 6 {
			return i + 3 + n
		}
	}
	// (?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}
	if len(s)-i > 6 && strings.EqualFold(s[i:i+6], "bearer") {
		if ws := span(s, i+6, isSpaceByte); ws > 0 {
			if n := span(s, i+6+ws, bearerByte); n >= 8 {
				return i + 6 + ws + n
			}
		}
	}
	// eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*
	if strings.HasPrefix(s[i:], "eyJ") {
		j := i + 3
		if n := span(s, j, jwtByte); n >= 4 && j+n < len(s) && s[j+n] == '.' {
			j += n + 1
			if n := span(s, j, jwtByte); n >= 4 && j+n < len(s) && s[j+n] == '.' {
				j += n + 1
				return j + span(s, j, jwtByte)
			}
		}
	}
	// \b[A-Za-z0-9]{32,}\b: the run is maximal, so it ends at a boundary
	// unless an underscore follows it.
	if boundary {
		if n := span(s, i, isAlnumByte); n >= 32 && (i+n == len(s) || s[i+n] != '_') {
			return i + n
		}
	}
	return -1
}

// span returns how many bytes of s from i on satisfy ok.
func span(s string, i int, ok func(byte) bool) int {
	n := 0
	for i+n < len(s) && ok(s[i+n]) {
		n++
	}
	return n
}

func isAlnumByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isWordByte is regexp's \w: ASCII letters, digits and underscore.
func isWordByte(c byte) bool { return isAlnumByte(c) || c == '_' }

// isSpaceByte is regexp's \s: \t, \n, \f, \r and space.
func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func keyByte(c byte) bool    { return isWordByte(c) || c == '*' || c == '-' }
func jwtByte(c byte) bool    { return isWordByte(c) || c == '-' }
func bearerByte(c byte) bool { return isAlnumByte(c) || strings.IndexByte("._~+/=-", c) >= 0 }

// truncate returns at most n bytes of s, cut on a rune boundary, with "..."
// appended when anything was cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
