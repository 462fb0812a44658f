-- The client's own IANA time zone (set at intake or in their settings);
-- NULL until given, when the practice's zone is used.
ALTER TABLE clients ADD COLUMN time_zone TEXT;

-- Weekly or fortnightly group series: the sessions of one series share an
-- id (each session is still booked, and checked for overlaps, on its own).
ALTER TABLE group_sessions ADD COLUMN series_id BLOB;
CREATE INDEX group_sessions_series ON group_sessions(practice_id, series_id);

-- Live chat in group rooms: the transcript belongs to the group's record
-- (facilitators read it; members see the chat live only). SEALED: the body
-- column holds `s1.` text.
CREATE TABLE group_chat_lines (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    group_id    BLOB NOT NULL REFERENCES group_programmes(id),
    session_id  BLOB NOT NULL REFERENCES group_sessions(id),
    sender      BLOB NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    sent_at     TEXT NOT NULL
);
CREATE INDEX group_chat_lines_group ON group_chat_lines(practice_id, group_id, sent_at);

-- A practice's own urgent-language list (phrases added and removed against
-- the shipped draft list, and who reviewed it when), as JSON. Not clinical
-- content (no client's words): the phrases are the practice's screening
-- configuration.
CREATE TABLE urgent_phrase_lists (
    practice_id BLOB PRIMARY KEY REFERENCES practices(id),
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
