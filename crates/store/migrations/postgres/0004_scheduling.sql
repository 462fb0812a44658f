-- Online sessions: scheduling, calendar feeds and the job queue (PostgreSQL).
-- No double booking, ever: the exclusion constraint on appointments refuses
-- two non-cancelled appointments of one clinician whose times overlap.
-- btree_gist is a trusted extension (PostgreSQL 13+), so the database owner
-- may create it; Debian's postgresql package ships it.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- A clinician's availability (weekly hours and exceptions, JSON, wall clock
-- in time_zone), booking rules and the cancellation policy applied to them.
CREATE TABLE clinician_schedules (
    practice_id  UUID NOT NULL REFERENCES practices(id),
    clinician    UUID NOT NULL REFERENCES users(id),
    time_zone    TEXT NOT NULL,
    availability TEXT NOT NULL,
    rules        TEXT NOT NULL,
    policy       TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (practice_id, clinician)
);

-- The appointment types a practice offers.
CREATE TABLE appointment_types (
    practice_id UUID NOT NULL REFERENCES practices(id),
    kind        TEXT NOT NULL CHECK (kind IN ('intake','session','review','group')),
    minutes     BIGINT NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    format      TEXT NOT NULL CHECK (format IN ('video','phone','chat','in_person')),
    PRIMARY KEY (practice_id, kind, minutes, format)
);

CREATE TABLE appointment_series (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    clinician   UUID NOT NULL REFERENCES users(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    recurrence  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX appointment_series_practice ON appointment_series(practice_id, clinician);

CREATE TABLE appointments (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    clinician   UUID NOT NULL REFERENCES users(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    kind        TEXT NOT NULL CHECK (kind IN ('intake','session','review','group')),
    minutes     BIGINT NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    format      TEXT NOT NULL CHECK (format IN ('video','phone','chat','in_person')),
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('booked','cancelled','attended','no_show')),
    late_cancel BOOLEAN NOT NULL DEFAULT FALSE,
    series_id   UUID REFERENCES appointment_series(id),
    created_at  TIMESTAMPTZ NOT NULL,
    status_changed_at TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at),
    CONSTRAINT appointments_no_double_booking EXCLUDE USING gist (
        practice_id WITH =,
        clinician WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX appointments_clinician ON appointments(practice_id, clinician, starts_at);
CREATE INDEX appointments_client ON appointments(practice_id, client_id, starts_at);

-- Secret calendar-feed URLs: only the SHA-256 of the token is stored.
CREATE TABLE calendar_feed_tokens (
    token_hash  TEXT PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    clinician   UUID NOT NULL REFERENCES users(id),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX calendar_feed_tokens_clinician ON calendar_feed_tokens(practice_id, clinician);

-- The durable, idempotent job queue.
CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    practice_id  UUID NOT NULL REFERENCES practices(id),
    job_key      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued','running','done','failed')),
    attempts     BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
    run_after    TIMESTAMPTZ NOT NULL,
    claimed_by   TEXT,
    claimed_at   TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (practice_id, job_key)
);
CREATE INDEX jobs_ready ON jobs(state, run_after);
