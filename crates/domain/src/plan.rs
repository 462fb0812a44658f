//! The plan engine: (formulation, measures, history, knowledge) → plan.
//!
//! Pure and deterministic (ordered maps, stable sorts, no clock). Rules run in
//! the veto order of `treatment_selection.md` §7.2:
//!
//! 0. *style pass* — selection rules that set a style modifier or care
//!    intensity run first so later predicates can read `style.*`;
//! 1. safety overrides (final exclusions, required items, phase, halt);
//! 2. contraindications; 3. phase gates; 4. interference handlers;
//! 5. selection/scoring; 6. sequencing; 8. preferences.
//!
//! (7, adaptation, runs in [`crate::adapt`].) Only types 1–3 can exclude and
//! only safety can require, and nothing after them can bring an excluded
//! technique back: this is what makes "a preference cannot undo safety"
//! structural rather than a convention.

use crate::formulation::Formulation;
use crate::knowledge::{
    render, AlertSpec, EvidenceLevel, FeatureValue, Features, HomeworkTemplate, Knowledge, Phase,
    Rule, RuleType, Target, AROUSAL, DIRECTIVENESS, FOCUS, INTENSITY_SCALE, REACTANCE_SCALE,
    RISK_SCALE, STAGE_SCALE, STRATEGY,
};
use crate::risk::RiskLevel;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------
// Measures in, history in
// ---------------------------------------------------------------------------

/// A scored questionnaire, as the measurement engine (`crate::scoring`) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureSnapshot {
    pub instrument: String,
    pub total: f64,
    /// Above the instrument's caseness cut-off.
    pub caseness: bool,
    pub band: Option<String>,
    /// Critical items as (1-based item number, value), e.g. PHQ-9 item 9.
    pub critical: Vec<(u16, u8)>,
}

impl MeasureSnapshot {
    /// Value of a critical item, if reported.
    pub fn critical_item(&self, item: u16) -> Option<u8> {
        self.critical
            .iter()
            .find(|(n, _)| *n == item)
            .map(|(_, v)| *v)
    }
}

/// Turns raw item answers into a snapshot. The real implementation lives in
/// the measurement engine; the plan engine only depends on this trait.
pub trait MeasureScorer {
    fn score(&self, instrument: &str, items: &[Option<u8>]) -> Result<MeasureSnapshot, String>;
}

/// One past session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session: u32,
    #[serde(default)]
    pub measures: BTreeMap<String, MeasureSnapshot>,
    /// Technique codes used in the session.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Session alliance rating (e.g. SRS, 0–40).
    #[serde(default)]
    pub alliance: Option<f64>,
    #[serde(default)]
    pub homework_completed: Option<bool>,
    /// Session events from the vocabulary (dissociation, self_harm_urges…).
    #[serde(default)]
    pub events: Vec<String>,
    /// Risk level recorded at that session, if any.
    #[serde(default)]
    pub risk: Option<RiskLevel>,
}

/// Everything the engine needs about a case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub formulation: Formulation,
    /// The newest scores (today's).
    pub measures: BTreeMap<String, MeasureSnapshot>,
    /// Sessions already held, oldest first.
    pub history: Vec<SessionRecord>,
}

// ---------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------

/// A citation attached to a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub key: String,
    pub level: EvidenceLevel,
    pub verified: bool,
}

/// One link of a "why" chain: the facts of the case, the rule they
/// triggered and what that rule says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyStep {
    /// Facts of the case that made the rule fire.
    pub features: Vec<String>,
    pub rule: String,
    pub rule_type: String,
    pub explanation: String,
    pub evidence: Vec<EvidenceRef>,
}

/// Why an item is in the plan: feature → rule → mechanism → evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    /// One plain-language paragraph for the clinician.
    pub summary: String,
    pub chain: Vec<WhyStep>,
    pub mechanism: String,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Belongs to the current phase (or an earlier one, still in use).
    Active,
    /// Belongs to a later phase.
    Scheduled,
    /// Gated: waits for non-blocking readiness conditions.
    PendingGate,
    /// Paused because risk rose; kept, not deleted.
    Paused,
    /// Removed by the clinician (kept for the record).
    Removed,
}

/// A soft caution that applies to this client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCaution {
    pub flag: Option<String>,
    pub text: String,
    pub adaptation: String,
}

/// What the clinician decided about an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicianNote {
    pub action: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
}

/// One technique in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: String,
    pub code: String,
    pub name: String,
    /// The school shown (first listed).
    pub school: String,
    pub schools: Vec<String>,
    /// True when assimilative integration imports it from outside the home school.
    pub imported: bool,
    pub phase: Phase,
    pub status: ItemStatus,
    pub dimensions: Vec<String>,
    pub score: f64,
    pub why: Why,
    pub evidence: Vec<EvidenceRef>,
    pub homework: HomeworkTemplate,
    pub cautions: Vec<ActiveCaution>,
    /// Readiness conditions still to be met (for gated items).
    pub pending: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinician: Option<ClinicianNote>,
}

/// A technique ruled out, with the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub id: String,
    pub code: String,
    pub name: String,
    pub rule: String,
    pub rule_type: String,
    pub reason: String,
}

/// Something the clinician must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub level: String,
    pub rule: String,
    pub text: String,
}

/// Delivery style (§1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Style {
    pub directiveness: String,
    pub focus: String,
    pub arousal_target: String,
    pub stage_of_change: Option<String>,
    pub strategy: String,
    pub cultural_adaptations: Vec<String>,
    pub why: Vec<String>,
}

/// The integration model as applied to this plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub model: String,
    pub home_school: Option<String>,
    pub description: String,
    /// How the model shaped selection (fired integration rules).
    pub effect: Vec<String>,
}

