// Package searchindex is the retrieval index (index.Keyword, index.Vector
// and index.Writer of server/retrieval/index) kept in a SQLite store's
// database, next to the vector store chunks it indexes.
//
// # Schema (store migrations 2 and 4)
//
// Each chunk row of vector_store_chunks carries its text, its embedding (a
// float32 little-endian blob, scaled to unit length) and the embedding's
// model and dimension. Its index terms (the in-memory index's analysis,
// package analyze) are in the postings table vector_store_postings: one
// row per term and file, with the file's postings of the term packed in a
// blob (see chunkindex), and each file's chunk count and total length in
// vector_store_file_terms. Each file's vectors are also kept quantized to
// 8 bits in one row of vector_store_file_vectors, with their model and
// dimension. Triggers remove a file's postings, statistics and quantized
// row when its chunks go, so the store's own deletes (of a file, an
// attachment, a vector store) leave nothing behind. Chunks the store
// writes by itself (without this index) have no terms or vectors: only
// chunks written by Put are found. Chunks indexed before migration 4 kept
// their terms in an FTS5 table; New moves them to the postings.
//
// # Keyword search
//
// BM25 as the in-memory index computes it (k1 1.2, b 0.75; statistics of
// the chunks in scope, so that no other vector store or project sways a
// search's scores), with MaxScore pruning (chunkindex.SearchKeyword): the
// query's terms are read rarest first, and once the terms left cannot lift
// a chunk not yet seen into the k best, they are read only in the files of
// the chunks that can still make it. The result is that of scoring every
// chunk. The scope (files allowed by the filter) is a condition of each
// read, so it applies before ranking. Memory: a float64 per chunk in scope
// holding a read term, plus one postings row at a time.
//
// # Vector search
//
// Cosine similarity. Each file's quantized row is scored chunk by chunk
// (over the query's non-zero numbers only when it is sparse, as the
// built-in embedder's are), keeping the best Candidates×k (at least k+32)
// in a heap; those are then rescored exactly from their float32 vectors in the same read
// transaction. Rows are kept in process memory between
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
// and Put checks again in its transaction. Deleting the vector stores'
// files (or re-adding them, which re-embeds them) makes room for another
// model.
package searchindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
	"github.com/assistants-go/assistants/server/store/sqlite"
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

// Index is the SQLite search index. It is safe for concurrent use:
// searches run on a pool of read connections beside the store's writer.
type Index struct {
	w, r  *sql.DB
	o     Options
	cache *chunkindex.VectorCache // nil: none

	mu  sync.Mutex
	dim int // o.Dimension, or learnt
}

var _ index.Index = (*Index)(nil)

// New returns the index of s's database. It opens read connections of its
// own (Close closes them; s stays open). It fails with ErrModel when the
// database holds vectors of another model or dimension than Options'.
func New(ctx context.Context, s *sqlite.Store, opts ...func(*Options)) (*Index, error) {
	o := chunkindex.Resolve(opts...)
	q := url.Values{"_pragma": {"busy_timeout(10000)", "query_only(1)"}}
	r, err := sql.Open("sqlite", "file:"+s.Path()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	x := &Index{w: s.DB(), r: r, o: o, dim: o.Dimension, cache: chunkindex.NewVectorCache(o.VectorCacheBytes)}
	if x.dim == 0 {
		var d sql.NullInt64
		err := r.QueryRowContext(ctx, `SELECT dim FROM vector_store_file_vectors WHERE model = ? LIMIT 1`, o.Model).Scan(&d)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			r.Close()
			return nil, fmt.Errorf("search index: %w", err)
		}
		x.dim = int(d.Int64)
	}
	if x.dim > 0 {
		var model string
		var dim int
		err := r.QueryRowContext(ctx, `SELECT model, dim FROM vector_store_file_vectors WHERE NOT (model = ? AND dim = ?) LIMIT 1`,
			o.Model, x.dim).Scan(&model, &dim)
		if err == nil {
			r.Close()
			return nil, chunkindex.ModelError(o.Model, x.dim, model, dim)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			r.Close()
			return nil, fmt.Errorf("search index: %w", err)
		}
	}
	if err := x.moveFTS(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return x, nil
}

// SerialSearches returns true (index.Serial): a hybrid search's keyword
// and vector halves run one after the other. Run at the same time on two
// of the index's read connections they took longer than in turn
// (BenchmarkSearch100k hybrid p50 43 and 46 ms against 21 and 25 ms in
// turn, side by side on a 2-core machine at load average 13 to 15).
func (x *Index) SerialSearches() bool { return true }

// Close closes the index's read connections.
func (x *Index) Close() error { return x.r.Close() }

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
	terms := chunkindex.AnalyzeFile(chunks)
	units := make([][]float32, len(chunks))
	raw := make([][]byte, len(chunks))
	hasVectors := false
	for i, c := range chunks {
		if c.Vector != nil {
			units[i] = chunkindex.Unit(c.Vector)
			raw[i] = chunkindex.EncodeVector(units[i])
			hasVectors = true
		}
	}
	blob, nvec := chunkindex.EncodeFile(chunks, units, dim)

	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit: nothing to undo
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?`,
		ref.VectorStoreID, ref.FileID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: file %s of vector store %s", ErrNoFile, ref.FileID, ref.VectorStoreID)
	}
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	if hasVectors {
		var model string
		var have int
		err := tx.QueryRowContext(ctx, `SELECT model, dim FROM vector_store_file_vectors
			WHERE NOT (model = ? AND dim = ?) AND NOT (vector_store_id = ? AND file_id = ?) LIMIT 1`,
			x.o.Model, dim, ref.VectorStoreID, ref.FileID).Scan(&model, &have)
		if err == nil {
			return chunkindex.ModelError(x.o.Model, dim, model, have)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("search index: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?`,
		ref.VectorStoreID, ref.FileID); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO vector_store_chunks
		(vector_store_id, file_id, n, embedding_model, embedding_dim, embedding, text) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	defer ins.Close()
	for i, c := range chunks {
		model, d := "", 0
		if raw[i] != nil {
			model, d = x.o.Model, dim
		}
		var id int64
		if err := ins.QueryRowContext(ctx, ref.VectorStoreID, ref.FileID, c.Index, model, d, raw[i], c.Text).Scan(&id); err != nil {
			return fmt.Errorf("search index: chunk %d: %w", i, err)
		}
	}
	if err := writeTerms(ctx, tx, ref, terms); err != nil {
		return err
	}
	if nvec > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vector_store_file_vectors
			(vector_store_id, file_id, model, dim, chunks, vectors, version) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			ref.VectorStoreID, ref.FileID, x.o.Model, dim, nvec, blob, chunkindex.NewVersion()); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
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

