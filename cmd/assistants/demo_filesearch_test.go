package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo's file search part: two documents, a question, the search in
// the run's steps and the answer's citation resolved to its file name.
func TestDemoFileSearch(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "")
	t.Setenv(envBackendURL, "")
	var out bytes.Buffer
	require.NoError(t, demo(context.Background(), []string{"--step-delay", "0"}, &out), out.String())
	s := out.String()
	for _, want := range []string{
		"file search: refunds.md in vs_",
		"file search: shipping.md in vs_",
		"user: How long do refunds take?",
		"file_search step: refunds.md (",
		"assistant: Refunds are paid within 14 days of the return. 【0:0†refunds.md】\n",
		"  citation 【0:0†refunds.md】 at [47,63) -> refunds.md (file-",
	} {
		assert.Contains(t, s, want)
	}
}