/// A phased, explained treatment plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub phase: Phase,
    pub phase_why: Vec<String>,
    /// Imminent risk: nothing beyond safety work until re-evaluation.
    pub halted: bool,
    pub care_intensity: String,
    pub care_intensity_why: Vec<String>,
    pub style: Style,
    pub integration: Integration,
    pub items: Vec<PlanItem>,
    pub excluded: Vec<Exclusion>,
    pub alerts: Vec<Alert>,
    /// Every rule that fired, in evaluation order.
    pub fired_rules: Vec<String>,
}

impl Plan {
    pub fn item(&self, code: &str) -> Option<&PlanItem> {
        self.items.iter().find(|i| i.code == code)
    }
    pub fn has(&self, code: &str) -> bool {
        self.items
            .iter()
            .any(|i| i.code == code && i.status != ItemStatus::Removed)
    }
    pub fn exclusion(&self, code: &str) -> Option<&Exclusion> {
        self.excluded.iter().find(|e| e.code == code)
    }
}

// ---------------------------------------------------------------------------
// Features
// ---------------------------------------------------------------------------

fn b(v: bool) -> FeatureValue {
    FeatureValue::Bool(v)
}
fn n(v: f64) -> FeatureValue {
    FeatureValue::Number(v)
}

/// Compute the named facts the predicates read (see `Knowledge::feature_catalogue`).
pub fn build_features(k: &Knowledge, case: &Case) -> Features {
    let f0 = &case.formulation;
    let mut f = Features::new();
    f.insert("age".into(), n(f64::from(f0.age)));
    for p in &k.vocabulary.problems {
        f.insert(
            format!("problem.{}", p.id),
            b(f0.presenting_problems.contains(&p.id)),
        );
        f.insert(
            format!("primary.{}", p.id),
            b(f0.primary() == Some(p.id.as_str())),
        );
    }
    f.insert(
        "problem.count".into(),
        n(f0.presenting_problems.len() as f64),
    );
    for fl in &k.vocabulary.flags {
        f.insert(format!("flag.{}", fl.id), b(f0.flags.contains(&fl.id)));
    }
    f.insert(
        "risk.level".into(),
        FeatureValue::ordinal(&RISK_SCALE, f0.risk.level.as_str()),
    );
    if let Some(d) = f0.risk.days_since_self_harm {
        f.insert("risk.days_since_self_harm".into(), n(f64::from(d)));
    }
    if let Some(c) = f0.style.coping {
        f.insert("style.coping".into(), FeatureValue::Text(c.as_str().into()));
    }
    if let Some(r) = f0.style.reactance {
        f.insert(
            "style.reactance".into(),
            FeatureValue::ordinal(&REACTANCE_SCALE, r.as_str()),
        );
    }
    if let Some(s) = f0.style.stage_of_change {
        f.insert(
            "style.stage".into(),
            FeatureValue::ordinal(&STAGE_SCALE, s.as_str()),
        );
    }
    if let Some(w) = f0.impairment {
        f.insert("impairment".into(), n(w));
    }
    for (d, rating) in &f0.dimension_ratings {
        f.insert(format!("dimension.{d}"), n(f64::from(*rating)));
    }
    f.insert("social_support.low".into(), b(f0.low_social_support));
    f.insert(
        "readiness.regulation_skill".into(),
        b(f0.readiness.regulation_skill),
    );
    f.insert(
        "readiness.prioritises_trauma".into(),
        b(f0.readiness.prioritises_trauma),
    );
    f.insert(
        "integration.model".into(),
        FeatureValue::Text(f0.integration.model.clone()),
    );
    if let Some(h) = &f0.integration.home_school {
        f.insert(
            "integration.home_school".into(),
            FeatureValue::Text(h.clone()),
        );
    }
    f.insert(
        "preference.any".into(),
        b(!f0.preferences.prefer.is_empty() || !f0.preferences.avoid.is_empty()),
    );
    for (id, m) in &case.measures {
        f.insert(format!("measure.{id}.total"), n(m.total));
        f.insert(format!("measure.{id}.caseness"), b(m.caseness));
        for (item, v) in &m.critical {
            f.insert(format!("measure.{id}.item{item}"), n(f64::from(*v)));
        }
    }
    history_features(k, case, &mut f);
    f
}

