//! The treatment-selection knowledge base as typed, validated data.
//!
//! Everything the plan engine knows about techniques, phases, pathways,
//! rules, evidence and the controlled vocabulary comes from TOML files under
//! `content/` (see `docs/plan-engine.md`). [`Knowledge::load`] takes
//! `(path, text)` pairs, so a site can supply its own files; [`Knowledge::embedded`]
//! uses the built-in set. Loading validates the whole base: every reference
//! resolves, every technique is reachable, every predicate names a known
//! feature, and each rule type only uses the effects its place in the veto
//! order allows (so a preference can never re-add what safety removed).

use crate::content::{embedded_under, ContentFile};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What can go wrong while loading or validating the knowledge base.
/// Each message names the file and the item at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: cannot parse TOML: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: unexpected file (expected techniques/, pathways/, rules/, phases.toml, evidence.toml or vocabulary.toml)")]
    UnknownFile { path: String },
    #[error("{0}: required knowledge file is missing")]
    Missing(String),
    #[error("{item}: duplicate {what} '{value}'")]
    Duplicate {
        item: String,
        what: &'static str,
        value: String,
    },
    #[error("{item}: unknown {what} '{value}'")]
    Unresolved {
        item: String,
        what: &'static str,
        value: String,
    },
    #[error("{item}: {problem}")]
    Invalid { item: String, problem: String },
    #[error("technique {code} ({id}) is not reachable from any pathway or rule")]
    Unreachable { code: String, id: String },
}

/// An evidence level as used in `treatment_selection.md` §0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EvidenceLevel {
    A,
    B,
    C,
    D,
    /// Engine heuristic derived from the literature.
    H,
}

impl EvidenceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceLevel::A => "A",
            EvidenceLevel::B => "B",
            EvidenceLevel::C => "C",
            EvidenceLevel::D => "D",
            EvidenceLevel::H => "H",
        }
    }
}

/// One citation in `evidence.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub key: String,
    pub citation: String,
    pub level: EvidenceLevel,
    /// `false` while a number or detail is marked VERIFY in the research notes.
    pub verified: bool,
    #[serde(default)]
    pub note: String,
}

/// A technique's claim resting on one citation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceEntry {
    pub key: String,
    pub level: EvidenceLevel,
    pub verified: bool,
    /// What the source shows, in our words.
    pub claim: String,
}

/// A hard contraindication: the flag excludes the technique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contraindication {
    pub flag: String,
    pub reason: String,
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// A soft caution: the technique stays, delivered with an adaptation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caution {
    /// When set, the caution is shown as active only if this flag is present.
    #[serde(default)]
    pub flag: Option<String>,
    pub text: String,
    pub adaptation: String,
}

/// One field of a homework worksheet that the client fills in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorksheetField {
    pub name: String,
    pub prompt: String,
    /// text | number | scale_0_10 | percent | time | yes_no
    pub kind: String,
}

/// The worksheet a client receives with a technique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeworkTemplate {
    /// diary | log | worksheet | plan | practice | handout | none
    pub kind: String,
    pub title: String,
    pub instructions: String,
    #[serde(default)]
    pub fields: Vec<WorksheetField>,
}

/// One technique of the library (§4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technique {
    pub id: String,
    pub code: String,
    pub name: String,
    pub schools: Vec<String>,
    pub dimensions: Vec<String>,
    /// Classes the rules talk about (exposure, trauma_processing, regulation…).
    pub classes: Vec<String>,
    pub targets: Vec<String>,
    pub mechanism: String,
    pub explanation: String,
    pub phases: Vec<String>,
    #[serde(default)]
    pub gates: Vec<String>,
    #[serde(default)]
    pub contraindications: Vec<Contraindication>,
    #[serde(default)]
    pub cautions: Vec<Caution>,
    pub dose: String,
    pub evidence: Vec<EvidenceEntry>,
    pub homework: HomeworkTemplate,
}

impl Technique {
    /// The first school listed is the one the plan shows.
    pub fn main_school(&self) -> &str {
        self.schools.first().map(String::as_str).unwrap_or("common")
    }
    /// The earliest phase this technique may be used in.
    pub fn first_phase(&self) -> Phase {
        self.phases
            .iter()
            .filter_map(|p| Phase::parse(p))
            .min()
            .unwrap_or(Phase::P1)
    }
}

/// The four phases of §3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    P0,
    P1,
    P2,
    P3,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::P0, Phase::P1, Phase::P2, Phase::P3];
    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "P0" => Some(Phase::P0),
            "P1" => Some(Phase::P1),
            "P2" => Some(Phase::P2),
            "P3" => Some(Phase::P3),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::P0 => "P0",
            Phase::P1 => "P1",
            Phase::P2 => "P2",
            Phase::P3 => "P3",
        }
    }
}

/// One condition of a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateCondition {
    /// Plain-words statement of what must hold.
    pub text: String,
    pub when: Predicate,
    /// A failed blocking condition excludes gated techniques; a failed
    /// non-blocking one leaves them in the plan marked "pending".
    pub blocking: bool,
}

/// A named readiness gate (e.g. the trauma-readiness gate of §3.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub conditions: Vec<GateCondition>,
}

/// A phase with its purpose and entry gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDef {
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub exit: String,
    /// Gate that must hold to *enter* this phase (none for P0).
    #[serde(default)]
    pub entry_gate: Option<String>,
}

/// One step of a pathway's default module order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwayStep {
    pub code: String,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub optional: bool,
    pub note: String,
}

/// A per-problem flowchart (MATCH/CETA style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pathway {
    pub id: String,
    pub problem: String,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub steps: Vec<PathwayStep>,
    /// Interference handlers; loaded as rules of type `interference` that
    /// apply only while this pathway is active.
    #[serde(default)]
    pub interference: Vec<Rule>,
}

/// The eight rule types of §7.2 in veto order: an earlier type can veto a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    SafetyOverride,
    Contraindication,
    PhaseGate,
    Interference,
    Selection,
    Sequencing,
    Adaptation,
    Preference,
}

impl RuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::SafetyOverride => "safety_override",
            RuleType::Contraindication => "contraindication",
            RuleType::PhaseGate => "phase_gate",
            RuleType::Interference => "interference",
            RuleType::Selection => "selection",
            RuleType::Sequencing => "sequencing",
            RuleType::Adaptation => "adaptation",
            RuleType::Preference => "preference",
        }
    }
}

/// A right-hand side value in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// `{ feature = "...", value = ... }`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub feature: String,
    pub value: Scalar,
}

