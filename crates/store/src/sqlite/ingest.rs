//! The SQLite ingest lane: the submission pipeline's transactions run on one synchronous
//! connection of their own (rusqlite, linking the same bundled SQLite as sqlx), on a blocking
//! thread, one `BEGIN IMMEDIATE … COMMIT` per call (per group in group commit).
//!
//! Why not the sqlx pool (B3 profile, docs/measurement.md): every statement there is a
//! round trip to sqlx's worker thread, with a thread wake-up each way, and rows are copied
//! and decoded on the way back; at thousands of submissions per second that, not SQLite, was
//! most of the CPU. Here one hand-off per transaction remains.
//!
//! Values are written exactly as sqlx's SQLite driver writes them, so every other reader
//! decodes them unchanged: UUIDs as 16-byte blobs, timestamps as RFC 3339 text
//! (`to_rfc3339_opts(AutoSi, false)`), booleans as 0/1, `NULL` for `None`.
//!
//! **Cache.** The lane keeps what it read and wrote about episodes (owner, measure state
//! per instrument) and curves between transactions, so a busy episode is not re-read for
//! every submission. It is dropped whenever another connection has committed anything since
//! (`PRAGMA data_version`, read inside the write transaction, where no other writer can
//! intervene), when a transaction fails, and when it outgrows [`CACHE_EPISODES`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, Row, TransactionBehavior};
use tapestry_domain::ids::*;
use tapestry_domain::ingest::{
    ClinicianTask, EpisodeMeasure, IngestRequest, StoredRiskFlag, TrackRecord,
};
use tapestry_domain::instrument::{InstrumentDef, InstrumentRegistry};
use tapestry_domain::submission::Submission;
use tapestry_domain::trajectory::ExpectedRecoveryCurve;
use uuid::Uuid;

use super::measurement_impl::json;
use super::{answers_json, corrupt, SqliteStore, PAGE_CACHE};
use crate::crypto::Keyring;
use crate::error::{StoreError, StoreResult};
use crate::ingest_batch::{practice_keys, sql, BatchDecider, Loaded};
use crate::measurement::{IngestResult, IngestSettings};

/// Most episodes the cache keeps (about 0.6 KB each); past it the cache starts again empty.
pub(crate) const CACHE_EPISODES: usize = 20_000;

/// How long a transaction waits for another writer (as the pool's `busy_timeout`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The lane of one store (its clones share it). Opened on the first ingest, with the
/// pool's database file and `synchronous` setting.
#[derive(Clone, Default)]
pub(crate) struct IngestLane(Arc<LaneState>);

#[derive(Default)]
struct LaneState {
    config: OnceLock<LaneConfig>,
    connection: Mutex<Option<LaneConnection>>,
    closed: AtomicBool,
}

/// Where and how the lane connects: as the pool does.
#[derive(Debug, Clone)]
struct LaneConfig {
    path: PathBuf,
    /// `PRAGMA synchronous` of the pool's connections (2 = FULL).
    synchronous: i64,
}

struct LaneConnection {
    connection: Connection,
    /// `PRAGMA data_version` when `cache` was last current.
    data_version: Option<i64>,
    cache: Loaded,
}

