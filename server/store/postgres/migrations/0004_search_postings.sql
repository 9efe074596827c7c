-- The search index's keyword index as postings cut by file
-- (server/store/postgres/searchindex, server/store/internal/chunkindex),
-- in place of migration 2's tsvector ranking, which scored every chunk
-- holding any query term.
--
-- One row per term and file holding it: the number of the file's chunks
-- holding it (df), the largest term frequency and the shortest chunk
-- among them (the bounds that let a search skip chunks that cannot make
-- the k best), and the postings packed in a bytea. A file's rows are
-- written once, with its chunks, and go with them. The rows are keyed by
-- term first: a search reads a term's rows in one index range.
CREATE TABLE vector_store_postings (
	term            TEXT COLLATE "C" NOT NULL,
	vector_store_id TEXT COLLATE "C" NOT NULL,
	file_id         TEXT COLLATE "C" NOT NULL,
	df              INTEGER NOT NULL,
	max_tf          INTEGER NOT NULL,
	min_len         INTEGER NOT NULL,
	postings        BYTEA NOT NULL,
	-- The statistics are in the key's index too: once the table is
	-- vacuumed, the whole index's statistics of a term are read from the
	-- index alone.
	PRIMARY KEY (term, vector_store_id, file_id) INCLUDE (df, max_tf, min_len),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);
CREATE INDEX vector_store_postings_file ON vector_store_postings (vector_store_id, file_id);

-- Each indexed file's share of the index's statistics: its chunks and
-- their total length in terms.
CREATE TABLE vector_store_file_terms (
	vector_store_id TEXT COLLATE "C" NOT NULL,
	file_id         TEXT COLLATE "C" NOT NULL,
	chunks          INTEGER NOT NULL,
	length          BIGINT NOT NULL,
	PRIMARY KEY (vector_store_id, file_id),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);

-- The tsvector column now only marks chunks indexed before this
-- migration, whose terms the search index moves to the postings when it
-- opens (and then clears): the GIN index gives way to a partial index
-- that finds them.
DROP INDEX vector_store_chunks_terms;
CREATE INDEX vector_store_chunks_unmoved ON vector_store_chunks (vector_store_id, file_id) WHERE terms IS NOT NULL;

-- Removing chunks (a file's replaced by the store) removes their files'
-- postings, statistics and quantized vectors.
CREATE OR REPLACE FUNCTION vector_store_chunks_unindex() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM vector_store_file_vectors v
		USING (SELECT DISTINCT vector_store_id, file_id FROM gone) g
		WHERE v.vector_store_id = g.vector_store_id AND v.file_id = g.file_id;
	DELETE FROM vector_store_postings p
		USING (SELECT DISTINCT vector_store_id, file_id FROM gone) g
		WHERE p.vector_store_id = g.vector_store_id AND p.file_id = g.file_id;
	DELETE FROM vector_store_file_terms f
		USING (SELECT DISTINCT vector_store_id, file_id FROM gone) g
		WHERE f.vector_store_id = g.vector_store_id AND f.file_id = g.file_id;
	RETURN NULL;
END
$$;

-- Each file's quantized vectors get a version, a random number the search
-- index writes with them (0 for rows written before): a search keeps rows
-- in process memory under their version and reads only those it does not
-- hold.
ALTER TABLE vector_store_file_vectors ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
