-- Group programmes (psychoeducation, skills groups): members up to a
-- capacity, group sessions on the facilitator's calendar, attendance and
-- per-member notes (SEALED: the body column holds `s1.` text).
--
-- No double booking of a facilitator: a group session is booked under the
-- same per-clinician advisory lock as appointments, and both bookings check
-- both tables; an exclusion constraint also guards group_sessions itself.

CREATE TABLE group_programmes (
    id             UUID PRIMARY KEY,
    practice_id    UUID NOT NULL REFERENCES practices(id),
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('psychoeducation','skills')),
    facilitator    UUID NOT NULL REFERENCES users(id),
    co_facilitator UUID REFERENCES users(id),
    capacity       BIGINT NOT NULL CHECK (capacity BETWEEN 1 AND 30),
    self_enrolment BOOLEAN NOT NULL DEFAULT FALSE,
    measures       TEXT NOT NULL,
    -- Current members; the atomic `active_members < capacity` update is
    -- how capacity holds under concurrent joins.
    active_members BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL,
    CHECK (active_members BETWEEN 0 AND capacity)
);
CREATE INDEX group_programmes_practice ON group_programmes(practice_id, created_at);

CREATE TABLE group_members (
    practice_id UUID NOT NULL REFERENCES practices(id),
    group_id    UUID NOT NULL REFERENCES group_programmes(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    joined_at   TIMESTAMPTZ NOT NULL,
    left_at     TIMESTAMPTZ,
    PRIMARY KEY (group_id, client_id, joined_at)
);
CREATE UNIQUE INDEX group_members_current ON group_members(group_id, client_id) WHERE left_at IS NULL;
CREATE INDEX group_members_client ON group_members(practice_id, client_id);

CREATE TABLE group_sessions (
    id             UUID PRIMARY KEY,
    practice_id    UUID NOT NULL REFERENCES practices(id),
    group_id       UUID NOT NULL REFERENCES group_programmes(id),
    facilitator    UUID NOT NULL REFERENCES users(id),
    co_facilitator UUID REFERENCES users(id),
    minutes        BIGINT NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    format         TEXT NOT NULL CHECK (format IN ('video','phone','chat','in_person')),
    starts_at      TIMESTAMPTZ NOT NULL,
    ends_at        TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('booked','cancelled')),
    created_at     TIMESTAMPTZ NOT NULL,
    status_changed_at TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at),
    CONSTRAINT group_sessions_no_double_booking EXCLUDE USING gist (
        practice_id WITH =,
        facilitator WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX group_sessions_group ON group_sessions(practice_id, group_id, starts_at);
CREATE INDEX group_sessions_facilitator ON group_sessions(practice_id, facilitator, starts_at);
CREATE INDEX group_sessions_co_facilitator ON group_sessions(practice_id, co_facilitator, starts_at);

CREATE TABLE group_attendance (
    practice_id UUID NOT NULL REFERENCES practices(id),
    session_id  UUID NOT NULL REFERENCES group_sessions(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    status      TEXT NOT NULL CHECK (status IN ('present','absent','cancelled')),
    recorded_by UUID NOT NULL REFERENCES users(id),
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, client_id)
);

CREATE TABLE group_notes (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    group_id    UUID NOT NULL REFERENCES group_programmes(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    session_id  UUID REFERENCES group_sessions(id),
    author      UUID NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    written_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX group_notes_member ON group_notes(practice_id, group_id, client_id, written_at);