fn history_features(k: &Knowledge, case: &Case, f: &mut Features) {
    let h = &case.history;
    f.insert("history.sessions".into(), n(h.len() as f64));
    for c in &k.vocabulary.classes {
        let count = h
            .iter()
            .filter(|s| {
                s.techniques.iter().any(|code| {
                    k.technique(code)
                        .is_some_and(|t| t.classes.iter().any(|x| x == &c.id))
                })
            })
            .count();
        f.insert(format!("history.class.{}.sessions", c.id), n(count as f64));
    }
    for d in ["anxiety", "depression", "trauma", "sleep", "alcohol"] {
        let case_now = case
            .measures
            .iter()
            .any(|(id, m)| m.caseness && k.instruments.get(id).is_some_and(|i| i.domain == d));
        f.insert(format!("domain.{d}.caseness"), b(case_now));
        f.insert(format!("domain.{d}.reliable_improvement"), b(false));
        f.insert(format!("domain.{d}.early_large_improvement"), b(false));
    }
    let mut any_det = false;
    let mut compared_in_caseness = 0;
    let mut all_recovered = true;
    // Change from the first measurement in the history to today's.
    for (id, now) in &case.measures {
        let Some(inst) = k.instruments.get(id) else {
            continue;
        };
        let Some(base) = h.iter().find_map(|s| s.measures.get(id)) else {
            continue;
        };
        let delta = now.total - base.total;
        let improved = -delta >= inst.reliable_change;
        let deteriorated = delta >= inst.reliable_change;
        any_det |= deteriorated;
        f.insert(format!("change.{id}.delta"), n(delta));
        f.insert(format!("change.{id}.reliable_improvement"), b(improved));
        f.insert(
            format!("change.{id}.reliable_deterioration"),
            b(deteriorated),
        );
        let not_on_track =
            h.len() as u32 >= k.settings.not_on_track_after_sessions && now.caseness && !improved;
        f.insert(format!("change.{id}.not_on_track"), b(not_on_track));
        if improved {
            f.insert(
                format!("domain.{}.reliable_improvement", inst.domain),
                b(true),
            );
            if h.len() <= 4 && -delta >= 1.5 * inst.reliable_change && !now.caseness {
                f.insert(
                    format!("domain.{}.early_large_improvement", inst.domain),
                    b(true),
                );
            }
        }
        if base.caseness {
            compared_in_caseness += 1;
            all_recovered &= improved && !now.caseness;
        }
    }
    f.insert("change.any_reliable_deterioration".into(), b(any_det));
    f.insert(
        "change.all_recovered".into(),
        b(compared_in_caseness > 0 && all_recovered),
    );
    f.insert(
        "history.not_on_track_reviews".into(),
        n(not_on_track_run(k, case) as f64),
    );
    let item9 =
        |s: &BTreeMap<String, MeasureSnapshot>| s.get("phq9").and_then(|m| m.critical_item(9));
    let previous_positive = h.iter().any(|s| {
        item9(&s.measures).is_some_and(|v| v > 0) || s.risk.is_some_and(|r| r >= RiskLevel::Low)
    });
    f.insert(
        "history.previous_positive_screen".into(),
        b(previous_positive),
    );
    let last = h.last();
    let rose_item9 = match (item9(&case.measures), last.and_then(|s| item9(&s.measures))) {
        (Some(now), Some(before)) => now > before,
        _ => false,
    };
    let rose_level = last
        .and_then(|s| s.risk)
        .is_some_and(|before| case.formulation.risk.level > before);
    f.insert("history.risk_rose".into(), b(rose_item9 || rose_level));
    let alliances: Vec<f64> = h.iter().filter_map(|s| s.alliance).collect();
    if let Some(latest) = last.and_then(|s| s.alliance) {
        f.insert("history.alliance".into(), n(latest));
        let best = alliances.iter().copied().fold(latest, f64::max);
        f.insert("history.alliance_drop".into(), n(best - latest));
    }
    let missed = h
        .iter()
        .rev()
        .take(3)
        .filter(|s| s.homework_completed == Some(false))
        .count();
    f.insert("history.homework_missed".into(), n(missed as f64));
    for e in &k.vocabulary.session_events {
        let present = last.is_some_and(|s| s.events.contains(&e.id));
        f.insert(format!("event.{}", e.id), b(present));
    }
}

/// Consecutive most-recent reviews at which some target that was in caseness
/// at baseline is still in caseness without reliable improvement, counted
/// only once the not-on-track session threshold has passed.
fn not_on_track_run(k: &Knowledge, case: &Case) -> usize {
    let mut points: Vec<&BTreeMap<String, MeasureSnapshot>> =
        case.history.iter().map(|s| &s.measures).collect();
    points.push(&case.measures);
    let threshold = k.settings.not_on_track_after_sessions as usize;
    let mut run = 0;
    for (j, point) in points.iter().enumerate().rev() {
        if j < threshold {
            break;
        }
        let off = point.iter().any(|(id, m)| {
            let (Some(inst), Some(base)) = (
                k.instruments.get(id),
                case.history.iter().find_map(|s| s.measures.get(id)),
            ) else {
                return false;
            };
            base.caseness && m.caseness && base.total - m.total < inst.reliable_change
        });
        if !off {
            break;
        }
        run += 1;
    }
    run
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Candidate {
    score: f64,
    order: f64,
    /// (pathway rank, step index): position in the default module order.
    position: (usize, usize),
    phase: Option<Phase>,
    chain: Vec<WhyStep>,
}

struct Ctx<'a> {
    k: &'a Knowledge,
    f: Features,
    preferred: BTreeSet<String>,
    avoided: BTreeSet<String>,
}

impl Ctx<'_> {
    fn evidence(&self, keys: &[String]) -> Vec<EvidenceRef> {
        keys.iter()
            .filter_map(|key| self.k.evidence.get(key))
            .map(|e| EvidenceRef {
                key: e.key.clone(),
                level: e.level,
                verified: e.verified,
            })
            .collect()
    }
    fn fires(&self, r: &Rule) -> Option<Vec<String>> {
        let mut trace = Vec::new();
        self.k
            .eval_trace(&r.when, &self.f, &mut trace)
            .then_some(trace)
    }
    fn step(&self, r: &Rule, trace: Vec<String>) -> WhyStep {
        WhyStep {
            features: trace,
            rule: r.id.clone(),
            rule_type: r.rule_type.as_str().into(),
            explanation: render(&r.explanation, &self.f),
            evidence: self.evidence(&r.evidence),
        }
    }
    fn resolve(&self, t: &Target) -> Vec<String> {
        let prefs = match t.from_preferences.as_deref() {
            Some("avoided") => &self.avoided,
            _ => &self.preferred,
        };
        self.k.resolve_target(t, prefs)
    }
    fn alert(&self, r: &Rule, a: &AlertSpec) -> Alert {
        Alert {
            level: a.level.clone(),
            rule: r.id.clone(),
            text: render(&a.text, &self.f),
        }
    }
}

/// Normalise preference entries (school ids, technique codes or ids) to
/// school ids and technique codes.
fn preference_set(k: &Knowledge, xs: &[String]) -> BTreeSet<String> {
    xs.iter()
        .map(|x| {
            k.technique(x)
                .map(|t| t.code.clone())
                .unwrap_or_else(|| x.clone())
        })
        .collect()
}

