-- API keys of projects (server/keys.go). The key itself is never stored:
-- hash is its HMAC-SHA256 under the operator's key secret, unique, so a
-- request's key is found in one index lookup.
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	project    TEXT NOT NULL REFERENCES projects (id),
	hash       BLOB NOT NULL UNIQUE,
	hint       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0
);

-- The per-project limit of concurrent runs counts a project's active runs.
CREATE INDEX runs_active_by_project ON runs (project)
	WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');
