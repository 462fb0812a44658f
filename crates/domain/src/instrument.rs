//! Instruments as data: typed, validated definitions of questionnaires and Tapestry's own forms,
//! loaded from TOML files under `content/instruments/` (one file per instrument).
//!
//! Every number (ranges, bands, cut-offs, reliable-change thresholds, norms) lives in the TOML
//! with its source and a `verified` flag; nothing clinical is hard-coded here. Loading validates
//! each definition (every reference resolves, weights lie within the range, bands cover the range
//! without gaps or overlaps, …) and reports errors naming the file and the field.
//!
//! Item wording is shipped only where the licence allows (`licence = "ship_text"`). For
//! `text_pack_required` instruments a site supplies the wording in a *text pack* (a
//! `*.text.toml` file, see [`InstrumentRegistry::apply_text_pack`]); until then the instrument can
//! be scored but is listed as unavailable for administration, with the reason. CORE-10's wording
//! ships as such a pack (`core10.text.toml`) because it is licensed separately (CC BY-ND 4.0).

use crate::content::ContentFile;
use crate::risk::{RiskColour, RiskLevel, TaskDue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the licence lets the project do with an instrument's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceClass {
    /// The wording may be shipped (kept unaltered, with its notice).
    ShipText,
    /// Only the scoring rules ship; the wording comes from a site-supplied text pack.
    TextPackRequired,
    /// Tapestry's own form: not a validated instrument.
    OwnFormNotValidated,
}

/// Who fills the form in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdministeredBy {
    Client,
    Clinician,
}

/// How the item answers become a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoringMethod {
    /// Sum of item weights (reversed where marked) times `multiplier`.
    Sum,
    /// Mean of the answered items (e.g. personal goals).
    Mean,
    /// Categorical level from ordered rules (Tapestry's structured risk assessment).
    RiskRules,
}

/// What happens when required items are unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingRule {
    /// Default: an incomplete response has no total; the missing items are listed.
    NoTotal,
    /// Pro-rate (sum × items / answered) when at most `max_missing` items are missing. Only for
    /// instruments whose rule documents it.
    Prorate,
}

/// How a "not applicable" answer (only on items that allow it) enters the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NotApplicableRule {
    /// The item contributes nothing; the response still counts as complete.
    #[default]
    CountAsZero,
}

/// Biological sex, where a published cut-off depends on it (AUDIT-C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// Parses `male`/`m`/`female`/`f` (case-insensitive).
    pub fn parse(text: &str) -> Option<Sex> {
        match text.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => Some(Sex::Male),
            "female" | "f" => Some(Sex::Female),
            _ => None,
        }
    }
}

/// LOINC codes of the panel and its total; emitted only when `verified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoincPanel {
    #[serde(default)]
    pub panel: Option<String>,
    #[serde(default)]
    pub total: Option<String>,
    pub verified: bool,
    pub source: String,
}

/// One answer option: the value submitted and scored, its wording and LOINC answer code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    pub value: i32,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub loinc: Option<String>,
}

/// A named list of answer options shared by several items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSet {
    pub id: String,
    pub options: Vec<AnswerOption>,
}

/// One item (question).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemDef {
    /// 1-based position; answers are given in this order.
    pub number: u16,
    pub id: String,
    /// Published wording, or `None` when it may not be shipped or could not be verified.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub loinc: Option<String>,
    #[serde(default)]
    pub loinc_verified: bool,
    /// Id of an [`AnswerSet`].
    pub answers: String,
    /// Positively worded item scored `min + max - answer`.
    #[serde(default)]
    pub reversed: bool,
    /// Whether the item counts towards the total (PHQ-9's difficulty item does not).
    #[serde(default = "yes")]
    pub scored: bool,
    /// Optional items are never "missing" (trailing optional items may be omitted).
    #[serde(default)]
    pub optional: bool,
    /// Whether "not applicable" is a legitimate answer (WSAS work item, PHQ-15 menstrual item).
    #[serde(default)]
    pub allow_not_applicable: bool,
    #[serde(default)]
    pub note: Option<String>,
}

fn yes() -> bool {
    true
}

fn one() -> i32 {
    1
}

/// The scoring rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringRule {
    pub method: ScoringMethod,
    /// Applied to the sum (DASS-21: ×2).
    #[serde(default = "one")]
    pub multiplier: i32,
    /// Lowest possible total.
    pub min: i32,
    /// Highest possible total.
    pub max: i32,
    pub missing: MissingRule,
    /// With `prorate`: the most missing items still scored.
    #[serde(default)]
    pub max_missing: u16,
    #[serde(default)]
    pub missing_source: Option<String>,
    #[serde(default)]
    pub missing_verified: Option<bool>,
    #[serde(default)]
    pub not_applicable: NotApplicableRule,
    /// With `mean`: the fewest answered items that give a total.
    #[serde(default)]
    pub min_answered: u16,
    /// With `risk_rules`: the level when no rule matches.
    #[serde(default)]
    pub default_level: Option<RiskLevel>,
    /// Which convention the numbers follow (e.g. K10 10–50).
    pub convention: String,
}

