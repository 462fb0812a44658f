-- Online sessions: scheduling, calendar feeds and the job queue (SQLite).
-- No double booking, ever: SQLite has no exclusion constraints, so a booking
-- runs in a BEGIN IMMEDIATE transaction (one writer at a time) that checks for
-- an overlapping non-cancelled appointment before inserting. Times are UTC
-- RFC 3339 text in one format, so text order is time order.

-- A clinician's availability (weekly hours and exceptions, JSON, wall clock
-- in time_zone), booking rules and the cancellation policy applied to them.
CREATE TABLE clinician_schedules (
    practice_id  BLOB NOT NULL REFERENCES practices(id),
    clinician    BLOB NOT NULL REFERENCES users(id),
    time_zone    TEXT NOT NULL,
    availability TEXT NOT NULL,
    rules        TEXT NOT NULL,
    policy       TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (practice_id, clinician)
);

-- The appointment types a practice offers.
CREATE TABLE appointment_types (
    practice_id BLOB NOT NULL REFERENCES practices(id),
    kind        TEXT NOT NULL CHECK (kind IN ('intake','session','review','group')),
    minutes     INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    format      TEXT NOT NULL CHECK (format IN ('video','phone','chat','in_person')),
    PRIMARY KEY (practice_id, kind, minutes, format)
);

CREATE TABLE appointment_series (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    recurrence  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX appointment_series_practice ON appointment_series(practice_id, clinician);

CREATE TABLE appointments (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    kind        TEXT NOT NULL CHECK (kind IN ('intake','session','review','group')),
    minutes     INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    format      TEXT NOT NULL CHECK (format IN ('video','phone','chat','in_person')),
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('booked','cancelled','attended','no_show')),
    late_cancel INTEGER NOT NULL DEFAULT 0,
    series_id   BLOB REFERENCES appointment_series(id),
    created_at  TEXT NOT NULL,
    status_changed_at TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX appointments_clinician ON appointments(practice_id, clinician, starts_at);
CREATE INDEX appointments_client ON appointments(practice_id, client_id, starts_at);

-- Secret calendar-feed URLs: only the SHA-256 of the token is stored.
CREATE TABLE calendar_feed_tokens (
    token_hash  TEXT PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX calendar_feed_tokens_clinician ON calendar_feed_tokens(practice_id, clinician);

-- The durable, idempotent job queue.
CREATE TABLE jobs (
    id           BLOB PRIMARY KEY,
    practice_id  BLOB NOT NULL REFERENCES practices(id),
    job_key      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued','running','done','failed')),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_after    TEXT NOT NULL,
    claimed_by   TEXT,
    claimed_at   TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (practice_id, job_key)
);
CREATE INDEX jobs_ready ON jobs(state, run_after);
