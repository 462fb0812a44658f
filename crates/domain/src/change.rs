//! What a change in scores means: reliable change (Jacobson & Truax 1991), clinically significant
//! change (criteria a, b, c), the NHS Talking Therapies paired outcomes (instruments.md §2.3),
//! response and remission, and sudden gains (Tang & DeRubeis 1999).
//!
//! Direction: every function takes `higher_is_better`; "improvement" always means movement
//! towards health.

use crate::instrument::{InstrumentDef, Norms};
use serde::Serialize;

/// z for a two-tailed p < .05 (Jacobson & Truax 1991).
pub const Z_95: f64 = 1.96;

/// The smallest raw change that is reliable: 1.96 × SD × √(2(1 − r)).
/// (SE = SD√(1−r); S_diff = √2·SE; instruments.md §2.1.)
pub fn reliable_change_points(sd: f64, reliability: f64) -> f64 {
    Z_95 * sd * (2.0 * (1.0 - reliability)).sqrt()
}

/// The Jacobson–Truax RC statistic: (post − pre) / S_diff. |RC| > 1.96 is reliable.
pub fn reliable_change_index(pre: f64, post: f64, sd: f64, reliability: f64) -> f64 {
    (post - pre) / (sd * (2.0 * (1.0 - reliability)).sqrt())
}

/// Reliable-change classification of one pair of scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReliableChange {
    Improved,
    NoReliableChange,
    Deteriorated,
}

/// Classifies `pre → post` against a threshold in points: a change of at least `threshold`
/// towards health is reliable improvement, away from health reliable deterioration. (Thresholds
/// are stored as whole points already rounded up, e.g. PHQ-9 6, so `>=` matches the NHS Talking
/// Therapies convention "decrease ≥ 6".)
pub fn classify_reliable_change(
    pre: f64,
    post: f64,
    threshold: f64,
    higher_is_better: bool,
) -> ReliableChange {
    let improvement = if higher_is_better {
        post - pre
    } else {
        pre - post
    };
    if improvement >= threshold {
        ReliableChange::Improved
    } else if -improvement >= threshold {
        ReliableChange::Deteriorated
    } else {
        ReliableChange::NoReliableChange
    }
}

/// The three Jacobson–Truax cut-offs from clinical and functional norms (instruments.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClinicalCutoffs {
    /// Two SD from the clinical mean towards health.
    pub a: f64,
    /// Two SD from the functional mean towards illness.
    pub b: f64,
    /// Weighted midpoint: (SD_c·M_n + SD_n·M_c) / (SD_c + SD_n). Preferred when the
    /// distributions overlap.
    pub c: f64,
}

/// Cut-offs a, b, c for a scale (`higher_is_better` flips the direction of a and b).
pub fn clinical_cutoffs(norms: &Norms, higher_is_better: bool) -> ClinicalCutoffs {
    let sign = if higher_is_better { 1.0 } else { -1.0 };
    ClinicalCutoffs {
        a: norms.clinical_mean + sign * 2.0 * norms.clinical_sd,
        b: norms.functional_mean - sign * 2.0 * norms.functional_sd,
        c: (norms.clinical_sd * norms.functional_mean + norms.functional_sd * norms.clinical_mean)
            / (norms.clinical_sd + norms.functional_sd),
    }
}

/// Whether `score` is on the functional side of `cutoff` (strictly, as in J&T: post < cut-off
/// for scales where higher is worse).
pub fn on_functional_side(score: f64, cutoff: f64, higher_is_better: bool) -> bool {
    if higher_is_better {
        score > cutoff
    } else {
        score < cutoff
    }
}

/// Jacobson–Truax outcome category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JacobsonTruax {
    /// Reliable improvement and moved from the dysfunctional to the functional side of the cut-off.
    Recovered,
    /// Reliable improvement only.
    Improved,
    Unchanged,
    /// Reliable deterioration.
    Deteriorated,
}

