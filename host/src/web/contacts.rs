//! `/contacts`: the list with search (the foundation's grammar, kept in the URL), sortable
//! columns, pagination and page sizes, select-all for later batch actions; and the quick
//! add modal.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::display::{self, enc};
use super::error::WebResult;
use super::forms::{self, FormData, FormState, Widget};
use super::layout::{Chrome, render_status};
use super::session::{self, Session};
use crate::contacts::fields::FieldSet;
use crate::contacts::search;
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::contacts::{Contact, input::Problems};
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::contact_search::{Dir, ListError, ListQuery};
use crate::store::{self, Conn};
use crate::time::now_ms;

pub const PAGE_SIZES: [i64; 4] = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE: i64 = 25;

#[derive(Deserialize, Default, Clone)]
pub struct ListParams {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    pub page: Option<String>,
    pub limit: Option<String>,
    /// A contact just added by quick add: shown first, highlighted.
    pub added: Option<String>,
}

/// A sortable column: (key in the URL, heading, column for the store).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("name", "Name", "lastname"),
    ("email", "Email", "email"),
    ("location", "Location", "city"),
    ("points", "Points", "points"),
    ("last_active", "Last active", "last_active"),
    ("id", "ID", "id"),
];

pub struct Heading {
    pub label: &'static str,
    pub href: String,
    /// "asc", "desc" or "" when not the sort column.
    pub sorted: &'static str,
    pub key: &'static str,
}

pub struct Row {
    pub id: i64,
    pub name: String,
    pub anonymous: bool,
    pub email: String,
    pub location: String,
    pub points: String,
    pub last_active: String,
    pub last_active_full: String,
    pub tags: Vec<String>,
    pub avatar: Option<String>,
    pub initials: String,
    pub highlight: bool,
}

pub struct PageLink {
    pub label: String,
    pub href: String,
    pub current: bool,
    pub gap: bool,
}

#[derive(Template)]
#[template(path = "contacts_list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub q: String,
    pub search_error: Option<String>,
    pub rows: Vec<Row>,
    pub headings: Vec<Heading>,
    pub total: String,
    pub range: String,
    pub pages: Vec<PageLink>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub limit: i64,
    pub page_sizes: Vec<(i64, bool)>,
    pub sort: String,
    pub dir: String,
    pub commands: &'static [(&'static str, &'static str)],
    /// Segments for the filter drop-down (none exist yet; the place is kept).
    pub segments: Vec<(String, String)>,
    pub quick: QuickAdd,
    pub empty_hint: &'static str,
}

/// The quick-add modal's form.
pub struct QuickAdd {
    pub widgets: Vec<Widget>,
    pub owners: Vec<(i64, String, bool)>,
    pub tags: String,
    pub open: bool,
    pub general_error: Option<String>,
    pub owner_error: Option<String>,
    pub tags_error: Option<String>,
    pub duplicates: Vec<(i64, String)>,
    pub return_to: String,
}

impl ListParams {
    fn page(&self) -> i64 {
        self.page
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1)
            .min(1_000_000)
    }
    fn limit(&self) -> i64 {
        self.limit
            .as_deref()
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| PAGE_SIZES.contains(l))
            .unwrap_or(DEFAULT_PAGE_SIZE)
    }
    fn sort_column(&self) -> Option<&'static (&'static str, &'static str, &'static str)> {
        COLUMNS.iter().find(|(k, _, _)| *k == self.sort)
    }
    fn dir(&self) -> Dir {
        match self.dir.as_str() {
            "asc" => Dir::Asc,
            "desc" => Dir::Desc,
            _ if self
                .sort_column()
                .is_some_and(|c| c.0 != "last_active" && c.0 != "points") =>
            {
                Dir::Asc
            }
            _ => Dir::Desc,
        }
    }
    /// The list URL with some parameters changed.
    pub fn href(&self, page: i64, sort: &str, dir: &str, limit: i64) -> String {
        let mut parts = Vec::new();
        if !self.q.is_empty() {
            parts.push(format!("q={}", enc(&self.q)));
        }
        if !sort.is_empty() {
            parts.push(format!("sort={}", enc(sort)));
        }
        if !dir.is_empty() {
            parts.push(format!("dir={dir}"));
        }
        if limit != DEFAULT_PAGE_SIZE {
            parts.push(format!("limit={limit}"));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            "/contacts".to_owned()
        } else {
            format!("/contacts?{}", parts.join("&"))
        }
    }
}

fn row(c: &Contact, ip: Option<&str>, now: i64, highlight: bool) -> Row {
    let anonymous = c.is_anonymous();
    let name = if anonymous {
        ip.map_or_else(|| "Visitor".to_owned(), |ip| format!("Visitor {ip}"))
    } else {
        c.display_name()
    };
    Row {
        id: c.id,
        initials: display::initials(&name),
        name: display::clip(&name, 120),
        anonymous,
        email: display::clip(&c.text("email").unwrap_or_default(), 120),
        location: display::clip(&display::location(c), 120),
        points: display::thousands(c.points),
        last_active: c
            .last_active
            .map(|t| display::relative(t, now))
            .unwrap_or_default(),
        last_active_full: display::datetime_opt(c.last_active),
        tags: c
            .tags
            .iter()
            .take(6)
            .map(|t| display::clip(t, 40))
            .collect(),
        avatar: if anonymous {
            None
        } else {
            display::avatar_url(c, 64)
        },
        highlight,
    }
}