/// The predicate language. Written in TOML as one-key tables, e.g.
/// `{ all = [ { is = "problem.panic" }, { not = { is = "flag.cardiac" } } ] }` or
/// `{ at_least = { feature = "risk.level", value = "high" } }`.
/// A comparison against a feature that is absent is false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Predicate {
    /// Constant.
    Always(bool),
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    /// A boolean feature is true.
    Is(String),
    /// The feature is present (has any value).
    Present(String),
    Equals(Comparison),
    /// Numeric `>=`, or ordinal rank `>=` for labelled scales (risk, reactance, stage).
    AtLeast(Comparison),
    /// Numeric `<=`, or ordinal rank `<=`.
    AtMost(Comparison),
    /// Every condition of the named gate holds.
    Gate(String),
}

/// Which techniques an effect acts on: explicit codes, technique classes,
/// schools, or the client's own preferences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub codes: Vec<String>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub schools: Vec<String>,
    /// `preferred` (schools or techniques the client asked for) or `avoided`.
    #[serde(default)]
    pub from_preferences: Option<String>,
}

impl Target {
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
            && self.classes.is_empty()
            && self.schools.is_empty()
            && self.from_preferences.is_none()
    }
}

/// A weighted re-scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    pub weight: f64,
    #[serde(flatten)]
    pub target: Target,
}

/// An alert raised for the clinician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// info | amber | orange | red
    pub level: String,
    pub text: String,
}

/// Style values a selection rule may set (§1.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleSet {
    #[serde(default)]
    pub directiveness: Option<String>,
    #[serde(default)]
    pub focus: Option<String>,
    #[serde(default)]
    pub arousal_target: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
}

/// An adaptation suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestSpec {
    pub text: String,
    #[serde(default)]
    pub adds: Vec<String>,
}

/// What a rule does when its predicate holds. Which fields a rule may use
/// depends on its type (see [`allowed_effects`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    #[serde(default)]
    pub set_phase: Option<String>,
    /// Stop planning beyond safety: only P0 work is offered.
    #[serde(default)]
    pub halt: bool,
    #[serde(default)]
    pub require: Option<Target>,
    #[serde(default)]
    pub exclude: Option<Target>,
    /// Apply the named gate to techniques that carry it.
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub insert: Option<Target>,
    #[serde(default)]
    pub boost: Option<Weighted>,
    #[serde(default)]
    pub penalize: Option<Weighted>,
    /// Move targets earlier (negative) or later (positive) within their phase.
    #[serde(default)]
    pub order: Option<Weighted>,
    #[serde(default)]
    pub set_style: Option<StyleSet>,
    /// Raise care intensity to at least this level (low | high | specialist).
    #[serde(default)]
    pub intensity_at_least: Option<String>,
    #[serde(default)]
    pub alert: Option<AlertSpec>,
    #[serde(default)]
    pub suggest: Option<SuggestSpec>,
    /// Run the clinical-support checklist (A12).
    #[serde(default)]
    pub checklist: bool,
}

/// One typed, prioritised, evidence-linked rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    /// Higher runs first within a type.
    pub priority: i32,
    pub when: Predicate,
    pub effect: Effect,
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Plain words; `{feature.name}` placeholders are filled from the case.
    pub explanation: String,
    /// Set by the loader for pathway interference handlers.
    #[serde(default)]
    pub pathway: Option<String>,
}

/// Per-instrument numbers used by rules and adaptation (reliable change etc.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentThreshold {
    pub id: String,
    /// anxiety | depression | trauma | sleep | alcohol
    pub domain: String,
    /// Minimum change in points counted as reliable.
    pub reliable_change: f64,
    /// Items carried as features `measure.<id>.item<n>`.
    #[serde(default)]
    pub critical_items: Vec<u16>,
    pub verified: bool,
    pub source: String,
}

/// Engine constants that are data, not code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Candidates with a score below this are not put in the plan.
    pub include_threshold: f64,
    /// Score of each step of the primary pathway.
    pub primary_weight: f64,
    /// Score of each step of another presenting problem's pathway.
    pub secondary_weight: f64,
    /// Score of a technique inserted by an interference handler.
    pub insert_weight: f64,
    /// Number of sessions after which a measure that is still in caseness
    /// without reliable improvement counts as "not on track".
    pub not_on_track_after_sessions: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabEntry {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
}

/// The controlled vocabulary (`vocabulary.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    pub problems: Vec<VocabEntry>,
    pub flags: Vec<VocabEntry>,
    pub schools: Vec<VocabEntry>,
    pub dimensions: Vec<VocabEntry>,
    pub classes: Vec<VocabEntry>,
    pub session_events: Vec<VocabEntry>,
    pub integration_models: Vec<VocabEntry>,
}

/// The kind of value a feature takes; used to validate predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureKind {
    Bool,
    Number,
    /// Free text from a closed list.
    Text(Vec<String>),
    /// Ordered labels; comparisons use the rank.
    Ordinal(Vec<String>),
}

