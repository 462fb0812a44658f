-- Identity, access, audit and encryption at rest (issue 3).
-- Secrets are stored only as SHA-256 hashes (hex); clinical free text and
-- TOTP secrets only sealed (XChaCha20-Poly1305, base64 text, see store::vault).

-- Per-practice data keys, wrapped by a master key from the key file.
CREATE TABLE data_keys (
    practice_id   UUID NOT NULL REFERENCES practices(id),
    version       BIGINT NOT NULL CHECK (version >= 1),
    master_key_id BIGINT NOT NULL,
    wrapped       BYTEA NOT NULL,
    PRIMARY KEY (practice_id, version)
);

-- Second factor of an account. totp_secret is sealed (AAD: user_mfa.totp_secret, user id).
CREATE TABLE user_mfa (
    user_id        UUID PRIMARY KEY REFERENCES users(id),
    practice_id    UUID NOT NULL REFERENCES practices(id),
    totp_secret    TEXT NOT NULL,
    confirmed_at   TIMESTAMPTZ,
    last_used_step BIGINT
);

CREATE TABLE recovery_codes (
    user_id     UUID NOT NULL REFERENCES users(id),
    practice_id UUID NOT NULL REFERENCES practices(id),
    position    BIGINT NOT NULL,
    code_hash   TEXT NOT NULL,
    used_at     TIMESTAMPTZ,
    PRIMARY KEY (user_id, position)
);

-- Server-side sessions; the browser holds the token, we hold its hash.
CREATE TABLE sessions (
    token_hash         TEXT PRIMARY KEY,
    practice_id        UUID REFERENCES practices(id),
    user_id            UUID NOT NULL REFERENCES users(id),
    role               TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    last_seen_at       TIMESTAMPTZ NOT NULL,
    idle_seconds       BIGINT NOT NULL,
    absolute_deadline  TIMESTAMPTZ NOT NULL,
    mfa_enrolled       BOOLEAN NOT NULL,
    mfa_completed_at   TIMESTAMPTZ,
    reauthenticated_at TIMESTAMPTZ,
    ended_at           TIMESTAMPTZ,
    ended_reason       TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE invitations (
    token_hash  TEXT PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    invited_by  UUID NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    client_id   UUID REFERENCES clients(id),
    email       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    redeemed_at TIMESTAMPTZ
);

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    user_id     UUID NOT NULL REFERENCES users(id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    redeemed_at TIMESTAMPTZ
);

-- Sign-in failure counters, keyed by a hash of (kind, e-mail and/or address).
-- Instance-level (an unknown e-mail has no practice): practice_id stays NULL.
CREATE TABLE login_throttle (
    counter_key     TEXT PRIMARY KEY,
    practice_id     UUID REFERENCES practices(id),
    failures        BIGINT NOT NULL,
    last_failure_at TIMESTAMPTZ
);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    practice_id UUID REFERENCES practices(id),
    user_id     UUID NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Emergency access (G15). The reason is sealed.
CREATE TABLE break_glass_grants (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    clinician   UUID NOT NULL REFERENCES users(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    reason      TEXT NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX break_glass_clinician ON break_glass_grants(practice_id, clinician);

-- Content-free in-app alerts ("emergency access was opened to a record").
CREATE TABLE alerts (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    recipient   UUID NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL,
    object_id   UUID,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX alerts_recipient ON alerts(practice_id, recipient);

-- The audit chain. audit_head is the single writer's lock and counter: the
-- append transaction starts by incrementing it, so seq has no gaps.
CREATE TABLE audit_head (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
INSERT INTO audit_head (chain, seq) VALUES ('main', 0);

CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    actor       UUID,
    practice_id UUID,
    object_type TEXT NOT NULL,
    object_id   UUID,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    request_id  TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_object ON audit_events(practice_id, object_type, object_id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
-- The application role gets no UPDATE/DELETE/TRUNCATE on the log. (The
-- owner can still drop triggers; deployments run the app as a non-owner role,
-- see docs/security-model.md.)
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
