-- One row per call. Portable SQL: the same file runs on SQLite and Postgres.
CREATE TABLE calls (
    call_sid      TEXT PRIMARY KEY,
    stream_sid    TEXT,
    from_number   TEXT,
    to_number     TEXT,
    persona       TEXT,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms   BIGINT,
    duration_ms   BIGINT,
    disposition   TEXT,
    end_reason    TEXT
);

-- Listing is newest first.
CREATE INDEX calls_started_at_ms ON calls (started_at_ms);
