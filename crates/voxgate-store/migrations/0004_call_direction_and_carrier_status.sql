-- Which side placed a call, and the carrier's view of its progress (its
-- status callbacks: queued, ringing, in-progress, completed, busy, ...).
-- Written apart from the rest of the record: the media stream's writes
-- leave these columns alone. Portable SQL: the same file runs on SQLite
-- and Postgres.
ALTER TABLE calls ADD COLUMN direction TEXT;
ALTER TABLE calls ADD COLUMN carrier_status TEXT;
ALTER TABLE calls ADD COLUMN carrier_duration_s BIGINT;
