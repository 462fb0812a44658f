-- Measurement engine: measure schedules, per-episode measure state (baseline,
-- latest, not-on-track), risk flags, clinician tasks and fitted
-- expected-recovery curves. Every table carries practice_id.

CREATE TABLE measure_schedules (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    episode_id  UUID NOT NULL REFERENCES episodes(id),
    instrument  TEXT NOT NULL,
    rule        TEXT NOT NULL CHECK (rule IN ('before_every_session','every_n_days','intake_and_discharge')),
    every_days  BIGINT CHECK ((rule = 'every_n_days') = (every_days IS NOT NULL) AND (every_days IS NULL OR every_days BETWEEN 1 AND 366)),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX measure_schedules_one_per_instrument ON measure_schedules(practice_id, episode_id, instrument);

CREATE TABLE episode_measures (
    practice_id   UUID NOT NULL REFERENCES practices(id),
    episode_id    UUID NOT NULL REFERENCES episodes(id),
    instrument    TEXT NOT NULL,
    baseline      DOUBLE PRECISION,
    latest        DOUBLE PRECISION,
    sessions      BIGINT NOT NULL CHECK (sessions >= 0),
    track_status  TEXT CHECK (track_status IN ('functional_range','on_track','too_early','not_on_track','deteriorated')),
    not_on_track  BOOLEAN NOT NULL,
    track         TEXT,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (practice_id, episode_id, instrument)
);
CREATE INDEX episode_measures_not_on_track ON episode_measures(practice_id, not_on_track);

CREATE TABLE risk_flags (
    id            UUID PRIMARY KEY,
    practice_id   UUID NOT NULL REFERENCES practices(id),
    client_id     UUID NOT NULL REFERENCES clients(id),
    episode_id    UUID NOT NULL REFERENCES episodes(id),
    submission_id UUID NOT NULL REFERENCES submissions(id),
    instrument    TEXT NOT NULL,
    item          BIGINT,
    value         BIGINT,
    level         TEXT CHECK (level IN ('none','low','moderate','high','imminent')),
    colour        TEXT NOT NULL CHECK (colour IN ('amber','red')),
    rule          TEXT NOT NULL,
    signal        TEXT NOT NULL,
    raised_at     TIMESTAMPTZ NOT NULL,
    closed_by     UUID REFERENCES users(id),
    closed_at     TIMESTAMPTZ,
    closing_note  TEXT,
    CHECK ((closed_at IS NULL AND closed_by IS NULL AND closing_note IS NULL)
        OR (closed_at IS NOT NULL AND closed_by IS NOT NULL AND length(trim(closing_note)) > 0))
);
CREATE INDEX risk_flags_episode ON risk_flags(practice_id, episode_id, raised_at);
CREATE INDEX risk_flags_submission ON risk_flags(practice_id, submission_id);
CREATE INDEX risk_flags_open ON risk_flags(practice_id, closed_at);

CREATE TABLE clinician_tasks (
    id           UUID PRIMARY KEY,
    practice_id  UUID NOT NULL REFERENCES practices(id),
    client_id    UUID NOT NULL REFERENCES clients(id),
    episode_id   UUID NOT NULL REFERENCES episodes(id),
    kind         TEXT NOT NULL CHECK (kind IN ('risk_review')),
    risk_flag_id UUID REFERENCES risk_flags(id),
    assignee     UUID REFERENCES users(id),
    title        TEXT NOT NULL,
    detail       TEXT NOT NULL,
    colour       TEXT NOT NULL CHECK (colour IN ('amber','red')),
    due_at       TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
CREATE INDEX clinician_tasks_open ON clinician_tasks(practice_id, completed_at, due_at);
CREATE INDEX clinician_tasks_flag ON clinician_tasks(practice_id, risk_flag_id);

CREATE TABLE recovery_curves (
    practice_id    UUID NOT NULL REFERENCES practices(id),
    instrument     TEXT NOT NULL,
    version        BIGINT NOT NULL CHECK (version >= 1),
    fitted_at      TIMESTAMPTZ NOT NULL,
    n_episodes     BIGINT NOT NULL CHECK (n_episodes >= 0),
    n_observations BIGINT NOT NULL CHECK (n_observations >= 0),
    parameters     TEXT NOT NULL,
    PRIMARY KEY (practice_id, instrument, version)
);
