//! `/contacts/{id}`: the contact page. Header (name or IP, avatar, owner, points, stage,
//! tags, last active), the fields with values, the six-month engagement chart, the
//! event history (paged, filtered by text and by event type, each event expandable),
//! notes (add, edit, delete), and the actions menu. Also deleting the contact.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};

use super::chart::{self, Chart};
use super::display::{self, enc};
use super::error::{WebError, WebResult};
use super::forms::{self, FormData};
use super::layout::{Chrome, render_status};
use super::session::{self, Session};
use super::upload;
use crate::contacts::fields::{FieldSet, Storage};
use crate::contacts::notes::{self, NoteInput};
use crate::contacts::{Contact, service};
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::events::EventFilter;
use crate::store::{self, Conn};
use crate::time::now_ms;

pub const EVENTS_PER_PAGE: i64 = 25;
/// Longest value shown in an event's details (the rest is cut, visibly).
const MAX_DETAIL: usize = 2000;

pub struct Info {
    pub label: String,
    pub value: String,
    pub href: Option<String>,
}

pub struct InfoGroup {
    pub label: String,
    pub items: Vec<Info>,
}

pub struct EventView {
    pub id: i64,
    pub label: String,
    pub group: String,
    pub summary: String,
    pub when: String,
    pub when_full: String,
    pub rows: Vec<(String, String)>,
    pub link: Option<String>,
    pub raw: bool,
    pub source: String,
}

pub struct TypeOption {
    pub key: String,
    pub label: String,
    pub count: i64,
    pub included: bool,
    pub excluded: bool,
}

pub struct NoteView {
    pub id: i64,
    pub note_type: String,
    pub type_label: &'static str,
    pub text: String,
    pub when: String,
    pub date_time_input: String,
    pub author: String,
    /// The note whose edit form came back with an error.
    pub editing: bool,
}

/// A device the contact was tracked on.
pub struct DeviceView {
    pub kind: String,
    pub os: String,
    pub browser: String,
    pub last_seen: String,
    pub last_seen_full: String,
    pub first_seen: String,
}

/// A company the contact belongs to.
pub struct CompanyView {
    pub id: i64,
    pub name: String,
    pub primary: bool,
}

/// A tab filled by something else (plugins, geolocation); shown only when it has rows.
pub struct ExtraTab {
    pub key: String,
    pub label: String,
    pub rows: Vec<Info>,
}

#[derive(Default)]
pub struct NoteForm {
    pub note_type: String,
    pub text: String,
    pub date_time: String,
    pub error: Option<String>,
    /// The note being edited when the error is about an edit.
    pub editing: Option<i64>,
}

#[derive(Template)]
#[template(path = "contact_page.html")]
struct ContactPage {
    chrome: Chrome,
    id: i64,
    title: String,
    name: String,
    anonymous: bool,
    initials: String,
    avatar: Option<String>,
    email: String,
    position: String,
    owner: String,
    points: String,
    stage: String,
    tags: Vec<String>,
    last_active: String,
    last_active_full: String,
    date_added: String,
    ips: Vec<String>,
    about: Vec<InfoGroup>,
    chart: Chart,
    events: Vec<EventView>,
    events_total: String,
    events_range: String,
    events_prev: Option<String>,
    events_next: Option<String>,
    type_options: Vec<TypeOption>,
    filter_text: String,
    filtered: bool,
    notes: Vec<NoteView>,
    note_form: NoteForm,
    note_types: [(&'static str, &'static str); 4],
    tab: String,
    social: Vec<Info>,
    extra_tabs: Vec<ExtraTab>,
    devices: Vec<DeviceView>,
    companies: Vec<CompanyView>,
}

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn note_type_label(t: &str) -> &'static str {
    match t {
        "email" => "Email",
        "call" => "Call",
        "meeting" => "Meeting",
        _ => "General",
    }
}

const NOTE_TYPES: [(&str, &str); 4] = [
    ("general", "General"),
    ("email", "Email"),
    ("call", "Call"),
    ("meeting", "Meeting"),
];

/// The history's query: `eq` text, `inc`/`exc` event types, `ep` page, `tab`.
#[derive(Default)]
struct HistoryParams {
    text: String,
    include: Vec<String>,
    exclude: Vec<String>,
    page: i64,
    tab: String,
}