/// Where a group of numbers comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub source: String,
    pub verified: bool,
}

/// A severity band `min..=max` (integers; fractional pro-rated totals fall in the band whose
/// `min` is the largest not above them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min: i32,
    pub max: i32,
    pub label: String,
}

/// A cut-off: a total at or above `at_least` (at or below for higher-is-better scales is not
/// needed by any shipped instrument) meets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cutoff {
    /// E.g. `caseness`, `talking_therapies_caseness`, `positive_screen`.
    pub purpose: String,
    pub at_least: f64,
    /// Sex-specific cut-offs (AUDIT-C).
    #[serde(default)]
    pub sex: Option<Sex>,
    /// The cut-off reported as `caseness` in a [`crate::scoring::Score`].
    #[serde(default)]
    pub primary: bool,
    pub source: String,
    pub verified: bool,
}

/// Reliable-change threshold with its provenance: either stated `points`, or computed from
/// `sd` and `reliability` (Jacobson & Truax 1991: 1.96 × SD × √(2(1−r)), rounded up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliableChangeDef {
    #[serde(default)]
    pub points: Option<f64>,
    #[serde(default)]
    pub sd: Option<f64>,
    #[serde(default)]
    pub reliability: Option<f64>,
    pub source: String,
    pub verified: bool,
}

impl ReliableChangeDef {
    /// The threshold in raw points (change of at least this size is reliable).
    pub fn threshold(&self) -> Option<f64> {
        match (self.points, self.sd, self.reliability) {
            (Some(p), _, _) => Some(p),
            (None, Some(sd), Some(r)) => Some(crate::change::reliable_change_points(sd, r).ceil()),
            _ => None,
        }
    }
}

/// Clinical and functional norms for clinically significant change (criteria a, b, c).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Norms {
    pub clinical_mean: f64,
    pub clinical_sd: f64,
    pub functional_mean: f64,
    pub functional_sd: f64,
    pub source: String,
    pub verified: bool,
}

/// Response/remission conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeConventions {
    #[serde(default)]
    pub response_reduction_percent: Option<f64>,
    #[serde(default)]
    pub remission_below: Option<f64>,
    #[serde(default)]
    pub meaningful_change_points: Option<f64>,
    pub source: String,
    pub verified: bool,
}

/// Rational not-on-track rule parameters (§2.4a).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotOnTrackDef {
    /// Without reliable improvement by this session (intake = session 1) the client is not on track.
    pub review_by_session: u32,
    pub source: String,
    pub verified: bool,
}

/// A critical item and its trigger: an answer `>= at_least` raises a risk signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalItemDef {
    pub item: u16,
    pub at_least: i32,
    pub colour: RiskColour,
    /// Rule id, e.g. `R1` of treatment_selection.md §5.3.
    pub rule: String,
    pub action: String,
    pub due: TaskDue,
    /// False for Tapestry design choices (e.g. PCL-5 item 16).
    pub published: bool,
    pub source: String,
}

/// A subscale: sum of its items × `multiplier`, optionally banded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscaleDef {
    pub id: String,
    pub title: String,
    pub items: Vec<u16>,
    #[serde(default = "one")]
    pub multiplier: i32,
    #[serde(default)]
    pub bands: Vec<Band>,
    #[serde(default)]
    pub bands_source: Option<String>,
    #[serde(default)]
    pub bands_verified: Option<bool>,
}

/// One requirement of a cluster rule: at least `count_at_least` endorsed items in `subscale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequirement {
    pub subscale: String,
    pub count_at_least: u16,
}

/// A derived yes/no result from endorsed-item counts per subscale (PCL-5 provisional diagnosis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedRuleDef {
    pub id: String,
    /// An item answered at least this is "endorsed".
    pub endorsed_at_least: i32,
    pub requirements: Vec<ClusterRequirement>,
    pub source: String,
    pub verified: bool,
}

/// One condition: item answer `>= at_least`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub item: u16,
    pub at_least: i32,
}

/// A level rule: all conditions hold → at least `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    pub level: RiskLevel,
    pub all: Vec<Condition>,
}

/// Raises the level by `steps` (not above `ceiling`) when `item >= at_least`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelEscalation {
    pub item: u16,
    pub at_least: i32,
    pub steps: u8,
    pub ceiling: RiskLevel,
    pub source: String,
    pub verified: bool,
}

/// Where an instrument's wording came from when a text pack supplied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPackInfo {
    pub file: String,
    pub licence: Option<String>,
    pub copyright: Option<String>,
}

