-- Clinician workspace and client portal: session notes (sign and lock),
-- addenda, safety plans (versioned), homework and intake drafts.
-- Clinical content columns (body, answers) are SEALED with the vault.

CREATE TABLE session_notes (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    author      UUID NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL CHECK (kind IN ('progress','psychotherapy')),
    template    TEXT NOT NULL CHECK (template IN ('soap','dap','birp')),
    body        TEXT NOT NULL,
    signed_at   TIMESTAMPTZ,
    cosigned_by UUID REFERENCES users(id),
    cosigned_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX session_notes_client ON session_notes (practice_id, client_id, created_at);

-- A signed note never changes (the store refuses it, and so does this trigger).
CREATE FUNCTION session_notes_locked() RETURNS trigger AS $$
BEGIN
    IF OLD.signed_at IS NOT NULL AND (NEW.body IS DISTINCT FROM OLD.body OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.template IS DISTINCT FROM OLD.template OR NEW.signed_at IS DISTINCT FROM OLD.signed_at) THEN
        RAISE EXCEPTION 'signed note is immutable';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER session_notes_locked BEFORE UPDATE ON session_notes
FOR EACH ROW EXECUTE FUNCTION session_notes_locked();

CREATE TABLE note_addenda (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    note_id     UUID NOT NULL REFERENCES session_notes(id),
    author      UUID NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE safety_plans (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    version     BIGINT NOT NULL CHECK (version >= 1),
    author      UUID NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (practice_id, client_id, version)
);

CREATE TABLE homework (
    id           UUID PRIMARY KEY,
    practice_id  UUID NOT NULL REFERENCES practices(id),
    client_id    UUID NOT NULL REFERENCES clients(id),
    assigned_by  UUID NOT NULL REFERENCES users(id),
    technique    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('assigned','draft','submitted')),
    answers      TEXT NOT NULL,
    assigned_at  TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    submitted_at TIMESTAMPTZ,
    reviewed_at  TIMESTAMPTZ
);
CREATE INDEX homework_client ON homework (practice_id, client_id, assigned_at);

CREATE TABLE intake_drafts (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    body        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (practice_id, client_id)
);
