//! Scoring: answers → total, band, caseness, subscales, critical items and derived results,
//! exactly by the instrument's published rule as recorded in its definition.
//!
//! Pure and cheap: one pass over the answers, no allocation unless something must be listed
//! (missing items, critical hits, subscales). Raw answers are always kept by the caller, so a
//! score can be recomputed when a definition changes version.

use crate::instrument::{InstrumentDef, MissingRule, ScoringMethod, Sex};
use crate::risk::RiskLevel;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The most answers a parser accepts before giving up (no instrument has more items).
pub const MAX_ANSWERS: usize = 200;

/// One answer as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The option value chosen.
    Value(i32),
    /// Not answered.
    Missing,
    /// Explicitly "not applicable" (only on items that allow it).
    NotApplicable,
}

/// A response to one instrument: answers in item order plus context some rules need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answers {
    pub values: Vec<Answer>,
    /// Needed only for sex-specific cut-offs (AUDIT-C).
    pub sex: Option<Sex>,
}

/// Stored form of an answer: the number, `null` for missing, `"na"` for not applicable.
impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Value(v) => s.serialize_i32(*v),
            Answer::Missing => s.serialize_none(),
            Answer::NotApplicable => s.serialize_str("na"),
        }
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Value(i32),
            Text(String),
            Null(()),
        }
        match Option::<Stored>::deserialize(d)? {
            None | Some(Stored::Null(())) => Ok(Answer::Missing),
            Some(Stored::Value(v)) => Ok(Answer::Value(v)),
            Some(Stored::Text(t)) if t == "na" => Ok(Answer::NotApplicable),
            Some(Stored::Text(t)) => Err(serde::de::Error::custom(format!(
                "answer `{}` is not a number, null or \"na\"",
                t.chars().take(20).collect::<String>()
            ))),
        }
    }
}

impl Answers {
    /// Answers from stored values (`None` = not answered).
    pub fn from_options(values: &[Option<u8>]) -> Answers {
        Answers {
            values: values
                .iter()
                .map(|v| v.map_or(Answer::Missing, |x| Answer::Value(i32::from(x))))
                .collect(),
            sex: None,
        }
    }

    /// Answers from option values, all given.
    pub fn from_values(values: &[i32]) -> Answers {
        Answers {
            values: values.iter().copied().map(Answer::Value).collect(),
            sex: None,
        }
    }

    /// Sets the sex used for sex-specific cut-offs.
    pub fn with_sex(mut self, sex: Sex) -> Answers {
        self.sex = Some(sex);
        self
    }

    /// Parses a comma-separated list: numbers, `-` for a missing answer, `na` for not applicable.
    /// Stops early (without reading further) when more than `max_items` answers are given.
    pub fn parse_list(text: &str, max_items: usize) -> Result<Answers, ScoringError> {
        if text.trim().is_empty() {
            return Err(ScoringError::Empty);
        }
        let limit = max_items.min(MAX_ANSWERS);
        let mut values = Vec::with_capacity(limit.min(32));
        for (ix, raw) in text.split(',').enumerate() {
            let item = u16::try_from(ix + 1).unwrap_or(u16::MAX);
            if ix >= limit {
                let got = text.split(',').take(MAX_ANSWERS + 1).count();
                return Err(ScoringError::TooManyAnswers {
                    expected: limit,
                    got: if got > MAX_ANSWERS {
                        format!("more than {MAX_ANSWERS}")
                    } else {
                        got.to_string()
                    },
                });
            }
            let token = raw.trim();
            let answer = match token {
                "" => return Err(ScoringError::EmptyAnswer { item }),
                "-" => Answer::Missing,
                t if t.eq_ignore_ascii_case("na") || t.eq_ignore_ascii_case("n/a") => {
                    Answer::NotApplicable
                }
                t => match t.parse::<i32>() {
                    Ok(v) => Answer::Value(v),
                    Err(_) => {
                        return Err(ScoringError::NotANumber {
                            item,
                            text: t.chars().take(24).collect(),
                        })
                    }
                },
            };
            values.push(answer);
        }
        Ok(Answers { values, sex: None })
    }
}

