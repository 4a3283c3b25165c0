//! `/api/companies…`: Mautic's companies API.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::openapi::ErrorBody;
use crate::companies;
use crate::error::{AppError, AppResult};
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store;
use crate::store::entity_list::ListColumn;
use crate::time::now_ms;

/// What `orderBy` and `where` may name: the company's fields by their aliases (Mautic's,
/// with the `company` prefix; the name and email also without it) and its dates.
const COMPANY_COLUMNS: &[ListColumn] = &[
    ListColumn::int("id", "id"),
    ListColumn::text("name", "name"),
    ListColumn::text("companyname", "name"),
    ListColumn::text("email", "email"),
    ListColumn::text("companyemail", "email"),
    ListColumn::text("companywebsite", "website"),
    ListColumn::text("companyaddress1", "address1"),
    ListColumn::text("companyaddress2", "address2"),
    ListColumn::text("companycity", "city"),
    ListColumn::text("companystate", "state"),
    ListColumn::text("companyzipcode", "zipcode"),
    ListColumn::text("companycountry", "country"),
    ListColumn::text("companyphone", "phone"),
    ListColumn::int("companynumber_of_employees", "employees"),
    ListColumn {
        name: "companyannual_revenue",
        sql: "revenue",
        kind: store::Kind::Float,
        timestamp: false,
    },
    ListColumn::text("companyindustry", "industry"),
    ListColumn::text("companydescription", "description"),
    ListColumn::time("dateAdded", "date_added"),
    ListColumn::time("dateModified", "date_modified"),
];

#[utoipa::path(get, path = "/api/companies", tag = "companies", summary = "List companies", params(("search" = Option<String>, Query, description = "Text in the name or email, and/or ids:1,2,3"), ("start" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("where" = Option<String>, Query, description = "Mautic's where[n][col|expr|val] on the columns orderBy names"), ("orderBy" = Option<String>, Query, description = "id, companyname (or name), companyemail (or email), any company field alias, dateAdded, dateModified"), ("orderByDir" = Option<String>, Query)), responses((status = 200, description = "{total, companies: {id: Company}}")))]
pub async fn list(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let query = q.entity_query(COMPANY_COLUMNS, ("name", false), 30)?;
    let mut db = state.store.read().await?;
    let (rows, total) = store::companies::list(&mut db, &query).await?;
    let mut out = Map::new();
    for c in &rows {
        out.insert(c.id.to_string(), companies::to_json(c));
    }
    Ok(Json(
        json!({ "total": total.to_string(), "companies": out }),
    ))
}

#[utoipa::path(get, path = "/api/companies/{id}", tag = "companies", summary = "Get a company", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(company_id): Path<String>,
) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let c = store::companies::get(&mut db, id(&company_id)?)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(json!({ "company": companies::to_json(&c) })))
}

#[utoipa::path(post, path = "/api/companies/new", tag = "companies", summary = "Create a company (updates the one with the same name unless force)", request_body = Object, responses((status = 201), (status = 200), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let (c, created) = companies::create(&state.store, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "company": companies::to_json(&c) }))).into_response())
}

/// `PUT /api/companies/{id}/edit`: replaces the company (a field the body leaves out is
/// cleared), or creates it when the id is unknown, as Mautic does.
#[utoipa::path(put, path = "/api/companies/{id}/edit", tag = "companies", summary = "Replace a company (fields left out are cleared), or create it when the id is unknown", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    Path(company_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    match companies::update(&state.store, id(&company_id)?, &body, true).await {
        Err(AppError::NotFound(_)) => create(State(state), ApiBody(body)).await,
        updated => Ok(Json(json!({ "company": companies::to_json(&updated?) })).into_response()),
    }
}

#[utoipa::path(patch, path = "/api/companies/{id}/edit", tag = "companies", summary = "Edit a company", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<SharedState>,
    Path(company_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let c = companies::update(&state.store, id(&company_id)?, &body, false).await?;
    Ok(Json(json!({ "company": companies::to_json(&c) })))
}

#[utoipa::path(delete, path = "/api/companies/{id}/delete", tag = "companies", summary = "Delete a company", params(("id" = i64, Path)), responses((status = 200), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(company_id): Path<String>,
) -> AppResult<Json<Value>> {
    let company_id = id(&company_id)?;
    let mut tx = state.store.begin().await?;
    let c = store::companies::get(&mut tx, company_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    store::companies::delete(&mut tx, company_id).await?;
    tx.commit().await?;
    let mut j = companies::to_json(&c);
    j["id"] = Value::Null;
    Ok(Json(json!({ "company": j })))
}

#[utoipa::path(post, path = "/api/companies/{id}/contact/{contact_id}/{action}", tag = "companies", summary = "Add a contact to a company (add) or take it out (remove)", params(("id" = i64, Path), ("contact_id" = i64, Path), ("action" = String, Path)), responses((status = 200, description = "{\"success\": 1}"), (status = 404, body = ErrorBody)))]
pub async fn contact(
    State(state): State<SharedState>,
    Path((company_id, contact_id, action)): Path<(String, String, String)>,
) -> AppResult<Json<Value>> {
    let (company_id, contact_id) = (id(&company_id)?, id(&contact_id)?);
    let mut tx = state.store.begin().await?;
    if store::companies::get(&mut tx, company_id).await?.is_none() {
        return Err(AppError::not_found());
    }
    // A merged-away id names the contact it went into, as on `/api/contacts/{id}…`.
    let Some(contact_id) = store::merge::current_id(&mut tx, contact_id).await? else {
        return Err(AppError::NotFound("Contact not found.".into()));
    };
    match action.as_str() {
        "add" => {
            store::companies::link(&mut tx, contact_id, company_id, now_ms()).await?;
        }
        "remove" => {
            store::companies::unlink(&mut tx, contact_id, company_id).await?;
        }
        _ => return Err(AppError::not_found()),
    }
    tx.commit().await?;
    Ok(Json(json!({ "success": 1 })))
}
