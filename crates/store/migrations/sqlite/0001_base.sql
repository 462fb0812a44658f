-- Tapestry base schema (SQLite). Every table carries practice_id (the tenant).
-- Ids are random UUIDs stored as 16-byte BLOBs; times are UTC RFC 3339 text.

CREATE TABLE practices (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL CHECK (practice_id = id),
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE practice_settings (
    practice_id BLOB NOT NULL REFERENCES practices(id),
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (practice_id, key)
);

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    practice_id   BLOB NOT NULL REFERENCES practices(id),
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('client','clinician','supervisor','practice_admin','practice_owner','operator')),
    status        TEXT NOT NULL CHECK (status IN ('active','invited','disabled')),
    password_hash TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX users_practice ON users(practice_id);

CREATE TABLE clinician_profiles (
    user_id             BLOB PRIMARY KEY REFERENCES users(id),
    practice_id         BLOB NOT NULL REFERENCES practices(id),
    professional_title  TEXT NOT NULL,
    bio                 TEXT NOT NULL,
    languages           TEXT NOT NULL,
    accepts_new_clients INTEGER NOT NULL,
    caseload_limit      INTEGER NOT NULL CHECK (caseload_limit >= 0)
);
CREATE INDEX clinician_profiles_practice ON clinician_profiles(practice_id);

CREATE TABLE clients (
    id            BLOB PRIMARY KEY,
    practice_id   BLOB NOT NULL REFERENCES practices(id),
    user_id       BLOB UNIQUE REFERENCES users(id),
    display_name  TEXT NOT NULL,
    date_of_birth TEXT,
    jurisdiction  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX clients_practice ON clients(practice_id);

CREATE TABLE episodes (
    id                BLOB PRIMARY KEY,
    practice_id       BLOB NOT NULL REFERENCES practices(id),
    client_id         BLOB NOT NULL REFERENCES clients(id),
    status            TEXT NOT NULL CHECK (status IN ('referral','waitlist','active','discharged')),
    primary_clinician BLOB REFERENCES users(id),
    opened_at         TEXT NOT NULL,
    status_changed_at TEXT NOT NULL
);
CREATE INDEX episodes_client ON episodes(practice_id, client_id);

CREATE TABLE care_relationships (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    role        TEXT NOT NULL CHECK (role IN ('treating','supervising')),
    started_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE UNIQUE INDEX care_relationships_one_current
    ON care_relationships(practice_id, clinician, client_id, role) WHERE ended_at IS NULL;
CREATE INDEX care_relationships_client ON care_relationships(practice_id, client_id);

CREATE TABLE submissions (
    id                 BLOB PRIMARY KEY,
    practice_id        BLOB NOT NULL REFERENCES practices(id),
    client_id          BLOB NOT NULL REFERENCES clients(id),
    episode_id         BLOB NOT NULL REFERENCES episodes(id),
    instrument         TEXT NOT NULL,
    instrument_version TEXT NOT NULL,
    answers            TEXT NOT NULL,
    total              REAL,
    session            INTEGER NOT NULL CHECK (session >= 0),
    submitted_at       TEXT NOT NULL,
    idempotency_key    TEXT
);
CREATE INDEX submissions_episode ON submissions(practice_id, episode_id, instrument, submitted_at);
CREATE UNIQUE INDEX submissions_idempotency ON submissions(practice_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Instance-level, before any practice exists: the one-time link that creates
-- the first practice owner. practice_id is filled in when it is used.
CREATE TABLE bootstrap_tokens (
    token_hash  TEXT PRIMARY KEY,
    practice_id BLOB REFERENCES practices(id),
    created_at  TEXT NOT NULL,
    used_at     TEXT
);