async fn owners(db: &mut Conn, selected: Option<i64>) -> WebResult<Vec<(i64, String, bool)>> {
    Ok(store::users::list(db)
        .await?
        .into_iter()
        .filter(|u| u.is_active)
        .map(|u| (u.id, u.full_name(), Some(u.id) == selected))
        .collect())
}

/// The quick-add form: fields marked short-form visible, in field order.
fn quick_widgets(fields: &FieldSet, state: &FormState) -> Vec<Widget> {
    forms::form_fields(fields)
        .filter(|f| f.is_short_visible)
        .map(|f| forms::widget(f, state))
        .collect()
}

/// Builds the list page (shared by the list and a quick add that needs to show errors).
async fn build(
    state: &SharedState,
    session: &Session,
    p: &ListParams,
    quick: Option<QuickAdd>,
) -> WebResult<(ListPage, bool)> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let now = now_ms();
    let limit = p.limit();
    let page = p.page();
    let dir = p.dir();
    let sort = p.sort_column();
    let mut search_error = None;
    let (contacts, total) = match search::parse(&p.q, &fields) {
        Err(m) => {
            search_error = Some(m);
            (Vec::new(), 0)
        }
        Ok(expr) => {
            let q = ListQuery {
                search: expr.as_ref(),
                wheres: &[],
                order_by: sort.map(|c| c.2),
                dir,
                offset: (page - 1) * limit,
                limit: Some(limit),
                me: Some(session.user.id),
            };
            // The unfiltered list and `is:anonymous` take their totals from trigger-kept
            // counts inside `list` (no counting of a million rows).
            let result = store::contact_search::list(&mut db, &fields, &q).await;
            match result {
                Ok(r) => r,
                Err(ListError::BadQuery(m)) => {
                    search_error = Some(m);
                    (Vec::new(), 0)
                }
                Err(ListError::Db(e)) => return Err(e.into()),
            }
        }
    };
    // The contact just added by quick add, first and highlighted.
    let added = p.added.as_deref().and_then(|a| a.parse::<i64>().ok());
    let mut shown: Vec<(Contact, bool)> = Vec::new();
    if let Some(id) = added
        && let Some(c) = store::contacts::load(&mut db, &fields, &[id]).await?.pop()
    {
        shown.push((c, true));
    }
    shown.extend(
        contacts
            .into_iter()
            .filter(|c| Some(c.id) != added)
            .map(|c| (c, false)),
    );
    let anonymous: Vec<i64> = shown
        .iter()
        .filter(|(c, _)| c.is_anonymous())
        .map(|(c, _)| c.id)
        .collect();
    let ips = store::contacts::ips_of(&mut db, &anonymous).await?;
    let latest_ip = |id: i64| {
        ips.get(&id)
            .and_then(|v| v.iter().max_by_key(|r| r.last_seen))
            .map(|r| r.ip.clone())
    };
    let rows: Vec<Row> = shown
        .iter()
        .map(|(c, h)| row(c, latest_ip(c.id).as_deref(), now, *h))
        .collect();

    let current_sort = sort.map_or("last_active", |c| c.0);
    let current_dir = if dir == Dir::Asc { "asc" } else { "desc" };
    let headings = COLUMNS
        .iter()
        .filter(|(k, _, _)| *k != "id")
        .map(|(key, label, _)| {
            let sorted = if *key == current_sort {
                current_dir
            } else {
                ""
            };
            let next_dir = match (sorted, *key) {
                ("asc", _) => "desc",
                ("desc", _) => "asc",
                (_, "last_active" | "points") => "desc",
                _ => "asc",
            };
            Heading {
                label,
                href: p.href(1, key, next_dir, limit),
                sorted,
                key,
            }
        })
        .collect();
    let pages_total = ((total + limit - 1) / limit).max(1);
    let sort_key = if p.sort.is_empty() { "" } else { current_sort };
    let dir_key = if p.dir.is_empty() { "" } else { current_dir };
    let link = |n: i64| p.href(n, sort_key, dir_key, limit);
    let mut pages = Vec::new();
    let mut last = 0;
    for n in 1..=pages_total {
        let near = (n - page).abs() <= 2 || n == 1 || n == pages_total;
        if !near {
            continue;
        }
        if n - last > 1 {
            pages.push(PageLink {
                label: "…".into(),
                href: String::new(),
                current: false,
                gap: true,
            });
        }
        pages.push(PageLink {
            label: display::thousands(n),
            href: link(n),
            current: n == page,
            gap: false,
        });
        last = n;
    }
    let first = if total == 0 {
        0
    } else {
        (page - 1) * limit + 1
    };
    let last_shown = (page * limit).min(total);
    let quick = match quick {
        Some(q) => q,
        None => QuickAdd {
            widgets: quick_widgets(&fields, &FormState::default()),
            owners: owners(&mut db, Some(session.user.id)).await?,
            tags: String::new(),
            open: false,
            general_error: None,
            owner_error: None,
            tags_error: None,
            duplicates: Vec::new(),
            return_to: p.href(page, sort_key, dir_key, limit),
        },
    };
    let bad = search_error.is_some();
    Ok((
        ListPage {
            chrome: Chrome::new(session, "contacts"),
            q: p.q.clone(),
            search_error,
            rows,
            headings,
            total: display::thousands(total),
            range: format!(
                "{}–{} of {}",
                display::thousands(first),
                display::thousands(last_shown),
                display::thousands(total)
            ),
            pages,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages_total).then(|| link(page + 1)),
            limit,
            page_sizes: PAGE_SIZES.iter().map(|s| (*s, *s == limit)).collect(),
            sort: sort_key.to_owned(),
            dir: dir_key.to_owned(),
            commands: search::COMMANDS,
            segments: Vec::new(),
            quick,
            empty_hint: if p.q.is_empty() {
                "No contacts yet. Add one with Quick add or New contact."
            } else {
                "No contact matches this search."
            },
        },
        bad,
    ))
}

