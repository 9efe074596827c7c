package searchindex

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
)

// SearchKeyword ranks the chunks in scope by BM25 over the postings
// table, pruning as chunkindex.SearchKeyword does (see the package
// comment).
func (x *Index) SearchKeyword(ctx context.Context, query string, s index.Scope, k int) ([]index.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	if len(chunkindex.QueryTerms(query)) == 0 || k <= 0 {
		return nil, nil
	}
	var out []index.Hit
	err := pgx.BeginTxFunc(ctx, x.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		cond, args, ok, err := scope(ctx, tx, s, 2)
		if err != nil || !ok {
			return err
		}
		keys, _, err := chunkindex.SearchKeyword(ctx, &postings{tx: tx, cond: cond, args: args}, query, k)
		if err != nil {
			return err
		}
		out, err = texts(ctx, tx, keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return out, nil
}

// postings is the postings table as a keyword search sees it: its
// transaction and scope.
type postings struct {
	tx   pgx.Tx
	cond string // on the alias c, arguments from $2
	args []any
	refs chunkindex.Refs
}

func (p *postings) Stats(ctx context.Context, terms []string) (chunkindex.IndexStats, error) {
	st := chunkindex.IndexStats{Terms: map[string]chunkindex.TermStats{}}
	// The scope's statistics (see chunkindex.PostingsSource).
	if err := p.tx.QueryRow(ctx, `SELECT coalesce(sum(c.chunks), 0)::bigint, coalesce(sum(c.length), 0)::bigint
		FROM vector_store_file_terms c WHERE `+scopeCond(p.args, 1), p.args...).Scan(&st.Chunks, &st.Length); err != nil {
		return st, err
	}
	rows, err := p.tx.Query(ctx, `SELECT c.term, sum(c.df)::bigint, max(c.max_tf), min(c.min_len) FROM vector_store_postings c
		WHERE c.term = ANY ($1::text[]) AND `+p.cond+` GROUP BY c.term`, append([]any{terms}, p.args...)...)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var ts chunkindex.TermStats
		if err := rows.Scan(&t, &ts.DF, &ts.MaxTF, &ts.MinLen); err != nil {
			return st, err
		}
		st.Terms[t] = ts
	}
	return st, rows.Err()
}

func (p *postings) Postings(ctx context.Context, terms []string, files []index.Ref, fn func(string, index.Ref, []byte) error) error {
	q := `SELECT c.term, c.vector_store_id, c.file_id, c.postings FROM vector_store_postings c
		WHERE c.term = ANY ($1::text[]) AND ` + p.cond
	args := append([]any{terms}, p.args...)
	if files != nil {
		vss := make([]string, len(files))
		fs := make([]string, len(files))
		for i, f := range files {
			vss[i], fs[i] = f.VectorStoreID, f.FileID
		}
		q += fmt.Sprintf(` AND (c.vector_store_id, c.file_id) IN (SELECT * FROM unnest($%d::text[], $%d::text[]))`,
			len(args)+1, len(args)+2)
		args = append(args, vss, fs)
	}
	rows, err := p.tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		vals := rows.RawValues() // valid until Next
		if len(vals) != 4 {
			return errors.New("postings: unexpected columns")
		}
		if err := fn(chunkindex.Term(terms, vals[0]), p.refs.Get(vals[1], vals[2]), vals[3]); err != nil {
			return err
		}
	}
	return rows.Err()
}

