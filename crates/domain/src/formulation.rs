//! The case formulation: a first-class, versionable record of how clinician and
//! client understand the problem. It is the main input of the plan engine.
//!
//! Validation names the field at fault (`presenting_problems[2]: unknown
//! problem 'sadness'`), so the same errors serve the API, the CLI and forms.

use crate::knowledge::{Knowledge, COPING, REACTANCE_SCALE, STAGE_SCALE};
use crate::risk::RiskLevel;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A formulation field that is missing, unknown, impossible or contradictory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FormulationError {
    pub field: String,
    pub problem: String,
}

impl FormulationError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The five Ps of a case formulation, each a list of short statements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FivePs {
    #[serde(default)]
    pub presenting: Vec<String>,
    #[serde(default)]
    pub predisposing: Vec<String>,
    #[serde(default)]
    pub precipitating: Vec<String>,
    #[serde(default)]
    pub perpetuating: Vec<String>,
    #[serde(default)]
    pub protective: Vec<String>,
}

/// Coping style (Beutler's STS dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coping {
    Internalizing,
    Externalizing,
    Mixed,
}

/// Trait-like reactance (resistance to direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reactance {
    Low,
    Moderate,
    High,
}

/// Transtheoretical stage of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOfChange {
    Precontemplation,
    Contemplation,
    Preparation,
    Action,
    Maintenance,
}

macro_rules! labelled {
    ($t:ty, $scale:expr, [$($v:ident),+]) => {
        impl $t {
            const VARIANTS: &'static [$t] = &[$(<$t>::$v),+];
            /// The vocabulary label.
            pub fn as_str(self) -> &'static str {
                let i = Self::VARIANTS.iter().position(|v| *v == self).unwrap_or(0);
                $scale.get(i).copied().unwrap_or("")
            }
            /// Parse a vocabulary label.
            pub fn parse(s: &str) -> Option<Self> {
                $scale.iter().position(|l| *l == s).and_then(|i| Self::VARIANTS.get(i).copied())
            }
        }
    };
}
labelled!(Coping, COPING, [Internalizing, Externalizing, Mixed]);
labelled!(Reactance, REACTANCE_SCALE, [Low, Moderate, High]);
labelled!(
    StageOfChange,
    STAGE_SCALE,
    [
        Precontemplation,
        Contemplation,
        Preparation,
        Action,
        Maintenance
    ]
);

/// The client's position on the §1 style dimensions (any may be unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StyleDimensions {
    pub coping: Option<Coping>,
    pub reactance: Option<Reactance>,
    pub stage_of_change: Option<StageOfChange>,
}

/// Treatment preferences: schools, technique codes or ids the client asks
/// for or would rather avoid, and free-text notes (format, therapist...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default)]
    pub prefer: Vec<String>,
    #[serde(default)]
    pub avoid: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Current risk as assessed by the clinician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub level: RiskLevel,
    /// Days since the last self-harm or suicidal behaviour, if any ever.
    pub days_since_self_harm: Option<u32>,
}

impl Default for RiskAssessment {
    fn default() -> Self {
        Self {
            level: RiskLevel::None,
            days_since_self_harm: None,
        }
    }
}

/// How the plan integrates schools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationChoice {
    /// assimilative | technical-eclecticism | theoretical-integration | common-factors
    pub model: String,
    /// Required for assimilative integration.
    pub home_school: Option<String>,
}

impl Default for IntegrationChoice {
    fn default() -> Self {
        Self {
            model: "technical-eclecticism".into(),
            home_school: None,
        }
    }
}

/// Clinician-recorded readiness facts used by the trauma-readiness gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// The client can already use at least one regulation skill.
    #[serde(default)]
    pub regulation_skill: bool,
    /// The client consents to and ranks trauma work as a priority.
    #[serde(default)]
    pub prioritises_trauma: bool,
}

/// The structured case formulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Formulation {
    pub age: u16,
    /// Vocabulary ids; the first is the primary focus.
    pub presenting_problems: Vec<String>,
    #[serde(default)]
    pub five_ps: FivePs,
    /// Dimension id (cognitive, affective…) → 0–10 rating of how central it is.
    #[serde(default)]
    pub dimension_ratings: BTreeMap<String, u8>,
    #[serde(default)]
    pub strengths: Vec<String>,
    /// Goals in the client's own words.
    #[serde(default)]
    pub goals: Vec<String>,
    #[serde(default)]
    pub preferences: Preferences,
    #[serde(default)]
    pub style: StyleDimensions,
    /// Contraindication flags (vocabulary ids).
    #[serde(default)]
    pub flags: BTreeSet<String>,
    #[serde(default)]
    pub risk: RiskAssessment,
    /// Cultural adaptations, recorded as the client describes them — never inferred.
    #[serde(default)]
    pub cultural_notes: Vec<String>,
    #[serde(default)]
    pub integration: IntegrationChoice,
    #[serde(default)]
    pub readiness: Readiness,
    /// Functional impairment (e.g. WSAS total, 0–40), if measured.
    #[serde(default)]
    pub impairment: Option<f64>,
    #[serde(default)]
    pub low_social_support: bool,
}