/// Classifies a pair by reliable change and a clinical cut-off.
pub fn jacobson_truax(
    pre: f64,
    post: f64,
    threshold: f64,
    cutoff: f64,
    higher_is_better: bool,
) -> JacobsonTruax {
    match classify_reliable_change(pre, post, threshold, higher_is_better) {
        ReliableChange::Deteriorated => JacobsonTruax::Deteriorated,
        ReliableChange::NoReliableChange => JacobsonTruax::Unchanged,
        ReliableChange::Improved => {
            if !on_functional_side(pre, cutoff, higher_is_better)
                && on_functional_side(post, cutoff, higher_is_better)
            {
                JacobsonTruax::Recovered
            } else {
                JacobsonTruax::Improved
            }
        }
    }
}

/// Where the cut-off used for clinical significance came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutoffProvenance {
    /// `criterion_c` (from norms) or `caseness` (the instrument's primary cut-off).
    pub basis: String,
    pub value: f64,
    pub source: String,
    pub verified: bool,
}

/// Clinically significant change of a pair under an instrument's definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClinicalSignificance {
    pub category: JacobsonTruax,
    pub cutoff: CutoffProvenance,
    /// Criteria a, b, c when the definition has norms.
    pub criteria: Option<ClinicalCutoffs>,
}

/// Clinically significant change for `pre → post`: criterion c from the definition's norms when
/// present, else the primary caseness cut-off (a score below it counts as the functional side,
/// i.e. a cut-off of `at_least − 0.5` for whole-point scales). `None` when the definition has
/// neither, or no reliable-change threshold.
pub fn clinical_significance(
    def: &InstrumentDef,
    pre: f64,
    post: f64,
) -> Option<ClinicalSignificance> {
    let threshold = def.reliable_change_threshold()?;
    let (cutoff, criteria) = if let Some(norms) = &def.norms {
        let cuts = clinical_cutoffs(norms, def.higher_is_better);
        (
            CutoffProvenance {
                basis: "criterion_c".into(),
                value: cuts.c,
                source: norms.source.clone(),
                verified: norms.verified,
            },
            Some(cuts),
        )
    } else {
        let c = def.primary_cutoff(None)?;
        (
            CutoffProvenance {
                basis: "caseness".into(),
                value: c.at_least - 0.5,
                source: c.source.clone(),
                verified: c.verified,
            },
            None,
        )
    };
    Some(ClinicalSignificance {
        category: jacobson_truax(pre, post, threshold, cutoff.value, def.higher_is_better),
        cutoff,
        criteria,
    })
}

/// Response: a reduction of at least `percent` % of the starting score (symptom scales).
/// A start of 0 cannot respond.
pub fn response(pre: f64, post: f64, percent: f64) -> bool {
    pre > 0.0 && (pre - post) >= pre * percent / 100.0
}

/// Remission: the score is below `below`.
pub fn remission(post: f64, below: f64) -> bool {
    post < below
}

/// One measure's rule in the Talking Therapies outcome: caseness cut-off and reliable-change
/// threshold (PHQ-9 10 and 6; GAD-7 8 and 4; an ADSM its own).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedMeasureRule {
    pub caseness_at_least: f64,
    pub reliable_change: f64,
}

impl PairedMeasureRule {
    /// The rule recorded in an instrument definition (cut-off `talking_therapies_caseness`).
    pub fn from_def(def: &InstrumentDef) -> Result<PairedMeasureRule, ChangeError> {
        let caseness =
            def.cutoff("talking_therapies_caseness")
                .ok_or_else(|| ChangeError::MissingRule {
                    instrument: def.id.clone(),
                    field: "cutoffs (purpose talking_therapies_caseness)".into(),
                })?;
        let rc = def
            .reliable_change_threshold()
            .ok_or_else(|| ChangeError::MissingRule {
                instrument: def.id.clone(),
                field: "reliable_change".into(),
            })?;
        Ok(PairedMeasureRule {
            caseness_at_least: caseness.at_least,
            reliable_change: rc,
        })
    }

    fn case(&self, score: f64) -> bool {
        score >= self.caseness_at_least
    }
}

/// First and last score of a finished course of treatment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    pub first: f64,
    pub last: f64,
}

