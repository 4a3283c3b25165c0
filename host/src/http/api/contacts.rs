//! `/api/contacts…`: Mautic's contacts API.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::contact_json::{
    CONTACT_BYTES, ContactView, Extras, Layout, contact_json, write_array, write_json, write_keyed,
};
use super::openapi::ErrorBody;
use crate::contacts::Contact;
use crate::contacts::fields::FieldSet;
use crate::contacts::input::{
    ContactInput, DNC_CONTACTABLE, DNC_MANUAL, DncInput, parse_dnc, parse_utm,
};
use crate::contacts::search;
use crate::contacts::service::{self, SaveContext, Saved, Source, Target};
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, PhpQuery, id};
use crate::state::SharedState;
use crate::store::contact_search::{Dir, ListError, ListQuery};
use crate::store::{self, Conn};
use crate::time::now_ms;
use crate::timeline::{self, types};

/// Default and largest page size of the list.
const DEFAULT_LIMIT: i64 = 30;
pub const MAX_LIMIT: i64 = 1000;

/// An id as the API sees it: a merged-away contact's id names the contact it went into.
pub(super) async fn resolve_id(state: &SharedState, contact_id: i64) -> AppResult<i64> {
    let mut db = state.store.read().await?;
    Ok(store::merge::current_id(&mut db, contact_id)
        .await?
        .unwrap_or(contact_id))
}

async fn load_one(
    state: &SharedState,
    contact_id: i64,
) -> AppResult<(Conn, std::sync::Arc<FieldSet>, Contact)> {
    let contact_id = resolve_id(state, contact_id).await?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let contact = store::contacts::load(&mut db, &fields, &[contact_id])
        .await?
        .pop()
        .ok_or_else(AppError::not_found)?;
    Ok((db, fields, contact))
}

/// One contact as a JSON value, for answers that wrap or change it.
async fn one_json(state: &SharedState, contact_id: i64) -> AppResult<Value> {
    let (mut db, fields, contact) = load_one(state, contact_id).await?;
    let extras = Extras::load(&mut db, std::slice::from_ref(&contact), false).await?;
    Ok(contact_json(
        &Layout::new(&fields),
        &extras,
        &contact,
        false,
    ))
}

/// `GET /api/contacts`
#[utoipa::path(get, path = "/api/contacts", tag = "contacts", summary = "List and search contacts", params(("search" = Option<String>, Query, description = "Search grammar: free text, email:, name:, company:, owner:, tag:, stage:, ip:, ids:, is:anonymous|unowned|mine, segment:, common:, <alias>:; % wildcard, + exact, ! not, quotes, OR/AND, parentheses"), ("start" = Option<i64>, Query, description = "Offset"), ("limit" = Option<i64>, Query, description = "Page size, default 30, at most 1000"), ("orderBy" = Option<String>, Query, description = "Field alias or id, dateAdded, dateModified, lastActive, points"), ("orderByDir" = Option<String>, Query, description = "asc or desc"), ("minimal" = Option<bool>, Query, description = "Only id, points and fields"), ("where[0][col]" = Option<String>, Query, description = "Mautic where filters: col, expr (eq, neq, lt, lte, gt, gte, like, notLike, isNull, isNotNull, isEmpty, isNotEmpty, in, notIn, between, notBetween), val")), responses((status = 200, description = "{\"total\": \"N\", \"contacts\": {id: Contact}}"), (status = 400, description = "Malformed search", body = ErrorBody)))]
pub async fn list(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    q: PhpQuery,
) -> AppResult<Response> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let search_text = q.str("search").unwrap_or("");
    let expr = search::parse(search_text, &fields)
        .map_err(|m| AppError::bad_request(format!("invalid search: {m}")))?;
    let start = q.int("start", 0)?;
    let limit = match q.int("limit", DEFAULT_LIMIT)? {
        // Mautic reads 0 as "no limit"; at millions of contacts that must still be bounded.
        0 => Some(MAX_LIMIT),
        n if n > MAX_LIMIT => {
            return Err(AppError::bad_request(format!(
                "limit must be at most {MAX_LIMIT}"
            )));
        }
        n => Some(n),
    };
    let (order_by, descending) = q.order()?;
    // Without a direction: an asked column ascending, the default order newest first.
    let dir = match descending.unwrap_or(order_by.is_none()) {
        true => Dir::Desc,
        false => Dir::Asc,
    };
    let wheres = search::where_filters(q.0.get("where").unwrap_or(&Value::Null))?;
    let minimal = q.flag("minimal");
    let query = ListQuery {
        search: expr.as_ref(),
        wheres: &wheres,
        order_by,
        dir,
        offset: start,
        limit,
        me: Some(me.id),
    };
    let (contacts, total) = match store::contact_search::list(&mut db, &fields, &query).await {
        Ok(r) => r,
        Err(ListError::BadQuery(m)) => return Err(AppError::bad_request(m)),
        Err(ListError::Db(e)) => return Err(e.into()),
    };
    let extras = Extras::load(&mut db, &contacts, minimal).await?;
    let layout = Layout::new(&fields);
    // Mautic sends the total as a string, and the contacts as an object keyed by id.
    let mut body = Vec::with_capacity(256 + contacts.len() * CONTACT_BYTES);
    body.extend_from_slice(b"{\"total\":\"");
    body.extend_from_slice(total.to_string().as_bytes());
    body.extend_from_slice(b"\",\"contacts\":");
    write_keyed(
        &mut body,
        contacts.iter().map(|c| {
            (
                c.id,
                ContactView {
                    layout: &layout,
                    extras: &extras,
                    contact: c,
                    minimal,
                },
            )
        }),
    );
    body.push(b'}');
    Ok(json_bytes(StatusCode::OK, body))
}

