//! `/companies`: the companies tracking, forms and the API created, searchable by name
//! or email, and `/companies/{id}`: a company's fields and its contacts. Read-only here;
//! companies are written by tracking (`companyname`, …) and the Companies API.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::display::{self, enc};
use super::error::{WebError, WebResult};
use super::layout::{Chrome, render};
use super::session::Session;
use crate::companies::FIELDS;
use crate::state::SharedState;
use crate::store::{self, Value};
use crate::time::now_ms;

const PER_PAGE: i64 = 25;
const CONTACTS_PER_PAGE: i64 = 50;

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

fn text(c: &store::companies::Company, column: &str) -> String {
    match c.get(column) {
        Some(Value::Int(i)) => display::thousands(*i),
        Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
            display::thousands(*f as i64)
        }
        Some(v) => v.to_text().unwrap_or_default(),
        None => String::new(),
    }
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    pub q: String,
    pub page: Option<String>,
}

fn page_of(p: &Option<String>) -> i64 {
    p.as_deref()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
        .min(1_000_000)
}

pub struct CompanyRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub website: String,
    pub website_href: Option<String>,
    pub location: String,
    pub contacts: String,
}

#[derive(Template)]
#[template(path = "companies_list.html")]
struct CompaniesPage {
    chrome: Chrome,
    q: String,
    rows: Vec<CompanyRow>,
    total: String,
    range: String,
    prev: Option<String>,
    next: Option<String>,
}

fn web_href(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| url.to_owned())
}

pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(p): Query<ListParams>,
) -> WebResult<Response> {
    let page = page_of(&p.page);
    let q: String = p.q.trim().chars().take(200).collect();
    let mut db = state.store.read().await?;
    let query = store::entity_list::EntityQuery {
        text: Some(q.clone()),
        order_by: ("name", false),
        offset: (page - 1) * PER_PAGE,
        limit: PER_PAGE,
        ..Default::default()
    };
    let (companies, total) = store::companies::list(&mut db, &query).await?;
    let ids: Vec<i64> = companies.iter().map(|c| c.id).collect();
    let counts = store::companies::contact_counts(&mut db, &ids).await?;
    let rows = companies
        .iter()
        .map(|c| {
            let website = text(c, "website");
            CompanyRow {
                id: c.id,
                name: display::clip(&c.name(), 120),
                email: display::clip(&text(c, "email"), 120),
                website_href: web_href(&website),
                website: display::clip(&website, 80),
                location: display::clip(
                    &["city", "state", "country"]
                        .iter()
                        .map(|k| text(c, k))
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", "),
                    120,
                ),
                contacts: display::thousands(counts.get(&c.id).copied().unwrap_or(0)),
            }
        })
        .collect();
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let href = |n: i64| {
        let mut parts = Vec::new();
        if !q.is_empty() {
            parts.push(format!("q={}", enc(&q)));
        }
        if n > 1 {
            parts.push(format!("page={n}"));
        }
        if parts.is_empty() {
            "/companies".to_owned()
        } else {
            format!("/companies?{}", parts.join("&"))
        }
    };
    let first = if total == 0 {
        0
    } else {
        (page - 1) * PER_PAGE + 1
    };
    let last = (page * PER_PAGE).min(total);
    Ok(render(&CompaniesPage {
        chrome: Chrome::new(&session, "companies"),
        rows,
        total: display::thousands(total),
        range: format!(
            "{}–{} of {}",
            display::thousands(first),
            display::thousands(last),
            display::thousands(total)
        ),
        prev: (page > 1).then(|| href(page - 1)),
        next: (page < pages).then(|| href(page + 1)),
        q,
    }))
}

pub struct ContactLink {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub primary: bool,
    pub linked: String,
}

#[derive(Template)]
#[template(path = "company_page.html")]
struct CompanyPage {
    chrome: Chrome,
    id: i64,
    name: String,
    title: String,
    about: Vec<(&'static str, String, Option<String>)>,
    date_added: String,
    contacts: Vec<ContactLink>,
    contacts_total: String,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn view(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let page = page_of(&p.page);
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let company = store::companies::get(&mut db, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let (links, total) = store::companies::contacts_of(
        &mut db,
        id,
        (page - 1) * CONTACTS_PER_PAGE,
        CONTACTS_PER_PAGE,
    )
    .await?;
    let ids: Vec<i64> = links.iter().map(|(c, _, _)| *c).collect();
    let loaded: HashMap<i64, crate::contacts::Contact> =
        store::contacts::load(&mut db, &fields, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    let now = now_ms();
    let contacts = links
        .iter()
        .filter_map(|(cid, primary, linked)| {
            let c = loaded.get(cid)?;
            let name = if c.is_anonymous() {
                format!("Visitor #{cid}")
            } else {
                c.display_name()
            };
            Some(ContactLink {
                id: *cid,
                name: display::clip(&name, 120),
                email: display::clip(&c.text("email").unwrap_or_default(), 120),
                primary: *primary,
                linked: display::relative(*linked, now),
            })
        })
        .collect();
    let about = FIELDS
        .iter()
        .filter(|(_, column, _, _)| *column != "name")
        .filter_map(|(_, column, label, _)| {
            let v = text(&company, column);
            if v.is_empty() {
                return None;
            }
            let href = match *column {
                "website" => web_href(&v),
                "email" => Some(format!("mailto:{v}")),
                _ => None,
            };
            Some((*label, display::clip(&v, 2000), href))
        })
        .collect();
    let pages = ((total + CONTACTS_PER_PAGE - 1) / CONTACTS_PER_PAGE).max(1);
    let name = company.name();
    Ok(render(&CompanyPage {
        chrome: Chrome::new(&session, "companies"),
        id,
        title: display::plain(&name, 80),
        name: display::clip(&name, 200),
        about,
        date_added: display::datetime(company.date_added),
        contacts,
        contacts_total: display::thousands(total),
        prev: (page > 1).then(|| format!("/companies/{id}?page={}#contacts", page - 1)),
        next: (page < pages).then(|| format!("/companies/{id}?page={}#contacts", page + 1)),
    }))
}