impl std::fmt::Debug for IngestLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestLane")
            .field("config", &self.0.config.get())
            .field("closed", &self.0.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl crate::adapter::BesidePool for IngestLane {
    fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        *self
            .0
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl SqliteStore {
    /// One transaction for all `requests` (see [`crate::MeasurementStore::ingest`]), on the
    /// lane's connection.
    pub(super) async fn ingest_once(
        &self,
        registry: &InstrumentRegistry,
        settings: &IngestSettings,
        requests: &[IngestRequest],
        keyrings: &HashMap<PracticeId, Keyring>,
    ) -> StoreResult<Vec<IngestResult>> {
        let lane = self.beside.clone();
        if lane.0.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(sqlx::Error::PoolClosed));
        }
        if lane.0.config.get().is_none() {
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(self.pool())
                .await?;
            let path = self.pool().connect_options().get_filename().to_path_buf();
            let _ = lane.0.config.set(LaneConfig { path, synchronous });
        }
        // The blocking thread owns what it works on: the few definitions the batch names,
        // the requests, the keys.
        let mut definitions: HashMap<String, InstrumentDef> = HashMap::new();
        for req in requests {
            if !definitions.contains_key(&req.instrument) {
                if let Some(def) = registry.get(&req.instrument) {
                    definitions.insert(def.id.clone(), def.clone());
                }
            }
        }
        let requests = requests.to_vec();
        let keyrings = keyrings.clone();
        let settings = *settings;
        match tokio::task::spawn_blocking(move || {
            lane.ingest(&definitions, &settings, &requests, &keyrings)
        })
        .await
        {
            Ok(results) => results,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Backend(sqlx::Error::PoolClosed)),
        }
    }
}

impl IngestLane {
    fn ingest(
        &self,
        definitions: &HashMap<String, InstrumentDef>,
        settings: &IngestSettings,
        requests: &[IngestRequest],
        keyrings: &HashMap<PracticeId, Keyring>,
    ) -> StoreResult<Vec<IngestResult>> {
        let mut guard = self.0.connection.lock().unwrap_or_else(|poisoned| {
            // A panic mid-transaction: start again from a fresh connection and no cache.
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        self.0.connection.clear_poison();
        if self.0.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(sqlx::Error::PoolClosed));
        }
        let lane = match &mut *guard {
            Some(lane) => lane,
            empty => {
                let config =
                    self.0.config.get().ok_or_else(|| {
                        StoreError::Location("ingest lane: not configured".into())
                    })?;
                empty.insert(LaneConnection {
                    connection: open(config)?,
                    data_version: None,
                    cache: Loaded::default(),
                })
            }
        };
        lane.transaction(definitions, settings, requests, keyrings)
    }
}

/// Opens the lane's connection with the pool's settings (see `sqlite.rs`).
fn open(config: &LaneConfig) -> StoreResult<Connection> {
    let connection = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let journal: String = connection.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Location(format!(
            "ingest lane: the database is in journal mode {journal}, not WAL"
        )));
    }
    if !(0..=3).contains(&config.synchronous) {
        return Err(StoreError::Location(format!(
            "ingest lane: PRAGMA synchronous {} is not a level",
            config.synchronous
        )));
    }
    connection.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA cache_size = {PAGE_CACHE};",
        config.synchronous
    ))?;
    Ok(connection)
}

impl LaneConnection {
    fn transaction(
        &mut self,
        definitions: &HashMap<String, InstrumentDef>,
        settings: &IngestSettings,
        requests: &[IngestRequest],
        keyrings: &HashMap<PracticeId, Keyring>,
    ) -> StoreResult<Vec<IngestResult>> {
        // Taken out: if anything below fails, the lane starts again with no cache.
        let mut loaded = std::mem::take(&mut self.cache);
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Inside the write transaction: no other connection can commit until we do.
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            loaded = Loaded::default();
        }
        self.data_version = Some(version);
        load(&tx, definitions, requests, keyrings, &mut loaded)?;
        let results =
            decide_and_write(&tx, definitions, settings, requests, keyrings, &mut loaded)?;
        tx.commit()?;
        // Our own commit leaves our `data_version` as it was; the cache is current.
        loaded.keyed.clear();
        loaded.replays.clear();
        if loaded.episodes.len() <= CACHE_EPISODES {
            self.cache = loaded;
        }
        Ok(results)
    }
}

const EPISODE_STATE: &str = "SELECT e.client_id, e.primary_clinician, \
     m.instrument, m.baseline, m.latest, m.sessions, m.track, m.updated_at \
     FROM episodes e LEFT JOIN episode_measures m ON m.practice_id = e.practice_id AND m.episode_id = e.id \
     WHERE e.practice_id = ?1 AND e.id = ?2";