/// Precomputed per-item facts for the scoring hot path.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct CompiledItem {
    pub number: u16,
    pub lo: i32,
    pub hi: i32,
    /// All values lo..=hi are options (so a range check suffices).
    pub contiguous: bool,
    pub answer_set: usize,
    pub reversed: bool,
    pub scored: bool,
    pub optional: bool,
    pub allow_na: bool,
}

/// A complete, validated instrument definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentDef {
    pub id: String,
    pub version: String,
    pub title: String,
    /// The name clinicians use in lists and task titles ("PHQ-9").
    pub short_title: String,
    /// False for Tapestry's own forms ("not a validated instrument").
    pub validated: bool,
    pub administered_by: AdministeredBy,
    pub licence: LicenceClass,
    /// Why the wording is not shipped (for `text_pack_required`).
    #[serde(default)]
    pub licence_reason: Option<String>,
    pub copyright: String,
    pub source: String,
    pub recall_period: String,
    /// Recommended administration frequency.
    pub frequency: String,
    pub higher_is_better: bool,
    #[serde(default)]
    pub stem: Option<String>,
    #[serde(default)]
    pub loinc: Option<LoincPanel>,
    pub answer_sets: Vec<AnswerSet>,
    pub items: Vec<ItemDef>,
    pub scoring: ScoringRule,
    #[serde(default)]
    pub bands_provenance: Option<Provenance>,
    #[serde(default)]
    pub bands: Vec<Band>,
    #[serde(default)]
    pub cutoffs: Vec<Cutoff>,
    #[serde(default)]
    pub reliable_change: Option<ReliableChangeDef>,
    #[serde(default)]
    pub norms: Option<Norms>,
    #[serde(default)]
    pub change: Option<ChangeConventions>,
    #[serde(default)]
    pub not_on_track: Option<NotOnTrackDef>,
    #[serde(default)]
    pub critical: Vec<CriticalItemDef>,
    #[serde(default)]
    pub subscales: Vec<SubscaleDef>,
    #[serde(default)]
    pub derived: Vec<DerivedRuleDef>,
    #[serde(default)]
    pub level_rules: Vec<LevelRule>,
    #[serde(default)]
    pub level_escalation: Option<LevelEscalation>,
    /// Set when a text pack supplied the wording.
    #[serde(skip)]
    pub text_pack: Option<TextPackInfo>,
    /// The file this definition was loaded from.
    #[serde(skip)]
    pub file: String,
    #[serde(skip)]
    pub(crate) compiled: Vec<CompiledItem>,
    /// Answers shorter than this are the wrong count (trailing optional items may be omitted).
    #[serde(skip)]
    pub(crate) required_len: usize,
}

/// Whether an instrument can be put in front of someone now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Availability {
    Available,
    Unavailable { reason: String },
}

/// One line of the registry listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstrumentListing {
    pub id: String,
    pub version: String,
    pub title: String,
    pub validated: bool,
    pub licence: LicenceClass,
    pub availability: Availability,
}

