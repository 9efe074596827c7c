-- Search indexes over the vector store chunks (server/store/sqlite/searchindex).
--
-- Chunks get an integer row id (FTS5 keys its rows by one), their
-- embedding (float32, little-endian, unit length) with its model and
-- dimension, and their index terms in an FTS5 table. The table is
-- rebuilt for the row id; (vector_store_id, file_id, n) stays unique.

CREATE TABLE vector_store_chunks_v2 (
	id              INTEGER PRIMARY KEY,
	vector_store_id TEXT NOT NULL,
	file_id         TEXT NOT NULL,
	n               INTEGER NOT NULL,
	embedding_model TEXT NOT NULL DEFAULT '',
	embedding_dim   INTEGER NOT NULL DEFAULT 0,
	embedding       BLOB,
	text            TEXT NOT NULL,
	UNIQUE (vector_store_id, file_id, n),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);
INSERT INTO vector_store_chunks_v2 (vector_store_id, file_id, n, text)
	SELECT vector_store_id, file_id, n, text FROM vector_store_chunks ORDER BY vector_store_id, file_id, n;
DROP TABLE vector_store_chunks;
ALTER TABLE vector_store_chunks_v2 RENAME TO vector_store_chunks;

-- The chunks' index terms (the in-memory index's analysis, joined by
-- spaces, which the ascii tokenizer splits on), keyed by chunk id. The
-- search index writes it; a chunk written without it (by the store alone)
-- is not found by keyword.
CREATE VIRTUAL TABLE vector_store_chunks_fts USING fts5 (
	terms,
	content = '',
	contentless_delete = 1,
	tokenize = 'ascii'
);

-- Each file's vectors quantized to 8 bits in one blob (see the search
-- index), the rows the vector scan reads; model and dimension are those of
-- every vector in it.
CREATE TABLE vector_store_file_vectors (
	vector_store_id TEXT NOT NULL,
	file_id         TEXT NOT NULL,
	model           TEXT NOT NULL,
	dim             INTEGER NOT NULL,
	chunks          INTEGER NOT NULL,
	vectors         BLOB NOT NULL,
	PRIMARY KEY (vector_store_id, file_id),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);
CREATE INDEX vector_store_file_vectors_model ON vector_store_file_vectors (model, dim);

-- Removing a chunk (its file replaced, detached or deleted, its vector
-- store deleted) removes its terms and its file's quantized vectors.
CREATE TRIGGER vector_store_chunks_unindex AFTER DELETE ON vector_store_chunks BEGIN
	DELETE FROM vector_store_chunks_fts WHERE rowid = old.id;
	DELETE FROM vector_store_file_vectors WHERE vector_store_id = old.vector_store_id AND file_id = old.file_id;
END;
