// Package searchindex is the retrieval index (index.Keyword, index.Vector
// and index.Writer of server/retrieval/index) kept in a PostgreSQL store's
// database, next to the vector store chunks it indexes. It needs no
// extension.
//
// # Schema (store migrations 2 and 4)
//
// Each chunk row of vector_store_chunks carries its text and its embedding
// (a float32 little-endian bytea, scaled to unit length) with the
// embedding's model and dimension. Its index terms (the in-memory index's
// analysis, package analyze) are in the postings table
// vector_store_postings: one row per term and file, with the file's
// postings of the term packed in a bytea (see chunkindex), and each file's
// chunk count and total length in vector_store_file_terms. Each file's
// vectors are also kept quantized to 8 bits in one row of
// vector_store_file_vectors, with their model and dimension. The store's
// deletes cascade to these rows (a trigger covers the store replacing a
// file's chunks). Chunks the store writes by itself (without this index)
// have no terms or vectors: only chunks written by Put are found. Chunks
// indexed before migration 4 kept their terms in a tsvector column; New
// moves them to the postings.
//
// # Keyword search
//
// BM25 as the in-memory index computes it (k1 1.2, b 0.75; statistics of
// the chunks in scope, so that no other vector store or project sways a
// search's scores), with MaxScore pruning (chunkindex.SearchKeyword): the
// query's terms are read rarest first, and once the terms left cannot lift
// a chunk not yet seen into the k best, they are read only in the files of
// the chunks that can still make it. The result is that of scoring every
// chunk. All reads of a search are in one repeatable-read transaction;
// the scope (files allowed by the filter) is a condition of each, so it
// applies before ranking. Memory: a float64 per chunk in scope holding a
// read term, plus one postings row at a time.
//
// # Vector search
//
// Cosine similarity. Each file's quantized row is scored chunk by chunk
// (over the query's non-zero numbers only when it is sparse, as the
// built-in embedder's are), keeping the best Candidates×k (at least k+32)
// in a heap; those are then rescored exactly from their float32 vectors, in
// the same repeatable-read transaction. Rows are kept in process memory between
// searches (Options.VectorCacheBytes, default 64 MiB; least recently used
// rows go first) under a version written with each row: a search lists
// the versions in scope and reads from the database only the rows it does
// not hold, so a row another replica replaced is read again. Memory is
// bounded by the cache's size plus, for the rows read, the largest
// file's row (dimension+8 bytes per chunk) plus the heap, whatever the
// number of chunks.
//
// # Models
//
// The store never mixes embedding models or dimensions: New fails with
// ErrModel when the database holds vectors of another model or dimension,
// and Put checks again in its transaction, under an advisory lock that
// keeps two writers of different models apart. Deleting the vector stores'
// files (or re-adding them, which re-embeds them) makes room for another
// model.
package searchindex

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
	"github.com/assistants-go/assistants/server/store/postgres"
)

// Options configure New: Model (default the built-in embedder's),
// Dimension (default 256 for the built-in model, else that of the stored
// vectors or of the first put) and Candidates (default 4).
type Options = chunkindex.Options

// Errors (wrapped: test with errors.Is).
var (
	// ErrModel: vectors of another embedding model or dimension.
	ErrModel = chunkindex.ErrModel
	// ErrNoFile: Put of a file not attached to the vector store.
	ErrNoFile = chunkindex.ErrNoFile
)

// modelLockKey is the advisory lock (with the schema's hash) that orders
// writers of a model's first vectors against all other vector writers.
const modelLockKey = 0x5345415243480d

// Index is the PostgreSQL search index. It is safe for concurrent use.
type Index struct {
	pool  *pgxpool.Pool
	o     Options
	cache *chunkindex.VectorCache // nil: none

	mu  sync.Mutex
	dim int // o.Dimension, or learnt
}

var _ index.Index = (*Index)(nil)

// New returns the index of s's database (it uses s's connection pool). It
// fails with ErrModel when the database holds vectors of another model or
// dimension than Options'.
func New(ctx context.Context, s *postgres.Store, opts ...func(*Options)) (*Index, error) {
	o := chunkindex.Resolve(opts...)
	x := &Index{pool: s.Pool(), o: o, dim: o.Dimension, cache: chunkindex.NewVectorCache(o.VectorCacheBytes)}
	if x.dim == 0 {
		err := x.pool.QueryRow(ctx, `SELECT dim FROM vector_store_file_vectors WHERE model = $1 LIMIT 1`, o.Model).Scan(&x.dim)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("search index: %w", err)
		}
	}
	if x.dim > 0 {
		var model string
		var dim int
		err := x.pool.QueryRow(ctx, `SELECT model, dim FROM vector_store_file_vectors WHERE NOT (model = $1 AND dim = $2) LIMIT 1`,
			o.Model, x.dim).Scan(&model, &dim)
		if err == nil {
			return nil, chunkindex.ModelError(o.Model, x.dim, model, dim)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("search index: %w", err)
		}
	}
	if err := x.moveTSVectors(ctx); err != nil {
		return nil, err
	}
	return x, nil
}

