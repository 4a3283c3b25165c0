//! `/api/exports…`: exports of contacts (a search or selected ids) to CSV or XLSX, as a
//! background job with an emailed link, or directly; and `/api/notifications`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};

use super::imports::csv_response;
use super::openapi::ErrorBody;
use crate::error::{AppError, AppResult};
use crate::exports::{self, Format, Query};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store;
use crate::store::exports::ExportRow;
use crate::store::jobs::JobRow;
use crate::time::{iso, iso_opt, now_ms};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/exports", get(list).post(create))
        .route("/exports/direct", get(direct))
        .route("/exports/{id}", get(get_one))
        .route("/exports/{id}/download", get(download))
        .route("/notifications", get(notifications))
        .route("/notifications/read", post(notifications_read))
}

fn export_json(e: &ExportRow, job: Option<&JobRow>) -> Value {
    let expired = e.expires_at.is_some_and(|t| t <= now_ms());
    json!({
        "id": e.id,
        "format": e.format,
        "status": if expired { "expired" } else { exports::status(e, job) },
        "error": job.and_then(|j| j.error.clone()),
        "query": query_summary(&e.query),
        "rows": e.rows,
        "size": e.size_bytes,
        "dateAdded": iso(e.created_at),
        "dateFinished": iso_opt(e.finished_at),
        "expiresAt": iso_opt(e.expires_at),
        "email": { "to": e.email_to, "status": e.email_status },
    })
}

/// An export's query as its status shows it: at most the first 100 selected ids, and
/// `idsTotal` (a million-contact selection would make every status megabytes).
fn query_summary(query: &Value) -> Value {
    const SHOWN: usize = 100;
    let mut q = query.clone();
    if let Some(ids) = q.get_mut("ids").and_then(Value::as_array_mut) {
        let total = ids.len();
        if total > SHOWN {
            ids.truncate(SHOWN);
            q["idsTotal"] = json!(total);
        }
    }
    q
}

/// `POST /api/exports`
#[utoipa::path(post, path = "/api/exports", tag = "exports", summary = "Export contacts in the background; the download link is emailed to you",
    description = "Body: {\"format\": \"csv\"|\"xlsx\", \"search\": \"tag:vip\", \"where\": [{\"col\", \"expr\", \"val\"}], \"ids\": [1, 2]} (search and where as in GET /api/contacts; ids for selected contacts). When the file is written, an email with a link goes to your address (SMTP, or <data-dir>/outbox/ without [smtp]) and a notification is added. The link works only for you, until it expires ([export] link_ttl_hours). Columns: id, every field, tags, owner, stage, date_added, date_modified, date_identified; values that could run as spreadsheet formulas are prefixed with '.",
    request_body = Object,
    responses((status = 202, description = "{\"export\": Export}"), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    body: Option<ApiBody>,
) -> AppResult<Response> {
    let body = match body.map(|b| b.0) {
        None => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(AppError::bad_request("the body must be a JSON object")),
    };
    let format = match body.get("format") {
        None | Some(Value::Null) => Format::Csv,
        Some(f) => f
            .as_str()
            .and_then(Format::parse)
            .ok_or_else(|| AppError::bad_request("format must be csv or xlsx"))?,
    };
    let q = Query::from_map(&body)?;
    let e = exports::request(&state, &me, format, &q).await?;
    let (e, job) = exports::get_for(&state, &me, e.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "export": export_json(&e, job.as_ref()) })),
    )
        .into_response())
}

/// `GET /api/exports`
#[utoipa::path(get, path = "/api/exports", tag = "exports", summary = "Your exports, newest first",
    params(("start" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "{\"total\", \"exports\": [Export]}")))]
pub async fn list(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let start = q.int("start", 0)?;
    let limit = q.int("limit", 30)?.clamp(1, 200);
    let mut db = state.store.snapshot().await?; // see `exports::get_for`
    let (rows, total) = store::exports::list(&mut db, me.id, start, limit).await?;
    let job_ids: Vec<i64> = rows.iter().filter_map(|e| e.job_id).collect();
    let jobs = crate::jobs::states(&mut db, &job_ids).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|e| export_json(e, e.job_id.and_then(|j| jobs.get(&j))))
        .collect();
    Ok(Json(json!({ "total": total, "exports": items })))
}

