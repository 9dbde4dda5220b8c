-- One row that every write bumps in its own transaction, so replicas sharing a database can
-- tell cheaply that their snapshot is stale; `key_check` is a value sealed with the first
-- secret key, so a process started with another key can say so at start-up.
CREATE TABLE registry_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    version   INTEGER NOT NULL,
    key_check BLOB
);

INSERT INTO registry_state (id, version) VALUES (1, 0);
