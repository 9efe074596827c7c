package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// FileChunkSize is the size of the pieces a file's bytes are kept in (one
// row each); only one piece per reader or writer is in memory at a time.
const FileChunkSize = 256 << 10

const fileCols = `id, project, purpose, filename, content_type, bytes, created_at, expires_at`

func scanFile(r Row) (store.File, error) {
	var f store.File
	err := r.Scan(&f.ID, &f.Project, &f.Purpose, &f.Filename, &f.ContentType, &f.Bytes, &f.CreatedAt, &f.ExpiresAt)
	return f, err
}

// CreateFile implements store.Store. The file's row is written first,
// hidden (complete = 0); each piece of its bytes is then written in its own
// short transaction, so a slow upload never holds the database; a last
// transaction writes the file's fields (as finish left them) and makes the
// file visible. A failed upload deletes what it wrote. (A process killed
// mid-upload leaves a hidden row; see DeleteIncompleteFiles.)
func (s *Store) CreateFile(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error) (store.File, error) {
	return s.createFile(ctx, f, body, maxBytes, finish, nil)
}

// CreateFileClaimed implements store.Store: the transaction that makes the
// file visible also changes the claim's body (see CreateMessageClaimed),
// or fails, and the file is cleaned up as any failed upload.
func (s *Store) CreateFileClaimed(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error, c store.Claim) (store.File, error) {
	return s.createFile(ctx, f, body, maxBytes, finish, s.fence(ctx, "file", f.ID, c))
}

// createFile stores f, calling finish (when not nil) once its bytes are
// written; the last transaction runs claim (when not nil) first.
func (s *Store) createFile(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error, claim func(Tx) error) (store.File, error) {
	if f.ID == "" {
		return store.File{}, invalid("empty file id")
	}
	f.Project = store.ProjectOr(f.Project)
	err := s.b.Write(ctx, func(tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO files (`+fileCols+`, chunks, complete) VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, 0)`,
			f.ID, f.Project, f.Purpose, f.Filename, f.ContentType, f.CreatedAt, f.ExpiresAt)
		return s.conflictOr(err, "file", f.ID)
	})
	if err != nil {
		return store.File{}, err
	}
	n, chunks, err := s.writeChunks(ctx, f.ID, body, maxBytes)
	if err == nil && finish != nil {
		id, project := f.ID, f.Project
		if err = finish(&f); err != nil {
			err = fmt.Errorf("file %q: %w", id, err)
		}
		f.ID, f.Project = id, project
	}
	if err == nil {
		f.Bytes = n
		err = s.b.Write(ctx, func(tx Tx) error {
			return fenced(tx, claim, func() error {
				_, err := tx.Exec(ctx, `UPDATE files SET purpose = ?, filename = ?, content_type = ?, created_at = ?, expires_at = ?,
					bytes = ?, chunks = ?, complete = 1 WHERE id = ?`,
					f.Purpose, f.Filename, f.ContentType, f.CreatedAt, f.ExpiresAt, n, chunks, f.ID)
				return err
			})
		})
	}
	if err != nil {
		// Clean up even when ctx is done; the rows are unreachable anyway.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.b.Write(cctx, func(tx Tx) error {
			_, err := tx.Exec(cctx, `DELETE FROM files WHERE id = ? AND complete = 0`, f.ID)
			return err
		}); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up file %q: %w", f.ID, derr))
		}
		return store.File{}, err
	}
	return f, nil
}

func (s *Store) writeChunks(ctx context.Context, id string, body io.Reader, maxBytes int64) (n int64, chunks int, err error) {
	buf := make([]byte, FileChunkSize)
	for {
		k, rerr := io.ReadFull(body, buf)
		if k > 0 {
			n += int64(k)
			if maxBytes > 0 && n > maxBytes {
				return n, chunks, fmt.Errorf("file %q: more than %d bytes: %w", id, maxBytes, store.ErrTooLarge)
			}
			if err := s.b.Write(ctx, func(tx Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO file_chunks (file_id, n, data) VALUES (?, ?, ?)`, id, chunks, buf[:k])
				return err
			}); err != nil {
				return n, chunks, err
			}
			chunks++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return n, chunks, nil
		}
		if rerr != nil {
			return n, chunks, fmt.Errorf("read file %q: %w", id, rerr)
		}
	}
}

