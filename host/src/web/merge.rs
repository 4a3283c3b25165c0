//! Merging two contacts from the admin. On the contact page, Actions → Merge opens a
//! modal: search as you type (`GET /contacts/{id}/merge/search?q=`, JSON, with the
//! session's CSRF token in `X-CSRF-Token`), pick a contact, confirm with both names. The
//! same steps work without script on `/contacts/{id}/merge` (search, `?with=` to confirm).
//! `POST /contacts/{id}/merge` (`other`) runs `contacts::merge::merge` with source admin
//! and the user as actor: the contact you are on survives, everything of the other
//! moves to it, and the other's old URL lands on it (see `contact_page::page`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::display::{self, enc};
use super::error::{WebError, WebResult};
use super::forms::FormData;
use super::layout::{Chrome, render};
use super::session::{self, Session, tokens_match};
use crate::contacts::Contact;
use crate::contacts::fields::FieldSet;
use crate::contacts::search;
use crate::contacts::service::Source;
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::contact_search::{Dir, ListError, ListQuery};
use crate::store::{self, Conn};
use crate::time::now_ms;

/// How many matches the search shows.
const MAX_RESULTS: usize = 10;

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

/// A contact offered for merging.
pub struct Candidate {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// Location and last activity, for telling namesakes apart.
    pub detail: String,
    pub anonymous: bool,
}

/// The name a contact goes by on pages: its name, or its latest IP address when anonymous.
async fn shown_name(db: &mut Conn, c: &Contact) -> WebResult<String> {
    if !c.is_anonymous() {
        return Ok(c.display_name());
    }
    let ips = store::contacts::ips_of(db, &[c.id]).await?;
    let ip = ips
        .get(&c.id)
        .and_then(|v| v.iter().max_by_key(|r| r.last_seen))
        .map(|r| r.ip.clone());
    Ok(ip.map_or_else(|| "Visitor".to_owned(), |ip| format!("Visitor {ip}")))
}

async fn candidate(db: &mut Conn, c: &Contact, now: i64) -> WebResult<Candidate> {
    let name = shown_name(db, c).await?;
    let mut detail: Vec<String> = Vec::new();
    let location = display::location(c);
    if !location.is_empty() {
        detail.push(location);
    }
    if let Some(t) = c.last_active {
        detail.push(format!("active {}", display::relative(t, now)));
    }
    detail.push(format!("#{}", c.id));
    Ok(Candidate {
        id: c.id,
        name: display::clip(&name, 120),
        email: display::clip(&c.text("email").unwrap_or_default(), 120),
        detail: display::clip(&detail.join(" · "), 160),
        anonymous: c.is_anonymous(),
    })
}

/// Contacts matching `q` (the contacts list's search grammar), without `id` itself.
/// An invalid search is the error message, for the user.
async fn candidates(
    state: &SharedState,
    session: &Session,
    id: i64,
    q: &str,
) -> WebResult<Result<Vec<Candidate>, String>> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let q: String = q.chars().take(500).collect();
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let expr = match search::parse(&q, &fields) {
        Ok(e) => e,
        Err(m) => return Ok(Err(m)),
    };
    let query = ListQuery {
        search: expr.as_ref(),
        wheres: &[],
        order_by: None,
        dir: Dir::Desc,
        offset: 0,
        limit: Some(MAX_RESULTS as i64 + 1),
        me: Some(session.user.id),
    };
    let found = match store::contact_search::list(&mut db, &fields, &query).await {
        Ok((contacts, _)) => contacts,
        Err(ListError::BadQuery(m)) => return Ok(Err(m)),
        Err(ListError::Db(e)) => return Err(e.into()),
    };
    let now = now_ms();
    let mut out = Vec::new();
    for c in found.iter().filter(|c| c.id != id).take(MAX_RESULTS) {
        out.push(candidate(&mut db, c, now).await?);
    }
    Ok(Ok(out))
}

async fn load_contact(db: &mut Conn, fields: &FieldSet, id: i64) -> WebResult<Option<Contact>> {
    Ok(store::contacts::load(db, fields, &[id]).await?.pop())
}

#[derive(Deserialize, Default)]
pub struct SearchParams {
    #[serde(default)]
    pub q: String,
    pub with: Option<String>,
}

