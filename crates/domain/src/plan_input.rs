//! The `tapestry plan --input case.json --json` contract as a pure function:
//! JSON text in, one JSON object out. Every input error names its field
//! (`presenting_problems[2]: unknown problem 'sadness'`). The schema is
//! documented in `docs/plan-engine.md`.

use crate::adapt::review;
use crate::formulation::{
    clip, Coping, FivePs, Formulation, IntegrationChoice, Preferences, Reactance, Readiness,
    RiskAssessment, StageOfChange, StyleDimensions,
};
use crate::knowledge::Knowledge;
use crate::plan::{generate, Case, MeasureScorer, MeasureSnapshot, SessionRecord};
use crate::risk::RiskLevel;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A case file that cannot be planned; `field` is a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PlanInputError {
    pub field: String,
    pub problem: String,
}

fn err<T>(field: impl Into<String>, problem: impl Into<String>) -> Result<T, PlanInputError> {
    Err(PlanInputError {
        field: field.into(),
        problem: problem.into(),
    })
}

const TOP_LEVEL: [&str; 17] = [
    "age",
    "presenting_problems",
    "measures",
    "risk",
    "flags",
    "style",
    "preferences",
    "integration",
    "history",
    "readiness",
    "goals",
    "strengths",
    "cultural_notes",
    "five_ps",
    "dimension_ratings",
    "impairment",
    "social_support",
];

/// Parse, plan and (when `history` is given) review. Returns the plan as a
/// JSON object with `suggestions` and `checklist` added when history is present.
pub fn plan_command(
    k: &Knowledge,
    scorer: &dyn MeasureScorer,
    json_text: &str,
) -> Result<Value, PlanInputError> {
    let case = parse_case(k, scorer, json_text)?;
    let has_history = !case.history.is_empty();
    let (plan, review) = if has_history {
        let r = review(k, &case, None);
        (r.plan.clone(), Some(r))
    } else {
        (generate(k, &case), None)
    };
    let mut out = serde_json::to_value(&plan).map_err(|e| PlanInputError {
        field: "(output)".into(),
        problem: e.to_string(),
    })?;
    if let (Some(r), Value::Object(obj)) = (review, &mut out) {
        let s = serde_json::to_value(&r.suggestions).unwrap_or(Value::Null);
        obj.insert("suggestions".into(), s);
        obj.insert(
            "checklist".into(),
            serde_json::to_value(&r.checklist).unwrap_or(Value::Null),
        );
        obj.insert(
            "not_on_track_reviews".into(),
            Value::from(r.not_on_track_reviews),
        );
        obj.insert("risk_regression".into(), Value::from(r.risk_regression));
    }
    Ok(out)
}