const KEYED: &str = "SELECT id, client_id, episode_id, instrument, instrument_version, answers, total, session, submitted_at, idempotency_key \
     FROM submissions WHERE practice_id = ?1 AND idempotency_key = ?2";
const REPLAY_FLAGS: &str =
    "SELECT id FROM risk_flags WHERE practice_id = ?1 AND submission_id = ?2 ORDER BY raised_at, id";
const REPLAY_TASKS: &str = "SELECT t.id FROM clinician_tasks t JOIN risk_flags f ON f.id = t.risk_flag_id AND f.practice_id = t.practice_id \
     WHERE t.practice_id = ?1 AND f.submission_id = ?2 ORDER BY t.created_at, t.id";
const LATEST_CURVE: &str = "SELECT parameters FROM recovery_curves WHERE practice_id = ?1 AND instrument = ?2 ORDER BY version DESC LIMIT 1";

/// Reads what `loaded` (the cache) does not hold yet: the requests' episodes with their
/// measure state, the submissions stored under their keys (with flags and tasks), the
/// latest fitted curves.
fn load(
    tx: &Connection,
    definitions: &HashMap<String, InstrumentDef>,
    requests: &[IngestRequest],
    keyrings: &HashMap<PracticeId, Keyring>,
    loaded: &mut Loaded,
) -> StoreResult<()> {
    let mut episode_state = tx.prepare_cached(EPISODE_STATE)?;
    let mut keyed = tx.prepare_cached(KEYED)?;
    let mut curve = tx.prepare_cached(LATEST_CURVE)?;
    for req in requests {
        let practice = req.practice_id;
        if !loaded.episodes.contains_key(&req.episode_id) {
            let mut rows = episode_state.query(params![
                practice.as_uuid().into_bytes(),
                req.episode_id.as_uuid().into_bytes()
            ])?;
            while let Some(row) = rows.next()? {
                let owner = (
                    practice,
                    ClientId::from_uuid(uuid(row, 0)?),
                    optional_uuid(row, 1)?.map(UserId::from_uuid),
                );
                loaded.episodes.insert(req.episode_id, owner);
                if let Some(instrument) = row.get::<_, Option<String>>(2)? {
                    let state = measure(row, practice, req.episode_id, instrument)?;
                    loaded
                        .states
                        .insert((req.episode_id, state.instrument.clone()), state);
                }
            }
        }
        if let Some(key) = &req.idempotency_key {
            if !loaded.keyed.contains_key(&(practice, key.clone())) {
                let mut rows = keyed.query(params![practice.as_uuid().into_bytes(), key])?;
                if let Some(row) = rows.next()? {
                    let keyring = practice_keys(keyrings, practice)?;
                    let earlier = submission(row, practice, keyring)?;
                    load_replay(tx, &earlier, loaded)?;
                    loaded.keyed.insert((practice, key.clone()), earlier);
                }
            }
        }
        let curve_key = (practice, req.instrument.clone());
        if definitions.contains_key(&req.instrument) && !loaded.curves.contains_key(&curve_key) {
            let mut rows = curve.query(params![practice.as_uuid().into_bytes(), req.instrument])?;
            let fitted = match rows.next()? {
                Some(row) => {
                    let parameters: String = row.get(0)?;
                    Some(
                        serde_json::from_str::<ExpectedRecoveryCurve>(&parameters)
                            .map_err(|e| corrupt("recovery_curves.parameters", e))?,
                    )
                }
                None => None,
            };
            loaded.curves.insert(curve_key, fitted);
        }
    }
    Ok(())
}

