-- Identity, access, audit and encryption at rest (issue 3).
-- Secrets are stored only as SHA-256 hashes (hex); clinical free text and
-- TOTP secrets only sealed (XChaCha20-Poly1305, base64 text, see store::vault).

-- Per-practice data keys, wrapped by a master key from the key file.
CREATE TABLE data_keys (
    practice_id   BLOB NOT NULL REFERENCES practices(id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    master_key_id INTEGER NOT NULL,
    wrapped       BLOB NOT NULL,
    PRIMARY KEY (practice_id, version)
);

-- Second factor of an account. totp_secret is sealed (AAD: user_mfa.totp_secret, user id).
CREATE TABLE user_mfa (
    user_id        BLOB PRIMARY KEY REFERENCES users(id),
    practice_id    BLOB NOT NULL REFERENCES practices(id),
    totp_secret    TEXT NOT NULL,
    confirmed_at   TEXT,
    last_used_step INTEGER
);

CREATE TABLE recovery_codes (
    user_id     BLOB NOT NULL REFERENCES users(id),
    practice_id BLOB NOT NULL REFERENCES practices(id),
    position    INTEGER NOT NULL,
    code_hash   TEXT NOT NULL,
    used_at     TEXT,
    PRIMARY KEY (user_id, position)
);

-- Server-side sessions; the browser holds the token, we hold its hash.
CREATE TABLE sessions (
    token_hash         TEXT PRIMARY KEY,
    practice_id        BLOB REFERENCES practices(id),
    user_id            BLOB NOT NULL REFERENCES users(id),
    role               TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    last_seen_at       TEXT NOT NULL,
    idle_seconds       INTEGER NOT NULL,
    absolute_deadline  TEXT NOT NULL,
    mfa_enrolled       INTEGER NOT NULL,
    mfa_completed_at   TEXT,
    reauthenticated_at TEXT,
    ended_at           TEXT,
    ended_reason       TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE invitations (
    token_hash  TEXT PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    invited_by  BLOB NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    client_id   BLOB REFERENCES clients(id),
    email       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    redeemed_at TEXT
);

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    user_id     BLOB NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    redeemed_at TEXT
);

-- Sign-in failure counters, keyed by a hash of (kind, e-mail and/or address).
-- Instance-level (an unknown e-mail has no practice): practice_id stays NULL.
CREATE TABLE login_throttle (
    counter_key     TEXT PRIMARY KEY,
    practice_id     BLOB REFERENCES practices(id),
    failures        INTEGER NOT NULL,
    last_failure_at TEXT
);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    practice_id BLOB REFERENCES practices(id),
    user_id     BLOB NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Emergency access (G15). The reason is sealed.
CREATE TABLE break_glass_grants (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    clinician   BLOB NOT NULL REFERENCES users(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    reason      TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX break_glass_clinician ON break_glass_grants(practice_id, clinician);

-- Content-free in-app alerts ("emergency access was opened to a record").
CREATE TABLE alerts (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    recipient   BLOB NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL,
    object_id   BLOB,
    created_at  TEXT NOT NULL
);
CREATE INDEX alerts_recipient ON alerts(practice_id, recipient);

-- The audit chain. audit_head is the single writer's lock and counter: the
-- append transaction starts by incrementing it, so seq has no gaps.
CREATE TABLE audit_head (
    chain TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
);
INSERT INTO audit_head (chain, seq) VALUES ('main', 0);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    actor       BLOB,
    practice_id BLOB,
    object_type TEXT NOT NULL,
    object_id   BLOB,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    at          TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_object ON audit_events(practice_id, object_type, object_id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