/// The oldest age the engine accepts.
pub const MAX_AGE: u16 = 120;

impl Formulation {
    /// A minimal formulation (used by tests and as a starting point for forms).
    pub fn new(age: u16, presenting_problems: Vec<String>) -> Self {
        Self {
            age,
            presenting_problems,
            five_ps: FivePs::default(),
            dimension_ratings: BTreeMap::new(),
            strengths: Vec::new(),
            goals: Vec::new(),
            preferences: Preferences::default(),
            style: StyleDimensions::default(),
            flags: BTreeSet::new(),
            risk: RiskAssessment::default(),
            cultural_notes: Vec::new(),
            integration: IntegrationChoice::default(),
            readiness: Readiness::default(),
            impairment: None,
            low_social_support: false,
        }
    }

    /// The primary focus (first presenting problem).
    pub fn primary(&self) -> Option<&str> {
        self.presenting_problems.first().map(String::as_str)
    }

    /// Check every field against the vocabulary and for impossible or
    /// contradictory values. The first problem found is returned.
    pub fn validate(&self, k: &Knowledge) -> Result<(), FormulationError> {
        if self.age > MAX_AGE {
            return Err(FormulationError::new(
                "age",
                format!("{} is not a possible age (0-{MAX_AGE})", self.age),
            ));
        }
        if self.presenting_problems.is_empty() {
            return Err(FormulationError::new(
                "presenting_problems",
                "at least one presenting problem is required",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.presenting_problems.iter().enumerate() {
            if !k.is_problem(p) {
                return Err(FormulationError::new(
                    format!("presenting_problems[{i}]"),
                    format!("unknown problem '{}'", clip(p)),
                ));
            }
            if !seen.insert(p) {
                return Err(FormulationError::new(
                    format!("presenting_problems[{i}]"),
                    format!("'{p}' is listed twice"),
                ));
            }
        }
        for f in &self.flags {
            if !k.is_flag(f) {
                return Err(FormulationError::new(
                    "flags",
                    format!("unknown flag '{}'", clip(f)),
                ));
            }
        }
        for (d, v) in &self.dimension_ratings {
            if !k.vocabulary.dimensions.iter().any(|x| &x.id == d) {
                return Err(FormulationError::new(
                    format!("dimension_ratings.{}", clip(d)),
                    "unknown dimension",
                ));
            }
            if *v > 10 {
                return Err(FormulationError::new(
                    format!("dimension_ratings.{d}"),
                    format!("{v} is outside 0-10"),
                ));
            }
        }
        if let Some(d) = self.risk.days_since_self_harm {
            if d > 36_500 {
                return Err(FormulationError::new(
                    "risk.days_since_self_harm",
                    format!("{d} days is more than a lifetime"),
                ));
            }
            if d <= 7 && self.risk.level == RiskLevel::None {
                return Err(FormulationError::new(
                    "risk.level",
                    format!("'none' contradicts self-harm {d} days ago; record at least 'low' after a structured risk inquiry"),
                ));
            }
        }
        let model = &self.integration.model;
        if !k
            .vocabulary
            .integration_models
            .iter()
            .any(|m| &m.id == model)
        {
            return Err(FormulationError::new(
                "integration.model",
                format!("unknown integration model '{}'", clip(model)),
            ));
        }
        match &self.integration.home_school {
            Some(s) if !k.is_school(s) => {
                return Err(FormulationError::new(
                    "integration.home_school",
                    format!("unknown school '{}'", clip(s)),
                ));
            }
            None if model == "assimilative" => {
                return Err(FormulationError::new(
                    "integration.home_school",
                    "required when the model is 'assimilative'",
                ));
            }
            _ => {}
        }
        for (list, name) in [
            (&self.preferences.prefer, "preferences.prefer"),
            (&self.preferences.avoid, "preferences.avoid"),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !k.is_school(p) && k.technique(p).is_none() {
                    return Err(FormulationError::new(
                        format!("{name}[{i}]"),
                        format!("'{}' is neither a school nor a technique", clip(p)),
                    ));
                }
            }
        }
        for (i, p) in self.preferences.prefer.iter().enumerate() {
            if self.preferences.avoid.contains(p) {
                return Err(FormulationError::new(
                    format!("preferences.prefer[{i}]"),
                    format!("'{p}' is both preferred and avoided"),
                ));
            }
        }
        if let Some(w) = self.impairment {
            if !(0.0..=40.0).contains(&w) {
                return Err(FormulationError::new(
                    "impairment",
                    format!("{w} is outside 0-40"),
                ));
            }
        }
        Ok(())
    }
}

/// One saved version of a formulation. Storage encrypts and audits it; the
/// domain keeps the numbering, the reason and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormulationVersion {
    pub version: u32,
    pub formulation: Formulation,
    /// Why this version was written (required for every revision).
    pub reason: String,
}

impl FormulationVersion {
    /// The first, validated version.
    pub fn first(f: Formulation, k: &Knowledge) -> Result<Self, FormulationError> {
        f.validate(k)?;
        Ok(Self {
            version: 1,
            formulation: f,
            reason: "initial formulation".into(),
        })
    }