/// The flags and tasks of a submission stored earlier under a key, for its replay.
fn load_replay(tx: &Connection, earlier: &Submission, loaded: &mut Loaded) -> StoreResult<()> {
    let ids = |sql: &str| -> StoreResult<Vec<Uuid>> {
        let mut statement = tx.prepare_cached(sql)?;
        let mut rows = statement.query(params![
            earlier.practice_id.as_uuid().into_bytes(),
            earlier.id.as_uuid().into_bytes()
        ])?;
        let mut ids = Vec::new();
        while let Some(row) = rows.next()? {
            ids.push(uuid(row, 0)?);
        }
        Ok(ids)
    };
    let flags = ids(REPLAY_FLAGS)?
        .into_iter()
        .map(RecordId::from_uuid)
        .collect();
    let tasks = ids(REPLAY_TASKS)?
        .into_iter()
        .map(TaskId::from_uuid)
        .collect();
    loaded.replays.insert(earlier.id, (flags, tasks));
    Ok(())
}

/// Requests decided per chunk: the lane writes one chunk while the next is decided.
const CHUNK: usize = 128;

/// Transactions with at least this many requests are decided on a second thread while the
/// lane writes (below it, a thread costs more than it saves).
const PIPELINED: usize = 256;

/// Decides the requests in order and writes their rows, returning a result per request.
///
/// Deciding and encoding the rows (sealing the answers, serialising JSON, formatting times)
/// need no database; binding and stepping them need the lane's connection. In a large
/// transaction the first happens on a second thread, a chunk of [`CHUNK`] requests at a time,
/// while the lane writes the chunk before (B3, groups of 4,096: deciding and sealing no
/// longer wait for the lane, which now only waits 1–7 ms per group for the first chunk; see
/// docs/measurement.md, fifth pass). Order is kept: chunks are written as decided, then the
/// measure states (an INSERT for a new one, an UPDATE for one that exists, leaving the
/// not-on-track flag's index entry alone when the flag stays as stored — the lane holds the
/// write lock, so it knows which). A failure on either side ends both, and the caller's
/// transaction rolls back.
fn decide_and_write(
    tx: &Connection,
    definitions: &HashMap<String, InstrumentDef>,
    settings: &IngestSettings,
    requests: &[IngestRequest],
    keyrings: &HashMap<PracticeId, Keyring>,
    loaded: &mut Loaded,
) -> StoreResult<Vec<IngestResult>> {
    if requests.len() < PIPELINED {
        return decide_rows(definitions, settings, requests, keyrings, loaded, |rows| {
            write_rows(tx, rows)
        });
    }
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::channel::<Rows>();
        let deciding = scope.spawn(move || {
            decide_rows(definitions, settings, requests, keyrings, loaded, |rows| {
                // The lane stopped receiving: it failed, and says why.
                send.send(rows)
                    .map_err(|_| StoreError::Location("ingest lane: writing stopped".into()))
            })
        });
        let mut written = Ok(());
        for rows in &receive {
            written = write_rows(tx, rows);
            if written.is_err() {
                break;
            }
        }
        drop(receive);
        let decided = deciding
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written.and(decided)
    })
}

/// Rows ready to bind, every value encoded.
enum Rows {
    /// A chunk's submissions, then their risk flags, then their tasks (flags refer to
    /// submissions, tasks to flags).
    Decided {
        submissions: Vec<SubmissionRow>,
        flags: Vec<FlagRow>,
        tasks: Vec<TaskRow>,
    },
    /// The final measure states the transaction changed, after every chunk.
    Measures(Vec<MeasureRow>),
}

struct SubmissionRow {
    submission: Submission,
    /// The answers, sealed (as the base adapter's `answers_json`).
    answers: String,
    submitted_at: String,
}

struct FlagRow {
    flag: StoredRiskFlag,
    signal: String,
    raised_at: String,
}

struct TaskRow {
    task: ClinicianTask,
    due_at: String,
    created_at: String,
    completed_at: Option<String>,
}