// texts returns the hits of keys, with their chunks' texts, in keys'
// order.
func texts(ctx context.Context, tx pgx.Tx, keys []chunkindex.Key) ([]index.Hit, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vss := make([]string, len(keys))
	files := make([]string, len(keys))
	ns := make([]int64, len(keys))
	at := map[chunkindex.Key]int{}
	for i, c := range keys {
		vss[i], files[i], ns[i] = c.VectorStoreID, c.FileID, int64(c.N)
		at[chunkindex.Key{VectorStoreID: c.VectorStoreID, FileID: c.FileID, N: c.N}] = i
	}
	rows, err := tx.Query(ctx, `SELECT c.vector_store_id, c.file_id, c.n, c.text
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k (vs, f, n)
		JOIN vector_store_chunks c ON c.vector_store_id = k.vs AND c.file_id = k.f AND c.n = k.n`, vss, files, ns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]index.Hit, len(keys))
	found := make([]bool, len(keys))
	for rows.Next() {
		var c index.Chunk
		var n int64
		if err := rows.Scan(&c.VectorStoreID, &c.FileID, &n, &c.Text); err != nil {
			return nil, err
		}
		c.Index = int(n)
		i, ok := at[chunkindex.Key{VectorStoreID: c.VectorStoreID, FileID: c.FileID, N: c.Index}]
		if !ok {
			continue
		}
		out[i] = index.Hit{Chunk: c, Score: keys[i].Score}
		found[i] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	hits := out[:0]
	for i, h := range out {
		if found[i] {
			hits = append(hits, h)
		}
	}
	return hits, nil
}

// writeTerms writes a file's postings rows (by COPY) and statistics (its
// old ones went with its chunks).
func writeTerms(ctx context.Context, tx pgx.Tx, ref index.Ref, ft chunkindex.FileTerms) error {
	if ft.Chunks == 0 {
		return nil
	}
	rows := make([][]any, len(ft.Rows))
	for i, r := range ft.Rows {
		rows[i] = []any{r.Term, ref.VectorStoreID, ref.FileID, int32(r.DF), int32(r.MaxTF), int32(r.MinLen), r.Blob}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"vector_store_postings"},
		[]string{"term", "vector_store_id", "file_id", "df", "max_tf", "min_len", "postings"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("postings: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO vector_store_file_terms (vector_store_id, file_id, chunks, length)
		VALUES ($1, $2, $3, $4)`, ref.VectorStoreID, ref.FileID, ft.Chunks, ft.Length); err != nil {
		return err
	}
	return nil
}

// moveTSVectors gives the chunks indexed before store migration 4 (those
// with a tsvector) postings, one file per transaction, and clears their
// tsvectors. It runs when the index opens; replicas opening together
// take turns on each file (its row is locked, then checked again).
func (x *Index) moveTSVectors(ctx context.Context) error {
	for {
		var ref index.Ref
		err := x.pool.QueryRow(ctx, `SELECT vector_store_id, file_id FROM vector_store_chunks
			WHERE terms IS NOT NULL LIMIT 1`).Scan(&ref.VectorStoreID, &ref.FileID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("search index: moving tsvectors: %w", err)
		}
		if err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error { return moveFile(ctx, tx, ref) }); err != nil {
			return fmt.Errorf("search index: moving the tsvectors of %s: %w", ref.FileID, err)
		}
	}
}

func moveFile(ctx context.Context, tx pgx.Tx, ref index.Ref) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2 FOR UPDATE`,
		ref.VectorStoreID, ref.FileID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // gone meanwhile, with its chunks
	}
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT n, text FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2
		AND terms IS NOT NULL ORDER BY n`, ref.VectorStoreID, ref.FileID)
	if err != nil {
		return err
	}
	var chunks []index.Chunk
	for rows.Next() {
		var c index.Chunk
		var n int64
		if err := rows.Scan(&n, &c.Text); err != nil {
			rows.Close()
			return err
		}
		c.Index = int(n)
		chunks = append(chunks, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return nil // moved by another
	}
	for _, q := range []string{`DELETE FROM vector_store_postings WHERE vector_store_id = $1 AND file_id = $2`,
		`DELETE FROM vector_store_file_terms WHERE vector_store_id = $1 AND file_id = $2`} {
		if _, err := tx.Exec(ctx, q, ref.VectorStoreID, ref.FileID); err != nil {
			return err
		}
	}
	if err := writeTerms(ctx, tx, ref, chunkindex.AnalyzeFile(chunks)); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE vector_store_chunks SET terms = NULL WHERE vector_store_id = $1 AND file_id = $2`,
		ref.VectorStoreID, ref.FileID)
	return err
}