/// A JSON answer already written.
fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `GET /api/contacts/{id}`
#[utoipa::path(get, path = "/api/contacts/{id}", tag = "contacts", summary = "Get a contact", params(("id" = i64, Path)), responses((status = 200, description = "{\"contact\": Contact}"), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    Ok(Json(
        json!({ "contact": one_json(&state, id(&contact_id)?).await? }),
    ))
}

/// The context of a save made through the API by `me`, now.
pub(super) async fn api_context(
    state: &SharedState,
    me: &crate::users::User,
) -> AppResult<SaveContext> {
    let mut db = state.store.read().await?;
    Ok(SaveContext {
        fields: state.fields(&mut db).await?,
        operator: state.operator(&mut db).await?,
        actor: Some(me.id),
        source: Source::Api,
        now: now_ms(),
    })
}

async fn save(
    state: &SharedState,
    me: &crate::users::User,
    items: Vec<(Target, ContactInput)>,
) -> AppResult<Vec<AppResult<Saved>>> {
    let ctx = api_context(state, me).await?;
    service::save(state, &ctx, items).await
}

async fn parse_input(state: &SharedState, body: &Value) -> AppResult<ContactInput> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    ContactInput::from_json(body, &fields)
}

/// The unique-identifier values an edit sends (what Mautic matches other contacts by).
fn sent_identifiers(fields: &FieldSet, input: &ContactInput) -> Vec<(String, Value)> {
    input
        .values
        .iter()
        .filter(|(alias, v)| {
            fields.get(alias).is_some_and(|f| f.is_unique_identifier)
                && !v.is_null()
                && v.as_str() != Some("")
        })
        .cloned()
        .collect()
}

/// After edits that sent unique-identifier values, merges into each edited contact any
/// other contact those values now match (with the configured operator), as Mautic's API
/// does: the edited contact survives and its values win. The contacts are looked up for
/// every edit at once. Runs after the edits committed, so a merge that fails (a contact
/// deleted or changed meanwhile) leaves the edit and both contacts as they were; it is
/// logged, as is a failed search. Returns each contact merged away and the one it went
/// into; an edit whose contact went into an earlier edit's merges nothing itself.
async fn merge_matching(
    state: &SharedState,
    ctx: &SaveContext,
    edits: &[(i64, Vec<(String, Value)>)],
) -> AppResult<HashMap<i64, i64>> {
    let mut went_into: HashMap<i64, i64> = HashMap::new();
    let edits: Vec<&(i64, Vec<(String, Value)>)> =
        edits.iter().filter(|(_, sent)| !sent.is_empty()).collect();
    if edits.is_empty() {
        return Ok(went_into);
    }
    let wanted: Vec<service::Lookup> = edits
        .iter()
        .map(|(id, sent)| (sent.as_slice(), Some(*id)))
        .collect();
    let mut db = state.store.read().await?;
    let found = service::find_duplicates_each(&mut db, &ctx.fields, ctx.operator, &wanted).await;
    drop(db);
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for the contacts edits' identifiers match");
            return Ok(went_into);
        }
    };
    for ((contact_id, sent), others) in edits.into_iter().zip(found) {
        let contact_id = *contact_id;
        if went_into.contains_key(&contact_id) {
            continue;
        }
        // Under the merge's locks the other must still match what was sent (it may have
        // changed since it was found), and the edit's values win over the other's.
        let still_matches =
            |c: &Contact| service::matches_values(&ctx.fields, ctx.operator, sent, c);
        let terms = crate::contacts::merge::Terms {
            winner_wins: true,
            loser_must: Some(&still_matches),
        };
        for other in others {
            // One found by an earlier edit's merge is now the contact it went into.
            let mut other_id = other.id;
            while let Some(survivor) = went_into.get(&other_id) {
                other_id = *survivor;
            }
            if other_id == contact_id {
                continue;
            }
            let merged = crate::contacts::merge::merge(
                &state.store,
                &ctx.fields,
                (contact_id, other_id),
                Source::Api,
                ctx.actor,
                now_ms(),
                terms,
            )
            .await;
            match merged {
                Ok(_) => {
                    went_into.insert(other_id, contact_id);
                }
                Err(e) => {
                    tracing::warn!(contact = contact_id, other = other_id, error = %e, "an edit's merge with the contact matching its identifiers failed");
                }
            }
        }
    }
    Ok(went_into)
}