// Model returns the embedding model of the index's vectors.
func (x *Index) Model() string { return x.o.Model }

// Dimension returns the length of the index's vectors (0 while unknown).
func (x *Index) Dimension() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.dim
}

// Put replaces ref's chunks (rows, terms and vectors) in one transaction.
// It fails, changing nothing, with ErrNoFile when ref is not a vector
// store file of the store, index.ErrDimension for a vector of another
// length than the index's, and ErrModel when the database holds vectors
// of another model or dimension.
func (x *Index) Put(ctx context.Context, ref index.Ref, chunks []index.Chunk) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	dim, err := chunkindex.CheckVectors(chunks, x.Dimension())
	if err != nil {
		return err
	}
	ns := make([]int64, len(chunks))
	texts := make([]string, len(chunks))
	terms := chunkindex.AnalyzeFile(chunks)
	models := make([]string, len(chunks))
	dims := make([]int32, len(chunks))
	raw := make([][]byte, len(chunks))
	units := make([][]float32, len(chunks))
	hasVectors := false
	for i, c := range chunks {
		ns[i], texts[i] = int64(c.Index), c.Text
		if c.Vector != nil {
			units[i] = chunkindex.Unit(c.Vector)
			raw[i] = chunkindex.EncodeVector(units[i])
			models[i], dims[i] = x.o.Model, int32(dim)
			hasVectors = true
		}
	}
	blob, nvec := chunkindex.EncodeFile(chunks, units, dim)

	err = pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2 FOR KEY SHARE`,
			ref.VectorStoreID, ref.FileID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: file %s of vector store %s", ErrNoFile, ref.FileID, ref.VectorStoreID)
		}
		if err != nil {
			return err
		}
		if hasVectors {
			if err := x.checkModel(ctx, tx, ref, dim); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2`,
			ref.VectorStoreID, ref.FileID); err != nil {
			return err
		}
		const per = 2000
		for start := 0; start < len(chunks); start += per {
			end := min(start+per, len(chunks))
			_, err := tx.Exec(ctx, `INSERT INTO vector_store_chunks
				(vector_store_id, file_id, n, text, embedding_model, embedding_dim, embedding)
				SELECT $1, $2, u.n, u.text, u.model, u.dim, u.embedding
				FROM unnest($3::bigint[], $4::text[], $5::text[], $6::int[], $7::bytea[])
					AS u (n, text, model, dim, embedding)`,
				ref.VectorStoreID, ref.FileID, ns[start:end], texts[start:end], models[start:end], dims[start:end],
				raw[start:end])
			if err != nil {
				return fmt.Errorf("chunks %d-%d: %w", start, end-1, err)
			}
		}
		if nvec > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO vector_store_file_vectors
				(vector_store_id, file_id, model, dim, chunks, vectors, version) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				ref.VectorStoreID, ref.FileID, x.o.Model, dim, nvec, blob, chunkindex.NewVersion()); err != nil {
				return err
			}
		}
		return writeTerms(ctx, tx, ref, terms)
	})
	if err != nil {
		if errors.Is(err, ErrModel) || errors.Is(err, ErrNoFile) {
			return err
		}
		return fmt.Errorf("search index: %w", err)
	}
	if hasVectors {
		x.mu.Lock()
		if x.dim == 0 {
			x.dim = dim
		}
		x.mu.Unlock()
	}
	return nil
}

// checkModel refuses vectors of x's model at dim when other files hold
// another model or dimension. The first vectors of a model are written
// under the exclusive advisory lock, the others under the shared one, each
// checked after taking it: two writers of different models cannot both
// pass.
func (x *Index) checkModel(ctx context.Context, tx pgx.Tx, ref index.Ref, dim int) error {
	var present bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vector_store_file_vectors
		WHERE model = $1 AND dim = $2 AND NOT (vector_store_id = $3 AND file_id = $4))`,
		x.o.Model, dim, ref.VectorStoreID, ref.FileID).Scan(&present); err != nil {
		return err
	}
	lock := `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`
	if present {
		lock = `SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))`
	}
	if _, err := tx.Exec(ctx, lock, int32(modelLockKey&0x7fffffff)); err != nil {
		return err
	}
	var model string
	var have int
	err := tx.QueryRow(ctx, `SELECT model, dim FROM vector_store_file_vectors
		WHERE NOT (model = $1 AND dim = $2) AND NOT (vector_store_id = $3 AND file_id = $4) LIMIT 1`,
		x.o.Model, dim, ref.VectorStoreID, ref.FileID).Scan(&model, &have)
	if err == nil {
		return chunkindex.ModelError(x.o.Model, dim, model, have)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return nil
}

// Delete removes ref's chunks (the attachment stays).
func (x *Index) Delete(ctx context.Context, ref index.Ref) error {
	_, err := x.pool.Exec(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2`,
		ref.VectorStoreID, ref.FileID)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// DeleteVectorStore removes the chunks of a vector store's files.
