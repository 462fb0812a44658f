//! Forms without JavaScript. Every page form is an ordinary
//! `<form method="post">` whose field names describe the JSON its action
//! expects; with JavaScript, `/static/tapestry.js` sends that JSON with the
//! `X-CSRF-Token` header; without it, the browser posts
//! `application/x-www-form-urlencoded` and this module turns the post into
//! the same request before the route guard sees it, then turns the JSON
//! answer into a browser answer. Handlers, the guard, authorization and
//! audit are the same for both paths (docs/forms.md).
//!
//! Three pieces:
//! - [`stamp_forms`] (on every HTML answer): puts the session's CSRF token in
//!   a hidden [`CSRF_FIELD`], and the page's own path in [`FROM_FIELD`], into
//!   each `<form method="post">` of the page.
//! - [`accept_form`] (in front of the guard of every POST route): checks the
//!   request came from this site, moves [`CSRF_FIELD`] into the CSRF header
//!   (any header the request carried is dropped, so the field is the only
//!   token checked), converts the fields with [`fields_to_json`] and runs the
//!   route. Success becomes `303 See Other` (to the answer's `next`, the
//!   [`NEXT_FIELD`], or back to the page the form was on: [`FROM_FIELD`],
//!   else the `Referer`); an error becomes the error page naming the field,
//!   with a link back.
//! - [`fields_to_json`]: the one naming convention (below).
//!
//! Naming convention: `a.b` nests objects; a name ending in `[]` collects
//! every value into an array (empty values skipped); `rows[0].x`, `rows[1].x`
//! make an array of objects in index order (a row left empty is dropped); a `:type` suffix types
//! the value: `:number` (empty = left out), `:bool` (checkbox: `on`, `true`,
//! `yes`, `1` are true; several values: true if any is), `:lines` (one item
//! per line, blank lines dropped), `:csv` (items separated by commas or
//! lines), `:opt` (a string left out when empty: "not chosen"). Without a suffix the value is a string, kept as typed (empty
//! included). A plain name given twice is an error, and so is any other
//! name starting with `_`.

use crate::auth::{self, CSRF_HEADER};
use crate::error::ApiError;
use crate::routes::{Access, RouteSpec};
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The hidden field that carries the CSRF token in a form post.
pub const CSRF_FIELD: &str = "_csrf";
/// The optional hidden field naming where to go after success (a path on
/// this site).
pub const NEXT_FIELD: &str = "_next";
/// The hidden field naming the page the form is on (stamped by the server
/// with the page's own path): where success returns to when there is no
/// other `next`, and where an error page links back to. Pages are served
/// with `Referrer-Policy: no-referrer`, so the `Referer` cannot say it.
pub const FROM_FIELD: &str = "_from";
/// At most this many fields in one form post.
const MAX_FIELDS: usize = 1000;
/// At most this long, one field name.
const MAX_NAME: usize = 128;
/// The largest JSON answer converted into a browser answer.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why a form post could not be turned into a request. Each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("{0}: names starting with `_` are reserved for the form itself")]
    Reserved(String),
    #[error("{0}: was given more than once")]
    Duplicate(String),
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("{0}: is used both as a value and as a group of fields")]
    Conflict(String),
    #[error("{0}: the field name is empty, too long or malformed")]
    BadName(String),
    #[error("form: more than {MAX_FIELDS} fields")]
    TooMany,
}

impl FormError {
    fn field(&self) -> String {
        match self {
            FormError::Reserved(f)
            | FormError::Duplicate(f)
            | FormError::Conflict(f)
            | FormError::BadName(f) => f.clone(),
            FormError::Invalid { field, .. } => field.clone(),
            FormError::TooMany => "form".into(),
        }
    }
}

impl From<FormError> for ApiError {
    fn from(e: FormError) -> Self {
        let field = e.field();
        let text = e.to_string();
        let problem = text
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&text)
            .to_string();
        ApiError::unprocessable(field, problem)
    }
}