fn saved_response(saved: Saved, contact: Value) -> Response {
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut r = (status, Json(json!({ "contact": contact }))).into_response();
    if saved.created
        && let Ok(v) = HeaderValue::from_str(&format!("/api/contacts/{}", saved.id))
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /api/contacts/new`: creates, or updates the contact matching the unique identifiers.
#[utoipa::path(post, path = "/api/contacts/new", tag = "contacts", summary = "Create a contact, or update the one matching the unique identifiers", request_body(content = Object, description = "Field aliases plus ipAddress, lastActive, owner, points, stage, tags, doNotContact, utmtags, overwriteWithBlank"), responses((status = 201, description = "Created; Location header"), (status = 200, description = "Matched an existing contact and updated it"), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let input = parse_input(&state, &body).await?;
    let saved = save(&state, &me, vec![(Target::Upsert, input)])
        .await?
        .remove(0)?;
    Ok(saved_response(saved, one_json(&state, saved.id).await?))
}

/// `PATCH /api/contacts/{id}/edit`
#[utoipa::path(patch, path = "/api/contacts/{id}/edit", tag = "contacts", summary = "Change some fields of a contact", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(contact_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let contact_id = resolve_id(&state, id(&contact_id)?).await?;
    edit_one(&state, &me, Target::Patch(contact_id), &body).await
}

/// `PUT /api/contacts/{id}/edit`: replaces; creates when the id is unknown.
#[utoipa::path(put, path = "/api/contacts/{id}/edit", tag = "contacts", summary = "Replace a contact (fields not sent are cleared); creates when the id is unknown", params(("id" = i64, Path)), request_body = Object, responses((status = 200), (status = 201), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(contact_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let contact_id = contact_id
        .parse::<i64>()
        .map_err(|_| AppError::not_found())?;
    let contact_id = resolve_id(&state, contact_id).await?;
    edit_one(&state, &me, Target::Put(contact_id), &body).await
}

/// PATCH or PUT of one contact, then the merge of what its identifiers now match.
async fn edit_one(
    state: &SharedState,
    me: &crate::users::User,
    target: Target,
    body: &Value,
) -> AppResult<Response> {
    let ctx = api_context(state, me).await?;
    let input = ContactInput::from_json(body, &ctx.fields)?;
    let sent = sent_identifiers(&ctx.fields, &input);
    let saved = service::save(state, &ctx, vec![(target, input)])
        .await?
        .remove(0)?;
    merge_matching(state, &ctx, &[(saved.id, sent)]).await?;
    Ok(saved_response(saved, one_json(state, saved.id).await?))
}

/// `DELETE /api/contacts/{id}/delete`: answers with the contact as it was, id null.
#[utoipa::path(delete, path = "/api/contacts/{id}/delete", tag = "contacts", summary = "Delete a contact", params(("id" = i64, Path)), responses((status = 200, description = "The deleted contact, id null"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    // Unlike reads and edits, a delete does not follow a merged-away id: the contact it
    // went into holds the other's history too.
    let contact_id = id(&contact_id)?;
    if !store::contacts::exists(&mut state.store.read().await?, contact_id).await? {
        return Err(AppError::not_found());
    }
    let mut contact = one_json(&state, contact_id).await?;
    if service::delete(&state.store, &[contact_id]).await? == 0 {
        return Err(AppError::not_found());
    }
    contact["id"] = Value::Null;
    Ok(Json(json!({ "contact": contact })))
}

/// Runs a batch and answers `{"contacts": […], "statusCodes": […], "errors": {index: …}}`.
async fn run_batch(
    state: &SharedState,
    me: &crate::users::User,
    items: Vec<Result<(Target, ContactInput), AppError>>,
    status: StatusCode,
) -> AppResult<Response> {
    let ctx = api_context(state, me).await?;
    let mut slots: Vec<Option<AppResult<Saved>>> = Vec::with_capacity(items.len());
    let mut to_save = Vec::new();
    let mut positions = Vec::new();
    let mut edits = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(t) => {
                positions.push(i);
                edits.push(match t.0 {
                    Target::Patch(_) | Target::Put(_) => sent_identifiers(&ctx.fields, &t.1),
                    _ => Vec::new(),
                });
                to_save.push(t);
                slots.push(None);
            }
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let results = service::save(state, &ctx, to_save).await?;
    let mut merges = Vec::new();
    for ((pos, r), sent) in positions.into_iter().zip(results).zip(edits) {
        if let Ok(saved) = &r {
            merges.push((saved.id, sent));
        }
        slots[pos] = Some(r);
    }
    // An item's contact merged into another item's (both given one email) is answered
    // as the contact it went into.
    let went_into = merge_matching(state, &ctx, &merges).await?;
    for saved in slots.iter_mut().flatten().flatten() {
        while let Some(survivor) = went_into.get(&saved.id) {
            saved.id = *survivor;
        }
    }
    let ids: Vec<i64> = slots
        .iter()
        .filter_map(|s| s.as_ref().and_then(|r| r.as_ref().ok()).map(|s| s.id))
        .collect();
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let contacts = store::contacts::load(&mut db, &fields, &ids).await?;
    let extras = Extras::load(&mut db, &contacts, false).await?;
    let layout = Layout::new(&fields);
    let by_id: HashMap<i64, &Contact> = contacts.iter().map(|c| (c.id, c)).collect();
    let mut views: Vec<(usize, ContactView)> = Vec::new();
    let mut codes = Vec::new();
    let mut errors = Map::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match slot.expect("every slot filled") {
            Ok(saved) => {
                if let Some(c) = by_id.get(&saved.id) {
                    views.push((
                        i,
                        ContactView {
                            layout: &layout,
                            extras: &extras,
                            contact: c,
                            minimal: false,
                        },
                    ));
                }
                codes.push(if saved.created { 201 } else { 200 });
            }
            Err(e) => {
                codes.push(e.status().as_u16());
                errors.insert(i.to_string(), e.to_json());
            }
        }
    }
    Ok(json_bytes(
        status,
        batch_answer(views, Some(&codes), &errors),
    ))
}

/// A batch's answer, `{"contacts": …, "statusCodes": […], "errors": {index: …}}`: the
/// contacts are keyed by their index in the request, which PHP's JSON (so Mautic's
/// answer) writes as a list when the indexes are 0, 1, 2 … with no gap, else as an
/// object; `errors` only when there are some.
fn batch_answer(
    views: Vec<(usize, ContactView)>,
    codes: Option<&[u16]>,
    errors: &Map<String, Value>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(256 + views.len() * CONTACT_BYTES);
    body.extend_from_slice(b"{\"contacts\":");
    if views
        .iter()
        .enumerate()
        .all(|(at, (index, _))| at == *index)
    {
        write_array(&mut body, views.into_iter().map(|(_, view)| view));
    } else {
        write_keyed(&mut body, views);
    }
    if let Some(codes) = codes {
        body.extend_from_slice(b",\"statusCodes\":");
        write_json(&mut body, &codes);
    }
    if !errors.is_empty() {
        body.extend_from_slice(b",\"errors\":");
        write_json(&mut body, errors);
    }
    body.push(b'}');
    body
}

/// `POST /api/contacts/batch/new`
#[utoipa::path(post, path = "/api/contacts/batch/new", tag = "contacts", summary = "Create or update many contacts (at most api.batch_limit)", request_body(content = Vec<Object>), responses((status = 201, description = "{contacts, statusCodes, errors}"), (status = 400, body = ErrorBody)))]
pub async fn batch_new(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let raw = super::batch::items(&state, &body, "contacts")?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    drop(db);
    let items = raw
        .iter()
        .map(|b| ContactInput::from_json(b, &fields).map(|i| (Target::Upsert, i)))
        .collect();
    run_batch(&state, &me, items, StatusCode::CREATED).await
}

/// `PATCH|PUT /api/contacts/batch/edit`: every item carries its `id`.
#[utoipa::path(patch, path = "/api/contacts/batch/edit", tag = "contacts", summary = "Edit many contacts; each item carries its id (PUT replaces)", request_body(content = Vec<Object>), responses((status = 200, description = "{contacts, statusCodes, errors}")))]
pub async fn batch_edit(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    method: axum::http::Method,
    ApiBody(body): ApiBody,
) -> AppResult<Response> {
    let raw = super::batch::items(&state, &body, "contacts")?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    drop(db);
    let put = method == axum::http::Method::PUT;
    let items = raw
        .into_iter()
        .map(|mut b| {
            let contact_id = b
                .as_object_mut()
                .and_then(|o| o.remove("id"))
                .ok_or_else(|| AppError::bad_request("each item needs an id"))?;
            let contact_id = contact_id
                .as_i64()
                .or_else(|| contact_id.as_str().and_then(|s| s.parse().ok()))
                .filter(|i| *i > 0)
                .ok_or_else(|| AppError::bad_request("id must be a positive number"))?;
            let input = ContactInput::from_json(&b, &fields)?;
            Ok((
                if put {
                    Target::Put(contact_id)
                } else {
                    Target::Patch(contact_id)
                },
                input,
            ))
        })
        .collect::<Vec<AppResult<(Target, ContactInput)>>>();
    // A merged-away id names the contact it went into, as on single edits.
    let asked: Vec<i64> = items
        .iter()
        .filter_map(|i| match i {
            Ok((Target::Patch(id) | Target::Put(id), _)) => Some(*id),
            _ => None,
        })
        .collect();
    let now = store::merge::current_ids(&mut state.store.read().await?, &asked).await?;
    let current = |id: i64| now.get(&id).copied().unwrap_or(id);
    let resolved = items
        .into_iter()
        .map(|item| match item {
            Ok((Target::Patch(id), input)) => Ok((Target::Patch(current(id)), input)),
            Ok((Target::Put(id), input)) => Ok((Target::Put(current(id)), input)),
            other => other,
        })
        .collect();
    run_batch(&state, &me, resolved, StatusCode::OK).await
}

/// `DELETE /api/contacts/batch/delete?ids=1,2,3`: answers with the contacts deleted.
#[utoipa::path(delete, path = "/api/contacts/batch/delete", tag = "contacts", summary = "Delete many contacts", params(("ids" = String, Query, description = "Comma-separated ids")), responses((status = 200)))]
pub async fn batch_delete(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Response> {
    let ids = super::batch::ids(&state, &q)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let contacts = store::contacts::load(&mut db, &fields, &ids).await?;
    let extras = Extras::load(&mut db, &contacts, false).await?;
    drop(db);
    // Written before the delete: the answer shows the contacts as they were. As in
    // Mautic, an id that names no contact is an error at its index.
    let layout = Layout::new(&fields);
    let by_id: HashMap<i64, &Contact> = contacts.iter().map(|c| (c.id, c)).collect();
    let mut views = Vec::with_capacity(contacts.len());
    let mut errors = Map::new();
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        match by_id.get(id) {
            Some(c) if seen.insert(*id) => views.push((
                i,
                ContactView {
                    layout: &layout,
                    extras: &extras,
                    contact: c,
                    minimal: false,
                },
            )),
            Some(_) => {} // named twice: deleted once
            None => {
                errors.insert(i.to_string(), AppError::not_found().to_json());
            }
        }
    }
    let body = batch_answer(views, None, &errors);
    let found: Vec<i64> = contacts.iter().map(|c| c.id).collect();
    service::delete(&state.store, &found).await?;
    Ok(json_bytes(StatusCode::OK, body))
}

/// `GET /api/contacts/list/fields`: published fields keyed by id.
#[utoipa::path(get, path = "/api/contacts/list/fields", tag = "contacts", summary = "Published contact fields keyed by id", responses((status = 200)))]
pub async fn list_fields(State(state): State<SharedState>) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let mut out = Map::new();
    for f in fields.iter().filter(|f| f.is_published) {
        out.insert(
            f.id.to_string(),
            json!({ "id": f.id, "label": f.label, "alias": f.alias, "type": f.field_type.as_str(), "group": f.group,
                    "order": f.order, "object": "lead", "properties": Value::Object(f.properties.clone()) }),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /api/contacts/list/owners`
#[utoipa::path(get, path = "/api/contacts/list/owners", tag = "contacts", summary = "Users that can own contacts", responses((status = 200)))]
pub async fn list_owners(State(state): State<SharedState>, q: PhpQuery) -> AppResult<Json<Value>> {
    let mut db = state.store.read().await?;
    let filter = q.str("filter").unwrap_or("").to_lowercase();
    let start = q.int("start", 0)? as usize;
    let limit = q.int("limit", 100)? as usize;
    let users: Vec<Value> = store::users::list(&mut db)
        .await?
        .into_iter()
        .filter(|u| u.is_active)
        .filter(|u| {
            filter.is_empty()
                || u.full_name().to_lowercase().contains(&filter)
                || u.username.to_lowercase().contains(&filter)
        })
        .skip(start)
        .take(limit.max(1))
        .map(|u| json!({ "id": u.id, "firstName": u.first_name, "lastName": u.last_name }))
        .collect();
    Ok(Json(Value::Array(users)))
}

/// `GET /api/contacts/{id}/notes`
#[utoipa::path(get, path = "/api/contacts/{id}/notes", tag = "contacts", summary = "Notes of a contact", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn notes(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let mut db = state.store.read().await?;
    let query = store::notes::of_contact(
        q.entity_query(store::notes::LIST_COLUMNS, ("date_added", true), 30)?,
        contact_id,
    );
    let (notes, total) = store::notes::list(&mut db, &query).await?;
    Ok(Json(
        json!({ "total": total, "notes": notes.iter().map(super::notes::note_json).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(get, path = "/api/contacts/{id}/devices", tag = "contacts", summary = "Tracked devices of a contact", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn devices(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let mut db = state.store.read().await?;
    let devices: Vec<Value> = store::tracking::devices_of(&mut db, contact_id)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "trackingId": d.tracking_id,
                "device": d.device_type,
                "deviceOsName": d.os,
                "deviceBrand": "",
                "deviceModel": "",
                "clientInfo": { "name": d.browser, "userAgent": d.user_agent },
                "dateAdded": crate::time::iso(d.date_added),
                "lastSeen": crate::time::iso(d.last_seen),
            })
        })
        .collect();
    Ok(Json(json!({ "total": devices.len(), "devices": devices })))
}

#[utoipa::path(get, path = "/api/contacts/{id}/companies", tag = "contacts", summary = "Companies of a contact", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn companies(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let mut db = state.store.read().await?;
    let rows: Vec<Value> = store::companies::of_contact(&mut db, contact_id)
        .await?
        .into_iter()
        .map(|(c, linked, primary)| {
            let mut row = Map::new();
            row.insert("company_id".into(), json!(c.id));
            row.insert(
                "date_associated".into(),
                json!(crate::time::sql_datetime(linked)),
            );
            row.insert("is_primary".into(), json!(if primary { "1" } else { "0" }));
            row.insert("id".into(), json!(c.id));
            for (alias, column, _, _) in crate::companies::FIELDS {
                row.insert(
                    alias.into(),
                    c.get(column)
                        .and_then(|v| v.to_text())
                        .map_or(Value::Null, Value::String),
                );
            }
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({ "total": rows.len(), "companies": rows })))
}

#[utoipa::path(get, path = "/api/contacts/{id}/tracking-token", tag = "contacts", summary = "A signed click-through token (ct) naming this contact, for links in emails", params(("id" = i64, Path), ("days" = Option<i64>, Query, description = "Validity, default 30, at most 365")), responses((status = 200, description = "{token, expires, parameter}")))]
pub async fn tracking_token(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let days = q.int("days", 30)?.clamp(1, 365);
    let expires = now_ms() / 1000 + days * 86_400;
    let token = crate::tracking::token::issue(&state.tracking_secret, contact_id, expires);
    Ok(Json(
        json!({ "token": token, "expires": crate::time::iso(expires * 1000), "parameter": "ct" }),
    ))
}

/// Sub-resources that later areas fill: answered in Mautic's shape, empty for now.
#[utoipa::path(get, path = "/api/contacts/{id}/campaigns", tag = "contacts", summary = "Campaigns of a contact", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn campaigns(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    require_contact(&state, &contact_id).await?;
    // PHP writes an empty array as `[]`, keyed or not.
    Ok(Json(json!({ "total": 0, "campaigns": [] })))
}

