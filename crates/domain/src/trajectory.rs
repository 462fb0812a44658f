//! Trajectories: is this client on track?
//!
//! First the **rational rules** from reliable change (instruments.md §2.4a): reliable deterioration
//! since intake → deteriorated (red); in the functional range → functional; reliable improvement
//! → on track; no reliable improvement by the review session → not on track; earlier → too early.
//!
//! Then, only when the practice's own reference set of completed episodes is large enough,
//! **expected-recovery curves** (§2.4b: score on ln(session) with intake severity as predictor,
//! fitted on sessions ≥ 2, with a tolerance band) and the **nearest-neighbour** variant (§2.4d:
//! the k episodes with the closest intake score, per-session percentiles). Every empirical result
//! reports the size of the reference set; fitted curves carry a version, fit date and n.

use crate::change::{classify_reliable_change, on_functional_side, ReliableChange};
use crate::instrument::InstrumentDef;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Status under the rational rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackStatus {
    /// Below the caseness cut-off (functional range).
    FunctionalRange,
    /// Reliable improvement since intake.
    OnTrack,
    /// Not yet at the review session; nothing alarming.
    TooEarly,
    /// No reliable improvement by the review session.
    NotOnTrack,
    /// Reliable deterioration since intake.
    Deteriorated,
}

impl TrackStatus {
    pub const ALL: [TrackStatus; 5] = [
        TrackStatus::FunctionalRange,
        TrackStatus::OnTrack,
        TrackStatus::TooEarly,
        TrackStatus::NotOnTrack,
        TrackStatus::Deteriorated,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackStatus::FunctionalRange => "functional_range",
            TrackStatus::OnTrack => "on_track",
            TrackStatus::TooEarly => "too_early",
            TrackStatus::NotOnTrack => "not_on_track",
            TrackStatus::Deteriorated => "deteriorated",
        }
    }

    /// The status from its stored name.
    pub fn parse(name: &str) -> Option<TrackStatus> {
        TrackStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the status should alert the clinician.
    pub fn is_not_on_track(self) -> bool {
        matches!(self, TrackStatus::NotOnTrack | TrackStatus::Deteriorated)
    }
}

/// The rational-rule verdict at one session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RationalVerdict {
    /// 1-based session number (intake = 1).
    pub session: usize,
    pub status: TrackStatus,
    pub not_on_track: bool,
    pub reason: String,
}

/// Default review session when a definition has none: 4 (Tapestry design choice; early reliable
/// improvement by about session 4 predicts outcome, PMC6428692).
pub const DEFAULT_REVIEW_SESSION: usize = 4;

/// Applies the rational rules to a series (first score = intake). `None` for an empty series or
/// a definition without a reliable-change threshold.
pub fn rational_status(def: &InstrumentDef, scores: &[f64]) -> Option<RationalVerdict> {
    let (&intake, &current) = (scores.first()?, scores.last()?);
    rational_status_at(def, intake, current, scores.len())
}

/// The rational rules from the intake score, the current score and the session number (1 =
/// intake); all a running episode needs to keep. `None` without a reliable-change threshold.
pub fn rational_status_at(
    def: &InstrumentDef,
    intake: f64,
    current: f64,
    session: usize,
) -> Option<RationalVerdict> {
    let threshold = def.reliable_change_threshold()?;
    let review = def
        .not_on_track
        .as_ref()
        .map(|n| n.review_by_session as usize)
        .unwrap_or(DEFAULT_REVIEW_SESSION);
    let rc = classify_reliable_change(intake, current, threshold, def.higher_is_better);
    let in_functional = def
        .primary_cutoff(None)
        .is_some_and(|c| on_functional_side(current, c.at_least - 0.5, def.higher_is_better));
    let (status, reason) = match rc {
        ReliableChange::Deteriorated => (
            TrackStatus::Deteriorated,
            format!("reliable deterioration since intake ({intake} → {current}, threshold {threshold})"),
        ),
        _ if in_functional => (
            TrackStatus::FunctionalRange,
            "below the caseness cut-off".to_string(),
        ),
        ReliableChange::Improved => (
            TrackStatus::OnTrack,
            format!("reliable improvement since intake ({intake} → {current}, threshold {threshold})"),
        ),
        ReliableChange::NoReliableChange if session >= review => (
            TrackStatus::NotOnTrack,
            format!("no reliable improvement by session {session} (review at session {review}, threshold {threshold})"),
        ),
        ReliableChange::NoReliableChange => (
            TrackStatus::TooEarly,
            format!("session {session}: review at session {review}"),
        ),
    };
    Some(RationalVerdict {
        session,
        status,
        not_on_track: status.is_not_on_track(),
        reason,
    })
}

