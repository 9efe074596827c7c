package indextest_test

import (
	"testing"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
	"github.com/assistants-go/assistants/server/retrieval/index/memory"
)

// TestMemory runs the conformance tests on the in-memory index.
func TestMemory(t *testing.T) {
	indextest.Run(t, indextest.Harness{New: func(t *testing.T, _ []index.Ref) index.Index {
		return memory.New()
	}})
}
