//! `/api/tags…`: the tag list, and creating, reading, editing and deleting a tag.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::contacts::input::normalize_tag;
use crate::contacts::values::textarea_text;
use crate::error::{AppError, AppResult};
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store::entity_list::ListColumn;
use crate::store::{self, tags::Tag};

fn tag_json(t: &Tag) -> Value {
    json!({ "id": t.id, "tag": t.tag, "description": t.description })
}

/// A tag body: `tag` (the name) and `description`, each `None` when absent.
/// `Some(None)` for the description clears it.
struct TagInput {
    name: Option<String>,
    description: Option<Option<String>>,
}

impl TagInput {
    fn from_json(body: &Value) -> AppResult<TagInput> {
        let o = body
            .as_object()
            .ok_or_else(|| AppError::bad_request("the body must be a JSON object"))?;
        // `id` is read-only: clients send back the tag they read.
        if let Some(k) = o
            .keys()
            .find(|k| !["tag", "description", "id"].contains(&k.as_str()))
        {
            return Err(AppError::invalid(k, "is not a tag property"));
        }
        let name = match o.get("tag") {
            None => None,
            Some(Value::String(n)) => {
                let n = normalize_tag(n.trim()).map_err(|m| AppError::invalid("tag", m))?;
                if n.is_empty() {
                    return Err(AppError::invalid("tag", "must not be empty"));
                }
                Some(n)
            }
            Some(_) => return Err(AppError::invalid("tag", "must be a string")),
        };
        let description = match o.get("description") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(d)) => {
                Some(textarea_text(d).map_err(|m| AppError::invalid("description", m))?)
            }
            Some(_) => return Err(AppError::invalid("description", "must be a string")),
        };
        Ok(TagInput { name, description })
    }
}

/// What `orderBy` and `where` may name.
const TAG_COLUMNS: &[ListColumn] = &[
    ListColumn::int("id", "t.id"),
    ListColumn::text("tag", "t.tag"),
    ListColumn::text("description", "t.description"),
];

/// `GET /api/tags`: a list, as Mautic answers it (by name unless `orderBy` says).
#[utoipa::path(get, path = "/api/tags", tag = "tags", summary = "List tags", params(("search" = Option<String>, Query, description = "Text in the name or description, and/or ids:1,2,3"), ("start" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("orderBy" = Option<String>, Query, description = "id, tag or description"), ("order" = Option<String>, Query, description = "order[0][col] and order[0][dir], as orderBy and orderByDir"), ("where" = Option<String>, Query, description = "Mautic's where[n][col|expr|val] (and orX/andX groups) on the columns orderBy names"), ("orderByDir" = Option<String>, Query)), responses((status = 200)))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let query = q.entity_query(TAG_COLUMNS, ("t.tag", false), 100)?;
    let mut db = state.store.read().await?;
    let (tags, total) = store::tags::list(&mut db, &query).await?;
    Ok(Json(
        json!({ "total": total, "tags": tags.iter().map(tag_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/tags/{id}`
#[utoipa::path(get, path = "/api/tags/{id}", tag = "tags", summary = "Get a tag", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(tag_id): Path<String>,
) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let tag = store::tags::by_id(&mut db, id(&tag_id)?)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "tag": tag_json(&tag) })))
}

/// `POST /api/tags/new`: 201 for a new tag, 200 with the existing one when the name exists.
#[utoipa::path(post, path = "/api/tags/new", tag = "tags", summary = "Create a tag (200 with the existing one when the name exists)", request_body = Object, responses((status = 201), (status = 200)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let input = TagInput::from_json(&body)?;
    let name = input
        .name
        .ok_or_else(|| AppError::invalid("tag", "is required"))?;
    let description = input.description.flatten();
    let mut tx = state.store.begin().await?;
    store::tags::lock_names(&mut tx, &[&name]).await?;
    if let Some(t) = store::tags::by_name(&mut tx, &name).await? {
        return Ok((StatusCode::OK, Json(json!({ "tag": tag_json(&t) }))).into_response());
    }
    let id = store::tags::insert(&mut tx, &name, description.as_deref())
        .await
        .map_err(|e| AppError::unless_taken(e, "tag", "a tag with this name exists"))?;
    tx.commit().await?;
    let tag = Tag {
        id,
        tag: name,
        description,
    };
    Ok((StatusCode::CREATED, Json(json!({ "tag": tag_json(&tag) }))).into_response())
}

/// Edits tag `id`: renames it (every tagged contact keeps it) and sets its description.
/// `replace`: a description the body leaves out is cleared (PUT). `None` when the id is
/// unknown.
async fn update(
    state: &SharedState,
    tag_id: i64,
    input: TagInput,
    replace: bool,
) -> AppResult<Option<Tag>> {
    let mut tx = state.store.begin().await?;
    let Some(mut tag) = store::tags::by_id(&mut tx, tag_id).await? else {
        return Ok(None);
    };
    if let Some(name) = input.name {
        store::tags::lock_names(&mut tx, &[&name]).await?;
        if let Some(other) = store::tags::by_name(&mut tx, &name).await?
            && other.id != tag.id
        {
            return Err(AppError::invalid(
                "tag",
                format!("a tag named '{name}' exists (id {})", other.id),
            ));
        }
        tag.tag = name;
    }
    match input.description {
        Some(d) => tag.description = d,
        None if replace => tag.description = None,
        None => {}
    }
    store::tags::update(&mut tx, tag.id, &tag.tag, tag.description.as_deref())
        .await
        .map_err(|e| AppError::unless_taken(e, "tag", "a tag with this name exists"))?;
    tx.commit().await?;
    Ok(Some(tag))
}

/// `PATCH /api/tags/{id}/edit`
#[utoipa::path(patch, path = "/api/tags/{id}/edit", tag = "tags", summary = "Rename a tag or change its description", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<SharedState>,
    Path(tag_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let tag_id = id(&tag_id)?;
    let input = TagInput::from_json(&body)?;
    let tag = update(&state, tag_id, input, false)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "tag": tag_json(&tag) })))
}

/// `PUT /api/tags/{id}/edit`: replaces the tag, or creates it when the id is unknown
/// (201), as Mautic does.
#[utoipa::path(put, path = "/api/tags/{id}/edit", tag = "tags", summary = "Replace a tag, or create it when the id is unknown", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    Path(tag_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let tag_id = id(&tag_id)?;
    let input = TagInput::from_json(&body)?;
    if input.name.is_none() {
        return Err(AppError::invalid("tag", "is required"));
    }
    match update(&state, tag_id, input, true).await? {
        Some(tag) => Ok(Json(json!({ "tag": tag_json(&tag) })).into_response()),
        None => create(State(state), ApiBody(body)).await,
    }
}

/// `DELETE /api/tags/{id}/delete`: the tag leaves every contact that had it.
#[utoipa::path(delete, path = "/api/tags/{id}/delete", tag = "tags", summary = "Delete a tag (it leaves every contact)", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(tag_id): Path<String>,
) -> AppResult<Json<Value>> {
    let tag_id = id(&tag_id)?;
    let mut tx = state.store.begin().await?;
    let tag = store::tags::by_id(&mut tx, tag_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    store::tags::delete(&mut tx, tag_id).await?;
    tx.commit().await?;
    let mut j = tag_json(&tag);
    j["id"] = Value::Null;
    Ok(Json(json!({ "tag": j })))
}
