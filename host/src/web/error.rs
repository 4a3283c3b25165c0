//! Errors of admin pages: rendered as HTML pages (404, 403, 400, 500), never JSON, never
//! a crash. 500s are logged with their cause and shown without it.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::layout::{Chrome, render_status};
use crate::error::AppError;

#[derive(Debug)]
pub enum WebError {
    NotFound,
    Forbidden(String),
    /// A state-changing request without a valid CSRF token.
    Csrf,
    BadRequest(String),
    TooLarge(String),
    Internal(anyhow::Error),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "Page not found", "There is nothing here: the page or the item may have been deleted, or the address is mistyped.".to_owned()),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form was not sent from a current Magpie page (its security token is missing or expired). Go back, reload the page and try again.".to_owned(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            WebError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", m),
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error in the admin");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Something went wrong on our side; it has been logged.".to_owned())
            }
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(String::new()),
            status: status.as_u16(),
            title,
            message,
        };
        render_status(status, &page)
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(_) => WebError::NotFound,
            AppError::Forbidden(m) => WebError::Forbidden(m),
            AppError::Internal(e) => WebError::Internal(e),
            AppError::PayloadTooLarge(m) => WebError::TooLarge(m),
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        WebError::Internal(anyhow::Error::new(e))
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(e)
    }
}

pub type WebResult<T> = Result<T, WebError>;