pub async fn list_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(p): Query<ListParams>,
) -> WebResult<Response> {
    let (page, bad) = build(&state, &session, &p, None).await?;
    Ok(render_status(
        if bad {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &page,
    ))
}

/// Parses `?q=…&sort=…` from the local list URL the quick-add form came from.
fn params_of(return_to: &str) -> ListParams {
    let query = return_to
        .strip_prefix("/contacts")
        .and_then(|r| r.strip_prefix('?'))
        .unwrap_or("");
    serde_urlencoded::from_str(query).unwrap_or_default()
}

pub async fn quick_add(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = FormData(form);
    let return_to = session::safe_next(&form.str("_return"))
        .filter(|r| r.starts_with("/contacts"))
        .unwrap_or_else(|| "/contacts".to_owned());
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let operator = state.operator(&mut db).await?;
    let mut fs = FormState::from_form(&form);
    let mut input = forms::contact_input(&fields, &form, false);
    // Only the quick form's fields are accepted here.
    input
        .values
        .retain(|(alias, _)| fields.get(alias).is_some_and(|f| f.is_short_visible));
    let mut problems = Problems::default();
    match forms::optional_id(&form.str("_owner")) {
        Ok(o) => input.owner = Some(o),
        Err(m) => problems.add("_owner", m),
    }
    match forms::tag_changes(&form.str("_tags"), &[]) {
        Ok(t) => input.tags = t,
        Err(m) => problems.add("_tags", m),
    }
    let mut general_error = None;
    let mut duplicates = Vec::new();
    let mut saved_id = None;
    if let Err(AppError::Validation { details, .. }) = problems.into_result() {
        fs.add_errors(&details);
    } else if input
        .values
        .iter()
        .all(|(_, v)| crate::contacts::values::is_blank(v))
    {
        general_error = Some("Fill in at least one field.".to_owned());
    } else {
        let probe = forms::identifier_values(&fields, &input);
        let found = service::find_duplicates(&mut db, &fields, operator, &probe, None).await?;
        if !found.is_empty() && !form.checked("_confirm") {
            duplicates = found
                .iter()
                .take(5)
                .map(|c| (c.id, display::clip(&c.display_name(), 80)))
                .collect();
        } else {
            let ctx = SaveContext {
                fields: fields.clone(),
                operator,
                actor: Some(session.user.id),
                source: Source::Admin,
                now: now_ms(),
            };
            match service::save(&state, &ctx, vec![(Target::Create, input)])
                .await?
                .remove(0)
            {
                Ok(saved) => saved_id = Some(saved.id),
                Err(AppError::Validation { details, .. }) => fs.add_errors(&details),
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(id) = saved_id {
        let name = store::contacts::load(&mut db, &fields, &[id])
            .await?
            .pop()
            .map(|c| c.display_name())
            .unwrap_or_default();
        session::flash(
            &state,
            &session,
            "success",
            &format!("{} was added.", display::clip(&name, 80)),
        )
        .await?;
        let sep = if return_to.contains('?') { '&' } else { '?' };
        return Ok(Redirect::to(&format!("{return_to}{sep}added={id}")).into_response());
    }
    let owner_error = fs.error("_owner").or_else(|| fs.error("owner"));
    let tags_error = fs.error("_tags");
    let selected_owner = forms::optional_id(&form.str("_owner")).ok().flatten();
    let quick = QuickAdd {
        widgets: quick_widgets(&fields, &fs),
        owners: owners(&mut db, selected_owner).await?,
        tags: form.str("_tags"),
        open: true,
        general_error,
        owner_error,
        tags_error,
        duplicates,
        return_to: return_to.clone(),
    };
    drop(db);
    let (page, _) = build(&state, &session, &params_of(&return_to), Some(quick)).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
