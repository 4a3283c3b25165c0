//! Mautic's batch endpoints (`batch/new`, `batch/edit`, `batch/delete`) for the simple
//! entities — notes, companies, tags, stages. Each item goes through the entity's own
//! single-item handler, in order, so a batch behaves as its requests one after another;
//! the answer is Mautic's: the entities keyed by their index in the request (a list when
//! none failed), `statusCodes`, and `errors` keyed by index.

use std::future::Future;

use axum::body::to_bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::{companies, notes, stages, tags};
use crate::contacts::search::id_list;
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery};
use crate::state::SharedState;

/// The items of a batch body: a JSON array, or the `{"0": …, "1": …}` a form-encoded list
/// arrives as; at most `[api] batch_limit`.
pub fn items(state: &SharedState, body: &Value, what: &str) -> AppResult<Vec<Value>> {
    let items: Vec<Value> = match body {
        Value::Array(a) => a.clone(),
        Value::Object(o) if !o.is_empty() && o.keys().all(|k| k.parse::<usize>().is_ok()) => {
            o.values().cloned().collect()
        }
        _ => {
            return Err(AppError::bad_request(format!(
                "a batch body must be a JSON array of {what}"
            )));
        }
    };
    let max = state.config.file.api.batch_limit;
    if items.len() > max {
        return Err(AppError::bad_request(format!(
            "A max of {max} entities are supported at a time."
        )));
    }
    if items.is_empty() {
        return Err(AppError::bad_request("the batch is empty"));
    }
    Ok(items)
}

/// The `ids` of `batch/delete` (`?ids=1,2,3` or `ids[]=1&ids[]=2`), at most
/// `[api] batch_limit`.
pub fn ids(state: &SharedState, q: &PhpQuery) -> AppResult<Vec<i64>> {
    let parts: Vec<&Value> = match q.0.get("ids") {
        Some(s @ Value::String(_)) => vec![s],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) => o.values().collect(),
        _ => return Err(AppError::bad_request("ids is required, e.g. ?ids=1,2,3")),
    };
    let ids: Vec<i64> = parts
        .iter()
        .map(|v| id_list(v.as_str().unwrap_or("x")))
        .collect::<Option<Vec<Vec<i64>>>>()
        .ok_or_else(|| AppError::bad_request("ids must be numbers separated by commas"))?
        .concat();
    let max = state.config.file.api.batch_limit;
    if ids.is_empty() || ids.len() > max {
        return Err(AppError::bad_request(format!("give 1 to {max} ids")));
    }
    Ok(ids)
}

/// Runs `one` for each item in order and answers in Mautic's batch shape under `list`,
/// taking each success's entity from its answer's `item` key. `deleted`: the ids of a
/// batch delete, which its answer shows on the entities (a single delete answers none).
async fn run<T, F, Fut>(
    list: &str,
    item: &str,
    status: StatusCode,
    inputs: Vec<T>,
    deleted: Option<&[i64]>,
    mut one: F,
) -> AppResult<Response>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = AppResult<Response>>,
{
    let mut entities: Vec<(usize, Value)> = Vec::new();
    let mut codes = Vec::new();
    let mut errors = Map::new();
    for (i, input) in inputs.into_iter().enumerate() {
        match one(input).await {
            Ok(answer) => {
                codes.push(answer.status().as_u16());
                let body = to_bytes(answer.into_body(), usize::MAX)
                    .await
                    .map_err(|e| AppError::Internal(e.into()))?;
                let mut body: Value =
                    serde_json::from_slice(&body).map_err(|e| AppError::Internal(e.into()))?;
                let mut entity = body[item].take();
                if let (Some(ids), Some(o)) = (deleted, entity.as_object_mut()) {
                    o.insert("id".into(), json!(ids[i]));
                }
                entities.push((i, entity));
            }
            Err(e) => {
                codes.push(e.status().as_u16());
                errors.insert(i.to_string(), e.to_json());
            }
        }
    }
    let in_order = entities.iter().enumerate().all(|(at, (i, _))| at == *i);
    let entities = match in_order {
        true => Value::Array(entities.into_iter().map(|(_, e)| e).collect()),
        false => Value::Object(
            entities
                .into_iter()
                .map(|(i, e)| (i.to_string(), e))
                .collect(),
        ),
    };
    let mut answer = json!({ list: entities, "statusCodes": codes });
    if !errors.is_empty() {
        answer["errors"] = Value::Object(errors);
    }
    Ok((status, Json(answer)).into_response())
}

/// An edit item's `id` and the rest of its body.
fn split_id(mut item: Value) -> AppResult<(String, Value)> {
    let id = item
        .as_object_mut()
        .and_then(|o| o.remove("id"))
        .ok_or_else(|| AppError::invalid("id", "each item of a batch edit needs its id"))?;
    let id = match id {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        _ => return Err(AppError::invalid("id", "must be a number")),
    };
    Ok((id, item))
}

