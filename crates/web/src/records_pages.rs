//! The clinician's chart pages (overview, measures, formulation, plan,
//! session review, risk) and the client's "my progress" and "my plan".
//! Server-rendered; the forms are ordinary `<form method="post">` forms
//! named by the form convention (crate::forms), so they work with and
//! without JavaScript.
//! Every piece of stored text is escaped with [`charts::escape`].

use crate::charts::{self, escape as e, ChartPoint, ChartSpec};
use crate::error::ApiError;
use crate::records::{
    knowledge, measure_data, measures_view, sorted_flags, tasks_for, InstrumentMeasures,
    MeasuresView,
};
use crate::routes::Authorized;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::fmt::Write as _;
use tapestry_domain::change::ReliableChange;
use tapestry_domain::ids::ClientId;
use tapestry_domain::knowledge::{EvidenceLevel, Phase};
use tapestry_domain::plan::{ItemStatus, Plan, PlanItem};
use tapestry_store::{PlanOrigin, PlanRecord, PlanStatus};

/// One tab of the chart.
pub struct Tab {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "records_chart.html")]
pub struct ChartPage {
    pub nav: crate::portal::Nav,
    pub name: String,
    pub subtitle: String,
    pub tab_title: String,
    pub tabs: Vec<Tab>,
    pub body: String,
}

#[derive(Template)]
#[template(path = "records_me.html")]
pub struct MePage {
    pub nav: crate::portal::Nav,
    pub title: String,
    pub subtitle: String,
    pub body: String,
}

/// The chart's sections, in order: (path suffix, label).
pub const SECTIONS: [(&str, &str); 9] = [
    ("", "Overview"),
    ("/measures", "Measures"),
    ("/formulation", "Formulation"),
    ("/plan", "Plan"),
    ("/review", "Session review"),
    ("/risk", "Risk"),
    ("/safety-plan", "Safety plan"),
    ("/notes", "Notes"),
    ("/homework", "Homework"),
];

fn tabs(client: ClientId, current: &str) -> Vec<Tab> {
    SECTIONS
        .iter()
        .map(|(suffix, label)| Tab {
            href: format!("/clients/{client}{suffix}"),
            label,
            current: *suffix == current,
        })
        .collect()
}

async fn chart(
    state: &AppState,
    a: &Authorized,
    current: &str,
    body: Result<String, ApiError>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(err) => return err.to_html(),
    };
    let Some(client) = a.client_id else {
        return ApiError::not_found().to_html();
    };
    let practice = a.caller.user.practice_id;
    let tz = crate::pages::viewer_zone(state, practice).await;
    let c = match state.store.client(practice, client).await {
        Ok(Some(c)) => c,
        Ok(None) => return ApiError::not_found().to_html(),
        Err(err) => return ApiError::from(err).to_html(),
    };
    let episodes = state
        .store
        .episodes_for_client(practice, client)
        .await
        .unwrap_or_default();
    let subtitle = match episodes.iter().max_by_key(|e| e.opened_at) {
        Some(ep) => format!(
            "Episode {} since {}",
            ep.status.as_str().replace('_', " "),
            crate::pages::local_date(tz, ep.opened_at)
        ),
        None => "No episode of care yet".to_string(),
    };
    let label = SECTIONS
        .iter()
        .find(|(s, _)| *s == current)
        .map(|(_, l)| *l)
        .unwrap_or("Overview");
    crate::pages::render(&ChartPage {
        nav: crate::portal::nav(state, &a.caller).await,
        name: c.display_name,
        subtitle,
        tab_title: label.to_string(),
        tabs: tabs(client, current),
        body,
    })
}

fn badge(level: EvidenceLevel, verified: bool) -> String {
    let l = level.as_str();
    format!(
        r#"<span class="badge ev ev-{cls}" title="Evidence level {l}{v}">Evidence {l}{v2}</span>"#,
        cls = e(&l.to_lowercase()),
        l = e(l),
        v = if verified { "" } else { ", not yet verified" },
        v2 = if verified { "" } else { " (unverified)" },
    )
}

fn rc_text(rc: ReliableChange, higher_is_better: bool) -> &'static str {
    let _ = higher_is_better;
    match rc {
        ReliableChange::Improved => "reliable improvement",
        ReliableChange::Deteriorated => "reliable deterioration",
        ReliableChange::NoReliableChange => "no reliable change",
    }
}

