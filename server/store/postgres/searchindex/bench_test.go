package searchindex

import (
	"testing"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
)

var benchHarness = indextest.BenchHarness{New: func(b *testing.B, refs []index.Ref) index.Index {
	s := openStore(b, pgtest.Schema(b))
	indextest.Attach(b, s, refs)
	return newIndex(b, s)
}}

// BenchmarkIngest10MB: see indextest.BenchIngest10MB.
func BenchmarkIngest10MB(b *testing.B) { indextest.BenchIngest10MB(b, benchHarness) }

// BenchmarkSearch100k: see indextest.BenchSearch100k.
func BenchmarkSearch100k(b *testing.B) { indextest.BenchSearch100k(b, benchHarness) }