/// Rational verdict plus, when a fitted curve is supplied, the empirical check of the latest
/// score. The empirical part is absent (and says why) when no curve could be fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryAssessment {
    pub rational: RationalVerdict,
    pub empirical: Option<EmpiricalCheck>,
    /// Curve version used, for the audit trail.
    pub curve_version: Option<String>,
    /// True when either method says not on track.
    pub not_on_track: bool,
}

/// Assesses a series (intake first) with the rational rules and, if given, a fitted curve.
/// `None` when the series is empty or the definition has no reliable-change threshold.
pub fn assess(
    def: &InstrumentDef,
    scores: &[f64],
    curve: Option<&ExpectedRecoveryCurve>,
) -> Option<TrajectoryAssessment> {
    let rational = rational_status(def, scores)?;
    let empirical = match (curve, scores.first(), scores.last()) {
        (Some(c), Some(&intake), Some(&current)) if scores.len() >= 2 && c.instrument == def.id => {
            c.check(intake, scores.len(), current).ok()
        }
        _ => None,
    };
    let not_on_track = rational.not_on_track || empirical.as_ref().is_some_and(|e| e.not_on_track);
    Some(TrajectoryAssessment {
        curve_version: empirical.as_ref().and(curve).map(|c| c.version.clone()),
        rational,
        empirical,
        not_on_track,
    })
}

/// One completed episode in the reference set: scores by session, intake first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceEpisode {
    pub scores: Vec<f64>,
}

/// Settings of the empirical methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EmpiricalConfig {
    /// Fewer completed episodes than this → no empirical curve (rational rules only).
    pub min_reference_episodes: usize,
    /// One-sided tolerance quantile for the failure boundary (0.90 → z = 1.2816).
    pub tolerance_quantile: f64,
    /// Neighbours for the nearest-neighbour variant.
    pub k_neighbours: usize,
}

impl Default for EmpiricalConfig {
    /// 200 episodes (instruments.md §3.2: "until ~hundreds of completed episodes exist, use
    /// rational rules"), 90 % boundary, k = 100 (§2.4d suggests 50–200; no canonical value).
    fn default() -> Self {
        EmpiricalConfig {
            min_reference_episodes: 200,
            tolerance_quantile: 0.90,
            k_neighbours: 100,
        }
    }
}

/// Whether the background job should fit a new curve: enough completed episodes
/// (`config.min_reference_episodes`) and, when a curve exists, at least 10 % more episodes than it
/// was fitted on (and at least 20 more), so curves follow the data without refitting on every
/// discharge. Design choice.
pub fn refit_due(current_n: Option<usize>, available: usize, config: &EmpiricalConfig) -> bool {
    if available < config.min_reference_episodes.max(1) {
        return false;
    }
    match current_n {
        None => true,
        Some(n) => available >= n + (n / 10).max(20),
    }
}

/// Errors of the empirical methods.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrajectoryError {
    #[error(
        "reference set: {n} completed episodes, at least {min} needed; using rational rules only"
    )]
    TooFewEpisodes { n: usize, min: usize },
    #[error("reference set: intake scores have no spread, the curve cannot be fitted")]
    Degenerate,
    #[error("tolerance_quantile: {0} must be between 0.5 and 1")]
    BadQuantile(f64),
    #[error("session: must be at least 2 (session 1 is the intake), got {0}")]
    BadSession(usize),
    #[error("scores: a reference score is not a finite number")]
    NotFinite,
}

/// A fitted expected-recovery curve: ŷ(t | y₁) = γ00 + γ01·y₁ + (γ10 + γ11·y₁)·ln t, with a
/// tolerance band ŷ ± z·σ where σ is the residual SD of the pooled fit.
///
/// Simplification (documented): the coefficients are estimated by ordinary least squares on all
/// observations t ≥ 2, not by a multilevel model, so the band uses the residual SD only (no
/// separate random-effect variances).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedRecoveryCurve {
    pub instrument: String,
    /// Version of this fit (e.g. "phq9-2026-11-21-1").
    pub version: String,
    pub fitted_on: NaiveDate,
    /// Completed episodes in the reference set.
    pub n_episodes: usize,
    /// Observations (t ≥ 2) used in the fit.
    pub n_observations: usize,
    /// [γ00, γ01, γ10, γ11].
    pub coefficients: [f64; 4],
    pub residual_sd: f64,
    pub z: f64,
    pub higher_is_better: bool,
}

