//! `/api/stages`: the stages a contact can be in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use crate::contacts::input::ContactInput;
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, id};
use crate::state::SharedState;
use crate::store;
use crate::time::{iso, now_ms};

fn stage_json(s: &store::stages::StageRow) -> Value {
    json!({ "id": s.id, "name": s.name, "description": s.description, "weight": s.weight, "isPublished": s.is_published,
            "dateAdded": iso(s.date_added), "category": null })
}

/// `GET /api/stages`
#[utoipa::path(get, path = "/api/stages", tag = "stages", summary = "List stages", responses((status = 200)))]
pub async fn list(State(state): State<SharedState>) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let stages = store::stages::list(&mut db).await?;
    let mut out = Map::new();
    for s in &stages {
        out.insert(s.id.to_string(), stage_json(s));
    }
    Ok(Json(json!({ "total": stages.len(), "stages": out })))
}

/// `POST /api/stages/new`
#[utoipa::path(post, path = "/api/stages/new", tag = "stages", summary = "Create a stage", request_body = Object, responses((status = 201)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let o = body
        .as_object()
        .ok_or_else(|| AppError::bad_request("the body must be a JSON object"))?;
    if let Some(k) = o
        .keys()
        .find(|k| !["name", "description", "weight", "isPublished"].contains(&k.as_str()))
    {
        return Err(AppError::invalid(k, "is not a stage property"));
    }
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::invalid("name", "is required"))?;
    if name.chars().count() > 191 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "must be at most 191 characters without control characters",
        ));
    }
    let description = o.get("description").and_then(Value::as_str).unwrap_or("");
    let weight = match o.get("weight") {
        None | Some(Value::Null) => 0,
        Some(w) => w
            .as_i64()
            .or_else(|| w.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| AppError::invalid("weight", "must be a whole number"))?,
    };
    let mut tx = state.store.begin().await?;
    let existing = store::stages::list(&mut tx).await?;
    if existing.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
        return Err(AppError::invalid("name", "a stage with this name exists"));
    }
    let stage_id = store::stages::create(&mut tx, name, description, weight, now_ms()).await?;
    let stage = store::stages::by_ids(&mut tx, &[stage_id]).await?.remove(0);
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "stage": stage_json(&stage) })),
    )
        .into_response())
}

/// `POST /api/stages/{id}/contact/{contactId}/add` and `/remove`.
#[utoipa::path(post, path = "/api/stages/{id}/contact/{contact_id}/{action}", tag = "stages", summary = "Put a contact into a stage (add) or take it out (remove)", params(("id" = i64, Path), ("contact_id" = i64, Path), ("action" = String, Path)), responses((status = 200)))]
pub async fn change_contact(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((stage_id, contact_id, action)): Path<(String, String, String)>,
) -> AppResult<Json<Value>> {
    let stage_id = id(&stage_id)?;
    let contact_id = id(&contact_id)?;
    let stage = match action.as_str() {
        "add" => Some(stage_id),
        "remove" => None,
        _ => return Err(AppError::not_found()),
    };
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let operator = state.operator(&mut db).await?;
    if store::stages::by_ids(&mut db, &[stage_id])
        .await?
        .is_empty()
    {
        return Err(AppError::not_found());
    }
    drop(db);
    let ctx = SaveContext {
        fields: fields.clone(),
        operator,
        actor: Some(me.id),
        source: Source::Api,
        now: now_ms(),
    };
    let input = ContactInput {
        stage: Some(stage),
        ..ContactInput::default()
    };
    service::save(&state, &ctx, vec![(Target::Patch(contact_id), input)])
        .await?
        .remove(0)?;
    Ok(Json(json!({ "success": 1 })))
}
