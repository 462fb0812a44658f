//! The one place errors become HTTP answers: the JSON envelope
//! `{"error":{"code","message","fields"}}` for the API, a plain page for HTML.
//! Messages never carry clinical content or stack traces.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    fields: &'a BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }
    pub fn field(mut self, field: impl Into<String>, problem: impl Into<String>) -> Self {
        self.fields.insert(field.into(), problem.into());
        self
    }
    /// The same answer whether the object never existed or belongs to
    /// another practice.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Nothing was found at this address.",
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unprocessable(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let field = field.into();
        let problem = problem.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {problem}"),
        )
        .field(field, problem)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Please sign in.")
    }
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You do not have access to this.",
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. It has been logged without any clinical content.",
        )
    }
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "The request body is larger than this server accepts.",
        )
    }
    /// A stored clinical value failed its integrity check (tampered, or the
    /// wrong key file): nothing of it is shown.
    pub fn integrity() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "integrity_error",
            "This record failed its integrity check and was not shown. The event has been logged.",
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        serde_json::to_string(&envelope).unwrap_or_else(|_| {
            String::from(r#"{"error":{"code":"internal","message":"error","fields":{}}}"#)
        })
    }

    /// The HTML form of this error, for browser pages.
    pub fn to_html(&self) -> Response {
        self.to_html_with_back("/")
    }

    /// The HTML form of this error with a link back to `back` (a path on
    /// this site) and the fields it names, for a form post.
    pub fn to_html_with_back(&self, back: &str) -> Response {
        let page = crate::pages::ErrorPage {
            fields: self
                .fields
                .iter()
                .map(|(f, p)| (f.clone(), p.clone()))
                .collect(),
            back: back.to_string(),
            status: self.status.as_u16(),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            message: self.message.clone(),
        };
        let mut response = crate::pages::render(&page);
        *response.status_mut() = self.status;
        response
    }
}

impl From<tapestry_store::StoreError> for ApiError {
    fn from(e: tapestry_store::StoreError) -> Self {
        use tapestry_store::StoreError as E;
        match e {
            E::NotFound(_) => ApiError::not_found(),
            E::Conflict(what) => ApiError::conflict(what),
            E::Integrity(e) => {
                tracing::error!(error = %e, "sealed value failed its integrity check");
                ApiError::integrity()
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<tapestry_domain::practice::FieldError> for ApiError {
    fn from(e: tapestry_domain::practice::FieldError) -> Self {
        ApiError::unprocessable(e.field, e.problem)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