/// Generate a plan (version 1). The formulation should have been validated.
pub fn generate(k: &Knowledge, case: &Case) -> Plan {
    let f0 = &case.formulation;
    let mut ctx = Ctx {
        k,
        f: build_features(k, case),
        preferred: preference_set(k, &f0.preferences.prefer),
        avoided: preference_set(k, &f0.preferences.avoid),
    };
    let mut fired: Vec<String> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();

    // 0. Style pass: the highest-priority rule that sets a field wins.
    let mut style: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
    let mut intensity = 0usize;
    let mut intensity_why: Vec<String> =
        vec!["Starting point: low intensity (least intrusive option first).".into()];
    for r in k
        .rules
        .iter()
        .filter(|r| r.rule_type == RuleType::Selection)
    {
        let Some(s) = &r.effect.set_style else {
            continue;
        };
        if ctx.fires(r).is_none() {
            continue;
        }
        for (field, value) in [
            ("directiveness", &s.directiveness),
            ("focus", &s.focus),
            ("arousal_target", &s.arousal_target),
            ("strategy", &s.strategy),
        ] {
            if let Some(v) = value {
                style.entry(field).or_insert_with(|| {
                    (
                        v.clone(),
                        format!("{field} {v}: {}", render(&r.explanation, &ctx.f)),
                    )
                });
            }
        }
    }
    let style_value = |field: &str, default: &str| {
        style
            .get(field)
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| default.to_string())
    };
    let directiveness = style_value("directiveness", "moderate");
    let focus = style_value("focus", "balanced");
    let arousal = style_value("arousal_target", "hold");
    let strategy = style_value("strategy", "balanced");
    ctx.f.insert(
        "style.directiveness".into(),
        FeatureValue::ordinal(&DIRECTIVENESS, &directiveness),
    );
    ctx.f
        .insert("style.focus".into(), FeatureValue::Text(focus.clone()));
    ctx.f.insert(
        "style.arousal_target".into(),
        FeatureValue::Text(arousal.clone()),
    );
    ctx.f.insert(
        "style.strategy".into(),
        FeatureValue::Text(strategy.clone()),
    );
    debug_assert!(FOCUS.contains(&focus.as_str()) && AROUSAL.contains(&arousal.as_str()));
    debug_assert!(STRATEGY.contains(&strategy.as_str()));
    for r in &k.rules {
        let Some(level) = &r.effect.intensity_at_least else {
            continue;
        };
        if !matches!(r.rule_type, RuleType::SafetyOverride | RuleType::Selection) {
            continue;
        }
        if ctx.fires(r).is_some() {
            let rank = INTENSITY_SCALE.iter().position(|s| s == level).unwrap_or(0);
            if rank >= intensity {
                intensity = rank;
            }
            intensity_why.push(format!(
                "At least {level} ({}): {}",
                r.id,
                render(&r.explanation, &ctx.f)
            ));
        }
    }
    let care_intensity = INTENSITY_SCALE
        .get(intensity)
        .copied()
        .unwrap_or("low")
        .to_string();
    ctx.f.insert(
        "care.intensity".into(),
        FeatureValue::ordinal(&INTENSITY_SCALE, &care_intensity),
    );

    // Candidates from the pathways: the primary first, then the others.
    let mut cands: BTreeMap<String, Candidate> = BTreeMap::new();
    let active_pathways: Vec<&crate::knowledge::Pathway> = f0
        .presenting_problems
        .iter()
        .filter_map(|p| k.pathways.values().find(|pw| &pw.problem == p))
        .collect();
    for (rank, pw) in active_pathways.iter().enumerate() {
        let base = if rank == 0 {
            k.settings.primary_weight
        } else {
            k.settings.secondary_weight
        };
        for (i, s) in pw.steps.iter().enumerate() {
            let w = if s.optional { base - 4.0 } else { base };
            let c = cands.entry(s.code.clone()).or_default();
            if c.chain.is_empty() || w > c.score {
                if c.chain.is_empty() {
                    c.position = (rank, i);
                    c.phase = s.phase.as_deref().and_then(Phase::parse);
                }
                c.score = c.score.max(w);
            }
            c.chain.push(WhyStep {
                features: vec![if rank == 0 {
                    k.feature_label(&format!("primary.{}", pw.problem))
                } else {
                    k.feature_label(&format!("problem.{}", pw.problem))
                }],
                rule: format!("pathway:{}#{}", pw.id, i + 1),
                rule_type: "pathway".into(),
                explanation: format!(
                    "{} pathway, step {}{}: {}",
                    pw.name,
                    i + 1,
                    if s.optional { " (optional)" } else { "" },
                    s.note
                ),
                evidence: ctx.evidence(&pw.evidence),
            });
        }
    }

    // 1–3. Vetoes.
    let mut forced_phase: Option<(Phase, String)> = None;
    let mut halted = false;
    let mut required: BTreeSet<String> = BTreeSet::new();
    let mut excluded: BTreeMap<String, Exclusion> = BTreeMap::new();
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let exclude = |excluded: &mut BTreeMap<String, Exclusion>,
                   required: &BTreeSet<String>,
                   code: &str,
                   r: &Rule,
                   reason: String| {
        if required.contains(code) || excluded.contains_key(code) {
            return;
        }
        if let Some(t) = k.techniques.get(code) {
            excluded.insert(
                code.to_string(),
                Exclusion {
                    id: t.id.clone(),
                    code: code.to_string(),
                    name: t.name.clone(),
                    rule: r.id.clone(),
                    rule_type: r.rule_type.as_str().into(),
                    reason,
                },
            );
        }
    };
    for r in k
        .rules
        .iter()
        .filter(|r| r.rule_type == RuleType::SafetyOverride)
    {
        let Some(trace) = ctx.fires(r) else { continue };
        fired.push(r.id.clone());
        let e = &r.effect;
        if let Some(p) = e.set_phase.as_deref().and_then(Phase::parse) {
            if forced_phase.as_ref().is_none_or(|(q, _)| p < *q) {
                forced_phase = Some((
                    p,
                    format!(
                        "{} ({}): {}",
                        p.as_str(),
                        r.id,
                        render(&r.explanation, &ctx.f)
                    ),
                ));
            }
        }
        halted |= e.halt;
        if let Some(a) = &e.alert {
            alerts.push(ctx.alert(r, a));
        }
        if let Some(t) = &e.require {
            for code in ctx.resolve(t) {
                required.insert(code.clone());
                let c = cands.entry(code).or_default();
                c.phase = Some(Phase::P0);
                c.chain.insert(0, ctx.step(r, trace.clone()));
            }
        }
        if let Some(t) = &e.exclude {
            for code in ctx.resolve(t) {
                exclude(
                    &mut excluded,
                    &required,
                    &code,
                    r,
                    render(&r.explanation, &ctx.f),
                );
            }
        }
    }
    for r in k
        .rules
        .iter()
        .filter(|r| r.rule_type == RuleType::Contraindication)
    {
        if ctx.fires(r).is_none() {
            continue;
        }
        fired.push(r.id.clone());
        if let Some(t) = &r.effect.exclude {
            for code in ctx.resolve(t) {
                if required.contains(&code) {
                    alerts.push(Alert {
                        level: "amber".into(),
                        rule: r.id.clone(),
                        text: format!("{code} is required for safety although {} applies; deliver it with the adaptation.", r.id),
                    });
                }
                exclude(
                    &mut excluded,
                    &required,
                    &code,
                    r,
                    render(&r.explanation, &ctx.f),
                );
            }
        }
        if let Some(a) = &r.effect.alert {
            alerts.push(ctx.alert(r, a));
        }
    }
    for r in k
        .rules
        .iter()
        .filter(|r| r.rule_type == RuleType::PhaseGate)
    {
        if ctx.fires(r).is_none() {
            continue;
        }
        let Some(gate_id) = &r.effect.gate else {
            continue;
        };
        let Some(gate) = k.gates.get(gate_id) else {
            continue;
        };
        fired.push(r.id.clone());
        let failed = k.failed_gate_conditions(gate_id, &ctx.f);
        let blocking: Vec<&str> = failed
            .iter()
            .filter(|c| c.blocking)
            .map(|c| c.text.as_str())
            .collect();
        let soft: Vec<String> = failed
            .iter()
            .filter(|c| !c.blocking)
            .map(|c| c.text.clone())
            .collect();
        for t in k.techniques.values().filter(|t| t.gates.contains(gate_id)) {
            if !blocking.is_empty() {
                exclude(
                    &mut excluded,
                    &required,
                    &t.code,
                    r,
                    format!("{} not met: {}.", gate.name, blocking.join("; ")),
                );
            } else if !soft.is_empty() {
                pending
                    .entry(t.code.clone())
                    .or_default()
                    .extend(soft.iter().cloned());
            }
        }
    }

    // 4–8. Interference, selection, sequencing, preference.
    let active_problem = |r: &Rule| {
        r.pathway
            .as_ref()
            .is_none_or(|p| active_pathways.iter().any(|pw| &pw.id == p))
    };
    let relevant = |code: &str| {
        k.techniques.get(code).is_some_and(|t| {
            t.targets
                .iter()
                .any(|x| x == "all" || f0.presenting_problems.contains(x))
        })
    };
    for r in &k.rules {
        let kind = r.rule_type;
        if matches!(
            kind,
            RuleType::SafetyOverride
                | RuleType::Contraindication
                | RuleType::PhaseGate
                | RuleType::Adaptation
        ) {
            continue;
        }
        if kind == RuleType::Interference && !active_problem(r) {
            continue;
        }
        let Some(trace) = ctx.fires(r) else { continue };
        fired.push(r.id.clone());
        let e = &r.effect;
        if let Some(t) = &e.insert {
            for code in ctx.resolve(t) {
                let c = cands.entry(code).or_default();
                c.score = c.score.max(k.settings.insert_weight);
                c.order -= 1.0;
                c.chain.push(ctx.step(r, trace.clone()));
            }
        }
        if let Some(w) = &e.boost {
            for code in ctx.resolve(&w.target) {
                // A boost re-weights; it only creates a new candidate when the
                // technique targets one of the presenting problems, or when the
                // rule names it explicitly with a weight that alone reaches the
                // inclusion threshold (a deliberate addition, e.g. relational
                // work in a psychodynamic home).
                let deliberate =
                    w.target.codes.contains(&code) && w.weight >= k.settings.include_threshold;
                if !cands.contains_key(&code) && !relevant(&code) && !deliberate {
                    continue;
                }
                let c = cands.entry(code).or_default();
                c.score += w.weight;
                c.chain.push(ctx.step(r, trace.clone()));
            }
        }
        if let Some(w) = &e.penalize {
            for code in ctx.resolve(&w.target) {
                if let Some(c) = cands.get_mut(&code) {
                    c.score -= w.weight;
                }
            }
        }
        if let Some(w) = &e.order {
            for code in ctx.resolve(&w.target) {
                if let Some(c) = cands.get_mut(&code) {
                    c.order += w.weight;
                }
            }
        }
        if let Some(a) = &e.alert {
            alerts.push(ctx.alert(r, a));
        }
    }

    // Phase.
    let (phase, phase_why) = match &forced_phase {
        Some((p, why)) => (*p, vec![format!("Returned to {}: {why}", p.as_str())]),
        None => phase_from_gates(k, &ctx.f),
    };
    let phase = if halted { Phase::P0 } else { phase };

    // Items.
    let home = f0.integration.home_school.clone();
    let assimilative = f0.integration.model == "assimilative";
    let mut items: Vec<(f64, (usize, usize), PlanItem)> = Vec::new();
    for (code, c) in cands {
        if excluded.contains_key(&code) {
            continue;
        }
        let is_required = required.contains(&code);
        if !is_required && c.score < k.settings.include_threshold {
            continue;
        }
        let Some(t) = k.techniques.get(&code) else {
            continue;
        };
        let item_phase = if is_required {
            Phase::P0
        } else {
            c.phase
                .filter(|p| t.phases.iter().any(|x| x == p.as_str()))
                .unwrap_or_else(|| t.first_phase())
        };
        let gate_pending = pending.get(&code).cloned().unwrap_or_default();
        let status = if halted && item_phase > Phase::P0 {
            ItemStatus::Paused
        } else if !gate_pending.is_empty() {
            ItemStatus::PendingGate
        } else if item_phase <= phase {
            ItemStatus::Active
        } else {
            ItemStatus::Scheduled
        };
        let evidence: Vec<EvidenceRef> = t
            .evidence
            .iter()
            .map(|e| EvidenceRef {
                key: e.key.clone(),
                level: e.level,
                verified: e.verified && k.evidence.get(&e.key).is_some_and(|x| x.verified),
            })
            .collect();
        let cautions = t
            .cautions
            .iter()
            .filter(|cau| cau.flag.as_ref().is_none_or(|fl| f0.flags.contains(fl)))
            .map(|cau| ActiveCaution {
                flag: cau.flag.clone(),
                text: cau.text.clone(),
                adaptation: cau.adaptation.clone(),
            })
            .collect();
        let why = Why {
            summary: summarise(t, &c.chain, &evidence),
            chain: c.chain,
            mechanism: t.mechanism.clone(),
        };
        let imported = assimilative
            && home.as_ref().is_some_and(|h| {
                !t.schools.iter().any(|s| s == h) && !t.schools.iter().any(|s| s == "common")
            });
        items.push((
            c.order,
            c.position,
            PlanItem {
                id: t.id.clone(),
                code: code.clone(),
                name: t.name.clone(),
                school: t.main_school().to_string(),
                schools: t.schools.clone(),
                imported,
                phase: item_phase,
                status,
                dimensions: t.dimensions.clone(),
                score: c.score,
                why,
                evidence,
                homework: t.homework.clone(),
                cautions,
                pending: gate_pending,
                clinician: None,
            },
        ));
    }
    items.sort_by(|a, b| {
        a.2.phase
            .cmp(&b.2.phase)
            .then(a.0.total_cmp(&b.0))
            .then(a.1.cmp(&b.1))
            .then(b.2.score.total_cmp(&a.2.score))
            .then(a.2.code.cmp(&b.2.code))
    });
    let items: Vec<PlanItem> = items.into_iter().map(|(_, _, i)| i).collect();

    // Every exclusion is shown: a clinician must see what was ruled out and why.
    let excluded: Vec<Exclusion> = excluded.into_values().collect();

    let mut style_why: Vec<String> = style.values().map(|(_, w)| w.clone()).collect();
    if style_why.is_empty() {
        style_why.push(
            "No style dimensions recorded: moderate directiveness and a balanced focus by default."
                .into(),
        );
    }
    let integration_effect: Vec<String> = k
        .rules
        .iter()
        .filter(|r| r.id.starts_with("INTG-") && fired.contains(&r.id))
        .map(|r| render(&r.explanation, &ctx.f))
        .collect();
    let model_desc = k
        .vocabulary
        .integration_models
        .iter()
        .find(|m| m.id == f0.integration.model)
        .map(|m| m.description.clone())
        .unwrap_or_default();

    Plan {
        version: 1,
        phase,
        phase_why,
        halted,
        care_intensity,
        care_intensity_why: intensity_why,
        style: Style {
            directiveness,
            focus,
            arousal_target: arousal,
            stage_of_change: f0.style.stage_of_change.map(|s| s.as_str().to_string()),
            strategy,
            cultural_adaptations: f0.cultural_notes.clone(),
            why: style_why,
        },
        integration: Integration {
            model: f0.integration.model.clone(),
            home_school: f0.integration.home_school.clone(),
            description: model_desc,
            effect: integration_effect,
        },
        items,
        excluded,
        alerts,
        fired_rules: fired,
    }
}