func (x *Index) DeleteVectorStore(ctx context.Context, vectorStoreID string) error {
	_, err := x.pool.Exec(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = $1`, vectorStoreID)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// querier is what scope needs of a pool or transaction.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (pgx.Rows, error)
}

// scope returns the SQL condition on the alias c keeping the chunks of s,
// its arguments numbered from first, or ok false when nothing is in
// scope. Allow is called once per file of the scope's vector stores.
func scope(ctx context.Context, q querier, s index.Scope, first int) (cond string, args []any, ok bool, err error) {
	ids := chunkindex.Stores(s)
	if len(ids) == 0 {
		return "", nil, false, nil
	}
	if s.Allow == nil {
		args = []any{ids}
		return scopeCond(args, first), args, true, nil
	}
	rows, err := q.Query(ctx, `SELECT vector_store_id, file_id FROM vector_store_files
		WHERE vector_store_id = ANY ($1::text[]) ORDER BY vector_store_id, file_id`, ids)
	if err != nil {
		return "", nil, false, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var vss, files []string
	for rows.Next() {
		var ref index.Ref
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID); err != nil {
			return "", nil, false, fmt.Errorf("search index: %w", err)
		}
		if s.Allow(ref) {
			vss, files = append(vss, ref.VectorStoreID), append(files, ref.FileID)
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, false, fmt.Errorf("search index: %w", err)
	}
	if len(vss) == 0 {
		return "", nil, false, nil
	}
	args = []any{vss, files}
	return scopeCond(args, first), args, true, nil
}

// scopeCond returns the condition on the alias c of scope's arguments
// args, numbered from $first.
func scopeCond(args []any, first int) string {
	if len(args) == 1 {
		return fmt.Sprintf(`c.vector_store_id = ANY ($%d::text[])`, first)
	}
	return fmt.Sprintf(`(c.vector_store_id, c.file_id) IN (SELECT * FROM unnest($%d::text[], $%d::text[]))`, first, first+1)
}

// SearchVector ranks the chunks in scope by cosine similarity with query
// (see the package comment).
func (x *Index) SearchVector(ctx context.Context, query []float32, s index.Scope, k int) ([]index.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	dim := x.Dimension()
	if k <= 0 || dim == 0 {
		return nil, nil
	}
	if len(query) != dim {
		return nil, fmt.Errorf("%w: the query has %d numbers, the index %d", index.ErrDimension, len(query), dim)
	}
	q := chunkindex.Unit(query)
	var out []index.Hit
	err := pgx.BeginTxFunc(ctx, x.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		cond, sargs, ok, err := scope(ctx, tx, s, 3)
		if err != nil || !ok {
			return err
		}
		top := chunkindex.NewTopK(x.o.Rerank(k))
		if err := x.scanVectors(ctx, tx, q, dim, cond, sargs, top); err != nil {
			return err
		}
		cands := top.Sorted()
		if len(cands) == 0 {
			return nil
		}
		vss := make([]string, len(cands))
		files := make([]string, len(cands))
		ns := make([]int64, len(cands))
		for i, c := range cands {
			vss[i], files[i], ns[i] = c.VectorStoreID, c.FileID, int64(c.N)
		}
		rows, err := tx.Query(ctx, `SELECT c.vector_store_id, c.file_id, c.n, c.text, c.embedding
			FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k (vs, f, n)
			JOIN vector_store_chunks c ON c.vector_store_id = k.vs AND c.file_id = k.f AND c.n = k.n
			WHERE c.embedding_model = $4 AND c.embedding_dim = $5`, vss, files, ns, x.o.Model, dim)
		if err != nil {
			return err
		}
		defer rows.Close()
		vec := make([]float32, 0, dim)
		for rows.Next() {
			var h index.Hit
			var n int64
			var raw []byte
			if err := rows.Scan(&h.Chunk.VectorStoreID, &h.Chunk.FileID, &n, &h.Chunk.Text, &raw); err != nil {
				return err
			}
			h.Chunk.Index = int(n)
			if vec, err = chunkindex.DecodeVector(vec, raw); err != nil {
				return err
			}
			if len(vec) != dim {
				continue
			}
			if h.Score = chunkindex.Dot(q, vec); h.Score > 0 {
				out = append(out, h)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return chunkindex.Best(out, k), nil
}
