package searchindex

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/assistants-go/assistants/server/retrieval/index"
	"github.com/assistants-go/assistants/server/store/internal/chunkindex"
)

// scanVectors offers every chunk in scope (cond with args from $3) with a
// vector of dim numbers to top, by its quantized score with q. With a
// cache it lists the rows' versions (the rows' vectors are stored out of
// line, so the list does not read them), takes the rows it holds from the
// cache and reads the others; without one it streams the rows.
func (x *Index) scanVectors(ctx context.Context, tx pgx.Tx, q []float32, dim int, cond string, args []any, top *chunkindex.TopK) error {
	offer := func(ref index.Ref, blob []byte) error {
		return chunkindex.ScanFile(blob, q, func(n int, score float32) {
			if top.Would(float64(score)) {
				top.Offer(chunkindex.Key{VectorStoreID: ref.VectorStoreID, FileID: ref.FileID, N: n, Score: float64(score)})
			}
		})
	}
	if x.cache == nil {
		return x.streamVectors(ctx, tx, dim, cond, args, func(ref index.Ref, _ int64, blob []byte) error {
			return offer(ref, blob)
		})
	}
	rows, err := tx.Query(ctx, `SELECT c.vector_store_id, c.file_id, c.version FROM vector_store_file_vectors c
		WHERE c.model = $1 AND c.dim = $2 AND `+cond, append([]any{x.o.Model, dim}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var vss, files []string
	for rows.Next() {
		var ref index.Ref
		var version int64
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID, &version); err != nil {
			return err
		}
		if blob := x.cache.Get(ref, version); blob != nil {
			if err := offer(ref, blob); err != nil {
				return err
			}
			continue
		}
		vss, files = append(vss, ref.VectorStoreID), append(files, ref.FileID)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	if len(vss) == 0 {
		return nil
	}
	return x.streamVectors(ctx, tx, dim, `(c.vector_store_id, c.file_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))`,
		[]any{vss, files}, func(ref index.Ref, version int64, blob []byte) error {
			kept := append([]byte(nil), blob...)
			x.cache.Put(ref, version, kept)
			return offer(ref, kept)
		})
}

// streamVectors calls fn with each vector row of the model at dim that
// cond (on the alias c, with args from $3) keeps. The blob is valid
// during the call only.
func (x *Index) streamVectors(ctx context.Context, tx pgx.Tx, dim int, cond string, args []any, fn func(index.Ref, int64, []byte) error) error {
	rows, err := tx.Query(ctx, `SELECT c.vector_store_id, c.file_id, c.version, c.vectors FROM vector_store_file_vectors c
		WHERE c.model = $1 AND c.dim = $2 AND `+cond, append([]any{x.o.Model, dim}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ref index.Ref
		var version int64
		if err := rows.Scan(&ref.VectorStoreID, &ref.FileID, &version, nil); err != nil {
			return err
		}
		vals := rows.RawValues() // valid until Next
		if len(vals) != 4 {
			return fmt.Errorf("vector rows: %d columns", len(vals))
		}
		if err := fn(ref, version, vals[3]); err != nil {
			return err
		}
	}
	return rows.Err()
}
