//! Input bodies. Every input DTO denies unknown fields (G3: a client cannot
//! set `practice_id`, `role`, owner ids or signed state); a rejected body
//! answers 422 (or 400 for malformed JSON, 415 for a wrong content type)
//! with the standard error envelope, never axum's plain-text rejection.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body, with envelope errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection as R;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(R::JsonDataError(e)) => {
                let (field, problem) = field_of(&e.body_text());
                Err(ApiError::unprocessable(field, problem))
            }
            Err(R::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/json.",
            )),
            Err(R::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large())
            }
            Err(_) => Err(ApiError::bad_request("The body is not valid JSON.")),
        }
    }
}

/// The field a JSON data error is about, and the problem. axum's text is
/// "Failed to deserialize the JSON body into the target type: PATH:
/// MESSAGE", where PATH (e.g. `starts_at`, `licences[0].number`) is missing
/// for some top-level errors; serde's own messages name unknown and missing
/// fields in backticks ("unknown field `role`"). A value is repeated only
/// when it was not one of a field's choices ("unknown variant `daily`"),
/// shortened; free text never is.
fn field_of(detail: &str) -> (String, String) {
    const GENERIC: &str = "is not accepted here (unknown, missing or of the wrong type)";
    let rest = detail
        .split_once("target type: ")
        .map_or(detail, |(_, r)| r);
    let (path, message) = match rest.split_once(": ") {
        Some((p, m))
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (Some(p), m)
        }
        _ => (None, rest),
    };
    let quoted = message.split('`').nth(1);
    let names_field = message.starts_with("unknown field") || message.starts_with("missing field");
    let field = match (path, quoted.filter(|_| names_field)) {
        // serde_path_to_error ends the path with the unknown field itself.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
        (Some(p), Some(n)) => format!("{p}.{n}"),
        (Some(p), None) => p.to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => "body".to_string(),
    };
    let problem = match quoted {
        Some(v) if message.starts_with("unknown variant") => format!(
            "`{}` is not one of the choices",
            v.chars().take(40).collect::<String>()
        ),
        _ => GENERIC.to_string(),
    };
    (field.chars().take(64).collect(), problem)
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn the_field_comes_from_the_path_or_from_serdes_own_naming() {
        let pre = "Failed to deserialize the JSON body into the target type: ";
        for (detail, want) in [
            (
                "unknown field `role`, expected one of `a`, `b` at line 1 column 7",
                "role",
            ),
            (
                "total: unknown field `total`, expected `answers` at line 1 column 7",
                "total",
            ),
            ("missing field `body` at line 1 column 2", "body"),
            (
                "starts_at: the time is not a time at line 1 column 30",
                "starts_at",
            ),
            (
                "capacity: invalid type: string \"many\", expected u32 at line 1 column 9",
                "capacity",
            ),
            (
                "licences[0]: unknown field `nmber`, expected `number` at line 1 column 30",
                "licences[0].nmber",
            ),
            ("expected value at line 1 column 1", "body"),
        ] {
            let (field, problem) = field_of(&format!("{pre}{detail}"));
            assert_eq!(field, want, "{detail}");
            // Values (which may be a client's words) are not repeated.
            assert!(!problem.contains("many"), "{problem}");
        }
        // A message with a colon in a value does not become a field.
        assert_eq!(
            field_of(&format!("{pre}invalid value: string \"a: b\"")).0,
            "body"
        );
        // An unknown choice is named, shortened.
        let (field, problem) = field_of(&format!(
            "{pre}format: unknown variant `carrier_pigeon`, expected `video` or `phone` at line 1 column 20"
        ));
        assert_eq!(
            (field.as_str(), problem.as_str()),
            ("format", "`carrier_pigeon` is not one of the choices")
        );
    }
}
