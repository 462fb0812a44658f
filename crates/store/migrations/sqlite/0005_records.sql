-- Clinical record: versioned case formulations, versioned treatment plans
-- (with the clinician's decision that made each version) and session
-- reviews. Every table carries practice_id; the clinical content of each row
-- lives in `body`, sealed with the practice's data key (vault::SEALED_COLUMNS).

CREATE TABLE formulations (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    body        TEXT NOT NULL,
    author      BLOB NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    UNIQUE (practice_id, client_id, version)
);

CREATE TABLE plan_versions (
    id                  BLOB PRIMARY KEY,
    practice_id         BLOB NOT NULL REFERENCES practices(id),
    client_id           BLOB NOT NULL REFERENCES clients(id),
    version             INTEGER NOT NULL CHECK (version >= 1),
    formulation_version INTEGER CHECK (formulation_version IS NULL OR formulation_version >= 1),
    engine_version      TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('draft','accepted')),
    body                TEXT NOT NULL,
    created_by          BLOB NOT NULL REFERENCES users(id),
    created_at          TEXT NOT NULL,
    UNIQUE (practice_id, client_id, version)
);

CREATE TABLE session_reviews (
    id           BLOB PRIMARY KEY,
    practice_id  BLOB NOT NULL REFERENCES practices(id),
    client_id    BLOB NOT NULL REFERENCES clients(id),
    plan_version INTEGER CHECK (plan_version IS NULL OR plan_version >= 1),
    body         TEXT NOT NULL,
    created_by   BLOB NOT NULL REFERENCES users(id),
    created_at   TEXT NOT NULL
);
CREATE INDEX session_reviews_client ON session_reviews(practice_id, client_id, created_at);
