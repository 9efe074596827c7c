package assistants

import (
	"regexp"
	"strings"
	"testing"
)

// secretPattern is the expression redact implements by hand (see its doc).
var secretPattern = regexp.MustCompile(
	`\bsk-[A-Za-z0-9_*\-]{6,}` +
		`|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}` +
		`|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*` +
		`|\b[A-Za-z0-9]{32,}\b`)

// redactByPattern is redact as it was written with secretPattern.
func redactByPattern(s string) string {
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) > 6 && strings.EqualFold(m[:6], "bearer") {
			return m[:6] + " " + redacted
		}
		return redacted
	})
}

var redactCases = []string{
	"",
	"plain text, nothing secret",
	"Incorrect API key provided: sk-proj-abc123****************************wxyz.",
	"key sk-12345678 and sk-12345 (too short) and xsk-12345678 (no boundary) and _sk-12345678",
	"sk-******** masked",
	"Authorization: Bearer abcdefgh12345",
	"bearer\tabc.def_ghi~jkl+mno/pqr=",
	"BEARER  short",
	"bearerbearer abcdefghij",
	"Bearer\n\f\r abcdefgh and Bearer",
	"eyJhbGciOi.eyJzdWIiOiIx.sig-_nature and eyJabc.def.ghi and eyJabcd.efgh.",
	"eyJabcd.efgh",
	strings.Repeat("a", 31) + " " + strings.Repeat("b", 32) + " " + strings.Repeat("C", 84),
	strings.Repeat("a", 40) + "_tail " + "x_" + strings.Repeat("d", 40) + " " + strings.Repeat("e", 40) + "-f",
	"No run found with id 'run_abc123DEF456ghi789JKL012'.",
	"request req_0123456789abcdef0123456789abcdef",
	"é" + strings.Repeat("f", 33) + "é sk-abcdefgh\xff" + strings.Repeat("9", 32),
	"Bearer sk-12345678abcd",
	"bearer " + strings.Repeat("z", 40),
	strings.Repeat("q", 40) + "bearer abcdefghi",
}

// redact's hand-written scan finds and replaces what secretPattern does.
func TestRedactMatchesPattern(t *testing.T) {
	for _, s := range redactCases {
		if got, want := redact(s), redactByPattern(s); got != want {
			t.Errorf("redact(%q)\n got %q\nwant %q", s, got, want)
		}
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range redactCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := redact(s), redactByPattern(s); got != want {
			t.Errorf("redact(%q)\n got %q\nwant %q", s, got, want)
		}
	})
}
