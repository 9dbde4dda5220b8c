-- Hearth registry, first schema. Written in the SQL that SQLite and PostgreSQL share, apart
-- from the id column, so a PostgreSQL migration set can mirror it line for line.

CREATE TABLE self_hosted_models (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    family         TEXT NOT NULL,
    catalog_model  TEXT,
    platform       TEXT NOT NULL,
    endpoint       TEXT,
    identifier     TEXT NOT NULL,
    -- AES-256-GCM: version byte, 12-byte nonce, ciphertext and tag. Never the plain key.
    api_key_sealed BLOB,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- A feature without a row is disabled.
CREATE TABLE feature_settings (
    feature              TEXT PRIMARY KEY,
    provider             TEXT NOT NULL CHECK (provider IN ('disabled', 'self_hosted')),
    self_hosted_model_id INTEGER REFERENCES self_hosted_models (id),
    updated_at           TEXT NOT NULL,
    CHECK ((provider = 'self_hosted') = (self_hosted_model_id IS NOT NULL))
);

CREATE INDEX feature_settings_model ON feature_settings (self_hosted_model_id);

CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
