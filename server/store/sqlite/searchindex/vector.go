package searchindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
)

// scanVectors offers every chunk in scope (cond, arg) with a vector of
// dim numbers to top, by its quantized score with q. With a cache it
// lists the rows' versions (from an index, without reading the rows),
// takes the rows it holds from the cache and reads the others; without
// one it streams the rows.
func (x *Index) scanVectors(ctx context.Context, tx *sql.Tx, q []float32, dim int, cond, arg string, top *chunkindex.TopK) error {
	offer := func(ref index.Ref, blob []byte) error {
		return chunkindex.ScanFile(blob, q, func(n int, score float32) {
			if top.Would(float64(score)) {
				top.Offer(chunkindex.Key{VectorStoreID: ref.VectorStoreID, FileID: ref.FileID, N: n, Score: float64(score)})
			}
		})
	}
	if x.cache == nil {
		return x.streamVectors(ctx, tx, dim, cond, []any{arg}, func(ref index.Ref, _ int64, blob []byte) error {
			return offer(ref, blob)
		})
	}
	rows, err := tx.QueryContext(ctx, `SELECT c.vector_store_id, c.file_id, c.version FROM vector_store_file_vectors c
		WHERE c.model = ? AND c.dim = ? AND `+cond, x.o.Model, dim, arg)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var missing [][2]string
	for rows.Next() {
		var ref index.Ref
		var version int64
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID, &version); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		if blob := x.cache.Get(ref, version); blob != nil {
			if err := offer(ref, blob); err != nil {
				return err
			}
			continue
		}
		missing = append(missing, [2]string{ref.VectorStoreID, ref.FileID})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	rows.Close()
	if len(missing) == 0 {
		return nil
	}
	mj, _ := json.Marshal(missing)
	return x.streamVectors(ctx, tx, dim, `(c.vector_store_id, c.file_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))`,
		[]any{string(mj)}, func(ref index.Ref, version int64, blob []byte) error {
			kept := append([]byte(nil), blob...)
			x.cache.Put(ref, version, kept)
			return offer(ref, kept)
		})
}

// streamVectors calls fn with each vector row of the model at dim that
// cond (on the alias c, with args) keeps. The blob is valid during the
// call only.
func (x *Index) streamVectors(ctx context.Context, tx *sql.Tx, dim int, cond string, args []any, fn func(index.Ref, int64, []byte) error) error {
	rows, err := tx.QueryContext(ctx, `SELECT c.vector_store_id, c.file_id, c.version, c.vectors FROM vector_store_file_vectors c
		WHERE c.model = ? AND c.dim = ? AND `+cond, append([]any{x.o.Model, dim}, args...)...)
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var ref index.Ref
	var version int64
	var blob sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID, &version, &blob); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		if err := fn(ref, version, blob); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	return nil
}
