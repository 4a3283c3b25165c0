//! `/forms…` (Mautic's Components → Forms): the list with submission counts, create and
//! edit (name, fields mapped to contact fields, "record UTM tags", published), delete,
//! and per form its ready-to-paste HTML embed and its recent submissions. Writes go
//! through `forms::create` / `forms::update`, the same rules as the API.

use std::collections::HashMap;
use std::fmt::Write as _;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::display::{self, enc};
use super::error::{WebError, WebResult};
use super::forms::{FormData, Opt};
use super::layout::{Chrome, render, render_status};
use super::session::{self, Session};
use crate::contacts::fields::{FieldSet, FieldType, Storage, alias_from_label};
use crate::error::AppError;
use crate::forms::{self as form_service, Form as WebForm};
use crate::state::SharedState;
use crate::store;
use crate::time::now_ms;

/// Submissions shown per page of a form's view.
const SUBMISSIONS_PER_PAGE: i64 = 25;
/// Rows of the field editor.
const MAX_FIELD_ROWS: usize = 200;

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

/// Escapes text for HTML text and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The ready-to-paste HTML of a form: a plain `<form>` posting to
/// `<base>/form/submit?formId=N` with Mautic's `mauticform[…]` names, the form id and the
/// page to return to. Every text in it is escaped.
pub fn embed_html(form: &WebForm, fields: &FieldSet, base: &str, return_url: &str) -> String {
    let slug = match alias_from_label(&form.name) {
        s if s.is_empty() => format!("form_{}", form.id),
        s => s,
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<form method=\"post\" action=\"{}/form/submit?formId={}\" accept-charset=\"UTF-8\" id=\"mauticform_{slug}\" data-mautic-form=\"{slug}\">",
        esc(base),
        form.id
    );
    let _ = writeln!(
        o,
        "  <input type=\"hidden\" name=\"mauticform[formId]\" value=\"{}\">",
        form.id
    );
    let _ = writeln!(
        o,
        "  <input type=\"hidden\" name=\"mauticform[formName]\" value=\"{slug}\">"
    );
    let _ = writeln!(
        o,
        "  <input type=\"hidden\" name=\"mauticform[return]\" value=\"{}\">",
        esc(return_url)
    );
    for f in &form.fields {
        let def = f.contact_field.as_deref().and_then(|a| fields.get(a));
        let id = format!("mauticform_input_{slug}_{}", f.alias);
        let name = format!("mauticform[{}]", f.alias);
        let required = if def.is_some_and(|d| d.is_required) {
            " required"
        } else {
            ""
        };
        let label = esc(&f.label);
        let _ = writeln!(o, "  <div class=\"mauticform-row\">");
        match def.map(|d| d.field_type) {
            Some(FieldType::Boolean) => {
                let _ = writeln!(
                    o,
                    "    <label><input type=\"checkbox\" id=\"{id}\" name=\"{name}\" value=\"1\"> {label}</label>"
                );
            }
            Some(t @ (FieldType::Select | FieldType::Lookup | FieldType::Multiselect))
                if def.is_some_and(|d| !d.options().is_empty()) =>
            {
                let multiple = t == FieldType::Multiselect;
                let _ = writeln!(o, "    <label for=\"{id}\">{label}</label>");
                let (name, extra) = if multiple {
                    (format!("{name}[]"), " multiple")
                } else {
                    (name.clone(), "")
                };
                let _ = writeln!(
                    o,
                    "    <select id=\"{id}\" name=\"{name}\"{extra}{required}>"
                );
                if !multiple {
                    let _ = writeln!(o, "      <option value=\"\"></option>");
                }
                for (l, v) in def.map(|d| d.options()).unwrap_or_default() {
                    let _ = writeln!(
                        o,
                        "      <option value=\"{}\">{}</option>",
                        esc(&v),
                        esc(&l)
                    );
                }
                let _ = writeln!(o, "    </select>");
            }
            Some(FieldType::Textarea) => {
                let _ = writeln!(o, "    <label for=\"{id}\">{label}</label>");
                let _ = writeln!(
                    o,
                    "    <textarea id=\"{id}\" name=\"{name}\" rows=\"4\"{required}></textarea>"
                );
            }
            other => {
                let (input_type, step) = match other {
                    Some(FieldType::Email) => ("email", ""),
                    Some(FieldType::Tel) => ("tel", ""),
                    Some(FieldType::Url) => ("url", ""),
                    Some(FieldType::Number) => ("number", " step=\"any\""),
                    Some(FieldType::Date) => ("date", ""),
                    _ => ("text", ""),
                };
                let _ = writeln!(o, "    <label for=\"{id}\">{label}</label>");
                let _ = writeln!(
                    o,
                    "    <input type=\"{input_type}\" id=\"{id}\" name=\"{name}\" value=\"\"{step}{required}>"
                );
            }
        }
        let _ = writeln!(o, "  </div>");
    }
    let _ = writeln!(
        o,
        "  <button type=\"submit\" name=\"mauticform[submit]\" value=\"1\">Submit</button>"
    );
    o.push_str("</form>");
    o
}

