//! `/api/fields/contact…`: field definitions. Changing them is for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::contacts::field_service::{self, Edit};
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store;

fn check_object(object: &str) -> AppResult<()> {
    match object {
        "contact" | "lead" => Ok(()),
        "company" => Err(AppError::NotFound(
            "company fields are not available yet".into(),
        )),
        _ => Err(AppError::not_found()),
    }
}

fn require_admin(user: &crate::users::User) -> AppResult<()> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "You do not have access to the requested area/action.".into(),
        ))
    }
}

/// `GET /api/fields/contact`
#[utoipa::path(get, path = "/api/fields/{object}", tag = "fields", summary = "List contact fields", params(("object" = String, Path, description = "contact"), ("search" = Option<String>, Query, description = "Text in the alias or label, and/or ids:1,2,3, type:…, group:…"), ("published" = Option<bool>, Query), ("where" = Option<String>, Query, description = "Mautic's where[n][col|expr|val] on alias, label, type, group, order, isPublished, isRequired, isUniqueIdentifier …"), ("start" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("orderBy" = Option<String>, Query, description = "id, alias, label, type, group, order (the default), dateAdded"), ("orderByDir" = Option<String>, Query)), responses((status = 200)))]
pub async fn list(
    State(state): State<SharedState>,
    Path(object): Path<String>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    check_object(&object)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let mut query = q.entity_query(store::fields::FIELD_COLUMNS, ("field_order", false), 0)?;
    // Mautic's search commands of its own for fields: type:email, group:social.
    query.take_commands(&["type", "group"]);
    let (ids, total) = store::fields::page(&mut db, &query).await?;
    // A list, as Mautic answers here (its contacts list is keyed by id; this one is not).
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| fields.by_id(*id))
        .map(|f| f.to_json())
        .collect();
    Ok(Json(json!({ "total": total, "fields": out })))
}

/// `GET /api/fields/contact/{id}`
#[utoipa::path(get, path = "/api/fields/{object}/{id}", tag = "fields", summary = "Get a field", params(("object" = String, Path), ("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path((object, field_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    check_object(&object)?;
    let field_id = id(&field_id)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let f = fields.by_id(field_id).ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "field": f.to_json() })))
}

/// `POST /api/fields/contact/new`
#[utoipa::path(post, path = "/api/fields/{object}/new", tag = "fields", summary = "Create a field (a new column); admins only", params(("object" = String, Path)), request_body = Object, responses((status = 201), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(object): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    check_object(&object)?;
    require_admin(&me)?;
    let def = field_service::create(&state.store, &state.fields, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "field": def.to_json() }))).into_response())
}

/// `PATCH /api/fields/contact/{id}/edit`
#[utoipa::path(patch, path = "/api/fields/{object}/{id}/edit", tag = "fields", summary = "Edit a field; alias and storage type are fixed", params(("object" = String, Path), ("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((object, field_id)): Path<(String, String)>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    check_object(&object)?;
    require_admin(&me)?;
    let def = field_service::update(
        &state.store,
        &state.fields,
        id(&field_id)?,
        &body,
        Edit::Patch,
    )
    .await?;
    Ok(Json(json!({ "field": def.to_json() })))
}

/// `PUT /api/fields/contact/{id}/edit`: replaces the field (`field_service::Edit::Replace`),
/// or creates it when the id is unknown (201), as Mautic does.
#[utoipa::path(put, path = "/api/fields/{object}/{id}/edit", tag = "fields", summary = "Replace a field (what the body leaves out returns to a new field's value; alias, type, group and order stay), or create it when the id is unknown", params(("object" = String, Path), ("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((object, field_id)): Path<(String, String)>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    check_object(&object)?;
    require_admin(&me)?;
    match field_service::update(
        &state.store,
        &state.fields,
        id(&field_id)?,
        &body,
        Edit::Replace,
    )
    .await
    {
        Err(AppError::NotFound(_)) => {
            create(
                State(state),
                Extension(CurrentUser(me)),
                Path(object),
                ApiBody(body),
            )
            .await
        }
        updated => Ok(Json(json!({ "field": updated?.to_json() })).into_response()),
    }
}

/// `DELETE /api/fields/contact/{id}/delete`: answers with the field as it was, id null.
#[utoipa::path(delete, path = "/api/fields/{object}/{id}/delete", tag = "fields", summary = "Delete a field and its column", params(("object" = String, Path), ("id" = i64, Path)), responses((status = 200), (status = 403, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((object, field_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    check_object(&object)?;
    require_admin(&me)?;
    let def = field_service::delete(&state.store, &state.fields, id(&field_id)?).await?;
    let mut j = def.to_json();
    j["id"] = Value::Null;
    Ok(Json(json!({ "field": j })))
}
