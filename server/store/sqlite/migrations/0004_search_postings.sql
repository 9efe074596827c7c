-- The search index's keyword index as postings cut by file
-- (server/store/sqlite/searchindex, server/store/internal/chunkindex),
-- in place of the FTS5 table of migration 2, whose ranking function
-- scored every chunk holding any query term.
--
-- One row per term and file holding it: the number of the file's chunks
-- holding it (df), the largest term frequency and the shortest chunk
-- among them (the bounds that let a search skip chunks that cannot make
-- the k best), and the postings packed in a blob. A file's rows are
-- written once, with its chunks, and go with them. The rows are keyed by
-- term first: a search reads a term's rows in one range.
CREATE TABLE vector_store_postings (
	term            TEXT NOT NULL,
	vector_store_id TEXT NOT NULL,
	file_id         TEXT NOT NULL,
	df              INTEGER NOT NULL,
	max_tf          INTEGER NOT NULL,
	min_len         INTEGER NOT NULL,
	postings        BLOB NOT NULL,
	PRIMARY KEY (term, vector_store_id, file_id),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX vector_store_postings_file ON vector_store_postings (vector_store_id, file_id);

-- Each indexed file's share of the index's statistics: its chunks and
-- their total length in terms.
CREATE TABLE vector_store_file_terms (
	vector_store_id TEXT NOT NULL,
	file_id         TEXT NOT NULL,
	chunks          INTEGER NOT NULL,
	length          INTEGER NOT NULL,
	PRIMARY KEY (vector_store_id, file_id),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);

-- Removing a chunk (its file replaced, detached or deleted, its vector
-- store deleted) removes its file's postings, statistics and quantized
-- vectors, and the chunk's FTS5 terms (chunks indexed before this
-- migration keep them until the search index moves them to the postings
-- when it opens).
DROP TRIGGER vector_store_chunks_unindex;
CREATE TRIGGER vector_store_chunks_unindex AFTER DELETE ON vector_store_chunks BEGIN
	DELETE FROM vector_store_chunks_fts WHERE rowid = old.id;
	DELETE FROM vector_store_file_vectors WHERE vector_store_id = old.vector_store_id AND file_id = old.file_id;
	DELETE FROM vector_store_postings WHERE vector_store_id = old.vector_store_id AND file_id = old.file_id;
	DELETE FROM vector_store_file_terms WHERE vector_store_id = old.vector_store_id AND file_id = old.file_id;
END;

-- Each file's quantized vectors get a version, a random number the search
-- index writes with them (0 for rows written before): a search keeps rows
-- in process memory under their version and reads only those it does not
-- hold. The index lists the versions in scope without reading the rows.
ALTER TABLE vector_store_file_vectors ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
DROP INDEX vector_store_file_vectors_model;
CREATE INDEX vector_store_file_vectors_version ON vector_store_file_vectors (model, dim, vector_store_id, file_id, version);
