//! The messaging adapter body (secure messages, attachments, reply promise,
//! live-chat transcripts), shared by both backends. Every free text is
//! sealed with the practice's keys before it reaches a column.

macro_rules! messaging_adapter {
    ($store:ident, $db:ty, $row:ty) => {
        mod messaging_adapter {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::messaging::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use tapestry_domain::ids::{ClientId, PracticeId, UserId};
            use tapestry_domain::ingest::ClinicianTask;
            use tapestry_domain::schedule::AppointmentId;
            use uuid::Uuid;

            const MESSAGES: &str = "secure_messages";
            const ATTACHMENTS: &str = "message_attachments";
            const CHAT: &str = "chat_lines";

            impl $store {
                async fn message_from(&self, row: &$row) -> StoreResult<SecureMessage> {
                    let id: Uuid = row.try_get("id")?;
                    let practice = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let sealed: String = row.try_get("body")?;
                    Ok(SecureMessage {
                        id,
                        practice_id: practice,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        sender: UserId::from_uuid(row.try_get("sender")?),
                        from_client: row.try_get("from_client")?,
                        body: self.open_text(practice, MESSAGES, "body", id, &sealed).await?,
                        has_attachment: row.try_get("has_attachment")?,
                        sent_at: row.try_get("sent_at")?,
                        read_at: row.try_get("read_at")?,
                    })
                }
            }

            #[async_trait]
            impl MessagingStore for $store {
                async fn practice_phrase_list(
                    &self,
                    practice: PracticeId,
                ) -> StoreResult<Option<tapestry_domain::urgent_language::PracticePhraseList>> {
                    let row = sqlx::query("SELECT body FROM urgent_phrase_lists WHERE practice_id = $1")
                        .bind(practice.as_uuid())
                        .fetch_optional(&self.pool)
                        .await?;
                    match row {
                        None => Ok(None),
                        Some(r) => {
                            let body: String = r.try_get("body")?;
                            serde_json::from_str(&body)
                                .map(Some)
                                .map_err(|e| StoreError::Corrupt(format!("urgent_phrase_lists.body: {e}")))
                        }
                    }
                }

                async fn put_practice_phrase_list(
                    &self,
                    practice: PracticeId,
                    expected: Option<&tapestry_domain::urgent_language::PracticePhraseList>,
                    list: &tapestry_domain::urgent_language::PracticePhraseList,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let json = |l: &tapestry_domain::urgent_language::PracticePhraseList| {
                        serde_json::to_string(l)
                            .map_err(|e| StoreError::Corrupt(format!("urgent_phrase_lists.body: {e}")))
                    };
                    let body = json(list)?;
                    let done = match expected {
                        None => sqlx::query("INSERT INTO urgent_phrase_lists (practice_id, body, updated_at) VALUES ($1,$2,$3) ON CONFLICT (practice_id) DO NOTHING")
                            .bind(practice.as_uuid())
                            .bind(body)
                            .bind(at)
                            .execute(&self.pool)
                            .await?,
                        // The body is written by this function only, so the
                        // same list serialises to the same text.
                        Some(old) => sqlx::query("UPDATE urgent_phrase_lists SET body = $2, updated_at = $3 WHERE practice_id = $1 AND body = $4")
                            .bind(practice.as_uuid())
                            .bind(body)
                            .bind(at)
                            .bind(json(old)?)
                            .execute(&self.pool)
                            .await?,
                    };
                    Ok(done.rows_affected() == 1)
                }

                async fn send_message(
                    &self,
                    m: &SecureMessage,
                    attachment: Option<&Attachment>,
                    urgent_task: Option<&ClinicianTask>,
                ) -> StoreResult<()> {
                    let practice = m.practice_id;
                    let body = self.seal_text(practice, MESSAGES, "body", m.id, &m.body).await?;
                    let sealed_attachment = match attachment {
                        Some(a) => {
                            let json = serde_json::to_string(a).map_err(|e| {
                                StoreError::Corrupt(format!("message_attachments.content: {e}"))
                            })?;
                            Some(self.seal_text(practice, ATTACHMENTS, "content", m.id, &json).await?)
                        }
                        None => None,
                    };
                    let mut tx = self.pool.begin().await?;
                    sqlx::query("INSERT INTO secure_messages (id, practice_id, client_id, sender, from_client, body, has_attachment, sent_at, read_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)")
                        .bind(m.id)
                        .bind(practice.as_uuid())
                        .bind(m.client_id.as_uuid())
                        .bind(m.sender.as_uuid())
                        .bind(m.from_client)
                        .bind(body)
                        .bind(sealed_attachment.is_some())
                        .bind(m.sent_at)
                        .bind(m.read_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "secure message id already exists"))?;
                    if let Some(content) = sealed_attachment {
                        sqlx::query("INSERT INTO message_attachments (message_id, practice_id, content) VALUES ($1,$2,$3)")
                            .bind(m.id)
                            .bind(practice.as_uuid())
                            .bind(content)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if let Some(t) = urgent_task {
                        crate::adapter_measurement::insert_clinician_task!(t, "")
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn messages_for_client(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                ) -> StoreResult<Vec<SecureMessage>> {
                    let rows = sqlx::query("SELECT * FROM secure_messages WHERE practice_id = $1 AND client_id = $2 ORDER BY sent_at, id")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(&self.pool)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push(self.message_from(r).await?);
                    }
                    Ok(out)
                }

                async fn message_attachment(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                    message: Uuid,
                ) -> StoreResult<Option<Attachment>> {
                    let row = sqlx::query("SELECT a.content AS content FROM message_attachments a JOIN secure_messages m ON m.id = a.message_id AND m.practice_id = a.practice_id WHERE a.practice_id = $1 AND m.client_id = $2 AND a.message_id = $3")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .bind(message)
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let sealed: String = row.try_get("content")?;
                    let json = self.open_text(practice, ATTACHMENTS, "content", message, &sealed).await?;
                    serde_json::from_str(&json)
                        .map(Some)
                        .map_err(|e| StoreError::Corrupt(format!("message_attachments.content: {e}")))
                }

                async fn mark_thread_read(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                    reader_is_client: bool,
                    at: DateTime<Utc>,
                ) -> StoreResult<u64> {
                    let done = sqlx::query("UPDATE secure_messages SET read_at = $4 WHERE practice_id = $1 AND client_id = $2 AND from_client = $3 AND read_at IS NULL AND sent_at <= $4")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .bind(!reader_is_client)
                        .bind(at)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn set_reply_promise(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                    hours: Option<u32>,
                    set_by: UserId,
                ) -> StoreResult<()> {
                    sqlx::query("INSERT INTO message_threads (practice_id, client_id, reply_within_hours, set_by) VALUES ($1,$2,$3,$4) ON CONFLICT (practice_id, client_id) DO UPDATE SET reply_within_hours = excluded.reply_within_hours, set_by = excluded.set_by")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .bind(hours.map(i64::from))
                        .bind(set_by.as_uuid())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn reply_promise(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                ) -> StoreResult<Option<u32>> {
                    let row = sqlx::query("SELECT reply_within_hours FROM message_threads WHERE practice_id = $1 AND client_id = $2")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let hours: Option<i64> = row.try_get("reply_within_hours")?;
                    hours
                        .map(|h| u32::try_from(h).map_err(|e| StoreError::Corrupt(format!("message_threads.reply_within_hours: {e}"))))
                        .transpose()
                }

                async fn append_chat_line(&self, line: &ChatLine) -> StoreResult<()> {
                    let body = self.seal_text(line.practice_id, CHAT, "body", line.id, &line.body).await?;
                    sqlx::query("INSERT INTO chat_lines (id, practice_id, appointment_id, sender, body, sent_at) VALUES ($1,$2,$3,$4,$5,$6)")
                        .bind(line.id)
                        .bind(line.practice_id.as_uuid())
                        .bind(line.appointment_id.as_uuid())
                        .bind(line.sender.as_uuid())
                        .bind(body)
                        .bind(line.sent_at)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "chat line id already exists"))?;
                    Ok(())
                }

                async fn chat_transcript(
                    &self,
                    practice: PracticeId,
                    appointment: AppointmentId,
                ) -> StoreResult<Vec<ChatLine>> {
                    let rows = sqlx::query("SELECT * FROM chat_lines WHERE practice_id = $1 AND appointment_id = $2 ORDER BY sent_at, id")
                        .bind(practice.as_uuid())
                        .bind(appointment.as_uuid())
                        .fetch_all(&self.pool)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: Uuid = r.try_get("id")?;
                        let sealed: String = r.try_get("body")?;
                        out.push(ChatLine {
                            id,
                            practice_id: practice,
                            appointment_id: AppointmentId::from_uuid(r.try_get("appointment_id")?),
                            sender: UserId::from_uuid(r.try_get("sender")?),
                            body: self.open_text(practice, CHAT, "body", id, &sealed).await?,
                            sent_at: r.try_get("sent_at")?,
                        });
                    }
                    Ok(out)
                }
            }
        }
    };
}

pub(crate) use messaging_adapter;