/// A score value: an integer where the rule gives one, else a fraction. Serialises integers
/// without a decimal point (`10`, not `10.0`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Points(pub f64);

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            s.serialize_i64(v as i64)
        } else {
            // Two decimals are plenty for pro-rated totals and means.
            s.serialize_f64((v * 100.0).round() / 100.0)
        }
    }
}

/// A critical item whose answer met its trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CriticalHit {
    pub item: u16,
    pub value: i32,
}

/// A subscale score (`None` when one of its items is missing) with its band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscaleScore {
    pub value: Option<Points>,
    pub band: Option<String>,
}

/// A derived result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DerivedValue {
    /// Yes/no, or `null` when missing answers leave it undecided.
    Flag(Option<bool>),
    Level(RiskLevel),
}

/// The result of scoring one response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub instrument: String,
    pub version: String,
    /// `None` when incomplete (unless the rule pro-rates) or for categorical forms.
    pub total: Option<Points>,
    /// Severity band of the total (for the risk assessment: the level).
    pub band: Option<String>,
    /// Whether the primary cut-off is met (`None` without a total or an applicable cut-off).
    pub caseness: Option<bool>,
    /// All required items answered.
    pub complete: bool,
    /// Required items not answered, by number.
    pub missing: Vec<u16>,
    /// Items answered "not applicable".
    pub not_applicable: Vec<u16>,
    /// Whether the total was pro-rated from an incomplete response.
    pub prorated: bool,
    /// Critical items that met their trigger (raised even when the response is incomplete).
    pub critical: Vec<CriticalHit>,
    pub subscales: BTreeMap<String, SubscaleScore>,
    pub derived: BTreeMap<String, DerivedValue>,
}

/// Why a response could not be scored. Each names the item and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoringError {
    #[error("unknown instrument `{0}`")]
    UnknownInstrument(String),
    #[error("no answers given")]
    Empty,
    #[error("item {item}: empty answer (use - for a missing answer)")]
    EmptyAnswer { item: u16 },
    #[error("item {item}: `{text}` is not a number")]
    NotANumber { item: u16, text: String },
    #[error("{instrument}: expected {expected} answers, got {got}")]
    WrongCount {
        instrument: String,
        expected: String,
        got: usize,
    },
    #[error("too many answers: expected at most {expected}, got {got}")]
    TooManyAnswers { expected: usize, got: String },
    #[error("{instrument} item {item}: {value} is not an allowed answer ({allowed})")]
    OutOfRange {
        instrument: String,
        item: u16,
        value: i32,
        allowed: String,
    },
    #[error("{instrument} item {item}: \"not applicable\" is not an allowed answer for this item")]
    NotApplicableNotAllowed { instrument: String, item: u16 },
}

