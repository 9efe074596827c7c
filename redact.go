package assistants

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// redacted replaces every secret-looking token that redact finds.
const redacted = "[REDACTED]"

// secretPattern matches what may be a credential in text that a server or a
// peer sent back: OpenAI keys (sk-..., sk-proj-..., including the masked form
// the API echoes), bearer tokens, JWTs (Azure AD tokens) and long standalone
// alphanumeric runs such as Azure api-key values (32 hex or 84 base62
// characters). Object IDs (asst_..., run_..., req_...) are joined to their
// prefix by an underscore and so are never matched by the last rule.
var secretPattern = regexp.MustCompile(
	`\bsk-[A-Za-z0-9_*\-]{6,}` +
		`|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}` +
		`|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*` +
		`|\b[A-Za-z0-9]{32,}\b`)

// redact returns s with every secret-looking token replaced by [REDACTED].
func redact(s string) string {
	if s == "" {
		return s
	}
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) > 6 && strings.EqualFold(m[:6], "bearer") {
			return m[:6] + " " + redacted
		}
		return redacted
	})
}

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
