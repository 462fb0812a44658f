//! One transaction of the submission pipeline, between its reads and its writes: given what
//! the transaction read about its episodes ([`Loaded`]), every request is decided in order —
//! each seeing the episode state the ones before it left — and the rows to write are
//! collected ([`Batch`]). No I/O here: the SQLite ingest lane (`sqlite/ingest.rs`) and the
//! PostgreSQL adapter (`postgres/ingest.rs`) read and write; this one loop decides for both.

use std::collections::{HashMap, HashSet};

use tapestry_domain::ids::{ClientId, EpisodeId, PracticeId, RecordId, ResponseId, TaskId, UserId};
use tapestry_domain::ingest::{
    decide, ClinicianTask, EpisodeMeasure, IngestError, IngestRequest, StoredRiskFlag,
};
use tapestry_domain::instrument::{InstrumentDef, InstrumentRegistry};
use tapestry_domain::submission::Submission;
use tapestry_domain::trajectory::ExpectedRecoveryCurve;

use crate::crypto::Keyring;
use crate::error::{StoreError, StoreResult};
use crate::measurement::{IngestReceipt, IngestResult, IngestSettings};

/// Where the instrument definitions come from: the registry, or (on the SQLite lane's own
/// thread) the few definitions a batch names.
pub(crate) trait Definitions {
    fn definition(&self, id: &str) -> Option<&InstrumentDef>;
}

impl Definitions for InstrumentRegistry {
    fn definition(&self, id: &str) -> Option<&InstrumentDef> {
        self.get(id)
    }
}

impl Definitions for HashMap<String, InstrumentDef> {
    fn definition(&self, id: &str) -> Option<&InstrumentDef> {
        self.get(id)
    }
}

/// An episode's owner: its practice, client and primary clinician.
pub(crate) type EpisodeOwner = (PracticeId, ClientId, Option<UserId>);

/// What a transaction read about the episodes, keys and curves its requests name.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Every episode read, with its owner.
    pub episodes: HashMap<EpisodeId, EpisodeOwner>,
    /// The measure state of the episodes in `episodes`, per instrument; absent: not yet
    /// measured with that instrument.
    pub states: HashMap<(EpisodeId, String), EpisodeMeasure>,
    /// Submissions stored earlier under an `Idempotency-Key`, by practice and key.
    pub keyed: HashMap<(PracticeId, String), Submission>,
    /// The risk flags and tasks of the submissions in `keyed` (for their replays); absent:
    /// none.
    pub replays: HashMap<ResponseId, (Vec<RecordId>, Vec<TaskId>)>,
    /// The latest fitted expected-recovery curve per practice and instrument; `None`: none is
    /// fitted.
    pub curves: HashMap<(PracticeId, String), Option<ExpectedRecoveryCurve>>,
}

/// The decisions of one transaction: a result per request (in order) and the rows to write.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub results: Vec<IngestResult>,
    pub submissions: Vec<Submission>,
    /// The measure states the batch changed, in the order first changed; their new values
    /// are in [`Loaded::states`].
    pub touched: Vec<(EpisodeId, String)>,
    /// The touched states that had no row before this batch (the rest exist).
    pub new_states: HashSet<(EpisodeId, String)>,
    /// The not-on-track flag each touched existing state had before this batch.
    pub stored_flags: HashMap<(EpisodeId, String), bool>,
    pub flags: Vec<StoredRiskFlag>,
    pub tasks: Vec<ClinicianTask>,
}

impl Batch {
    /// The new measure states to write.
    pub fn measures<'a>(&self, loaded: &'a Loaded) -> Vec<&'a EpisodeMeasure> {
        self.touched
            .iter()
            .filter_map(|k| loaded.states.get(k))
            .collect()
    }
}

/// The keys of `practice` among those the ingest loaded before its transaction.
pub(crate) fn practice_keys(
    keyrings: &HashMap<PracticeId, Keyring>,
    practice: PracticeId,
) -> StoreResult<&Keyring> {
    keyrings
        .get(&practice)
        .ok_or(StoreError::NotFound("practice keys"))
}