/// Scores a response. Validates every answer first; an invalid answer is an error naming the
/// item, and nothing is scored.
pub fn score(def: &InstrumentDef, answers: &Answers) -> Result<Score, ScoringError> {
    let values = answers.values.as_slice();
    if values.is_empty() {
        return Err(ScoringError::Empty);
    }
    let n = def.compiled.len();
    if values.len() < def.required_len || values.len() > n {
        let expected = if def.required_len == n {
            n.to_string()
        } else {
            format!("{} to {}", def.required_len, n)
        };
        return Err(ScoringError::WrongCount {
            instrument: def.id.clone(),
            expected,
            got: values.len(),
        });
    }

    let mut sum: i64 = 0;
    let mut answered_scored: u32 = 0;
    let mut applicable_scored: u32 = 0;
    let mut missing = Vec::new();
    let mut not_applicable = Vec::new();
    for (ix, item) in def.compiled.iter().enumerate() {
        let answer = values.get(ix).copied().unwrap_or(Answer::Missing);
        match answer {
            Answer::Value(v) => {
                let allowed = if item.contiguous {
                    v >= item.lo && v <= item.hi
                } else {
                    def.answer_sets
                        .get(item.answer_set)
                        .is_some_and(|s| s.options.iter().any(|o| o.value == v))
                };
                if !allowed {
                    return Err(out_of_range(def, item.number, v));
                }
                if item.scored {
                    let w = if item.reversed {
                        item.lo + item.hi - v
                    } else {
                        v
                    };
                    sum += i64::from(w);
                    answered_scored += 1;
                    applicable_scored += 1;
                }
            }
            Answer::Missing => {
                if item.scored {
                    applicable_scored += 1;
                }
                if !item.optional {
                    missing.push(item.number);
                }
            }
            Answer::NotApplicable => {
                if !item.allow_na {
                    return Err(ScoringError::NotApplicableNotAllowed {
                        instrument: def.id.clone(),
                        item: item.number,
                    });
                }
                not_applicable.push(item.number);
            }
        }
    }
    let complete = missing.is_empty();
    let value_of = |number: u16| -> Option<i32> {
        match values.get(usize::from(number).checked_sub(1)?) {
            Some(Answer::Value(v)) => Some(*v),
            _ => None,
        }
    };

    // Critical items: checked on every response, complete or not.
    let mut critical: Vec<CriticalHit> = Vec::new();
    for c in &def.critical {
        if let Some(v) = value_of(c.item) {
            if v >= c.at_least && !critical.iter().any(|h| h.item == c.item) {
                critical.push(CriticalHit {
                    item: c.item,
                    value: v,
                });
            }
        }
    }

    let rule = &def.scoring;
    let mut prorated = false;
    let mut derived = BTreeMap::new();
    let mut band: Option<String> = None;
    let total: Option<f64> = match rule.method {
        ScoringMethod::Sum => {
            let m = f64::from(rule.multiplier);
            let scored_missing = applicable_scored - answered_scored;
            if scored_missing == 0 {
                Some(sum as f64 * m)
            } else if rule.missing == MissingRule::Prorate
                && scored_missing <= u32::from(rule.max_missing)
                && answered_scored > 0
            {
                prorated = true;
                Some(sum as f64 * f64::from(applicable_scored) / f64::from(answered_scored) * m)
            } else {
                None
            }
        }
        ScoringMethod::Mean => {
            if answered_scored >= u32::from(rule.min_answered) && answered_scored > 0 {
                Some(sum as f64 / f64::from(answered_scored))
            } else {
                None
            }
        }
        ScoringMethod::RiskRules => {
            if complete {
                let level = risk_level(def, &value_of);
                derived.insert("risk_level".to_string(), DerivedValue::Level(level));
                band = Some(level.as_str().to_string());
            }
            None
        }
    };
    if let Some(t) = total {
        band = def.band_for(t).map(str::to_string);
    }
    let caseness = match (total, def.primary_cutoff(answers.sex)) {
        (Some(t), Some(c)) => Some(t >= c.at_least),
        _ => None,
    };

    let mut subscales = BTreeMap::new();
    for sub in &def.subscales {
        let mut s: i64 = 0;
        let mut all = true;
        for &n in &sub.items {
            let Some(item) = def.compiled.get(usize::from(n).wrapping_sub(1)) else {
                all = false;
                continue;
            };
            match values.get(usize::from(n).wrapping_sub(1)).copied() {
                Some(Answer::Value(v)) => {
                    s += i64::from(if item.reversed {
                        item.lo + item.hi - v
                    } else {
                        v
                    })
                }
                Some(Answer::NotApplicable) => {}
                _ => all = false,
            }
        }
        let value = all.then(|| s as f64 * f64::from(sub.multiplier));
        let sub_band = value
            .and_then(|v| crate::instrument::band_lookup(&sub.bands, v))
            .map(str::to_string);
        subscales.insert(
            sub.id.clone(),
            SubscaleScore {
                value: value.map(Points),
                band: sub_band,
            },
        );
    }

    for d in &def.derived {
        let mut met = true;
        let mut undecided = false;
        for r in &d.requirements {
            let Some(sub) = def.subscales.iter().find(|s| s.id == r.subscale) else {
                met = false;
                continue;
            };
            let mut endorsed = 0u16;
            let mut unknown = 0u16;
            for &n in &sub.items {
                match value_of(n) {
                    Some(v) if v >= d.endorsed_at_least => endorsed += 1,
                    Some(_) => {}
                    None => unknown += 1,
                }
            }
            if endorsed < r.count_at_least {
                met = false;
                if endorsed + unknown >= r.count_at_least {
                    undecided = true;
                }
            }
        }
        let flag = if met {
            Some(true)
        } else if undecided {
            None
        } else {
            Some(false)
        };
        derived.insert(d.id.clone(), DerivedValue::Flag(flag));
    }

    Ok(Score {
        instrument: def.id.clone(),
        version: def.version.clone(),
        total: total.map(Points),
        band,
        caseness,
        complete,
        missing,
        not_applicable,
        prorated,
        critical,
        subscales,
        derived,
    })
}

