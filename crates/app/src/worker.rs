//! The background worker: claims jobs from the database queue and runs them.
//! Started by `tapestry serve`; several instances may run against one
//! PostgreSQL database (claims skip each other's rows).
//!
//! Job kinds:
//! * `email_reminder` — payload [`ReminderJob`]: looks up the recipient's
//!   current address, renders the content-free template and sends it. An
//!   appointment reminder for an appointment that was cancelled or moved is
//!   completed without sending.
//! * `waitlist_watch` — one per practice each hour ([`Worker::plan_waitlist_watch`]):
//!   runs [`tapestry_web::matching::watch_waitlist`] (waiting clients'
//!   measures and safety check-in put on their schedule; the intake team's
//!   risk, deterioration and re-match alerts and tasks, each raised once) and queues a
//!   content-free measures-due reminder for every waiting client with a
//!   measure or a risk re-screen due (each newly due one once).

use crate::mailer::Mailer;
use chrono::{DateTime, Duration};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::clock::Clock;
use tapestry_domain::ids::{PracticeId, UserId};
use tapestry_domain::notification::{render, Notification, ReminderJob};
use tapestry_domain::practice::Practice;
use tapestry_domain::schedule::{AppointmentId, AppointmentStatus};
use tapestry_domain::user::AccountStatus;
use tapestry_store::{Enqueued, Job, JobState, NewJob, Store, StoreError};

/// The kind of reminder jobs.
pub const EMAIL_REMINDER: &str = "email_reminder";
/// The kind of the periodic waitlist watch.
pub const WAITLIST_WATCH: &str = "waitlist_watch";
/// How often each practice's waitlist is watched.
pub const WAITLIST_WATCH_EVERY_MINUTES: i64 = 60;
/// How long a claim lasts before another worker may take the job over.
pub const LEASE_MINUTES: i64 = 5;
/// Attempts before a job fails for good.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long an appointment reminder is sent before the start.
pub const REMINDER_HOURS_BEFORE: i64 = 24;

/// What running one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    Sent,
    /// The waitlist was watched: alerts newly raised, reminders newly queued.
    Watched {
        alerts: usize,
        reminders: usize,
    },
    /// Completed without sending, with the reason.
    Skipped(&'static str),
    /// Failed; the new state (queued for retry, or failed for good).
    Failed(JobState),
}

/// A reminder job for `payload`, keyed so that enqueueing it twice stores it
/// once.
pub fn reminder_job(
    key: String,
    payload: &ReminderJob,
    run_after: DateTime<chrono::Utc>,
) -> Result<NewJob, serde_json::Error> {
    Ok(NewJob {
        practice_id: payload.practice_id,
        key,
        kind: EMAIL_REMINDER.into(),
        payload: serde_json::to_string(payload)?,
        run_after,
        max_attempts: MAX_ATTEMPTS,
    })
}

/// The reminder for a session (a one-to-one appointment or a group
/// session: both carry an [`AppointmentId`]) starting at `starts_at`, sent
/// 24 hours before it to `recipient`, shown in `time_zone` (the
/// recipient's own). Keyed by session, start and recipient, so planning
/// twice queues once and a moved session gets a new reminder.
pub fn session_reminder(
    practice: PracticeId,
    session: AppointmentId,
    starts_at: DateTime<chrono::Utc>,
    recipient: UserId,
    time_zone: &str,
) -> Result<NewJob, serde_json::Error> {
    let payload = ReminderJob {
        practice_id: practice,
        recipient,
        notification: Notification::AppointmentReminder {
            appointment: session,
            starts_at,
            time_zone: time_zone.to_string(),
        },
    };
    let key = format!(
        "reminder:{}:{}:{}h:{}",
        session,
        starts_at.timestamp(),
        REMINDER_HOURS_BEFORE,
        recipient
    );
    reminder_job(
        key,
        &payload,
        starts_at - Duration::hours(REMINDER_HOURS_BEFORE),
    )
}

/// One worker.
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<Mailer>,
    pub clock: Arc<dyn Clock>,
    pub name: String,
    pub sign_in_url: String,
}