// Delete removes ref's chunks (the attachment stays).
func (x *Index) Delete(ctx context.Context, ref index.Ref) error {
	_, err := x.w.ExecContext(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?`,
		ref.VectorStoreID, ref.FileID)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// DeleteVectorStore removes the chunks of a vector store's files.
func (x *Index) DeleteVectorStore(ctx context.Context, vectorStoreID string) error {
	_, err := x.w.ExecContext(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = ?`, vectorStoreID)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// querier is what scope needs of a connection or transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// scope returns the SQL condition (on the alias c, with its argument)
// that keeps the chunks of scope, or ok false when nothing is in scope.
// Allow is called once per file of the scope's vector stores.
func scope(ctx context.Context, q querier, s index.Scope) (cond string, arg string, ok bool, err error) {
	ids := chunkindex.Stores(s)
	if len(ids) == 0 {
		return "", "", false, nil
	}
	idsJSON, _ := json.Marshal(ids)
	if s.Allow == nil {
		return `c.vector_store_id IN (SELECT value FROM json_each(?))`, string(idsJSON), true, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT vector_store_id, file_id FROM vector_store_files
		WHERE vector_store_id IN (SELECT value FROM json_each(?)) ORDER BY vector_store_id, file_id`, string(idsJSON))
	if err != nil {
		return "", "", false, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var allowed [][2]string
	for rows.Next() {
		var ref index.Ref
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID); err != nil {
			return "", "", false, fmt.Errorf("search index: %w", err)
		}
		if s.Allow(ref) {
			allowed = append(allowed, [2]string{ref.VectorStoreID, ref.FileID})
		}
	}
	if err := rows.Err(); err != nil {
		return "", "", false, fmt.Errorf("search index: %w", err)
	}
	if len(allowed) == 0 {
		return "", "", false, nil
	}
	b, _ := json.Marshal(allowed)
	return `(c.vector_store_id, c.file_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))`, string(b), true, nil
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
	tx, err := x.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	cond, arg, ok, err := scope(ctx, tx, s)
	if err != nil || !ok {
		return nil, err
	}
	top := chunkindex.NewTopK(x.o.Rerank(k))
	if err := x.scanVectors(ctx, tx, q, dim, cond, arg, top); err != nil {
		return nil, err
	}
	cands := top.Sorted()
	if len(cands) == 0 {
		return nil, nil
	}
	keys := make([][3]any, len(cands))
	for i, c := range cands {
		keys[i] = [3]any{c.VectorStoreID, c.FileID, c.N}
	}
	kj, _ := json.Marshal(keys)
	rows, err := tx.QueryContext(ctx, `SELECT c.vector_store_id, c.file_id, c.n, c.text, c.embedding
		FROM json_each(?) j JOIN vector_store_chunks c
		ON c.vector_store_id = j.value ->> 0 AND c.file_id = j.value ->> 1 AND c.n = j.value ->> 2
		WHERE c.embedding_model = ? AND c.embedding_dim = ?`, string(kj), x.o.Model, dim)
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var out []index.Hit
	vec := make([]float32, 0, dim)
	for rows.Next() {
		var h index.Hit
		var raw sql.RawBytes
		if err := rows.Scan(&h.Chunk.VectorStoreID, &h.Chunk.FileID, &h.Chunk.Index, &h.Chunk.Text, &raw); err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		if vec, err = chunkindex.DecodeVector(vec, raw); err != nil {
			return nil, err
		}
		if len(vec) != dim {
			continue
		}
		if h.Score = chunkindex.Dot(q, vec); h.Score > 0 {
			out = append(out, h)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return chunkindex.Best(out, k), nil
}
