//! Exports and notifications in the admin: the contacts list's "Export CSV" (a
//! background job; the link comes by email and as a notification) and "Export Excel"
//! (a direct download), for the current search or the selected contacts; the download
//! link of the email, followed with the browser's session; the notifications page.
//!
//! The work is `exports::*` (the API's functions). A link works only for the user who
//! asked for the export and until it expires: anyone else, or later, gets a 403 page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::display::{self, enc};
use super::error::{WebError, WebResult};
use super::forms::FormData;
use super::layout::{Chrome, render};
use super::session::{self, Session};
use crate::error::AppError;
use crate::exports::{self, Format};
use crate::http::api::exports::file_body;
use crate::http::api::imports::csv_response;
use crate::state::SharedState;
use crate::store;
use crate::time::now_ms;

/// The contacts list for a search (where an export form returns).
fn list_url(q: &str) -> String {
    if q.is_empty() {
        "/contacts".to_owned()
    } else {
        format!("/contacts?q={}", enc(q))
    }
}

/// `POST /contacts/export` (`format` csv|xlsx, `q` the list's search, `ids` the selected
/// contacts, repeated or comma-separated): CSV is queued and announced by a message;
/// XLSX downloads at once.
pub async fn export(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = FormData(form);
    let q = form.str("q");
    let back = list_url(&q);
    let ids: Vec<&str> = form
        .all("ids")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // Selected contacts are exported as selected; otherwise the list's search.
    let mut m = Map::new();
    if ids.is_empty() {
        m.insert("search".into(), Json::String(q.clone()));
    } else {
        m.insert("ids".into(), Json::String(ids.join(",")));
    }
    let format = match form.str("format").as_str() {
        "" => Format::Csv,
        f => match Format::parse(f) {
            Some(format) => format,
            None => {
                let e = AppError::bad_request("the export format must be CSV or Excel");
                return fail(&state, &session, &back, e).await;
            }
        },
    };
    let query = match exports::Query::from_map(&m) {
        Ok(query) => query,
        Err(e) => return fail(&state, &session, &back, e).await,
    };
    match format {
        Format::Xlsx => match exports::direct(&state, &session.user, format, &query).await {
            Ok((file, size)) => Ok(csv_response(
                file_body(file),
                &exports::download_name(format, now_ms()),
                format.content_type(),
                Some(size),
            )),
            Err(e) => fail(&state, &session, &back, e).await,
        },
        Format::Csv => match exports::request(&state, &session.user, format, &query).await {
            Ok(_) => {
                let what = if ids.is_empty() {
                    "The export"
                } else {
                    "The export of the selected contacts"
                };
                let text = if session.user.email.trim().is_empty() {
                    format!(
                        "{what} has started. Its download link will be in your notifications when the file is ready."
                    )
                } else {
                    format!(
                        "{what} has started: you will receive an email with the link when the file is ready (it will also be in your notifications)."
                    )
                };
                session::flash(&state, &session, "success", &text).await?;
                Ok(Redirect::to(&back).into_response())
            }
            Err(e) => fail(&state, &session, &back, e).await,
        },
    }
}

/// A refused export (a bad search, bad ids): back to the list with the reason.
async fn fail(
    state: &SharedState,
    session: &Session,
    back: &str,
    e: AppError,
) -> WebResult<Response> {
    if let AppError::Internal(e) = e {
        return Err(WebError::Internal(e));
    }
    session::flash(
        state,
        session,
        "error",
        &format!("The contacts could not be exported: {e}"),
    )
    .await?;
    Ok(Redirect::to(back).into_response())
}

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

/// `GET /exports/{id}/download?token=…`: the link of the email and the notification,
/// for the logged-in user who asked for the export (403 page for anyone else, a wrong
/// token, an unknown export or an expired link).
pub async fn download(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(p): Query<TokenParam>,
) -> WebResult<Response> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)?;
    let (e, format, path) =
        exports::authorize_download(&state, &session.user, id, &p.token).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|err| WebError::Internal(err.into()))?;
    let size = file
        .metadata()
        .await
        .map_err(|err| WebError::Internal(err.into()))?
        .len();
    let name = exports::download_name(format, e.finished_at.unwrap_or(e.created_at));
    Ok(csv_response(
        file_body(file),
        &name,
        format.content_type(),
        Some(size),
    ))
}

/// One notification on its page.
pub struct NotificationRow {
    pub id: i64,
    pub title: String,
    pub message: String,
    pub when: String,
    pub unread: bool,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "notifications.html")]
pub struct NotificationsPage {
    pub chrome: Chrome,
    pub rows: Vec<NotificationRow>,
}

/// A stored link as the page shows it: this server's download links become local paths
/// (they work behind any proxy, and older `/api/…` links lead to the session's page);
/// other links only when http(s).
fn shown_link(link: &str) -> Option<String> {
    let path = match link.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            rest.find('/').map(|i| &rest[i..])
        }
        _ => Some(link).filter(|l| l.starts_with('/')),
    };
    match path {
        Some(p) if p.starts_with("/api/exports/") => Some(p["/api".len()..].to_owned()),
        Some(p) if p.starts_with("/exports/") => Some(p.to_owned()),
        _ => display::safe_href(link).then(|| link.to_owned()),
    }
}

/// `GET /notifications`: yours, newest first (exports ready, with their links).
pub async fn notifications_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    let (list, _) = {
        let mut db = state.store.read().await?;
        store::exports::notifications(&mut db, session.user.id, 100).await?
    };
    let rows = list
        .iter()
        .map(|n| NotificationRow {
            id: n.id,
            title: display::clip(&n.title, 200),
            message: display::clip(&n.message, 1000),
            when: display::datetime(n.created_at),
            unread: n.read_at.is_none(),
            link: n.link.as_deref().and_then(shown_link),
        })
        .collect();
    Ok(render(&NotificationsPage {
        chrome: Chrome::new(&session, "notifications"),
        rows,
    }))
}

/// `POST /notifications/read`: marks all of yours read.
pub async fn notifications_read(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    let mut tx = state.store.begin().await?;
    store::exports::mark_notifications_read(&mut tx, session.user.id, now_ms()).await?;
    tx.commit().await?;
    Ok(Redirect::to("/notifications").into_response())
}

#[cfg(test)]
mod tests {
    use super::shown_link;

    #[test]
    fn links_become_local() {
        assert_eq!(
            shown_link("http://127.0.0.1:8080/exports/3/download?token=a").as_deref(),
            Some("/exports/3/download?token=a")
        );
        assert_eq!(
            shown_link("https://m.example/api/exports/3/download?token=a").as_deref(),
            Some("/exports/3/download?token=a")
        );
        assert_eq!(
            shown_link("https://m.example/other").as_deref(),
            Some("https://m.example/other")
        );
        assert_eq!(shown_link("javascript:alert(1)"), None);
    }
}
