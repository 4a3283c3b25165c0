//! `/api/stages`: the stages a contact can be in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::contacts::input::{ContactInput, flag, normalize_stage_name};
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::contacts::values::textarea_text;
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store::entity_list::ListColumn;
use crate::store::{self, stages::StageRow};
use crate::time::{iso, now_ms};

fn stage_json(s: &StageRow) -> Value {
    json!({ "id": s.id, "name": s.name, "description": s.description, "weight": s.weight, "isPublished": s.is_published,
            "dateAdded": iso(s.date_added), "category": null })
}

/// What `orderBy` and `where` may name.
const STAGE_COLUMNS: &[ListColumn] = &[
    ListColumn::int("id", "id"),
    ListColumn::text("name", "name"),
    ListColumn::int("weight", "weight"),
    ListColumn::text("description", "description"),
    ListColumn::int("isPublished", "is_published"),
    ListColumn::time("dateAdded", "date_added"),
];

/// `GET /api/stages`: a list, as Mautic answers it (by weight unless `orderBy` says).
#[utoipa::path(get, path = "/api/stages", tag = "stages", summary = "List stages", params(("search" = Option<String>, Query, description = "Text in the name or description, and/or ids:1,2,3"), ("start" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("orderBy" = Option<String>, Query, description = "id, name, weight, description, isPublished, dateAdded"), ("order" = Option<String>, Query, description = "order[0][col] and order[0][dir], as orderBy and orderByDir"), ("where" = Option<String>, Query, description = "Mautic's where[n][col|expr|val] (and orX/andX groups) on the columns orderBy names"), ("published" = Option<bool>, Query, description = "1: published stages only"), ("orderByDir" = Option<String>, Query)), responses((status = 200)))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let query = q.entity_query(STAGE_COLUMNS, ("weight", false), 100)?;
    let mut db = state.store.read().await?;
    let (stages, total) = store::stages::page(&mut db, &query).await?;
    Ok(Json(json!({
        "total": total,
        "stages": stages.iter().map(stage_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/stages/{id}`
#[utoipa::path(get, path = "/api/stages/{id}", tag = "stages", summary = "Get a stage", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(stage_id): Path<String>,
) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let stage = store::stages::by_ids(&mut db, &[id(&stage_id)?])
        .await?
        .pop()
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "stage": stage_json(&stage) })))
}

/// A stage body; each `None` when absent.
struct StageInput {
    name: Option<String>,
    description: Option<String>,
    weight: Option<i64>,
    is_published: Option<bool>,
}

impl StageInput {
    fn from_json(body: &Value) -> AppResult<StageInput> {
        let o = body
            .as_object()
            .ok_or_else(|| AppError::bad_request("the body must be a JSON object"))?;
        // Keys a GET answers are read-only: clients send back the stage they read.
        const READ_ONLY: [&str; 4] = ["id", "dateAdded", "category", "alias"];
        if let Some(k) = o.keys().find(|k| {
            !["name", "description", "weight", "isPublished"].contains(&k.as_str())
                && !READ_ONLY.contains(&k.as_str())
        }) {
            return Err(AppError::invalid(k, "is not a stage property"));
        }
        let name = match o.get("name") {
            None => None,
            Some(Value::String(n)) => {
                Some(normalize_stage_name(n).map_err(|m| AppError::invalid("name", m))?)
            }
            Some(_) => return Err(AppError::invalid("name", "must be a string")),
        };
        let description = match o.get("description") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(d)) => Some(
                textarea_text(d)
                    .map_err(|m| AppError::invalid("description", m))?
                    .unwrap_or_default(),
            ),
            Some(_) => return Err(AppError::invalid("description", "must be a string")),
        };
        let weight = match o.get("weight") {
            None | Some(Value::Null) => None,
            Some(w) => Some(
                w.as_i64()
                    .or_else(|| w.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| AppError::invalid("weight", "must be a whole number"))?,
            ),
        };
        // Mautic's clients send 1/0, true/false, or their form-encoded strings.
        let is_published = match o.get("isPublished") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                flag(v).ok_or_else(|| AppError::invalid("isPublished", "must be true or false"))?,
            ),
        };
        Ok(StageInput {
            name,
            description,
            weight,
            is_published,
        })
    }
}

/// Fails with a 422 when another stage has `name` (case-insensitive, as names are shown).
async fn check_name_free(
    db: &mut impl store::Exec,
    name: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let existing = store::stages::list(db).await?;
    if existing
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(name) && Some(s.id) != except)
    {
        return Err(AppError::invalid("name", "a stage with this name exists"));
    }
    Ok(())
}

/// `POST /api/stages/new`
#[utoipa::path(post, path = "/api/stages/new", tag = "stages", summary = "Create a stage", request_body = Object, responses((status = 201)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let input = StageInput::from_json(&body)?;
    let name = input
        .name
        .ok_or_else(|| AppError::invalid("name", "is required"))?;
    let mut tx = state.store.begin().await?;
    check_name_free(&mut tx, &name, None).await?;
    let stage = StageRow {
        description: input.description.unwrap_or_default(),
        weight: input.weight.unwrap_or(0),
        is_published: input.is_published.unwrap_or(true),
        ..StageRow::named(name, now_ms())
    };
    let id = store::stages::create(&mut tx, &stage)
        .await
        .map_err(|e| AppError::unless_taken(e, "name", "a stage with this name exists"))?;
    tx.commit().await?;
    let stage = StageRow { id, ..stage };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "stage": stage_json(&stage) })),
    )
        .into_response())
}

/// Edits stage `id`; `replace` (PUT) resets what the body leaves out. `None` when the id
/// is unknown.
async fn update(
    state: &SharedState,
    stage_id: i64,
    input: StageInput,
    replace: bool,
) -> AppResult<Option<StageRow>> {
    let mut tx = state.store.begin().await?;
    let Some(mut stage) = store::stages::by_ids(&mut tx, &[stage_id]).await?.pop() else {
        return Ok(None);
    };
    if let Some(name) = input.name {
        check_name_free(&mut tx, &name, Some(stage.id)).await?;
        stage.name = name;
    }
    match input.description {
        Some(d) => stage.description = d,
        None if replace => stage.description = String::new(),
        None => {}
    }
    match input.weight {
        Some(w) => stage.weight = w,
        None if replace => stage.weight = 0,
        None => {}
    }
    match input.is_published {
        Some(p) => stage.is_published = p,
        None if replace => stage.is_published = true,
        None => {}
    }
    store::stages::update(&mut tx, &stage)
        .await
        .map_err(|e| AppError::unless_taken(e, "name", "a stage with this name exists"))?;
    tx.commit().await?;
    Ok(Some(stage))
}

/// `PATCH /api/stages/{id}/edit`
#[utoipa::path(patch, path = "/api/stages/{id}/edit", tag = "stages", summary = "Edit a stage", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<SharedState>,
    Path(stage_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let stage_id = id(&stage_id)?;
    let input = StageInput::from_json(&body)?;
    let stage = update(&state, stage_id, input, false)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "stage": stage_json(&stage) })))
}

/// `PUT /api/stages/{id}/edit`: replaces the stage, or creates it when the id is unknown
/// (201), as Mautic does.
#[utoipa::path(put, path = "/api/stages/{id}/edit", tag = "stages", summary = "Replace a stage, or create it when the id is unknown", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    Path(stage_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let stage_id = id(&stage_id)?;
    let input = StageInput::from_json(&body)?;
    if input.name.is_none() {
        return Err(AppError::invalid("name", "is required"));
    }
    match update(&state, stage_id, input, true).await? {
        Some(stage) => Ok(Json(json!({ "stage": stage_json(&stage) })).into_response()),
        None => create(State(state), ApiBody(body)).await,
    }
}

/// `DELETE /api/stages/{id}/delete`: contacts in the stage are left in none.
#[utoipa::path(delete, path = "/api/stages/{id}/delete", tag = "stages", summary = "Delete a stage (its contacts are left in none)", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(stage_id): Path<String>,
) -> AppResult<Json<Value>> {
    let stage_id = id(&stage_id)?;
    let mut tx = state.store.begin().await?;
    let stage = store::stages::by_ids(&mut tx, &[stage_id])
        .await?
        .pop()
        .ok_or_else(AppError::not_found)?;
    store::stages::delete(&mut tx, stage_id).await?;
    tx.commit().await?;
    let mut j = stage_json(&stage);
    j["id"] = Value::Null;
    Ok(Json(json!({ "stage": j })))
}

/// `POST /api/stages/{id}/contact/{contactId}/add` and `/remove`.
#[utoipa::path(post, path = "/api/stages/{id}/contact/{contact_id}/{action}", tag = "stages", summary = "Put a contact into a stage (add) or take it out (remove)", params(("id" = i64, Path), ("contact_id" = i64, Path), ("action" = String, Path)), responses((status = 200)))]
pub async fn change_contact(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((stage_id, contact_id, action)): Path<(String, String, String)>,
) -> AppResult<Json<Value>> {
    let stage_id = id(&stage_id)?;
    // A merged-away id names the contact it went into, as on `/api/contacts/{id}…`.
    let contact_id = super::contacts::resolve_id(&state, id(&contact_id)?).await?;
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