impl HistoryParams {
    fn parse(query: Option<&str>) -> HistoryParams {
        let pairs: Vec<(String, String)> = query
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let mut p = HistoryParams {
            page: 1,
            ..HistoryParams::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "eq" => p.text = v.chars().take(200).collect(),
                "inc" if !v.is_empty() && p.include.len() < 100 => p.include.push(v),
                "exc" if !v.is_empty() && p.exclude.len() < 100 => p.exclude.push(v),
                "ep" => {
                    p.page = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .unwrap_or(1)
                        .min(100_000)
                }
                "tab" => p.tab = v,
                _ => {}
            }
        }
        p
    }

    fn href(&self, id: i64, page: i64) -> String {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(format!("eq={}", enc(&self.text)));
        }
        parts.extend(self.include.iter().map(|t| format!("inc={}", enc(t))));
        parts.extend(self.exclude.iter().map(|t| format!("exc={}", enc(t))));
        if page > 1 {
            parts.push(format!("ep={page}"));
        }
        let q = if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        };
        format!("/contacts/{id}{q}#history")
    }
}

fn about_groups(fields: &FieldSet, c: &Contact) -> Vec<InfoGroup> {
    forms::group_order(fields)
        .into_iter()
        .filter_map(|g| {
            let items: Vec<Info> = forms::form_fields(fields)
                .filter(|f| f.group == g && f.storage() == Storage::Column)
                .filter_map(|f| {
                    let text = display::field_value(f, &c.field_value(f));
                    if text.is_empty() {
                        return None;
                    }
                    let href = match f.field_type {
                        crate::contacts::fields::FieldType::Url if display::safe_href(&text) => {
                            Some(text.clone())
                        }
                        crate::contacts::fields::FieldType::Email => Some(format!("mailto:{text}")),
                        _ => None,
                    };
                    Some(Info {
                        label: f.label.clone(),
                        value: display::clip(&text, 500),
                        href,
                    })
                })
                .collect();
            (!items.is_empty()).then(|| InfoGroup {
                label: forms::group_label(&g),
                items,
            })
        })
        .collect()
}