/// A decoded form post: the JSON body and the form's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub body: Value,
    pub csrf: Option<String>,
    pub next: Option<String>,
    pub from: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Lines,
    Csv,
    Optional,
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse(bytes: &[u8]) -> Result<Submission, FormError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(bytes).into_owned().collect();
    if pairs.len() > MAX_FIELDS {
        return Err(FormError::TooMany);
    }
    let mut csrf = None;
    let mut next = None;
    let mut from = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let slot = match name.as_str() {
            CSRF_FIELD => &mut csrf,
            NEXT_FIELD => &mut next,
            FROM_FIELD => &mut from,
            n if n.starts_with('_') => return Err(FormError::Reserved(n.into())),
            _ => {
                rest.push((name, value));
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(FormError::Duplicate(name));
        }
    }
    Ok(Submission {
        body: fields_to_json(&rest)?,
        csrf,
        next,
        from,
    })
}

/// The naming convention (module docs): form fields to the JSON document.
pub fn fields_to_json(pairs: &[(String, String)]) -> Result<Value, FormError> {
    let mut root = Map::new();
    for (name, value) in pairs {
        let (path, kind) = match name.rsplit_once(':') {
            Some((p, "number")) => (p, Kind::Number),
            Some((p, "bool")) => (p, Kind::Bool),
            Some((p, "lines")) => (p, Kind::Lines),
            Some((p, "csv")) => (p, Kind::Csv),
            Some((p, "opt")) => (p, Kind::Optional),
            Some(_) => return Err(FormError::BadName(name.clone())),
            None => (name.as_str(), Kind::Text),
        };
        let (path, array) = match path.strip_suffix("[]") {
            Some(p) => (p, true),
            None => (path, false),
        };
        let Some(segments) = segments_of(path).filter(|_| name.len() <= MAX_NAME) else {
            return Err(FormError::BadName(name.clone()));
        };
        let typed = typed(name, kind, value)?;
        let Some((last, parents)) = segments.split_last() else {
            return Err(FormError::BadName(name.clone()));
        };
        let mut object = &mut root;
        for seg in parents {
            let entry = object
                .entry((*seg).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            object = match entry {
                Value::Object(m) => m,
                _ => return Err(FormError::Conflict(name.clone())),
            };
        }
        let key = (*last).to_string();
        match (array, kind, object.get_mut(&key)) {
            (true, _, existing) => {
                let list = match existing {
                    Some(Value::Array(list)) => list,
                    Some(_) => return Err(FormError::Conflict(name.clone())),
                    None => {
                        object.insert(key.clone(), Value::Array(Vec::new()));
                        match object.get_mut(&key) {
                            Some(Value::Array(list)) => list,
                            _ => return Err(FormError::Conflict(name.clone())),
                        }
                    }
                };
                match typed {
                    Some(Value::Array(items)) => list.extend(items),
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(v) => list.push(v),
                    None => {}
                }
            }
            (false, Kind::Bool, Some(Value::Bool(b))) => {
                *b = *b || typed == Some(Value::Bool(true));
            }
            (false, _, Some(_)) => return Err(FormError::Duplicate(name.clone())),
            (false, _, None) => {
                if let Some(v) = typed {
                    object.insert(key, v);
                }
            }
        }
    }
    fold_indexed(Value::Object(root), "form")
}

/// The path of a field name: `a.b[2].c` is `a`, `b`, `[2]`, `c`. An index is
/// one to three digits; any other bracket, or an empty segment, is `None`.
fn segments_of(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for seg in path.split('.') {
        let (base, index) = match seg.find('[') {
            Some(open) => (seg.get(..open)?, Some(seg.get(open..)?)),
            None => (seg, None),
        };
        if base.is_empty() || base.contains(']') {
            return None;
        }
        out.push(base);
        if let Some(index) = index {
            let digits = index.strip_prefix('[')?.strip_suffix(']')?;
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            out.push(index);
        }
    }
    Some(out)
}

/// The index of an `[n]` key, which only indexed names can make.
fn index_key(key: &str) -> Option<usize> {
    key.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Objects built from indexed names (`rows[0].x`, `rows[1].x`) become
/// arrays in index order; an entry left with nothing in it (every field of a
/// blank row empty) is dropped, so blank rows add nothing. `at` names the
/// group for an error: indexed and plain names mixed in one group.
fn fold_indexed(value: Value, at: &str) -> Result<Value, FormError> {
    let Value::Object(map) = value else {
        return Ok(value);
    };
    let indexed = map.keys().filter(|k| index_key(k).is_some()).count();
    if indexed == 0 {
        let mut out = Map::new();
        for (k, v) in map {
            let folded = fold_indexed(v, &k)?;
            out.insert(k, folded);
        }
        return Ok(Value::Object(out));
    }
    if indexed != map.len() {
        return Err(FormError::Conflict(at.to_string()));
    }
    let mut entries: Vec<(usize, Value)> = Vec::with_capacity(map.len());
    for (k, v) in map {
        let i = index_key(&k).unwrap_or(usize::MAX);
        entries.push((i, fold_indexed(v, at)?));
    }
    entries.sort_by_key(|(i, _)| *i);
    Ok(Value::Array(
        entries
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Object(m) if m.is_empty()))
            .filter(|v| !matches!(v, Value::String(s) if s.is_empty()))
            .collect(),
    ))
}

