//! `/contacts/import…`: the CSV import wizard. Upload (streamed to disk by
//! `imports::Upload`), the mapping step (each column with its proposed field and sample
//! values, options), then the progress page (a `<progress>` bar, counts, ETA, stop and
//! resume, the failed rows) that reloads itself without script and polls
//! `/contacts/imports/{id}/progress` with it. The list of past imports sits under the
//! upload form.
//!
//! The work is `imports::*` (the API's functions): this module turns forms into their
//! inputs and their results into pages. File names, headers and values are hostile
//! input; templates escape them like everything else.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde_json::{Map, Value as Json, json};

use super::display;
use super::error::{WebError, WebResult};
use super::forms::{FormData, Opt};
use super::layout::{Chrome, render, render_status};
use super::session::{self, Session, tokens_match};
use crate::contacts::fields::{FieldSet, FieldType};
use crate::error::AppError;
use crate::imports::mapping::{Special, Target};
use crate::imports::{self, DialectOverride, Preview, detect};
use crate::state::SharedState;
use crate::store;
use crate::store::imports::ImportRow;
use crate::store::jobs::JobRow;
use crate::time::now_ms;

/// The select value of "do not import" and "create a new field" (aliases never start
/// with `_`).
const SKIP: &str = "";
const CREATE: &str = "__create__";
/// Sample values shown per column.
const SAMPLES: usize = 3;
/// Past imports listed under the upload form.
const HISTORY: i64 = 25;

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

/// The messages of an error, for an alert (validation details are listed one by one).
fn messages(e: &AppError) -> Vec<String> {
    match e {
        AppError::Validation { message, details } => {
            let listed: Vec<String> = details
                .as_object()
                .map(|o| {
                    o.values()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if listed.is_empty() {
                vec![message.clone()]
            } else {
                listed
            }
        }
        other => vec![other.to_string()],
    }
}

/// "1.5 MB"
fn size(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b if b < 1024 * 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b => format!("{:.1} GB", b as f64 / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// "about 3 min left"
fn eta(seconds: Option<i64>) -> String {
    match seconds {
        None => String::new(),
        Some(s) if s < 60 => format!("about {s} s left"),
        Some(s) if s < 3600 => format!("about {} min left", (s + 59) / 60),
        Some(s) => format!("about {} h {} min left", s / 3600, (s % 3600) / 60),
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "new" => "Not started",
        "queued" => "Queued",
        "running" => "Running",
        "stopping" => "Stopping",
        "paused" => "Paused",
        "done" => "Done",
        "failed" => "Failed",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------------------
// Upload page and history.

/// One past import in the list.
pub struct ImportItem {
    pub id: i64,
    pub file_name: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub when: String,
    pub by: String,
    pub rows: String,
    pub created: String,
    pub updated: String,
    pub skipped: String,
    pub failed: String,
    pub has_failed: bool,
}

#[derive(Template)]
#[template(path = "imports.html")]
pub struct UploadPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    pub max_upload: String,
    pub imports: Vec<ImportItem>,
    pub total: String,
}

async fn upload_page(
    state: &SharedState,
    session: &Session,
    error: Option<String>,
) -> WebResult<UploadPage> {
    let (rows, total) = imports::list_for(state, &session.user, 0, HISTORY).await?;
    let users: HashMap<i64, String> = {
        let mut db = state.store.read().await?;
        store::users::list(&mut db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.full_name()))
            .collect()
    };
    let imports = rows
        .iter()
        .map(|(i, job)| {
            let status = imports::status(job.as_ref());
            ImportItem {
                id: i.id,
                file_name: display::clip(&i.file_name, 120),
                status,
                status_label: status_label(status),
                when: display::datetime(i.created_at),
                by: i
                    .created_by
                    .and_then(|u| users.get(&u).cloned())
                    .unwrap_or_default(),
                rows: display::thousands(i.rows_done),
                created: display::thousands(i.created),
                updated: display::thousands(i.updated),
                skipped: display::thousands(i.skipped),
                failed: display::thousands(i.failed),
                has_failed: i.failed > 0,
            }
        })
        .collect();
    Ok(UploadPage {
        chrome: Chrome::new(session, "contacts"),
        error,
        max_upload: size(state.config.file.import.max_upload_bytes as i64),
        imports,
        total: display::thousands(total),
    })
}

/// `GET /contacts/import`: the upload form and the past imports.
pub async fn page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    Ok(render(&upload_page(&state, &session, None).await?))
}

/// Streams the form's file into an `imports::Upload`; checks that a header can be read.
async fn receive(
    state: &SharedState,
    session: &Session,
    mut mp: Multipart,
    drain: bool,
) -> Result<ImportRow, AppError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        crate::http::extract::body_failed(&e, format!("the upload was interrupted: {e}"))
    };
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("").to_owned();
        if name.is_empty() {
            return Err(AppError::bad_request("choose a CSV file to upload"));
        }
        let mut upload = imports::Upload::begin(state).await?;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            if let Err(e) = upload.write(&chunk).await {
                // Read what is left (bounded by the declared length) so the browser
                // gets the page instead of a reset connection.
                if drain {
                    while let Ok(Some(_)) = field.chunk().await {}
                }
                return Err(e);
            }
        }
        let import = upload.finish(state, &session.user, &name).await?;
        if let Err(e) = imports::preview(state, &import, &DialectOverride::default()).await {
            // Not even a header can be read: nothing to keep.
            let _ = imports::delete(state, &session.user, import.id).await;
            return Err(e);
        }
        return Ok(import);
    }
    Err(AppError::bad_request("choose a CSV file to upload"))
}