/// Walk the phase entry gates in order; stop at the first that fails.
fn phase_from_gates(k: &Knowledge, f: &Features) -> (Phase, Vec<String>) {
    let mut phase = Phase::P0;
    let mut why = Vec::new();
    for def in &k.phases {
        let Some(p) = Phase::parse(&def.id) else {
            continue;
        };
        let Some(gate_id) = &def.entry_gate else {
            continue;
        };
        let failed = k.failed_gate_conditions(gate_id, f);
        let gate_name = k
            .gates
            .get(gate_id)
            .map(|g| g.name.as_str())
            .unwrap_or(gate_id);
        if failed.is_empty() {
            phase = p;
            why.push(format!("{} entry gate met ({gate_name}).", p.as_str()));
        } else {
            let texts: Vec<&str> = failed.iter().map(|c| c.text.as_str()).collect();
            why.push(format!(
                "Not yet {} ({}): {}.",
                p.as_str(),
                gate_name,
                texts.join("; ")
            ));
            break;
        }
    }
    why.insert(0, format!("Current phase {}.", phase.as_str()));
    (phase, why)
}

fn summarise(
    t: &crate::knowledge::Technique,
    chain: &[WhyStep],
    evidence: &[EvidenceRef],
) -> String {
    let reasons: Vec<String> = chain
        .iter()
        .map(|s| {
            let facts = if s.features.is_empty() {
                String::new()
            } else {
                format!("{} → ", s.features.join(", "))
            };
            format!("{facts}{}: {}", s.rule, s.explanation)
        })
        .collect();
    let ev: Vec<String> = evidence
        .iter()
        .map(|e| {
            format!(
                "{} ({}{})",
                e.key,
                e.level.as_str(),
                if e.verified { "" } else { ", unverified" }
            )
        })
        .collect();
    format!(
        "{} is in the plan because {} How it works: {} Evidence: {}.",
        t.name,
        reasons.join(" Also, "),
        t.mechanism,
        ev.join(", ")
    )
}