fn typed(name: &str, kind: Kind, value: &str) -> Result<Option<Value>, FormError> {
    let invalid = |problem: &str| FormError::Invalid {
        field: name.to_string(),
        problem: problem.to_string(),
    };
    let items = |parts: Vec<&str>| {
        Value::Array(
            parts
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )
    };
    Ok(match kind {
        Kind::Text => Some(Value::String(value.to_string())),
        Kind::Optional => Some(value.trim())
            .filter(|v| !v.is_empty())
            .map(|v| Value::String(v.to_string())),
        Kind::Number => {
            let v = value.trim();
            if v.is_empty() {
                None
            } else if let Ok(i) = v.parse::<i64>() {
                Some(Value::from(i))
            } else {
                let f = v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| invalid("is not a number"))?;
                Some(Value::from(f))
            }
        }
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(Value::Bool(true)),
            "" | "off" | "false" | "no" | "0" => Some(Value::Bool(false)),
            _ => return Err(invalid("is neither yes nor no")),
        },
        Kind::Lines => Some(items(value.lines().collect())),
        Kind::Csv => Some(items(value.split([',', '\n', '\r']).collect())),
    })
}

/// `value` when it is a path on this site (`/…`, not `//…`, no backslash,
/// no control character); anything else (an absolute URL, a
/// scheme-relative one) is refused, so a form cannot redirect elsewhere.
pub fn same_origin_path(value: &str) -> Option<&str> {
    let ok = value.starts_with('/')
        && !value.starts_with("//")
        && !value.contains('\\')
        && !value.chars().any(char::is_control)
        && value.len() <= 2048;
    ok.then_some(value)
}

/// The host this request was addressed to.
fn own_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// The path part of an address on this site (`http(s)://<own host>/…`).
fn local_part<'a>(url: &'a str, headers: &HeaderMap) -> Option<&'a str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = own_host(headers)?;
    let path = rest.strip_prefix(host)?;
    if path.is_empty() {
        return Some("/");
    }
    same_origin_path(path)
}

/// Where the form was (the `Referer` when it is on this site), else `/`.
fn back_path(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| local_part(r, headers))
        .unwrap_or("/")
        .to_string()
}

/// Whether the browser says the post came from this site. A browser's
/// cross-site form post carries `Sec-Fetch-Site: cross-site` or a foreign
/// `Origin`; either is refused. Posts to public routes (no session yet, so
/// no CSRF token: sign-in, invitation, reset) must carry one of the two.
fn from_this_site(headers: &HeaderMap, public: bool) -> bool {
    // Every copy of each header must agree (a repeated header is not a
    // way round the check).
    let values = |name: &str| -> Vec<Option<&str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    };
    let sites = values("sec-fetch-site");
    let origins = values("origin");
    let same_site = sites
        .iter()
        .all(|s| matches!(s, Some("same-origin" | "none")));
    // `Origin: null` (sent under `Referrer-Policy: no-referrer`, and by
    // sandboxed frames) names no site: it neither passes nor fails the
    // origin check, and is no evidence for a public route.
    let named: Vec<Option<&str>> = origins.into_iter().filter(|o| *o != Some("null")).collect();
    let same_origin = named
        .iter()
        .all(|o| o.is_some_and(|o| local_part(o, headers).is_some()));
    same_site && same_origin && (!public || !sites.is_empty() || !named.is_empty())
}

fn is_form_post(req: &Request) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
}

/// Every POST route accepts form posts (each page form must work without
/// JavaScript); the JSON path is untouched.
pub fn accepts_forms(spec: &RouteSpec) -> bool {
    spec.method == Method::POST.as_str()
}