/// Parse a case file into a validated [`Case`].
pub fn parse_case(
    k: &Knowledge,
    scorer: &dyn MeasureScorer,
    json_text: &str,
) -> Result<Case, PlanInputError> {
    let root: Value = serde_json::from_str(json_text).map_err(|e| PlanInputError {
        field: "(input)".into(),
        problem: format!("not valid JSON: {e}"),
    })?;
    let Value::Object(obj) = root else {
        return err("(input)", "the case must be a JSON object");
    };
    for key in obj.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return err(clip(key), "unknown field");
        }
    }
    let age = match obj.get("age") {
        None | Some(Value::Null) => return err("age", "required"),
        Some(v) => int_in(v, "age", 0, i64::from(crate::formulation::MAX_AGE))?,
    };
    let problems = string_list(obj.get("presenting_problems"), "presenting_problems")?;
    let mut f = Formulation::new(age as u16, problems);
    if let Some(v) = obj.get("flags") {
        let flags = string_list(Some(v), "flags")?;
        let mut set = BTreeSet::new();
        for (i, fl) in flags.into_iter().enumerate() {
            if !k.is_flag(&fl) {
                return err(
                    format!("flags[{i}]"),
                    format!("unknown flag '{}'", clip(&fl)),
                );
            }
            if !set.insert(fl.clone()) {
                return err(format!("flags[{i}]"), format!("'{fl}' is listed twice"));
            }
        }
        f.flags = set;
    }
    if let Some(v) = obj.get("risk") {
        f.risk = parse_risk(v, "risk")?;
    }
    if let Some(v) = obj.get("style") {
        f.style = parse_style(v)?;
    }
    if let Some(v) = obj.get("preferences") {
        f.preferences = parse_preferences(v)?;
    }
    if let Some(v) = obj.get("integration") {
        f.integration = parse_integration(v)?;
    }
    if let Some(v) = obj.get("readiness") {
        let o = object(v, "readiness")?;
        let mut r = Readiness::default();
        for (key, val) in o {
            let field = format!("readiness.{}", clip(key));
            let b = val.as_bool().ok_or_else(|| PlanInputError {
                field: field.clone(),
                problem: "must be true or false".into(),
            })?;
            match key.as_str() {
                "regulation_skill" => r.regulation_skill = b,
                "prioritises_trauma" => r.prioritises_trauma = b,
                _ => return err(field, "unknown field"),
            }
        }
        f.readiness = r;
    }
    for (key, target) in [
        ("goals", &mut f.goals),
        ("strengths", &mut f.strengths),
        ("cultural_notes", &mut f.cultural_notes),
    ] {
        if let Some(v) = obj.get(key) {
            *target = string_list(Some(v), key)?;
        }
    }
    if let Some(v) = obj.get("five_ps") {
        f.five_ps = serde_json::from_value::<FivePs>(v.clone()).map_err(|e| PlanInputError {
            field: "five_ps".into(),
            problem: e.to_string(),
        })?;
    }
    if let Some(v) = obj.get("dimension_ratings") {
        for (d, val) in object(v, "dimension_ratings")? {
            let field = format!("dimension_ratings.{}", clip(d));
            let r = int_in(val, &field, 0, 10)?;
            f.dimension_ratings.insert(d.clone(), r as u8);
        }
    }
    if let Some(v) = obj.get("impairment") {
        if !v.is_null() {
            let x = v.as_f64().ok_or_else(|| PlanInputError {
                field: "impairment".into(),
                problem: "must be a number".into(),
            })?;
            f.impairment = Some(x);
        }
    }
    if let Some(v) = obj.get("social_support") {
        match v.as_str() {
            Some("low") => f.low_social_support = true,
            Some("adequate") | Some("good") => f.low_social_support = false,
            _ => return err("social_support", "must be 'low', 'adequate' or 'good'"),
        }
    }
    f.validate(k).map_err(|e| PlanInputError {
        field: e.field,
        problem: e.problem,
    })?;
    let measures = match obj.get("measures") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => parse_measures(k, scorer, v, "measures")?,
    };
    let history = match obj.get("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_history(k, scorer, v)?,
    };
    Ok(Case {
        formulation: f,
        measures,
        history,
    })
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, PlanInputError> {
    v.as_object().ok_or_else(|| PlanInputError {
        field: field.into(),
        problem: "must be an object".into(),
    })
}

fn int_in(v: &Value, field: &str, lo: i64, hi: i64) -> Result<i64, PlanInputError> {
    let Some(x) = v.as_i64() else {
        return err(field, format!("must be a whole number ({lo}-{hi})"));
    };
    if x < lo || x > hi {
        return err(field, format!("{x} is not possible (allowed {lo}-{hi})"));
    }
    Ok(x)
}

fn string_list(v: Option<&Value>, field: &str) -> Result<Vec<String>, PlanInputError> {
    let Some(Value::Array(xs)) = v else {
        return err(field, "must be a list of strings");
    };
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| PlanInputError {
                    field: format!("{field}[{i}]"),
                    problem: "must be a string".into(),
                })
        })
        .collect()
}

fn parse_risk_level(v: &Value, field: &str) -> Result<RiskLevel, PlanInputError> {
    let s = v.as_str().unwrap_or("");
    RiskLevel::ALL
        .into_iter()
        .find(|l| l.as_str() == s)
        .ok_or_else(|| PlanInputError {
            field: field.into(),
            problem: format!(
                "unknown risk level '{}' (none, low, moderate, high, imminent)",
                clip(&v.to_string())
            ),
        })
}