#[utoipa::path(get, path = "/api/contacts/{id}/segments", tag = "contacts", summary = "Segments of a contact (key lists)", params(("id" = i64, Path)), responses((status = 200)))]
pub async fn segments(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
) -> AppResult<Json<Value>> {
    require_contact(&state, &contact_id).await?;
    Ok(Json(json!({ "total": 0, "lists": [] })))
}

/// `GET /api/contacts/list/segments`: the segments contacts can be added to — none until
/// segments exist.
#[utoipa::path(get, path = "/api/contacts/list/segments", tag = "contacts", summary = "Segments contacts can be added to (none until segments exist)", responses((status = 200)))]
pub async fn list_segments() -> Json<Value> {
    Json(json!([]))
}

/// The contact a path's id names (a merged-away id names the contact it went into), or
/// a 404.
async fn require_contact(state: &SharedState, contact_id: &str) -> AppResult<i64> {
    let contact_id = id(contact_id)?;
    let mut db = state.store.read().await?;
    store::merge::current_id(&mut db, contact_id)
        .await?
        .ok_or_else(AppError::not_found)
}

/// A filter's event types: `filters[key][]=a&filters[key][]=b`, `filters[key][0]=a`, or
/// `filters[key]=a,b`.
fn type_list(filters: &Map<String, Value>, key: &str) -> AppResult<Vec<String>> {
    let bad = || {
        AppError::bad_request(format!(
            "filters[{key}] must be a list of event types, as filters[{key}][]=page.hit"
        ))
    };
    let items: Vec<&Value> = match filters.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            return Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect());
        }
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) => o.values().collect(),
        Some(_) => return Err(bad()),
    };
    let mut types = Vec::new();
    for item in items {
        let t = item.as_str().ok_or_else(bad)?.trim();
        if !t.is_empty() {
            types.push(t.to_owned());
        }
    }
    Ok(types)
}