/// `GET /api/exports/{id}`
#[utoipa::path(get, path = "/api/exports/{id}", tag = "exports", summary = "An export's status (queued, running, done, failed, expired)",
    params(("id" = i64, Path)), responses((status = 200, description = "{\"export\": Export}"), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(export_id): Path<String>,
) -> AppResult<Json<Value>> {
    let (e, job) = exports::get_for(&state, &me, id(&export_id)?).await?;
    Ok(Json(json!({ "export": export_json(&e, job.as_ref()) })))
}

/// Streams an open file as the response body.
pub fn file_body(file: tokio::fs::File) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// `GET /api/exports/{id}/download?token=…`
#[utoipa::path(get, path = "/api/exports/{id}/download", tag = "exports", summary = "Download an export through the link from its email (only by the user who asked for it, until the link expires)",
    params(("id" = i64, Path), ("token" = String, Query, description = "The token from the emailed link")),
    responses((status = 200, description = "The file, as an attachment"), (status = 403, description = "Another user, a wrong token, an unknown export or an expired link", body = ErrorBody), (status = 404, description = "Your export is not written yet", body = ErrorBody), (status = 409, description = "Your export failed", body = ErrorBody)))]
pub async fn download(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(export_id): Path<String>,
    q: PhpQuery,
) -> AppResult<Response> {
    let token = q.str("token").unwrap_or("");
    let (e, format, path) =
        exports::authorize_download(&state, &me, id(&export_id)?, token).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|err| AppError::Internal(err.into()))?;
    let size = file
        .metadata()
        .await
        .map_err(|err| AppError::Internal(err.into()))?
        .len();
    let name = exports::download_name(format, e.finished_at.unwrap_or(e.created_at));
    Ok(csv_response(
        file_body(file),
        &name,
        format.content_type(),
        Some(size),
    ))
}

/// `GET /api/exports/direct`
#[utoipa::path(get, path = "/api/exports/direct", tag = "exports", summary = "Export contacts and download the file at once (XLSX or CSV)",
    params(("format" = Option<String>, Query, description = "xlsx (default) or csv"), ("search" = Option<String>, Query, description = "As GET /api/contacts"),
        ("where[0][col]" = Option<String>, Query, description = "As GET /api/contacts"), ("ids" = Option<String>, Query, description = "Selected contacts: 1,2,3")),
    responses((status = 200, description = "The file, as an attachment"), (status = 400, body = ErrorBody)))]
pub async fn direct(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
) -> AppResult<Response> {
    let format = match q.0.get("format") {
        None => Format::Xlsx,
        Some(Value::String(f)) if f.is_empty() => Format::Xlsx,
        // `format[]=csv` is not a format.
        Some(f) => f
            .as_str()
            .and_then(Format::parse)
            .ok_or_else(|| AppError::bad_request("format must be xlsx or csv"))?,
    };
    let query = Query::from_map(&q.0)?;
    let (file, size) = exports::direct(&state, &me, format, &query).await?;
    Ok(csv_response(
        file_body(file),
        &exports::download_name(format, now_ms()),
        format.content_type(),
        Some(size),
    ))
}

/// `GET /api/notifications`
#[utoipa::path(get, path = "/api/notifications", tag = "exports", summary = "Your notifications (exports ready …), newest first",
    params(("limit" = Option<i64>, Query)), responses((status = 200, description = "{\"unread\": N, \"notifications\": [...]}")))]
pub async fn notifications(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let limit = q.int("limit", 50)?.clamp(1, 500);
    let mut db = state.store.read().await?;
    let (list, unread) = store::exports::notifications(&mut db, me.id, limit).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|n| {
            json!({ "id": n.id, "type": n.kind, "title": n.title, "message": n.message, "link": n.link,
                    "dateAdded": iso(n.created_at), "isRead": n.read_at.is_some() })
        })
        .collect();
    Ok(Json(json!({ "unread": unread, "notifications": items })))
}

/// `POST /api/notifications/read`
#[utoipa::path(post, path = "/api/notifications/read", tag = "exports", summary = "Mark all your notifications read", responses((status = 200)))]
pub async fn notifications_read(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
) -> AppResult<Json<Value>> {
    let mut tx = state.store.begin().await?;
    let n = store::exports::mark_notifications_read(&mut tx, me.id, now_ms()).await?;
    tx.commit().await?;
    Ok(Json(json!({ "marked": n })))
}