// DeleteIncompleteFiles removes files whose upload never finished (a
// process killed mid-upload) and that were created before the unix time
// before; it returns how many. Not part of store.Store: the wiring step
// runs it from a cleanup job.
func (s *Store) DeleteIncompleteFiles(ctx context.Context, before int64) (int, error) {
	var n int64
	err := s.b.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM files WHERE complete = 0 AND created_at < ?`, before)
		return err
	})
	return int(n), err
}

// GetFile implements store.Store.
func (s *Store) GetFile(ctx context.Context, project, id string) (store.File, error) {
	f, err := scanFile(s.b.Reader().QueryRow(ctx, `SELECT `+fileCols+` FROM files WHERE id = ? AND project = ? AND complete = 1`, id, store.ProjectOr(project)))
	return f, noRows(err, "file", id)
}

// OpenFile implements store.Store. The reader fetches one piece per query
// with the ctx given here.
func (s *Store) OpenFile(ctx context.Context, project, id string) (io.ReadCloser, error) {
	var chunks int
	err := s.b.Reader().QueryRow(ctx, `SELECT chunks FROM files WHERE id = ? AND project = ? AND complete = 1`, id, store.ProjectOr(project)).Scan(&chunks)
	if err != nil {
		return nil, noRows(err, "file", id)
	}
	return &fileReader{ctx: ctx, s: s, id: id, chunks: chunks}, nil
}

type fileReader struct {
	ctx    context.Context // OpenFile's: an io.Reader has no other
	s      *Store
	id     string
	chunks int
	n      int
	cur    []byte
	closed bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("read file %q: closed", r.id)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.cur) == 0 {
		if r.n >= r.chunks {
			return 0, io.EOF
		}
		// Joined with files: a deleted file's pieces read as not found.
		err := r.s.b.Reader().QueryRow(r.ctx, `SELECT c.data FROM file_chunks c JOIN files f ON f.id = c.file_id
			WHERE c.file_id = ? AND c.n = ? AND f.complete = 1`, r.id, r.n).Scan(&r.cur)
		if err != nil {
			return 0, noRows(err, "file", r.id)
		}
		r.n++
	}
	k := copy(p, r.cur)
	r.cur = r.cur[k:]
	return k, nil
}

func (r *fileReader) Close() error { r.closed, r.cur = true, nil; return nil }

// DeleteFile implements store.Store.
func (s *Store) DeleteFile(ctx context.Context, project, id string) ([]string, error) {
	var vsIDs []string
	err := s.b.Write(ctx, func(tx Tx) error {
		vsIDs = nil
		project := store.ProjectOr(project)
		var x int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM files WHERE id = ? AND project = ? AND complete = 1`+s.forUpdate(), id, project).Scan(&x); err != nil {
			return noRows(err, "file", id)
		}
		rows, err := tx.Query(ctx, `SELECT vector_store_id FROM vector_store_files WHERE file_id = ? AND project = ?`, id, project)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			vsIDs = append(vsIDs, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM vector_store_files WHERE file_id = ? AND project = ?`, id, project); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM files WHERE id = ?`, id)
		return err
	})
	sort.Strings(vsIDs)
	return vsIDs, err
}

// ListFiles implements store.Store.
func (s *Store) ListFiles(ctx context.Context, project, purpose string, lp store.ListParams) (store.Page[store.File], error) {
	sel := `SELECT ` + fileCols + ` FROM files WHERE project = ? AND complete = 1`
	args := []any{store.ProjectOr(project)}
	if purpose != "" {
		sel += ` AND purpose = ?`
		args = append(args, purpose)
	}
	return list(ctx, s, sel, args, "id", lp, func(r Rows) (store.File, error) { return scanFile(r) }, nil)
}

// ---- vector stores

