//! The measurement CLI's logic, as pure functions: argument strings in, a report out. The app
//! crate only parses argv and prints `report.to_json()`:
//!
//! - `tapestry score phq9 1,2,0,3,1,0,2,1,0 --json` → [`score_command`]
//! - `tapestry outcome --phq9 18,7 --gad7 15,6 --json` → [`outcome_command`]
//! - `tapestry change phq9 --scores 20,19,19,18,18,17 --json` → [`change_command`]
//!
//! Key order in the JSON follows the struct field order (serde preserves it).

use crate::change::{
    self, clinical_significance, sudden_gains, talking_therapies_outcome, ClinicalSignificance,
    DeteriorationDefinition, Pair, PairedMeasureRule, ReliableChange, SuddenGain,
    TalkingTherapiesOutcome,
};
use crate::instrument::{InstrumentError, InstrumentRegistry, Sex};
use crate::scoring::{self, Answers, CriticalHit, DerivedValue, Points, ScoringError};
use crate::trajectory::{rational_status, RationalVerdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// The most scores `change` accepts.
pub const MAX_SESSIONS: usize = 500;

/// A CLI error; the message names the argument or item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CliError {
    #[error("unknown instrument `{0}`")]
    UnknownInstrument(String),
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("{arg}: {problem}")]
    BadArgument { arg: String, problem: String },
    #[error(transparent)]
    Change(#[from] change::ChangeError),
}

impl From<InstrumentError> for CliError {
    fn from(e: InstrumentError) -> Self {
        match e {
            InstrumentError::Unknown(id) => CliError::UnknownInstrument(id),
            other => CliError::BadArgument {
                arg: "instrument".into(),
                problem: other.to_string(),
            },
        }
    }
}

/// Output of `tapestry score`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreReport {
    pub instrument: String,
    pub total: Option<Points>,
    pub band: Option<String>,
    pub caseness: Option<bool>,
    pub complete: bool,
    pub critical: Vec<CriticalHit>,
    pub subscales: BTreeMap<String, Option<Points>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<u16>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prorated: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub derived: BTreeMap<String, DerivedValue>,
}

/// `tapestry score <instrument> <answers> [--sex male|female]`.
pub fn score_command(
    registry: &InstrumentRegistry,
    instrument: &str,
    answers: &str,
    sex: Option<&str>,
) -> Result<ScoreReport, CliError> {
    let def = registry.require(instrument.trim())?;
    let mut parsed = Answers::parse_list(answers, def.items.len())?;
    if let Some(s) = sex {
        parsed.sex = Some(Sex::parse(s).ok_or_else(|| CliError::BadArgument {
            arg: "--sex".into(),
            problem: format!(
                "`{}` is not male or female",
                s.chars().take(16).collect::<String>()
            ),
        })?);
    }
    let score = scoring::score(def, &parsed)?;
    Ok(ScoreReport {
        instrument: score.instrument,
        total: score.total,
        band: score.band,
        caseness: score.caseness,
        complete: score.complete,
        critical: score.critical,
        subscales: score
            .subscales
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect(),
        missing: score.missing,
        not_applicable: score.not_applicable,
        prorated: score.prorated,
        derived: score.derived,
    })
}

/// Output of `tapestry outcome`.
pub type OutcomeReport = TalkingTherapiesOutcome;

/// `tapestry outcome --phq9 FIRST,LAST --gad7 FIRST,LAST`: the NHS Talking Therapies paired
/// outcome (instruments.md §2.3), with thresholds read from the phq9 and gad7 definitions.
pub fn outcome_command(
    registry: &InstrumentRegistry,
    phq9: &str,
    gad7: &str,
) -> Result<OutcomeReport, CliError> {
    let p = registry.require("phq9")?;
    let g = registry.require("gad7")?;
    let pair_p = parse_pair(
        "--phq9",
        phq9,
        f64::from(p.scoring.min),
        f64::from(p.scoring.max),
    )?;
    let pair_g = parse_pair(
        "--gad7",
        gad7,
        f64::from(g.scoring.min),
        f64::from(g.scoring.max),
    )?;
    Ok(talking_therapies_outcome(
        (PairedMeasureRule::from_def(p)?, pair_p),
        (PairedMeasureRule::from_def(g)?, pair_g),
        DeteriorationDefinition::default(),
    ))
}

fn parse_pair(arg: &str, text: &str, min: f64, max: f64) -> Result<Pair, CliError> {
    let values = parse_scores(arg, text, 2, min, max)?;
    match values.as_slice() {
        [first, last] => Ok(Pair {
            first: *first,
            last: *last,
        }),
        _ => Err(CliError::BadArgument {
            arg: arg.into(),
            problem: format!("expected FIRST,LAST (2 scores), got {}", values.len()),
        }),
    }
}

/// Parses comma-separated scores within `min..=max`, at most `limit` of them.
fn parse_scores(
    arg: &str,
    text: &str,
    limit: usize,
    min: f64,
    max: f64,
) -> Result<Vec<f64>, CliError> {
    let bad = |problem: String| CliError::BadArgument {
        arg: arg.into(),
        problem,
    };
    if text.trim().is_empty() {
        return Err(bad("no scores given".into()));
    }
    let mut out = Vec::new();
    for (ix, raw) in text.split(',').enumerate() {
        if ix >= limit {
            return Err(bad(format!("too many scores (at most {limit})")));
        }
        let t = raw.trim();
        let v: f64 = t.parse().map_err(|_| {
            bad(format!(
                "score {}: `{}` is not a number",
                ix + 1,
                t.chars().take(24).collect::<String>()
            ))
        })?;
        if !v.is_finite() || v < min || v > max {
            return Err(bad(format!("score {}: {t} is outside {min}-{max}", ix + 1)));
        }
        out.push(v);
    }
    Ok(out)
}