impl InstrumentDef {
    /// Parses and validates one definition; `file` names the source in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<InstrumentDef, InstrumentError> {
        let mut def: InstrumentDef = toml::from_str(text).map_err(|e| InstrumentError::Parse {
            file: file.to_string(),
            message: e.message().to_string(),
            field: e
                .span()
                .map(|s| line_of(text, s.start))
                .map(|l| format!("line {l}"))
                .unwrap_or_default(),
        })?;
        def.file = file.to_string();
        def.validate_and_compile()?;
        Ok(def)
    }

    /// The item with this 1-based number.
    pub fn item(&self, number: u16) -> Option<&ItemDef> {
        self.items.get(usize::from(number).checked_sub(1)?)
    }

    /// The answer set of an item.
    pub fn answer_set_of(&self, item: &ItemDef) -> Option<&AnswerSet> {
        self.answer_sets.iter().find(|s| s.id == item.answers)
    }

    /// The option of an item with the given value.
    pub fn option_of(&self, item_number: u16, value: i32) -> Option<&AnswerOption> {
        let item = self.item(item_number)?;
        self.answer_set_of(item)?
            .options
            .iter()
            .find(|o| o.value == value)
    }

    /// How many answers a response must at least contain (trailing optional items may be omitted).
    pub fn required_items(&self) -> usize {
        self.required_len
    }

    /// Reliable-change threshold in points, if the definition has one.
    pub fn reliable_change_threshold(&self) -> Option<f64> {
        self.reliable_change.as_ref().and_then(|r| r.threshold())
    }

    /// The cut-off with this purpose (ignoring sex-specific ones).
    pub fn cutoff(&self, purpose: &str) -> Option<&Cutoff> {
        self.cutoffs
            .iter()
            .find(|c| c.purpose == purpose && c.sex.is_none())
    }

    /// The primary cut-off that applies to `sex` (a sex-specific one needs `sex`).
    pub fn primary_cutoff(&self, sex: Option<Sex>) -> Option<&Cutoff> {
        self.cutoffs
            .iter()
            .filter(|c| c.primary)
            .find(|c| c.sex.is_none() || (sex.is_some() && c.sex == sex))
    }

    /// The band label for a total.
    pub fn band_for(&self, total: f64) -> Option<&str> {
        band_lookup(&self.bands, total)
    }

    /// Items whose wording is missing (not shipped, not verified, or no pack yet).
    pub fn items_without_text(&self) -> Vec<u16> {
        self.items
            .iter()
            .filter(|i| i.text.as_deref().is_none_or(|t| t.trim().is_empty()))
            .map(|i| i.number)
            .collect()
    }

    /// Whether the instrument can be administered now, and if not, why.
    pub fn availability(&self) -> Availability {
        let missing = self.items_without_text();
        if missing.is_empty() {
            return Availability::Available;
        }
        if self.licence == LicenceClass::TextPackRequired && self.text_pack.is_none() {
            let why = self
                .licence_reason
                .clone()
                .unwrap_or_else(|| "the licence does not let Tapestry ship the wording".into());
            return Availability::Unavailable {
                reason: format!(
                    "no item-text pack loaded: {why} Scores can still be computed from answers."
                ),
            };
        }
        Availability::Unavailable {
            reason: format!(
                "wording missing for item(s) {} (not shipped because it could not be verified \
                 verbatim); load a text pack with the published wording",
                join_numbers(&missing)
            ),
        }
    }

    fn validate_and_compile(&mut self) -> Result<(), InstrumentError> {
        let file = self.file.clone();
        let bad = |field: &str, problem: String| InstrumentError::Invalid {
            file: file.clone(),
            field: field.to_string(),
            problem,
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(bad(
                "id",
                format!(
                    "`{}` must be non-empty lowercase letters, digits or _",
                    self.id
                ),
            ));
        }
        for (field, value) in [
            ("version", &self.version),
            ("title", &self.title),
            ("short_title", &self.short_title),
            ("copyright", &self.copyright),
            ("source", &self.source),
            ("recall_period", &self.recall_period),
            ("frequency", &self.frequency),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty".into()));
            }
        }
        if (self.licence == LicenceClass::OwnFormNotValidated) == self.validated {
            return Err(bad(
                "validated",
                "own forms (licence own_form_not_validated) must have validated = false, and only they".into(),
            ));
        }
        if let Some(l) = &self.loinc {
            if l.verified && l.panel.is_none() && l.total.is_none() {
                return Err(bad("loinc", "verified but names no code".into()));
            }
        }
        // Answer sets.
        let mut set_ids = BTreeSet::new();
        for (si, set) in self.answer_sets.iter().enumerate() {
            let f = format!("answer_sets[{si}]");
            if !set_ids.insert(set.id.as_str()) {
                return Err(bad(
                    &format!("{f}.id"),
                    format!("duplicate id `{}`", set.id),
                ));
            }
            if set.options.is_empty() {
                return Err(bad(&format!("{f}.options"), "must not be empty".into()));
            }
            let mut values = BTreeSet::new();
            for o in &set.options {
                if !values.insert(o.value) {
                    return Err(bad(
                        &format!("{f}.options"),
                        format!("duplicate value {}", o.value),
                    ));
                }
            }
        }
        // Items.
        if self.items.is_empty() {
            return Err(bad("items", "must not be empty".into()));
        }
        let mut item_ids = BTreeSet::new();
        let mut compiled = Vec::with_capacity(self.items.len());
        for (ix, item) in self.items.iter().enumerate() {
            let f = format!("items[{ix}]");
            if usize::from(item.number) != ix + 1 {
                return Err(bad(
                    &format!("{f}.number"),
                    format!(
                        "is {}, expected {} (items are numbered 1..n in order)",
                        item.number,
                        ix + 1
                    ),
                ));
            }
            if !item_ids.insert(item.id.as_str()) || item.id.is_empty() {
                return Err(bad(
                    &format!("{f}.id"),
                    format!("empty or duplicate id `{}`", item.id),
                ));
            }
            let Some(set_index) = self.answer_sets.iter().position(|s| s.id == item.answers) else {
                return Err(bad(
                    &format!("{f}.answers"),
                    format!("answer set `{}` is not defined", item.answers),
                ));
            };
            if item.loinc_verified && item.loinc.is_none() {
                return Err(bad(
                    &format!("{f}.loinc_verified"),
                    "true but no loinc code".into(),
                ));
            }
            if self.licence == LicenceClass::TextPackRequired && item.text.is_some() {
                return Err(bad(
                    &format!("{f}.text"),
                    "the licence is text_pack_required: item wording may not be shipped here"
                        .into(),
                ));
            }
            if item.reversed && !item.scored {
                return Err(bad(
                    &format!("{f}.reversed"),
                    "an unscored item cannot be reversed".into(),
                ));
            }
            let options = self
                .answer_sets
                .get(set_index)
                .map(|s| s.options.as_slice())
                .unwrap_or_default();
            let lo = options.iter().map(|o| o.value).min().unwrap_or(0);
            let hi = options.iter().map(|o| o.value).max().unwrap_or(0);
            let contiguous = i64::from(hi) - i64::from(lo) + 1 == options.len() as i64;
            compiled.push(CompiledItem {
                number: item.number,
                lo,
                hi,
                contiguous,
                answer_set: set_index,
                reversed: item.reversed,
                scored: item.scored,
                optional: item.optional,
                allow_na: item.allow_not_applicable,
            });
        }
        if self.licence == LicenceClass::TextPackRequired {
            if self.licence_reason.is_none() {
                return Err(bad(
                    "licence_reason",
                    "required when licence = text_pack_required".into(),
                ));
            }
            let any_option_text = self
                .answer_sets
                .iter()
                .flat_map(|s| &s.options)
                .any(|o| o.text.is_some());
            if any_option_text || self.stem.is_some() {
                return Err(bad(
                    "answer_sets",
                    "the licence is text_pack_required: answer wording and stem may not be shipped here".into(),
                ));
            }
        }
        self.required_len = self
            .items
            .iter()
            .rposition(|i| !i.optional)
            .map(|p| p + 1)
            .unwrap_or(0);
        // Scoring range.
        let s = &self.scoring;
        if s.min > s.max {
            return Err(bad(
                "scoring.min",
                format!("{} is above scoring.max {}", s.min, s.max),
            ));
        }
        if s.multiplier < 1 {
            return Err(bad("scoring.multiplier", "must be at least 1".into()));
        }
        if s.max_missing > 0 && s.missing != MissingRule::Prorate {
            return Err(bad(
                "scoring.max_missing",
                "only meaningful with missing = \"prorate\"".into(),
            ));
        }
        match s.method {
            ScoringMethod::Sum => {
                let (lo, hi) =
                    compiled
                        .iter()
                        .filter(|c| c.scored)
                        .fold((0i64, 0i64), |(a, b), c| {
                            let lo = if c.allow_na { c.lo.min(0) } else { c.lo };
                            (a + i64::from(lo), b + i64::from(c.hi))
                        });
                let m = i64::from(s.multiplier);
                if (lo * m, hi * m) != (i64::from(s.min), i64::from(s.max)) {
                    return Err(bad(
                        "scoring.min/max",
                        format!(
                            "declared range {}-{} but the item weights give {}-{}",
                            s.min,
                            s.max,
                            lo * m,
                            hi * m
                        ),
                    ));
                }
            }
            ScoringMethod::Mean => {
                let lo = compiled.iter().map(|c| c.lo).min().unwrap_or(0);
                let hi = compiled.iter().map(|c| c.hi).max().unwrap_or(0);
                if (lo, hi) != (s.min, s.max) {
                    return Err(bad(
                        "scoring.min/max",
                        format!(
                            "declared range {}-{} but the answer options give {lo}-{hi}",
                            s.min, s.max
                        ),
                    ));
                }
                if s.min_answered == 0 {
                    return Err(bad(
                        "scoring.min_answered",
                        "must be at least 1 for mean scoring".into(),
                    ));
                }
            }
            ScoringMethod::RiskRules => {
                if self.level_rules.is_empty() {
                    return Err(bad(
                        "level_rules",
                        "required for method = \"risk_rules\"".into(),
                    ));
                }
                if s.default_level.is_none() {
                    return Err(bad(
                        "scoring.default_level",
                        "required for method = \"risk_rules\"".into(),
                    ));
                }
            }
        }
        if s.method != ScoringMethod::RiskRules
            && (!self.level_rules.is_empty() || self.level_escalation.is_some())
        {
            return Err(bad(
                "level_rules",
                "only allowed with method = \"risk_rules\"".into(),
            ));
        }
        let in_options = |number: u16, value: i32| -> bool {
            compiled
                .get(usize::from(number).wrapping_sub(1))
                .and_then(|c| self.answer_sets.get(c.answer_set))
                .is_some_and(|set| {
                    set.options.iter().any(|o| o.value <= value)
                        && set.options.iter().any(|o| o.value >= value)
                })
        };
        for (ri, rule) in self.level_rules.iter().enumerate() {
            if rule.all.is_empty() {
                return Err(bad(
                    &format!("level_rules[{ri}].all"),
                    "must not be empty".into(),
                ));
            }
            for (ci, c) in rule.all.iter().enumerate() {
                if !in_options(c.item, c.at_least) {
                    return Err(bad(
                        &format!("level_rules[{ri}].all[{ci}]"),
                        format!(
                            "item {} does not exist or {} is outside its answers",
                            c.item, c.at_least
                        ),
                    ));
                }
            }
        }
        if let Some(e) = &self.level_escalation {
            if !in_options(e.item, e.at_least) {
                return Err(bad(
                    "level_escalation.item",
                    format!(
                        "item {} does not exist or {} is outside its answers",
                        e.item, e.at_least
                    ),
                ));
            }
        }
        // Bands.
        if s.method != ScoringMethod::RiskRules {
            check_bands(&self.bands, s.min, s.max).map_err(|p| bad("bands", p))?;
            if !self.bands.is_empty() && self.bands_provenance.is_none() {
                return Err(bad(
                    "bands_provenance",
                    "bands need a source and verified flag".into(),
                ));
            }
        }
        // Cut-offs.
        let mut primaries = BTreeSet::new();
        for (ci, c) in self.cutoffs.iter().enumerate() {
            if c.at_least < f64::from(s.min) || c.at_least > f64::from(s.max) {
                return Err(bad(
                    &format!("cutoffs[{ci}].at_least"),
                    format!("{} is outside the range {}-{}", c.at_least, s.min, s.max),
                ));
            }
            if c.primary && !primaries.insert(c.sex) {
                return Err(bad(
                    &format!("cutoffs[{ci}].primary"),
                    "more than one primary cut-off for the same sex".into(),
                ));
            }
        }
        if primaries.iter().any(|s| s.is_some()) && primaries.len() != 2 {
            return Err(bad(
                "cutoffs",
                "sex-specific primary cut-offs must cover both male and female".into(),
            ));
        }
        if let Some(rc) = &self.reliable_change {
            match rc.threshold() {
                Some(t) if t > 0.0 && t.is_finite() => {}
                _ => {
                    return Err(bad(
                        "reliable_change",
                        "needs points > 0, or sd > 0 and 0 < reliability < 1".into(),
                    ))
                }
            }
            if let Some(r) = rc.reliability {
                if !(0.0..1.0).contains(&r) {
                    return Err(bad(
                        "reliable_change.reliability",
                        format!("{r} is not in [0, 1)"),
                    ));
                }
            }
        }
        if let Some(n) = &self.norms {
            if n.clinical_sd <= 0.0 || n.functional_sd <= 0.0 {
                return Err(bad("norms", "standard deviations must be positive".into()));
            }
        }
        // Critical items.
        for (ci, c) in self.critical.iter().enumerate() {
            if !in_options(c.item, c.at_least) {
                return Err(bad(
                    &format!("critical[{ci}].item"),
                    format!(
                        "item {} does not exist or trigger {} is outside its answers",
                        c.item, c.at_least
                    ),
                ));
            }
        }
        // Subscales.
        let mut sub_ids = BTreeSet::new();
        for (si, sub) in self.subscales.iter().enumerate() {
            let f = format!("subscales[{si}]");
            if !sub_ids.insert(sub.id.as_str()) {
                return Err(bad(
                    &format!("{f}.id"),
                    format!("duplicate id `{}`", sub.id),
                ));
            }
            if sub.items.is_empty() {
                return Err(bad(&format!("{f}.items"), "must not be empty".into()));
            }
            let mut seen = BTreeSet::new();
            let (mut lo, mut hi) = (0i64, 0i64);
            for &n in &sub.items {
                let Some(c) = compiled.get(usize::from(n).wrapping_sub(1)) else {
                    return Err(bad(
                        &format!("{f}.items"),
                        format!("item {n} does not exist"),
                    ));
                };
                if !seen.insert(n) {
                    return Err(bad(&format!("{f}.items"), format!("item {n} listed twice")));
                }
                lo += i64::from(c.lo);
                hi += i64::from(c.hi);
            }
            let m = i64::from(sub.multiplier.max(1));
            let (lo, hi) = (lo * m, hi * m);
            let (lo, hi) = (
                i32::try_from(lo).unwrap_or(i32::MIN),
                i32::try_from(hi).unwrap_or(i32::MAX),
            );
            check_bands(&sub.bands, lo, hi).map_err(|p| bad(&format!("{f}.bands"), p))?;
        }
        for (di, d) in self.derived.iter().enumerate() {
            for (ri, r) in d.requirements.iter().enumerate() {
                let Some(sub) = self.subscales.iter().find(|s| s.id == r.subscale) else {
                    return Err(bad(
                        &format!("derived[{di}].requirements[{ri}].subscale"),
                        format!("subscale `{}` is not defined", r.subscale),
                    ));
                };
                if usize::from(r.count_at_least) > sub.items.len() {
                    return Err(bad(
                        &format!("derived[{di}].requirements[{ri}].count_at_least"),
                        format!(
                            "{} exceeds the {} items of subscale `{}`",
                            r.count_at_least,
                            sub.items.len(),
                            sub.id
                        ),
                    ));
                }
            }
        }
        self.compiled = compiled;
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.lines().count().max(1))
        .unwrap_or(1)
}

