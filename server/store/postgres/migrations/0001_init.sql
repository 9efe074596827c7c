-- The first schema of the PostgreSQL store. Ids sort by creation (collation
-- "C": byte order, like SQLite's); every list reads an index on (parent, id).

CREATE TABLE projects (
	id         TEXT COLLATE "C" PRIMARY KEY,
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL
);
INSERT INTO projects (id, created_at, data) VALUES ('default', 0, ''::bytea);

CREATE TABLE assistants (
	id         TEXT COLLATE "C" PRIMARY KEY,
	project    TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL
);
CREATE INDEX assistants_list ON assistants (project, id);

CREATE TABLE threads (
	id         TEXT COLLATE "C" PRIMARY KEY,
	project    TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL
);

CREATE TABLE messages (
	id         TEXT COLLATE "C" NOT NULL,
	project    TEXT COLLATE "C" NOT NULL,
	thread_id  TEXT COLLATE "C" NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	run_id     TEXT COLLATE "C" NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL,
	-- Keyed by thread: the only index a page of a thread can be read from,
	-- so no planner walks the messages of other threads.
	PRIMARY KEY (thread_id, id)
);
CREATE INDEX messages_of_run ON messages (thread_id, run_id, id) WHERE run_id <> '';

CREATE TABLE runs (
	id           TEXT COLLATE "C" PRIMARY KEY,
	project      TEXT COLLATE "C" NOT NULL,
	thread_id    TEXT COLLATE "C" NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	assistant_id TEXT COLLATE "C" NOT NULL,
	status       TEXT COLLATE "C" NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	last_seq     BIGINT NOT NULL DEFAULT 0,
	data         BYTEA NOT NULL,
	state        BYTEA NOT NULL
);
CREATE INDEX runs_list ON runs (thread_id, id);
-- One active run per thread.
CREATE UNIQUE INDEX runs_one_active ON runs (thread_id)
	WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

CREATE TABLE run_steps (
	id         TEXT COLLATE "C" PRIMARY KEY,
	project    TEXT COLLATE "C" NOT NULL,
	run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	thread_id  TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL
);
CREATE INDEX run_steps_list ON run_steps (run_id, id);

CREATE TABLE run_events (
	run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    BIGINT NOT NULL,
	type   TEXT COLLATE "C" NOT NULL,
	data   BYTEA NOT NULL,
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE files (
	id           TEXT COLLATE "C" PRIMARY KEY,
	project      TEXT COLLATE "C" NOT NULL,
	purpose      TEXT COLLATE "C" NOT NULL,
	filename     TEXT COLLATE "C" NOT NULL,
	content_type TEXT COLLATE "C" NOT NULL,
	bytes        BIGINT NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	chunks       BIGINT NOT NULL,
	complete     BIGINT NOT NULL -- 0 while the bytes are being written
);
CREATE INDEX files_list ON files (project, id);

CREATE TABLE file_chunks (
	file_id TEXT COLLATE "C" NOT NULL REFERENCES files (id) ON DELETE CASCADE,
	n       BIGINT NOT NULL,
	data    BYTEA NOT NULL,
	PRIMARY KEY (file_id, n)
);

CREATE TABLE vector_stores (
	id         TEXT COLLATE "C" PRIMARY KEY,
	project    TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	data       BYTEA NOT NULL
);
CREATE INDEX vector_stores_list ON vector_stores (project, id);

CREATE TABLE vector_store_batches (
	id              TEXT COLLATE "C" PRIMARY KEY,
	project         TEXT COLLATE "C" NOT NULL,
	vector_store_id TEXT COLLATE "C" NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
	created_at      BIGINT NOT NULL,
	data            BYTEA NOT NULL
);
CREATE INDEX vector_store_batches_list ON vector_store_batches (vector_store_id, id);

CREATE TABLE vector_store_files (
	vector_store_id TEXT COLLATE "C" NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
	file_id         TEXT COLLATE "C" NOT NULL,
	project         TEXT COLLATE "C" NOT NULL,
	batch_id        TEXT COLLATE "C" NOT NULL DEFAULT '',
	status          TEXT COLLATE "C" NOT NULL,
	created_at      BIGINT NOT NULL,
	data            BYTEA NOT NULL,
	PRIMARY KEY (vector_store_id, file_id)
);
CREATE INDEX vector_store_files_of_file ON vector_store_files (file_id);
CREATE INDEX vector_store_files_of_batch ON vector_store_files (vector_store_id, batch_id, file_id) WHERE batch_id <> '';

CREATE TABLE vector_store_chunks (
	vector_store_id TEXT COLLATE "C" NOT NULL,
	file_id         TEXT COLLATE "C" NOT NULL,
	n               BIGINT NOT NULL,
	text            TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (vector_store_id, file_id, n),
	FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
);

CREATE TABLE idempotency_keys (
	idem_key    TEXT COLLATE "C" PRIMARY KEY,
	project     TEXT COLLATE "C" NOT NULL,
	fingerprint BYTEA NOT NULL,
	state       TEXT COLLATE "C" NOT NULL,
	status      BIGINT NOT NULL,
	header      BYTEA NOT NULL,
	body        BYTEA NOT NULL,
	expires_at  BIGINT NOT NULL -- unix microseconds
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
