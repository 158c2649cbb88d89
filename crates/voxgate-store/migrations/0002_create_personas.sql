-- Personas as JSON documents (voxgate_core::persona::PersonaSpec), keyed by
-- name. Portable SQL: the same file runs on SQLite and Postgres.
CREATE TABLE personas (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