const vsCols = `id, project, created_at, data`
const vsFileCols = `vector_store_id, file_id, project, batch_id, status, created_at, data`
const batchCols = `id, project, vector_store_id, created_at, data`

func scanVS(r Row) (store.VectorStore, error) {
	var v store.VectorStore
	err := r.Scan(&v.ID, &v.Project, &v.CreatedAt, &v.Data)
	return v, err
}

func scanVSFile(r Row) (store.VectorStoreFile, error) {
	var f store.VectorStoreFile
	err := r.Scan(&f.VectorStoreID, &f.FileID, &f.Project, &f.BatchID, &f.Status, &f.CreatedAt, &f.Data)
	return f, err
}

func scanBatch(r Row) (store.FileBatch, error) {
	var b store.FileBatch
	err := r.Scan(&b.ID, &b.Project, &b.VectorStoreID, &b.CreatedAt, &b.Data)
	return b, err
}

// putVSFiles attaches files, replacing (and dropping the chunks of)
// earlier attachments.
func (s *Store) putVSFiles(ctx context.Context, tx Tx, project, vsID, batchID string, files []store.VectorStoreFile) error {
	for _, f := range files {
		if f.FileID == "" {
			return invalid("empty file id")
		}
		if batchID != "" {
			f.BatchID = batchID
		}
		if _, err := tx.Exec(ctx, `DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?`, vsID, f.FileID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vector_store_files (`+vsFileCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			vsID, f.FileID, project, f.BatchID, f.Status, f.CreatedAt, nz(f.Data)); err != nil {
			return err
		}
	}
	return nil
}

// lockVS checks that a vector store exists and locks it against deletion.
func (s *Store) lockVS(ctx context.Context, tx Tx, project, id string) error {
	var x int
	err := tx.QueryRow(ctx, `SELECT 1 FROM vector_stores WHERE id = ? AND project = ?`+s.forKeyShare(), id, store.ProjectOr(project)).Scan(&x)
	return noRows(err, "vector store", id)
}

// CreateVectorStore implements store.Store.
func (s *Store) CreateVectorStore(ctx context.Context, v store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createVectorStore(ctx, nil, v, files, jobs)
}

// CreateVectorStoreClaimed implements store.Store.
func (s *Store) CreateVectorStoreClaimed(ctx context.Context, c store.Claim, v store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createVectorStore(ctx, s.fence(ctx, "vector store", v.ID, c), v, files, jobs)
}

// createVectorStore inserts v with its files and jobs, after claim (when
// not nil) in the same write.
func (s *Store) createVectorStore(ctx context.Context, claim func(Tx) error, v store.VectorStore, files []store.VectorStoreFile, jobs []store.Job) error {
	if v.ID == "" {
		return invalid("empty vector store id")
	}
	v.Project = store.ProjectOr(v.Project)
	return s.b.Write(ctx, func(tx Tx) error {
		return fenced(tx, claim, func() error {
			if _, err := tx.Exec(ctx, `INSERT INTO vector_stores (`+vsCols+`) VALUES (?, ?, ?, ?)`, v.ID, v.Project, v.CreatedAt, nz(v.Data)); err != nil {
				return s.conflictOr(err, "vector store", v.ID)
			}
			if err := s.putVSFiles(ctx, tx, v.Project, v.ID, "", files); err != nil {
				return err
			}
			return tx.InsertJobs(ctx, jobs)
		})
	})
}

// GetVectorStore implements store.Store.
func (s *Store) GetVectorStore(ctx context.Context, project, id string) (store.VectorStore, error) {
	v, err := scanVS(s.b.Reader().QueryRow(ctx, `SELECT `+vsCols+` FROM vector_stores WHERE id = ? AND project = ?`, id, store.ProjectOr(project)))
	return v, noRows(err, "vector store", id)
}

// legacyVSPred is the predicate of the partial index vector_stores_legacy
// (migration 5): data begins with {"obj":, an earlier version's snapshot.
func (s *Store) legacyVSPred() string {
	if s.b.Postgres() {
		return `substr(data, 1, 7) = '\x7b226f626a223a'::bytea`
	}
	return `substr(data, 1, 7) = X'7B226F626A223A'`
}

// HasLegacyVectorStores reports whether a vector store of any project
// still holds an earlier server version's snapshot (its data begins with
// {"obj":), with one lookup in the partial index vector_stores_legacy.
func (s *Store) HasLegacyVectorStores(ctx context.Context) (bool, error) {
	var n int64
	err := s.b.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM vector_stores WHERE `+s.legacyVSPred()+` LIMIT 1) AS legacy`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("find legacy vector stores: %w", err)
	}
	return n > 0, nil
}

// UpdateVectorStore implements store.Store.
func (s *Store) UpdateVectorStore(ctx context.Context, project, id string, fn func(*store.VectorStore) error) (store.VectorStore, error) {
	var out store.VectorStore
	err := s.b.Write(ctx, func(tx Tx) error {
		old, err := scanVS(tx.QueryRow(ctx, `SELECT `+vsCols+` FROM vector_stores WHERE id = ? AND project = ?`+s.forUpdate(), id, store.ProjectOr(project)))
		if err != nil {
			return noRows(err, "vector store", id)
		}
		v := old
		if err := fn(&v); err != nil {
			return err
		}
		v.ID, v.Project, v.CreatedAt = old.ID, old.Project, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE vector_stores SET data = ? WHERE id = ?`, nz(v.Data), id); err != nil {
			return err
		}
		out = v
		return nil
	})
	return out, err
}

// DeleteVectorStore implements store.Store.
func (s *Store) DeleteVectorStore(ctx context.Context, project, id string) error {
	return s.b.Write(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM vector_stores WHERE id = ? AND project = ?`, id, store.ProjectOr(project))
		if err == nil && n == 0 {
			err = notFound("vector store", id)
		}
		return err
	})
}

// ListVectorStores implements store.Store.
func (s *Store) ListVectorStores(ctx context.Context, project string, lp store.ListParams) (store.Page[store.VectorStore], error) {
	return list(ctx, s, `SELECT `+vsCols+` FROM vector_stores WHERE project = ?`, []any{store.ProjectOr(project)}, "id", lp,
		func(r Rows) (store.VectorStore, error) { return scanVS(r) }, nil)
}

func (s *Store) vsExists(ctx context.Context, project, id string) func() error {
	return func() error {
		return exists(ctx, s.b.Reader(), "vector store", id, `SELECT 1 FROM vector_stores WHERE id = ? AND project = ?`, id, store.ProjectOr(project))
	}
}

// VectorStoreFileCounts implements store.Store.
func (s *Store) VectorStoreFileCounts(ctx context.Context, project, vectorStoreID string) (map[string]int, error) {
	if err := s.vsExists(ctx, project, vectorStoreID)(); err != nil {
		return nil, err
	}
	rows, err := s.b.Reader().Query(ctx, `SELECT status, COUNT(*) FROM vector_store_files WHERE vector_store_id = ? GROUP BY status`, vectorStoreID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = int(n)
	}
	return out, rows.Err()
}

// PutVectorStoreFile implements store.Store.
func (s *Store) PutVectorStoreFile(ctx context.Context, f store.VectorStoreFile, jobs ...store.Job) error {
	return s.b.Write(ctx, func(tx Tx) error {
		if err := s.lockVS(ctx, tx, f.Project, f.VectorStoreID); err != nil {
			return err
		}
		if err := s.putVSFiles(ctx, tx, store.ProjectOr(f.Project), f.VectorStoreID, "", []store.VectorStoreFile{f}); err != nil {
			return err
		}
		return tx.InsertJobs(ctx, jobs)
	})
}

// GetVectorStoreFile implements store.Store.
func (s *Store) GetVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) (store.VectorStoreFile, error) {
	f, err := scanVSFile(s.b.Reader().QueryRow(ctx, `SELECT `+vsFileCols+` FROM vector_store_files WHERE vector_store_id = ? AND file_id = ? AND project = ?`,
		vectorStoreID, fileID, store.ProjectOr(project)))
	return f, noRows(err, "vector store file", fileID)
}

