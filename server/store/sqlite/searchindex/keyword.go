package searchindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

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
	tx, err := x.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	cond, arg, ok, err := scope(ctx, tx, s)
	if err != nil || !ok {
		return nil, err
	}
	keys, _, err := chunkindex.SearchKeyword(ctx, &postings{tx: tx, cond: cond, arg: arg}, query, k)
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return texts(ctx, tx, keys)
}

// postings is the postings table as a keyword search sees it: its read
// transaction and scope.
type postings struct {
	tx   *sql.Tx
	cond string // on the alias c
	arg  string
	refs chunkindex.Refs
}

func (p *postings) Stats(ctx context.Context, terms []string) (chunkindex.IndexStats, error) {
	st := chunkindex.IndexStats{Terms: map[string]chunkindex.TermStats{}}
	// The scope's statistics (see chunkindex.PostingsSource).
	if err := p.tx.QueryRowContext(ctx, `SELECT coalesce(sum(c.chunks), 0), coalesce(sum(c.length), 0)
		FROM vector_store_file_terms c WHERE `+p.cond, p.arg).Scan(&st.Chunks, &st.Length); err != nil {
		return st, err
	}
	tj, _ := json.Marshal(terms)
	rows, err := p.tx.QueryContext(ctx, `SELECT c.term, sum(c.df), max(c.max_tf), min(c.min_len) FROM vector_store_postings c
		WHERE c.term IN (SELECT value FROM json_each(?)) AND `+p.cond+` GROUP BY c.term`, string(tj), p.arg)
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
	tj, _ := json.Marshal(terms)
	q := `SELECT c.term, c.vector_store_id, c.file_id, c.postings FROM vector_store_postings c
		WHERE c.term IN (SELECT value FROM json_each(?)) AND ` + p.cond
	args := []any{string(tj), p.arg}
	if files != nil {
		pairs := make([][2]string, len(files))
		for i, f := range files {
			pairs[i] = [2]string{f.VectorStoreID, f.FileID}
		}
		fj, _ := json.Marshal(pairs)
		q += ` AND (c.vector_store_id, c.file_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))`
		args = append(args, string(fj))
	}
	rows, err := p.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var term, vs, file, blob sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&term, &vs, &file, &blob); err != nil {
			return err
		}
		if err := fn(chunkindex.Term(terms, term), p.refs.Get(vs, file), blob); err != nil {
			return err
		}
	}
	return rows.Err()
}

// texts returns the hits of keys, with their chunks' texts, in keys'
// order.
func texts(ctx context.Context, tx *sql.Tx, keys []chunkindex.Key) ([]index.Hit, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	kj := make([][3]any, len(keys))
	at := map[chunkindex.Key]int{}
	for i, c := range keys {
		kj[i] = [3]any{c.VectorStoreID, c.FileID, c.N}
		at[chunkindex.Key{VectorStoreID: c.VectorStoreID, FileID: c.FileID, N: c.N}] = i
	}
	b, _ := json.Marshal(kj)
	rows, err := tx.QueryContext(ctx, `SELECT c.vector_store_id, c.file_id, c.n, c.text
		FROM json_each(?) j JOIN vector_store_chunks c
		ON c.vector_store_id = j.value ->> 0 AND c.file_id = j.value ->> 1 AND c.n = j.value ->> 2`, string(b))
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	out := make([]index.Hit, len(keys))
	found := make([]bool, len(keys))
	for rows.Next() {
		var c index.Chunk
		if err := rows.Scan(&c.VectorStoreID, &c.FileID, &c.Index, &c.Text); err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		i, ok := at[chunkindex.Key{VectorStoreID: c.VectorStoreID, FileID: c.FileID, N: c.Index}]
		if !ok {
			continue
		}
		out[i] = index.Hit{Chunk: c, Score: keys[i].Score}
		found[i] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	hits := out[:0]
	for i, h := range out {
		if found[i] {
			hits = append(hits, h)
		}
	}
	return hits, nil
}

// writeTerms writes a file's postings rows and statistics (its old ones
// went with its chunks).
func writeTerms(ctx context.Context, tx *sql.Tx, ref index.Ref, ft chunkindex.FileTerms) error {
	if ft.Chunks == 0 {
		return nil
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO vector_store_postings
		(term, vector_store_id, file_id, df, max_tf, min_len, postings) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	defer ins.Close()
	for _, r := range ft.Rows {
		if _, err := ins.ExecContext(ctx, r.Term, ref.VectorStoreID, ref.FileID, r.DF, r.MaxTF, r.MinLen, r.Blob); err != nil {
			return fmt.Errorf("search index: postings of %q: %w", r.Term, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO vector_store_file_terms (vector_store_id, file_id, chunks, length)
		VALUES (?, ?, ?, ?)`, ref.VectorStoreID, ref.FileID, ft.Chunks, ft.Length); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}

// moveFTS gives the chunks indexed before store migration 4 (those with
// FTS5 terms) postings, one file per transaction, and drops their FTS5
// terms. It runs when the index opens; a file whose chunks change
// meanwhile is left to its new writer.
func (x *Index) moveFTS(ctx context.Context) error {
	for {
		var ref index.Ref
		// Driven by the FTS5 table's rows (none once moved), not the
		// chunks.
		err := x.w.QueryRowContext(ctx, `SELECT c.vector_store_id, c.file_id FROM vector_store_chunks_fts f
			CROSS JOIN vector_store_chunks c ON c.id = f.rowid LIMIT 1`).Scan(&ref.VectorStoreID, &ref.FileID)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return fmt.Errorf("search index: moving FTS5 terms: %w", err)
		}
		if err := x.moveFile(ctx, ref); err != nil {
			return fmt.Errorf("search index: moving FTS5 terms of %s: %w", ref.FileID, err)
		}
	}
}

func (x *Index) moveFile(ctx context.Context, ref index.Ref) error {
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit: nothing to undo
	rows, err := tx.QueryContext(ctx, `SELECT id, n, text FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ? ORDER BY n`,
		ref.VectorStoreID, ref.FileID)
	if err != nil {
		return err
	}
	var chunks []index.Chunk
	var ids []int64
	for rows.Next() {
		var c index.Chunk
		var id int64
		if err := rows.Scan(&id, &c.Index, &c.Text); err != nil {
			rows.Close()
			return err
		}
		chunks, ids = append(chunks, c), append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_postings WHERE vector_store_id = ? AND file_id = ?`,
		ref.VectorStoreID, ref.FileID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_file_terms WHERE vector_store_id = ? AND file_id = ?`,
		ref.VectorStoreID, ref.FileID); err != nil {
		return err
	}
	if err := writeTerms(ctx, tx, ref, chunkindex.AnalyzeFile(chunks)); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_chunks_fts WHERE rowid = ?`, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}