/// The three batch handlers of one entity, from its single-item handlers: `new` and
/// `put` are closures (they differ in what they take), PATCH edits and deletes are the
/// entity module's `edit` and `delete`.
macro_rules! entity_batch {
    (
        $module:ident, list = $list:literal, item = $item:literal,
        paths = ($new_path:literal, $edit_path:literal, $delete_path:literal),
        fns = ($new:ident, $edit:ident, $delete:ident),
        new = $create:expr, put = $put:expr $(,)?
    ) => {
        #[utoipa::path(post, path = $new_path, tag = $list, summary = "Create several (at most api.batch_limit), each as its own new", request_body(content = Vec<Object>), responses((status = 201, description = "{list, statusCodes, errors}"), (status = 400)))]
        pub async fn $new(
            State(state): State<SharedState>,
            me: Extension<CurrentUser>,
            ApiBody(body): ApiBody,
        ) -> AppResult<Response> {
            let inputs = items(&state, &body, $list)?;
            let create = $create;
            run($list, $item, StatusCode::CREATED, inputs, None, |item| {
                create(state.clone(), me.clone(), item)
            })
            .await
        }

        #[utoipa::path(patch, path = $edit_path, tag = $list, summary = "Edit several, each with its id (PUT: replace, and create unknown ids)", request_body(content = Vec<Object>), responses((status = 200, description = "{list, statusCodes, errors}"), (status = 400)))]
        pub async fn $edit(
            State(state): State<SharedState>,
            me: Extension<CurrentUser>,
            method: Method,
            ApiBody(body): ApiBody,
        ) -> AppResult<Response> {
            let inputs = items(&state, &body, $list)?;
            let put = $put;
            run($list, $item, StatusCode::OK, inputs, None, |item| {
                let (state, me) = (state.clone(), me.clone());
                let method = method.clone();
                async move {
                    let (id, body) = split_id(item)?;
                    match method == Method::PUT {
                        true => put(state, me, id, body).await,
                        false => $module::edit(State(state), Path(id), ApiBody(body))
                            .await
                            .map(IntoResponse::into_response),
                    }
                }
            })
            .await
        }

        #[utoipa::path(delete, path = $delete_path, tag = $list, summary = "Delete several by id (?ids=1,2,3)", params(("ids" = String, Query)), responses((status = 200, description = "{list, statusCodes, errors}"), (status = 400)))]
        pub async fn $delete(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Response> {
            let ids = ids(&state, &q)?;
            run($list, $item, StatusCode::OK, ids.clone(), Some(&ids), |id| {
                let state = state.clone();
                async move {
                    $module::delete(State(state), Path(id.to_string()))
                        .await
                        .map(IntoResponse::into_response)
                }
            })
            .await
        }
    };
}

entity_batch!(
    tags,
    list = "tags",
    item = "tag",
    paths = (
        "/api/tags/batch/new",
        "/api/tags/batch/edit",
        "/api/tags/batch/delete"
    ),
    fns = (tags_new, tags_edit, tags_delete),
    new = |state, _me, item| async move { tags::create(State(state), ApiBody(item)).await },
    put = |state, _me, id, body| async move { tags::put(State(state), Path(id), ApiBody(body)).await },
);
entity_batch!(
    stages,
    list = "stages",
    item = "stage",
    paths = (
        "/api/stages/batch/new",
        "/api/stages/batch/edit",
        "/api/stages/batch/delete"
    ),
    fns = (stages_new, stages_edit, stages_delete),
    new = |state, _me, item| async move { stages::create(State(state), ApiBody(item)).await },
    put = |state, _me, id, body| async move { stages::put(State(state), Path(id), ApiBody(body)).await },
);
entity_batch!(
    companies,
    list = "companies",
    item = "company",
    paths = (
        "/api/companies/batch/new",
        "/api/companies/batch/edit",
        "/api/companies/batch/delete"
    ),
    fns = (companies_new, companies_edit, companies_delete),
    new = |state, _me, item| async move { companies::create(State(state), ApiBody(item)).await },
    put = |state, _me, id, body| async move {
        companies::put(State(state), Path(id), ApiBody(body)).await
    },
);
entity_batch!(
    notes,
    list = "notes",
    item = "note",
    paths = (
        "/api/notes/batch/new",
        "/api/notes/batch/edit",
        "/api/notes/batch/delete"
    ),
    fns = (notes_new, notes_edit, notes_delete),
    new = |state, me, item| async move { notes::create(State(state), me, ApiBody(item)).await },
    put = |state, me, id, body| async move {
        notes::put(State(state), me, Path(id), ApiBody(body)).await
    },
);
