//! `/api/fields/contact…`: field definitions. Changing them is for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::contacts::field_service::{self, Edit};
use crate::contacts::fields::FieldDef;
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

/// A fields list's `search`: free text in the alias or label, and Mautic's commands
/// `ids:1,2`, `type:email` and `group:core`; every part must match.
#[derive(Default)]
struct FieldSearch {
    ids: Option<Vec<i64>>,
    field_type: Option<String>,
    group: Option<String>,
    text: Vec<String>,
}

impl FieldSearch {
    fn parse(search: &str) -> AppResult<FieldSearch> {
        let mut s = FieldSearch::default();
        for token in search.split_whitespace() {
            let lower = token.to_lowercase();
            if let Some(list) = lower.strip_prefix("ids:") {
                s.ids = Some(crate::contacts::search::id_list(list).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "search: '{token}' must list ids, like ids:1,2,3"
                    ))
                })?);
            } else if let Some(t) = lower.strip_prefix("type:") {
                s.field_type = Some(t.to_owned());
            } else if let Some(g) = lower.strip_prefix("group:") {
                s.group = Some(g.to_owned());
            } else {
                s.text.push(lower);
            }
        }
        Ok(s)
    }

    fn matches(&self, f: &FieldDef) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.contains(&f.id))
            && self
                .field_type
                .as_ref()
                .is_none_or(|t| f.field_type.as_str() == t)
            && self
                .group
                .as_ref()
                .is_none_or(|g| f.group.to_lowercase() == *g)
            && self.text.iter().all(|t| {
                f.alias.contains(t.as_str()) || f.label.to_lowercase().contains(t.as_str())
            })
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
    // Mautic's `where` on the fields' properties (its PHP client sends `label isNotEmpty`).
    let wheres = crate::contacts::search::where_filters(q.0.get("where").unwrap_or(&Value::Null))?;
    store::entity_list::where_conditions(
        store::Backend::Sqlite,
        &mut store::Params::default(),
        store::fields::FIELD_COLUMNS,
        &wheres,
    )
    .map_err(AppError::bad_request)?;
    let kept: Option<std::collections::HashSet<i64>> = match wheres.is_empty() {
        true => None,
        false => Some(
            store::fields::matching_ids(&mut db, &wheres)
                .await?
                .into_iter()
                .collect(),
        ),
    };
    let search = FieldSearch::parse(q.str("search").unwrap_or(""))?;
    let published_only = q.flag("published");
    let start = q.int("start", 0)? as usize;
    let limit = q.int("limit", 0)? as usize;
    let mut matching: Vec<_> = fields
        .iter()
        .filter(|f| search.matches(f) && (f.is_published || !published_only))
        .filter(|f| kept.as_ref().is_none_or(|k| k.contains(&f.id)))
        .collect();
    let (by, descending) = q.order()?;
    let key = |f: &FieldDef| -> (String, i64) {
        match by.map(str::to_ascii_lowercase).as_deref() {
            None | Some("order") => (String::new(), f.order),
            Some("id") => (String::new(), f.id),
            Some("dateadded" | "date_added") => (String::new(), f.date_added),
            Some("alias") => (f.alias.clone(), 0),
            Some("label") => (f.label.to_lowercase(), 0),
            Some("type") => (f.field_type.as_str().to_owned(), 0),
            Some("group") => (f.group.clone(), 0),
            Some(_) => unreachable!("checked below"),
        }
    };
    if let Some(name) = by.filter(|b| {
        !matches!(
            b.to_ascii_lowercase().as_str(),
            "order" | "id" | "dateadded" | "date_added" | "alias" | "label" | "type" | "group"
        )
    }) {
        return Err(AppError::bad_request(format!(
            "orderBy must be one of id, alias, label, type, group, order, dateAdded, not '{name}'"
        )));
    }
    // Ties keep the fields' own order (`FieldSet` holds them by `order`, then id), in
    // either direction: the sort is stable.
    match descending == Some(true) {
        true => matching.sort_by_cached_key(|f| std::cmp::Reverse(key(f))),
        false => matching.sort_by_cached_key(|f| key(f)),
    }
    // A list, as Mautic answers here (its contacts list is keyed by id; this one is not).
    let out: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|f| f.to_json())
        .collect();
    Ok(Json(json!({ "total": matching.len(), "fields": out })))
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
