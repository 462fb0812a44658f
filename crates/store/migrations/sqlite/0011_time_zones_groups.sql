-- The client's own IANA time zone (set at intake or in their settings);
-- NULL until given, when the practice's zone is used.
ALTER TABLE clients ADD COLUMN time_zone TEXT;

-- Weekly or fortnightly group series: the sessions of one series share an
-- id (each session is still booked, and checked for overlaps, on its own).
ALTER TABLE group_sessions ADD COLUMN series_id BLOB;
CREATE INDEX group_sessions_series ON group_sessions(practice_id, series_id);