fn parse_risk(v: &Value, field: &str) -> Result<RiskAssessment, PlanInputError> {
    let o = object(v, field)?;
    let mut r = RiskAssessment::default();
    for (key, val) in o {
        match key.as_str() {
            "level" => r.level = parse_risk_level(val, &format!("{field}.level"))?,
            "days_since_self_harm" => {
                if !val.is_null() {
                    let d = int_in(val, &format!("{field}.days_since_self_harm"), 0, 36_500)?;
                    r.days_since_self_harm = Some(d as u32);
                }
            }
            _ => return err(format!("{field}.{}", clip(key)), "unknown field"),
        }
    }
    Ok(r)
}

fn parse_style(v: &Value) -> Result<StyleDimensions, PlanInputError> {
    let o = object(v, "style")?;
    let mut s = StyleDimensions::default();
    for (key, val) in o {
        let field = format!("style.{}", clip(key));
        let text = val.as_str().unwrap_or("");
        let bad = || PlanInputError {
            field: field.clone(),
            problem: format!("unknown value '{}'", clip(&val.to_string())),
        };
        match key.as_str() {
            "coping" => s.coping = Some(Coping::parse(text).ok_or_else(bad)?),
            "reactance" => s.reactance = Some(Reactance::parse(text).ok_or_else(bad)?),
            "stage_of_change" => {
                s.stage_of_change = Some(StageOfChange::parse(text).ok_or_else(bad)?)
            }
            _ => return err(field, "unknown field"),
        }
    }
    Ok(s)
}

fn parse_preferences(v: &Value) -> Result<Preferences, PlanInputError> {
    // A bare list means "prefer these".
    if v.is_array() {
        return Ok(Preferences {
            prefer: string_list(Some(v), "preferences")?,
            ..Preferences::default()
        });
    }
    let o = object(v, "preferences")?;
    let mut p = Preferences::default();
    for (key, val) in o {
        let field = format!("preferences.{}", clip(key));
        match key.as_str() {
            "prefer" => p.prefer = string_list(Some(val), &field)?,
            "avoid" => p.avoid = string_list(Some(val), &field)?,
            "notes" => p.notes = string_list(Some(val), &field)?,
            _ => return err(field, "unknown field"),
        }
    }
    Ok(p)
}

fn parse_integration(v: &Value) -> Result<IntegrationChoice, PlanInputError> {
    let o = object(v, "integration")?;
    let mut i = IntegrationChoice::default();
    for (key, val) in o {
        let field = format!("integration.{}", clip(key));
        match key.as_str() {
            "model" => {
                i.model = val
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PlanInputError {
                        field: field.clone(),
                        problem: "must be a string".into(),
                    })?
            }
            "home_school" => {
                i.home_school = match val {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return err(field, "must be a string"),
                }
            }
            _ => return err(field, "unknown field"),
        }
    }
    Ok(i)
}

fn parse_measures(
    k: &Knowledge,
    scorer: &dyn MeasureScorer,
    v: &Value,
    field: &str,
) -> Result<BTreeMap<String, MeasureSnapshot>, PlanInputError> {
    let mut out = BTreeMap::new();
    for (id, m) in object(v, field)? {
        let mf = format!("{field}.{}", clip(id));
        if !k.instruments.contains_key(id) {
            return err(mf, "unknown instrument");
        }
        let mo = object(m, &mf)?;
        let Some(Value::Array(items)) = mo.get("items") else {
            return err(format!("{mf}.items"), "required: a list of item answers");
        };
        if let Some(other) = mo.keys().find(|key| key.as_str() != "items") {
            return err(format!("{mf}.{}", clip(other)), "unknown field");
        }
        let mut answers = Vec::with_capacity(items.len());
        for (i, x) in items.iter().enumerate() {
            answers.push(match x {
                Value::Null => None,
                _ => Some(int_in(x, &format!("{mf}.items[{i}]"), 0, 255)? as u8),
            });
        }
        let snap = scorer.score(id, &answers).map_err(|e| PlanInputError {
            field: mf.clone(),
            problem: e,
        })?;
        out.insert(id.clone(), snap);
    }
    Ok(out)
}