/// Which definition of reliable deterioration to use (instruments.md §2.3 note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeteriorationDefinition {
    /// A reliable increase on either measure (the public R implementation; default).
    #[default]
    EitherIncreased,
    /// A reliable increase on one measure and no reliable decrease on the other.
    IncreasedWithoutImprovementOnOther,
}

/// NHS Talking Therapies paired outcome (instruments.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TalkingTherapiesOutcome {
    pub caseness_at_start: bool,
    /// `None` when not a case at the start (excluded from the recovery denominator).
    pub recovery: Option<bool>,
    pub reliable_improvement: bool,
    pub reliable_deterioration: bool,
    /// Recovery and reliable improvement; `None` when not a case at the start.
    pub reliable_recovery: Option<bool>,
}

/// Computes the paired outcome exactly as §2.3:
/// caseness = PHQ-9 ≥ 10 or anxiety ≥ its cut-off; recovery = case at start and not a case on
/// both measures at the end; reliable improvement = a reliable decrease on at least one measure
/// and no reliable increase on either; reliable deterioration = a reliable increase on either
/// (or the stricter variant); reliable recovery = recovery and reliable improvement.
pub fn talking_therapies_outcome(
    depression: (PairedMeasureRule, Pair),
    anxiety: (PairedMeasureRule, Pair),
    deterioration: DeteriorationDefinition,
) -> TalkingTherapiesOutcome {
    let (dr, dp) = depression;
    let (ar, ap) = anxiety;
    let case_start = dr.case(dp.first) || ar.case(ap.first);
    let case_end = dr.case(dp.last) || ar.case(ap.last);
    let d_delta = dp.last - dp.first;
    let a_delta = ap.last - ap.first;
    let d_imp = d_delta <= -dr.reliable_change;
    let a_imp = a_delta <= -ar.reliable_change;
    let d_det = d_delta >= dr.reliable_change;
    let a_det = a_delta >= ar.reliable_change;
    let reliable_improvement = (d_imp || a_imp) && !(d_det || a_det);
    let reliable_deterioration = match deterioration {
        DeteriorationDefinition::EitherIncreased => d_det || a_det,
        DeteriorationDefinition::IncreasedWithoutImprovementOnOther => {
            (d_det && !a_imp) || (a_det && !d_imp)
        }
    };
    let recovery = case_start.then_some(!case_end);
    TalkingTherapiesOutcome {
        caseness_at_start: case_start,
        recovery,
        reliable_improvement,
        reliable_deterioration,
        reliable_recovery: recovery.map(|r| r && reliable_improvement),
    }
}

/// A sudden gain between two consecutive sessions (Tang & DeRubeis 1999).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SuddenGain {
    /// 1-based session number of the last score before the gain.
    pub pregain_session: usize,
    /// 1-based session number of the first score after the gain.
    pub postgain_session: usize,
    /// Size of the gain in points (towards health).
    pub magnitude: f64,
    pub pregain_mean: f64,
    pub postgain_mean: f64,
}

/// Two-tailed critical t (p < .05) by degrees of freedom, for criterion 3 with 2–3 scores per
/// side (df 2, 3, 4), as in the R package *suddengains*.
fn critical_t(df: usize) -> Option<f64> {
    match df {
        2 => Some(4.303),
        3 => Some(3.182),
        4 => Some(2.776),
        _ => None,
    }
}

