-- Where a call's recording was written, and the call's transcript turns.
-- Portable SQL: the same file runs on SQLite and Postgres.
ALTER TABLE calls ADD COLUMN recording_path TEXT;

-- One row per turn, numbered from 0 within the call. No foreign key to
-- calls: turns and records are written independently and in any order,
-- and a turn must not be refused because its call's record is late.
-- `interrupted` is 0 or 1 rather than BOOLEAN: sqlx's Any driver cannot
-- read SQLite booleans.
CREATE TABLE transcript_turns (
    call_sid    TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    role        TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    started_ms  BIGINT  NOT NULL,
    ended_ms    BIGINT  NOT NULL,
    interrupted BIGINT  NOT NULL CHECK (interrupted IN (0, 1)),
    PRIMARY KEY (call_sid, seq)
);