fn join_numbers(numbers: &[u16]) -> String {
    numbers
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bands must be empty or cover `min..=max` exactly, in order, without gaps or overlaps.
fn check_bands(bands: &[Band], min: i32, max: i32) -> Result<(), String> {
    let Some(first) = bands.first() else {
        return Ok(());
    };
    if first.min != min {
        return Err(format!(
            "first band starts at {} but the range starts at {min}",
            first.min
        ));
    }
    let mut expected = min;
    for b in bands {
        if b.label.trim().is_empty() {
            return Err("a band has an empty label".into());
        }
        if b.min > b.max {
            return Err(format!(
                "band `{}` has min {} above max {}",
                b.label, b.min, b.max
            ));
        }
        if b.min != expected {
            return Err(format!(
                "band `{}` starts at {} but {expected} was expected (gap or overlap)",
                b.label, b.min
            ));
        }
        expected = b.max + 1;
    }
    if expected - 1 != max {
        return Err(format!(
            "last band ends at {} but the range ends at {max}",
            expected - 1
        ));
    }
    Ok(())
}

/// The band containing `value`: the last band whose `min` is not above it.
pub(crate) fn band_lookup(bands: &[Band], value: f64) -> Option<&str> {
    let first = bands.first()?;
    if value < f64::from(first.min) {
        return None;
    }
    bands
        .iter()
        .rev()
        .find(|b| f64::from(b.min) <= value)
        .filter(|b| value < f64::from(b.max) + 1.0)
        .map(|b| b.label.as_str())
}

/// Errors while loading instrument definitions or text packs. Each names the file and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InstrumentError {
    #[error("{file}: cannot parse ({field}): {message}")]
    Parse {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: field `{field}`: {problem}")]
    Invalid {
        file: String,
        field: String,
        problem: String,
    },
    #[error("{file}: instrument `{id}` is already defined in {other}")]
    Duplicate {
        file: String,
        id: String,
        other: String,
    },
    #[error("unknown instrument `{0}`")]
    Unknown(String),
}

/// A text pack: the wording of one instrument, supplied by a licensed site (or shipped
/// separately, as for CORE-10).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextPack {
    instrument: String,
    #[serde(default)]
    licence: Option<String>,
    #[serde(default)]
    copyright: Option<String>,
    #[serde(default)]
    stem: Option<String>,
    items: Vec<PackItem>,
    #[serde(default)]
    answer_sets: Vec<PackAnswerSet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackItem {
    number: u16,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackAnswerSet {
    id: String,
    options: Vec<PackOption>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackOption {
    value: i32,
    text: String,
}

/// Whether a content path is a text pack (`*.text.toml`).
pub fn is_text_pack(path: &str) -> bool {
    path.ends_with(".text.toml")
}

/// All instrument definitions, keyed by id.
#[derive(Debug, Clone, Default)]
pub struct InstrumentRegistry {
    defs: BTreeMap<String, InstrumentDef>,
}

impl InstrumentRegistry {
    /// Loads definitions (`*.toml`) and then text packs (`*.text.toml`) from (path, text) pairs.
    /// Other files (`*.md`, `*.txt`) are ignored.
    pub fn from_files(files: &[ContentFile]) -> Result<InstrumentRegistry, InstrumentError> {
        let mut reg = InstrumentRegistry::default();
        for f in files {
            if !f.path.ends_with(".toml") || is_text_pack(&f.path) {
                continue;
            }
            let def = InstrumentDef::from_toml(&f.path, &f.text)?;
            if let Some(other) = reg.defs.get(&def.id) {
                return Err(InstrumentError::Duplicate {
                    file: f.path.clone(),
                    id: def.id.clone(),
                    other: other.file.clone(),
                });
            }
            reg.defs.insert(def.id.clone(), def);
        }
        let packs: Vec<ContentFile> = files
            .iter()
            .filter(|f| is_text_pack(&f.path))
            .cloned()
            .collect();
        reg.apply_text_pack(&packs)?;
        Ok(reg)
    }

    /// The built-in instruments shipped in `content/instruments/`.
    pub fn embedded() -> Result<InstrumentRegistry, InstrumentError> {
        Self::from_files(&crate::content::embedded_under("instruments/"))
    }

    /// Applies item-text packs (`instrument = "…"`, `[[items]] number, text`, optional
    /// `[[answer_sets]]`). A pack must give wording for every item (same count and numbers) and,
    /// for each answer set it names, every option value. Nothing is applied if any pack fails.
    pub fn apply_text_pack(&mut self, files: &[ContentFile]) -> Result<(), InstrumentError> {
        let mut staged: Vec<InstrumentDef> = Vec::new();
        for f in files {
            let bad = |field: &str, problem: String| InstrumentError::Invalid {
                file: f.path.clone(),
                field: field.to_string(),
                problem,
            };
            let pack: TextPack = toml::from_str(&f.text).map_err(|e| InstrumentError::Parse {
                file: f.path.clone(),
                field: e
                    .span()
                    .map(|s| format!("line {}", line_of(&f.text, s.start)))
                    .unwrap_or_default(),
                message: e.message().to_string(),
            })?;
            let base = staged
                .iter()
                .rev()
                .find(|d| d.id == pack.instrument)
                .or_else(|| self.defs.get(&pack.instrument))
                .ok_or_else(|| {
                    bad(
                        "instrument",
                        format!("unknown instrument `{}`", pack.instrument),
                    )
                })?;
            let mut def = base.clone();
            if def.licence == LicenceClass::OwnFormNotValidated {
                return Err(bad(
                    "instrument",
                    "Tapestry's own forms carry their wording; no pack".into(),
                ));
            }
            if pack.items.len() != def.items.len() {
                return Err(bad(
                    "items",
                    format!(
                        "{} has {} items but the pack gives {}",
                        def.id,
                        def.items.len(),
                        pack.items.len()
                    ),
                ));
            }
            for (ix, (pi, item)) in pack.items.iter().zip(def.items.iter_mut()).enumerate() {
                if pi.number != item.number {
                    return Err(bad(
                        &format!("items[{ix}].number"),
                        format!("is {}, expected {}", pi.number, item.number),
                    ));
                }
                if pi.text.trim().is_empty() {
                    return Err(bad(
                        &format!("items[{ix}].text"),
                        "must not be empty".into(),
                    ));
                }
                item.text = Some(pi.text.clone());
            }
            for (si, ps) in pack.answer_sets.iter().enumerate() {
                let Some(set) = def.answer_sets.iter_mut().find(|s| s.id == ps.id) else {
                    return Err(bad(
                        &format!("answer_sets[{si}].id"),
                        format!(
                            "answer set `{}` is not defined by {}",
                            ps.id, pack.instrument
                        ),
                    ));
                };
                let want: BTreeSet<i32> = set.options.iter().map(|o| o.value).collect();
                let got: BTreeSet<i32> = ps.options.iter().map(|o| o.value).collect();
                if want != got || ps.options.len() != set.options.len() {
                    return Err(bad(
                        &format!("answer_sets[{si}].options"),
                        format!("values {got:?} do not match the definition's {want:?}"),
                    ));
                }
                for o in &mut set.options {
                    o.text = ps
                        .options
                        .iter()
                        .find(|p| p.value == o.value)
                        .map(|p| p.text.clone());
                }
            }
            if pack.stem.is_some() {
                def.stem = pack.stem.clone();
            }
            def.text_pack = Some(TextPackInfo {
                file: f.path.clone(),
                licence: pack.licence.clone(),
                copyright: pack.copyright.clone(),
            });
            staged.push(def);
        }
        for def in staged {
            self.defs.insert(def.id.clone(), def);
        }
        Ok(())
    }

    /// The definition with this id.
    pub fn get(&self, id: &str) -> Option<&InstrumentDef> {
        self.defs.get(id)
    }

    /// The definition with this id, or [`InstrumentError::Unknown`].
    pub fn require(&self, id: &str) -> Result<&InstrumentDef, InstrumentError> {
        self.get(id)
            .ok_or_else(|| InstrumentError::Unknown(id.chars().take(64).collect()))
    }

    /// All definitions, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &InstrumentDef> {
        self.defs.values()
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Every instrument with its availability (unavailable ones say why).
    pub fn listing(&self) -> Vec<InstrumentListing> {
        self.iter()
            .map(|d| InstrumentListing {
                id: d.id.clone(),
                version: d.version.clone(),
                title: d.title.clone(),
                validated: d.validated,
                licence: d.licence,
                availability: d.availability(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_must_cover_range() {
        let b = |min, max| Band {
            min,
            max,
            label: "x".into(),
        };
        assert!(check_bands(&[b(0, 4), b(5, 9)], 0, 9).is_ok());
        assert!(check_bands(&[b(0, 4), b(6, 9)], 0, 9)
            .unwrap_err()
            .contains("gap"));
        assert!(check_bands(&[b(0, 5), b(5, 9)], 0, 9)
            .unwrap_err()
            .contains("overlap"));
        assert!(check_bands(&[b(1, 9)], 0, 9).is_err());
        assert!(check_bands(&[b(0, 8)], 0, 9).is_err());
        assert!(check_bands(&[], 0, 9).is_ok());
    }

    #[test]
    fn band_lookup_handles_fractional_totals() {
        let bands = vec![
            Band {
                min: 0,
                max: 10,
                label: "low".into(),
            },
            Band {
                min: 11,
                max: 14,
                label: "mild".into(),
            },
        ];
        assert_eq!(band_lookup(&bands, 10.0), Some("low"));
        assert_eq!(band_lookup(&bands, 10.5), Some("low"));
        assert_eq!(band_lookup(&bands, 11.0), Some("mild"));
        assert_eq!(band_lookup(&bands, -1.0), None);
        assert_eq!(band_lookup(&bands, 15.5), None);
    }
}