/// Sudden gains in a session-by-session series (Tang & DeRubeis 1999, criteria as implemented by
/// the R package *suddengains*):
/// 1. the gain between sessions n and n+1 is at least the reliable-change threshold;
/// 2. it is at least 25 % of the pre-gain score;
/// 3. the mean of up to three scores before the gain differs from the mean of up to three after
///    by more than t_crit × the pooled SD (at least two scores on each side; t_crit for df 2–4).
///
/// Gains found are reported in order; a gain's post-gain sessions are not re-used as the start
/// of an overlapping gain.
pub fn sudden_gains(scores: &[f64], threshold: f64, higher_is_better: bool) -> Vec<SuddenGain> {
    let toward = |from: f64, to: f64| {
        if higher_is_better {
            to - from
        } else {
            from - to
        }
    };
    let mut out = Vec::new();
    let mut i = 1;
    while i < scores.len() {
        let (Some(&before), Some(&after)) = (scores.get(i - 1), scores.get(i)) else {
            break;
        };
        let gain = toward(before, after);
        let crit1 = gain >= threshold;
        let crit2 = if higher_is_better {
            // For higher-is-better scales 25 % of the distance to the worst score is not defined
            // by Tang & DeRubeis; the criterion is applied to the pre-gain score itself.
            gain >= 0.25 * before.abs()
        } else {
            gain >= 0.25 * before
        };
        let pre = scores.get(i.saturating_sub(3)..i).unwrap_or_default();
        let post = scores.get(i..(i + 3).min(scores.len())).unwrap_or_default();
        let crit3 = if pre.len() >= 2 && post.len() >= 2 {
            let (m1, v1) = mean_var(pre);
            let (m2, v2) = mean_var(post);
            let n1 = pre.len() as f64;
            let n2 = post.len() as f64;
            let pooled = (((n1 - 1.0) * v1 + (n2 - 1.0) * v2) / (n1 + n2 - 2.0)).sqrt();
            critical_t(pre.len() + post.len() - 2).is_some_and(|t| toward(m1, m2) > t * pooled)
        } else {
            false
        };
        if crit1 && crit2 && crit3 {
            let (m1, _) = mean_var(pre);
            let (m2, _) = mean_var(post);
            out.push(SuddenGain {
                pregain_session: i,
                postgain_session: i + 1,
                magnitude: gain,
                pregain_mean: m1,
                postgain_mean: m2,
            });
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// Mean and sample variance.
fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let v = if n > 1.0 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v)
}

/// Errors of change computations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{instrument}: definition lacks `{field}` needed for this computation")]
    MissingRule { instrument: String, field: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_instruments_md() {
        // §2.1: SD 5.5, α 0.89 → 5.06; SD 6.0, α 0.89 → 5.52; SD 5.0, α 0.92 → 3.92.
        assert!((reliable_change_points(5.5, 0.89) - 5.06).abs() < 0.01);
        assert!((reliable_change_points(6.0, 0.89) - 5.52).abs() < 0.01);
        assert!((reliable_change_points(5.0, 0.92) - 3.92).abs() < 0.01);
    }

    #[test]
    fn criteria_abc_match_the_illustration() {
        // §2.2: M_c 16.0, SD_c 5.5, M_n 2.91, SD_n 3.52 → a = 5.0, b ≈ 9.95, c ≈ 8.0.
        let n = Norms {
            clinical_mean: 16.0,
            clinical_sd: 5.5,
            functional_mean: 2.91,
            functional_sd: 3.52,
            source: "test".into(),
            verified: false,
        };
        let c = clinical_cutoffs(&n, false);
        assert!((c.a - 5.0).abs() < 1e-9);
        assert!((c.b - 9.95).abs() < 1e-9);
        assert!((c.c - 8.0).abs() < 0.05, "{}", c.c);
    }

    #[test]
    fn sudden_gain_worked_example() {
        // Hand check: 20,20,19,10,10,9. Gain 19→10 = 9 ≥ 6 (crit 1), 9 ≥ 0.25·19 = 4.75 (crit 2).
        // Pre (20,20,19): mean 19.667, var 0.333; post (10,10,9): mean 9.667, var 0.333;
        // pooled SD 0.577; 10.0 > 2.776 × 0.577 = 1.60 (crit 3, df 4).
        let g = sudden_gains(&[20.0, 20.0, 19.0, 10.0, 10.0, 9.0], 6.0, false);
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].pregain_session, g[0].postgain_session), (3, 4));
        assert!((g[0].magnitude - 9.0).abs() < 1e-9);
        // A reversal right after the gain fails criterion 3.
        assert!(sudden_gains(&[20.0, 20.0, 19.0, 10.0, 20.0, 21.0], 6.0, false).is_empty());
        // Too few sessions: no gain can be confirmed.
        assert!(sudden_gains(&[20.0, 10.0], 6.0, false).is_empty());
        assert!(sudden_gains(&[], 6.0, false).is_empty());
    }
}