/// The scales of the ordinal features.
pub const RISK_SCALE: [&str; 5] = ["none", "low", "moderate", "high", "imminent"];
pub const REACTANCE_SCALE: [&str; 3] = ["low", "moderate", "high"];
pub const STAGE_SCALE: [&str; 5] = [
    "precontemplation",
    "contemplation",
    "preparation",
    "action",
    "maintenance",
];
pub const INTENSITY_SCALE: [&str; 3] = ["low", "high", "specialist"];
pub const COPING: [&str; 3] = ["internalizing", "externalizing", "mixed"];
pub const DIRECTIVENESS: [&str; 3] = ["low", "moderate", "high"];
pub const FOCUS: [&str; 3] = ["symptom", "insight", "balanced"];
pub const AROUSAL: [&str; 3] = ["lower", "hold", "raise"];
pub const STRATEGY: [&str; 3] = ["mastery", "clarification", "balanced"];
pub const ALERT_LEVELS: [&str; 4] = ["info", "amber", "orange", "red"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TechniqueFile {
    technique: Vec<Technique>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesFile {
    phase: Vec<PhaseDef>,
    gate: Vec<Gate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceFile {
    evidence: Vec<Evidence>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    engine: EngineSettings,
    instrument: Vec<InstrumentThreshold>,
}

/// The whole validated knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct Knowledge {
    /// By code (T01…T39).
    pub techniques: BTreeMap<String, Technique>,
    pub phases: Vec<PhaseDef>,
    pub gates: BTreeMap<String, Gate>,
    /// By id.
    pub pathways: BTreeMap<String, Pathway>,
    /// All rules, including those generated from technique contraindications
    /// and pathway interference handlers, sorted by (type, -priority, id).
    pub rules: Vec<Rule>,
    pub evidence: BTreeMap<String, Evidence>,
    pub vocabulary: Vocabulary,
    pub instruments: BTreeMap<String, InstrumentThreshold>,
    pub settings: EngineSettings,
}

fn parse<T: for<'de> Deserialize<'de>>(file: &ContentFile) -> Result<T, KnowledgeError> {
    toml::from_str(&file.text).map_err(|e| KnowledgeError::Parse {
        path: file.path.clone(),
        message: e.to_string(),
    })
}

impl Knowledge {
    /// The knowledge base built into the binary.
    pub fn embedded() -> Result<Knowledge, KnowledgeError> {
        let mut files = Vec::new();
        for prefix in [
            "techniques/",
            "pathways/",
            "rules/",
            "phases.toml",
            "evidence.toml",
            "vocabulary.toml",
        ] {
            files.extend(embedded_under(prefix));
        }
        Knowledge::load(&files)
    }

    /// Build and validate from `(path, text)` pairs (paths relative to `content/`).
    pub fn load(files: &[ContentFile]) -> Result<Knowledge, KnowledgeError> {
        let mut techniques: Vec<Technique> = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut pathways: Vec<Pathway> = Vec::new();
        let mut phases: Option<PhasesFile> = None;
        let mut evidence: Option<EvidenceFile> = None;
        let mut vocabulary: Option<Vocabulary> = None;
        let mut thresholds: Option<ThresholdsFile> = None;
        for file in files {
            let p = file.path.as_str();
            if !p.ends_with(".toml") {
                continue;
            }
            if p.starts_with("techniques/") {
                techniques.extend(parse::<TechniqueFile>(file)?.technique);
            } else if p == "rules/thresholds.toml" {
                thresholds = Some(parse(file)?);
            } else if p.starts_with("rules/") {
                rules.extend(parse::<RuleFile>(file)?.rule);
            } else if p.starts_with("pathways/") {
                pathways.push(parse(file)?);
            } else if p == "phases.toml" {
                phases = Some(parse(file)?);
            } else if p == "evidence.toml" {
                evidence = Some(parse(file)?);
            } else if p == "vocabulary.toml" {
                vocabulary = Some(parse(file)?);
            } else {
                return Err(KnowledgeError::UnknownFile {
                    path: file.path.clone(),
                });
            }
        }
        let phases = phases.ok_or_else(|| KnowledgeError::Missing("phases.toml".into()))?;
        let evidence = evidence.ok_or_else(|| KnowledgeError::Missing("evidence.toml".into()))?;
        let vocabulary =
            vocabulary.ok_or_else(|| KnowledgeError::Missing("vocabulary.toml".into()))?;
        let thresholds =
            thresholds.ok_or_else(|| KnowledgeError::Missing("rules/thresholds.toml".into()))?;

        let mut ev = BTreeMap::new();
        for e in evidence.evidence {
            if ev.contains_key(&e.key) {
                return Err(dup("evidence.toml", "evidence key", &e.key));
            }
            ev.insert(e.key.clone(), e);
        }
        let mut tech = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for t in techniques {
            if !ids.insert(t.id.clone()) {
                return Err(dup(&t.code, "technique id", &t.id));
            }
            if tech.contains_key(&t.code) {
                return Err(dup(&t.id, "technique code", &t.code));
            }
            tech.insert(t.code.clone(), t);
        }
        // Technique contraindications become contraindication rules.
        for t in tech.values() {
            for c in &t.contraindications {
                rules.push(Rule {
                    id: format!("CI-{}-{}", t.code, c.flag),
                    rule_type: RuleType::Contraindication,
                    priority: 100,
                    when: Predicate::Is(format!("flag.{}", c.flag)),
                    effect: Effect {
                        exclude: Some(Target {
                            codes: vec![t.code.clone()],
                            ..Target::default()
                        }),
                        ..Effect::default()
                    },
                    evidence: c.evidence.clone(),
                    explanation: c.reason.clone(),
                    pathway: None,
                });
            }
        }
        let mut pw = BTreeMap::new();
        for mut p in pathways {
            for (i, r) in p.interference.iter_mut().enumerate() {
                if r.id.is_empty() {
                    r.id = format!("{}-interference-{}", p.id, i + 1);
                }
                r.pathway = Some(p.id.clone());
                rules.push(r.clone());
            }
            if pw.contains_key(&p.id) {
                return Err(dup("pathways/", "pathway id", &p.id));
            }
            pw.insert(p.id.clone(), p);
        }
        rules.sort_by(|a, b| {
            a.rule_type
                .cmp(&b.rule_type)
                .then(b.priority.cmp(&a.priority))
                .then(a.id.cmp(&b.id))
        });
        let mut gates = BTreeMap::new();
        for g in phases.gate {
            if gates.contains_key(&g.id) {
                return Err(dup("phases.toml", "gate id", &g.id));
            }
            gates.insert(g.id.clone(), g);
        }
        let mut instruments = BTreeMap::new();
        for i in thresholds.instrument {
            instruments.insert(i.id.clone(), i);
        }
        let k = Knowledge {
            techniques: tech,
            phases: phases.phase,
            gates,
            pathways: pw,
            rules,
            evidence: ev,
            vocabulary,
            instruments,
            settings: thresholds.engine,
        };
        k.validate()?;
        Ok(k)
    }

    /// Look a technique up by code (`T07`) or id (`interoceptive-exposure`).
    pub fn technique(&self, code_or_id: &str) -> Option<&Technique> {
        self.techniques
            .get(code_or_id)
            .or_else(|| self.techniques.values().find(|t| t.id == code_or_id))
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    pub fn is_problem(&self, id: &str) -> bool {
        self.vocabulary.problems.iter().any(|p| p.id == id)
    }

    pub fn is_flag(&self, id: &str) -> bool {
        self.vocabulary.flags.iter().any(|p| p.id == id)
    }

    pub fn is_school(&self, id: &str) -> bool {
        self.vocabulary.schools.iter().any(|p| p.id == id)
    }

    /// Techniques a target selects, in code order.
    pub fn resolve_target(&self, target: &Target, preferred: &BTreeSet<String>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for code in &target.codes {
            if self.techniques.contains_key(code) {
                out.insert(code.clone());
            }
        }
        for t in self.techniques.values() {
            if t.classes.iter().any(|c| target.classes.contains(c))
                || t.schools.iter().any(|s| target.schools.contains(s))
            {
                out.insert(t.code.clone());
            }
            if target.from_preferences.is_some()
                && (preferred.contains(&t.code) || t.schools.iter().any(|s| preferred.contains(s)))
            {
                out.insert(t.code.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Every feature a predicate may name, with its kind.
    pub fn feature_catalogue(&self) -> BTreeMap<String, FeatureKind> {
        let mut f = BTreeMap::new();
        let labels = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        f.insert("age".into(), FeatureKind::Number);
        for p in &self.vocabulary.problems {
            f.insert(format!("problem.{}", p.id), FeatureKind::Bool);
            f.insert(format!("primary.{}", p.id), FeatureKind::Bool);
        }
        f.insert("problem.count".into(), FeatureKind::Number);
        for p in &self.vocabulary.flags {
            f.insert(format!("flag.{}", p.id), FeatureKind::Bool);
        }
        f.insert(
            "risk.level".into(),
            FeatureKind::Ordinal(labels(&RISK_SCALE)),
        );
        f.insert("risk.days_since_self_harm".into(), FeatureKind::Number);
        f.insert("style.coping".into(), FeatureKind::Text(labels(&COPING)));
        f.insert(
            "style.reactance".into(),
            FeatureKind::Ordinal(labels(&REACTANCE_SCALE)),
        );
        f.insert(
            "style.stage".into(),
            FeatureKind::Ordinal(labels(&STAGE_SCALE)),
        );
        f.insert(
            "style.directiveness".into(),
            FeatureKind::Ordinal(labels(&DIRECTIVENESS)),
        );
        f.insert("style.focus".into(), FeatureKind::Text(labels(&FOCUS)));
        f.insert(
            "style.arousal_target".into(),
            FeatureKind::Text(labels(&AROUSAL)),
        );
        f.insert(
            "style.strategy".into(),
            FeatureKind::Text(labels(&STRATEGY)),
        );
        f.insert(
            "care.intensity".into(),
            FeatureKind::Ordinal(labels(&INTENSITY_SCALE)),
        );
        f.insert("impairment".into(), FeatureKind::Number);
        for d in &self.vocabulary.dimensions {
            f.insert(format!("dimension.{}", d.id), FeatureKind::Number);
        }
        f.insert("social_support.low".into(), FeatureKind::Bool);
        f.insert("readiness.regulation_skill".into(), FeatureKind::Bool);
        f.insert("readiness.prioritises_trauma".into(), FeatureKind::Bool);
        f.insert(
            "integration.model".into(),
            FeatureKind::Text(
                self.vocabulary
                    .integration_models
                    .iter()
                    .map(|m| m.id.clone())
                    .collect(),
            ),
        );
        f.insert(
            "integration.home_school".into(),
            FeatureKind::Text(
                self.vocabulary
                    .schools
                    .iter()
                    .map(|s| s.id.clone())
                    .collect(),
            ),
        );
        f.insert("preference.any".into(), FeatureKind::Bool);
        for inst in self.instruments.values() {
            let i = &inst.id;
            f.insert(format!("measure.{i}.total"), FeatureKind::Number);
            f.insert(format!("measure.{i}.caseness"), FeatureKind::Bool);
            for n in &inst.critical_items {
                f.insert(format!("measure.{i}.item{n}"), FeatureKind::Number);
            }
            f.insert(format!("change.{i}.delta"), FeatureKind::Number);
            f.insert(
                format!("change.{i}.reliable_improvement"),
                FeatureKind::Bool,
            );
            f.insert(
                format!("change.{i}.reliable_deterioration"),
                FeatureKind::Bool,
            );
            f.insert(format!("change.{i}.not_on_track"), FeatureKind::Bool);
        }
        for d in ["anxiety", "depression", "trauma", "sleep", "alcohol"] {
            f.insert(format!("domain.{d}.caseness"), FeatureKind::Bool);
            f.insert(
                format!("domain.{d}.reliable_improvement"),
                FeatureKind::Bool,
            );
            f.insert(
                format!("domain.{d}.early_large_improvement"),
                FeatureKind::Bool,
            );
        }
        f.insert(
            "change.any_reliable_deterioration".into(),
            FeatureKind::Bool,
        );
        f.insert("change.all_recovered".into(), FeatureKind::Bool);
        f.insert("history.sessions".into(), FeatureKind::Number);
        f.insert("history.not_on_track_reviews".into(), FeatureKind::Number);
        f.insert("history.previous_positive_screen".into(), FeatureKind::Bool);
        f.insert("history.risk_rose".into(), FeatureKind::Bool);
        f.insert("history.alliance".into(), FeatureKind::Number);
        f.insert("history.alliance_drop".into(), FeatureKind::Number);
        f.insert("history.homework_missed".into(), FeatureKind::Number);
        for c in &self.vocabulary.classes {
            f.insert(
                format!("history.class.{}.sessions", c.id),
                FeatureKind::Number,
            );
        }
        for e in &self.vocabulary.session_events {
            f.insert(format!("event.{}", e.id), FeatureKind::Bool);
        }
        f
    }

    fn validate(&self) -> Result<(), KnowledgeError> {
        let v = &self.vocabulary;
        let problems: BTreeSet<&str> = v.problems.iter().map(|x| x.id.as_str()).collect();
        let flags: BTreeSet<&str> = v.flags.iter().map(|x| x.id.as_str()).collect();
        let schools: BTreeSet<&str> = v.schools.iter().map(|x| x.id.as_str()).collect();
        let dims: BTreeSet<&str> = v.dimensions.iter().map(|x| x.id.as_str()).collect();
        let classes: BTreeSet<&str> = v.classes.iter().map(|x| x.id.as_str()).collect();
        for (list, name) in [
            (&v.problems, "problem"),
            (&v.flags, "flag"),
            (&v.schools, "school"),
            (&v.dimensions, "dimension"),
            (&v.classes, "class"),
            (&v.session_events, "session event"),
            (&v.integration_models, "integration model"),
        ] {
            let mut seen = BTreeSet::new();
            for e in list {
                if !seen.insert(&e.id) {
                    return Err(dup("vocabulary.toml", name, &e.id));
                }
            }
        }
        for e in self.evidence.values() {
            if e.citation.trim().is_empty() {
                return Err(invalid(&format!("evidence {}", e.key), "citation is empty"));
            }
        }
        let phase_ids: BTreeSet<&str> = self.phases.iter().map(|p| p.id.as_str()).collect();
        for p in Phase::ALL {
            if !phase_ids.contains(p.as_str()) {
                return Err(KnowledgeError::Missing(format!(
                    "phases.toml: phase {}",
                    p.as_str()
                )));
            }
        }
        for p in &self.phases {
            if Phase::parse(&p.id).is_none() {
                return Err(unresolved("phases.toml", "phase", &p.id));
            }
            if let Some(g) = &p.entry_gate {
                if !self.gates.contains_key(g) {
                    return Err(unresolved(&format!("phase {}", p.id), "gate", g));
                }
            }
        }
        let catalogue = self.feature_catalogue();
        for g in self.gates.values() {
            let item = format!("gate {}", g.id);
            self.check_evidence(&item, &g.evidence)?;
            if g.conditions.is_empty() {
                return Err(invalid(&item, "a gate needs at least one condition"));
            }
            for c in &g.conditions {
                self.check_predicate(&item, &c.when, &catalogue, &mut vec![g.id.clone()])?;
            }
        }
        for (expected, t) in (1..).zip(self.techniques.values()) {
            let item = format!("technique {} ({})", t.code, t.id);
            if t.code != format!("T{expected:02}") {
                return Err(invalid(
                    &item,
                    &format!("codes must run T01…T39 without gaps; expected T{expected:02}"),
                ));
            }
            if !is_kebab(&t.id) {
                return Err(invalid(&item, "id must be kebab-case"));
            }
            for (xs, set, what) in [
                (&t.schools, &schools, "school"),
                (&t.dimensions, &dims, "dimension"),
                (&t.classes, &classes, "class"),
            ] {
                if xs.is_empty() {
                    return Err(invalid(&item, &format!("needs at least one {what}")));
                }
                for x in xs {
                    if !set.contains(x.as_str()) {
                        return Err(unresolved(&item, what, x));
                    }
                }
            }
            for x in &t.targets {
                if x != "all" && !problems.contains(x.as_str()) {
                    return Err(unresolved(&item, "target problem", x));
                }
            }
            if t.phases.is_empty() {
                return Err(invalid(&item, "needs at least one allowed phase"));
            }
            for p in &t.phases {
                if Phase::parse(p).is_none() {
                    return Err(unresolved(&item, "phase", p));
                }
            }
            for g in &t.gates {
                if !self.gates.contains_key(g) {
                    return Err(unresolved(&item, "gate", g));
                }
            }
            for c in &t.contraindications {
                if !flags.contains(c.flag.as_str()) {
                    return Err(unresolved(&item, "contraindication flag", &c.flag));
                }
                self.check_evidence(&item, &c.evidence)?;
            }
            for c in &t.cautions {
                if let Some(f) = &c.flag {
                    if !flags.contains(f.as_str()) {
                        return Err(unresolved(&item, "caution flag", f));
                    }
                }
            }
            if t.evidence.is_empty() {
                return Err(invalid(&item, "needs at least one evidence entry"));
            }
            for e in &t.evidence {
                let Some(src) = self.evidence.get(&e.key) else {
                    return Err(unresolved(&item, "evidence key", &e.key));
                };
                if e.verified && !src.verified {
                    return Err(invalid(
                        &item,
                        &format!(
                            "evidence {} is marked verified but evidence.toml says it is not",
                            e.key
                        ),
                    ));
                }
            }
            for s in [&t.mechanism, &t.explanation, &t.dose, &t.homework.title] {
                if s.trim().is_empty() {
                    return Err(invalid(
                        &item,
                        "mechanism, explanation, dose and homework title must not be empty",
                    ));
                }
            }
        }
        for p in self.pathways.values() {
            let item = format!("pathway {}", p.id);
            if !problems.contains(p.problem.as_str()) {
                return Err(unresolved(&item, "problem", &p.problem));
            }
            self.check_evidence(&item, &p.evidence)?;
            if p.steps.is_empty() {
                return Err(invalid(&item, "needs at least one step"));
            }
            for s in &p.steps {
                let Some(t) = self.techniques.get(&s.code) else {
                    return Err(unresolved(&item, "technique code", &s.code));
                };
                if let Some(ph) = &s.phase {
                    if !t.phases.contains(ph) {
                        return Err(invalid(
                            &item,
                            &format!(
                                "step {} is placed in {ph}, which the technique does not allow",
                                s.code
                            ),
                        ));
                    }
                }
            }
        }
        for prob in &problems {
            if !self.pathways.values().any(|p| p.problem == *prob) {
                return Err(invalid(&format!("problem {prob}"), "has no pathway"));
            }
        }
        let mut seen = BTreeSet::new();
        for r in &self.rules {
            let item = format!("rule {}", r.id);
            if !seen.insert(r.id.clone()) {
                return Err(dup("rules", "rule id", &r.id));
            }
            self.check_evidence(&item, &r.evidence)?;
            if r.explanation.trim().is_empty() {
                return Err(invalid(&item, "explanation must not be empty"));
            }
            if r.rule_type != RuleType::Contraindication
                && r.rule_type != RuleType::Interference
                && r.evidence.is_empty()
                && !r.id.starts_with("R8")
            {
                return Err(invalid(&item, "needs at least one evidence key"));
            }
            self.check_predicate(&item, &r.when, &catalogue, &mut Vec::new())?;
            self.check_effect(&item, r)?;
        }
        self.check_reachable()?;
        Ok(())
    }

    fn check_evidence(&self, item: &str, keys: &[String]) -> Result<(), KnowledgeError> {
        for k in keys {
            if !self.evidence.contains_key(k) {
                return Err(unresolved(item, "evidence key", k));
            }
        }
        Ok(())
    }

    fn check_target(&self, item: &str, t: &Target) -> Result<(), KnowledgeError> {
        if t.is_empty() {
            return Err(invalid(
                item,
                "an effect target must name codes, classes, schools or preferences",
            ));
        }
        for c in &t.codes {
            if !self.techniques.contains_key(c) {
                return Err(unresolved(item, "technique code", c));
            }
        }
        for c in &t.classes {
            if !self.vocabulary.classes.iter().any(|x| &x.id == c) {
                return Err(unresolved(item, "class", c));
            }
        }
        for s in &t.schools {
            if !self.is_school(s) {
                return Err(unresolved(item, "school", s));
            }
        }
        if let Some(p) = &t.from_preferences {
            if p != "preferred" && p != "avoided" {
                return Err(invalid(
                    item,
                    "from_preferences must be 'preferred' or 'avoided'",
                ));
            }
        }
        Ok(())
    }

    fn check_effect(&self, item: &str, r: &Rule) -> Result<(), KnowledgeError> {
        let e = &r.effect;
        let used = effect_fields(e);
        if used.is_empty() {
            return Err(invalid(item, "effect is empty"));
        }
        let allowed = allowed_effects(r.rule_type);
        for u in &used {
            if !allowed.contains(u) {
                return Err(invalid(
                    item,
                    &format!(
                        "a {} rule may not use the effect '{u}' (allowed: {})",
                        r.rule_type.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        for t in [&e.require, &e.exclude, &e.insert].into_iter().flatten() {
            self.check_target(item, t)?;
        }
        for w in [&e.boost, &e.penalize, &e.order].into_iter().flatten() {
            self.check_target(item, &w.target)?;
            if !w.weight.is_finite() {
                return Err(invalid(item, "weight must be finite"));
            }
        }
        if let Some(p) = &e.set_phase {
            if Phase::parse(p).is_none() {
                return Err(unresolved(item, "phase", p));
            }
        }
        if let Some(g) = &e.gate {
            if !self.gates.contains_key(g) {
                return Err(unresolved(item, "gate", g));
            }
        }
        if let Some(i) = &e.intensity_at_least {
            if !INTENSITY_SCALE.contains(&i.as_str()) {
                return Err(unresolved(item, "care intensity", i));
            }
        }
        if let Some(a) = &e.alert {
            if !ALERT_LEVELS.contains(&a.level.as_str()) {
                return Err(unresolved(item, "alert level", &a.level));
            }
        }
        if let Some(s) = &e.suggest {
            for c in &s.adds {
                if !self.techniques.contains_key(c) {
                    return Err(unresolved(item, "technique code", c));
                }
            }
        }
        if let Some(s) = &e.set_style {
            for (v, scale, what) in [
                (&s.directiveness, &DIRECTIVENESS[..], "directiveness"),
                (&s.focus, &FOCUS[..], "focus"),
                (&s.arousal_target, &AROUSAL[..], "arousal target"),
                (&s.strategy, &STRATEGY[..], "strategy"),
            ] {
                if let Some(v) = v {
                    if !scale.contains(&v.as_str()) {
                        return Err(unresolved(item, what, v));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_predicate(
        &self,
        item: &str,
        p: &Predicate,
        cat: &BTreeMap<String, FeatureKind>,
        gate_stack: &mut Vec<String>,
    ) -> Result<(), KnowledgeError> {
        match p {
            Predicate::Always(_) => Ok(()),
            Predicate::All(xs) | Predicate::Any(xs) => {
                if xs.is_empty() {
                    return Err(invalid(item, "all/any needs at least one predicate"));
                }
                for x in xs {
                    self.check_predicate(item, x, cat, gate_stack)?;
                }
                Ok(())
            }
            Predicate::Not(x) => self.check_predicate(item, x, cat, gate_stack),
            Predicate::Is(f) => match cat.get(f) {
                Some(FeatureKind::Bool) => Ok(()),
                Some(_) => Err(invalid(
                    item,
                    &format!("feature '{f}' is not true/false; use equals or at_least"),
                )),
                None => Err(unresolved(item, "feature", f)),
            },
            Predicate::Present(f) => {
                if cat.contains_key(f) {
                    Ok(())
                } else {
                    Err(unresolved(item, "feature", f))
                }
            }
            Predicate::Equals(c) | Predicate::AtLeast(c) | Predicate::AtMost(c) => {
                let ordered = !matches!(p, Predicate::Equals(_));
                let Some(kind) = cat.get(&c.feature) else {
                    return Err(unresolved(item, "feature", &c.feature));
                };
                match (kind, &c.value) {
                    (FeatureKind::Number, Scalar::Number(_)) => Ok(()),
                    (FeatureKind::Bool, Scalar::Bool(_)) if !ordered => Ok(()),
                    (FeatureKind::Text(xs), Scalar::Text(v)) if !ordered && xs.contains(v) => {
                        Ok(())
                    }
                    (FeatureKind::Ordinal(xs), Scalar::Text(v)) if xs.contains(v) => Ok(()),
                    _ => Err(invalid(
                        item,
                        &format!(
                            "value {:?} does not fit feature '{}' ({kind:?})",
                            c.value, c.feature
                        ),
                    )),
                }
            }
            Predicate::Gate(g) => {
                let Some(gate) = self.gates.get(g) else {
                    return Err(unresolved(item, "gate", g));
                };
                if gate_stack.contains(g) {
                    return Err(invalid(item, &format!("gate '{g}' refers to itself")));
                }
                gate_stack.push(g.clone());
                for c in &gate.conditions {
                    self.check_predicate(item, &c.when, cat, gate_stack)?;
                }
                gate_stack.pop();
                Ok(())
            }
        }
    }

    fn check_reachable(&self) -> Result<(), KnowledgeError> {
        let mut reach = BTreeSet::new();
        for p in self.pathways.values() {
            for s in &p.steps {
                reach.insert(s.code.clone());
            }
        }
        let none = BTreeSet::new();
        for r in &self.rules {
            let e = &r.effect;
            for t in [&e.require, &e.insert].into_iter().flatten() {
                reach.extend(self.resolve_target(t, &none));
            }
            if let Some(b) = &e.boost {
                reach.extend(self.resolve_target(&b.target, &none));
            }
            if let Some(s) = &e.suggest {
                reach.extend(s.adds.iter().cloned());
            }
        }
        for t in self.techniques.values() {
            if !reach.contains(&t.code) {
                return Err(KnowledgeError::Unreachable {
                    code: t.code.clone(),
                    id: t.id.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The effects each rule type may use. This is what makes the veto order
/// structural: only safety overrides and contraindications exclude, only
/// safety overrides require, and selection/sequencing/preference rules can
/// only re-weight candidates that survived the vetoes.
pub fn allowed_effects(t: RuleType) -> &'static [&'static str] {
    match t {
        RuleType::SafetyOverride => &[
            "set_phase",
            "halt",
            "require",
            "exclude",
            "intensity_at_least",
            "alert",
        ],
        RuleType::Contraindication => &["exclude", "alert"],
        RuleType::PhaseGate => &["gate"],
        RuleType::Interference => &["insert", "alert"],
        RuleType::Selection => &[
            "boost",
            "penalize",
            "set_style",
            "intensity_at_least",
            "alert",
        ],
        RuleType::Sequencing => &["order"],
        RuleType::Adaptation => &["suggest", "checklist", "alert"],
        RuleType::Preference => &["boost", "penalize"],
    }
}

fn effect_fields(e: &Effect) -> Vec<&'static str> {
    let mut v = Vec::new();
    if e.set_phase.is_some() {
        v.push("set_phase");
    }
    if e.halt {
        v.push("halt");
    }
    if e.require.is_some() {
        v.push("require");
    }
    if e.exclude.is_some() {
        v.push("exclude");
    }
    if e.gate.is_some() {
        v.push("gate");
    }
    if e.insert.is_some() {
        v.push("insert");
    }
    if e.boost.is_some() {
        v.push("boost");
    }
    if e.penalize.is_some() {
        v.push("penalize");
    }
    if e.order.is_some() {
        v.push("order");
    }
    if e.set_style.is_some() {
        v.push("set_style");
    }
    if e.intensity_at_least.is_some() {
        v.push("intensity_at_least");
    }
    if e.alert.is_some() {
        v.push("alert");
    }
    if e.suggest.is_some() {
        v.push("suggest");
    }
    if e.checklist {
        v.push("checklist");
    }
    v
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn dup(item: &str, what: &'static str, value: &str) -> KnowledgeError {
    KnowledgeError::Duplicate {
        item: item.to_string(),
        what,
        value: value.to_string(),
    }
}

fn unresolved(item: &str, what: &'static str, value: &str) -> KnowledgeError {
    KnowledgeError::Unresolved {
        item: item.to_string(),
        what,
        value: value.to_string(),
    }
}

fn invalid(item: &str, problem: &str) -> KnowledgeError {
    KnowledgeError::Invalid {
        item: item.to_string(),
        problem: problem.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Features and predicate evaluation
// ---------------------------------------------------------------------------

/// A computed fact about the case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FeatureValue {
    Bool(bool),
    Number(f64),
    Text(String),
    /// A label on an ordered scale.
    Ordinal {
        label: String,
        rank: usize,
    },
}

impl FeatureValue {
    pub fn ordinal(scale: &[&str], label: &str) -> FeatureValue {
        FeatureValue::Ordinal {
            label: label.to_string(),
            rank: scale.iter().position(|s| *s == label).unwrap_or(0),
        }
    }
    /// How the value reads in an explanation.
    pub fn display(&self) -> String {
        match self {
            FeatureValue::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            FeatureValue::Number(n) => {
                if n.fract() == 0.0 {
                    format!("{n:.0}")
                } else {
                    format!("{n:.1}")
                }
            }
            FeatureValue::Text(t) => t.clone(),
            FeatureValue::Ordinal { label, .. } => label.clone(),
        }
    }
}

/// The case as a set of named facts the predicates read.
pub type Features = BTreeMap<String, FeatureValue>;

fn scale_of(feature: &str) -> Option<&'static [&'static str]> {
    match feature {
        "risk.level" => Some(&RISK_SCALE),
        "style.reactance" => Some(&REACTANCE_SCALE),
        "style.stage" => Some(&STAGE_SCALE),
        "style.directiveness" => Some(&DIRECTIVENESS),
        "care.intensity" => Some(&INTENSITY_SCALE),
        _ => None,
    }
}

fn compare(f: &Features, c: &Comparison) -> Option<std::cmp::Ordering> {
    match (f.get(&c.feature)?, &c.value) {
        (FeatureValue::Number(a), Scalar::Number(b)) => a.partial_cmp(b),
        (FeatureValue::Ordinal { rank, .. }, Scalar::Text(label)) => {
            let scale = scale_of(&c.feature)?;
            let other = scale.iter().position(|s| s == label)?;
            Some(rank.cmp(&other))
        }
        _ => None,
    }
}

fn equals(f: &Features, c: &Comparison) -> bool {
    match (f.get(&c.feature), &c.value) {
        (Some(FeatureValue::Bool(a)), Scalar::Bool(b)) => a == b,
        (Some(FeatureValue::Number(a)), Scalar::Number(b)) => (a - b).abs() < 1e-9,
        (Some(FeatureValue::Text(a)), Scalar::Text(b)) => a == b,
        (Some(FeatureValue::Ordinal { label, .. }), Scalar::Text(b)) => label == b,
        _ => false,
    }
}

impl Knowledge {
    /// Evaluate a predicate against the case's features.
    pub fn eval(&self, p: &Predicate, f: &Features) -> bool {
        self.eval_trace(p, f, &mut Vec::new())
    }

    /// Evaluate and collect, in plain words, the facts that made it true
    /// (used to build the "why" chain).
    pub fn eval_trace(&self, p: &Predicate, f: &Features, trace: &mut Vec<String>) -> bool {
        match p {
            Predicate::Always(b) => *b,
            Predicate::All(xs) => {
                let mut local = Vec::new();
                for x in xs {
                    if !self.eval_trace(x, f, &mut local) {
                        return false;
                    }
                }
                trace.extend(local);
                true
            }
            Predicate::Any(xs) => {
                for x in xs {
                    let mut local = Vec::new();
                    if self.eval_trace(x, f, &mut local) {
                        trace.extend(local);
                        return true;
                    }
                }
                false
            }
            Predicate::Not(x) => {
                let held = self.eval_trace(x, f, &mut Vec::new());
                if !held {
                    trace.push(format!("not ({})", self.describe(x)));
                }
                !held
            }
            Predicate::Is(name) => {
                let held = matches!(f.get(name), Some(FeatureValue::Bool(true)));
                if held {
                    trace.push(self.feature_label(name));
                }
                held
            }
            Predicate::Present(name) => {
                let held = f.contains_key(name);
                if let (true, Some(v)) = (held, f.get(name)) {
                    trace.push(format!("{} = {}", self.feature_label(name), v.display()));
                }
                held
            }
            Predicate::Equals(c) => {
                let held = equals(f, c);
                if held {
                    trace.push(format!(
                        "{} = {}",
                        self.feature_label(&c.feature),
                        scalar_text(&c.value)
                    ));
                }
                held
            }
            Predicate::AtLeast(c) | Predicate::AtMost(c) => {
                let want_ge = matches!(p, Predicate::AtLeast(_));
                let held = match compare(f, c) {
                    Some(std::cmp::Ordering::Equal) => true,
                    Some(std::cmp::Ordering::Greater) => want_ge,
                    Some(std::cmp::Ordering::Less) => !want_ge,
                    None => false,
                };
                if let (true, Some(v)) = (held, f.get(&c.feature)) {
                    trace.push(format!(
                        "{} = {} ({} {})",
                        self.feature_label(&c.feature),
                        v.display(),
                        if want_ge { "at least" } else { "at most" },
                        scalar_text(&c.value)
                    ));
                }
                held
            }
            Predicate::Gate(g) => match self.gates.get(g) {
                Some(gate) => {
                    let held = gate.conditions.iter().all(|c| self.eval(&c.when, f));
                    if held {
                        trace.push(format!("gate '{}' met", gate.name));
                    }
                    held
                }
                None => false,
            },
        }
    }

    /// A predicate in plain words.
    pub fn describe(&self, p: &Predicate) -> String {
        let list = |xs: &[Predicate], sep: &str| {
            xs.iter()
                .map(|x| self.describe(x))
                .collect::<Vec<_>>()
                .join(sep)
        };
        match p {
            Predicate::Always(b) => b.to_string(),
            Predicate::All(xs) => list(xs, " and "),
            Predicate::Any(xs) => format!("({})", list(xs, " or ")),
            Predicate::Not(x) => format!("not {}", self.describe(x)),
            Predicate::Is(f) => self.feature_label(f),
            Predicate::Present(f) => format!("{} is recorded", self.feature_label(f)),
            Predicate::Equals(c) => {
                format!(
                    "{} = {}",
                    self.feature_label(&c.feature),
                    scalar_text(&c.value)
                )
            }
            Predicate::AtLeast(c) => format!(
                "{} at least {}",
                self.feature_label(&c.feature),
                scalar_text(&c.value)
            ),
            Predicate::AtMost(c) => format!(
                "{} at most {}",
                self.feature_label(&c.feature),
                scalar_text(&c.value)
            ),
            Predicate::Gate(g) => format!(
                "gate '{}' met",
                self.gates.get(g).map(|x| x.name.as_str()).unwrap_or(g)
            ),
        }
    }

    /// A feature name in plain words for explanations
    /// (`flag.cardiac` → "Cardiac disease, …").
    pub fn feature_label(&self, name: &str) -> String {
        let label = |list: &[VocabEntry], id: &str| {
            list.iter()
                .find(|e| e.id == id)
                .map(|e| e.label.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let v = &self.vocabulary;
        if let Some(id) = name.strip_prefix("problem.") {
            if id == "count" {
                return "number of presenting problems".into();
            }
            return format!("presenting problem: {}", label(&v.problems, id));
        }
        if let Some(id) = name.strip_prefix("primary.") {
            return format!("main focus: {}", label(&v.problems, id));
        }
        if let Some(id) = name.strip_prefix("flag.") {
            return label(&v.flags, id);
        }
        if let Some(id) = name.strip_prefix("event.") {
            return format!("at the last session: {}", label(&v.session_events, id));
        }
        if let Some(rest) = name.strip_prefix("history.class.") {
            let class = rest.trim_end_matches(".sessions");
            return format!(
                "sessions that included {}",
                label(&v.classes, class).to_lowercase()
            );
        }
        if let Some(rest) = name.strip_prefix("measure.") {
            let mut parts = rest.splitn(2, '.');
            let inst = parts.next().unwrap_or("").to_uppercase();
            return match parts.next() {
                Some("total") => format!("{inst} total"),
                Some("caseness") => format!("{inst} above caseness"),
                Some(item) => format!("{inst} {}", item.replace("item", "item ")),
                None => inst,
            };
        }
        let fixed = match name {
            "risk.level" => "risk level",
            "risk.days_since_self_harm" => "days since self-harm",
            "style.coping" => "coping style",
            "style.reactance" => "reactance",
            "style.stage" => "stage of change",
            "style.arousal_target" => "arousal target",
            "style.directiveness" => "directiveness",
            "integration.model" => "integration model",
            "integration.home_school" => "home school",
            "social_support.low" => "low social support",
            "readiness.regulation_skill" => "can use a regulation skill",
            "readiness.prioritises_trauma" => "prioritises the trauma target",
            "history.sessions" => "sessions so far",
            "history.risk_rose" => "risk rose since the last session",
            "history.previous_positive_screen" => "an earlier positive risk screen",
            "change.any_reliable_deterioration" => "reliable deterioration on a measure",
            "change.all_recovered" => "all targets recovered",
            other => other,
        };
        fixed.to_string()
    }

    /// The conditions of a gate that do not hold, with their blocking flag.
    pub fn failed_gate_conditions<'a>(
        &'a self,
        gate: &str,
        f: &Features,
    ) -> Vec<&'a GateCondition> {
        self.gates
            .get(gate)
            .map(|g| {
                g.conditions
                    .iter()
                    .filter(|c| !self.eval(&c.when, f))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Number(n) => FeatureValue::Number(*n).display(),
        Scalar::Text(t) => t.clone(),
        Scalar::Bool(b) => b.to_string(),
    }
}

/// Fill `{feature.name}` placeholders from the features; unknown ones stay as written.
pub fn render(template: &str, f: &Features) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match f.get(key) {
                    Some(v) => out.push_str(&v.display()),
                    None => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_known_placeholders_and_keeps_unknown() {
        let mut f = Features::new();
        f.insert(
            "risk.level".into(),
            FeatureValue::ordinal(&RISK_SCALE, "high"),
        );
        assert_eq!(
            render("risk is {risk.level} ({x})", &f),
            "risk is high ({x})"
        );
        assert_eq!(render("open {brace", &f), "open {brace");
        assert_eq!(render("", &f), "");
    }

    #[test]
    fn ordinal_comparison_uses_rank() {
        let k = Knowledge::embedded().unwrap();
        let mut f = Features::new();
        f.insert(
            "risk.level".into(),
            FeatureValue::ordinal(&RISK_SCALE, "moderate"),
        );
        let ge_high = Predicate::AtLeast(Comparison {
            feature: "risk.level".into(),
            value: Scalar::Text("high".into()),
        });
        assert!(!k.eval(&ge_high, &f));
        f.insert(
            "risk.level".into(),
            FeatureValue::ordinal(&RISK_SCALE, "imminent"),
        );
        assert!(k.eval(&ge_high, &f));
        // Absent features never satisfy a comparison.
        let absent = Predicate::AtLeast(Comparison {
            feature: "measure.phq9.total".into(),
            value: Scalar::Number(0.0),
        });
        assert!(!k.eval(&absent, &f));
    }
}