// ---------------------------------------------------------------------------
// Versions, clinician decisions, diff
// ---------------------------------------------------------------------------

/// A clinician decision about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    Accept {
        code: String,
    },
    /// Change delivery details (e.g. dose, homework), recorded as text.
    Edit {
        code: String,
        change: String,
    },
    /// Take an item out of the plan.
    Remove {
        code: String,
    },
    /// Add a technique the engine did not select — including one it excluded
    /// (e.g. overriding the trauma gate), which the clinician may do with a reason.
    Add {
        code: String,
        phase: Phase,
    },
}

impl Decision {
    pub fn code(&self) -> &str {
        match self {
            Decision::Accept { code }
            | Decision::Edit { code, .. }
            | Decision::Remove { code }
            | Decision::Add { code, .. } => code,
        }
    }
}

/// Problems with a clinician decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("reason: a reason is required for every clinician decision")]
    MissingReason,
    #[error("code: '{0}' is not a technique")]
    UnknownTechnique(String),
    #[error("code: {0} is not in the plan")]
    NotInPlan(String),
    #[error("code: {0} is already in the plan")]
    AlreadyInPlan(String),
}

/// Apply one clinician decision, producing the next plan version. The
/// decision and its reason are kept on the item.
pub fn apply_decision(
    k: &Knowledge,
    plan: &Plan,
    decision: &Decision,
    reason: &str,
) -> Result<Plan, PlanError> {
    if reason.trim().is_empty() {
        return Err(PlanError::MissingReason);
    }
    let code = k
        .technique(decision.code())
        .map(|t| t.code.clone())
        .ok_or_else(|| PlanError::UnknownTechnique(crate::formulation::clip(decision.code())))?;
    let mut next = plan.clone();
    next.version = plan.version + 1;
    let note = |action: &str, edit: Option<String>| ClinicianNote {
        action: action.into(),
        reason: reason.trim().into(),
        edit,
    };
    match decision {
        Decision::Accept { .. } | Decision::Edit { .. } | Decision::Remove { .. } => {
            let item = next
                .items
                .iter_mut()
                .find(|i| i.code == code)
                .ok_or_else(|| PlanError::NotInPlan(code.clone()))?;
            match decision {
                Decision::Accept { .. } => item.clinician = Some(note("accept", None)),
                Decision::Edit { change, .. } => {
                    item.clinician = Some(note("edit", Some(change.clone())))
                }
                _ => {
                    item.status = ItemStatus::Removed;
                    item.clinician = Some(note("remove", None));
                }
            }
        }
        Decision::Add { phase, .. } => {
            if next.has(&code) {
                return Err(PlanError::AlreadyInPlan(code));
            }
            let t = k
                .techniques
                .get(&code)
                .ok_or_else(|| PlanError::UnknownTechnique(code.clone()))?;
            let overridden = next.exclusion(&code).map(|e| e.rule.clone());
            next.excluded.retain(|e| e.code != code);
            if let Some(rule) = &overridden {
                next.alerts.push(Alert {
                    level: "amber".into(),
                    rule: "clinician-override".into(),
                    text: format!(
                        "{code} added by the clinician over rule {rule}: {}",
                        reason.trim()
                    ),
                });
            }
            next.items.retain(|i| i.code != code);
            next.items.push(PlanItem {
                id: t.id.clone(),
                code: code.clone(),
                name: t.name.clone(),
                school: t.main_school().into(),
                schools: t.schools.clone(),
                imported: false,
                phase: *phase,
                status: if *phase <= next.phase {
                    ItemStatus::Active
                } else {
                    ItemStatus::Scheduled
                },
                dimensions: t.dimensions.clone(),
                score: 0.0,
                why: Why {
                    summary: format!("Added by the clinician: {}", reason.trim()),
                    chain: Vec::new(),
                    mechanism: t.mechanism.clone(),
                },
                evidence: t
                    .evidence
                    .iter()
                    .map(|e| EvidenceRef {
                        key: e.key.clone(),
                        level: e.level,
                        verified: e.verified,
                    })
                    .collect(),
                homework: t.homework.clone(),
                cautions: Vec::new(),
                pending: Vec::new(),
                clinician: Some(note(
                    if overridden.is_some() {
                        "override"
                    } else {
                        "add"
                    },
                    None,
                )),
            });
            next.items.sort_by_key(|i| i.phase);
        }
    }
    Ok(next)
}

