//! `/api/imports…`: CSV imports. Upload (multipart or a raw body), preview with the
//! proposed mapping, start with a mapping and options, progress, stop, resume, and the
//! failed rows as CSV. The admin's import wizard and progress bar sit on these.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};

use super::openapi::ErrorBody;
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, body_failed, id};
use crate::imports::{self, DialectOverride, Preview, Settings, detect, mapping};
use crate::state::SharedState;
use crate::store;
use crate::store::imports::ImportRow;
use crate::store::jobs::JobRow;
use crate::time::{iso, iso_opt, now_ms};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/imports",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/imports/{id}", get(get_one))
        .route("/imports/{id}/start", post(start))
        .route("/imports/{id}/stop", post(stop))
        .route("/imports/{id}/resume", post(resume))
        .route("/imports/{id}/failed.csv", get(failed_csv))
        .route("/imports/{id}/delete", delete(delete_one))
}

fn preview_json(p: &Preview, fields: &crate::contacts::fields::FieldSet) -> Value {
    let mapping: Vec<Value> = p
        .proposals
        .iter()
        .map(|m| {
            let label = match &m.target {
                mapping::Target::Field(a) => fields.get(a).map(|f| f.label.clone()),
                mapping::Target::Special(s) => Some(s.label().to_owned()),
                mapping::Target::Skip => None,
            };
            json!({ "column": m.column, "header": m.header, "field": m.target.name(), "label": label, "matchedBy": m.matched_by })
        })
        .collect();
    let rows: Vec<Value> = p
        .rows
        .iter()
        .map(|r| match r {
            Ok(values) => json!(values),
            Err(message) => json!({ "error": message }),
        })
        .collect();
    let mut targets: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "field": f.alias, "label": f.label, "type": f.field_type.as_str(), "isUniqueIdentifier": f.is_unique_identifier }))
        .collect();
    targets.extend(mapping::Special::ALL.iter().map(|s| json!({ "field": s.as_str(), "label": s.label(), "type": "special", "isUniqueIdentifier": false })));
    json!({
        "dialect": {
            "delimiter": detect::delimiter_name(p.dialect.delimiter),
            "quote": (p.dialect.quote as char).to_string(),
            "encoding": p.dialect.encoding.as_str(),
            "bom": p.dialect.bom,
        },
        "notes": p.notes,
        "headers": p.headers,
        "rows": rows,
        "mapping": mapping,
        "warnings": p.warnings,
        "targets": targets,
    })
}

/// An import as the API shows it (`preview` when asked). The admin's progress bar polls
/// the same shape.
pub fn import_json(i: &ImportRow, job: Option<&JobRow>, preview: Option<Value>) -> Value {
    let settings = Settings::from_json(&i.settings, None);
    let p = imports::progress(i, job, now_ms());
    let started = job.is_some();
    let base = format!("/api/imports/{}", i.id);
    let mut out = json!({
        "id": i.id,
        "fileName": i.file_name,
        "size": i.size_bytes,
        "status": imports::status(job),
        "error": job.and_then(|j| j.error.clone()).filter(|_| job.is_some_and(|j| j.state != crate::store::jobs::JobState::Done)),
        "createdBy": i.created_by,
        "dateAdded": iso(i.created_at),
        "dateStarted": iso_opt(i.started_at),
        "dateFinished": iso_opt(i.finished_at),
        "dialect": {
            "delimiter": detect::delimiter_name(settings.dialect.delimiter),
            "quote": (settings.dialect.quote as char).to_string(),
            "encoding": settings.dialect.encoding.as_str(),
            "bom": settings.dialect.bom,
        },
        "notes": settings.notes,
        "progress": {
            "rowsDone": p.rows_done,
            "rowsTotal": p.rows_total,
            "rowsTotalExact": p.rows_total_exact,
            "created": i.created,
            "updated": i.updated,
            "skipped": i.skipped,
            "failed": i.failed,
            "bytesDone": p.bytes_done,
            "bytesTotal": p.bytes_total,
            "percent": p.percent,
            "rowsPerSecond": p.rows_per_second,
            "etaSeconds": p.eta_seconds,
        },
        "links": {
            "self": base,
            "start": format!("{base}/start"),
            "stop": format!("{base}/stop"),
            "resume": format!("{base}/resume"),
            "failed": format!("{base}/failed.csv"),
        },
    });
    if started {
        let columns: Vec<Value> = settings
            .columns
            .iter()
            .enumerate()
            .map(|(c, t)| json!({ "column": c, "header": settings.headers.get(c), "field": t.name() }))
            .collect();
        out["mapping"] = json!(columns);
        out["options"] = settings.to_json()["options"].clone();
    }
    if let Some(p) = preview {
        out["preview"] = p;
    }
    out
}