fn flags_html(
    flags: &[crate::records::FlagView],
    tz: chrono_tz::Tz,
    open_only: bool,
    with_forms: bool,
) -> String {
    let mut h = String::new();
    let list: Vec<_> = flags.iter().filter(|f| f.open || !open_only).collect();
    if list.is_empty() {
        return String::from(r#"<p class="muted">No open risk flags.</p>"#);
    }
    h.push_str(r#"<ul class="flags">"#);
    for f in list {
        let what = match (f.item, f.value) {
            (Some(i), Some(v)) => format!("{} item {i} answered {v}", f.instrument.to_uppercase()),
            _ => format!(
                "{}: level {}",
                f.instrument,
                f.level.clone().unwrap_or_else(|| "not given".into())
            ),
        };
        let _ = write!(
            h,
            r#"<li class="flag flag-{c}"><p><strong class="pill pill-{c}">{C}</strong> {what} <span class="muted">raised {at} · rule {rule}</span></p><p>{action}</p>"#,
            c = f.colour,
            C = if f.colour == "red" { "Red" } else { "Amber" },
            what = e(&what),
            at = crate::pages::local_time(tz, f.raised_at),
            rule = e(&f.rule),
            action = e(&f.action),
        );
        if f.open && with_forms {
            let _ = write!(
                h,
                r#"<form class="stack" data-json="true" method="post" action="/api/v1/risk-flags/{id}/close"><label for="note-{id}">Closing note (required)</label><textarea id="note-{id}" name="note" required rows="3"></textarea><button type="submit">Close flag with this note</button></form>"#,
                id = e(&f.id)
            );
        } else if let (Some(at), Some(note)) = (f.closed_at, &f.closing_note) {
            let _ = write!(
                h,
                r#"<p class="muted">Closed {} — {}</p>"#,
                crate::pages::local_date(tz, at),
                e(note)
            );
        }
        h.push_str("</li>");
    }
    h.push_str("</ul>");
    h
}

fn latest_table(view: &MeasuresView) -> String {
    if view.instruments.is_empty() {
        return String::from(r#"<p class="muted">No measures yet.</p>"#);
    }
    let mut h = String::from(
        r#"<table class="scores"><caption>Latest scores</caption><thead><tr><th scope="col">Measure</th><th scope="col">Latest</th><th scope="col">Band</th><th scope="col">Since intake</th><th scope="col">On track</th></tr></thead><tbody>"#,
    );
    for m in &view.instruments {
        let latest = m.latest.as_ref();
        let total = latest
            .and_then(|p| p.total)
            .map(|t| format!("{t}"))
            .unwrap_or_else(|| "incomplete".into());
        let band = latest.and_then(|p| p.band.clone()).unwrap_or_default();
        let since = m
            .change
            .as_ref()
            .and_then(|c| c.sessions.last().map(|s| (c.baseline.0, s)))
            .map(|(base, s)| {
                format!(
                    "{:+} from {} ({})",
                    s.change.0,
                    base,
                    rc_text(s.reliable_change, m.higher_is_better)
                )
            })
            .unwrap_or_default();
        let track = match m.not_on_track {
            Some(true) => r#"<span class="pill pill-amber">Not on track</span>"#.to_string(),
            Some(false) => r#"<span class="pill pill-ok">On track</span>"#.to_string(),
            None => r#"<span class="muted">too early</span>"#.to_string(),
        };
        let _ = write!(
            h,
            r#"<tr><th scope="row">{name}</th><td>{total}</td><td>{band}</td><td>{since}</td><td>{track}</td></tr>"#,
            name = e(&m.name),
            total = e(&total),
            band = e(&band),
            since = e(&since),
        );
    }
    h.push_str("</tbody></table>");
    h
}

/// `GET /clients/{id}` body: the overview.
pub async fn overview_body(state: &AppState, a: &Authorized) -> Result<String, ApiError> {
    let client = a.client_id.ok_or_else(ApiError::not_found)?;
    let practice = a.caller.user.practice_id;
    let tz = crate::pages::viewer_zone(state, practice).await;
    let data = measure_data(state, practice, client).await?;
    let view = measures_view(state, &data);
    let plan = state
        .store
        .latest_plan(practice, client)
        .await
        .ok()
        .flatten();
    let flags = sorted_flags(&data.flags);
    let mut h = String::new();
    let open = flags.iter().filter(|f| f.open).count();
    let _ = write!(
        h,
        r#"<section class="card risk-summary" aria-labelledby="risk-h"><h2 id="risk-h">Open risk flags <span class="count">{open}</span></h2>{}</section>"#,
        flags_html(&flags, tz, true, false)
    );
    let phase = match &plan {
        Some(p) => format!(
            "{} · plan version {} ({}) · care intensity {}",
            phase_name(p.plan.phase),
            p.version,
            status_label(p.status),
            p.plan.care_intensity
        ),
        None => "No plan yet".into(),
    };
    let _ = write!(
        h,
        r#"<section class="card" aria-labelledby="phase-h"><h2 id="phase-h">Phase of care</h2><p>{}</p></section>"#,
        e(&phase)
    );
    let _ = write!(
        h,
        r#"<section class="card" aria-labelledby="scores-h"><h2 id="scores-h">Measures</h2>{}</section>"#,
        latest_table(&view)
    );
    Ok(h)
}

/// The overview page (`/clients/{id}`), used by the core client page.
pub async fn overview_page(state: &AppState, a: &Authorized) -> Response {
    let body = overview_body(state, a).await;
    chart(state, a, "", body).await
}

fn chart_points(m: &InstrumentMeasures) -> Vec<ChartPoint> {
    m.points
        .iter()
        .enumerate()
        .map(|(i, p)| ChartPoint {
            session: u32::try_from(i + 1).unwrap_or(u32::MAX),
            total: p.total,
            risk: p.risk,
        })
        .collect()
}

/// `GET /clients/{id}/measures`.
pub async fn measures_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let practice = a.caller.user.practice_id;
        let tz = crate::pages::viewer_zone(&state, practice).await;
        let data = measure_data(&state, practice, client).await?;
        let view = measures_view(&state, &data);
        let mut h = String::new();
        if view.instruments.is_empty() {
            h.push_str(r#"<section class="card"><p class="muted">No measures have been completed in this episode yet.</p></section>"#);
        }
        let min = tapestry_store::IngestSettings::default().min_curve_episodes;
        for (n, m) in view.instruments.iter().enumerate() {
            let Some(def) = state.registry.get(&m.instrument) else {
                continue;
            };
            let curve = state
                .store
                .latest_recovery_curve(practice, &m.instrument)
                .await?
                .filter(|c| c.curve.n_episodes >= min)
                .map(|c| c.curve);
            let points = chart_points(m);
            let dom_id = format!("chart-{n}");
            let spec = ChartSpec {
                def,
                points: &points,
                expected: curve.as_ref(),
                dom_id: &dom_id,
            };
            let _ = write!(
                h,
                r#"<section class="card measure" aria-labelledby="{dom_id}-h"><h2 id="{dom_id}-h">{name}</h2><figure>{svg}<figcaption class="sr-only">{alt}</figcaption></figure>"#,
                name = e(&m.name),
                svg = charts::render(&spec),
                alt = e(&charts::text_alternative(&spec)),
            );
            if let Some(c) = &m.change {
                let last = c.sessions.last();
                let _ = write!(
                    h,
                    r#"<p>Baseline {}; reliable-change threshold {} points{}. {}</p>"#,
                    c.baseline.0,
                    c.reliable_change_threshold.0,
                    if c.reliable_change_verified {
                        ""
                    } else {
                        " (threshold not yet verified)"
                    },
                    e(&last
                        .map(|s| format!(
                            "Latest: {} ({:+}), {}.",
                            s.score.0,
                            s.change.0,
                            rc_text(s.reliable_change, m.higher_is_better)
                        ))
                        .unwrap_or_default())
                );
                let _ = write!(
                    h,
                    r#"<p>Trajectory: {}</p>"#,
                    e(&c.not_on_track.reason)
                );
            }
            if let (Some(true), Some(reason)) = (m.not_on_track, &m.track_reason) {
                let _ = write!(
                    h,
                    r#"<p class="notice notice-amber"><strong>Not on track.</strong> {}{}</p>"#,
                    e(reason),
                    m.curve_n
                        .map(|n| format!(" (expected-recovery curve from {n} episodes)"))
                        .unwrap_or_default()
                );
            }
            h.push_str(r#"<details><summary>Show as table</summary><table><thead><tr><th scope="col">Session</th><th scope="col">Date</th><th scope="col">Total</th><th scope="col">Band</th><th scope="col">Risk signal</th></tr></thead><tbody>"#);
            for (i, p) in m.points.iter().enumerate() {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    i + 1,
                    crate::pages::local_date(tz, p.submitted_at),
                    p.total.map(|t| t.to_string()).unwrap_or_else(|| "incomplete".into()),
                    e(p.band.as_deref().unwrap_or("")),
                    if p.risk { "yes" } else { "" }
                );
            }
            h.push_str("</tbody></table></details></section>");
        }
        Ok(h)
    }
    .await;
    chart(&state, &a, "/measures", body).await
}

fn lines(list: &[String]) -> String {
    e(&list.join("\n"))
}

/// `GET /clients/{id}/formulation`: the editor (five Ps, problems,
/// dimensions, goals, preferences, style, flags) and the version history.
pub async fn formulation_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let practice = a.caller.user.practice_id;
        let tz = crate::pages::viewer_zone(&state, practice).await;
        let k = knowledge(&state)?;
        let versions = state.store.formulations(practice, client).await?;
        let current = versions.last();
        let f = current
            .map(|v| v.formulation.clone())
            .unwrap_or_else(|| tapestry_domain::formulation::Formulation::new(18, Vec::new()));
        let mut h = String::new();
        let _ = write!(
            h,
            r#"<section class="card"><h2>Case formulation</h2><p class="muted">{}</p>"#,
            match current {
                Some(v) => format!(
                    "Version {} · {} · {}",
                    v.version,
                    crate::pages::local_date(tz, v.created_at),
                    e(&v.reason)
                ),
                None => "No formulation yet. The plan is generated from it.".into(),
            }
        );
        let _ = write!(
            h,
            r#"<form class="stack formulation" data-json="true" method="post" action="/api/v1/clients/{client}/formulations"><fieldset><legend>Client</legend><label for="f-age">Age</label><input id="f-age" name="formulation.age:number" type="number" min="0" max="120" value="{age}" required></fieldset><fieldset><legend>Presenting problems</legend><p class="hint">The first ticked problem is the primary focus.</p><input type="hidden" name="formulation.presenting_problems[]" value="">"#,
            age = f.age
        );
        for p in &k.vocabulary.problems {
            let checked = f.presenting_problems.contains(&p.id);
            let _ = write!(
                h,
                r#"<label class="check"><input type="checkbox" name="formulation.presenting_problems[]" value="{id}"{c}> {label}</label>"#,
                id = e(&p.id),
                c = if checked { " checked" } else { "" },
                label = e(&p.label)
            );
        }
        h.push_str(r#"</fieldset><fieldset><legend>The five Ps (one statement per line)</legend>"#);
        for (name, label, list) in [
            ("presenting", "Presenting", &f.five_ps.presenting),
            ("predisposing", "Predisposing", &f.five_ps.predisposing),
            ("precipitating", "Precipitating", &f.five_ps.precipitating),
            ("perpetuating", "Perpetuating", &f.five_ps.perpetuating),
            ("protective", "Protective", &f.five_ps.protective),
        ] {
            let _ = write!(
                h,
                r#"<label for="f-{name}">{label}</label><textarea id="f-{name}" name="formulation.five_ps.{name}:lines" rows="3">{v}</textarea>"#,
                v = lines(list)
            );
        }
        h.push_str(r#"</fieldset><fieldset><legend>Dimension ratings (0–10: how central)</legend><div class="grid">"#);
        for d in &k.vocabulary.dimensions {
            let v = f.dimension_ratings.get(&d.id).copied();
            let _ = write!(
                h,
                r#"<label for="d-{id}">{label}<input id="d-{id}" name="formulation.dimension_ratings.{id}:number" type="number" min="0" max="10" value="{v}"></label>"#,
                id = e(&d.id),
                label = e(&d.label),
                v = v.map(|x| x.to_string()).unwrap_or_default()
            );
        }
        let _ = write!(
            h,
            r#"</div></fieldset><fieldset><legend>Client's goals and strengths</legend><label for="f-goals">Goals, in the client's words (one per line)</label><textarea id="f-goals" name="formulation.goals:lines" rows="3">{}</textarea><label for="f-strengths">Strengths</label><textarea id="f-strengths" name="formulation.strengths:lines" rows="2">{}</textarea><label for="f-prefer">Preferences: prefer (one per line)</label><textarea id="f-prefer" name="formulation.preferences.prefer:lines" rows="2">{}</textarea><label for="f-avoid">Preferences: avoid</label><textarea id="f-avoid" name="formulation.preferences.avoid:lines" rows="2">{}</textarea><label for="f-cultural">Cultural notes, as the client describes them</label><textarea id="f-cultural" name="formulation.cultural_notes:lines" rows="2">{}</textarea></fieldset>"#,
            lines(&f.goals),
            lines(&f.strengths),
            lines(&f.preferences.prefer),
            lines(&f.preferences.avoid),
            lines(&f.cultural_notes)
        );
        let style = serde_json::to_value(&f.style).unwrap_or_default();
        let sel = |name: &str, options: &[&str]| {
            let cur = style.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let mut s = format!(
                r#"<label for="s-{name}">{}</label><select id="s-{name}" name="formulation.style.{name}:opt"><option value="">not assessed</option>"#,
                name.replace('_', " ")
            );
            for o in options {
                let _ = write!(
                    s,
                    r#"<option value="{o}"{}>{o}</option>"#,
                    if *o == cur { " selected" } else { "" }
                );
            }
            s.push_str("</select>");
            s
        };
        let _ = write!(
            h,
            r#"<fieldset><legend>Style</legend>{}{}{}</fieldset><fieldset><legend>Contraindication flags</legend>"#,
            sel("coping", &tapestry_domain::knowledge::COPING),
            sel("reactance", &tapestry_domain::knowledge::REACTANCE_SCALE),
            sel("stage_of_change", &tapestry_domain::knowledge::STAGE_SCALE),
        );
        for fl in &k.vocabulary.flags {
            let _ = write!(
                h,
                r#"<label class="check"><input type="checkbox" name="formulation.flags[]" value="{id}"{c}> {label}</label>"#,
                id = e(&fl.id),
                c = if f.flags.contains(&fl.id) { " checked" } else { "" },
                label = e(&fl.label)
            );
        }
        let risk = f.risk.level.as_str();
        h.push_str(r#"</fieldset><fieldset><legend>Risk</legend><label for="f-risk">Assessed risk level</label><select id="f-risk" name="formulation.risk.level">"#);
        for l in tapestry_domain::knowledge::RISK_SCALE {
            let _ = write!(
                h,
                r#"<option value="{l}"{}>{l}</option>"#,
                if l == risk { " selected" } else { "" }
            );
        }
        let _ = write!(
            h,
            r#"</select></fieldset><label for="f-reason">Reason for this version{}</label><input id="f-reason" name="reason:opt" type="text"{}><button type="submit">Save as version {}</button></form></section>"#,
            if current.is_some() { " (required)" } else { "" },
            if current.is_some() { " required" } else { "" },
            current.map(|v| v.version + 1).unwrap_or(1)
        );
        if !versions.is_empty() {
            h.push_str(r#"<section class="card"><h2>Version history</h2><ol class="versions">"#);
            for v in versions.iter().rev() {
                let _ = write!(
                    h,
                    "<li>Version {} · {} · {}</li>",
                    v.version,
                    crate::pages::local_time(tz, v.created_at),
                    e(&v.reason)
                );
            }
            h.push_str("</ol></section>");
        }
        Ok(h)
    }
    .await;
    chart(&state, &a, "/formulation", body).await
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::P0 => "P0 · Safety and engagement",
        Phase::P1 => "P1 · Stabilisation and skills",
        Phase::P2 => "P2 · Active change and processing",
        Phase::P3 => "P3 · Consolidation and relapse prevention",
    }
}

fn status_label(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Draft => "draft",
        PlanStatus::Accepted => "accepted",
    }
}

fn item_status(s: ItemStatus) -> &'static str {
    match s {
        ItemStatus::Active => "active",
        ItemStatus::Scheduled => "scheduled",
        ItemStatus::PendingGate => "waiting for its gate",
        ItemStatus::Paused => "paused",
        ItemStatus::Removed => "removed",
    }
}

fn item_html(client: ClientId, version: u32, i: &PlanItem) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<li class="item status-{st}"><h4>{name} <span class="code">{code}</span> <span class="school">{school}</span> <span class="pill">{status}</span></h4><p class="why">{summary}</p><details class="why-chain"><summary>Why this technique</summary><ol>"#,
        st = e(&format!("{:?}", i.status).to_lowercase()),
        name = e(&i.name),
        code = e(&i.code),
        school = e(&i.school),
        status = item_status(i.status),
        summary = e(&i.why.summary),
    );
    for step in &i.why.chain {
        let _ = write!(
            h,
            r#"<li><span class="features">{f}</span> → rule <code>{rule}</code> ({rt}): {ex} {badges}</li>"#,
            f = e(&step.features.join("; ")),
            rule = e(&step.rule),
            rt = e(&step.rule_type),
            ex = e(&step.explanation),
            badges = step
                .evidence
                .iter()
                .map(|ev| badge(ev.level, ev.verified))
                .collect::<String>()
        );
    }
    let _ = write!(
        h,
        r#"<li>Mechanism of change: {}</li></ol></details><p class="evidence">{}</p>"#,
        e(&i.why.mechanism),
        i.evidence
            .iter()
            .map(|ev| badge(ev.level, ev.verified))
            .collect::<String>()
    );
    if !i.homework.title.is_empty() {
        let _ = write!(
            h,
            r#"<p class="homework"><strong>Homework:</strong> {} — {}</p>"#,
            e(&i.homework.title),
            e(&i.homework.instructions)
        );
    }
    for c in &i.cautions {
        let _ = write!(
            h,
            r#"<p class="notice notice-amber">Caution: {} Adaptation: {}</p>"#,
            e(&c.text),
            e(&c.adaptation)
        );
    }
    if let Some(n) = &i.clinician {
        let _ = write!(
            h,
            r#"<p class="clinician">Clinician {}: {}{}</p>"#,
            e(&n.action),
            e(&n.reason),
            n.edit
                .as_ref()
                .map(|x| format!(" ({})", e(x)))
                .unwrap_or_default()
        );
    }
    let _ = write!(
        h,
        r#"<form class="decide" data-json="true" method="post" action="/api/v1/clients/{client}/plans/{version}/decisions"><input type="hidden" name="code" value="{code}"><label for="act-{code}">Decision on {code}</label><select id="act-{code}" name="action"><option value="accept">Accept</option><option value="edit">Edit</option><option value="remove">Remove</option></select><label for="chg-{code}">What changes (for edit)</label><input id="chg-{code}" name="change:opt" type="text"><label for="rsn-{code}">Reason (required)</label><input id="rsn-{code}" name="reason" type="text" required><button type="submit">Record decision</button></form></li>"#,
        code = e(&i.code),
    );
    h
}