/// What changed between two plan versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDiff {
    pub from_version: u32,
    pub to_version: u32,
    pub phase: Option<(Phase, Phase)>,
    pub care_intensity: Option<(String, String)>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub status_changed: Vec<(String, ItemStatus, ItemStatus)>,
    pub phase_changed: Vec<(String, Phase, Phase)>,
    pub newly_excluded: Vec<String>,
    pub no_longer_excluded: Vec<String>,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        self.phase.is_none()
            && self.care_intensity.is_none()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.status_changed.is_empty()
            && self.phase_changed.is_empty()
            && self.newly_excluded.is_empty()
            && self.no_longer_excluded.is_empty()
    }
}

/// Compare two plans item by item.
pub fn diff(a: &Plan, b: &Plan) -> PlanDiff {
    let ai: BTreeMap<&str, &PlanItem> = a.items.iter().map(|i| (i.code.as_str(), i)).collect();
    let bi: BTreeMap<&str, &PlanItem> = b.items.iter().map(|i| (i.code.as_str(), i)).collect();
    let mut d = PlanDiff {
        from_version: a.version,
        to_version: b.version,
        ..PlanDiff::default()
    };
    if a.phase != b.phase {
        d.phase = Some((a.phase, b.phase));
    }
    if a.care_intensity != b.care_intensity {
        d.care_intensity = Some((a.care_intensity.clone(), b.care_intensity.clone()));
    }
    for (code, item) in &bi {
        match ai.get(code) {
            None => d.added.push(code.to_string()),
            Some(old) => {
                if old.status != item.status {
                    d.status_changed
                        .push((code.to_string(), old.status, item.status));
                }
                if old.phase != item.phase {
                    d.phase_changed
                        .push((code.to_string(), old.phase, item.phase));
                }
            }
        }
    }
    for code in ai.keys() {
        if !bi.contains_key(code) {
            d.removed.push(code.to_string());
        }
    }
    let ae: BTreeSet<&str> = a.excluded.iter().map(|e| e.code.as_str()).collect();
    let be: BTreeSet<&str> = b.excluded.iter().map(|e| e.code.as_str()).collect();
    d.newly_excluded = be.difference(&ae).map(|s| s.to_string()).collect();
    d.no_longer_excluded = ae.difference(&be).map(|s| s.to_string()).collect();
    d
}