/// An earlier submission under the same key counts as the same request when it is for the
/// same client, episode and instrument with the same answers.
fn same_request(earlier: &Submission, req: &IngestRequest) -> bool {
    earlier.client_id == req.client_id
        && earlier.episode_id == req.episode_id
        && earlier.instrument == req.instrument
        && earlier.answers == req.answers.values
}

/// The receipt of a submission stored by an earlier request with the same key.
fn replay(earlier: &Submission, loaded: &Loaded) -> IngestReceipt {
    let (flags, tasks) = loaded.replays.get(&earlier.id).cloned().unwrap_or_default();
    IngestReceipt {
        submission_id: earlier.id,
        new: false,
        total: earlier.total,
        session: earlier.session,
        reliable_change: None,
        track: None,
        flags,
        tasks,
    }
}

/// Decides every request in order. `loaded` must hold every episode, key and curve the
/// requests name (a missing episode is refused as not found); it is updated as the batch
/// goes (new states, new keys), so that a later request in the same batch sees the earlier
/// ones.
pub(crate) fn decide_batch(
    definitions: &impl Definitions,
    settings: &IngestSettings,
    requests: &[IngestRequest],
    loaded: &mut Loaded,
) -> Batch {
    let mut decider = BatchDecider::new(definitions, settings, loaded, requests.len());
    for req in requests {
        decider.decide(req);
    }
    decider.batch
}

/// [`decide_batch`] one request at a time, for a writer that takes the rows to write out of
/// [`BatchDecider::batch`] as they are decided (the SQLite lane writes one chunk while the
/// next is decided); the results and the touched states stay until the end.
pub(crate) struct BatchDecider<'a, D> {
    definitions: &'a D,
    settings: &'a IngestSettings,
    /// What the transaction read, updated as requests are decided.
    pub loaded: &'a mut Loaded,
    touched: HashSet<(EpisodeId, String)>,
    in_batch: HashMap<(PracticeId, String), IngestReceipt>,
    pub batch: Batch,
}

impl<'a, D: Definitions> BatchDecider<'a, D> {
    pub fn new(
        definitions: &'a D,
        settings: &'a IngestSettings,
        loaded: &'a mut Loaded,
        requests: usize,
    ) -> Self {
        BatchDecider {
            definitions,
            settings,
            loaded,
            touched: HashSet::new(),
            in_batch: HashMap::new(),
            batch: Batch {
                results: Vec::with_capacity(requests),
                ..Batch::default()
            },
        }
    }

    /// Decides the next request: its result is pushed onto the batch's results, its rows
    /// onto the batch's rows.
    pub fn decide(&mut self, req: &IngestRequest) {
        let result = self.decide_one(req);
        self.batch.results.push(result);
    }