/// Contact fields a form field may fill: published columns (not points or last active).
fn mappable(fields: &FieldSet) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|f| f.is_published && f.storage() == Storage::Column)
        .map(|f| {
            (
                f.alias.clone(),
                format!("{} ({})", display::clip(&f.label, 60), f.alias),
            )
        })
        .collect()
}

fn options_for(all: &[(String, String)], fields: &FieldSet, selected: &str) -> Vec<Opt> {
    let mut out: Vec<Opt> = all
        .iter()
        .map(|(a, l)| Opt {
            value: a.clone(),
            label: l.clone(),
            selected: a == selected,
        })
        .collect();
    // A mapping to a field that is no longer offered (unpublished) stays visible.
    if !selected.is_empty() && !all.iter().any(|(a, _)| a == selected) {
        let label = fields.get(selected).map_or_else(
            || format!("{selected} (missing)"),
            |f| format!("{} ({selected}, unpublished)", f.label),
        );
        out.push(Opt {
            value: selected.to_owned(),
            label,
            selected: true,
        });
    }
    out
}

// ---------------------------------------------------------------- list

pub struct FormListRow {
    pub id: i64,
    pub name: String,
    pub fields: usize,
    pub published: bool,
    pub record_utm: bool,
    pub submissions: String,
    pub last: String,
    pub last_full: String,
}

#[derive(Template)]
#[template(path = "forms_list.html")]
struct FormsList {
    chrome: Chrome,
    rows: Vec<FormListRow>,
    total: String,
}

pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    let mut db = state.store.read().await?;
    let (rows, total) = store::forms::list(&mut db, 0, 1000).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let stats = store::forms::submission_stats(&mut db, &ids).await?;
    let now = now_ms();
    let mut rows: Vec<FormListRow> = rows
        .into_iter()
        .map(|r| {
            let f = WebForm::from_row(r);
            let (n, last) = stats
                .get(&f.id)
                .copied()
                .map_or((0, None), |(n, l)| (n, Some(l)));
            FormListRow {
                id: f.id,
                name: display::clip(&f.name, 120),
                fields: f.fields.len(),
                published: f.is_published,
                record_utm: f.record_utm,
                submissions: display::thousands(n),
                last: last.map(|t| display::relative(t, now)).unwrap_or_default(),
                last_full: display::datetime_opt(last),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Ok(render(&FormsList {
        chrome: Chrome::new(&session, "forms"),
        rows,
        total: display::thousands(total),
    }))
}

// ---------------------------------------------------------------- create and edit

pub struct FieldRow {
    pub label: String,
    pub alias: String,
    pub options: Vec<Opt>,
}

#[derive(Template)]
#[template(path = "form_edit.html")]
struct FormEditPage {
    chrome: Chrome,
    title: String,
    action: String,
    cancel: String,
    name: String,
    published: bool,
    record_utm: bool,
    rows: Vec<FieldRow>,
    blank: Vec<Opt>,
    name_error: Option<String>,
    errors: Vec<String>,
}

/// The editor's rows as submitted: (label, alias, contact field), blank rows dropped.
fn submitted_rows(form: &FormData) -> Vec<(String, String, String)> {
    let (labels, aliases, maps) = (
        form.all("field_label"),
        form.all("field_alias"),
        form.all("field_map"),
    );
    let n = labels
        .len()
        .max(aliases.len())
        .max(maps.len())
        .min(MAX_FIELD_ROWS);
    (0..n)
        .map(|i| {
            let get = |v: &Vec<&str>| v.get(i).map(|s| s.trim().to_owned()).unwrap_or_default();
            (get(&labels), get(&aliases), get(&maps))
        })
        .filter(|(l, a, m)| !(l.is_empty() && a.is_empty() && m.is_empty()))
        .collect()
}

/// The service's body (`forms::parse`) from the editor.
fn body_of(form: &FormData) -> Json {
    let fields: Vec<Json> = submitted_rows(form)
        .into_iter()
        .map(|(label, alias, map)| {
            let mut f = serde_json::Map::new();
            f.insert("label".into(), json!(label));
            if !alias.is_empty() {
                f.insert("alias".into(), json!(alias));
            }
            if !map.is_empty() {
                f.insert("contactField".into(), json!(map));
            }
            Json::Object(f)
        })
        .collect();
    json!({
        "name": form.str("name"),
        "fields": fields,
        "recordUtm": form.checked("record_utm"),
        "isPublished": form.checked("is_published"),
    })
}

fn edit_page(
    session: &Session,
    fields: &FieldSet,
    existing: Option<&WebForm>,
    submitted: Option<&FormData>,
    details: Option<&Json>,
) -> FormEditPage {
    let all = mappable(fields);
    let mut rows: Vec<FieldRow> = match (submitted, existing) {
        (Some(form), _) => submitted_rows(form)
            .into_iter()
            .map(|(label, alias, map)| FieldRow {
                options: options_for(&all, fields, &map),
                label,
                alias,
            })
            .collect(),
        (None, Some(f)) => f
            .fields
            .iter()
            .map(|ff| FieldRow {
                label: ff.label.clone(),
                alias: ff.alias.clone(),
                options: options_for(&all, fields, ff.contact_field.as_deref().unwrap_or("")),
            })
            .collect(),
        (None, None) => vec![
            FieldRow {
                label: "Email".into(),
                alias: "email".into(),
                options: options_for(&all, fields, "email"),
            },
            FieldRow {
                label: "First name".into(),
                alias: "firstname".into(),
                options: options_for(&all, fields, "firstname"),
            },
        ],
    };
    // Room for more without script (script adds rows on demand).
    let spare = if rows.is_empty() { 3 } else { 1 };
    for _ in 0..spare {
        rows.push(FieldRow {
            label: String::new(),
            alias: String::new(),
            options: options_for(&all, fields, ""),
        });
    }
    let messages = |key: &str| -> Vec<String> {
        details
            .and_then(|d| d.get(key))
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(|m| display::clip(m, 300))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut errors: Vec<String> = Vec::new();
    if let Some(Json::Object(m)) = details {
        for (k, _) in m.iter().filter(|(k, _)| k.as_str() != "name") {
            errors.extend(messages(k).into_iter().map(|msg| {
                if k == "fields" {
                    msg
                } else {
                    format!("{k}: {msg}")
                }
            }));
        }
    }
    FormEditPage {
        chrome: Chrome::new(session, "forms"),
        title: match existing {
            Some(f) => format!("Edit form {}", display::plain(&f.name, 80)),
            None => "New form".to_owned(),
        },
        action: existing.map_or_else(
            || "/forms/new".to_owned(),
            |f| format!("/forms/{}/edit", f.id),
        ),
        cancel: existing.map_or_else(|| "/forms".to_owned(), |f| format!("/forms/{}", f.id)),
        name: match (submitted, existing) {
            (Some(f), _) => f.str("name"),
            (None, Some(f)) => f.name.clone(),
            (None, None) => String::new(),
        },
        published: match (submitted, existing) {
            (Some(f), _) => f.checked("is_published"),
            (None, Some(f)) => f.is_published,
            (None, None) => true,
        },
        record_utm: match (submitted, existing) {
            (Some(f), _) => f.checked("record_utm"),
            (None, Some(f)) => f.record_utm,
            (None, None) => true,
        },
        rows,
        blank: options_for(&all, fields, ""),
        name_error: messages("name").into_iter().next(),
        errors,
    }
}

async fn load_form(state: &SharedState, id: i64) -> WebResult<WebForm> {
    let mut db = state.store.read().await?;
    Ok(WebForm::from_row(
        store::forms::get(&mut db, id)
            .await?
            .ok_or(WebError::NotFound)?,
    ))
}

pub async fn new_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    Ok(render(&edit_page(&session, &fields, None, None, None)))
}

pub async fn edit_page_get(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let form = load_form(&state, id).await?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    Ok(render(&edit_page(
        &session,
        &fields,
        Some(&form),
        None,
        None,
    )))
}

async fn save(
    state: SharedState,
    session: Session,
    id: Option<i64>,
    form: FormData,
) -> WebResult<Response> {
    let existing = match id {
        Some(id) => Some(load_form(&state, id).await?),
        None => None,
    };
    let body = body_of(&form);
    let result = match id {
        None => form_service::create(&state, &body).await,
        Some(id) => form_service::update(&state, id, &body).await,
    };
    match result {
        Ok(saved) => {
            let verb = if id.is_none() { "created" } else { "saved" };
            session::flash(
                &state,
                &session,
                "success",
                &format!("Form {} was {verb}.", display::clip(&saved.name, 80)),
            )
            .await?;
            Ok(Redirect::to(&format!("/forms/{}", saved.id)).into_response())
        }
        Err(AppError::Validation { details, .. }) => {
            let mut db = state.store.read().await?;
            let fields = state.fields(&mut db).await?;
            let page = edit_page(
                &session,
                &fields,
                existing.as_ref(),
                Some(&form),
                Some(&details),
            );
            Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(AppError::NotFound(_)) => Err(WebError::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    save(state, session, None, FormData(form)).await
}

pub async fn update(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    save(state, session, Some(id), FormData(form)).await
}

pub async fn delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let mut tx = state.store.begin().await?;
    let form = WebForm::from_row(
        store::forms::get(&mut tx, id)
            .await?
            .ok_or(WebError::NotFound)?,
    );
    store::forms::delete(&mut tx, id).await?;
    tx.commit().await?;
    session::flash(
        &state,
        &session,
        "success",
        &format!(
            "Form {} was deleted with its submissions; contacts' histories keep them.",
            display::clip(&form.name, 80)
        ),
    )
    .await?;
    Ok(Redirect::to("/forms").into_response())
}

// ---------------------------------------------------------------- view: embed and submissions

pub struct FieldInfo {
    pub label: String,
    pub alias: String,
    pub mapped: String,
}

pub struct SubmissionView {
    pub id: i64,
    pub when: String,
    pub when_full: String,
    pub contact: Option<(i64, String)>,
    pub values: Vec<(String, String)>,
    pub page: String,
    pub page_href: Option<String>,
}

#[derive(Template)]
#[template(path = "form_view.html")]
struct FormViewPage {
    chrome: Chrome,
    id: i64,
    name: String,
    title: String,
    published: bool,
    record_utm: bool,
    fields: Vec<FieldInfo>,
    embed: String,
    embed_rows: usize,
    action: String,
    return_url: String,
    return_error: Option<String>,
    submissions: Vec<SubmissionView>,
    total: String,
    range: String,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ViewParams {
    #[serde(rename = "return", default)]
    pub return_url: String,
    pub page: Option<String>,
}

/// A return URL for the embed: empty (Magpie's thank-you page) or http(s).
fn check_return(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(String::new());
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://"))
        || url.chars().any(char::is_control)
        || url.len() > 2048
    {
        return Err(
            "The page to return to must be an http(s) address of at most 2,048 characters.".into(),
        );
    }
    Ok(url.to_owned())
}

pub async fn view(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Query<ViewParams>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let page = p
        .page
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
        .min(1_000_000);
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let form = WebForm::from_row(
        store::forms::get(&mut db, id)
            .await?
            .ok_or(WebError::NotFound)?,
    );
    let total = store::forms::submission_count(&mut db, id).await?;
    let rows = store::forms::submissions(
        &mut db,
        id,
        (page - 1) * SUBMISSIONS_PER_PAGE,
        SUBMISSIONS_PER_PAGE,
    )
    .await?;
    let mut contact_ids: Vec<i64> = rows.iter().filter_map(|r| r.contact_id).collect();
    contact_ids.sort_unstable();
    contact_ids.dedup();
    let contacts: HashMap<i64, crate::contacts::Contact> =
        store::contacts::load(&mut db, &fields, &contact_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    drop(db);

    let (return_url, return_error) = match check_return(&p.return_url) {
        Ok(u) => (u, None),
        Err(m) => (String::new(), Some(m)),
    };
    let base = crate::http::tracking::base_url(&headers);
    let embed = embed_html(&form, &fields, &base, &return_url);
    let now = now_ms();
    let labels: HashMap<&str, &str> = form
        .fields
        .iter()
        .map(|f| (f.alias.as_str(), f.label.as_str()))
        .collect();
    let submissions = rows
        .iter()
        .map(|r| {
            let data: serde_json::Map<String, Json> =
                serde_json::from_str(&r.data).unwrap_or_default();
            // The form's fields in order, then values of fields removed since.
            let mut values: Vec<(String, String)> = Vec::new();
            for f in &form.fields {
                if let Some(v) = data.get(&f.alias) {
                    values.push((
                        display::clip(&f.label, 80),
                        display::clip(&json_text(v), 500),
                    ));
                }
            }
            for (k, v) in data
                .iter()
                .filter(|(k, _)| !labels.contains_key(k.as_str()))
                .take(50)
            {
                values.push((display::clip(k, 80), display::clip(&json_text(v), 500)));
            }
            let contact = r.contact_id.map(|cid| {
                let name = match contacts.get(&cid) {
                    Some(c) if !c.is_anonymous() => c.display_name(),
                    Some(_) => {
                        r.ip.as_deref()
                            .map_or_else(|| "Visitor".to_owned(), |ip| format!("Visitor {ip}"))
                    }
                    None => format!("Contact #{cid}"),
                };
                (cid, display::clip(&name, 80))
            });
            let page = r.referer.clone().unwrap_or_default();
            SubmissionView {
                id: r.id,
                when: display::relative(r.date_submitted, now),
                when_full: display::datetime(r.date_submitted),
                contact,
                values,
                page_href: display::safe_href(&page)
                    .then(|| page.clone())
                    .filter(|p| !p.starts_with('/')),
                page: display::clip(&page, 120),
            }
        })
        .collect();
    let first = if total == 0 {
        0
    } else {
        (page - 1) * SUBMISSIONS_PER_PAGE + 1
    };
    let last = (page * SUBMISSIONS_PER_PAGE).min(total);
    let pages = ((total + SUBMISSIONS_PER_PAGE - 1) / SUBMISSIONS_PER_PAGE).max(1);
    let href = |n: i64| {
        let mut q = vec![format!("page={n}")];
        if !return_url.is_empty() {
            q.push(format!("return={}", enc(&return_url)));
        }
        format!("/forms/{id}?{}#submissions", q.join("&"))
    };
    let (prev, next) = (
        (page > 1).then(|| href(page - 1)),
        (page < pages).then(|| href(page + 1)),
    );
    let page_view = FormViewPage {
        chrome: Chrome::new(&session, "forms"),
        id,
        title: display::plain(&form.name, 80),
        name: display::clip(&form.name, 200),
        published: form.is_published,
        record_utm: form.record_utm,
        fields: form
            .fields
            .iter()
            .map(|f| FieldInfo {
                label: f.label.clone(),
                alias: f.alias.clone(),
                mapped: f
                    .contact_field
                    .as_deref()
                    .map(|a| {
                        fields
                            .get(a)
                            .map_or_else(|| format!("{a} (missing)"), |d| d.label.clone())
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        embed_rows: embed.lines().count().clamp(6, 30),
        embed,
        action: format!("{base}/form/submit?formId={id}"),
        return_url,
        return_error,
        submissions,
        total: display::thousands(total),
        range: format!(
            "{}–{} of {}",
            display::thousands(first),
            display::thousands(last),
            display::thousands(total)
        ),
        prev,
        next,
    };
    Ok(render(&page_view))
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::FormField;

    fn form(name: &str, fields: Vec<FormField>) -> WebForm {
        WebForm {
            id: 7,
            name: name.into(),
            fields,
            record_utm: true,
            is_published: true,
            date_added: 0,
            date_modified: 0,
        }
    }

    #[test]
    fn embed_escapes_everything() {
        let fields = FieldSet::defaults_for_tests();
        let f = form(
            "<script>alert(1)</script> \"Sign up\"",
            vec![
                FormField {
                    alias: "email".into(),
                    label: "E-mail <b>\"now\"</b> & 'here'".into(),
                    contact_field: Some("email".into()),
                },
                FormField {
                    alias: "note".into(),
                    label: "Note".into(),
                    contact_field: None,
                },
            ],
        );
        let html = embed_html(
            &f,
            &fields,
            "https://magpie.example",
            "https://shop.example/thanks?a=1&b=\"x\"<y>",
        );
        assert!(html.starts_with("<form method=\"post\" action=\"https://magpie.example/form/submit?formId=7\" accept-charset=\"UTF-8\" id=\"mauticform_script_alert_1_script_sign_up\""), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"mauticform[formId]\" value=\"7\">"));
        assert!(html.contains("name=\"mauticform[return]\" value=\"https://shop.example/thanks?a=1&amp;b=&quot;x&quot;&lt;y&gt;\""), "{html}");
        assert!(
            html.contains(
                ">E-mail &lt;b&gt;&quot;now&quot;&lt;/b&gt; &amp; &#39;here&#39;</label>"
            ),
            "{html}"
        );
        assert!(html.contains("type=\"email\" id=\"mauticform_input_script_alert_1_script_sign_up_email\" name=\"mauticform[email]\""), "{html}");
        assert!(html.contains("name=\"mauticform[note]\""));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.ends_with("</form>"));
    }

    #[test]
    fn embed_of_an_unnamed_form_and_return_urls() {
        let fields = FieldSet::defaults_for_tests();
        let html = embed_html(&form("!!!", vec![]), &fields, "http://127.0.0.1:8080", "");
        assert!(html.contains("id=\"mauticform_form_7\""), "{html}");
        assert!(html.contains("name=\"mauticform[return]\" value=\"\""));
        assert_eq!(
            check_return(" https://x.example/a "),
            Ok("https://x.example/a".into())
        );
        assert_eq!(check_return(""), Ok(String::new()));
        assert!(check_return("javascript:alert(1)").is_err());
        assert!(check_return("https://x.example/\u{0}").is_err());
    }

    #[test]
    fn editor_rows() {
        let form = FormData(vec![
            ("name".into(), "Signup".into()),
            ("field_label".into(), "Email".into()),
            ("field_alias".into(), "".into()),
            ("field_map".into(), "email".into()),
            ("field_label".into(), "".into()),
            ("field_alias".into(), "".into()),
            ("field_map".into(), "".into()),
            ("field_label".into(), "Comment".into()),
            ("field_alias".into(), "comment".into()),
            ("field_map".into(), "".into()),
        ]);
        let body = body_of(&form);
        assert_eq!(
            body["fields"],
            json!([{"label": "Email", "contactField": "email"}, {"label": "Comment", "alias": "comment"}])
        );
        assert_eq!(body["recordUtm"], false);
        assert_eq!(body["name"], "Signup");
    }
}