// UpdateVectorStoreFile implements store.Store.
func (s *Store) UpdateVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string, fn func(*store.VectorStoreFile) ([]store.Chunk, error)) (store.VectorStoreFile, error) {
	var out store.VectorStoreFile
	err := s.b.Write(ctx, func(tx Tx) error {
		old, err := scanVSFile(tx.QueryRow(ctx, `SELECT `+vsFileCols+` FROM vector_store_files WHERE vector_store_id = ? AND file_id = ? AND project = ?`+s.forUpdate(),
			vectorStoreID, fileID, store.ProjectOr(project)))
		if err != nil {
			return noRows(err, "vector store file", fileID)
		}
		f := old
		chunks, err := fn(&f)
		if err != nil {
			return err
		}
		f.Project, f.VectorStoreID, f.FileID, f.CreatedAt = old.Project, old.VectorStoreID, old.FileID, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE vector_store_files SET batch_id = ?, status = ?, data = ? WHERE vector_store_id = ? AND file_id = ?`,
			f.BatchID, f.Status, nz(f.Data), vectorStoreID, fileID); err != nil {
			return err
		}
		if chunks != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?`, vectorStoreID, fileID); err != nil {
				return err
			}
			if err := insertChunks(ctx, tx, vectorStoreID, fileID, chunks); err != nil {
				return err
			}
		}
		out = f
		return nil
	})
	return out, err
}

