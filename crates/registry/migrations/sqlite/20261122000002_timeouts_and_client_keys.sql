-- Per-deployment timeouts (NULL: the feature's default) and client API keys for the
-- inference routes. Keys are stored only as SHA-256 hashes; `prefix` is what lists show.

ALTER TABLE self_hosted_models ADD COLUMN connect_timeout_ms INTEGER;
ALTER TABLE self_hosted_models ADD COLUMN first_token_timeout_ms INTEGER;
ALTER TABLE self_hosted_models ADD COLUMN total_timeout_ms INTEGER;

CREATE TABLE client_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
