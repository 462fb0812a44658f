-- Clinician workspace and client portal: session notes (sign and lock),
-- addenda, safety plans (versioned), homework and intake drafts.
-- Clinical content columns (body, answers) are SEALED with the vault.

CREATE TABLE session_notes (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    author      BLOB NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL CHECK (kind IN ('progress','psychotherapy')),
    template    TEXT NOT NULL CHECK (template IN ('soap','dap','birp')),
    body        TEXT NOT NULL,
    signed_at   TEXT,
    cosigned_by BLOB REFERENCES users(id),
    cosigned_at TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX session_notes_client ON session_notes (practice_id, client_id, created_at);

-- A signed note never changes (the store refuses it, and so does this trigger).
CREATE TRIGGER session_notes_locked BEFORE UPDATE OF body, kind, template, signed_at ON session_notes
WHEN OLD.signed_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'signed note is immutable'); END;

CREATE TABLE note_addenda (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    note_id     BLOB NOT NULL REFERENCES session_notes(id),
    author      BLOB NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE safety_plans (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    author      BLOB NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (practice_id, client_id, version)
);

CREATE TABLE homework (
    id           BLOB PRIMARY KEY,
    practice_id  BLOB NOT NULL REFERENCES practices(id),
    client_id    BLOB NOT NULL REFERENCES clients(id),
    assigned_by  BLOB NOT NULL REFERENCES users(id),
    technique    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('assigned','draft','submitted')),
    answers      TEXT NOT NULL,
    assigned_at  TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    submitted_at TEXT,
    reviewed_at  TEXT
);
CREATE INDEX homework_client ON homework (practice_id, client_id, assigned_at);

CREATE TABLE intake_drafts (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (practice_id, client_id)
);