/// The empirical check of one score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmpiricalCheck {
    pub session: usize,
    pub expected: f64,
    /// The failure boundary: worse than this is not on track.
    pub boundary: f64,
    pub not_on_track: bool,
    /// Reference episodes behind the estimate.
    pub n: usize,
    pub method: &'static str,
}

/// z for a one-sided quantile q in (0.5, 1) (Acklam-style rational approximation of the normal
/// quantile; accurate to ~1e-4, plenty for a tolerance band).
fn z_for(q: f64) -> Result<f64, TrajectoryError> {
    if !(q > 0.5 && q < 1.0) {
        return Err(TrajectoryError::BadQuantile(q));
    }
    // Abramowitz & Stegun 26.2.23.
    let p = 1.0 - q;
    let t = (-2.0 * p.ln()).sqrt();
    let (c0, c1, c2) = (2.515517, 0.802853, 0.010328);
    let (d1, d2, d3) = (1.432788, 0.189269, 0.001308);
    Ok(t - (c0 + c1 * t + c2 * t * t) / (1.0 + d1 * t + d2 * t * t + d3 * t * t * t))
}

/// Fits the log-session curve on a reference set of completed episodes. Refuses when the set is
/// smaller than `config.min_reference_episodes`.
pub fn fit_expected_recovery(
    def: &InstrumentDef,
    reference: &[ReferenceEpisode],
    config: &EmpiricalConfig,
    fitted_on: NaiveDate,
    version: &str,
) -> Result<ExpectedRecoveryCurve, TrajectoryError> {
    let usable: Vec<&ReferenceEpisode> = reference.iter().filter(|e| e.scores.len() >= 2).collect();
    if usable.len() < config.min_reference_episodes.max(1) {
        return Err(TrajectoryError::TooFewEpisodes {
            n: usable.len(),
            min: config.min_reference_episodes,
        });
    }
    let z = z_for(config.tolerance_quantile)?;
    // Normal equations X'X β = X'y with x = [1, y1, ln t, y1·ln t].
    let mut xtx = [[0.0f64; 4]; 4];
    let mut xty = [0.0f64; 4];
    let mut n_obs = 0usize;
    for e in &usable {
        let Some(&y1) = e.scores.first() else {
            continue;
        };
        for (ix, &y) in e.scores.iter().enumerate().skip(1) {
            if !y.is_finite() || !y1.is_finite() {
                return Err(TrajectoryError::NotFinite);
            }
            let lt = ((ix + 1) as f64).ln();
            let x = [1.0, y1, lt, y1 * lt];
            for r in 0..4 {
                for c in 0..4 {
                    xtx[r][c] += x[r] * x[c];
                }
                xty[r] += x[r] * y;
            }
            n_obs += 1;
        }
    }
    let beta = solve4(xtx, xty).ok_or(TrajectoryError::Degenerate)?;
    let mut sse = 0.0;
    for e in &usable {
        let Some(&y1) = e.scores.first() else {
            continue;
        };
        for (ix, &y) in e.scores.iter().enumerate().skip(1) {
            let lt = ((ix + 1) as f64).ln();
            let pred = beta[0] + beta[1] * y1 + (beta[2] + beta[3] * y1) * lt;
            sse += (y - pred).powi(2);
        }
    }
    let dof = n_obs.saturating_sub(4).max(1) as f64;
    Ok(ExpectedRecoveryCurve {
        instrument: def.id.clone(),
        version: version.to_string(),
        fitted_on,
        n_episodes: usable.len(),
        n_observations: n_obs,
        coefficients: beta,
        residual_sd: (sse / dof).sqrt(),
        z,
        higher_is_better: def.higher_is_better,
    })
}

impl ExpectedRecoveryCurve {
    /// Expected score at `session` (≥ 2) for a client with this intake score.
    pub fn expected(&self, intake: f64, session: usize) -> f64 {
        let [g00, g01, g10, g11] = self.coefficients;
        let lt = (session.max(1) as f64).ln();
        g00 + g01 * intake + (g10 + g11 * intake) * lt
    }