/// `POST /contacts/import/upload` (multipart: `_csrf` first, then `file`): stores the
/// file and goes to the mapping step, or shows why the file cannot be imported.
pub async fn upload(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WebResult<Response> {
    let mp = mp.map_err(|_| {
        WebError::BadRequest("Send the file with the upload form (multipart/form-data).".into())
    })?;
    let limit = state.config.file.import.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result = match declared {
        // The form's other fields take a few hundred bytes: a body this much larger
        // than the limit is refused before reading it.
        Some(n) if n > limit.saturating_add(64 * 1024) => Err(AppError::PayloadTooLarge(format!(
            "the file is larger than the import limit of {} ([import] max_upload_bytes)",
            size(limit as i64)
        ))),
        _ => receive(&state, &session, mp, declared.is_some()).await,
    };
    match result {
        Ok(import) => Ok(Redirect::to(&format!("/contacts/imports/{}", import.id)).into_response()),
        Err(AppError::Internal(e)) => Err(WebError::Internal(e)),
        Err(e) => {
            let status = if matches!(e, AppError::PayloadTooLarge(_)) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let message = messages(&e).join(" ");
            Ok(render_status(
                status,
                &upload_page(&state, &session, Some(message)).await?,
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mapping step.

/// One column of the file in the mapping form.
pub struct ColumnRow {
    pub index: usize,
    pub header: String,
    pub samples: Vec<String>,
    pub fields: Vec<Opt>,
    pub specials: Vec<Opt>,
    pub skip: bool,
    pub create: bool,
    pub new_label: String,
    pub new_type: String,
    /// Why the column was proposed ("alias", "label" …) when it was.
    pub matched_by: Option<&'static str>,
}

/// The options of the mapping form (as submitted, or the defaults).
pub struct MappingOptions {
    pub owners: Vec<(i64, String, bool)>,
    pub tags: String,
    pub if_exists: String,
    pub match_by: String,
    pub operator: String,
}

#[derive(Template)]
#[template(path = "import_mapping.html")]
pub struct MappingPage {
    pub chrome: Chrome,
    pub id: i64,
    pub file_name: String,
    pub file_size: String,
    pub line_count: String,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub bad_rows: Vec<String>,
    pub delimiter: String,
    pub quote: String,
    pub encoding: String,
    pub delimiters: Vec<Opt>,
    pub quotes: Vec<Opt>,
    pub encodings: Vec<Opt>,
    pub columns: Vec<ColumnRow>,
    pub types: Vec<&'static str>,
    pub options: MappingOptions,
}

/// What the user chose for a column: a target name, skip, or a new field.
#[derive(Clone, Debug, PartialEq)]
enum Choice {
    Skip,
    Target(String),
    Create { label: String, field_type: String },
}

fn choice_of(form: &FormData, i: usize) -> Choice {
    match form.str(&format!("col_{i}")).as_str() {
        SKIP => Choice::Skip,
        CREATE => Choice::Create {
            label: form.str(&format!("new_label_{i}")).trim().to_owned(),
            field_type: form.str(&format!("new_type_{i}")),
        },
        name => Choice::Target(name.to_owned()),
    }
}

fn proposal_choice(p: &imports::mapping::Proposal) -> Choice {
    match p.target.name() {
        None => Choice::Skip,
        Some(n) => Choice::Target(n.to_owned()),
    }
}

/// Types a new field can get here (select types need their options: create those in
/// Settings → Custom fields).
fn creatable_types() -> Vec<&'static str> {
    FieldType::ALL
        .iter()
        .filter(|t| !matches!(t, FieldType::Select | FieldType::Multiselect))
        .map(|t| t.as_str())
        .collect()
}

fn column_rows(p: &Preview, fields: &FieldSet, choices: &[Choice]) -> Vec<ColumnRow> {
    p.headers
        .iter()
        .enumerate()
        .map(|(i, header)| {
            let choice = choices.get(i).cloned().unwrap_or(Choice::Skip);
            let chosen = match &choice {
                Choice::Target(n) => n.as_str(),
                _ => "",
            };
            let samples = p
                .rows
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .filter_map(|r| r.get(i))
                .filter(|v| !v.trim().is_empty())
                .take(SAMPLES)
                .map(|v| display::clip(v, 60))
                .collect();
            let fields_opts = fields
                .iter()
                .map(|f| Opt {
                    value: f.alias.clone(),
                    label: format!("{} ({})", f.label, f.alias),
                    selected: f.alias == chosen,
                })
                .collect();
            let specials = Special::ALL
                .iter()
                .filter(|s| fields.get(s.as_str()).is_none())
                .map(|s| Opt {
                    value: s.as_str().to_owned(),
                    label: s.label().to_owned(),
                    selected: s.as_str() == chosen,
                })
                .collect();
            let (new_label, new_type) = match &choice {
                Choice::Create { label, field_type } => (label.clone(), field_type.clone()),
                _ => (display::clip(header, 100), "text".to_owned()),
            };
            ColumnRow {
                index: i,
                header: display::clip(header, 120),
                samples,
                fields: fields_opts,
                specials,
                skip: choice == Choice::Skip,
                create: matches!(choice, Choice::Create { .. }),
                new_label,
                new_type,
                matched_by: p
                    .proposals
                    .get(i)
                    .and_then(|m| m.matched_by)
                    .filter(|_| choice == proposal_choice(&p.proposals[i])),
            }
        })
        .collect()
}

/// The dialect asked for in the query or the form (`delimiter`, `quote`, `encoding`).
fn dialect_of(pairs: &[(String, String)]) -> Result<DialectOverride, AppError> {
    let mut o = Map::new();
    for (k, v) in pairs {
        if matches!(k.as_str(), "delimiter" | "quote" | "encoding") {
            o.insert(k.clone(), Json::String(v.clone()));
        }
    }
    DialectOverride::from_json(&o)
}

fn opts(list: &[(&str, &str)], current: &str) -> Vec<Opt> {
    list.iter()
        .map(|(v, l)| Opt {
            value: (*v).to_owned(),
            label: (*l).to_owned(),
            selected: *v == current,
        })
        .collect()
}

/// Builds the mapping page; `form` is a submitted mapping to show again with `errors`.
async fn mapping_page(
    state: &SharedState,
    session: &Session,
    import: &ImportRow,
    over: &DialectOverride,
    form: Option<&FormData>,
    errors: Vec<String>,
) -> WebResult<MappingPage> {
    let preview = imports::preview(state, import, over).await;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let default_operator = match state.operator(&mut db).await? {
        crate::config::UniqueIdentifierOperator::And => "and",
        crate::config::UniqueIdentifierOperator::Or => "or",
    };
    let users = store::users::list(&mut db).await?;
    drop(db);
    let (preview, mut errors) = match preview {
        Ok(p) => (Some(p), errors),
        Err(AppError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(e) => (None, [messages(&e), errors].concat()),
    };
    let value = |k: &str, d: &str| {
        form.and_then(|f| f.get(k))
            .map_or_else(|| d.to_owned(), str::to_owned)
    };
    let owner = form.map_or_else(String::new, |f| f.str("owner"));
    let options = MappingOptions {
        owners: users
            .iter()
            .filter(|u| u.is_active)
            .map(|u| (u.id, u.full_name(), u.id.to_string() == owner))
            .collect(),
        tags: value("tags", ""),
        if_exists: value("ifExists", "update"),
        match_by: value("matchBy", "identifiers"),
        operator: value("operator", default_operator),
    };
    let (columns, notes, warnings, bad_rows, dialect) = match &preview {
        Some(p) => {
            let choices: Vec<Choice> = match form {
                Some(f) => (0..p.headers.len()).map(|i| choice_of(f, i)).collect(),
                None => p.proposals.iter().map(proposal_choice).collect(),
            };
            let bad = p
                .rows
                .iter()
                .filter_map(|r| r.as_ref().err())
                .map(|m| display::clip(m, 300))
                .collect();
            (
                column_rows(p, &fields, &choices),
                p.notes.clone(),
                p.warnings.clone(),
                bad,
                p.dialect,
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            imports::Settings::from_json(&import.settings, None).dialect,
        ),
    };
    if preview.is_some() && columns.is_empty() {
        errors.push("The file has no columns.".into());
    }
    let delimiter = match dialect.delimiter {
        b'\t' => "tab".to_owned(),
        d => detect::delimiter_name(d),
    };
    let quote = (dialect.quote as char).to_string();
    let encoding = dialect.encoding.as_str().to_owned();
    Ok(MappingPage {
        chrome: Chrome::new(session, "contacts"),
        id: import.id,
        file_name: display::clip(&import.file_name, 120),
        file_size: size(import.size_bytes),
        line_count: display::thousands(import.line_count),
        notes,
        warnings,
        errors,
        bad_rows,
        delimiters: opts(
            &[
                (",", "Comma ,"),
                (";", "Semicolon ;"),
                ("tab", "Tab"),
                ("|", "Pipe |"),
            ],
            &delimiter,
        ),
        quotes: opts(
            &[("\"", "Double quote \""), ("'", "Single quote '")],
            &quote,
        ),
        encodings: opts(
            &[
                ("utf-8", "UTF-8"),
                ("windows-1252", "Windows-1252 (Latin-1)"),
            ],
            &encoding,
        ),
        delimiter,
        quote,
        encoding,
        columns,
        types: creatable_types(),
        options,
    })
}

// ---------------------------------------------------------------------------------------
// Progress.

/// The progress of a started import, as the page shows it (the script fills the same
/// places from the JSON).
pub struct ProgressView {
    pub status: &'static str,
    pub status_label: &'static str,
    pub percent: String,
    pub rows_done: String,
    pub rows_total: String,
    pub rows_total_exact: bool,
    pub created: String,
    pub updated: String,
    pub skipped: String,
    pub failed: String,
    pub has_failed: bool,
    pub eta: String,
    pub rate: String,
    pub error: Option<String>,
    pub live: bool,
    pub can_stop: bool,
    pub can_resume: bool,
}

fn progress_view(import: &ImportRow, job: Option<&JobRow>) -> ProgressView {
    let p = imports::progress(import, job, now_ms());
    let status = imports::status(job);
    let live = matches!(status, "queued" | "running" | "stopping");
    ProgressView {
        status,
        status_label: status_label(status),
        percent: format!("{:.1}", p.percent),
        rows_done: display::thousands(p.rows_done),
        rows_total: display::thousands(p.rows_total),
        rows_total_exact: p.rows_total_exact,
        created: display::thousands(import.created),
        updated: display::thousands(import.updated),
        skipped: display::thousands(import.skipped),
        failed: display::thousands(import.failed),
        has_failed: import.failed > 0,
        eta: if status == "running" {
            eta(p.eta_seconds)
        } else {
            String::new()
        },
        rate: p
            .rows_per_second
            .filter(|_| status == "running")
            .map(|r| format!("{} rows/s", display::thousands(r.round() as i64)))
            .unwrap_or_default(),
        error: job
            .filter(|_| status == "failed" || status == "paused")
            .and_then(|j| j.error.clone())
            .map(|e| display::clip(&e, 500)),
        live,
        can_stop: matches!(status, "queued" | "running"),
        can_resume: matches!(status, "paused" | "failed"),
    }
}

/// A column of a started import and where it went.
pub struct MappedColumn {
    pub header: String,
    pub target: String,
}

#[derive(Template)]
#[template(path = "import_progress.html")]
pub struct ProgressPage {
    pub chrome: Chrome,
    pub id: i64,
    pub file_name: String,
    pub file_size: String,
    pub started: String,
    pub finished: String,
    pub p: ProgressView,
    pub mapped: Vec<MappedColumn>,
}

async fn progress_page(
    state: &SharedState,
    session: &Session,
    import: &ImportRow,
    job: Option<&JobRow>,
) -> WebResult<ProgressPage> {
    let settings = imports::Settings::from_json(&import.settings, None);
    let fields = {
        let mut db = state.store.read().await?;
        state.fields(&mut db).await?
    };
    let mapped = settings
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let target = match t {
                Target::Skip => return None,
                Target::Field(a) => fields.get(a).map_or_else(|| a.clone(), |f| f.label.clone()),
                Target::Special(s) => s.label().to_owned(),
            };
            Some(MappedColumn {
                header: display::clip(settings.headers.get(i).map_or("", String::as_str), 120),
                target,
            })
        })
        .collect();
    Ok(ProgressPage {
        chrome: Chrome::new(session, "contacts"),
        id: import.id,
        file_name: display::clip(&import.file_name, 120),
        file_size: size(import.size_bytes),
        started: display::datetime_opt(import.started_at),
        finished: display::datetime_opt(import.finished_at),
        p: progress_view(import, job),
        mapped,
    })
}

/// `GET /contacts/imports/{id}`: the mapping step until the import is started, then its
/// progress. `?delimiter=&quote=&encoding=` re-reads the file with other settings.
pub async fn import_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> WebResult<Response> {
    let (import, job) = imports::get_for(&state, &session.user, id_of(&id)?).await?;
    if job.is_some() {
        return Ok(render(
            &progress_page(&state, &session, &import, job.as_ref()).await?,
        ));
    }
    let (over, errors) = match dialect_of(&q) {
        Ok(o) => (o, Vec::new()),
        Err(e) => (DialectOverride::default(), messages(&e)),
    };
    Ok(render(
        &mapping_page(&state, &session, &import, &over, None, errors).await?,
    ))
}

/// The start request of the API (`imports::start`'s body) from the mapping form.
fn start_body(form: &FormData, columns: usize) -> Json {
    let mapping: Vec<Json> = (0..columns)
        .map(|i| match choice_of(form, i) {
            Choice::Skip => json!({ "column": i, "field": null }),
            Choice::Target(name) => json!({ "column": i, "field": name }),
            Choice::Create { label, field_type } => {
                json!({ "column": i, "create": { "label": label, "type": field_type } })
            }
        })
        .collect();
    let mut body = json!({
        "mapping": mapping,
        "ifExists": form.str("ifExists"),
        "matchBy": form.str("matchBy"),
        "operator": form.str("operator"),
        "tags": form.str("tags"),
    });
    for key in ["delimiter", "quote", "encoding"] {
        body[key] = json!(form.str(key));
    }
    let owner = form.str("owner");
    if !owner.trim().is_empty() {
        body["owner"] = json!(owner.trim());
    }
    for key in ["ifExists", "matchBy", "operator"] {
        if body[key] == json!("") {
            body.as_object_mut().expect("object").remove(key);
        }
    }
    body
}

/// `POST /contacts/imports/{id}/start`: the mapping form. Starts the job and shows its
/// progress, or shows the form again with what is wrong.
pub async fn start(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = FormData(form);
    let (import, job) = imports::get_for(&state, &session.user, id_of(&id)?).await?;
    if job.is_some() {
        return Ok(Redirect::to(&format!("/contacts/imports/{}", import.id)).into_response());
    }
    let columns = form.0.iter().filter(|(k, _)| k.starts_with("col_")).count();
    let over = dialect_of(&form.0).unwrap_or_default();
    match imports::start(
        &state,
        &session.user,
        import.id,
        &start_body(&form, columns),
    )
    .await
    {
        Ok(()) => {
            session::flash(&state, &session, "success", "The import started.").await?;
            Ok(Redirect::to(&format!("/contacts/imports/{}", import.id)).into_response())
        }
        Err(AppError::Internal(e)) => Err(WebError::Internal(e)),
        Err(AppError::Conflict(_)) => {
            Ok(Redirect::to(&format!("/contacts/imports/{}", import.id)).into_response())
        }
        Err(e) => {
            let page =
                mapping_page(&state, &session, &import, &over, Some(&form), messages(&e)).await?;
            Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

/// Stop and resume: the change, then back to the progress page with a message.
async fn control(
    state: &SharedState,
    session: &Session,
    id: &str,
    stop: bool,
) -> WebResult<Response> {
    let id = id_of(id)?;
    let result = if stop {
        imports::stop(state, &session.user, id).await
    } else {
        imports::resume(state, &session.user, id).await
    };
    match result {
        Ok(()) => {
            let text = if stop {
                "The import will stop after the rows in hand; resume it whenever you like."
            } else {
                "The import continues from where it stopped."
            };
            session::flash(state, session, "success", text).await?;
        }
        Err(AppError::Conflict(m)) => session::flash(state, session, "error", &m).await?,
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&format!("/contacts/imports/{id}")).into_response())
}

/// `POST /contacts/imports/{id}/stop`
pub async fn stop(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    control(&state, &session, &id, true).await
}

/// `POST /contacts/imports/{id}/resume`
pub async fn resume(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    control(&state, &session, &id, false).await
}

/// `GET /contacts/imports/{id}/progress`: the import as the API shows it, for the
/// progress bar's script (which sends the session's CSRF token in `X-CSRF-Token`).
pub async fn progress_json(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> WebResult<Response> {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !tokens_match(token, &session.csrf) {
        return Err(WebError::Csrf);
    }
    let (import, job) = imports::get_for(&state, &session.user, id_of(&id)?).await?;
    let mut body = crate::http::api::imports::import_json(&import, job.as_ref(), None);
    let view = progress_view(&import, job.as_ref());
    body["display"] = json!({
        "statusLabel": view.status_label, "percent": view.percent, "rowsDone": view.rows_done, "rowsTotal": view.rows_total,
        "created": view.created, "updated": view.updated, "skipped": view.skipped, "failed": view.failed,
        "eta": view.eta, "rate": view.rate, "error": view.error, "live": view.live, "canStop": view.can_stop, "canResume": view.can_resume,
    });
    let mut r = axum::Json(json!({ "import": body })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /contacts/imports/{id}/failed.csv`: the rows that could not be imported.
pub async fn failed_csv(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let (import, _) = imports::get_for(&state, &session.user, id_of(&id)?).await?;
    Ok(crate::http::api::imports::failed_rows_response(
        &state, &import,
    )?)
}
