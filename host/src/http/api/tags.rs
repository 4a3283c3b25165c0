//! `/api/tags`: the tag list, and creating a tag.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::contacts::input::normalize_tag;
use crate::contacts::values::{MAX_TEXTAREA, check_chars};
use crate::error::{AppError, AppResult};
use crate::http::extract::{ApiBody, PhpQuery};
use crate::state::SharedState;
use crate::store;

fn tag_json(t: &store::tags::Tag) -> Value {
    json!({ "id": t.id, "tag": t.tag, "description": t.description })
}

/// `GET /api/tags`
#[utoipa::path(get, path = "/api/tags", tag = "tags", summary = "List tags", responses((status = 200)))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let limit = match q.int("limit", 100)? {
        0 => 1000,
        n => n.min(1000),
    };
    let (tags, total) =
        store::tags::list(&mut db, q.str("search"), q.int("start", 0)?, limit).await?;
    let mut out = Map::new();
    for t in &tags {
        out.insert(t.id.to_string(), tag_json(t));
    }
    Ok(Json(json!({ "total": total, "tags": out })))
}

/// `POST /api/tags/new`: 201 for a new tag, 200 with the existing one when the name exists.
#[utoipa::path(post, path = "/api/tags/new", tag = "tags", summary = "Create a tag (200 with the existing one when the name exists)", request_body = Object, responses((status = 201), (status = 200)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let name = body
        .get("tag")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::invalid("tag", "is required"))?;
    let name = normalize_tag(name.trim()).map_err(|m| AppError::invalid("tag", m))?;
    if name.is_empty() {
        return Err(AppError::invalid("tag", "is required"));
    }
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["tag", "description"].contains(&k.as_str()))
    }) {
        return Err(AppError::invalid(k, "is not a tag property"));
    }
    // Multi-line text, as long as a textarea field.
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.trim().is_empty() => None,
        Some(Value::String(d)) => {
            let len = d.chars().count();
            if len > MAX_TEXTAREA {
                return Err(AppError::invalid(
                    "description",
                    format!("must be at most {MAX_TEXTAREA} characters (got {len})"),
                ));
            }
            check_chars(d, true).map_err(|m| AppError::invalid("description", m))?;
            Some(d.trim().to_owned())
        }
        Some(_) => return Err(AppError::invalid("description", "must be a string")),
    };
    let mut tx = state.store.begin().await?;
    if let Some(t) = store::tags::by_name(&mut tx, &name).await? {
        return Ok((StatusCode::OK, Json(json!({ "tag": tag_json(&t) }))).into_response());
    }
    let id = store::tags::insert(&mut tx, &name, description.as_deref()).await?;
    tx.commit().await?;
    let tag = store::tags::Tag {
        id,
        tag: name,
        description,
        contacts: 0,
    };
    Ok((StatusCode::CREATED, Json(json!({ "tag": tag_json(&tag) }))).into_response())
}