/// The layer in front of the guard of each POST route (module docs).
pub async fn accept_form(
    State((state, spec)): State<(AppState, RouteSpec)>,
    req: Request,
    next: Next,
) -> Response {
    if !is_form_post(&req) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let back = back_path(&parts.headers);
    let page_error = |e: ApiError| error_page(&e, &back);
    if !from_this_site(&parts.headers, spec.access == Access::Public) {
        return page_error(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "The form did not come from this site.",
        ));
    }
    let bytes = match to_bytes(body, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return page_error(ApiError::too_large()),
    };
    let submission = match parse(&bytes) {
        Ok(s) => s,
        Err(e) => return page_error(e.into()),
    };
    let back = submission
        .from
        .as_deref()
        .and_then(same_origin_path)
        .map(str::to_string)
        .unwrap_or(back);
    let page_error = |e: ApiError| error_page(&e, &back);
    let next_path = match submission.next.as_deref() {
        None | Some("") => None,
        Some(n) => match same_origin_path(n) {
            Some(p) => Some(p.to_string()),
            None => return page_error(ApiError::bad_request("_next: must be a path on this site")),
        },
    };
    // The form field is the only token checked: a header sent alongside
    // it is dropped, never preferred.
    parts.headers.remove(CSRF_HEADER);
    if let Some(token) = submission
        .csrf
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        parts.headers.insert(CSRF_HEADER, token);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let json = submission.body.to_string();
    let response = next.run(Request::from_parts(parts, Body::from(json))).await;
    browser_answer(response, next_path, &back).await
}

/// The handler's JSON answer as a browser answer.
async fn browser_answer(response: Response, next_path: Option<String>, back: &str) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json && !status.is_success() {
        // Already a page (or not ours to translate).
        return Response::from_parts(parts, body);
    }
    let value: Value = if json {
        match to_bytes(body, MAX_ANSWER_BYTES).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    } else {
        Value::Null
    };
    let mut answer = if status.is_success() {
        if let Some(page) = once_only_page(&value) {
            page
        } else {
            let to = value
                .get("next")
                .and_then(Value::as_str)
                .and_then(same_origin_path)
                .map(str::to_string)
                .or(next_path)
                .unwrap_or_else(|| back.to_string());
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
    } else {
        let error = &value["error"];
        let mut e = ApiError::new(
            status,
            "error",
            error["message"]
                .as_str()
                .unwrap_or("That did not work.")
                .to_string(),
        );
        if let Some(fields) = error["fields"].as_object() {
            for (field, problem) in fields {
                e = e.field(field.clone(), problem.as_str().unwrap_or_default());
            }
        }
        error_page(&e, back)
    };
    for name in [header::SET_COOKIE, header::RETRY_AFTER] {
        for v in parts.headers.get_all(&name) {
            answer.headers_mut().append(name.clone(), v.clone());
        }
    }
    if let Some(v) = parts.headers.get("clear-site-data") {
        answer.headers_mut().insert("clear-site-data", v.clone());
    }
    answer
}

/// Answers that carry something shown once (recovery codes, a one-time
/// link) are shown on a page instead of being redirected away.
fn once_only_page(value: &Value) -> Option<Response> {
    let page = if let Some(codes) = value.get("recovery_codes").and_then(Value::as_array) {
        crate::pages::OnceOnlyPage {
            title: "Your second factor is set up".into(),
            lead: "Keep these recovery codes somewhere safe; each works once and they are not shown again.".into(),
            items: codes
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect(),
            next: "/me".into(),
        }
    } else {
        let link = value.get("link").and_then(Value::as_str)?;
        crate::pages::OnceOnlyPage {
            title: "Link created".into(),
            lead: "Give this link to the person; it works once. Add this site's address in front of it.".into(),
            items: vec![link.to_string()],
            next: "/".into(),
        }
    };
    Some(crate::pages::render(&page))
}

/// The error page for a form post: the message, the fields it names, a link back.
fn error_page(e: &ApiError, back: &str) -> Response {
    e.to_html_with_back(back)
}

/// Puts the session's CSRF token into every `<form method="post">` of an
/// HTML answer (module docs). Pages without a session cookie are unchanged.
pub async fn stamp_forms(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = auth::session_token(req.headers()).map(|t| state.csrf.token_for(&t.hash()));
    let page_path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let response = next.run(req).await;
    let Some(token) = token else {
        return response;
    };
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ANSWER_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let page = String::from_utf8_lossy(&bytes);
    let stamped = stamp(&page, &token, &page_path);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(stamped))
}