async fn with_preview(
    state: &SharedState,
    i: &ImportRow,
    job: Option<&JobRow>,
    over: &DialectOverride,
) -> AppResult<Value> {
    let preview = match imports::preview(state, i, over).await {
        Ok(p) => {
            let mut db = state.store.read().await?;
            let fields = state.fields(&mut db).await?;
            preview_json(&p, &fields)
        }
        Err(AppError::Validation { message, .. }) if job.is_some() => json!({ "error": message }),
        Err(e) => return Err(e),
    };
    Ok(import_json(i, job, Some(preview)))
}

fn file_name_of(req: &Request, q: &PhpQuery) -> String {
    if let Some(n) = q.str("filename").filter(|n| !n.trim().is_empty()) {
        return n.to_owned();
    }
    let h = req.headers();
    if let Some(n) = h.get("x-file-name").and_then(|v| v.to_str().ok()) {
        return percent_encoding::percent_decode_str(n)
            .decode_utf8_lossy()
            .into_owned();
    }
    if let Some(cd) = h
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        && let Some(rest) = cd.split("filename=").nth(1)
    {
        return rest
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned();
    }
    "upload.csv".to_owned()
}

/// `POST /api/imports`
#[utoipa::path(post, path = "/api/imports", tag = "imports", summary = "Upload a CSV file to import",
    description = "Either multipart/form-data with a file field, or the file as the raw body (text/csv or application/octet-stream) with its name in ?filename= or an X-File-Name header. The file is streamed to disk (up to [import] max_upload_bytes). The answer holds the detected dialect (delimiter, quote, encoding), the header, the first rows and the proposed mapping; start the import with POST /api/imports/{id}/start.",
    params(("filename" = Option<String>, Query, description = "Name of the uploaded file (raw bodies)")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, description = "{\"import\": Import} with preview"), (status = 413, body = ErrorBody), (status = 422, description = "Not a CSV file", body = ErrorBody)))]
pub async fn upload(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
    req: Request,
) -> AppResult<Response> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    let mut upload = imports::Upload::begin(&state).await?;
    let name;
    if is_multipart {
        let mut form = axum::extract::Multipart::from_request(req, &state)
            .await
            .map_err(|e| body_failed(&e, format!("malformed multipart body: {e}")))?;
        let mut found = None;
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| AppError::bad_request(format!("malformed multipart body: {e}")))?
        {
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            let n = field.file_name().unwrap_or("upload.csv").to_owned();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| body_failed(&e, format!("the upload was interrupted: {e}")))?
            {
                upload.write(&chunk).await?;
            }
            found = Some(n);
            break;
        }
        name =
            found.ok_or_else(|| AppError::bad_request("the multipart body has no file field"))?;
    } else {
        name = file_name_of(&req, &q);
        let mut body = req.into_body();
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| body_failed(&e, "the upload was interrupted".into()))?;
            if let Ok(data) = frame.into_data() {
                upload.write(&data).await?;
            }
        }
    }
    let import = upload.finish(&state, &me, &name).await?;
    let body = match with_preview(&state, &import, None, &DialectOverride::default()).await {
        Ok(b) => b,
        Err(e) => {
            // Not even a header can be read: nothing to keep.
            let _ = imports::delete(&state, &me, import.id).await;
            return Err(e);
        }
    };
    let mut r = (StatusCode::CREATED, Json(json!({ "import": body }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/imports/{}", import.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// `GET /api/imports`
#[utoipa::path(get, path = "/api/imports", tag = "imports", summary = "List imports, newest first (yours; all for admins)",
    params(("start" = Option<i64>, Query), ("limit" = Option<i64>, Query, description = "default 30, at most 200")),
    responses((status = 200, description = "{\"total\": N, \"imports\": [Import]}")))]
pub async fn list(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let start = q.int("start", 0)?;
    let limit = q.int("limit", 30)?.clamp(1, 200);
    let (rows, total) = imports::list_for(&state, &me, start, limit).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(i, job)| import_json(i, job.as_ref(), None))
        .collect();
    Ok(Json(json!({ "total": total, "imports": items })))
}

