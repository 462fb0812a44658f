//! FHIR R4-shaped JSON for a scored response (instruments.md §4), as pure functions.
//!
//! - `QuestionnaireResponse`: `questionnaire` = the LOINC canonical (`http://loinc.org/q/<panel>`)
//!   when the panel code is verified, else Tapestry's own canonical; answers as `valueCoding` with
//!   the LOINC answer code where one is recorded, else `valueInteger`.
//! - `Observation`s: the total (LOINC code only where verified, else a local code), each subscale
//!   and the band as `interpretation` text; numeric values as `valueQuantity` with UCUM `{score}`;
//!   `category` = `survey`; `derivedFrom` the QuestionnaireResponse.
//!
//! LOINC codes are emitted only where the definition marks them verified.

use crate::instrument::InstrumentDef;
use crate::scoring::{Answer, Answers, Score};
use serde_json::{json, Value};

/// Local code system for instruments and scores without a verified LOINC code.
pub const LOCAL_SYSTEM: &str = "urn:tapestry:instrument";

/// Identifiers and times the caller supplies (the domain never reads the clock).
#[derive(Debug, Clone, Copy)]
pub struct FhirContext<'a> {
    /// Id of the QuestionnaireResponse resource.
    pub response_id: &'a str,
    /// `Patient/<id>` reference.
    pub subject: &'a str,
    /// RFC 3339 time the answers were given.
    pub authored: &'a str,
}

fn verified_panel(def: &InstrumentDef) -> Option<&str> {
    def.loinc
        .as_ref()
        .filter(|l| l.verified)
        .and_then(|l| l.panel.as_deref())
}

fn verified_total(def: &InstrumentDef) -> Option<&str> {
    def.loinc
        .as_ref()
        .filter(|l| l.verified)
        .and_then(|l| l.total.as_deref())
}

/// The Questionnaire canonical for an instrument.
pub fn questionnaire_canonical(def: &InstrumentDef) -> String {
    match verified_panel(def) {
        Some(panel) => format!("http://loinc.org/q/{panel}"),
        None => format!("{LOCAL_SYSTEM}:{}|{}", def.id, def.version),
    }
}

/// A QuestionnaireResponse for the raw answers.
pub fn questionnaire_response(
    def: &InstrumentDef,
    answers: &Answers,
    score: &Score,
    ctx: &FhirContext<'_>,
) -> Value {
    let items: Vec<Value> = def
        .items
        .iter()
        .zip(answers.values.iter())
        .filter_map(|(item, answer)| {
            let mut entry = serde_json::Map::new();
            entry.insert("linkId".into(), json!(item.id));
            if let Some(text) = &item.text {
                entry.insert("text".into(), json!(text));
            }
            if item.loinc_verified {
                if let Some(code) = &item.loinc {
                    entry.insert(
                        "code".into(),
                        json!([{ "system": "http://loinc.org", "code": code }]),
                    );
                }
            }
            let value = match answer {
                Answer::Value(v) => {
                    let option = def.option_of(item.number, *v);
                    match option.and_then(|o| o.loinc.as_deref().map(|c| (c, o))) {
                        Some((code, o)) => {
                            let mut coding = json!({ "system": "http://loinc.org", "code": code });
                            if let (Some(map), Some(text)) = (coding.as_object_mut(), &o.text) {
                                map.insert("display".into(), json!(text));
                            }
                            json!({ "valueCoding": coding })
                        }
                        None => json!({ "valueInteger": v }),
                    }
                }
                Answer::NotApplicable => json!({
                    "valueCoding": { "system": LOCAL_SYSTEM, "code": "not-applicable", "display": "Not applicable" }
                }),
                Answer::Missing => return None,
            };
            entry.insert("answer".into(), json!([value]));
            Some(Value::Object(entry))
        })
        .collect();
    json!({
        "resourceType": "QuestionnaireResponse",
        "id": ctx.response_id,
        "questionnaire": questionnaire_canonical(def),
        "status": if score.complete { "completed" } else { "in-progress" },
        "subject": { "reference": ctx.subject },
        "authored": ctx.authored,
        "item": items,
    })
}

fn quantity(value: f64) -> Value {
    json!({
        "value": value,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    })
}

/// Observations for a scored response: the total (if any) and each scored subscale.
pub fn observations(def: &InstrumentDef, score: &Score, ctx: &FhirContext<'_>) -> Vec<Value> {
    let category = json!([{
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey"
        }]
    }]);
    let derived_from =
        json!([{ "reference": format!("QuestionnaireResponse/{}", ctx.response_id) }]);
    let mut out = Vec::new();
    if let Some(total) = score.total {
        let code = match verified_total(def) {
            Some(loinc) => json!({
                "coding": [{ "system": "http://loinc.org", "code": loinc }],
                "text": format!("{} total score", def.title)
            }),
            None => json!({
                "coding": [{ "system": LOCAL_SYSTEM, "code": format!("{}-total", def.id) }],
                "text": format!("{} total score", def.title)
            }),
        };
        let mut obs = json!({
            "resourceType": "Observation",
            "id": format!("{}-total", ctx.response_id),
            "status": "final",
            "category": category,
            "code": code,
            "subject": { "reference": ctx.subject },
            "effectiveDateTime": ctx.authored,
            "valueQuantity": quantity(total.0),
            "derivedFrom": derived_from,
        });
        if let (Some(band), Some(map)) = (&score.band, obs.as_object_mut()) {
            map.insert("interpretation".into(), json!([{ "text": band }]));
        }
        out.push(obs);
    }
    for (id, sub) in &score.subscales {
        let Some(value) = sub.value else { continue };
        let mut obs = json!({
            "resourceType": "Observation",
            "id": format!("{}-{}", ctx.response_id, id),
            "status": "final",
            "category": category,
            "code": {
                "coding": [{ "system": LOCAL_SYSTEM, "code": format!("{}-{}", def.id, id) }],
                "text": format!("{} subscale {}", def.title, id)
            },
            "subject": { "reference": ctx.subject },
            "effectiveDateTime": ctx.authored,
            "valueQuantity": quantity(value.0),
            "derivedFrom": derived_from,
        });
        if let (Some(band), Some(map)) = (&sub.band, obs.as_object_mut()) {
            map.insert("interpretation".into(), json!([{ "text": band }]));
        }
        out.push(obs);
    }
    out
}