/// One session in `tapestry change`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionChange {
    pub session: usize,
    pub score: Points,
    /// Score minus baseline.
    pub change: Points,
    pub reliable_change: ReliableChange,
}

/// Response and remission at the last session, where the definition records the conventions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRemission {
    pub response: Option<bool>,
    pub remission: Option<bool>,
    pub source: String,
    pub verified: bool,
}

/// Output of `tapestry change`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    pub instrument: String,
    pub baseline: Points,
    pub reliable_change_threshold: Points,
    pub reliable_change_source: String,
    pub reliable_change_verified: bool,
    pub sessions: Vec<SessionChange>,
    /// Baseline → last session.
    pub clinically_significant_change: Option<ClinicalSignificance>,
    pub response_remission: Option<ResponseRemission>,
    pub sudden_gains: Vec<SuddenGain>,
    pub not_on_track: RationalVerdict,
}

/// `tapestry change <instrument> --scores S1,S2,…` (first = intake).
pub fn change_command(
    registry: &InstrumentRegistry,
    instrument: &str,
    scores: &str,
) -> Result<ChangeReport, CliError> {
    let def = registry.require(instrument.trim())?;
    let rc = def
        .reliable_change
        .as_ref()
        .ok_or_else(|| change::ChangeError::MissingRule {
            instrument: def.id.clone(),
            field: "reliable_change".into(),
        })?;
    let threshold =
        def.reliable_change_threshold()
            .ok_or_else(|| change::ChangeError::MissingRule {
                instrument: def.id.clone(),
                field: "reliable_change".into(),
            })?;
    let values = parse_scores(
        "--scores",
        scores,
        MAX_SESSIONS,
        f64::from(def.scoring.min),
        f64::from(def.scoring.max),
    )?;
    let (Some(&baseline), Some(&last)) = (values.first(), values.last()) else {
        return Err(CliError::BadArgument {
            arg: "--scores".into(),
            problem: "no scores given".into(),
        });
    };
    let sessions = values
        .iter()
        .enumerate()
        .map(|(ix, &v)| SessionChange {
            session: ix + 1,
            score: Points(v),
            change: Points(v - baseline),
            reliable_change: change::classify_reliable_change(
                baseline,
                v,
                threshold,
                def.higher_is_better,
            ),
        })
        .collect();
    let response_remission = def.change.as_ref().and_then(|c| {
        if c.response_reduction_percent.is_none() && c.remission_below.is_none() {
            return None;
        }
        Some(ResponseRemission {
            response: c
                .response_reduction_percent
                .map(|p| change::response(baseline, last, p)),
            remission: c.remission_below.map(|b| change::remission(last, b)),
            source: c.source.clone(),
            verified: c.verified,
        })
    });
    let not_on_track =
        rational_status(def, &values).ok_or_else(|| change::ChangeError::MissingRule {
            instrument: def.id.clone(),
            field: "reliable_change".into(),
        })?;
    Ok(ChangeReport {
        instrument: def.id.clone(),
        baseline: Points(baseline),
        reliable_change_threshold: Points(threshold),
        reliable_change_source: rc.source.clone(),
        reliable_change_verified: rc.verified,
        sessions,
        clinically_significant_change: clinical_significance(def, baseline, last),
        response_remission,
        sudden_gains: sudden_gains(&values, threshold, def.higher_is_better),
        not_on_track,
    })
}

/// Serialises any report as one JSON object, keys in the order shown in the module docs.
pub fn to_json<T: Serialize>(report: &T) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// The report as a JSON value (keys sorted unless serde_json's `preserve_order` is on; use
/// [`to_json`] for the documented key order).
pub fn to_value<T: Serialize>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

fn opt_points(p: Option<Points>) -> String {
    match p {
        Some(p) if p.0.fract() == 0.0 => format!("{}", p.0),
        Some(p) => format!("{:.2}", p.0),
        None => "no total".into(),
    }
}

impl ScoreReport {
    /// One human-readable line (for the CLI without `--json`).
    pub fn summary(&self) -> String {
        let mut line = format!("{}: {}", self.instrument, opt_points(self.total));
        if let Some(b) = &self.band {
            line.push_str(&format!(" ({b})"));
        }
        match self.caseness {
            Some(true) => line.push_str(", above cut-off"),
            Some(false) => line.push_str(", below cut-off"),
            None => {}
        }
        if !self.complete {
            let missing: Vec<String> = self.missing.iter().map(|n| n.to_string()).collect();
            line.push_str(&format!(
                ", incomplete (missing item {})",
                missing.join(", ")
            ));
        }
        for c in &self.critical {
            line.push_str(&format!("; RISK: item {} answered {}", c.item, c.value));
        }
        line
    }
}

impl ChangeReport {
    /// Human-readable lines (for the CLI without `--json`).
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: baseline {}, reliable change >= {}{}\n",
            self.instrument,
            self.baseline.0,
            self.reliable_change_threshold.0,
            if self.reliable_change_verified {
                ""
            } else {
                " (unverified)"
            }
        );
        for s in &self.sessions {
            out.push_str(&format!(
                "  session {}: {} ({:+}) {:?}\n",
                s.session, s.score.0, s.change.0, s.reliable_change
            ));
        }
        for g in &self.sudden_gains {
            out.push_str(&format!(
                "  sudden gain between sessions {} and {} ({} points)\n",
                g.pregain_session, g.postgain_session, g.magnitude
            ));
        }
        out.push_str(&format!(
            "  status: {:?} - {}",
            self.not_on_track.status, self.not_on_track.reason
        ));
        out
    }
}
