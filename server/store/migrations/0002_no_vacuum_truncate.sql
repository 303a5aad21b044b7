-- VACUUM's truncation of a table's empty tail takes an exclusive lock that
-- the passive must replay, and replay waits for reads that hold the table
-- (a backup's dump) while every commit of the active waits for replay.
-- Leaving the empty pages in place keeps long reads on the passive from
-- holding up writes.
ALTER TABLE organizations SET (vacuum_truncate = off);
ALTER TABLE clients SET (vacuum_truncate = off);
ALTER TABLE deposits SET (vacuum_truncate = off);
ALTER TABLE used_nonces SET (vacuum_truncate = off);