/// `page` with the hidden CSRF and `_from` fields right after each POST
/// form's start tag.
pub fn stamp(page: &str, token: &str, page_path: &str) -> String {
    let from = same_origin_path(page_path).unwrap_or("/");
    let fields = format!(
        r#"<input type="hidden" name="{CSRF_FIELD}" value="{}"><input type="hidden" name="{FROM_FIELD}" value="{}">"#,
        attribute(token),
        attribute(from)
    );
    let mut out = String::with_capacity(page.len() + 256);
    let mut rest = page;
    while let Some(start) = rest.find("<form") {
        let Some(end) = rest[start..].find('>').map(|e| start + e + 1) else {
            break;
        };
        let tag = &rest[start..end];
        out.push_str(&rest[..end]);
        if tag.to_ascii_lowercase().contains(r#"method="post""#) {
            out.push_str(&fields);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Text safe inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plain_names_are_strings_and_empty_values_are_kept() {
        let v = fields_to_json(&pairs(&[
            ("note", "Seen today"),
            ("item_9", ""),
            ("x", "2"),
        ]))
        .unwrap();
        assert_eq!(v, json!({"note": "Seen today", "item_9": "", "x": "2"}));
    }

    #[test]
    fn empty_form_is_an_empty_object() {
        assert_eq!(fields_to_json(&[]).unwrap(), json!({}));
        assert_eq!(parse(b"").unwrap().body, json!({}));
    }

    #[test]
    fn types_arrays_and_nesting_follow_the_convention() {
        let v = fields_to_json(&pairs(&[
            ("formulation.age:number", "34"),
            ("formulation.presenting_problems[]", "depression"),
            ("formulation.presenting_problems[]", ""),
            ("formulation.presenting_problems[]", "insomnia"),
            (
                "formulation.goals:lines",
                "sleep better\n\n  see friends \r\n",
            ),
            ("formulation.dimension_ratings.mood:number", ""),
            ("formulation.dimension_ratings.worry:number", "7.5"),
            ("consent:bool", "false"),
            ("consent:bool", "on"),
            ("techniques:csv", "T06, T12\nT01"),
            ("formulation.style.coping:opt", ""),
            ("reason:opt", " new scores "),
        ]))
        .unwrap();
        assert_eq!(
            v,
            json!({
                "formulation": {
                    "age": 34,
                    "presenting_problems": ["depression", "insomnia"],
                    "goals": ["sleep better", "see friends"],
                    "dimension_ratings": {"worry": 7.5},
                    // A group whose only field was left out stays, empty.
                    "style": {},
                },
                "consent": true,
                "techniques": ["T06", "T12", "T01"],
                "reason": "new scores",
            })
        );
    }

    #[test]
    fn indexed_rows_become_arrays_of_objects_and_blank_rows_vanish() {
        let got = fields_to_json(&pairs(&[
            ("licences[1].number:opt", "B-2"),
            ("licences[0].jurisdiction:opt", "CA-ON"),
            ("licences[0].number:opt", "A-1"),
            ("licences[1].jurisdiction:opt", "US-NY"),
            ("licences[2].jurisdiction:opt", ""),
            ("licences[2].number:opt", ""),
            ("availability.intervals[0].day:number", "0"),
            ("availability.intervals[0].start_minute:number", "540"),
            ("availability.intervals[1].day:number", ""),
            ("notes[0]", "kept"),
            ("notes[1]", ""),
        ]))
        .unwrap();
        assert_eq!(
            got,
            json!({
                "licences": [
                    {"jurisdiction": "CA-ON", "number": "A-1"},
                    {"jurisdiction": "US-NY", "number": "B-2"}
                ],
                "availability": {"intervals": [{"day": 0, "start_minute": 540}]},
                "notes": ["kept"]
            })
        );
        // Every row blank: the array is still there, empty.
        assert_eq!(
            fields_to_json(&pairs(&[("rows[0].x:opt", ""), ("rows[1].x:number", "")])).unwrap(),
            json!({"rows": []})
        );
        // Mixed indexed and plain names, bad indexes and stray brackets are refused.
        for bad in [
            vec![("a[0].x", "1"), ("a.y", "2")],
            vec![("a[x].y", "1")],
            vec![("a[1000].y", "1")],
            vec![("a[].y", "1")],
            vec![("a]0[.y", "1")],
            vec![("a[0]b.y", "1")],
        ] {
            assert!(fields_to_json(&pairs(&bad)).is_err(), "{bad:?}");
        }
        // The same row field twice is a duplicate.
        assert!(matches!(
            fields_to_json(&pairs(&[("a[0].x", "1"), ("a[0].x", "2")])),
            Err(FormError::Duplicate(_))
        ));
    }

    #[test]
    fn malformed_fields_are_refused_naming_the_field() {
        let cases = [
            (vec![("note", "a"), ("note", "b")], "note"),
            (vec![("age:number", "thirty")], "age:number"),
            (vec![("ok:bool", "maybe")], "ok:bool"),
            (vec![("a", "1"), ("a.b", "2")], "a.b"),
            (vec![("a..b", "1")], "a..b"),
            (vec![("a:date", "1")], "a:date"),
            (vec![("a[0x]", "1")], "a[0x]"),
        ];
        for (list, field) in cases {
            let e = fields_to_json(&pairs(&list)).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            let api: ApiError = e.into();
            assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(api.fields.contains_key(field));
        }
        let huge = "a".repeat(MAX_NAME + 1);
        assert!(fields_to_json(&pairs(&[(huge.as_str(), "1")])).is_err());
        let many = "x[]=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(parse(many.as_bytes()), Err(FormError::TooMany));
    }

    #[test]
    fn the_form_fields_are_taken_out_once_and_others_reserved() {
        let s = parse(b"_csrf=abc&_next=%2Fme&_from=%2Fclients&note=hi+there").unwrap();
        assert_eq!(s.csrf.as_deref(), Some("abc"));
        assert_eq!(s.next.as_deref(), Some("/me"));
        assert_eq!(s.from.as_deref(), Some("/clients"));
        assert_eq!(s.body, json!({"note": "hi there"}));
        assert_eq!(
            parse(b"_csrf=abc&_csrf=def"),
            Err(FormError::Duplicate("_csrf".into()))
        );
        assert_eq!(
            parse(b"_role=owner"),
            Err(FormError::Reserved("_role".into()))
        );
    }

    #[test]
    fn only_paths_on_this_site_are_redirect_targets() {
        for ok in ["/", "/me", "/clients/x/notes?y=1#z"] {
            assert_eq!(same_origin_path(ok), Some(ok));
        }
        for bad in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "evil",
            "",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(same_origin_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn referer_and_origin_must_name_this_host() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("clinic.example:8443"),
        );
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://clinic.example:8443/clients/1/notes"),
        );
        assert_eq!(back_path(&h), "/clients/1/notes");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://clinic.example.evil.example/x"),
        );
        assert_eq!(back_path(&h), "/");
        // Public routes need the browser's word that the post is same-site.
        assert!(!from_this_site(&h, true));
        assert!(from_this_site(&h, false));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://clinic.example:8443"),
        );
        assert!(from_this_site(&h, true));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!from_this_site(&h, false));
        // `Origin: null` names no site: no evidence for a public route.
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(from_this_site(&h, false));
        assert!(!from_this_site(&h, true));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(from_this_site(&h, true));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!from_this_site(&h, false));
    }

    #[test]
    fn stamping_adds_the_token_to_post_forms_only() {
        let page = r#"<form method="get" action="/s"></form><form class="x" method="post" action="/a"><input name="n"></form><p>no form</p>"#;
        let out = stamp(page, "TOKEN", "/clients/1/risk?x=1&y=\"2\"");
        assert_eq!(out.matches(r#"name="_csrf" value="TOKEN""#).count(), 1);
        assert!(out.contains(r#"action="/a"><input type="hidden" name="_csrf""#));
        assert!(out.contains(r#"name="_from" value="/clients/1/risk?x=1&amp;y=&quot;2&quot;""#));
        assert_eq!(stamp("<p>plain</p>", "T", "/"), "<p>plain</p>");
        // A truncated tag is left alone rather than guessed at.
        assert_eq!(
            stamp("<form method=\"post\"", "T", "/"),
            "<form method=\"post\""
        );
    }
}
