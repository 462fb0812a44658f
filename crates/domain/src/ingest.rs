//! The decisions of the submission pipeline, as one pure function.
//!
//! A submitted questionnaire is validated against its instrument (an error names the item and
//! nothing is stored), scored, compared with the episode's baseline (reliable change), checked
//! for being on track (rational rules; the practice's expected-recovery curve when one is fitted
//! on enough episodes) and searched for risk signals. [`decide`] returns everything that must be
//! stored together: the submission, the episode's updated measure state, the risk flags and the
//! clinician tasks. The store commits all of it in one transaction.

use crate::change::{classify_reliable_change, ReliableChange};
use crate::ids::{ClientId, EpisodeId, PracticeId, RecordId, ResponseId, TaskId, UserId};
use crate::instrument::InstrumentDef;
use crate::risk::{risk_signals, task_for, RiskColour, RiskFlag, TaskDue};
use crate::scoring::{score, Answers, Score, ScoringError};
use crate::submission::Submission;
use crate::trajectory::{rational_status_at, ExpectedRecoveryCurve, TrackStatus};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest accepted `Idempotency-Key` (characters).
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// One submission as it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestRequest {
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub episode_id: EpisodeId,
    pub instrument: String,
    pub answers: Answers,
    /// Makes retries safe: same key and same answers → same result; different answers → conflict.
    pub idempotency_key: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

/// What one episode knows about one instrument: its baseline, latest score, how many times it
/// was answered and whether the client is on track. Kept per episode so the pipeline needs one
/// row, not the whole history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMeasure {
    pub practice_id: PracticeId,
    pub episode_id: EpisodeId,
    pub instrument: String,
    /// First complete total (the intake score for reliable change).
    pub baseline: Option<f64>,
    /// Latest complete total.
    pub latest: Option<f64>,
    /// Submissions of this instrument in the episode (complete or not).
    pub sessions: u32,
    /// The latest on-track verdict (absent until there is a baseline and a threshold).
    pub track: Option<TrackRecord>,
    pub updated_at: DateTime<Utc>,
}

impl EpisodeMeasure {
    /// The stored not-on-track flag: the latest verdict says so.
    pub fn not_on_track(&self) -> bool {
        self.track.as_ref().is_some_and(|t| t.not_on_track)
    }
}

/// The on-track verdict at one session, with its basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub session: u32,
    pub status: TrackStatus,
    /// True when the rational rules or the curve say not on track.
    pub not_on_track: bool,
    pub reason: String,
    /// Curve used, when one was fitted on enough episodes.
    pub curve_version: Option<String>,
    /// Episodes behind the curve (always shown with an empirical verdict).
    pub curve_n: Option<u32>,
    /// The curve's failure boundary at this session.
    pub boundary: Option<f64>,
}

/// A risk flag as stored: the domain flag plus where it belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRiskFlag {
    pub id: RecordId,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub episode_id: EpisodeId,
    /// The submission that raised it.
    pub submission_id: ResponseId,
    pub flag: RiskFlag,
}

/// What a clinician task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Review a risk flag (the episode's clinician; raised by the submission pipeline).
    RiskReview,
    /// The intake team reviews a waiting client with an open risk signal
    /// (raised by the waitlist watch, `matching::waitlist`).
    WaitlistRisk,
    /// The intake team reviews a waiting client who reliably deteriorated.
    WaitlistDeterioration,
}

impl TaskKind {
    /// Every kind, in stored-name order of the CHECK constraint.
    pub const ALL: [TaskKind; 3] = [
        TaskKind::RiskReview,
        TaskKind::WaitlistRisk,
        TaskKind::WaitlistDeterioration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::RiskReview => "risk_review",
            TaskKind::WaitlistRisk => "waitlist_risk",
            TaskKind::WaitlistDeterioration => "waitlist_deterioration",
        }
    }
    pub fn parse(name: &str) -> Option<TaskKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
    /// Tasks for the practice's intake team (admins and owners), shown on the
    /// waitlist page rather than on a clinician's list.
    pub fn is_intake_team(self) -> bool {
        matches!(
            self,
            TaskKind::WaitlistRisk | TaskKind::WaitlistDeterioration
        )
    }
}

/// A task on a clinician's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicianTask {
    pub id: TaskId,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub episode_id: EpisodeId,
    pub kind: TaskKind,
    /// The flag the task reviews.
    pub risk_flag_id: Option<RecordId>,
    /// The episode's primary clinician when the store knows one.
    pub assignee: Option<UserId>,
    pub title: String,
    pub detail: String,
    pub colour: RiskColour,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Everything one submission changes; stored in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestDecision {
    pub submission: Submission,
    pub score: Score,
    /// Change from the episode baseline (negative = lower score).
    pub change_from_baseline: Option<f64>,
    pub reliable_change: Option<ReliableChange>,
    pub measure: EpisodeMeasure,
    pub flags: Vec<StoredRiskFlag>,
    pub tasks: Vec<ClinicianTask>,
}