/// `GET /contacts/{id}/merge/search?q=`: the modal's search, as JSON. Needs the
/// session's CSRF token in `X-CSRF-Token` (only the admin's own script asks).
pub async fn search_json(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> WebResult<Response> {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !tokens_match(token, &session.csrf) {
        return Err(WebError::Csrf);
    }
    let id = id_of(&id)?;
    {
        let mut db = state.store.read().await?;
        if !store::contacts::exists(&mut db, id).await? {
            return Err(WebError::NotFound);
        }
    }
    let body = match candidates(&state, &session, id, &p.q).await? {
        Ok(list) => json!({
            "results": list.iter().map(|c| json!({
                "id": c.id, "name": c.name, "email": c.email, "detail": c.detail, "anonymous": c.anonymous,
            })).collect::<Vec<_>>(),
            "error": null,
        }),
        Err(m) => json!({ "results": [], "error": display::clip(&m, 300) }),
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Template)]
#[template(path = "merge_page.html")]
struct MergePage {
    chrome: Chrome,
    id: i64,
    name: String,
    email: String,
    q: String,
    searched: bool,
    error: Option<String>,
    results: Vec<Candidate>,
    /// The contact picked for merging, to confirm.
    other: Option<Candidate>,
}

/// `GET /contacts/{id}/merge`: the merge steps as a page (what the modal does, without script).
pub async fn page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(p): Query<SearchParams>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let now = now_ms();
    let (me, other) = {
        let mut db = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        let c = load_contact(&mut db, &fields, id)
            .await?
            .ok_or(WebError::NotFound)?;
        let me = candidate(&mut db, &c, now).await?;
        let other = match p.with.as_deref().map(str::parse::<i64>) {
            Some(Ok(o)) if o != id => match load_contact(&mut db, &fields, o).await? {
                Some(oc) => Some(candidate(&mut db, &oc, now).await?),
                None => None,
            },
            _ => None,
        };
        (me, other)
    };
    let (results, error) = match candidates(&state, &session, id, &p.q).await? {
        Ok(r) => (r, None),
        Err(m) => (Vec::new(), Some(m)),
    };
    Ok(render(&MergePage {
        chrome: Chrome::new(&session, "contacts"),
        id,
        name: me.name,
        email: me.email,
        q: p.q.chars().take(500).collect(),
        searched: !p.q.trim().is_empty(),
        error,
        results,
        other,
    }))
}

impl MergePage {
    fn pick_href(&self, other: &Candidate) -> String {
        format!(
            "/contacts/{}/merge?q={}&with={}#confirm",
            self.id,
            enc(&self.q),
            other.id
        )
    }

    fn back_href(&self) -> String {
        format!("/contacts/{}/merge?q={}", self.id, enc(&self.q))
    }
}

/// A readable list of what moved: "12 events, 1 device".
fn moved_text(rows: &[(String, u64)]) -> String {
    let label = |table: &str, n: u64| -> Option<String> {
        let (one, many) = match table {
            "contact_events" => ("event", "events"),
            "contact_notes" => ("note", "notes"),
            "devices" => ("device", "devices"),
            "form_submissions" => ("form submission", "form submissions"),
            "contact_tags" => ("tag", "tags"),
            "contact_ips" => ("IP address", "IP addresses"),
            "contact_companies" => ("company", "companies"),
            "contact_utm_tags" => ("UTM record", "UTM records"),
            "contact_dnc" => ("do-not-contact record", "do-not-contact records"),
            _ => ("other row", "other rows"),
        };
        (n > 0).then(|| {
            format!(
                "{} {}",
                display::thousands(n as i64),
                if n == 1 { one } else { many }
            )
        })
    };
    rows.iter()
        .filter_map(|(t, n)| label(t, *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /contacts/{id}/merge` with `other`: merges the other contact into this one.
pub async fn merge(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let form = FormData(form);
    let back = format!("/contacts/{id}");
    let Some(requested) = form
        .str("other")
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|o| *o > 0)
    else {
        session::flash(
            &state,
            &session,
            "error",
            "Choose the contact to merge into this one.",
        )
        .await?;
        return Ok(Redirect::to(&format!("/contacts/{id}/merge")).into_response());
    };
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let me = load_contact(&mut db, &fields, id)
        .await?
        .ok_or(WebError::NotFound)?;
    // An id merged away earlier names the contact it went into.
    let other = store::merge::current_id(&mut db, requested)
        .await?
        .unwrap_or(requested);
    if other == id {
        drop(db);
        session::flash(
            &state,
            &session,
            "info",
            "That contact is already this one; nothing was merged.",
        )
        .await?;
        return Ok(Redirect::to(&back).into_response());
    }
    let Some(loser) = load_contact(&mut db, &fields, other).await? else {
        drop(db);
        session::flash(
            &state,
            &session,
            "error",
            "The contact to merge no longer exists; nothing was merged.",
        )
        .await?;
        return Ok(Redirect::to(&back).into_response());
    };
    let (my_name, other_name) = (
        shown_name(&mut db, &me).await?,
        shown_name(&mut db, &loser).await?,
    );
    drop(db);
    match crate::contacts::merge::merge(
        &state.store,
        &fields,
        (id, other),
        Source::Admin,
        Some(session.user.id),
        now_ms(),
        Default::default(),
    )
    .await
    {
        Ok(summary) => {
            let moved = moved_text(&summary.rows_moved);
            let mut text = format!(
                "{} (#{other}) was merged into {}.",
                display::clip(&other_name, 80),
                display::clip(&my_name, 80)
            );
            if !moved.is_empty() {
                text.push_str(&format!(" Moved here: {moved}."));
            }
            session::flash(&state, &session, "success", &text).await?;
        }
        Err(AppError::NotFound(_)) => {
            session::flash(
                &state,
                &session,
                "error",
                "One of the contacts no longer exists; nothing was merged.",
            )
            .await?;
        }
        Err(AppError::Validation { message, .. }) => {
            session::flash(
                &state,
                &session,
                "error",
                &format!("Nothing was merged: {message}"),
            )
            .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_rows_read_well() {
        let rows = vec![
            ("contact_events".to_owned(), 12),
            ("devices".to_owned(), 1),
            ("contact_notes".to_owned(), 0),
            ("contact_ips".to_owned(), 2),
        ];
        assert_eq!(moved_text(&rows), "12 events, 1 device, 2 IP addresses");
        assert_eq!(moved_text(&[]), "");
    }
}