    /// Checks a score against the tolerance band.
    pub fn check(
        &self,
        intake: f64,
        session: usize,
        score: f64,
    ) -> Result<EmpiricalCheck, TrajectoryError> {
        if session < 2 {
            return Err(TrajectoryError::BadSession(session));
        }
        let expected = self.expected(intake, session);
        let width = self.z * self.residual_sd;
        let boundary = if self.higher_is_better {
            expected - width
        } else {
            expected + width
        };
        let not_on_track = if self.higher_is_better {
            score < boundary
        } else {
            score > boundary
        };
        Ok(EmpiricalCheck {
            session,
            expected,
            boundary,
            not_on_track,
            n: self.n_episodes,
            method: "log_session_curve",
        })
    }
}

/// Nearest-neighbour expected course: the `k` reference episodes with the closest intake score
/// (ties keep reference order) that reached `session`; expected = their mean at that session,
/// boundary = their empirical `tolerance_quantile` (towards illness).
pub fn nearest_neighbour_check(
    def: &InstrumentDef,
    reference: &[ReferenceEpisode],
    config: &EmpiricalConfig,
    intake: f64,
    session: usize,
    score: f64,
) -> Result<EmpiricalCheck, TrajectoryError> {
    if session < 2 {
        return Err(TrajectoryError::BadSession(session));
    }
    let usable = reference.iter().filter(|e| e.scores.len() >= 2).count();
    if usable < config.min_reference_episodes.max(1) {
        return Err(TrajectoryError::TooFewEpisodes {
            n: usable,
            min: config.min_reference_episodes,
        });
    }
    if !(config.tolerance_quantile > 0.5 && config.tolerance_quantile < 1.0) {
        return Err(TrajectoryError::BadQuantile(config.tolerance_quantile));
    }
    let mut candidates: Vec<(f64, f64)> = reference
        .iter()
        .filter_map(|e| {
            Some((
                (e.scores.first()? - intake).abs(),
                *e.scores.get(session - 1)?,
            ))
        })
        .collect();
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    candidates.truncate(config.k_neighbours.max(1));
    if candidates.is_empty() {
        return Err(TrajectoryError::TooFewEpisodes { n: 0, min: 1 });
    }
    let mut at: Vec<f64> = candidates.iter().map(|c| c.1).collect();
    at.sort_by(f64::total_cmp);
    let n = at.len();
    let expected = at.iter().sum::<f64>() / n as f64;
    let q = if def.higher_is_better {
        1.0 - config.tolerance_quantile
    } else {
        config.tolerance_quantile
    };
    let boundary = quantile_sorted(&at, q);
    let not_on_track = if def.higher_is_better {
        score < boundary
    } else {
        score > boundary
    };
    Ok(EmpiricalCheck {
        session,
        expected,
        boundary,
        not_on_track,
        n,
        method: "nearest_neighbour",
    })
}

/// Linear-interpolated quantile of sorted data (type 7).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (Some(&a), Some(&b)) = (sorted.get(lo), sorted.get(hi)) else {
        return f64::NAN;
    };
    a + (b - a) * (h - lo as f64)
}

/// Solves a 4×4 system by Gaussian elimination with partial pivoting; `None` if singular.
/// (Fixed-size arrays: every index is in bounds; index loops read like the textbook algorithm.)
#[allow(clippy::needless_range_loop)]
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in (col + 1)..4 {
            let f = a[row][col] / a[col][col];
            for k in col..4 {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0f64; 4];
    for row in (0..4).rev() {
        let mut s = b[row];
        for k in (row + 1)..4 {
            s -= a[row][k] * x[k];
        }
        x[row] = s / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_matches_normal_table() {
        assert!((z_for(0.90).unwrap() - 1.2816).abs() < 1e-3);
        assert!((z_for(0.95).unwrap() - 1.6449).abs() < 1e-3);
        assert!(z_for(0.4).is_err());
        assert!(z_for(1.0).is_err());
    }

    #[test]
    fn solve4_recovers_known_solution() {
        let a = [
            [2.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 4.0, 1.0],
            [0.0, 0.0, 1.0, 5.0],
        ];
        let x = [1.0, -2.0, 3.0, 0.5];
        let mut b = [0.0; 4];
        for r in 0..4 {
            for c in 0..4 {
                b[r] += a[r][c] * x[c];
            }
        }
        let got = solve4(a, b).unwrap();
        for i in 0..4 {
            assert!((got[i] - x[i]).abs() < 1e-9);
        }
        assert!(solve4([[0.0; 4]; 4], [0.0; 4]).is_none());
    }
}