fn parse_history(
    k: &Knowledge,
    scorer: &dyn MeasureScorer,
    v: &Value,
) -> Result<Vec<SessionRecord>, PlanInputError> {
    let Value::Array(sessions) = v else {
        return err("history", "must be a list of sessions");
    };
    let mut out: Vec<SessionRecord> = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.iter().enumerate() {
        let sf = format!("history[{i}]");
        let o = object(s, &sf)?;
        let session = match o.get("session") {
            Some(x) => int_in(x, &format!("{sf}.session"), 1, 10_000)? as u32,
            None => return err(format!("{sf}.session"), "required"),
        };
        if let Some(prev) = out.last() {
            if session <= prev.session {
                return err(
                    format!("{sf}.session"),
                    format!(
                        "sessions must be in increasing order ({session} follows {})",
                        prev.session
                    ),
                );
            }
        }
        let mut rec = SessionRecord {
            session,
            measures: BTreeMap::new(),
            techniques: Vec::new(),
            alliance: None,
            homework_completed: None,
            events: Vec::new(),
            risk: None,
        };
        for (key, val) in o {
            let field = format!("{sf}.{}", clip(key));
            match key.as_str() {
                "session" => {}
                "measures" => rec.measures = parse_measures(k, scorer, val, &field)?,
                "techniques" => {
                    for (j, code) in string_list(Some(val), &field)?.into_iter().enumerate() {
                        match k.technique(&code) {
                            Some(t) => rec.techniques.push(t.code.clone()),
                            None => {
                                return err(
                                    format!("{field}[{j}]"),
                                    format!("unknown technique '{}'", clip(&code)),
                                )
                            }
                        }
                    }
                }
                "alliance" => {
                    let a = val.as_f64().filter(|a| (0.0..=40.0).contains(a));
                    rec.alliance = Some(a.ok_or_else(|| PlanInputError {
                        field: field.clone(),
                        problem: "must be a number from 0 to 40".into(),
                    })?);
                }
                "homework_completed" => {
                    rec.homework_completed = Some(val.as_bool().ok_or_else(|| PlanInputError {
                        field: field.clone(),
                        problem: "must be true or false".into(),
                    })?)
                }
                "events" => {
                    for (j, e) in string_list(Some(val), &field)?.into_iter().enumerate() {
                        if !k.vocabulary.session_events.iter().any(|x| x.id == e) {
                            return err(
                                format!("{field}[{j}]"),
                                format!("unknown session event '{}'", clip(&e)),
                            );
                        }
                        rec.events.push(e);
                    }
                }
                "risk" => rec.risk = Some(parse_risk_level(val, &field)?),
                _ => return err(field, "unknown field"),
            }
        }
        out.push(rec);
    }
    Ok(out)
}

/// The measurement engine scores measures for the plan engine: one way to
/// score, whether for a stored submission or a plan case.
impl crate::plan::MeasureScorer for crate::instrument::InstrumentRegistry {
    fn score(
        &self,
        instrument: &str,
        items: &[Option<u8>],
    ) -> Result<crate::plan::MeasureSnapshot, String> {
        let answers = crate::scoring::Answers::from_options(items);
        let score = crate::scoring::score_instrument(self, instrument, &answers)
            .map_err(|e| e.to_string())?;
        let total = match score.total {
            Some(points) => points.0,
            None => {
                let missing: Vec<String> = score.missing.iter().map(u16::to_string).collect();
                return Err(format!(
                    "incomplete: item(s) {} not answered",
                    missing.join(", ")
                ));
            }
        };
        Ok(crate::plan::MeasureSnapshot {
            instrument: score.instrument,
            total,
            caseness: score.caseness.unwrap_or(false),
            band: score.band,
            critical: score
                .critical
                .iter()
                .map(|hit| {
                    (
                        hit.item,
                        u8::try_from(hit.value.clamp(0, 255)).unwrap_or(u8::MAX),
                    )
                })
                .collect(),
        })
    }
}