/// Mautic's activity `order[0]` (timestamp, eventLabel or eventType; empty means
/// timestamp, as Mautic's PHP library sends by default) and `order[1]` (ASC or DESC,
/// default DESC), read by position: an empty first value keeps its place.
fn activity_order(
    q: &PhpQuery,
    catalogue: &types::Catalogue,
) -> AppResult<(store::events::EventOrder, Value)> {
    use store::events::EventOrder;
    let at = |i: usize| -> AppResult<String> {
        let v = match q.0.get("order") {
            None => None,
            Some(Value::Array(a)) => a.get(i),
            Some(Value::Object(o)) => o.get(&i.to_string()),
            // `order=timestamp`: the column alone.
            Some(column @ Value::String(_)) => (i == 0).then_some(column),
            Some(_) => return Err(AppError::bad_request("order must be order[0]=…&order[1]=…")),
        };
        match v {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(_) => Err(AppError::bad_request(format!("order[{i}] must be text"))),
        }
    };
    let (column, dir) = (at(0)?, at(1)?);
    let descending = match dir.to_ascii_uppercase().as_str() {
        "" | "DESC" => true,
        "ASC" => false,
        _ => return Err(AppError::bad_request("order[1] must be ASC or DESC")),
    };
    let order = match column.as_str() {
        "" | "timestamp" if descending => EventOrder::NewestFirst,
        "" | "timestamp" => EventOrder::OldestFirst,
        "eventLabel" | "eventType" => EventOrder::Label {
            labels: catalogue
                .types()
                .into_iter()
                .map(|t| (t.key, t.label))
                .collect(),
            descending,
        },
        other => {
            return Err(AppError::bad_request(format!(
                "order[0] must be timestamp, eventLabel or eventType, not '{other}'"
            )));
        }
    };
    let column = if column.is_empty() {
        "timestamp"
    } else {
        &column
    };
    Ok((
        order,
        json!([column, if descending { "DESC" } else { "ASC" }]),
    ))
}

