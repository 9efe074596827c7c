-- Search indexes over the vector store chunks (server/store/postgres/searchindex).
--
-- Each chunk gets its embedding (float32, little-endian, unit length) with
-- its model and dimension, and its index terms as a tsvector (the
-- in-memory index's analysis, one position per occurrence) under a GIN
-- index. Vectors are bytea: no extension is needed.

ALTER TABLE vector_store_chunks
	ADD COLUMN embedding_model TEXT COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN embedding_dim   INTEGER NOT NULL DEFAULT 0,
	ADD COLUMN embedding       BYTEA,
	ADD COLUMN terms           TSVECTOR;
-- Floats do not compress: store them out of line without trying.
ALTER TABLE vector_store_chunks ALTER COLUMN embedding SET STORAGE EXTERNAL;
CREATE INDEX vector_store_chunks_terms ON vector_store_chunks USING GIN (terms);

-- Each file's vectors quantized to 8 bits in one row (see the search
-- index), the rows the vector scan reads; model and dimension are those
-- of every vector in it.
CREATE TABLE vector_store_file_vectors (
	vector_store_id TEXT COLLATE "C" NOT NULL,
	file_id         TEXT COLLATE "C" NOT NULL,
	model           TEXT COLLATE "C" NOT NULL,
	dim             INTEGER NOT NULL,
	chunks          INTEGER NOT NULL,
	vectors         BYTEA NOT NULL,
	PRIMARY KEY (vector_store_id, file_id),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);
ALTER TABLE vector_store_file_vectors ALTER COLUMN vectors SET STORAGE EXTERNAL;
CREATE INDEX vector_store_file_vectors_model ON vector_store_file_vectors (model, dim);

-- Removing chunks (a file's replaced by the store) removes their files'
-- quantized vectors.
CREATE FUNCTION vector_store_chunks_unindex() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM vector_store_file_vectors v
		USING (SELECT DISTINCT vector_store_id, file_id FROM gone) g
		WHERE v.vector_store_id = g.vector_store_id AND v.file_id = g.file_id;
	RETURN NULL;
END
$$;
CREATE TRIGGER vector_store_chunks_unindex AFTER DELETE ON vector_store_chunks
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION vector_store_chunks_unindex();