/// `GET /api/imports/{id}`
#[utoipa::path(get, path = "/api/imports/{id}", tag = "imports", summary = "An import: status and progress (rows done/total, created/updated/skipped/failed, percent, rows per second, ETA) and a preview",
    params(("id" = i64, Path), ("preview" = Option<bool>, Query, description = "Include the preview (default true until started)"),
        ("delimiter" = Option<String>, Query, description = "Preview with another delimiter: , ; | or tab"),
        ("quote" = Option<String>, Query), ("encoding" = Option<String>, Query, description = "utf-8 or windows-1252")),
    responses((status = 200, description = "{\"import\": Import}"), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let (import, job) = imports::get_for(&state, &me, id(&import_id)?).await?;
    let want_preview = match q.0.get("preview") {
        Some(v) => crate::contacts::input::flag(v).unwrap_or(true),
        None => job.is_none(),
    };
    let body = if want_preview {
        let over = DialectOverride::from_json(&q.0)?;
        with_preview(&state, &import, job.as_ref(), &over).await?
    } else {
        import_json(&import, job.as_ref(), None)
    };
    Ok(Json(json!({ "import": body })))
}

async fn current(
    state: &SharedState,
    me: &crate::users::User,
    import_id: i64,
) -> AppResult<Json<Value>> {
    let (import, job) = imports::get_for(state, me, import_id).await?;
    Ok(Json(
        json!({ "import": import_json(&import, job.as_ref(), None) }),
    ))
}

/// `POST /api/imports/{id}/start`
#[utoipa::path(post, path = "/api/imports/{id}/start", tag = "imports", summary = "Start an uploaded import with a mapping and options",
    description = "Body: {\"mapping\": [{\"column\": 0, \"field\": \"email\"}, {\"column\": 3, \"create\": {\"label\": \"Shoe size\", \"type\": \"number\"}}, {\"column\": 4, \"field\": null}], \"ifExists\": \"update\"|\"skip\", \"matchBy\": \"identifiers\"|\"id\", \"operator\": \"and\"|\"or\", \"owner\": userId, \"tags\": [\"imported\"], \"delimiter\", \"quote\", \"encoding\"}. mapping may also be an object {\"<header or column number>\": alias|null|{\"create\": {…}}}; without mapping the proposal is used. Besides field aliases a column may go to id, tags, owner, stage, dateAdded, dateIdentified or ipAddress. Empty cells never overwrite; the text NULL clears a field.",
    params(("id" = i64, Path)), request_body = Object,
    responses((status = 202, description = "{\"import\": Import}, queued"), (status = 409, description = "Already started", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
    body: Option<ApiBody>,
) -> AppResult<Response> {
    let import_id = id(&import_id)?;
    let body = body.map_or(Value::Object(Map::new()), |b| b.0);
    imports::start(&state, &me, import_id, &body).await?;
    Ok((StatusCode::ACCEPTED, current(&state, &me, import_id).await?).into_response())
}

/// `POST /api/imports/{id}/stop`
#[utoipa::path(post, path = "/api/imports/{id}/stop", tag = "imports", summary = "Stop (pause) an import at its next checkpoint; resume it later",
    params(("id" = i64, Path)), responses((status = 200, description = "{\"import\": Import} (status stopping or paused)"), (status = 409, body = ErrorBody)))]
pub async fn stop(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
) -> AppResult<Json<Value>> {
    let import_id = id(&import_id)?;
    imports::stop(&state, &me, import_id).await?;
    current(&state, &me, import_id).await
}

/// `POST /api/imports/{id}/resume`
#[utoipa::path(post, path = "/api/imports/{id}/resume", tag = "imports", summary = "Resume a paused or failed import from its checkpoint",
    params(("id" = i64, Path)), responses((status = 200, description = "{\"import\": Import}"), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
) -> AppResult<Json<Value>> {
    let import_id = id(&import_id)?;
    imports::resume(&state, &me, import_id).await?;
    current(&state, &me, import_id).await
}