/// How a measure state is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MeasureWrite {
    /// No row exists yet.
    Insert,
    /// The row exists; its not-on-track flag changes.
    Update,
    /// The row exists and keeps its not-on-track flag: the flag's index entry stays.
    UpdateSameFlag,
}

struct MeasureRow {
    write: MeasureWrite,
    practice_id: PracticeId,
    episode_id: EpisodeId,
    instrument: String,
    baseline: Option<f64>,
    latest: Option<f64>,
    sessions: u32,
    status: Option<&'static str>,
    not_on_track: bool,
    track: Option<String>,
    updated_at: String,
}

/// The deciding side: decides a chunk at a time and hands its encoded rows to `emit`, then
/// the measure states.
fn decide_rows(
    definitions: &HashMap<String, InstrumentDef>,
    settings: &IngestSettings,
    requests: &[IngestRequest],
    keyrings: &HashMap<PracticeId, Keyring>,
    loaded: &mut Loaded,
    mut emit: impl FnMut(Rows) -> StoreResult<()>,
) -> StoreResult<Vec<IngestResult>> {
    let mut decider = BatchDecider::new(definitions, settings, loaded, requests.len());
    for chunk in requests.chunks(CHUNK) {
        for req in chunk {
            decider.decide(req);
        }
        let batch = &mut decider.batch;
        if batch.submissions.is_empty() {
            continue;
        }
        let submissions = std::mem::take(&mut batch.submissions)
            .into_iter()
            .map(|submission| {
                let keyring = practice_keys(keyrings, submission.practice_id)?;
                Ok(SubmissionRow {
                    answers: answers_json(&submission, keyring)?,
                    submitted_at: time(submission.submitted_at),
                    submission,
                })
            })
            .collect::<StoreResult<_>>()?;
        let flags = std::mem::take(&mut batch.flags)
            .into_iter()
            .map(|flag| {
                Ok(FlagRow {
                    signal: json("risk_flags.signal", &flag.flag.signal)?,
                    raised_at: time(flag.flag.raised_at),
                    flag,
                })
            })
            .collect::<StoreResult<_>>()?;
        let tasks = std::mem::take(&mut batch.tasks)
            .into_iter()
            .map(|task| TaskRow {
                due_at: time(task.due_at),
                created_at: time(task.created_at),
                completed_at: task.completed_at.map(time),
                task,
            })
            .collect();
        emit(Rows::Decided {
            submissions,
            flags,
            tasks,
        })?;
    }
    let BatchDecider { loaded, batch, .. } = decider;
    let mut measures = batch
        .touched
        .iter()
        .filter_map(|key| loaded.states.get(key).map(|m| (key, m)))
        .map(|(key, m)| {
            let write = if batch.new_states.contains(key) {
                MeasureWrite::Insert
            } else if batch.stored_flags.get(key) == Some(&m.not_on_track()) {
                MeasureWrite::UpdateSameFlag
            } else {
                MeasureWrite::Update
            };
            Ok(MeasureRow {
                write,
                practice_id: m.practice_id,
                episode_id: m.episode_id,
                instrument: m.instrument.clone(),
                baseline: m.baseline,
                latest: m.latest,
                sessions: m.sessions,
                status: m.track.as_ref().map(|t| t.status.as_str()),
                not_on_track: m.not_on_track(),
                track: m
                    .track
                    .as_ref()
                    .map(|t| json("episode_measures.track", t))
                    .transpose()?,
                updated_at: time(m.updated_at),
            })
        })
        .collect::<StoreResult<Vec<MeasureRow>>>()?;
    // In the primary key's order (UUIDs compare as their bytes, as SQLite compares the
    // blobs): consecutive updates land on the same B-tree page instead of a random one each.
    measures.sort_unstable_by(|a, b| {
        (a.practice_id, a.episode_id, &a.instrument).cmp(&(
            b.practice_id,
            b.episode_id,
            &b.instrument,
        ))
    });
    if !measures.is_empty() {
        emit(Rows::Measures(measures))?;
    }
    Ok(batch.results)
}

