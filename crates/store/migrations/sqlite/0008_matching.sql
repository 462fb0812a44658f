-- Matching (SQLite): clinicians' matching profiles, clients' match requests,
-- the choices offered, accepted matches and batch runs. A clinician's places
-- are never exceeded: accepting a match runs in a BEGIN IMMEDIATE transaction
-- (one writer at a time) that counts the clinician's current matches before
-- inserting. Times are UTC RFC 3339 text in one format.

-- The profile (JSON of domain::matching::profile::ClinicianProfile, validated
-- before storing); the two capacity limits are columns so the acceptance
-- check reads them under the write lock.
CREATE TABLE matching_profiles (
    practice_id          BLOB NOT NULL REFERENCES practices(id),
    clinician            BLOB NOT NULL REFERENCES users(id),
    profile              TEXT NOT NULL,
    caseload_limit       INTEGER NOT NULL CHECK (caseload_limit >= 0),
    new_clients_per_week INTEGER NOT NULL CHECK (new_clients_per_week >= 0),
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (practice_id, clinician)
);

-- The client's latest match request (JSON of instant::ClientRequest).
CREATE TABLE match_requests (
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    request     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (practice_id, client_id)
);

-- The explained choices offered to a client (JSON of instant::MatchResult).
CREATE TABLE match_offers (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    result      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX match_offers_client ON match_offers(practice_id, client_id, created_at);

-- Accepted matches; a switch ends the current one with the reason asked.
CREATE TABLE clinician_matches (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    score       INTEGER NOT NULL,
    reasons     TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('client','coordinator','batch')),
    accepted_at TEXT NOT NULL,
    ended_at    TEXT,
    end_reason  TEXT
);
-- One current clinician per client.
CREATE UNIQUE INDEX clinician_matches_current ON clinician_matches(practice_id, client_id) WHERE ended_at IS NULL;
CREATE INDEX clinician_matches_clinician ON clinician_matches(practice_id, clinician, ended_at);

-- Batch assignment runs with each assignment's explanation (JSON).
CREATE TABLE match_runs (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    run_by      BLOB NOT NULL REFERENCES users(id),
    clients     INTEGER NOT NULL,
    assigned    INTEGER NOT NULL,
    total_score INTEGER NOT NULL,
    result      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX match_runs_practice ON match_runs(practice_id, created_at);