    /// A validated revision with a reason.
    pub fn revise(
        &self,
        next: Formulation,
        reason: &str,
        k: &Knowledge,
    ) -> Result<Self, FormulationError> {
        if reason.trim().is_empty() {
            return Err(FormulationError::new("reason", "a revision needs a reason"));
        }
        next.validate(k)?;
        Ok(Self {
            version: self.version + 1,
            formulation: next,
            reason: reason.trim().into(),
        })
    }

    /// Names of the top-level fields that differ between two versions.
    pub fn changed_fields(&self, other: &FormulationVersion) -> Vec<&'static str> {
        let (a, b) = (&self.formulation, &other.formulation);
        let mut out = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                out.push(name);
            }
        };
        check("age", a.age == b.age);
        check(
            "presenting_problems",
            a.presenting_problems == b.presenting_problems,
        );
        check("five_ps", a.five_ps == b.five_ps);
        check(
            "dimension_ratings",
            a.dimension_ratings == b.dimension_ratings,
        );
        check("strengths", a.strengths == b.strengths);
        check("goals", a.goals == b.goals);
        check("preferences", a.preferences == b.preferences);
        check("style", a.style == b.style);
        check("flags", a.flags == b.flags);
        check("risk", a.risk == b.risk);
        check("cultural_notes", a.cultural_notes == b.cultural_notes);
        check("integration", a.integration == b.integration);
        check("readiness", a.readiness == b.readiness);
        check("impairment", a.impairment == b.impairment);
        check(
            "low_social_support",
            a.low_social_support == b.low_social_support,
        );
        out
    }
}

/// Shorten user-supplied text before echoing it in an error.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Knowledge {
        Knowledge::embedded().unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        let k = k();
        let mut f = Formulation::new(
            30,
            vec!["depression".into(), "panic".into(), "sadness".into()],
        );
        assert_eq!(
            f.validate(&k).unwrap_err().to_string(),
            "presenting_problems[2]: unknown problem 'sadness'"
        );
        f.presenting_problems = vec![];
        assert_eq!(f.validate(&k).unwrap_err().field, "presenting_problems");
        f.presenting_problems = vec!["panic".into(), "panic".into()];
        assert_eq!(f.validate(&k).unwrap_err().field, "presenting_problems[1]");
        f.presenting_problems = vec!["panic".into()];
        f.age = 500;
        assert_eq!(f.validate(&k).unwrap_err().field, "age");
        f.age = 40;
        f.integration.model = "assimilative".into();
        assert_eq!(f.validate(&k).unwrap_err().field, "integration.home_school");
        f.integration.home_school = Some("psychodynamic".into());
        assert!(f.validate(&k).is_ok());
        f.preferences.prefer = vec!["act".into()];
        f.preferences.avoid = vec!["act".into()];
        assert_eq!(f.validate(&k).unwrap_err().field, "preferences.prefer[0]");
    }

    #[test]
    fn revisions_need_a_reason_and_record_what_changed() {
        let k = k();
        let v1 = FormulationVersion::first(Formulation::new(30, vec!["panic".into()]), &k).unwrap();
        let mut next = v1.formulation.clone();
        next.flags.insert("cardiac".into());
        next.goals.push("Drive on the motorway again".into());
        assert_eq!(
            v1.revise(next.clone(), " ", &k).unwrap_err().field,
            "reason"
        );
        let v2 = v1.revise(next, "cardiology letter received", &k).unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v1.changed_fields(&v2), vec!["goals", "flags"]);
        let mut bad = v2.formulation.clone();
        bad.flags.insert("vertigo".into());
        assert_eq!(v2.revise(bad, "x", &k).unwrap_err().field, "flags");
    }

    #[test]
    fn labels_round_trip() {
        for s in STAGE_SCALE {
            assert_eq!(StageOfChange::parse(s).unwrap().as_str(), s);
        }
        for s in REACTANCE_SCALE {
            assert_eq!(Reactance::parse(s).unwrap().as_str(), s);
        }
        for s in COPING {
            assert_eq!(Coping::parse(s).unwrap().as_str(), s);
        }
        assert!(Coping::parse("avoidant").is_none());
    }

    #[test]
    fn huge_unknown_values_are_clipped_in_errors() {
        let k = k();
        let f = Formulation::new(30, vec!["x".repeat(10_000)]);
        let e = f.validate(&k).unwrap_err();
        assert!(e.to_string().len() < 120);
    }
}
