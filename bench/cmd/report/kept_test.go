package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeptOf(t *testing.T) {
	part := keptBegin + "\n## The server's stores\n\nfigures\n" + keptEnd
	cases := []struct {
		name, doc string
		ok        bool
	}{
		{"between the peers' sections", "# Benchmarks\n\n" + part + "\n\n## benchstat\n", true},
		{"no markers", "# Benchmarks\n\n## The server's stores\n", false},
		{"no end", "# Benchmarks\n" + keptBegin + "\n## The server's stores\n", false},
		{"end first", keptEnd + "\n" + keptBegin + "\n", false},
		{"twice", part + "\n" + part, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := keptOf([]byte(c.doc), "benchmarks.md")
			if !c.ok {
				if !errors.Is(err, errNoKept) {
					t.Fatalf("err %v, want errNoKept", err)
				}
				return
			}
			if err != nil || got != part {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

// TestTemplateKeepsTheDocument: docs/benchmarks.md has its kept part,
// and the template places it once, after the same section as the document.
func TestTemplateKeepsTheDocument(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "benchmarks.md")
	if _, err := keptPart(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(docTemplate, "{{.Kept}}"); n != 1 {
		t.Fatalf("the template places the kept part %d times", n)
	}
	// The last heading before a mark, and the first after the part.
	around := func(s, begin, end string) (string, string) {
		i, j := strings.Index(s, begin), strings.Index(s, end)+len(end)
		h := strings.LastIndex(s[:i], "\n## ")
		k := strings.Index(s[j:], "\n## ")
		return strings.SplitN(s[h+1:], "\n", 2)[0], strings.SplitN(s[j+k+1:], "\n", 2)[0]
	}
	db, da := around(string(b), keptBegin, keptEnd)
	tb, ta := around(docTemplate, "{{.Kept}}", "{{.Kept}}")
	if db != tb || da != ta {
		t.Fatalf("the kept part sits between %q and %q in the document, %q and %q in the template", db, da, tb, ta)
	}
}