impl Worker {
    /// Claims and runs one job; `None` when nothing is ready.
    pub async fn run_once(&self) -> Result<Option<(Job, Ran)>, StoreError> {
        let now = self.clock.now();
        let Some(job) = self
            .store
            .claim_job(&self.name, now, Duration::minutes(LEASE_MINUTES))
            .await?
        else {
            return Ok(None);
        };
        let outcome = match job.kind.as_str() {
            EMAIL_REMINDER => self.email_reminder(&job).await,
            WAITLIST_WATCH => self.waitlist_watch(&job).await,
            _ => Err(format!(
                "kind: '{}' is not a job this worker knows",
                job.kind
            )),
        };
        let ran = match outcome {
            Ok(ran) => {
                self.store
                    .complete_job(job.practice_id, job.id, &self.name, self.clock.now())
                    .await?;
                ran
            }
            Err(error) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %error, "job failed");
                Ran::Failed(
                    self.store
                        .fail_job(
                            job.practice_id,
                            job.id,
                            &self.name,
                            &error,
                            self.clock.now(),
                        )
                        .await?,
                )
            }
        };
        Ok(Some((job, ran)))
    }

    /// Why a session reminder should not be sent any more (`None`: send
    /// it): the appointment or group session was cancelled or moved, or
    /// the recipient no longer takes part in the group.
    async fn session_changed(
        &self,
        practice: PracticeId,
        session: AppointmentId,
        starts_at: DateTime<chrono::Utc>,
        recipient: UserId,
    ) -> Result<Option<&'static str>, StoreError> {
        const MOVED: &str = "appointment cancelled or moved";
        if let Some(a) = self.store.appointment(practice, session).await? {
            let current = a.status == AppointmentStatus::Booked && a.starts_at == starts_at;
            return Ok((!current).then_some(MOVED));
        }
        let Some(g) = self.store.group_session(practice, session).await? else {
            return Ok(Some(MOVED));
        };
        if g.status != AppointmentStatus::Booked || g.starts_at != starts_at {
            return Ok(Some(MOVED));
        }
        if g.facilitator == recipient || g.co_facilitator == Some(recipient) {
            return Ok(None);
        }
        let member = match self.store.client_for_user(practice, recipient).await? {
            Some(c) => self
                .store
                .memberships(practice, g.group_id)
                .await?
                .iter()
                .any(|m| m.client_id == c.id && m.is_current()),
            None => false,
        };
        Ok((!member).then_some("recipient no longer in the group"))
    }

    /// The zone a client's reminders use: theirs, else the practice's.
    fn client_zone(client: &Client, practice: &Practice) -> String {
        client.zone_or(&practice.time_zone).as_str().to_string()
    }

    /// The zone a clinician's reminders use: that of their working hours,
    /// else the practice's.
    async fn clinician_zone(
        &self,
        practice: &Practice,
        clinician: UserId,
    ) -> Result<String, StoreError> {
        Ok(self
            .store
            .clinician_schedule(practice.id, clinician)
            .await?
            .map(|s| s.availability.time_zone)
            .unwrap_or_else(|| practice.time_zone.as_str().to_string()))
    }

    async fn email_reminder(&self, job: &Job) -> Result<Ran, String> {
        let payload: ReminderJob =
            serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
        if payload.practice_id != job.practice_id {
            return Err("payload: practice does not match the job's".into());
        }
        let practice: PracticeId = job.practice_id;
        if let Notification::AppointmentReminder {
            appointment,
            starts_at,
            ..
        } = &payload.notification
        {
            if let Some(skip) = self
                .session_changed(practice, *appointment, *starts_at, payload.recipient)
                .await
                .map_err(|e| e.to_string())?
            {
                return Ok(Ran::Skipped(skip));
            }
        }
        let Some(user) = self
            .store
            .user(practice, payload.recipient)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(Ran::Skipped("recipient no longer exists"));
        };
        if user.status != AccountStatus::Active {
            return Ok(Ran::Skipped("recipient account is not active"));
        }
        let content = render(&payload.notification, self.clock.now(), &self.sign_in_url)
            .map_err(|e| e.to_string())?;
        self.mailer
            .send(user.email.as_str(), &content)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Ran::Sent)
    }

    /// Runs the waitlist watch for the job's practice and queues the
    /// measures-due reminders it asks for (to clients with an account).
    async fn waitlist_watch(&self, job: &Job) -> Result<Ran, String> {
        let practice = job.practice_id;
        let now = self.clock.now();
        let report = tapestry_web::matching::watch_waitlist(&*self.store, practice, now)
            .await
            .map_err(|e| e.to_string())?;
        let mut reminders = 0;
        for (client, key) in report.measures_due {
            let Some(user) = self
                .store
                .client(practice, client)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|c| c.user_id)
            else {
                continue;
            };
            let payload = ReminderJob {
                practice_id: practice,
                recipient: user,
                notification: Notification::MeasuresDue,
            };
            let reminder = reminder_job(key, &payload, now).map_err(|e| format!("payload: {e}"))?;
            if matches!(
                self.store
                    .enqueue(&reminder, now)
                    .await
                    .map_err(|e| e.to_string())?,
                Enqueued::New(_)
            ) {
                reminders += 1;
            }
        }
        Ok(Ran::Watched {
            alerts: report.alerts_raised,
            reminders,
        })
    }

    /// Queues this hour's waitlist watch for every practice (keyed by
    /// practice and hour, so planning twice queues once). Returns how many
    /// were new.
    pub async fn plan_waitlist_watch(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let slot = now
            .timestamp()
            .div_euclid(WAITLIST_WATCH_EVERY_MINUTES * 60);
        let mut new = 0;
        for practice in self.store.practices().await? {
            let job = NewJob {
                practice_id: practice.id,
                key: format!("waitlist-watch:{slot}"),
                kind: WAITLIST_WATCH.into(),
                payload: "{}".into(),
                run_after: now,
                max_attempts: MAX_ATTEMPTS,
            };
            if matches!(self.store.enqueue(&job, now).await?, Enqueued::New(_)) {
                new += 1;
            }
        }
        Ok(new)
    }

    /// Enqueues the 24-hour reminders for every booked appointment and
    /// group session starting within the next 25 hours in every practice:
    /// to the client (in the client's own zone, else the practice's) and the
    /// clinician (in the zone of their working hours, else the practice's);
    /// for a group session to its facilitators and every current member with
    /// an account. Idempotent: a reminder already queued is not queued
    /// again. Returns how many were new.
    pub async fn plan_reminders(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let until = now + Duration::hours(REMINDER_HOURS_BEFORE + 1);
        let mut new = 0;
        for practice in self.store.practices().await? {
            let p = practice.id;
            // (session, start, recipient, zone)
            let mut due: Vec<(AppointmentId, DateTime<chrono::Utc>, UserId, String)> = Vec::new();
            for a in self.store.booked_starting_between(p, now, until).await? {
                if let Some(client) = self.store.client(p, a.client_id).await? {
                    if let Some(user) = client.user_id {
                        due.push((
                            a.id,
                            a.starts_at,
                            user,
                            Self::client_zone(&client, &practice),
                        ));
                    }
                }
                let zone = self.clinician_zone(&practice, a.clinician).await?;
                due.push((a.id, a.starts_at, a.clinician, zone));
            }
            for g in self
                .store
                .booked_group_sessions_starting_between(p, now, until)
                .await?
            {
                for staff in std::iter::once(g.facilitator).chain(g.co_facilitator) {
                    let zone = self.clinician_zone(&practice, staff).await?;
                    due.push((g.id, g.starts_at, staff, zone));
                }
                for m in self.store.memberships(p, g.group_id).await? {
                    if !m.is_current() {
                        continue;
                    }
                    if let Some(client) = self.store.client(p, m.client_id).await? {
                        if let Some(user) = client.user_id {
                            due.push((
                                g.id,
                                g.starts_at,
                                user,
                                Self::client_zone(&client, &practice),
                            ));
                        }
                    }
                }
            }
            for (session, starts_at, recipient, zone) in due {
                let job = session_reminder(p, session, starts_at, recipient, &zone)
                    .map_err(|e| StoreError::Corrupt(format!("reminder payload: {e}")))?;
                if matches!(self.store.enqueue(&job, now).await?, Enqueued::New(_)) {
                    new += 1;
                }
            }
        }
        Ok(new)
    }

    /// Runs until `stop` resolves: works through ready jobs, then waits a
    /// little before looking again.
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        let mut stop = stop;
        let mut planned_at: Option<DateTime<chrono::Utc>> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            // Reminders and the waitlist watch are planned at most once a minute.
            let now = self.clock.now();
            if planned_at.is_none_or(|t| now - t >= Duration::minutes(1)) {
                planned_at = Some(now);
                if let Err(e) = self.plan_reminders().await {
                    tracing::warn!(error = %e, "planning reminders failed");
                }
                if let Err(e) = self.plan_waitlist_watch().await {
                    tracing::warn!(error = %e, "planning the waitlist watch failed");
                }
            }
            let idle = match self.run_once().await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "job queue unavailable");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Starts the worker for `serve`. Returns the sender that stops it.
