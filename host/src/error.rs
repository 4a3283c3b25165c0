//! One error type for the whole server. It renders as Mautic's error body,
//! `{"errors":[{"code":400,"message":"…","details":{…}}]}`; 500s are logged with their
//! cause and answered with a generic message so internals never leak.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authorization required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 405: the URL exists, not with this method (axum adds the `Allow` header).
    #[error("this method is not allowed on this URL")]
    MethodNotAllowed,
    /// 422 with per-field messages: `{"email": ["…"]}`.
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 408: the body stopped coming (`http::serve::PacedBody`).
    #[error("{0}")]
    RequestTimeout(String),
    /// 429: too many failed logins from this address (or for this user from it).
    #[error("too many failed logins; wait a few minutes and try again")]
    TooManyRequests,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::BadRequest(message.into())
    }
    pub fn not_found() -> Self {
        AppError::NotFound("Item was not found.".into())
    }
    /// A 422 about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError::Validation {
            message: format!("{field}: {message}"),
            details: json!({ field: [message] }),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body entry Mautic clients read.
    pub fn to_json(&self) -> Value {
        let code = self.status().as_u16();
        let (message, details) = match self {
            AppError::Validation { message, details } => (message.clone(), details.clone()),
            AppError::Internal(_) => (
                "Something went wrong on our side; it has been logged.".to_owned(),
                json!({}),
            ),
            AppError::Unauthorized => (
                "API authorization denied: send HTTP Basic credentials of a Magpie user."
                    .to_owned(),
                json!({}),
            ),
            other => (other.to_string(), json!({})),
        };
        // Mautic's firewall answers a refused login with type "access_denied".
        let kind = match self {
            AppError::Unauthorized => json!("access_denied"),
            _ => Value::Null,
        };
        json!({ "code": code, "message": message, "details": details, "type": kind })
    }
}

impl AppError {
    /// A database error, or a 422 on `field` when it is a unique constraint (a name taken
    /// by a concurrent transaction that committed, or holds it, first).
    pub fn unless_taken(e: sqlx::Error, field: &str, message: &str) -> AppError {
        match e.as_database_error() {
            Some(d) if d.is_unique_violation() => AppError::invalid(field, message),
            _ => e.into(),
        }
    }
}

impl AppError {
    /// A transaction PostgreSQL aborted to break a deadlock (or a serialization failure):
    /// nothing of it was written, and running it again succeeds.
    pub fn is_deadlock(&self) -> bool {
        let AppError::Internal(e) = self else {
            return false;
        };
        e.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001")
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // Statements name only the columns of the field set a request read, so a column
        // that is missing was a field deleted meanwhile: the request can be sent again.
        let column_gone = e.as_database_error().is_some_and(|d| {
            d.code().as_deref() == Some("42703")
                || d.message().starts_with("no such column")
                || d.message().contains("has no column named")
        });
        if column_gone {
            tracing::warn!(error = %e, "a field changed while a request ran");
            return AppError::Conflict(
                "a contact field was deleted while this request ran; send it again".into(),
            );
        }
        AppError::Internal(anyhow::Error::new(e))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let status = self.status();
        let body = json!({ "errors": [self.to_json()] });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The login limiter's window: a client may try again after it.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("900"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Magpie\""),
            );
        }
        response
    }
}