/// Scores a response to the instrument with this id in `registry`.
pub fn score_instrument(
    registry: &crate::instrument::InstrumentRegistry,
    id: &str,
    answers: &Answers,
) -> Result<Score, ScoringError> {
    let def = registry
        .get(id)
        .ok_or_else(|| ScoringError::UnknownInstrument(id.chars().take(64).collect()))?;
    score(def, answers)
}

/// Applies the ordered level rules of a `risk_rules` form (see `risk_assessment.toml`).
fn risk_level(def: &InstrumentDef, value_of: &dyn Fn(u16) -> Option<i32>) -> RiskLevel {
    let holds = |item: u16, at_least: i32| value_of(item).is_some_and(|v| v >= at_least);
    let mut level = def.scoring.default_level.unwrap_or(RiskLevel::Low);
    for rule in &def.level_rules {
        if rule.level > level && rule.all.iter().all(|c| holds(c.item, c.at_least)) {
            level = rule.level;
        }
    }
    if let Some(e) = &def.level_escalation {
        // Protective factors modify disclosed risk: escalation needs something disclosed on
        // another item (few protective factors alone do not make a risk level).
        let disclosed = def
            .items
            .iter()
            .any(|i| i.number != e.item && holds(i.number, 1));
        if disclosed && holds(e.item, e.at_least) && level < e.ceiling {
            for _ in 0..e.steps {
                if level < e.ceiling {
                    level = next_level(level);
                }
            }
        }
    }
    level
}

fn next_level(level: RiskLevel) -> RiskLevel {
    match level {
        RiskLevel::None => RiskLevel::Low,
        RiskLevel::Low => RiskLevel::Moderate,
        RiskLevel::Moderate => RiskLevel::High,
        RiskLevel::High | RiskLevel::Imminent => RiskLevel::Imminent,
    }
}

fn out_of_range(def: &InstrumentDef, item: u16, value: i32) -> ScoringError {
    let allowed = def
        .item(item)
        .and_then(|i| def.answer_set_of(i))
        .map(|s| {
            let c = def.compiled.get(usize::from(item).wrapping_sub(1));
            match c {
                Some(c) if c.contiguous => format!("{} to {}", c.lo, c.hi),
                _ => s
                    .options
                    .iter()
                    .map(|o| o.value.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .unwrap_or_default();
    let allowed = if def.item(item).is_some_and(|i| i.allow_not_applicable) {
        format!("{allowed}, or na")
    } else {
        allowed
    };
    ScoringError::OutOfRange {
        instrument: def.id.clone(),
        item,
        value,
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_serialise_integers_without_decimals() {
        assert_eq!(serde_json::to_string(&Points(10.0)).unwrap(), "10");
        assert_eq!(serde_json::to_string(&Points(12.5)).unwrap(), "12.5");
        assert_eq!(serde_json::to_string(&Points(1.0 / 3.0)).unwrap(), "0.33");
    }

    #[test]
    fn parse_list_reads_numbers_missing_and_na() {
        let a = Answers::parse_list(" 1, -,na ,3", 10).unwrap();
        assert_eq!(
            a.values,
            vec![
                Answer::Value(1),
                Answer::Missing,
                Answer::NotApplicable,
                Answer::Value(3)
            ]
        );
    }

    #[test]
    fn parse_list_rejects_text_empty_and_huge() {
        assert_eq!(Answers::parse_list("", 9), Err(ScoringError::Empty));
        assert_eq!(
            Answers::parse_list("1,x,2", 9),
            Err(ScoringError::NotANumber {
                item: 2,
                text: "x".into()
            })
        );
        assert_eq!(
            Answers::parse_list("1,,2", 9),
            Err(ScoringError::EmptyAnswer { item: 2 })
        );
        let huge = vec!["1"; 100_000].join(",");
        let err = Answers::parse_list(&huge, 9).unwrap_err();
        assert!(err.to_string().contains("more than 200"), "{err}");
    }
}