pub fn start(
    config: &crate::config::Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sign_in_url: &str,
) -> anyhow::Result<tokio::sync::watch::Sender<bool>> {
    let mailer = Mailer::from_config(config)?;
    tracing::info!(mailer = ?mailer, "background worker started");
    let worker = Worker {
        store,
        mailer: Arc::new(mailer),
        clock,
        name: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        sign_in_url: sign_in_url.to_string(),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(worker.run(rx));
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SmtpConfig, SmtpTls};
    use chrono::{TimeZone, Utc};
    use std::sync::Mutex;
    use tapestry_domain::client::Client;
    use tapestry_domain::clock::FixedClock;
    use tapestry_domain::notification::CLINICAL_DENY_LIST;
    use tapestry_domain::practice::Practice;
    use tapestry_domain::schedule::{Appointment, AppointmentKind, AppointmentType, Format};
    use tapestry_domain::user::{Role, User};
    use tapestry_store::SqliteStore;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A minimal SMTP server on loopback that accepts every message and
    /// keeps the raw DATA of each.
    async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = got.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            break;
                        }
                        let cmd = line.to_ascii_uppercase();
                        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                            write
                                .write_all(b"250-sink\r\n250 8BITMIME\r\n")
                                .await
                                .unwrap();
                        } else if cmd.starts_with("DATA") {
                            write.write_all(b"354 end with .\r\n").await.unwrap();
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if read.read_line(&mut line).await.unwrap_or(0) == 0
                                    || line == ".\r\n"
                                {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            sink.lock().unwrap().push(data);
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else if cmd.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        } else {
                            write.write_all(b"250 ok\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        (port, got)
    }

    fn smtp_to(port: u16) -> Mailer {
        Mailer::smtp(&SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            credentials: None,
            from: "Tapestry <noreply@example.org>".into(),
            tls: SmtpTls::None,
        })
        .unwrap()
    }

    struct World {
        store: Arc<dyn Store>,
        clock: Arc<FixedClock>,
        practice: Practice,
        client_user: User,
        appointment: Appointment,
        _dir: tempfile::TempDir,
    }

    /// A practice whose names and records are full of canaries and clinical
    /// words, with one client who has an appointment tomorrow.
    /// Cancels the world's one-to-one appointment (on time, by the practice).
    async fn cancel_appointment(w: &World) {
        w.store
            .set_appointment_status(
                w.practice.id,
                w.appointment.id,
                AppointmentStatus::Booked,
                AppointmentStatus::Cancelled,
                false,
                w.clock.now(),
            )
            .await
            .unwrap();
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tapestry.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        let practice = Practice::new(
            "CANARYPRACTICE Eating Disorder and Depression Clinic",
            "Europe/London",
            now,
        )
        .unwrap();
        store.insert_practice(&practice).await.unwrap();
        let clinician = User::new(
            practice.id,
            "clin@example.org",
            "Dr CANARYCLINICIAN Psychiatrist",
            Role::Clinician,
            now,
        )
        .unwrap();
        store.insert_user(&clinician, None).await.unwrap();
        let client_user = User::new(
            practice.id,
            "person@example.org",
            "CANARYCLIENT Suicide PTSD",
            Role::Client,
            now,
        )
        .unwrap();
        store.insert_user(&client_user, None).await.unwrap();
        let client = Client::new(
            practice.id,
            "CANARYRECORD bipolar overdose",
            None,
            Some("GB"),
            now,
        )
        .unwrap();
        store.insert_client(&client).await.unwrap();
        store
            .link_client_user(practice.id, client.id, client_user.id)
            .await
            .unwrap();
        let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
        let appointment = Appointment::book(
            practice.id,
            clinician.id,
            client.id,
            t,
            now + Duration::hours(24),
            now,
        )
        .unwrap();
        store.book_appointment(&appointment).await.unwrap();
        World {
            store,
            clock: Arc::new(FixedClock::new(now)),
            practice,
            client_user,
            appointment,
            _dir: dir,
        }
    }

    fn worker(w: &World, mailer: Mailer) -> Worker {
        Worker {
            store: w.store.clone(),
            mailer: Arc::new(mailer),
            clock: w.clock.clone(),
            name: "test-worker".into(),
            sign_in_url: "https://care.example.org".into(),
        }
    }

    async fn enqueue_due_reminders(w: &World) {
        for n in [Notification::MeasuresDue, Notification::HomeworkDue] {
            let payload = ReminderJob {
                practice_id: w.practice.id,
                recipient: w.client_user.id,
                notification: n.clone(),
            };
            let job = reminder_job(
                format!("{}:{}", n.kind(), w.client_user.id),
                &payload,
                w.clock.now(),
            )
            .unwrap();
            w.store.enqueue(&job, w.clock.now()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn every_notification_type_through_smtp_carries_no_clinical_content() {
        let w = world().await;
        let (port, captured) = smtp_sink().await;
        let worker = worker(&w, smtp_to(port));
        // One to the client, one to the clinician.
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        assert_eq!(
            worker.plan_reminders().await.unwrap(),
            0,
            "planning twice queues once"
        );
        enqueue_due_reminders(&w).await;
        let mut kinds = Vec::new();
        while let Some((job, ran)) = worker.run_once().await.unwrap() {
            assert_eq!(ran, Ran::Sent, "{}", job.payload);
            let payload: ReminderJob = serde_json::from_str(&job.payload).unwrap();
            kinds.push(payload.notification.kind());
        }
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            vec![
                "appointment_reminder",
                "appointment_reminder",
                "homework_due",
                "measures_due"
            ]
        );
        let messages = captured.lock().unwrap().clone();
        assert_eq!(messages.len(), 4);
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains("To: clin@example.org"))
                .count(),
            1
        );
        let mut matches = Vec::new();
        for m in &messages {
            assert!(m.contains("Content-Transfer-Encoding: 7bit"), "{m}");
            assert!(
                m.contains("To: person@example.org") || m.contains("To: clin@example.org"),
                "{m}"
            );
            let lower = m.to_lowercase();
            for word in CLINICAL_DENY_LIST.iter().copied().chain(["canary"]) {
                if lower.contains(word) {
                    matches.push(word);
                }
            }
        }
        assert!(
            matches.is_empty(),
            "clinical words or canaries in e-mail: {matches:?}"
        );
        assert!(messages
            .iter()
            .any(|m| m.contains("You have an appointment tomorrow at 10:00 (Europe/London).")));
    }

    /// The periodic waitlist watch: one job per practice and hour; a waiting
    /// client with measures due gets ONE content-free measures-due e-mail,
    /// and running the watch again without anything newly due queues none.
    #[tokio::test]
    async fn the_waitlist_watch_queues_one_content_free_measures_reminder() {
        use tapestry_domain::episode::{Episode, EpisodeStatus};
        let w = world().await;
        let (port, captured) = smtp_sink().await;
        let worker = worker(&w, smtp_to(port));
        let p = w.practice.id;
        let now = w.clock.now();
        let episode = Episode::open(p, w.appointment.client_id, now);
        w.store.insert_episode(&episode).await.unwrap();
        w.store
            .move_episode(
                p,
                episode.id,
                EpisodeStatus::Referral,
                EpisodeStatus::Waitlist,
                now,
            )
            .await
            .unwrap();
        assert_eq!(worker.plan_waitlist_watch().await.unwrap(), 1);
        assert_eq!(
            worker.plan_waitlist_watch().await.unwrap(),
            0,
            "planned twice in the hour: one job"
        );
        let (job, ran) = worker.run_once().await.unwrap().unwrap();
        assert_eq!(job.kind, WAITLIST_WATCH);
        assert_eq!(
            ran,
            Ran::Watched {
                alerts: 0,
                reminders: 1
            }
        );
        let (job, ran) = worker.run_once().await.unwrap().unwrap();
        assert_eq!((job.kind.as_str(), ran), (EMAIL_REMINDER, Ran::Sent));
        assert!(worker.run_once().await.unwrap().is_none());
        // An hour later the watch runs again: nothing newly due, no reminder.
        w.clock.advance(Duration::hours(1));
        assert_eq!(worker.plan_waitlist_watch().await.unwrap(), 1);
        let (_, ran) = worker.run_once().await.unwrap().unwrap();
        assert_eq!(
            ran,
            Ran::Watched {
                alerts: 0,
                reminders: 0
            }
        );
        assert!(worker.run_once().await.unwrap().is_none());
        let messages = captured.lock().unwrap().clone();
        assert_eq!(messages.len(), 1);
        let lower = messages[0].to_lowercase();
        assert!(messages[0].contains("To: person@example.org"));
        for word in CLINICAL_DENY_LIST
            .iter()
            .copied()
            .chain(["canary", "waitlist"])
        {
            assert!(!lower.contains(word), "{word} in {lower}");
        }
    }

    /// Client in New York, clinician in London, between the two
    /// spring-forward dates (US 8 March, EU 29 March 2026): the clocks are
    /// four hours apart instead of five. Each reminder states the time in
    /// its recipient's own zone.
    #[tokio::test]
    async fn reminders_state_the_time_in_each_recipients_zone_across_dst() {
        use tapestry_domain::practice::TimeZoneName;
        use tapestry_domain::schedule::{Availability, BookingRules, CancellationPolicy};
        use tapestry_store::schedule::ClinicianSchedule;
        let w = world().await;
        let now = Utc.with_ymd_and_hms(2026, 3, 9, 14, 0, 0).unwrap();
        w.clock.set(now);
        w.store
            .set_client_time_zone(
                w.practice.id,
                w.appointment.client_id,
                Some(&TimeZoneName::parse("America/New_York").unwrap()),
            )
            .await
            .unwrap();
        w.store
            .put_clinician_schedule(&ClinicianSchedule {
                practice_id: w.practice.id,
                clinician: w.appointment.clinician,
                availability: Availability {
                    time_zone: "Europe/London".into(),
                    weekly: vec![],
                    exceptions: vec![],
                },
                rules: BookingRules::default(),
                policy: CancellationPolicy::default(),
                updated_at: now,
            })
            .await
            .unwrap();
        let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
        let appointment = Appointment::book(
            w.practice.id,
            w.appointment.clinician,
            w.appointment.client_id,
            t,
            Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap(),
            now,
        )
        .unwrap();
        w.store.book_appointment(&appointment).await.unwrap();
        let (port, captured) = smtp_sink().await;
        let worker = worker(&w, smtp_to(port));
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        while let Some((_, ran)) = worker.run_once().await.unwrap() {
            assert_eq!(ran, Ran::Sent);
        }
        let messages = captured.lock().unwrap().clone();
        let to = |addr: &str| {
            messages
                .iter()
                .find(|m| m.contains(&format!("To: {addr}")))
                .cloned()
                .unwrap()
        };
        assert!(
            to("person@example.org")
                .contains("You have an appointment tomorrow at 10:00 (America/New_York)."),
            "{messages:?}"
        );
        assert!(
            to("clin@example.org")
                .contains("You have an appointment tomorrow at 14:00 (Europe/London)."),
            "{messages:?}"
        );
        // Three weeks later both zones are on summer time: 14:00 UTC is
        // 10:00 in New York and 15:00 in London.
        let later = Utc.with_ymd_and_hms(2026, 3, 30, 14, 0, 0).unwrap();
        w.clock.set(later - Duration::hours(24));
        let next = Appointment::book(
            w.practice.id,
            w.appointment.clinician,
            w.appointment.client_id,
            t,
            later,
            w.clock.now(),
        )
        .unwrap();
        w.store.book_appointment(&next).await.unwrap();
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        while worker.run_once().await.unwrap().is_some() {}
        let messages = captured.lock().unwrap().clone();
        // New York was already on summer time: still 10:00 for the client;
        // the clinician's hour moved with London's clocks.
        assert_eq!(messages.len(), 4);
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains("tomorrow at 10:00 (America/New_York)"))
                .count(),
            2
        );
        assert!(messages
            .iter()
            .any(|m| m.contains("tomorrow at 15:00 (Europe/London)")));
    }

    /// A group session tomorrow: its facilitator and its current member
    /// get reminders through the same queue and SMTP, each in their own
    /// zone, and neither carries the group's name (full of canaries and
    /// clinical words) or anything clinical. A member who has left by the
    /// time the job runs gets nothing.
    #[tokio::test]
    async fn group_session_reminders_reach_facilitators_and_members_without_clinical_content() {
        use tapestry_domain::practice::TimeZoneName;
        use tapestry_domain::schedule::group::{
            GroupKind, GroupProgramme, GroupSession, Membership, NewGroup,
        };
        let w = world().await;
        // The one-to-one appointment is cancelled: only the group is due.
        cancel_appointment(&w).await;
        let group = GroupProgramme::new(
            w.practice.id,
            w.appointment.clinician,
            NewGroup {
                name: "CANARYGROUP Trauma and Self-Harm Recovery".into(),
                kind: GroupKind::Skills,
                co_facilitator: None,
                capacity: 6,
                self_enrolment: false,
                measures: vec!["phq9".into()],
            },
            w.clock.now(),
        )
        .unwrap();
        w.store.insert_group(&group).await.unwrap();
        w.store
            .set_client_time_zone(
                w.practice.id,
                w.appointment.client_id,
                Some(&TimeZoneName::parse("Asia/Tokyo").unwrap()),
            )
            .await
            .unwrap();
        let member = Membership {
            group_id: group.id,
            client_id: w.appointment.client_id,
            joined_at: w.clock.now(),
            left_at: None,
        };
        w.store.add_member(w.practice.id, &member).await.unwrap();
        // Tomorrow 09:00 UTC = 10:00 London (BST) = 18:00 Tokyo.
        let session = GroupSession::schedule(
            &group,
            w.clock.now() + Duration::hours(24),
            90,
            Format::Video,
            w.clock.now(),
        )
        .unwrap();
        w.store.book_group_session(&session).await.unwrap();
        // The facilitator's calendar feed lists it neutrally.
        let stored = w
            .store
            .group_sessions_for_clinician(
                w.practice.id,
                w.appointment.clinician,
                w.clock.now(),
                w.clock.now() + Duration::days(7),
            )
            .await
            .unwrap();
        let feed = tapestry_domain::schedule::ical::clinician_feed(&[], &stored, w.clock.now());
        assert!(
            feed.contains("SUMMARY:Group session · 90 min · video"),
            "{feed}"
        );
        let lower = feed.to_lowercase();
        for word in CLINICAL_DENY_LIST.iter().copied().chain(["canary"]) {
            assert!(!lower.contains(word), "{word} in {feed}");
        }
        let (port, captured) = smtp_sink().await;
        let worker = worker(&w, smtp_to(port));
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        assert_eq!(worker.plan_reminders().await.unwrap(), 0, "queued once");
        while let Some((job, ran)) = worker.run_once().await.unwrap() {
            assert_eq!(ran, Ran::Sent, "{}", job.payload);
        }
        let messages = captured.lock().unwrap().clone();
        assert_eq!(messages.len(), 2);
        let to = |addr: &str| {
            messages
                .iter()
                .find(|m| m.contains(&format!("To: {addr}")))
                .cloned()
                .unwrap()
        };
        assert!(to("clin@example.org").contains("tomorrow at 10:00 (Europe/London)."));
        assert!(to("person@example.org").contains("tomorrow at 18:00 (Asia/Tokyo)."));
        for m in &messages {
            let lower = m.to_lowercase();
            let hits: Vec<_> = CLINICAL_DENY_LIST
                .iter()
                .copied()
                .chain(["canary", "group"])
                .filter(|w| lower.contains(w))
                .collect();
            assert!(hits.is_empty(), "{hits:?} in {m}");
        }
        // Moved to the next day: new reminders are queued; the member
        // leaves before they run and only the facilitator's is sent.
        w.clock.advance(Duration::hours(24));
        w.store
            .cancel_group_session(w.practice.id, session.id, w.clock.now())
            .await
            .unwrap();
        let moved = GroupSession::schedule(
            &group,
            w.clock.now() + Duration::hours(24),
            90,
            Format::Video,
            w.clock.now(),
        )
        .unwrap();
        w.store.book_group_session(&moved).await.unwrap();
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        w.store
            .remove_member(
                w.practice.id,
                group.id,
                w.appointment.client_id,
                w.clock.now(),
            )
            .await
            .unwrap();
        let mut ran = Vec::new();
        while let Some((_, r)) = worker.run_once().await.unwrap() {
            ran.push(r);
        }
        ran.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            ran,
            vec![Ran::Sent, Ran::Skipped("recipient no longer in the group")]
        );
        assert_eq!(captured.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn reminders_for_cancelled_appointments_are_not_sent() {
        let w = world().await;
        let (port, captured) = smtp_sink().await;
        let worker = worker(&w, smtp_to(port));
        assert_eq!(worker.plan_reminders().await.unwrap(), 2);
        cancel_appointment(&w).await;
        for _ in 0..2 {
            let (_, ran) = worker.run_once().await.unwrap().unwrap();
            assert_eq!(ran, Ran::Skipped("appointment cancelled or moved"));
        }
        assert!(captured.lock().unwrap().is_empty());
        assert_eq!(
            w.store
                .count_jobs(w.practice.id, JobState::Done)
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn an_unreachable_smtp_server_means_retry_later() {
        let w = world().await;
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let worker = worker(&w, smtp_to(port));
        enqueue_due_reminders(&w).await;
        let (job, ran) = worker.run_once().await.unwrap().unwrap();
        assert_eq!(ran, Ran::Failed(JobState::Queued));
        let stored = w.store.job(w.practice.id, job.id).await.unwrap().unwrap();
        assert!(stored.last_error.unwrap().starts_with("smtp:"));
        assert_eq!(stored.run_after, w.clock.now() + tapestry_store::backoff(1));
    }

    #[tokio::test]
    async fn demo_outbox_holds_readable_messages() {
        let w = world().await;
        let outbox = w._dir.path().join("outbox");
        let worker = worker(&w, Mailer::outbox(&outbox).unwrap());
        enqueue_due_reminders(&w).await;
        while worker.run_once().await.unwrap().is_some() {}
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        for f in files {
            assert_eq!(f.extension().and_then(|e| e.to_str()), Some("eml"));
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.contains("Subject: Something is waiting for you"));
            assert!(!text.to_lowercase().contains("canary"));
        }
    }

    #[tokio::test]
    async fn calendar_feed_and_ics_from_stored_appointments_have_no_names_or_clinical_words() {
        use tapestry_domain::schedule::ical::{
            appointment_ics, clinician_feed, parse_content_lines,
        };
        let w = world().await;
        let stored = w
            .store
            .appointments_for_clinician(
                w.practice.id,
                w.appointment.clinician,
                w.clock.now(),
                w.clock.now() + Duration::days(7),
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        let feed = clinician_feed(&stored, &[], w.clock.now());
        let ics = appointment_ics(
            &stored[0],
            w.clock.now(),
            "Sign in to Tapestry to join.",
            w.practice.time_zone.tz(),
        );
        for text in [&feed, &ics] {
            assert!(parse_content_lines(text).is_ok());
            let lower = text.to_lowercase();
            let hits: Vec<_> = CLINICAL_DENY_LIST
                .iter()
                .copied()
                .chain(["canary"])
                .filter(|w| lower.contains(w))
                .collect();
            assert!(hits.is_empty(), "{hits:?} in {text}");
            assert!(text.contains("SUMMARY:Session · 50 min · video"));
        }
    }
}
