-- Online sessions: secure messages between sessions (one thread per client
-- with their care team), attachments, the reply-time promise, and live-chat
-- transcripts. Message bodies, attachments and chat lines are SEALED with
-- the practice's keys (vault); the columns hold `s1.` text.

CREATE TABLE message_threads (
    practice_id        UUID NOT NULL REFERENCES practices(id),
    client_id          UUID NOT NULL REFERENCES clients(id),
    reply_within_hours BIGINT CHECK (reply_within_hours BETWEEN 1 AND 720),
    set_by             UUID REFERENCES users(id),
    PRIMARY KEY (practice_id, client_id)
);

CREATE TABLE secure_messages (
    id          UUID PRIMARY KEY,
    practice_id UUID NOT NULL REFERENCES practices(id),
    client_id   UUID NOT NULL REFERENCES clients(id),
    sender      UUID NOT NULL REFERENCES users(id),
    from_client BOOLEAN NOT NULL,
    body        TEXT NOT NULL,
    has_attachment BOOLEAN NOT NULL DEFAULT FALSE,
    sent_at     TIMESTAMPTZ NOT NULL,
    read_at     TIMESTAMPTZ
);
CREATE INDEX secure_messages_thread ON secure_messages(practice_id, client_id, sent_at);

CREATE TABLE message_attachments (
    message_id  UUID PRIMARY KEY REFERENCES secure_messages(id),
    practice_id UUID NOT NULL REFERENCES practices(id),
    content     TEXT NOT NULL
);

CREATE TABLE chat_lines (
    id             UUID PRIMARY KEY,
    practice_id    UUID NOT NULL REFERENCES practices(id),
    appointment_id UUID NOT NULL REFERENCES appointments(id),
    sender         UUID NOT NULL REFERENCES users(id),
    body           TEXT NOT NULL,
    sent_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_lines_appointment ON chat_lines(practice_id, appointment_id, sent_at);