// insertChunks writes chunks in statements of up to 100 rows.
func insertChunks(ctx context.Context, tx Tx, vsID, fileID string, chunks []store.Chunk) error {
	const per = 100
	for start := 0; start < len(chunks); start += per {
		end := min(start+per, len(chunks))
		var b strings.Builder
		b.WriteString(`INSERT INTO vector_store_chunks (vector_store_id, file_id, n, text) VALUES `)
		args := make([]any, 0, 4*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?)")
			args = append(args, vsID, fileID, i, chunks[i].Text)
		}
		if _, err := tx.Exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// DeleteVectorStoreFile implements store.Store.
func (s *Store) DeleteVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) error {
	return s.b.Write(ctx, func(tx Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ? AND project = ?`, vectorStoreID, fileID, store.ProjectOr(project))
		if err == nil && n == 0 {
			err = notFound("vector store file", fileID)
		}
		return err
	})
}

// ListVectorStoreFiles implements store.Store.
func (s *Store) ListVectorStoreFiles(ctx context.Context, project, vectorStoreID, batchID, status string, lp store.ListParams) (store.Page[store.VectorStoreFile], error) {
	sel := `SELECT ` + vsFileCols + ` FROM vector_store_files WHERE vector_store_id = ? AND project = ?`
	args := []any{vectorStoreID, store.ProjectOr(project)}
	if batchID != "" {
		sel += ` AND batch_id = ?`
		args = append(args, batchID)
	}
	if status != "" {
		sel += ` AND status = ?`
		args = append(args, status)
	}
	return list(ctx, s, sel, args, "file_id", lp, func(r Rows) (store.VectorStoreFile, error) { return scanVSFile(r) },
		s.vsExists(ctx, project, vectorStoreID))
}

// ScanChunks implements store.Store, reading 500 chunks per query.
func (s *Store) ScanChunks(ctx context.Context, project, vectorStoreID string, fn func(store.Chunk) error) error {
	if err := s.vsExists(ctx, project, vectorStoreID)(); err != nil {
		return err
	}
	const per = 500
	lastFile, lastN := "", -1
	for {
		rows, err := s.b.Reader().Query(ctx, `SELECT file_id, n, text FROM vector_store_chunks
			WHERE vector_store_id = ? AND (file_id > ? OR (file_id = ? AND n > ?)) ORDER BY file_id, n LIMIT ?`,
			vectorStoreID, lastFile, lastFile, lastN, per)
		if err != nil {
			return err
		}
		var batch []store.Chunk
		for rows.Next() {
			c := store.Chunk{VectorStoreID: vectorStoreID}
			var n int64
			if err := rows.Scan(&c.FileID, &n, &c.Text); err != nil {
				rows.Close()
				return err
			}
			c.Index = int(n)
			batch = append(batch, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range batch {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(batch) < per {
			return nil
		}
		lastFile, lastN = batch[len(batch)-1].FileID, batch[len(batch)-1].Index
	}
}

// CreateFileBatch implements store.Store.
func (s *Store) CreateFileBatch(ctx context.Context, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createFileBatch(ctx, nil, b, files, jobs)
}

// CreateFileBatchClaimed implements store.Store.
func (s *Store) CreateFileBatchClaimed(ctx context.Context, c store.Claim, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.createFileBatch(ctx, s.fence(ctx, "file batch", b.ID, c), b, files, jobs)
}

// createFileBatch inserts b with its files and jobs, after claim (when not
// nil) in the same write (once the vector store is locked).
func (s *Store) createFileBatch(ctx context.Context, claim func(Tx) error, b store.FileBatch, files []store.VectorStoreFile, jobs []store.Job) error {
	if b.ID == "" {
		return invalid("empty batch id")
	}
	b.Project = store.ProjectOr(b.Project)
	return s.b.Write(ctx, func(tx Tx) error {
		if err := s.lockVS(ctx, tx, b.Project, b.VectorStoreID); err != nil {
			return err
		}
		return fenced(tx, claim, func() error {
			if _, err := tx.Exec(ctx, `INSERT INTO vector_store_batches (`+batchCols+`) VALUES (?, ?, ?, ?, ?)`,
				b.ID, b.Project, b.VectorStoreID, b.CreatedAt, nz(b.Data)); err != nil {
				return s.conflictOr(err, "file batch", b.ID)
			}
			if err := s.putVSFiles(ctx, tx, b.Project, b.VectorStoreID, b.ID, files); err != nil {
				return err
			}
			return tx.InsertJobs(ctx, jobs)
		})
	})
}

// GetFileBatch implements store.Store.
func (s *Store) GetFileBatch(ctx context.Context, project, vectorStoreID, id string) (store.FileBatch, error) {
	b, err := scanBatch(s.b.Reader().QueryRow(ctx, `SELECT `+batchCols+` FROM vector_store_batches WHERE id = ? AND vector_store_id = ? AND project = ?`,
		id, vectorStoreID, store.ProjectOr(project)))
	return b, noRows(err, "file batch", id)
}

// UpdateFileBatch implements store.Store.
func (s *Store) UpdateFileBatch(ctx context.Context, project, vectorStoreID, id string, fn func(*store.FileBatch) error) (store.FileBatch, error) {
	var out store.FileBatch
	err := s.b.Write(ctx, func(tx Tx) error {
		old, err := scanBatch(tx.QueryRow(ctx, `SELECT `+batchCols+` FROM vector_store_batches WHERE id = ? AND vector_store_id = ? AND project = ?`+s.forUpdate(),
			id, vectorStoreID, store.ProjectOr(project)))
		if err != nil {
			return noRows(err, "file batch", id)
		}
		b := old
		if err := fn(&b); err != nil {
			return err
		}
		b.ID, b.Project, b.VectorStoreID, b.CreatedAt = old.ID, old.Project, old.VectorStoreID, old.CreatedAt
		if _, err := tx.Exec(ctx, `UPDATE vector_store_batches SET data = ? WHERE id = ?`, nz(b.Data), id); err != nil {
			return err
		}
		out = b
		return nil
	})
	return out, err
}

// ---- idempotency

const idemCols = `idem_key, project, fingerprint, state, status, header, body, expires_at`

// ClaimIdempotencyKey implements store.Store. A free key is claimed by
// one INSERT; a key with a record, by locking that record (a concurrent
// claimant waits for it and then sees it live) and, when it has expired,
// replacing it, so the record returned is the one replaced.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	if rec.Key == "" {
		return store.IdempotencyRecord{}, false, invalid("empty idempotency key")
	}
	var old store.IdempotencyRecord
	claimed := false
	err := s.b.Write(ctx, func(tx Tx) error {
		// A record deleted between the INSERT and the SELECT (the TTL
		// sweep, a dropped claim) frees the key: try again, a few times.
		for attempt := 0; ; attempt++ {
			old, claimed = store.IdempotencyRecord{}, false
			n, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (`+idemCols+`) VALUES (?, ?, ?, ?, 0, ?, ?, ?)
				ON CONFLICT (idem_key) DO NOTHING`,
				rec.Key, store.ProjectOr(rec.Project), nz(rec.Fingerprint), store.IdemPending, nz(rec.Header), nz(rec.Body), rec.ExpiresAt.UnixMicro())
			if err != nil {
				return err
			}
			if n == 1 {
				claimed = true
				return nil
			}
			var exp, status int64
			err = tx.QueryRow(ctx, `SELECT `+idemCols+` FROM idempotency_keys WHERE idem_key = ?`+s.forUpdate(), rec.Key).
				Scan(&old.Key, &old.Project, &old.Fingerprint, &old.State, &status, &old.Header, &old.Body, &exp)
			if errors.Is(err, sql.ErrNoRows) && attempt < 3 {
				continue
			}
			if err != nil {
				return err
			}
			old.Status, old.ExpiresAt = int(status), time.UnixMicro(exp)
			if old.ExpiresAt.After(now) {
				return nil // live
			}
			_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET project = ?, fingerprint = ?, state = ?, status = 0, header = ?, body = ?, expires_at = ?
				WHERE idem_key = ?`,
				store.ProjectOr(rec.Project), nz(rec.Fingerprint), store.IdemPending, nz(rec.Header), nz(rec.Body), rec.ExpiresAt.UnixMicro(), rec.Key)
			claimed = err == nil
			return err
		}
	})
	if err != nil {
		return store.IdempotencyRecord{}, false, err
	}
	return old, claimed, nil
}

// CompleteIdempotencyKey implements store.Store: one conditional UPDATE
// on the caller's claim (pending, its lease held), so the answer of a
// claimant that lost its lease never replaces the claim or answer of the
// request that took the key over.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, held time.Time) (bool, error) {
	var n int64
	err := s.b.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(ctx, `UPDATE idempotency_keys SET fingerprint = ?, state = ?, status = ?, header = ?, body = ?, expires_at = ?
			WHERE idem_key = ? AND state = ? AND expires_at = ?`,
			nz(rec.Fingerprint), rec.State, rec.Status, nz(rec.Header), nz(rec.Body), rec.ExpiresAt.UnixMicro(),
			rec.Key, store.IdemPending, held.UnixMicro())
		return err
	})
	return err == nil && n == 1, err
}

// RenewIdempotencyKey implements store.Store: one conditional UPDATE, so
// a renewal and a takeover of an expired claim (ClaimIdempotencyKey) never
// both win.
func (s *Store) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	var n int64
	err := s.b.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(ctx, `UPDATE idempotency_keys SET expires_at = ? WHERE idem_key = ? AND state = ? AND expires_at = ?`,
			until.UnixMicro(), key, store.IdemPending, held.UnixMicro())
		return err
	})
	return err == nil && n == 1, err // not committed: not renewed
}

// DeleteIdempotencyKey implements store.Store: one conditional DELETE on
// the caller's claim (see CompleteIdempotencyKey).
func (s *Store) DeleteIdempotencyKey(ctx context.Context, key string, held time.Time) (bool, error) {
	var n int64
	err := s.b.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE idem_key = ? AND state = ? AND expires_at = ?`,
			key, store.IdemPending, held.UnixMicro())
		return err
	})
	return err == nil && n == 1, err
}

// DeleteExpiredIdempotencyKeys implements store.Store.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, now, lapsedBefore time.Time) (int, error) {
	var n int64
	err := s.b.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ? AND (state <> ? OR expires_at <= ?)`,
			now.UnixMicro(), store.IdemPending, lapsedBefore.UnixMicro())
		return err
	})
	return int(n), err
}
