//! `/api/notes…`: notes on contacts; each note also shows in the contact's timeline.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::contacts::notes::{self as note_service, NoteInput};
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store::{self, notes::Note};

pub fn note_json(n: &Note) -> Value {
    json!({
        "id": n.id,
        "text": n.text,
        "type": n.note_type,
        "dateTime": crate::time::iso_opt(n.date_time),
        "dateAdded": crate::time::iso(n.date_added),
        "dateModified": crate::time::iso(n.date_modified),
        "createdBy": n.created_by,
        "lead": { "id": n.contact_id },
    })
}

/// `GET /api/notes`
#[utoipa::path(get, path = "/api/notes", tag = "notes", summary = "List notes", params(("search" = Option<String>, Query, description = "Text in the note, ids:1,2,3, type:general|email|call|meeting"), ("start" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("orderBy" = Option<String>, Query, description = "id, dateAdded, dateTime, dateModified, type, text"), ("order" = Option<String>, Query, description = "order[0][col] and order[0][dir], as orderBy and orderByDir"), ("where" = Option<String>, Query, description = "Mautic's where[n][col|expr|val] (and orX/andX groups) on the columns orderBy names"), ("orderByDir" = Option<String>, Query)), responses((status = 200)))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let mut query = q.entity_query(store::notes::LIST_COLUMNS, ("date_added", true), 30)?;
    // Mautic's one search command of its own for notes: type:general|email|call|meeting.
    for t in query.take_commands(&["type"]) {
        note_service::parse_type(&t)?;
    }
    let mut db = state.store.read().await?;
    let (notes, total) = store::notes::list(&mut db, &query).await?;
    Ok(Json(
        json!({ "total": total, "notes": notes.iter().map(note_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/notes/{id}`
#[utoipa::path(get, path = "/api/notes/{id}", tag = "notes", summary = "Get a note", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(note_id): Path<String>,
) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let note = store::notes::get(&mut db, id(&note_id)?)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "note": note_json(&note) })))
}

/// `POST /api/notes/new`
#[utoipa::path(post, path = "/api/notes/new", tag = "notes", summary = "Create a note: lead, text, type (general, email, call, meeting), dateTime", request_body = Object, responses((status = 201), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let input = NoteInput::from_json(&body, true)?;
    let note = note_service::create(&state.store, &input, Some(me.id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "note": note_json(&note) })),
    )
        .into_response())
}

/// `PATCH /api/notes/{id}/edit`
#[utoipa::path(patch, path = "/api/notes/{id}/edit", tag = "notes", summary = "Edit a note", params(("id" = i64, Path)), request_body = Object, responses((status = 200)))]
pub async fn edit(
    State(state): State<SharedState>,
    Path(note_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let input = NoteInput::from_json(&body, false)?;
    let note = note_service::update(&state.store, id(&note_id)?, &input).await?;
    Ok(Json(json!({ "note": note_json(&note) })))
}

/// `PUT /api/notes/{id}/edit`: replaces the note (what the body leaves out returns to a new
/// note's value), or creates it when the id is unknown (201), as Mautic does.
#[utoipa::path(put, path = "/api/notes/{id}/edit", tag = "notes", summary = "Replace a note, or create it when the id is unknown", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201)))]
pub async fn put(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(note_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let input = NoteInput::from_json(&body, false)?.replacing()?;
    match note_service::update(&state.store, id(&note_id)?, &input).await {
        Err(AppError::NotFound(_)) => {
            create(State(state), Extension(CurrentUser(me)), ApiBody(body)).await
        }
        updated => Ok(Json(json!({ "note": note_json(&updated?) })).into_response()),
    }
}

/// `DELETE /api/notes/{id}/delete`
#[utoipa::path(delete, path = "/api/notes/{id}/delete", tag = "notes", summary = "Delete a note", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(note_id): Path<String>,
) -> AppResult<Json<Value>> {
    let note = note_service::delete(&state.store, id(&note_id)?).await?;
    let mut j = note_json(&note);
    j["id"] = Value::Null;
    Ok(Json(json!({ "note": j })))
}