/// `GET /api/contacts/{id}/activity`: the timeline in Mautic's shape.
#[utoipa::path(get, path = "/api/contacts/{id}/activity", tag = "contacts", summary = "The timeline of a contact", params(("id" = i64, Path), ("filters[search]" = Option<String>, Query), ("filters[includeEvents][]" = Option<String>, Query), ("filters[excludeEvents][]" = Option<String>, Query), ("filters[dateFrom]" = Option<String>, Query), ("filters[dateTo]" = Option<String>, Query), ("order[0]" = Option<String>, Query, description = "timestamp (default), eventLabel or eventType"), ("order[1]" = Option<String>, Query, description = "ASC or DESC (default)"), ("page" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "{events, filters, order, types, total, page, limit, maxPages}")))]
pub async fn activity(
    State(state): State<SharedState>,
    Path(contact_id): Path<String>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    activity_page(&state, Some(contact_id), &q).await
}

/// `GET /api/contacts/activity`
#[utoipa::path(get, path = "/api/contacts/activity", tag = "contacts", summary = "Every contact's events", description = "As Mautic, the events stored for contacts, without those a contact's own record implies (created, identified); each event names its contactId. The same filters, order and paging as a contact's activity.", params(("filters[search]" = Option<String>, Query), ("filters[includeEvents][]" = Option<String>, Query), ("filters[excludeEvents][]" = Option<String>, Query), ("filters[dateFrom]" = Option<String>, Query), ("filters[dateTo]" = Option<String>, Query), ("order[0]" = Option<String>, Query, description = "timestamp (default), eventLabel or eventType"), ("order[1]" = Option<String>, Query, description = "ASC or DESC (default)"), ("page" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "{events, filters, order, types, total, page, limit, maxPages}")))]
pub async fn activity_everyone(
    State(state): State<SharedState>,
    q: PhpQuery,
) -> AppResult<Json<Value>> {
    activity_page(&state, None, &q).await
}

/// A page of one contact's timeline, or (`None`) of every contact's stored events, in
/// Mautic's shape.
async fn activity_page(
    state: &SharedState,
    contact_id: Option<i64>,
    q: &PhpQuery,
) -> AppResult<Json<Value>> {
    let filters = match q.0.get("filters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(s)) if s.is_empty() => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(AppError::bad_request(
                "filters must be given by name, as filters[search]=…&filters[includeEvents][]=…",
            ));
        }
    };
    const FILTERS: [&str; 5] = [
        "search",
        "includeEvents",
        "excludeEvents",
        "dateFrom",
        "dateTo",
    ];
    if let Some(unknown) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(AppError::bad_request(format!(
            "unknown filter filters[{unknown}]: the filters are {}",
            FILTERS.join(", ")
        )));
    }
    let search = match filters.get("search") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(AppError::bad_request("filters[search] must be text")),
    };
    let include = type_list(&filters, "includeEvents")?;
    let exclude = type_list(&filters, "excludeEvents")?;
    let parse_date = |key: &str| -> AppResult<Option<i64>> {
        let bad = || AppError::bad_request(format!("filters[{key}] must be a date"));
        match filters.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => crate::time::parse_datetime(s)
                .map(|t| Some(t.timestamp_millis()))
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    };
    let (from, to) = (parse_date("dateFrom")?, parse_date("dateTo")?);
    let filter = store::events::EventFilter {
        include: include.clone(),
        exclude: exclude.clone(),
        search: Some(search.clone()).filter(|s| !s.is_empty()),
        from,
        to,
    };
    let (order, order_echo) = activity_order(q, &state.events)?;
    let page = q.int("page", 1)?.max(1);
    let limit = q.int("limit", 25)?.clamp(1, 500);
    let offset = (page - 1)
        .checked_mul(limit)
        .ok_or_else(|| AppError::bad_request("page is too large"))?;
    let mut db = state.store.read().await?;
    let catalogue = &state.events;
    let mut type_map = Map::new();
    for t in catalogue.types() {
        type_map.insert(t.key.clone(), json!(t.label));
    }
    let (events, total) = match contact_id {
        Some(id) => {
            let page = store::events::page(&mut db, id, &filter, offset, limit, &order).await?;
            // Types the contact has that no plugin declares (any more) can be filtered too.
            for key in store::events::type_counts(&mut db, id).await?.keys() {
                type_map
                    .entry(key.clone())
                    .or_insert_with(|| json!(catalogue.label(key)));
            }
            page
        }
        None => store::events::page_everyone(&mut db, &filter, offset, limit, &order).await?,
    };
    drop(db);
    for e in &events {
        type_map
            .entry(e.event_type.clone())
            .or_insert_with(|| json!(catalogue.label(&e.event_type)));
    }
    let rendered = catalogue.render_page(events.clone()).await;
    let events: Vec<Value> = events
        .iter()
        .zip(rendered)
        .map(|(e, r)| {
            let mut j = event_json(catalogue, e);
            j["rendered"] = rendered_json(&r);
            j
        })
        .collect();
    let mut filters =
        json!({ "search": search, "includeEvents": include, "excludeEvents": exclude });
    for (key, value) in [("dateFrom", from), ("dateTo", to)] {
        if let Some(t) = value {
            filters[key] = json!(crate::time::iso(t));
        }
    }
    Ok(Json(json!({
        "events": events,
        "filters": filters,
        "order": order_echo,
        "types": type_map,
        "total": total,
        "page": page,
        "limit": limit,
        "maxPages": ((total + limit - 1) / limit).max(1),
    })))
}