/// Risk rose: send the plan back to P0. Everything beyond P0 is paused,
/// not deleted, and comes back when the plan is regenerated at lower risk.
pub fn pause_for_risk(plan: &Plan, why: &str) -> Plan {
    let mut next = plan.clone();
    next.version = plan.version + 1;
    next.phase = Phase::P0;
    next.phase_why = vec![format!("Returned to P0: {why}")];
    for item in &mut next.items {
        if item.phase > Phase::P0 && item.status != ItemStatus::Removed {
            item.status = ItemStatus::Paused;
        }
    }
    next
}

pub use crate::plan_input::{plan_command, PlanInputError};

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(inst: &str, total: f64, caseness: bool) -> MeasureSnapshot {
        MeasureSnapshot {
            instrument: inst.into(),
            total,
            caseness,
            band: None,
            critical: if inst == "phq9" { vec![(9, 0)] } else { vec![] },
        }
    }

    fn session(n: u32, phq: f64) -> SessionRecord {
        SessionRecord {
            session: n,
            measures: BTreeMap::from([("phq9".to_string(), snap("phq9", phq, phq >= 10.0))]),
            techniques: vec!["T03".into()],
            alliance: None,
            homework_completed: None,
            events: vec![],
            risk: None,
        }
    }

    fn case(history: Vec<SessionRecord>, phq_now: f64) -> Case {
        Case {
            formulation: Formulation::new(40, vec!["depression".into()]),
            measures: BTreeMap::from([(
                "phq9".to_string(),
                snap("phq9", phq_now, phq_now >= 10.0),
            )]),
            history,
        }
    }

    #[test]
    fn absent_measures_give_no_measure_features() {
        let k = Knowledge::embedded().unwrap();
        let mut c = case(vec![], 0.0);
        c.measures.clear();
        let f = build_features(&k, &c);
        assert!(!f
            .keys()
            .any(|x| x.starts_with("measure.") || x.starts_with("change.phq9")));
        assert_eq!(f.get("history.sessions"), Some(&FeatureValue::Number(0.0)));
    }

    #[test]
    fn not_on_track_counts_consecutive_reviews_from_session_four() {
        let k = Knowledge::embedded().unwrap();
        // Baseline 18, flat: reviews at index 4 and 5 are off track.
        let flat: Vec<_> = (1..=5).map(|n| session(n, 18.0)).collect();
        assert_eq!(not_on_track_run(&k, &case(flat.clone(), 17.0)), 2);
        // Reliable improvement today (18 → 11) ends the run.
        assert_eq!(not_on_track_run(&k, &case(flat, 11.0)), 0);
        // Too early to judge.
        let early: Vec<_> = (1..=2).map(|n| session(n, 18.0)).collect();
        assert_eq!(not_on_track_run(&k, &case(early, 18.0)), 0);
    }

    #[test]
    fn reliable_change_uses_the_instrument_threshold() {
        let k = Knowledge::embedded().unwrap();
        let f = build_features(&k, &case(vec![session(1, 18.0)], 12.0));
        assert_eq!(
            f.get("change.phq9.reliable_improvement"),
            Some(&FeatureValue::Bool(true))
        );
        let f = build_features(&k, &case(vec![session(1, 18.0)], 13.0));
        assert_eq!(
            f.get("change.phq9.reliable_improvement"),
            Some(&FeatureValue::Bool(false))
        );
        let f = build_features(&k, &case(vec![session(1, 8.0)], 14.0));
        assert_eq!(
            f.get("change.any_reliable_deterioration"),
            Some(&FeatureValue::Bool(true))
        );
    }

    #[test]
    fn pause_for_risk_keeps_every_item() {
        let k = Knowledge::embedded().unwrap();
        let plan = generate(&k, &case(vec![], 12.0));
        let paused = pause_for_risk(&plan, "test");
        assert_eq!(paused.items.len(), plan.items.len());
        assert_eq!(paused.phase, Phase::P0);
        assert!(paused
            .items
            .iter()
            .all(|i| i.phase == Phase::P0 || i.status == ItemStatus::Paused));
    }
}
