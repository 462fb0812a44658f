-- Online sessions: secure messages between sessions (one thread per client
-- with their care team), attachments, the reply-time promise, and live-chat
-- transcripts. Message bodies, attachments and chat lines are SEALED with
-- the practice's keys (vault); the columns hold `s1.` text.

CREATE TABLE message_threads (
    practice_id        BLOB NOT NULL REFERENCES practices(id),
    client_id          BLOB NOT NULL REFERENCES clients(id),
    reply_within_hours INTEGER CHECK (reply_within_hours BETWEEN 1 AND 720),
    set_by             BLOB REFERENCES users(id),
    PRIMARY KEY (practice_id, client_id)
);

CREATE TABLE secure_messages (
    id          BLOB PRIMARY KEY,
    practice_id BLOB NOT NULL REFERENCES practices(id),
    client_id   BLOB NOT NULL REFERENCES clients(id),
    sender      BLOB NOT NULL REFERENCES users(id),
    from_client INTEGER NOT NULL,
    body        TEXT NOT NULL,
    has_attachment INTEGER NOT NULL DEFAULT 0,
    sent_at     TEXT NOT NULL,
    read_at     TEXT
);
CREATE INDEX secure_messages_thread ON secure_messages(practice_id, client_id, sent_at);

CREATE TABLE message_attachments (
    message_id  BLOB PRIMARY KEY REFERENCES secure_messages(id),
    practice_id BLOB NOT NULL REFERENCES practices(id),
    content     TEXT NOT NULL
);

CREATE TABLE chat_lines (
    id             BLOB PRIMARY KEY,
    practice_id    BLOB NOT NULL REFERENCES practices(id),
    appointment_id BLOB NOT NULL REFERENCES appointments(id),
    sender         BLOB NOT NULL REFERENCES users(id),
    body           TEXT NOT NULL,
    sent_at        TEXT NOT NULL
);
CREATE INDEX chat_lines_appointment ON chat_lines(practice_id, appointment_id, sent_at);