async fn build(
    state: &SharedState,
    session: &Session,
    id: i64,
    query: Option<&str>,
    note_form: NoteForm,
) -> WebResult<ContactPage> {
    let now = now_ms();
    let hp = HistoryParams::parse(query);
    let filter = EventFilter {
        include: hp.include.clone(),
        exclude: hp.exclude.clone(),
        search: Some(hp.text.clone()).filter(|s| !s.is_empty()),
        from: None,
        to: None,
    };
    let (bounds, labels) = chart::month_bounds(now);

    // The independent reads run at once, each on its own pooled connection: the page
    // costs the slowest of them, not their sum.
    let contact_part = async {
        let mut db: Conn = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        let c = store::contacts::load(&mut db, &fields, &[id])
            .await?
            .pop()
            .ok_or(WebError::NotFound)?;
        let (note_rows, _) = store::notes::list(
            &mut db,
            &store::notes::of_contact(
                store::entity_list::EntityQuery {
                    order_by: ("date_added", true),
                    limit: 200,
                    ..Default::default()
                },
                id,
            ),
        )
        .await?;
        let mut user_ids: Vec<i64> = c.owner_id.into_iter().collect();
        user_ids.extend(note_rows.iter().filter_map(|n| n.created_by));
        let users: HashMap<i64, String> = store::users::by_ids(&mut db, &user_ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u.full_name()))
            .collect();
        let stage = match c.stage_id {
            Some(s) => store::stages::by_ids(&mut db, &[s])
                .await?
                .pop()
                .map(|s| s.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut ips: Vec<store::contacts::IpRow> = store::contacts::ips_of(&mut db, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        ips.sort_by_key(|r| std::cmp::Reverse(r.last_seen));
        Ok::<_, WebError>((fields, c, note_rows, users, stage, ips))
    };
    // Devices and companies (small per contact).
    let links_part = async {
        let mut db = state.store.read().await?;
        let devices = store::tracking::devices_of(&mut db, id).await?;
        let companies = store::companies::of_contact(&mut db, id).await?;
        Ok::<_, WebError>((devices, companies))
    };
    // The chart: one aggregate query per series over the last six months.
    let chart_part = async {
        let mut db = state.store.read().await?;
        Ok::<_, WebError>(store::events::monthly_totals(&mut db, id, &bounds).await?)
    };
    let counts_part = async {
        let mut db = state.store.read().await?;
        Ok::<_, WebError>(store::events::type_counts(&mut db, id).await?)
    };
    // The history's page; its total is counted only when a text search makes the type
    // counts useless for it.
    let history_part = async {
        let mut db = state.store.read().await?;
        let rows = store::events::rows(
            &mut db,
            id,
            &filter,
            (hp.page - 1) * EVENTS_PER_PAGE,
            EVENTS_PER_PAGE,
            &store::events::EventOrder::NewestFirst,
        )
        .await?;
        let total = match filter.search {
            Some(_) => Some(store::events::count(&mut db, id, &filter).await?),
            None => None,
        };
        Ok::<_, WebError>((rows, total))
    };
    let (
        (fields, c, note_rows, users, stage, ips),
        totals,
        counts,
        (events, counted),
        (devices, companies),
    ) = tokio::try_join!(
        contact_part,
        chart_part,
        counts_part,
        history_part,
        links_part
    )?;
    let chart = chart::build(&totals, &labels);
    let total = counted.unwrap_or_else(|| {
        counts
            .iter()
            .filter(|(k, _)| {
                (filter.include.is_empty() || filter.include.contains(k))
                    && !filter.exclude.contains(k)
            })
            .map(|(_, n)| n)
            .sum()
    });
    let catalogue = &state.events;
    let mut type_options: Vec<TypeOption> = catalogue
        .types()
        .iter()
        .map(|t| TypeOption {
            key: t.key.clone(),
            label: format!("{} · {}", t.group, t.label),
            count: counts.get(&t.key).copied().unwrap_or(0),
            included: hp.include.contains(&t.key),
            excluded: hp.exclude.contains(&t.key),
        })
        .collect();
    let mut unknown: Vec<&String> = counts
        .keys()
        .filter(|k| catalogue.find(k).is_none())
        .collect();
    unknown.sort();
    for k in unknown {
        type_options.push(TypeOption {
            key: k.clone(),
            label: format!("Other · {}", display::clip(k, 60)),
            count: counts[k],
            included: hp.include.contains(k),
            excluded: hp.exclude.contains(k),
        });
    }
    let events: Vec<EventView> = events
        .iter()
        .map(|e| {
            let r = catalogue.render(e);
            EventView {
                id: e.id,
                label: display::clip(&catalogue.label(&e.event_type), 80),
                group: catalogue
                    .find(&e.event_type)
                    .map_or_else(|| "Other".to_owned(), |t| t.group.clone()),
                summary: display::clip(&r.summary, 300),
                when: display::relative(e.occurred_at, now),
                when_full: display::datetime(e.occurred_at),
                rows: r
                    .rows
                    .iter()
                    .map(|(k, v)| (display::clip(k, 100), display::clip(v, MAX_DETAIL)))
                    .collect(),
                link: r.link.filter(|l| display::safe_href(l)),
                raw: r.raw,
                source: e.source.clone().unwrap_or_default(),
            }
        })
        .collect();
    let first = if total == 0 {
        0
    } else {
        (hp.page - 1) * EVENTS_PER_PAGE + 1
    };
    let last = (hp.page * EVENTS_PER_PAGE).min(total);
    let max_page = ((total + EVENTS_PER_PAGE - 1) / EVENTS_PER_PAGE).max(1);

    let notes_view = note_rows
        .iter()
        .map(|n| NoteView {
            id: n.id,
            note_type: n.note_type.clone(),
            type_label: note_type_label(&n.note_type),
            text: n.text.clone(),
            when: display::datetime(n.date_time.unwrap_or(n.date_added)),
            date_time_input: n
                .date_time
                .map(|t| display::datetime(t).replace(' ', "T"))
                .unwrap_or_default(),
            author: n
                .created_by
                .and_then(|u| users.get(&u).cloned())
                .unwrap_or_default(),
            editing: note_form.editing == Some(n.id),
        })
        .collect();

    let name = if c.is_anonymous() {
        ips.first()
            .map_or_else(|| "Visitor".to_owned(), |ip| ip.ip.clone())
    } else {
        c.display_name()
    };
    let social: Vec<Info> = forms::form_fields(&fields)
        .filter(|f| f.group == "social")
        .filter_map(|f| {
            let v = display::field_value(f, &c.field_value(f));
            (!v.is_empty()).then(|| Info {
                label: f.label.clone(),
                href: display::safe_href(&v).then(|| v.clone()),
                value: display::clip(&v, 300),
            })
        })
        .collect();
    let tab = match hp.tab.as_str() {
        "notes" | "social" => hp.tab.clone(),
        _ if note_form.error.is_some() => "notes".to_owned(),
        _ => "history".to_owned(),
    };
    Ok(ContactPage {
        chrome: Chrome::new(session, "contacts"),
        id,
        title: display::plain(&name, 80),
        name: display::clip(&name, 200),
        anonymous: c.is_anonymous(),
        initials: display::initials(&name),
        avatar: display::avatar_url(&c, 160),
        email: display::clip(&c.text("email").unwrap_or_default(), 200),
        position: display::clip(
            &[c.text("position"), c.text("company")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · "),
            200,
        ),
        owner: c
            .owner_id
            .and_then(|o| users.get(&o).cloned())
            .unwrap_or_default(),
        points: display::thousands(c.points),
        stage,
        tags: c.tags.iter().map(|t| display::clip(t, 60)).collect(),
        last_active: c
            .last_active
            .map(|t| display::relative(t, now))
            .unwrap_or_else(|| "never".to_owned()),
        last_active_full: display::datetime_opt(c.last_active),
        date_added: display::datetime(c.date_added),
        ips: ips.iter().take(10).map(|r| r.ip.clone()).collect(),
        about: about_groups(&fields, &c),
        chart,
        events,
        events_total: display::thousands(total),
        events_range: format!(
            "{}–{} of {}",
            display::thousands(first),
            display::thousands(last),
            display::thousands(total)
        ),
        events_prev: (hp.page > 1).then(|| hp.href(id, hp.page - 1)),
        events_next: (hp.page < max_page).then(|| hp.href(id, hp.page + 1)),
        type_options,
        filter_text: hp.text.clone(),
        filtered: !hp.text.is_empty() || !hp.include.is_empty() || !hp.exclude.is_empty(),
        notes: notes_view,
        note_form,
        note_types: NOTE_TYPES,
        tab,
        social,
        extra_tabs: Vec::new(),
        devices: devices
            .iter()
            .take(20)
            .map(|d| DeviceView {
                kind: display::clip(
                    &capitalised(if d.device_type.is_empty() {
                        "unknown"
                    } else {
                        &d.device_type
                    }),
                    40,
                ),
                os: display::clip(&d.os, 60),
                browser: display::clip(&d.browser, 60),
                last_seen: display::relative(d.last_seen, now),
                last_seen_full: display::datetime(d.last_seen),
                first_seen: display::datetime(d.date_added),
            })
            .collect(),
        companies: companies
            .iter()
            .map(|(co, _, primary)| CompanyView {
                id: co.id,
                name: display::clip(&co.name(), 120),
                primary: *primary,
            })
            .collect(),
    })
}

pub async fn page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    match build(
        &state,
        &session,
        id,
        query.as_deref(),
        NoteForm {
            note_type: "general".into(),
            ..NoteForm::default()
        },
    )
    .await
    {
        Ok(p) => Ok(render_status(StatusCode::OK, &p)),
        // A contact merged into another: its old address lands on the one it went into.
        Err(WebError::NotFound) => {
            let winner = {
                let mut db = state.store.read().await?;
                match store::merge::current_id(&mut db, id).await? {
                    Some(w) if w != id => w,
                    _ => return Err(WebError::NotFound),
                }
            };
            session::flash(
                &state,
                &session,
                "info",
                &format!("Contact #{id} was merged into this contact."),
            )
            .await?;
            let q = query
                .filter(|q| !q.is_empty())
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            Ok(Redirect::to(&format!("/contacts/{winner}{q}")).into_response())
        }
        Err(e) => Err(e),
    }
}

pub async fn delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let name = {
        let mut db = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        let c = store::contacts::load(&mut db, &fields, &[id])
            .await?
            .pop()
            .ok_or(WebError::NotFound)?;
        c.display_name()
    };
    if service::delete(&state.store, &[id]).await? == 0 {
        return Err(WebError::NotFound);
    }
    upload::remove(&state, id).await;
    session::flash(
        &state,
        &session,
        "success",
        &format!("{} was deleted.", display::clip(&name, 80)),
    )
    .await?;
    Ok(Redirect::to("/contacts").into_response())
}

/// Reads a note form: type, text, and the date-time for calls and meetings.
fn note_input(form: &FormData, contact_id: i64) -> Result<NoteInput, Box<NoteForm>> {
    let raw_type = form.str("type");
    let text = form.str("text");
    let date_time = form.str("date_time");
    let keep = |error: String| {
        Box::new(NoteForm {
            note_type: raw_type.clone(),
            text: text.clone(),
            date_time: date_time.clone(),
            error: Some(error.clone()),
            editing: None,
        })
    };
    let note_type = notes::parse_type(&raw_type).map_err(|_| keep("Choose a note type.".into()))?;
    if text.trim().is_empty() {
        return Err(keep("Write the note's text.".into()));
    }
    if text.chars().count() > notes::MAX_TEXT {
        return Err(keep(format!(
            "A note can have at most {} characters.",
            notes::MAX_TEXT
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(keep("The text must not contain control characters.".into()));
    }
    let dt = if matches!(note_type, "call" | "meeting") && !date_time.trim().is_empty() {
        match crate::time::parse_datetime(&date_time) {
            Some(t) => Some(t.timestamp_millis()),
            None => return Err(keep("The date and time is not valid.".into())),
        }
    } else {
        None
    };
    Ok(NoteInput {
        contact_id: Some(contact_id),
        text: Some(text),
        note_type: Some(note_type),
        date_time: Some(dt),
    })
}

async fn note_error(
    state: &SharedState,
    session: &Session,
    id: i64,
    form: NoteForm,
) -> WebResult<Response> {
    let p = build(state, session, id, Some("tab=notes"), form).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

pub async fn note_create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let form = FormData(form);
    let input = match note_input(&form, id) {
        Ok(i) => i,
        Err(nf) => return note_error(&state, &session, id, *nf).await,
    };
    match notes::create(&state.store, &input, Some(session.user.id)).await {
        Ok(_) => {}
        Err(AppError::NotFound(_)) => return Err(WebError::NotFound),
        Err(e) => return Err(e.into()),
    }
    session::flash(&state, &session, "success", "Note added.").await?;
    Ok(Redirect::to(&format!("/contacts/{id}?tab=notes#notes")).into_response())
}

/// The note `note` of contact `id`, or a 404.
async fn owned_note(state: &SharedState, id: i64, note: &str) -> WebResult<i64> {
    let note = id_of(note)?;
    let mut db = state.store.read().await?;
    match store::notes::get(&mut db, note).await? {
        Some(n) if n.contact_id == id => Ok(note),
        _ => Err(WebError::NotFound),
    }
}

pub async fn note_update(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path((id, note)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let note = owned_note(&state, id, &note).await?;
    let form = FormData(form);
    let mut input = match note_input(&form, id) {
        Ok(i) => i,
        Err(mut nf) => {
            nf.editing = Some(note);
            return note_error(&state, &session, id, *nf).await;
        }
    };
    input.contact_id = None;
    notes::update(&state.store, note, &input).await?;
    session::flash(&state, &session, "success", "Note saved.").await?;
    Ok(Redirect::to(&format!("/contacts/{id}?tab=notes#notes")).into_response())
}

pub async fn note_delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path((id, note)): Path<(String, String)>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let note = owned_note(&state, id, &note).await?;
    notes::delete(&state.store, note).await?;
    session::flash(&state, &session, "success", "Note deleted.").await?;
    Ok(Redirect::to(&format!("/contacts/{id}?tab=notes#notes")).into_response())
}