/// An event's rendering (from its plugin; `raw` when the plugin is missing or failed).
pub fn rendered_json(r: &types::Rendered) -> Value {
    json!({
        "summary": r.summary,
        "rows": r.rows.iter().map(|(k, v)| json!({"label": k, "value": v})).collect::<Vec<_>>(),
        "link": r.link,
        "raw": r.raw,
    })
}

pub fn event_json(catalogue: &types::Catalogue, e: &timeline::Event) -> Value {
    let label = catalogue.label(&e.event_type);
    // A derived event, one of its type per contact, is named by its contact, as in Mautic.
    let n = if e.is_derived() { e.contact_id } else { e.id };
    json!({
        "event": e.event_type,
        "eventId": format!("{}{n}", e.event_type),
        "eventLabel": label,
        "eventType": label,
        "timestamp": crate::time::iso(e.occurred_at),
        "contactId": e.contact_id,
        "icon": catalogue.icon(&e.event_type),
        "source": e.source,
        "extra": e.properties,
        "details": e.properties,
    })
}

/// `POST /api/contacts/{id}/dnc/{channel}/add`
#[utoipa::path(post, path = "/api/contacts/{id}/dnc/{channel}/add", tag = "contacts", summary = "Mark a contact do-not-contact on a channel", params(("id" = i64, Path), ("channel" = String, Path)), request_body(content = Object, description = "reason (1 unsubscribed, 2 bounced, 3 manual), comments, channelId"), responses((status = 200)))]
pub async fn dnc_add(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((contact_id, channel)): Path<(String, String)>,
    body: Option<ApiBody>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    // No body, `null`, or PHP's empty array: the defaults.
    let mut o = match body.map(|b| b.0) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(AppError::bad_request(
                "the body must be a JSON object: reason, comments, channelId",
            ));
        }
    };
    if let Some(cid) = o.remove("channelId") {
        o.insert("channel_id".into(), cid);
    }
    o.insert("channel".into(), json!(channel));
    if o.get("reason").is_none() {
        o.insert("reason".into(), json!(DNC_MANUAL));
    }
    let dnc: Vec<DncInput> = parse_dnc(&Value::Object(o))
        .map_err(|m| AppError::bad_request(format!("invalid do-not-contact: {m}")))?;
    // Reason 0 lifts a record; adding one takes 1 to 3 (`…/remove` lifts).
    if dnc.iter().any(|d| d.reason == DNC_CONTACTABLE) {
        return Err(AppError::bad_request(
            "invalid do-not-contact: reason must be 1 (unsubscribed), 2 (bounced) or 3 (manual); use …/remove to lift one",
        ));
    }
    let input = ContactInput {
        dnc,
        ..ContactInput::default()
    };
    save(&state, &me, vec![(Target::Patch(contact_id), input)])
        .await?
        .remove(0)?;
    Ok(Json(
        json!({ "contact": one_json(&state, contact_id).await? }),
    ))
}

/// `POST /api/contacts/{id}/dnc/{channel}/remove`
#[utoipa::path(post, path = "/api/contacts/{id}/dnc/{channel}/remove", tag = "contacts", summary = "Remove a do-not-contact record", params(("id" = i64, Path), ("channel" = String, Path)), responses((status = 200, description = "{recordFound, contact}")))]
pub async fn dnc_remove(
    State(state): State<SharedState>,
    Path((contact_id, channel)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let mut tx = state.store.begin().await?;
    let found = store::contacts::remove_dnc(&mut tx, contact_id, &channel).await?;
    if found {
        store::events::insert(
            &mut tx,
            &[timeline::NewEvent::new(
                contact_id,
                timeline::keys::DNC,
                now_ms(),
                json!({ "channel": channel, "removed": true }),
            )
            .source("api")],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(
        json!({ "recordFound": found, "contact": one_json(&state, contact_id).await? }),
    ))
}

/// `POST /api/contacts/{id}/utm/add`
#[utoipa::path(post, path = "/api/contacts/{id}/utm/add", tag = "contacts", summary = "Record UTM tags", params(("id" = i64, Path)), request_body = Object, responses((status = 200)))]
pub async fn utm_add(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(contact_id): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let mut o = body
        .as_object()
        .cloned()
        .ok_or_else(|| AppError::bad_request("the body must be an object of utm_* values"))?;
    let last_active = o
        .keys()
        .find(|k| k.eq_ignore_ascii_case("lastActive"))
        .cloned()
        .and_then(|k| o.remove(&k));
    // Mautic's PHP library sends the contact's id along as `lead`; another id is an error.
    if let Some(lead) = o.remove("lead") {
        let same = match &lead {
            Value::Number(n) => n.as_i64() == Some(contact_id),
            Value::String(s) => s.trim().parse::<i64>().ok() == Some(contact_id),
            _ => false,
        };
        if !same {
            return Err(AppError::invalid(
                "lead",
                format!("names another contact than the URL ({contact_id})"),
            ));
        }
    }
    let utm = parse_utm(&Value::Object(o)).map_err(|m| AppError::Validation {
        message: format!("utmtags: {m}"),
        details: json!({ "utmtags": [m] }),
    })?;
    let user_agents: Vec<String> = utm
        .iter()
        .filter_map(|u| u.user_agent.clone())
        .filter(|ua| !ua.trim().is_empty())
        .collect();
    let mut input = ContactInput {
        utm,
        ..ContactInput::default()
    };
    if let Some(v) = last_active {
        input.values.push(("last_active".into(), v));
    }
    let ctx = api_context(&state, &me).await?;
    let mut tx = state.store.begin().await?;
    service::save_in(&mut tx, &ctx, vec![(Target::Patch(contact_id), input)])
        .await?
        .remove(0)?;
    // As in Mautic, the user agent the tags came with is one of the contact's devices.
    let mut known: HashSet<String> = store::tracking::devices_of(&mut tx, contact_id)
        .await?
        .into_iter()
        .map(|d| d.user_agent)
        .collect();
    let mut devices = Vec::new();
    for ua in user_agents {
        let device = crate::tracking::ua::parse(&ua).device(
            crate::tracking::token::issue_device_id(&state.tracking_secret),
            contact_id,
            &ua,
            ctx.now,
        );
        if known.insert(device.user_agent.clone()) {
            devices.push(device);
        }
    }
    store::tracking::insert_devices(&mut tx, &devices).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "contact": one_json(&state, contact_id).await? }),
    ))
}