/// Why a submission was refused. Nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("instrument: `{0}` is not a known instrument")]
    UnknownInstrument(String),
    #[error("answers: {0}")]
    Answers(#[from] ScoringError),
    #[error("Idempotency-Key: {0}")]
    IdempotencyKey(&'static str),
    #[error("episode: not found in this practice for this client")]
    EpisodeNotFound,
    #[error("Idempotency-Key: already used for a different submission")]
    IdempotencyConflict,
}

/// How long until a risk task is due, by the signal's urgency (colour decides the urgency:
/// red is always immediate). "Before the session ends" is one hour (a 50-minute session plus
/// notes), "the same day" eight hours. Design choices.
pub fn task_due_at(raised_at: DateTime<Utc>, colour: RiskColour, due: TaskDue) -> DateTime<Utc> {
    let after = match (colour, due) {
        (RiskColour::Red, _) | (_, TaskDue::Immediately) => Duration::zero(),
        (RiskColour::Amber, TaskDue::BeforeSessionEnds) => Duration::hours(1),
        (RiskColour::Amber, TaskDue::SameDay) => Duration::hours(8),
    };
    raised_at + after
}

/// A submission id that sorts by submission time: a UUID version 7 built from `submitted_at`
/// (48-bit milliseconds) and 74 random bits, so ids stay unguessable while new rows land at the
/// end of the primary-key B-tree instead of on a random page (B3: fewer pages written per commit).
pub fn time_ordered_id(submitted_at: DateTime<Utc>) -> ResponseId {
    let millis = u64::try_from(submitted_at.timestamp_millis()).unwrap_or(0);
    let random = *uuid::Uuid::new_v4().as_bytes();
    let mut bytes = [0u8; 16];
    for (k, b) in bytes.iter_mut().enumerate().take(6) {
        *b = (millis >> (8 * (5 - k))) as u8;
    }
    bytes[6..].copy_from_slice(&random[6..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    ResponseId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

/// Checks an `Idempotency-Key`: 1–200 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), IngestError> {
    if key.is_empty() {
        return Err(IngestError::IdempotencyKey("must not be empty"));
    }
    if key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(IngestError::IdempotencyKey("longer than 200 characters"));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(IngestError::IdempotencyKey(
            "only visible ASCII characters are allowed",
        ));
    }
    Ok(())
}

/// The pipeline's decisions for one submission.
///
/// `prior` is the episode's state for this instrument before the submission; `curve` the
/// practice's latest expected-recovery curve for the instrument, used only when it was fitted on
/// at least `min_curve_episodes` episodes; `assignee` the episode's primary clinician.
pub fn decide(
    def: &InstrumentDef,
    req: &IngestRequest,
    prior: Option<&EpisodeMeasure>,
    curve: Option<&ExpectedRecoveryCurve>,
    min_curve_episodes: usize,
    assignee: Option<UserId>,
) -> Result<IngestDecision, IngestError> {
    if def.id != req.instrument {
        return Err(IngestError::UnknownInstrument(
            req.instrument.chars().take(40).collect(),
        ));
    }
    if let Some(key) = &req.idempotency_key {
        check_idempotency_key(key)?;
    }
    let scored = score(def, &req.answers)?;
    let total = scored.total.map(|p| p.0);
    let session = prior.map_or(0, |p| p.sessions).saturating_add(1);
    let baseline = prior.and_then(|p| p.baseline).or(total);
    let at = req.submitted_at;
    let submission = Submission {
        id: time_ordered_id(at),
        practice_id: req.practice_id,
        client_id: req.client_id,
        episode_id: req.episode_id,
        instrument: def.id.clone(),
        instrument_version: def.version.clone(),
        answers: req.answers.values.clone(),
        total,
        session,
        submitted_at: at,
        idempotency_key: req.idempotency_key.clone(),
    };
    let threshold = def.reliable_change_threshold();
    let (change_from_baseline, reliable_change) = match (baseline, total, threshold) {
        (Some(b), Some(t), Some(th)) => (
            Some(t - b),
            Some(classify_reliable_change(b, t, th, def.higher_is_better)),
        ),
        (Some(b), Some(t), None) => (Some(t - b), None),
        _ => (None, None),
    };
    let track = match (baseline, total) {
        (Some(b), Some(t)) => track_record(def, b, t, session, curve, min_curve_episodes),
        // An incomplete response changes nothing about the trajectory.
        _ => prior.and_then(|p| p.track.clone()),
    };
    let measure = EpisodeMeasure {
        practice_id: req.practice_id,
        episode_id: req.episode_id,
        instrument: def.id.clone(),
        baseline,
        latest: total.or(prior.and_then(|p| p.latest)),
        sessions: session,
        track,
        updated_at: at,
    };
    // Risk signals depend on the answers alone: an improving total never hides one.
    let mut flags = Vec::new();
    let mut tasks = Vec::new();
    for signal in risk_signals(def, &req.answers, &scored) {
        let request = task_for(def, &signal);
        let flag = StoredRiskFlag {
            id: RecordId::random(),
            practice_id: req.practice_id,
            client_id: req.client_id,
            episode_id: req.episode_id,
            submission_id: submission.id,
            flag: RiskFlag::raise(signal, at),
        };
        tasks.push(ClinicianTask {
            id: TaskId::random(),
            practice_id: req.practice_id,
            client_id: req.client_id,
            episode_id: req.episode_id,
            kind: TaskKind::RiskReview,
            risk_flag_id: Some(flag.id),
            assignee,
            title: request.title,
            detail: request.detail,
            colour: request.colour,
            due_at: task_due_at(at, request.colour, request.due),
            created_at: at,
            completed_at: None,
        });
        flags.push(flag);
    }
    Ok(IngestDecision {
        submission,
        score: scored,
        change_from_baseline,
        reliable_change,
        measure,
        flags,
        tasks,
    })
}

/// Rational rules first; the curve adds its verdict only when fitted on enough episodes.
fn track_record(
    def: &InstrumentDef,
    baseline: f64,
    total: f64,
    session: u32,
    curve: Option<&ExpectedRecoveryCurve>,
    min_curve_episodes: usize,
) -> Option<TrackRecord> {
    let rational = rational_status_at(def, baseline, total, session as usize)?;
    let usable = curve.filter(|c| {
        c.instrument == def.id && c.n_episodes >= min_curve_episodes.max(1) && session >= 2
    });
    let check = usable.and_then(|c| c.check(baseline, session as usize, total).ok());
    let mut record = TrackRecord {
        session,
        status: rational.status,
        not_on_track: rational.not_on_track,
        reason: rational.reason,
        curve_version: None,
        curve_n: None,
        boundary: None,
    };
    if let (Some(c), Some(check)) = (usable, check) {
        record.curve_version = Some(c.version.clone());
        record.curve_n = u32::try_from(c.n_episodes).ok();
        record.boundary = Some(check.boundary);
        if check.not_on_track && !record.not_on_track {
            record.not_on_track = true;
            record.status = TrackStatus::NotOnTrack;
            record.reason = format!(
                "score {total} is worse than the expected-recovery boundary {:.1} at session {session} (curve {}, n = {} episodes)",
                check.boundary, c.version, c.n_episodes
            );
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::InstrumentRegistry;
    use crate::scoring::Answer;
    use chrono::TimeZone;

    fn registry() -> InstrumentRegistry {
        InstrumentRegistry::embedded().unwrap()
    }

    fn request(instrument: &str, values: &[i32]) -> IngestRequest {
        IngestRequest {
            practice_id: PracticeId::random(),
            client_id: ClientId::random(),
            episode_id: EpisodeId::random(),
            instrument: instrument.into(),
            answers: Answers::from_values(values),
            idempotency_key: None,
            submitted_at: Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap(),
        }
    }

    #[test]
    fn phq9_item_9_raises_a_flag_and_a_task_at_once() {
        let r = registry();
        let def = r.get("phq9").unwrap();
        let req = request("phq9", &[1, 1, 1, 1, 1, 1, 1, 1, 2]);
        let d = decide(def, &req, None, None, 200, None).unwrap();
        assert_eq!(d.flags.len(), 1);
        assert_eq!(d.tasks.len(), 1);
        assert_eq!(d.tasks[0].risk_flag_id, Some(d.flags[0].id));
        assert_eq!(d.flags[0].submission_id, d.submission.id);
        assert!(d.flags[0].flag.is_open());
        // R2 (item 9 ≥ 2) is due the same day.
        assert_eq!(d.tasks[0].due_at, req.submitted_at + Duration::hours(8));
        assert_eq!(d.submission.session, 1);
        assert_eq!(d.measure.baseline, Some(10.0));
    }

    #[test]
    fn core10_item_6_raises_a_flag_even_when_the_total_improves() {
        let r = registry();
        let def = r.get("core10").unwrap();
        let first = request("core10", &[3, 0, 0, 3, 3, 0, 3, 3, 3, 3]);
        let d1 = decide(def, &first, None, None, 200, None).unwrap();
        assert!(d1.flags.is_empty());
        let mut second = request("core10", &[0, 4, 4, 0, 0, 1, 0, 0, 0, 0]);
        second.episode_id = first.episode_id;
        let d2 = decide(def, &second, Some(&d1.measure), None, 200, None).unwrap();
        assert_eq!(d2.reliable_change, Some(ReliableChange::Improved));
        assert_eq!(d2.flags.len(), 1);
        assert_eq!(d2.submission.session, 2);
    }

    #[test]
    fn deterioration_is_not_on_track_and_incomplete_answers_keep_the_verdict() {
        let r = registry();
        let def = r.get("phq9").unwrap();
        let d1 = decide(
            def,
            &request("phq9", &[1, 1, 1, 1, 1, 1, 1, 1, 0]),
            None,
            None,
            200,
            None,
        )
        .unwrap();
        let d2 = decide(
            def,
            &request("phq9", &[3, 3, 3, 2, 2, 1, 1, 1, 0]),
            Some(&d1.measure),
            None,
            200,
            None,
        )
        .unwrap();
        let track = d2.measure.track.clone().unwrap();
        assert_eq!(track.status, TrackStatus::Deteriorated);
        assert!(track.not_on_track);
        let mut incomplete = request("phq9", &[0; 9]);
        incomplete.answers.values[0] = Answer::Missing;
        let d3 = decide(def, &incomplete, Some(&d2.measure), None, 200, None).unwrap();
        assert_eq!(d3.submission.total, None);
        assert_eq!(d3.measure.track, Some(track));
        assert_eq!(d3.measure.sessions, 3);
        assert_eq!(d3.measure.latest, Some(16.0));
    }

    #[test]
    fn bad_answers_name_the_item_and_bad_keys_are_refused() {
        let r = registry();
        let def = r.get("phq9").unwrap();
        let err = decide(
            def,
            &request("phq9", &[0, 0, 0, 0, 7, 0, 0, 0, 0]),
            None,
            None,
            200,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("item 5"), "{err}");
        let err = decide(def, &request("phq9", &[]), None, None, 200, None).unwrap_err();
        assert!(matches!(err, IngestError::Answers(_)));
        let err = decide(def, &request("gad7", &[0; 7]), None, None, 200, None).unwrap_err();
        assert!(matches!(err, IngestError::UnknownInstrument(_)));
        for bad in ["", "with space", &"k".repeat(201)] {
            let mut req = request("phq9", &[0; 9]);
            req.idempotency_key = Some(bad.to_string());
            let err = decide(def, &req, None, None, 200, None).unwrap_err();
            assert!(err.to_string().starts_with("Idempotency-Key"), "{err}");
        }
    }

    #[test]
    fn submission_ids_are_version_7_and_sort_by_time() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let a = time_ordered_id(t);
        let b = time_ordered_id(t + Duration::milliseconds(1));
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a.as_uuid() < b.as_uuid());
        assert_ne!(a, time_ordered_id(t), "random bits differ");
    }

    #[test]
    fn red_tasks_are_due_immediately() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        assert_eq!(task_due_at(t, RiskColour::Red, TaskDue::SameDay), t);
        assert_eq!(
            task_due_at(t, RiskColour::Amber, TaskDue::BeforeSessionEnds),
            t + Duration::hours(1)
        );
    }

    proptest::proptest! {
        /// Whatever the history, a PHQ-9 with item 9 > 0 raises exactly one flag and one task,
        /// and item 9 = 0 raises none; the session count always advances by one.
        #[test]
        fn risk_depends_on_the_answers_alone(
            answers in proptest::collection::vec(0i32..=3, 9),
            baseline in proptest::option::of(0.0f64..=27.0),
            sessions in 0u32..40,
        ) {
            let r = registry();
            let def = r.get("phq9").unwrap();
            let req = request("phq9", &answers);
            let prior = EpisodeMeasure {
                practice_id: req.practice_id,
                episode_id: req.episode_id,
                instrument: "phq9".into(),
                baseline,
                latest: baseline,
                sessions,
                track: None,
                updated_at: req.submitted_at,
            };
            let d = decide(def, &req, Some(&prior), None, 200, None).unwrap();
            let risky = answers[8] > 0;
            proptest::prop_assert_eq!(d.flags.len(), usize::from(risky));
            proptest::prop_assert_eq!(d.tasks.len(), usize::from(risky));
            proptest::prop_assert_eq!(d.submission.session, sessions + 1);
            proptest::prop_assert_eq!(d.measure.baseline, baseline.or(Some(f64::from(answers.iter().sum::<i32>()))));
        }
    }
}
