package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// The server's sections of docs/benchmarks.md (its stores, the load test,
// retrieval) are measured by hand with other commands and written in the
// document itself. The report keeps them: it copies the text between these
// two lines of the document it rewrites into the new one ({{.Kept}} in the
// template), markers included.
const (
	keptBegin = "<!-- Kept as it is by bench/cmd/report (make bench-peers): the server's sections are edited here, in docs/benchmarks.md. -->"
	keptEnd   = "<!-- End of the part bench/cmd/report keeps. -->"
)

// keptPart returns the kept part of the document at path, markers
// included. A document without both markers, in order, is an error: the
// report would otherwise drop those sections.
func keptPart(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("the kept part of %s: %w", path, err)
	}
	return keptOf(b, path)
}

var errNoKept = errors.New("the markers of the kept part are missing or out of order")

func keptOf(b []byte, path string) (string, error) {
	i := bytes.Index(b, []byte(keptBegin))
	j := bytes.Index(b, []byte(keptEnd))
	if i < 0 || j < i || bytes.Count(b, []byte(keptBegin)) != 1 || bytes.Count(b, []byte(keptEnd)) != 1 {
		return "", fmt.Errorf("%s: %w (restore them from git: the lines %q and %q around the server's sections)", path, errNoKept, keptBegin, keptEnd)
	}
	return string(b[i : j+len(keptEnd)]), nil
}
