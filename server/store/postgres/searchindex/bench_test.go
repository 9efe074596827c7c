package searchindex

import (
	"context"
	"os"
	"testing"

	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/retrieval/index/indextest"
)

var benchHarness = indextest.BenchHarness{
	New: func(b *testing.B, refs []index.Ref) index.Index {
		s := openStore(b, pgtest.Schema(b))
		indextest.Attach(b, s, refs)
		return newIndex(b, s)
	},
	// What autovacuum does after a bulk load: the postings' statistics
	// are then read from their index alone. Set ASSISTANTS_BENCH_NO_VACUUM
	// to measure before it.
	Settle: func(b *testing.B, x index.Index) {
		if os.Getenv("ASSISTANTS_BENCH_NO_VACUUM") != "" {
			return
		}
		if _, err := x.(*Index).pool.Exec(context.Background(),
			"VACUUM ANALYZE vector_store_postings, vector_store_file_terms, vector_store_file_vectors, vector_store_chunks"); err != nil {
			b.Fatal(err)
		}
	},
}

// BenchmarkIngest10MB: see indextest.BenchIngest10MB.
func BenchmarkIngest10MB(b *testing.B) { indextest.BenchIngest10MB(b, benchHarness) }

// BenchmarkSearch100k: see indextest.BenchSearch100k.
func BenchmarkSearch100k(b *testing.B) { indextest.BenchSearch100k(b, benchHarness) }
