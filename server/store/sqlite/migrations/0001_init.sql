-- The first schema of the SQLite store. Ids sort by creation (BINARY
-- collation, byte order); every list reads an index on (parent, id).

CREATE TABLE projects (
	id         TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);
INSERT INTO projects (id, created_at, data) VALUES ('default', 0, X'');

CREATE TABLE assistants (
	id         TEXT PRIMARY KEY,
	project    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX assistants_list ON assistants (project, id);

CREATE TABLE threads (
	id         TEXT PRIMARY KEY,
	project    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);

CREATE TABLE messages (
	id         TEXT NOT NULL,
	project    TEXT NOT NULL,
	thread_id  TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	run_id     TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL,
	-- Keyed by thread: the only index a page of a thread can be read from,
	-- so no planner walks the messages of other threads.
	PRIMARY KEY (thread_id, id)
);
CREATE INDEX messages_of_run ON messages (thread_id, run_id, id) WHERE run_id <> '';

CREATE TABLE runs (
	id           TEXT PRIMARY KEY,
	project      TEXT NOT NULL,
	thread_id    TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	assistant_id TEXT NOT NULL,
	status       TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	last_seq     INTEGER NOT NULL DEFAULT 0,
	data         BLOB NOT NULL,
	state        BLOB NOT NULL
);
CREATE INDEX runs_list ON runs (thread_id, id);
-- One active run per thread.
CREATE UNIQUE INDEX runs_one_active ON runs (thread_id)
	WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

CREATE TABLE run_steps (
	id         TEXT PRIMARY KEY,
	project    TEXT NOT NULL,
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	thread_id  TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX run_steps_list ON run_steps (run_id, id);

CREATE TABLE run_events (
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	type   TEXT NOT NULL,
	data   BLOB NOT NULL,
	PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE files (
	id           TEXT PRIMARY KEY,
	project      TEXT NOT NULL,
	purpose      TEXT NOT NULL,
	filename     TEXT NOT NULL,
	content_type TEXT NOT NULL,
	bytes        INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	chunks       INTEGER NOT NULL,
	complete     INTEGER NOT NULL -- 0 while the bytes are being written
);
CREATE INDEX files_list ON files (project, id);

CREATE TABLE file_chunks (
	file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
	n       INTEGER NOT NULL,
	data    BLOB NOT NULL,
	PRIMARY KEY (file_id, n)
) WITHOUT ROWID;

CREATE TABLE vector_stores (
	id         TEXT PRIMARY KEY,
	project    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX vector_stores_list ON vector_stores (project, id);

CREATE TABLE vector_store_batches (
	id              TEXT PRIMARY KEY,
	project         TEXT NOT NULL,
	vector_store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
	created_at      INTEGER NOT NULL,
	data            BLOB NOT NULL
);
CREATE INDEX vector_store_batches_list ON vector_store_batches (vector_store_id, id);

CREATE TABLE vector_store_files (
	vector_store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
	file_id         TEXT NOT NULL,
	project         TEXT NOT NULL,
	batch_id        TEXT NOT NULL DEFAULT '',
	status          TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	data            BLOB NOT NULL,
	PRIMARY KEY (vector_store_id, file_id)
);
CREATE INDEX vector_store_files_of_file ON vector_store_files (file_id);
CREATE INDEX vector_store_files_of_batch ON vector_store_files (vector_store_id, batch_id, file_id) WHERE batch_id <> '';

CREATE TABLE vector_store_chunks (
	vector_store_id TEXT NOT NULL,
	file_id         TEXT NOT NULL,
	n               INTEGER NOT NULL,
	text            TEXT NOT NULL,
	PRIMARY KEY (vector_store_id, file_id, n),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
	idem_key    TEXT PRIMARY KEY,
	project     TEXT NOT NULL,
	fingerprint BLOB NOT NULL,
	state       TEXT NOT NULL,
	status      INTEGER NOT NULL,
	header      BLOB NOT NULL,
	body        BLOB NOT NULL,
	expires_at  INTEGER NOT NULL -- unix microseconds
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