    fn decide_one(&mut self, req: &IngestRequest) -> IngestResult {
        let loaded = &mut *self.loaded;
        let batch = &mut self.batch;
        let Some(def) = self.definitions.definition(&req.instrument) else {
            return Err(IngestError::UnknownInstrument(
                req.instrument.chars().take(40).collect(),
            ));
        };
        let owner = loaded
            .episodes
            .get(&req.episode_id)
            .filter(|(p, c, _)| *p == req.practice_id && *c == req.client_id)
            .copied();
        let Some((_, _, assignee)) = owner else {
            return Err(IngestError::EpisodeNotFound);
        };
        if let Some(key) = &req.idempotency_key {
            let keyed = (req.practice_id, key.clone());
            if let Some(earlier) = loaded.keyed.get(&keyed) {
                return if !same_request(earlier, req) {
                    Err(IngestError::IdempotencyConflict)
                } else if let Some(receipt) = self.in_batch.get(&keyed) {
                    Ok(IngestReceipt {
                        new: false,
                        ..receipt.clone()
                    })
                } else {
                    Ok(replay(earlier, loaded))
                };
            }
        }
        let state_key = (req.episode_id, def.id.clone());
        let curve = loaded
            .curves
            .get(&(req.practice_id, def.id.clone()))
            .and_then(Option::as_ref);
        let decision = decide(
            def,
            req,
            loaded.states.get(&state_key),
            curve,
            self.settings.min_curve_episodes,
            assignee,
        )?;
        let receipt = IngestReceipt {
            submission_id: decision.submission.id,
            new: true,
            total: decision.submission.total,
            session: decision.submission.session,
            reliable_change: decision.reliable_change,
            track: decision.measure.track.clone(),
            flags: decision.flags.iter().map(|f| f.id).collect(),
            tasks: decision.tasks.iter().map(|t| t.id).collect(),
        };
        if let Some(key) = &req.idempotency_key {
            loaded
                .keyed
                .insert((req.practice_id, key.clone()), decision.submission.clone());
            self.in_batch
                .insert((req.practice_id, key.clone()), receipt.clone());
        }
        if self.touched.insert(state_key.clone()) {
            match loaded.states.get(&state_key) {
                Some(stored) => {
                    batch
                        .stored_flags
                        .insert(state_key.clone(), stored.not_on_track());
                }
                None => {
                    batch.new_states.insert(state_key.clone());
                }
            }
            batch.touched.push(state_key.clone());
        }
        loaded.states.insert(state_key, decision.measure);
        batch.submissions.push(decision.submission);
        batch.flags.extend(decision.flags);
        batch.tasks.extend(decision.tasks);
        Ok(receipt)
    }
}

/// The statements both backends write a batch with: each INSERT's head (the rows follow:
/// one `VALUES` list on the SQLite lane, many on PostgreSQL).
pub(crate) mod sql {
    pub const SUBMISSION_COLUMNS: &str = "INSERT INTO submissions (id, practice_id, client_id, episode_id, instrument, instrument_version, answers, total, session, submitted_at, idempotency_key, submitted_week) ";
    pub const MEASURE_COLUMNS: &str = "INSERT INTO episode_measures (practice_id, episode_id, instrument, baseline, latest, sessions, track_status, not_on_track, track, updated_at) ";
    /// Ends a [`MEASURE_COLUMNS`] statement: an episode's state per instrument is one row.
    /// Changes an existing state row (the SQLite lane, which knows which rows exist).
    pub const MEASURE_UPDATE: &str = "UPDATE episode_measures SET baseline = ?4, latest = ?5, sessions = ?6, track_status = ?7, not_on_track = ?8, track = ?9, updated_at = ?10 WHERE practice_id = ?1 AND episode_id = ?2 AND instrument = ?3";
    /// [`MEASURE_UPDATE`] for a state whose not-on-track flag stays as stored: the flag is
    /// not set, so its index entry is left alone (and a row whose flag changed meanwhile is
    /// not matched).
    pub const MEASURE_UPDATE_SAME_FLAG: &str = "UPDATE episode_measures SET baseline = ?4, latest = ?5, sessions = ?6, track_status = ?7, track = ?9, updated_at = ?10 WHERE practice_id = ?1 AND episode_id = ?2 AND instrument = ?3 AND not_on_track = ?8";
    pub const MEASURE_UPSERT: &str = " ON CONFLICT (practice_id, episode_id, instrument) DO UPDATE SET baseline = excluded.baseline, latest = excluded.latest, sessions = excluded.sessions, track_status = excluded.track_status, not_on_track = excluded.not_on_track, track = excluded.track, updated_at = excluded.updated_at";
    pub const FLAG_COLUMNS: &str = "INSERT INTO risk_flags (id, practice_id, client_id, episode_id, submission_id, instrument, item, value, level, colour, rule, signal, raised_at) ";
    pub const TASK_COLUMNS: &str = "INSERT INTO clinician_tasks (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at) ";
}
