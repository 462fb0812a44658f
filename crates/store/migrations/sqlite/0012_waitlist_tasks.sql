-- The waitlist watch's tasks for the intake team (docs/matching.md §6):
-- two new task kinds, and a closing note for tasks closed by hand.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt, every row kept,
-- with the same foreign keys and indexes. No other table references it.
CREATE TABLE clinician_tasks_v12 (
    id           BLOB PRIMARY KEY,
    practice_id  BLOB NOT NULL REFERENCES practices(id),
    client_id    BLOB NOT NULL REFERENCES clients(id),
    episode_id   BLOB NOT NULL REFERENCES episodes(id),
    kind         TEXT NOT NULL CHECK (kind IN ('risk_review','waitlist_risk','waitlist_deterioration')),
    risk_flag_id BLOB REFERENCES risk_flags(id),
    assignee     BLOB REFERENCES users(id),
    title        TEXT NOT NULL,
    detail       TEXT NOT NULL,
    colour       TEXT NOT NULL CHECK (colour IN ('amber','red')),
    due_at       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    completed_at TEXT,
    -- Who closed a task by hand, and their note (sealed: vault column).
    closed_by    BLOB REFERENCES users(id),
    closing_note TEXT,
    CHECK ((closed_by IS NULL) = (closing_note IS NULL)),
    CHECK (closed_by IS NULL OR completed_at IS NOT NULL),
    -- An intake-team risk task names the risk flag it is about.
    CHECK (kind <> 'waitlist_risk' OR risk_flag_id IS NOT NULL)
);
INSERT INTO clinician_tasks_v12 (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at)
    SELECT id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at FROM clinician_tasks;
DROP TABLE clinician_tasks;
ALTER TABLE clinician_tasks_v12 RENAME TO clinician_tasks;
CREATE INDEX clinician_tasks_open ON clinician_tasks(practice_id, completed_at, due_at);
CREATE INDEX clinician_tasks_flag ON clinician_tasks(practice_id, risk_flag_id);
-- One intake-team task per risk flag (each new risk answer of a waiting client is
-- a new task, however often the watch runs; a closed one is not reopened for the
-- same flag) and one deterioration task per waiting episode.
CREATE UNIQUE INDEX clinician_tasks_waitlist_risk_once ON clinician_tasks(practice_id, risk_flag_id)
    WHERE kind = 'waitlist_risk';
CREATE UNIQUE INDEX clinician_tasks_waitlist_deterioration_once ON clinician_tasks(practice_id, episode_id)
    WHERE kind = 'waitlist_deterioration';