fn plan_html(client: ClientId, rec: &PlanRecord, editable: bool) -> String {
    let p: &Plan = &rec.plan;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<section class="card plan-head"><h2>Plan version {v} <span class="pill pill-{st}">{st}</span></h2><p><strong>Current phase:</strong> {phase}. {why}</p><p><strong>Care intensity:</strong> {ci}. <strong>Style:</strong> directiveness {dir}, focus {focus}, arousal {ar}. <strong>Integration:</strong> {model}{home} — {desc}</p>"#,
        v = rec.version,
        st = status_label(rec.status),
        phase = phase_name(p.phase),
        why = e(&p.phase_why.join(" ")),
        ci = e(&p.care_intensity),
        dir = e(&p.style.directiveness),
        focus = e(&p.style.focus),
        ar = e(&p.style.arousal_target),
        model = e(&p.integration.model),
        home = p
            .integration
            .home_school
            .as_ref()
            .map(|s| format!(" (home: {})", e(s)))
            .unwrap_or_default(),
        desc = e(&p.integration.description),
    );
    for al in &p.alerts {
        let cls = if al.level == "red" { "red" } else { "amber" };
        let _ = write!(
            h,
            r#"<p class="notice notice-{cls}"><strong>{}</strong> {}</p>"#,
            e(&al.rule),
            e(&al.text)
        );
    }
    if editable && rec.status == PlanStatus::Draft {
        let _ = write!(
            h,
            r#"<form class="stack" data-json="true" method="post" action="/api/v1/clients/{client}/plans/{v}/decisions"><input type="hidden" name="action" value="accept_plan"><label for="accept-reason">Reason for accepting (required)</label><input id="accept-reason" name="reason" type="text" required><button type="submit">Accept this plan</button></form>"#,
            v = rec.version
        );
    }
    h.push_str("</section><ol class=\"timeline\">");
    for phase in Phase::ALL {
        let items: Vec<&PlanItem> = p.items.iter().filter(|i| i.phase == phase).collect();
        let _ = write!(
            h,
            r#"<li class="phase{cur}"><h3>{name}{here}</h3>"#,
            cur = if phase == p.phase { " current" } else { "" },
            name = phase_name(phase),
            here = if phase == p.phase {
                " <span class=\"pill\">now</span>"
            } else {
                ""
            },
        );
        if items.is_empty() {
            h.push_str(r#"<p class="muted">No techniques in this phase.</p>"#);
        } else {
            h.push_str(r#"<ul class="items">"#);
            for i in items {
                h.push_str(&item_html(client, rec.version, i));
            }
            h.push_str("</ul>");
        }
        h.push_str("</li>");
    }
    h.push_str("</ol>");
    let _ = write!(
        h,
        r#"<section class="card"><details><summary>Techniques not in this plan ({})</summary><ul>"#,
        p.excluded.len()
    );
    for x in &p.excluded {
        let _ = write!(
            h,
            r#"<li><strong>{}</strong> <span class="code">{}</span>: {} <span class="muted">(rule {}, {})</span></li>"#,
            e(&x.name),
            e(&x.code),
            e(&x.reason),
            e(&x.rule),
            e(&x.rule_type)
        );
    }
    h.push_str("</ul>");
    if editable {
        let _ = write!(
            h,
            r#"<form class="stack" data-json="true" method="post" action="/api/v1/clients/{client}/plans/{v}/decisions"><input type="hidden" name="action" value="override"><label for="ov-code">Override an exclusion: technique code</label><input id="ov-code" name="code" type="text" required><label for="ov-phase">Phase</label><select id="ov-phase" name="phase"><option>P1</option><option>P2</option><option>P3</option><option>P0</option></select><label for="ov-reason">Reason (required)</label><input id="ov-reason" name="reason" type="text" required><button type="submit">Add over the exclusion</button></form>"#,
            v = rec.version
        );
    }
    h.push_str("</details></section>");
    h
}

#[derive(serde::Deserialize)]
pub struct PlanQuery {
    pub from: Option<u32>,
    pub to: Option<u32>,
}

/// `GET /clients/{id}/plan`: the latest version as a timeline, decisions,
/// version history and (with `?from=&to=`) a diff.
pub async fn plan_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Query(q): Query<PlanQuery>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let practice = a.caller.user.practice_id;
        let tz = crate::pages::viewer_zone(&state, practice).await;
        let versions = state.store.plan_versions(practice, client).await?;
        let editable = a.caller.actor.client_id.is_none();
        let mut h = String::new();
        if editable {
            let _ = write!(
                h,
                r#"<form class="inline" data-json="true" method="post" action="/api/v1/clients/{client}/plans"><button type="submit">Generate a new plan version</button> <span class="muted">from the latest formulation, measures and history</span></form>"#
            );
        }
        let Some(latest) = versions.last() else {
            h.push_str(r#"<section class="card"><p class="muted">No plan yet. Write a formulation, then generate a plan.</p></section>"#);
            return Ok(h);
        };
        h.push_str(&plan_html(client, latest, editable));
        h.push_str(r#"<section class="card"><h2>Version history</h2><ol class="versions">"#);
        for v in versions.iter().rev() {
            let origin = match &v.origin {
                PlanOrigin::Generated => "generated by the engine".to_string(),
                PlanOrigin::AcceptedPlan { reason } => format!("accepted: {reason}"),
                PlanOrigin::ItemDecision { decision, reason } => {
                    format!("{} {}: {reason}", decision_label(decision), decision.code())
                }
                PlanOrigin::SessionReview { reason } => format!("session review: {reason}"),
            };
            let _ = write!(
                h,
                r#"<li>Version {} · {} · {} · {}{}</li>"#,
                v.version,
                status_label(v.status),
                crate::pages::local_time(tz, v.created_at),
                e(&origin),
                if v.version > 1 {
                    format!(
                        r#" · <a href="/clients/{client}/plan?from={}&amp;to={}">what changed</a>"#,
                        v.version - 1,
                        v.version
                    )
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</ol></section>");
        if let (Some(from), Some(to)) = (q.from, q.to) {
            let a_plan = versions.iter().find(|v| v.version == from);
            let b_plan = versions.iter().find(|v| v.version == to);
            if let (Some(x), Some(y)) = (a_plan, b_plan) {
                let d = tapestry_domain::plan::diff(&x.plan, &y.plan);
                let _ = write!(
                    h,
                    r#"<section class="card" aria-labelledby="diff-h"><h2 id="diff-h">Changes from version {from} to {to}</h2><ul>"#
                );
                if d.is_empty() {
                    h.push_str("<li>No change to phases, items or exclusions (a decision or acceptance was recorded).</li>");
                }
                if let Some((p1, p2)) = d.phase {
                    let _ = write!(h, "<li>Phase {} → {}</li>", p1.as_str(), p2.as_str());
                }
                for c in &d.added {
                    let _ = write!(h, "<li>Added {}</li>", e(c));
                }
                for c in &d.removed {
                    let _ = write!(h, "<li>Removed {}</li>", e(c));
                }
                for (c, s1, s2) in &d.status_changed {
                    let _ = write!(
                        h,
                        "<li>{}: {} → {}</li>",
                        e(c),
                        item_status(*s1),
                        item_status(*s2)
                    );
                }
                for c in &d.newly_excluded {
                    let _ = write!(h, "<li>Now excluded: {}</li>", e(c));
                }
                for c in &d.no_longer_excluded {
                    let _ = write!(h, "<li>No longer excluded: {}</li>", e(c));
                }
                h.push_str("</ul></section>");
            }
        }
        Ok(h)
    }
    .await;
    chart(&state, &a, "/plan", body).await
}

fn decision_label(d: &tapestry_domain::plan::Decision) -> &'static str {
    use tapestry_domain::plan::Decision as D;
    match d {
        D::Accept { .. } => "accepted",
        D::Edit { .. } => "edited",
        D::Remove { .. } => "removed",
        D::Add { .. } => "added",
    }
}

/// `GET /clients/{id}/review`: run a session review; earlier reviews.
pub async fn review_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let practice = a.caller.user.practice_id;
        let tz = crate::pages::viewer_zone(&state, practice).await;
        let reviews = state.store.session_reviews(practice, client).await?;
        let mut h = String::new();
        if a.caller.actor.client_id.is_none() {
            let _ = write!(
                h,
                r#"<section class="card"><h2>Review this session</h2><p class="muted">Uses the newest measures. List the techniques used today by code (for example T06, T12).</p><form class="stack" data-json="true" method="post" action="/api/v1/clients/{client}/session-review"><label for="r-tech">Techniques used (codes, separated by commas)</label><input id="r-tech" name="techniques:csv" type="text"><button type="submit">Review session</button></form></section>"#
            );
        }
        if reviews.is_empty() {
            h.push_str(r#"<section class="card"><p class="muted">No session reviews yet.</p></section>"#);
        }
        for r in reviews.iter().rev() {
            let rv = &r.content.review;
            let _ = write!(
                h,
                r#"<section class="card review"><h2>Review of {}</h2><p class="muted">Techniques used: {}</p>"#,
                crate::pages::local_time(tz, r.created_at),
                e(&if r.content.techniques.is_empty() {
                    "none recorded".to_string()
                } else {
                    r.content.techniques.join(", ")
                })
            );
            if rv.risk_regression {
                h.push_str(r#"<p class="notice notice-red"><strong>Risk rose.</strong> The plan went back to P0 (safety and engagement); the other work is paused, not deleted.</p>"#);
            }
            if rv.suggestions.is_empty() {
                h.push_str(r#"<p>No adaptation suggested: continue the plan.</p>"#);
            } else {
                h.push_str(r#"<h3>Suggestions</h3><ul class="suggestions">"#);
                for s in &rv.suggestions {
                    let _ = write!(
                        h,
                        r#"<li><p><strong>{rule}</strong> {text}</p><p class="muted">Why: {why}</p>{adds}{withheld}<p>{badges}</p></li>"#,
                        rule = e(&s.rule),
                        text = e(&s.text),
                        why = e(&s.why),
                        adds = if s.adds.is_empty() {
                            String::new()
                        } else {
                            format!("<p>Adds: {}</p>", e(&s.adds.join(", ")))
                        },
                        withheld = s
                            .withheld
                            .iter()
                            .map(|w| format!(
                                r#"<p class="muted">Not added: {} ({}: {})</p>"#,
                                e(&w.code),
                                e(&w.rule),
                                e(&w.reason)
                            ))
                            .collect::<String>(),
                        badges = s
                            .evidence
                            .iter()
                            .map(|ev| badge(ev.level, ev.verified))
                            .collect::<String>()
                    );
                }
                h.push_str("</ul>");
            }
            if let Some(list) = &rv.checklist {
                h.push_str(r#"<h3>Not on track: clinical-support checklist</h3><ul class="checklist">"#);
                for c in list {
                    let _ = write!(
                        h,
                        "<li><strong>{}</strong>: {}</li>",
                        e(&c.domain.replace('_', " ")),
                        e(&c.prompt)
                    );
                }
                h.push_str("</ul>");
            }
            h.push_str("</section>");
        }
        Ok(h)
    }
    .await;
    chart(&state, &a, "/review", body).await
}

/// `GET /clients/{id}/risk`: open flags with the close-with-note form, tasks.
pub async fn risk_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let practice = a.caller.user.practice_id;
        let tz = crate::pages::viewer_zone(&state, practice).await;
        let data = measure_data(&state, practice, client).await?;
        let flags = sorted_flags(&data.flags);
        let tasks: Vec<_> = tasks_for(&state, &a.caller)
            .await?
            .into_iter()
            .filter(|t| t.client_id == client.to_string())
            .collect();
        let mut h = String::new();
        let _ = write!(
            h,
            r#"<section class="card" aria-labelledby="flags-h"><h2 id="flags-h">Risk flags</h2><p class="muted">Flags are never closed automatically; an improving total does not hide them. Close a flag only with a note.</p>{}</section>"#,
            flags_html(&flags, tz, false, true)
        );
        if let Some(episode) = &data.episode {
            h.push_str(&assessment_form(&state, client, episode.id));
        }
        h.push_str(r#"<section class="card" aria-labelledby="tasks-h"><h2 id="tasks-h">Open tasks</h2>"#);
        if tasks.is_empty() {
            h.push_str(r#"<p class="muted">No open tasks for you on this record.</p>"#);
        } else {
            h.push_str("<ul>");
            for t in tasks {
                let _ = write!(
                    h,
                    r#"<li><span class="pill pill-{c}">{c}</span> <strong>{}</strong> — {} <span class="muted">due {}</span></li>"#,
                    e(&t.title),
                    e(&t.detail),
                    crate::pages::local_time(tz, t.due_at),
                    c = t.colour
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>");
        Ok(h)
    }
    .await;
    chart(&state, &a, "/risk", body).await
}

/// The structured risk assessment as a form, posted to the episode's assessments
/// (`answers[]:number`: a list of numbers, in item order; docs/forms.md).
fn assessment_form(
    state: &AppState,
    client: tapestry_domain::ids::ClientId,
    episode: tapestry_domain::ids::EpisodeId,
) -> String {
    let Some(def) = state.registry.get("risk_assessment") else {
        return String::new();
    };
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<section class="card" aria-labelledby="assess-h"><h2 id="assess-h">Structured risk assessment</h2><p class="muted">{} A high or imminent result raises a red flag and an immediate task.</p><form class="stack" data-json="true" method="post" action="/api/v1/clients/{client}/episodes/{episode}/assessments"><input type="hidden" name="instrument" value="{}">"#,
        e(def.stem.as_deref().unwrap_or("")),
        e(&def.id)
    );
    for item in &def.items {
        let n = item.number;
        let _ = write!(
            h,
            r#"<label for="ra-{n}">{}</label><select id="ra-{n}" name="answers[]:number" required>"#,
            e(item.text.as_deref().unwrap_or(&item.id))
        );
        for o in def
            .answer_set_of(item)
            .map(|s| s.options.as_slice())
            .unwrap_or(&[])
        {
            let _ = write!(
                h,
                r#"<option value="{}">{}</option>"#,
                o.value,
                e(o.text.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</select>");
    }
    h.push_str(r#"<button type="submit">Record the assessment</button></form><p class="muted">Tapestry's own form, not a validated instrument: your clinical judgement decides.</p></section>"#);
    h
}

async fn me_page(
    state: &AppState,
    a: &Authorized,
    title: &str,
    subtitle: &str,
    body: Result<String, ApiError>,
) -> Response {
    match body {
        Ok(body) => crate::pages::render(&MePage {
            nav: crate::portal::nav(state, &a.caller).await,
            title: title.into(),
            subtitle: subtitle.into(),
            body,
        }),
        Err(err) => err.to_html(),
    }
}

/// A plain-language sentence about one measure's change since the start.
pub fn progress_sentence(m: &InstrumentMeasures) -> String {
    let what = match m.instrument.as_str() {
        "phq9" | "phq8" | "phq2" => "mood",
        "gad7" | "gad2" => "anxiety",
        "isi" | "sleep_diary" => "sleep",
        "pcl5" => "trauma-related",
        "core10" | "k10" => "overall distress",
        _ => "",
    };
    let subject = if what.is_empty() {
        format!("your {} scores", m.name)
    } else {
        format!("your {what} scores")
    };
    let Some(change) = &m.change else {
        return format!("We will show how {subject} change once you have answered twice.");
    };
    match change.sessions.last() {
        Some(s) if change.sessions.len() >= 2 => match s.reliable_change {
            ReliableChange::Improved => format!(
                "{} have improved by more than chance since you started.",
                capital(&subject)
            ),
            ReliableChange::Deteriorated => format!(
                "{} are higher than when you started, by more than chance. Your clinician will talk this through with you.",
                capital(&subject)
            ),
            ReliableChange::NoReliableChange => format!(
                "{} have not yet changed by more than chance since you started. That is common early on.",
                capital(&subject)
            ),
        },
        _ => format!("We will show how {subject} change once you have answered twice."),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `GET /me/progress`: the client's progress in plain language.
pub async fn my_progress(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let data = measure_data(&state, a.caller.user.practice_id, client).await?;
        let view = measures_view(&state, &data);
        let mut h = String::new();
        if view.instruments.is_empty() {
            h.push_str(r#"<section class="card"><p>You have not answered any questionnaires yet. When you do, you will see here how things are changing.</p></section>"#);
        }
        for (n, m) in view.instruments.iter().enumerate() {
            let Some(def) = state.registry.get(&m.instrument) else {
                continue;
            };
            let points = chart_points(m);
            let dom_id = format!("mine-{n}");
            let spec = ChartSpec {
                def,
                points: &points,
                expected: None,
                dom_id: &dom_id,
            };
            let _ = write!(
                h,
                r#"<section class="card measure"><h2>{}</h2><p class="lead">{}</p><figure>{}<figcaption class="sr-only">{}</figcaption></figure></section>"#,
                e(&m.name),
                e(&progress_sentence(m)),
                charts::render(&spec),
                e(&charts::text_alternative(&spec))
            );
        }
        Ok(h)
    }
    .await;
    me_page(
        &state,
        &a,
        "My progress",
        "How your answers have changed since you started",
        body,
    )
    .await
}

fn client_phase_text(p: Phase) -> (&'static str, &'static str) {
    match p {
        Phase::P0 => (
            "Feeling safe and getting started",
            "We make sure you are safe and agree together what we will work on.",
        ),
        Phase::P1 => (
            "Building skills",
            "You learn practical ways to steady yourself and handle hard moments.",
        ),
        Phase::P2 => (
            "Making changes",
            "We work directly on what keeps the difficulties going.",
        ),
        Phase::P3 => (
            "Keeping it going",
            "We plan how you will keep your progress and handle setbacks.",
        ),
    }
}

/// `GET /me/plan`: the accepted plan in client-friendly words.
pub async fn my_plan(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let body = async {
        let client = a.client_id.ok_or_else(ApiError::not_found)?;
        let versions = state
            .store
            .plan_versions(a.caller.user.practice_id, client)
            .await?;
        let Some(plan) = versions
            .iter()
            .rev()
            .find(|v| v.status == PlanStatus::Accepted)
        else {
            return Ok(String::from(r#"<section class="card"><p>Your clinician has not shared a plan yet. You will see it here once you have agreed it together.</p></section>"#));
        };
        let mut h = String::from(r#"<ol class="timeline">"#);
        for phase in Phase::ALL {
            let (title, text) = client_phase_text(phase);
            let items: Vec<&PlanItem> = plan
                .plan
                .items
                .iter()
                .filter(|i| i.phase == phase && i.status != ItemStatus::Removed)
                .collect();
            let _ = write!(
                h,
                r#"<li class="phase{cur}"><h2>{title}{now}</h2><p>{text}</p>"#,
                cur = if phase == plan.plan.phase { " current" } else { "" },
                now = if phase == plan.plan.phase {
                    r#" <span class="pill">you are here</span>"#
                } else {
                    ""
                },
            );
            if !items.is_empty() {
                h.push_str("<ul class=\"items\">");
                for i in items {
                    let _ = write!(
                        h,
                        r#"<li><h3>{}</h3><p><strong>What it is for:</strong> {}</p>{}</li>"#,
                        e(&i.name),
                        e(&i.why.mechanism),
                        if i.homework.title.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "<p><strong>Between sessions:</strong> {}</p>",
                                e(&i.homework.title)
                            )
                        }
                    );
                }
                h.push_str("</ul>");
            }
            h.push_str("</li>");
        }
        h.push_str("</ol>");
        Ok(h)
    }
    .await;
    me_page(
        &state,
        &a,
        "My plan",
        "What we are working on together, step by step",
        body,
    )
    .await
}

/// `/static/records.css`.
pub async fn stylesheet() -> Response {
    let mut r = (StatusCode::OK, include_str!("../static/records.css")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}