/// `DELETE /api/imports/{id}/delete`
#[utoipa::path(delete, path = "/api/imports/{id}/delete", tag = "imports", summary = "Delete an import that is not running (its file and record; imported contacts stay)",
    params(("id" = i64, Path)), responses((status = 200), (status = 409, body = ErrorBody)))]
pub async fn delete_one(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
) -> AppResult<Json<Value>> {
    let import_id = id(&import_id)?;
    imports::delete(&state, &me, import_id).await?;
    Ok(Json(json!({ "import": { "id": Value::Null } })))
}

/// `GET /api/imports/{id}/failed.csv`
#[utoipa::path(get, path = "/api/imports/{id}/failed.csv", tag = "imports", summary = "The rows that could not be imported, as CSV: row, line, reason, then the row's values",
    params(("id" = i64, Path)), responses((status = 200, content_type = "text/csv"), (status = 404, body = ErrorBody)))]
pub async fn failed_csv(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(import_id): Path<String>,
) -> AppResult<Response> {
    let (import, _) = imports::get_for(&state, &me, id(&import_id)?).await?;
    failed_rows_response(&state, &import)
}

/// The failed rows of an import as a CSV download, streamed page by page (the API's and
/// the admin's link).
pub fn failed_rows_response(state: &SharedState, import: &ImportRow) -> AppResult<Response> {
    let settings = Settings::from_json(&import.settings, None);
    let mut head = Vec::new();
    head.extend_from_slice(b"\xEF\xBB\xBF");
    let mut cols: Vec<String> = vec!["row".into(), "line".into(), "reason".into()];
    cols.extend(settings.headers.iter().cloned());
    crate::exports::write_csv_row(
        &mut head,
        cols.iter().map(|c| crate::exports::neutralize(c)),
    )
    .map_err(|e| AppError::Internal(e.into()))?;
    let import_id = import.id;
    // Failed rows are kept whole, each up to `max_record_bytes`: pages of about 16 MB
    // at most keep the memory flat (5,000 rows when they are small).
    let page_rows = (16 << 20) / state.config.file.import.max_record_bytes.max(1);
    let page_rows = page_rows.clamp(16, 5000) as i64;
    let stream = futures_util::stream::unfold(
        (state.clone(), 0i64, false, Some(head)),
        move |(state, after, done, head)| async move {
            if let Some(h) = head {
                return Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(h)),
                    (state, after, done, None),
                ));
            }
            if done {
                return None;
            }
            let page = async {
                let mut db = state.store.read().await?;
                anyhow::Ok(
                    store::imports::failures_after(&mut db, import_id, after, page_rows).await?,
                )
            }
            .await;
            match page {
                // The connection is cut without the last chunk, so the client sees an
                // incomplete download, never a short file that looks whole.
                Err(e) => {
                    tracing::error!(import = import_id, error = %e, "failed-rows download cut off");
                    Some((
                        Err(std::io::Error::other(e.to_string())),
                        (state, after, true, None),
                    ))
                }
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |f| f.row);
                    let mut buf = Vec::new();
                    for f in &rows {
                        let mut cells: Vec<std::borrow::Cow<'_, str>> = vec![
                            f.row.to_string().into(),
                            f.line.to_string().into(),
                            crate::exports::neutralize(&f.reason),
                        ];
                        cells.extend(f.values.iter().map(|v| crate::imports::failed_cell(v)));
                        let _ = crate::exports::write_csv_row(&mut buf, cells);
                    }
                    Some((
                        Ok(Bytes::from(buf)),
                        (state, last, rows.len() < page_rows as usize, None),
                    ))
                }
            }
        },
    );
    let name = format!("import-{}-failed-rows.csv", import.id);
    Ok(csv_response(
        Body::from_stream(stream),
        &name,
        "text/csv; charset=utf-8",
        None,
    ))
}

/// A download response: the type, an attachment name and no caching.
pub fn csv_response(
    body: Body,
    file_name: &str,
    content_type: &str,
    length: Option<u64>,
) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        file_name.replace(['"', '\\'], "_")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}