/// The lane's statements: one row per execution, prepared once per connection.
struct Statements {
    submission: String,
    measure_insert: String,
    flag: String,
    task: String,
}

fn statements() -> &'static Statements {
    static STATEMENTS: OnceLock<Statements> = OnceLock::new();
    STATEMENTS.get_or_init(|| {
        let values = |n: usize| {
            let list: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
            format!("VALUES ({})", list.join(", "))
        };
        Statements {
            submission: format!("{}{}", sql::SUBMISSION_COLUMNS, values(12)),
            measure_insert: format!("{}{}", sql::MEASURE_COLUMNS, values(10)),
            flag: format!("{}{}", sql::FLAG_COLUMNS, values(13)),
            task: format!("{}{}", sql::TASK_COLUMNS, values(13)),
        }
    })
}

/// The writing side: binds and steps.
fn write_rows(tx: &Connection, rows: Rows) -> StoreResult<()> {
    let statements = statements();
    match rows {
        Rows::Decided {
            submissions,
            flags,
            tasks,
        } => {
            let mut insert = tx.prepare_cached(&statements.submission)?;
            for row in &submissions {
                let s = &row.submission;
                insert
                    .execute(params![
                        s.id.as_uuid().into_bytes(),
                        s.practice_id.as_uuid().into_bytes(),
                        s.client_id.as_uuid().into_bytes(),
                        s.episode_id.as_uuid().into_bytes(),
                        s.instrument,
                        s.instrument_version,
                        row.answers,
                        s.total,
                        i64::from(s.session),
                        row.submitted_at,
                        s.idempotency_key,
                        s.week(),
                    ])
                    .map_err(|e| unique_or(e, "Idempotency-Key: used concurrently"))?;
            }
            let mut insert = tx.prepare_cached(&statements.flag)?;
            for row in &flags {
                let f = &row.flag;
                let s = &f.flag.signal;
                let (instrument, item, value) = s.source.parts();
                insert
                    .execute(params![
                        f.id.as_uuid().into_bytes(),
                        f.practice_id.as_uuid().into_bytes(),
                        f.client_id.as_uuid().into_bytes(),
                        f.episode_id.as_uuid().into_bytes(),
                        f.submission_id.as_uuid().into_bytes(),
                        instrument,
                        item.map(i64::from),
                        value.map(i64::from),
                        s.level.map(|l| l.as_str()),
                        s.colour.as_str(),
                        s.rule.as_str(),
                        row.signal,
                        row.raised_at,
                    ])
                    .map_err(|e| unique_or(e, "risk_flags.id: already used"))?;
            }
            let mut insert = tx.prepare_cached(&statements.task)?;
            for row in &tasks {
                let t = &row.task;
                insert
                    .execute(params![
                        t.id.as_uuid().into_bytes(),
                        t.practice_id.as_uuid().into_bytes(),
                        t.client_id.as_uuid().into_bytes(),
                        t.episode_id.as_uuid().into_bytes(),
                        t.kind.as_str(),
                        t.risk_flag_id.map(|f| f.as_uuid().into_bytes()),
                        t.assignee.map(|u| u.as_uuid().into_bytes()),
                        t.title,
                        t.detail,
                        t.colour.as_str(),
                        row.due_at,
                        row.created_at,
                        row.completed_at,
                    ])
                    .map_err(|e| unique_or(e, "clinician_tasks.id: already used"))?;
            }
        }
        Rows::Measures(measures) => {
            let mut insert = tx.prepare_cached(&statements.measure_insert)?;
            let mut update = tx.prepare_cached(sql::MEASURE_UPDATE)?;
            let mut update_same_flag = tx.prepare_cached(sql::MEASURE_UPDATE_SAME_FLAG)?;
            for m in &measures {
                let values = params![
                    m.practice_id.as_uuid().into_bytes(),
                    m.episode_id.as_uuid().into_bytes(),
                    m.instrument,
                    m.baseline,
                    m.latest,
                    i64::from(m.sessions),
                    m.status,
                    m.not_on_track,
                    m.track,
                    m.updated_at,
                ];
                let written = match m.write {
                    MeasureWrite::Insert => insert.execute(values),
                    MeasureWrite::Update => update.execute(values),
                    MeasureWrite::UpdateSameFlag => update_same_flag.execute(values),
                }
                .map_err(|e| unique_or(e, "episode_measures: written concurrently"))?;
                if written != 1 {
                    // The row this lane read is gone: decide again from the database.
                    return Err(StoreError::Conflict(
                        "episode_measures: written concurrently",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A timestamp as sqlx's SQLite driver writes it.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A timestamp as sqlx writes it (RFC 3339), or SQLite's own `YYYY-MM-DD HH:MM:SS` (UTC).
fn read_time(row: &Row<'_>, column: usize, what: &str) -> StoreResult<DateTime<Utc>> {
    let text: String = row.get(column)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%F %T%.f").map(|t| t.and_utc()))
        .map_err(|e| corrupt(what, e))
}

fn uuid(row: &Row<'_>, column: usize) -> StoreResult<Uuid> {
    Ok(Uuid::from_bytes(row.get::<_, [u8; 16]>(column)?))
}

fn optional_uuid(row: &Row<'_>, column: usize) -> StoreResult<Option<Uuid>> {
    Ok(row
        .get::<_, Option<[u8; 16]>>(column)?
        .map(Uuid::from_bytes))
}

/// An [`EPISODE_STATE`] row's measure state (columns 2–7).
fn measure(
    row: &Row<'_>,
    practice: PracticeId,
    episode: EpisodeId,
    instrument: String,
) -> StoreResult<EpisodeMeasure> {
    let sessions: i64 = row.get(5)?;
    let track: Option<String> = row.get(6)?;
    Ok(EpisodeMeasure {
        practice_id: practice,
        episode_id: episode,
        instrument,
        baseline: row.get(3)?,
        latest: row.get(4)?,
        sessions: u32::try_from(sessions).map_err(|e| corrupt("episode_measures.sessions", e))?,
        track: track
            .map(|t| serde_json::from_str::<TrackRecord>(&t))
            .transpose()
            .map_err(|e| corrupt("episode_measures.track", e))?,
        updated_at: read_time(row, 7, "episode_measures.updated_at")?,
    })
}

/// A [`KEYED`] row, its answers opened.
fn submission(row: &Row<'_>, practice: PracticeId, keyring: &Keyring) -> StoreResult<Submission> {
    let id = uuid(row, 0)?;
    let sealed: String = row.get(5)?;
    let answers = crate::vault::Vault::open(
        keyring,
        &crate::vault::field(practice, "submissions", "answers", id),
        &sealed,
    )?;
    let session: i64 = row.get(7)?;
    Ok(Submission {
        id: ResponseId::from_uuid(id),
        practice_id: practice,
        client_id: ClientId::from_uuid(uuid(row, 1)?),
        episode_id: EpisodeId::from_uuid(uuid(row, 2)?),
        instrument: row.get(3)?,
        instrument_version: row.get(4)?,
        answers: serde_json::from_str(&answers).map_err(|e| corrupt("submissions.answers", e))?,
        total: row.get(6)?,
        session: u32::try_from(session).map_err(|e| corrupt("submissions.session", e))?,
        submitted_at: read_time(row, 8, "submissions.submitted_at")?,
        idempotency_key: row.get(9)?,
    })
}

/// A unique violation is a [`StoreError::Conflict`] meaning `what`.
fn unique_or(e: rusqlite::Error, what: &'static str) -> StoreError {
    match e.sqlite_error() {
        Some(failure)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(what)
        }
        _ => StoreError::from(e),
    }
}
