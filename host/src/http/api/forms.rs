//! `/api/forms…`: forms (name, fields mapped to contact fields, record UTM).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::error::{AppError, AppResult};
use crate::forms::{self, Form};
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store;

#[utoipa::path(get, path = "/api/forms", tag = "forms", summary = "List forms", responses((status = 200, description = "{total, forms: [Form]}")))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let (rows, total) = store::forms::list(
        &mut db,
        q.int("start", 0)?,
        q.int("limit", 100)?.clamp(1, 1000),
    )
    .await?;
    Ok(Json(
        json!({ "total": total, "forms": rows.into_iter().map(|r| Form::from_row(r).to_json()).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(get, path = "/api/forms/{id}", tag = "forms", summary = "Get a form", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(form_id): Path<String>,
) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let row = store::forms::get(&mut db, id(&form_id)?)
        .await?
        .ok_or_else(AppError::not_found)?;
    let submissions = store::forms::submission_count(&mut db, row.id).await?;
    let mut j = Form::from_row(row).to_json();
    j["submissionCount"] = json!(submissions);
    Ok(Json(json!({ "form": j })))
}

#[utoipa::path(post, path = "/api/forms/new", tag = "forms", summary = "Create a form: name, fields [{alias, label, contactField}], recordUtm", request_body = Object, responses((status = 201), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let form = forms::create(&state, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "form": form.to_json() }))).into_response())
}

#[utoipa::path(patch, path = "/api/forms/{id}/edit", tag = "forms", summary = "Edit a form", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<SharedState>,
    Path(form_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let form = forms::update(&state, id(&form_id)?, &body).await?;
    Ok(Json(json!({ "form": form.to_json() })))
}

#[utoipa::path(delete, path = "/api/forms/{id}/delete", tag = "forms", summary = "Delete a form (submissions go with it; the contacts' timeline keeps them)", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(form_id): Path<String>,
) -> AppResult<Json<Value>> {
    let form_id = id(&form_id)?;
    let mut tx = state.store.begin().await?;
    let form = Form::from_row(
        store::forms::get(&mut tx, form_id)
            .await?
            .ok_or_else(AppError::not_found)?,
    );
    store::forms::delete(&mut tx, form_id).await?;
    tx.commit().await?;
    let mut j = form.to_json();
    j["id"] = Value::Null;
    Ok(Json(json!({ "form": j })))
}
