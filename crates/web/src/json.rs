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
                // The serde message names the field (e.g. "unknown field `role`").
                let detail = e.body_text();
                let field = detail
                    .split('`')
                    .nth(1)
                    .unwrap_or("body")
                    .chars()
                    .take(64)
                    .collect::<String>();
                Err(ApiError::unprocessable(
                    field,
                    "is not accepted here (unknown, missing or of the wrong type)",
                ))
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