/// `POST /api/contacts/{id}/utm/{utmId}/remove`: deletes one set of UTM tags.
#[utoipa::path(post, path = "/api/contacts/{id}/utm/{utm_id}/remove", tag = "contacts", summary = "Remove a set of UTM tags from a contact", params(("id" = i64, Path), ("utm_id" = i64, Path)), responses((status = 200, description = "{\"recordFound\": true, \"contact\": Contact}"), (status = 404, body = ErrorBody)))]
pub async fn utm_remove(
    State(state): State<SharedState>,
    Path((contact_id, utm_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let utm_id = id(&utm_id)?;
    let mut tx = state.store.begin().await?;
    if !store::contacts::delete_utm(&mut tx, contact_id, utm_id).await? {
        return Err(AppError::NotFound(format!(
            "contact {contact_id} has no UTM tags with id {utm_id}"
        )));
    }
    // Its timeline event goes with it, as a deleted note's does.
    store::events::delete_for_ref(&mut tx, contact_id, timeline::keys::UTM, utm_id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "recordFound": true, "contact": one_json(&state, contact_id).await? }),
    ))
}

/// `POST /api/contacts/{id}/points/{plus|minus|times|divide}/{delta}`
#[utoipa::path(post, path = "/api/contacts/{id}/points/{op}/{delta}", tag = "contacts", summary = "Change points: add (plus), subtract (minus), multiply (times) or divide (divide)", params(("id" = i64, Path), ("op" = String, Path, description = "plus, minus, times or divide"), ("delta" = i64, Path)), responses((status = 200, description = "{\"success\": 1}")))]
pub async fn points(
    State(state): State<SharedState>,
    Path((contact_id, op, delta)): Path<(String, String, String)>,
) -> AppResult<Json<Value>> {
    let contact_id = require_contact(&state, &contact_id).await?;
    let delta: i64 = delta
        .parse()
        .ok()
        .filter(|d: &i64| *d >= 0 && *d <= 1_000_000_000)
        .ok_or_else(|| {
            AppError::bad_request("the delta must be a whole number from 0 to 1000000000")
        })?;
    use store::contacts::PointsChange;
    // Mautic's four operators, and the words its history uses for them.
    let (change, action) = match op.as_str() {
        "plus" => (PointsChange::Add(delta), "add (+)"),
        "minus" => (PointsChange::Add(-delta), "subtract (-)"),
        "times" => (PointsChange::Times(delta), "multiply (x)"),
        "divide" if delta == 0 => return Err(AppError::bad_request("cannot divide by 0")),
        "divide" => (PointsChange::Divide(delta), "divide (/)"),
        _ => {
            return Err(AppError::bad_request(
                "Invalid operator: use plus, minus, times or divide",
            ));
        }
    };
    service::change_points(&state.store, contact_id, change, action, now_ms()).await?;
    Ok(Json(json!({ "success": 1 })))
}

#[utoipa::path(post, path = "/api/contacts/{id}/merge/{other_id}", tag = "contacts", summary = "Merge another contact into this one (this one survives; nothing is lost)", params(("id" = i64, Path), ("other_id" = i64, Path)), responses((status = 200, description = "{contact, merged: {fieldsTaken, rowsMoved}}"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn merge(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((winner, loser)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let winner = resolve_id(&state, id(&winner)?).await?;
    let loser = id(&loser)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    if !store::contacts::exists(&mut db, loser).await? {
        return Err(AppError::not_found());
    }
    drop(db);
    let summary = crate::contacts::merge::merge(
        &state.store,
        &fields,
        (winner, loser),
        Source::Api,
        Some(me.id),
        now_ms(),
        Default::default(),
    )
    .await?;
    let moved: Map<String, Value> = summary
        .rows_moved
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    Ok(Json(json!({
        "contact": one_json(&state, winner).await?,
        "merged": { "loserId": loser, "fieldsTaken": summary.fields_taken, "rowsMoved": moved },
    })))
}

/// For other modules: a contact's JSON by id.
pub async fn contact_by_id(state: &SharedState, contact_id: i64) -> AppResult<Value> {
    one_json(state, contact_id).await
}
