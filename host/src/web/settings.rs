//! `/settings/…` (administrators only): custom fields (list, create, edit, reorder,
//! delete), users (list, add, edit role, disable) and contact settings (the
//! unique-identifier operator).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde_json::{Value as Json, json};

use super::display;
use super::error::{WebError, WebResult};
use super::forms::{FormData, group_label};
use super::layout::{Chrome, render, render_status};
use super::session::{self, Session};
use crate::config::UniqueIdentifierOperator;
use crate::contacts::field_service::{self, Edit};
use crate::contacts::fields::{
    FieldDef, FieldSet, FieldType, SEARCH_TEXT_COLUMNS, STANDARD_GROUPS,
};
use crate::error::AppError;
use crate::state::{OPERATOR_SETTING, SharedState};
use crate::store;
use crate::time::now_ms;
use crate::users::{self, Role};

fn require_admin(session: &Session) -> WebResult<()> {
    if session.user.is_admin() {
        Ok(())
    } else {
        Err(WebError::Forbidden(
            "Only administrators can change settings.".into(),
        ))
    }
}

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

type Errors = HashMap<String, String>;

fn errors_from(details: &Json) -> Errors {
    let mut out = Errors::new();
    if let Json::Object(m) = details {
        for (k, v) in m {
            let msg = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(Json::as_str)
                .unwrap_or("is invalid");
            out.insert(k.clone(), msg.to_owned());
        }
    }
    out
}

// ---------------------------------------------------------------- fields

pub struct FieldRow {
    pub id: i64,
    pub label: String,
    pub alias: String,
    pub field_type: &'static str,
    pub group: String,
    pub flags: Vec<&'static str>,
    pub deletable: bool,
    pub first: bool,
    pub last: bool,
    pub published: bool,
}

#[derive(Template)]
#[template(path = "settings_fields.html")]
struct FieldsPage {
    chrome: Chrome,
    section: &'static str,
    rows: Vec<FieldRow>,
}

pub async fn fields_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let n = fields.len();
    let rows = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut flags = Vec::new();
            if f.is_required {
                flags.push("required");
            }
            if f.is_unique_identifier {
                flags.push("unique identifier");
            }
            if f.is_short_visible {
                flags.push("quick add");
            }
            if f.is_publicly_updatable {
                flags.push("publicly updatable");
            }
            if f.is_index {
                flags.push("indexed");
            }
            if !f.is_listable {
                flags.push("not listable");
            }
            if !f.is_visible {
                flags.push("hidden");
            }
            FieldRow {
                id: f.id,
                label: f.label.clone(),
                alias: f.alias.clone(),
                field_type: f.field_type.as_str(),
                group: group_label(&f.group),
                flags,
                deletable: !f.is_fixed && !SEARCH_TEXT_COLUMNS.contains(&f.alias.as_str()),
                first: i == 0,
                last: i + 1 == n,
                published: f.is_published,
            }
        })
        .collect();
    Ok(render(&FieldsPage {
        chrome: Chrome::new(&session, "settings"),
        section: "fields",
        rows,
    }))
}

#[derive(Template)]
#[template(path = "settings_field_form.html")]
struct FieldFormPage {
    chrome: Chrome,
    section: &'static str,
    title: String,
    action: String,
    creating: bool,
    fixed: bool,
    label: String,
    alias: String,
    field_type: String,
    types: Vec<(&'static str, bool)>,
    groups: Vec<(String, String, bool)>,
    new_group: String,
    default_value: String,
    options: String,
    scale: String,
    roundmode: String,
    yes: String,
    no: String,
    placeholder: String,
    flags: Vec<(&'static str, &'static str, bool, &'static str)>,
    errors: Errors,
}

impl FieldFormPage {
    fn error(&self, key: &str) -> String {
        self.errors.get(key).cloned().unwrap_or_default()
    }
}

const FLAG_KEYS: [(&str, &str, &str); 8] = [
    (
        "isPublished",
        "Published",
        "Unpublished fields are hidden from forms and the API's writes.",
    ),
    (
        "isRequired",
        "Required",
        "A contact cannot be saved without a value.",
    ),
    (
        "isUniqueIdentifier",
        "Unique identifier",
        "Used to find duplicates (with the AND/OR rule of the contact settings).",
    ),
    (
        "isShortVisible",
        "Show in quick add",
        "The quick-add form shows it.",
    ),
    ("isListable", "Listable", "Offered in lists and filters."),
    (
        "isPubliclyUpdatable",
        "Publicly updatable",
        "Tracking and forms may set it.",
    ),
    (
        "isIndex",
        "Indexed",
        "Searchable quickly at millions of contacts.",
    ),
    (
        "isVisible",
        "Visible",
        "Shown on the contact form and page.",
    ),
];

fn flag_value(f: &FieldDef, key: &str) -> bool {
    match key {
        "isPublished" => f.is_published,
        "isRequired" => f.is_required,
        "isUniqueIdentifier" => f.is_unique_identifier,
        "isShortVisible" => f.is_short_visible,
        "isListable" => f.is_listable,
        "isPubliclyUpdatable" => f.is_publicly_updatable,
        "isIndex" => f.is_index,
        "isVisible" => f.is_visible,
        _ => false,
    }
}

fn options_text(f: &FieldDef) -> String {
    f.options()
        .into_iter()
        .map(|(l, v)| if l == v { v } else { format!("{l} = {v}") })
        .collect::<Vec<_>>()
        .join("\n")
}

fn prop(f: &FieldDef, key: &str) -> String {
    match f.properties.get(key) {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn field_page(
    session: &Session,
    fields: &FieldSet,
    def: Option<&FieldDef>,
    form: Option<&FormData>,
    errors: Errors,
) -> FieldFormPage {
    let creating = def.is_none();
    let get = |key: &str, from_def: &dyn Fn(&FieldDef) -> String| -> String {
        match form {
            Some(f) => f.str(key),
            None => def.map(from_def).unwrap_or_default(),
        }
    };
    let field_type = get("type", &|d| d.field_type.as_str().to_owned());
    let field_type = if field_type.is_empty() {
        "text".to_owned()
    } else {
        field_type
    };
    let group = get("group", &|d| d.group.clone());
    let group = if group.is_empty() {
        "core".to_owned()
    } else {
        group
    };
    let mut group_keys: Vec<String> = STANDARD_GROUPS.iter().map(|g| (*g).to_owned()).collect();
    for f in fields.iter() {
        if !group_keys.contains(&f.group) {
            group_keys.push(f.group.clone());
        }
    }
    let flags = FLAG_KEYS
        .iter()
        .map(|(key, label, help)| {
            let on = match (form, def) {
                (Some(f), _) => f.checked(key),
                (None, Some(d)) => flag_value(d, key),
                (None, None) => matches!(*key, "isPublished" | "isListable" | "isVisible"),
            };
            (*key, *label, on, *help)
        })
        .collect();
    FieldFormPage {
        chrome: Chrome::new(session, "settings"),
        section: "fields",
        title: match def {
            Some(d) => format!("Edit field {}", display::plain(&d.label, 80)),
            None => "New field".to_owned(),
        },
        action: def.map_or_else(
            || "/settings/fields/new".to_owned(),
            |d| format!("/settings/fields/{}/edit", d.id),
        ),
        creating,
        fixed: def.is_some_and(|d| d.is_fixed),
        label: get("label", &|d| d.label.clone()),
        alias: get("alias", &|d| d.alias.clone()),
        types: FieldType::ALL
            .iter()
            .map(|t| (t.as_str(), t.as_str() == field_type))
            .collect(),
        field_type,
        groups: group_keys
            .iter()
            .map(|g| (g.clone(), group_label(g), *g == group))
            .collect(),
        new_group: form.map(|f| f.str("group_new")).unwrap_or_default(),
        default_value: get("defaultValue", &|d| {
            d.default_value.clone().unwrap_or_default()
        }),
        options: get("options", &options_text),
        scale: get("scale", &|d| prop(d, "scale")),
        roundmode: get("roundmode", &|d| prop(d, "roundmode")),
        yes: get("yes", &|d| prop(d, "yes")),
        no: get("no", &|d| prop(d, "no")),
        placeholder: get("placeholder", &|d| prop(d, "placeholder")),
        flags,
        errors,
    }
}

/// The field service's body from the form.
fn field_body(form: &FormData, creating: bool) -> Json {
    let t = FieldType::parse(&form.str("type")).unwrap_or(FieldType::Text);
    let mut body = serde_json::Map::new();
    body.insert("label".into(), json!(form.str("label")));
    if creating {
        body.insert("alias".into(), json!(form.str("alias").trim()));
        body.insert("type".into(), json!(form.str("type")));
    }
    let group_new = form.str("group_new").trim().to_owned();
    body.insert(
        "group".into(),
        json!(if group_new.is_empty() {
            form.str("group")
        } else {
            group_new
        }),
    );
    body.insert("defaultValue".into(), json!(form.str("defaultValue")));
    for (key, _, _) in FLAG_KEYS {
        body.insert(key.into(), json!(form.checked(key)));
    }
    let mut props = serde_json::Map::new();
    if t.has_options() {
        let list: Vec<Json> = form
            .str("options")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| match l.rsplit_once(" = ") {
                Some((label, value)) => json!({"label": label.trim(), "value": value.trim()}),
                None => json!({"label": l, "value": l}),
            })
            .collect();
        props.insert("list".into(), Json::Array(list));
    }
    if t == FieldType::Number {
        if !form.str("scale").trim().is_empty() {
            props.insert("scale".into(), json!(form.str("scale")));
        }
        if !form.str("roundmode").trim().is_empty() {
            props.insert("roundmode".into(), json!(form.str("roundmode")));
        }
    }
    if t == FieldType::Boolean {
        for k in ["yes", "no"] {
            if !form.str(k).trim().is_empty() {
                props.insert(k.into(), json!(form.str(k)));
            }
        }
    }
    if !form.str("placeholder").is_empty() {
        props.insert("placeholder".into(), json!(form.str("placeholder")));
    }
    body.insert("properties".into(), Json::Object(props));
    Json::Object(body)
}

pub async fn field_new_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    Ok(render(&field_page(
        &session,
        &fields,
        None,
        None,
        Errors::new(),
    )))
}

pub async fn field_edit_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let id = id_of(&id)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let def = fields.by_id(id).ok_or(WebError::NotFound)?;
    Ok(render(&field_page(
        &session,
        &fields,
        Some(def),
        None,
        Errors::new(),
    )))
}

async fn field_save(
    state: SharedState,
    session: Session,
    id: Option<i64>,
    form: FormData,
) -> WebResult<Response> {
    require_admin(&session)?;
    let body = field_body(&form, id.is_none());
    let result = match id {
        None => field_service::create(&state.store, &state.fields, &body).await,
        Some(id) => {
            field_service::update(&state.store, &state.fields, id, &body, Edit::Patch).await
        }
    };
    match result {
        Ok(def) => {
            let verb = if id.is_none() { "created" } else { "saved" };
            session::flash(
                &state,
                &session,
                "success",
                &format!("Field {} was {verb}.", display::clip(&def.label, 80)),
            )
            .await?;
            Ok(Redirect::to("/settings/fields").into_response())
        }
        Err(AppError::Validation { details, .. }) => {
            let mut db = state.store.read().await?;
            let fields = state.fields(&mut db).await?;
            let def = id.and_then(|i| fields.by_id(i).cloned());
            if id.is_some() && def.is_none() {
                return Err(WebError::NotFound);
            }
            let page = field_page(
                &session,
                &fields,
                def.as_ref(),
                Some(&form),
                errors_from(&details),
            );
            Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(AppError::NotFound(_)) => Err(WebError::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn field_create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    field_save(state, session, None, FormData(form)).await
}

pub async fn field_update(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    field_save(state, session, Some(id), FormData(form)).await
}

pub async fn field_move(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let id = id_of(&id)?;
    let form = FormData(form);
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    drop(db);
    let mut ids: Vec<i64> = fields.iter().map(|f| f.id).collect();
    let pos = ids
        .iter()
        .position(|i| *i == id)
        .ok_or(WebError::NotFound)?;
    match form.str("dir").as_str() {
        "up" if pos > 0 => ids.swap(pos, pos - 1),
        "down" if pos + 1 < ids.len() => ids.swap(pos, pos + 1),
        "top" => {
            let x = ids.remove(pos);
            ids.insert(0, x);
        }
        _ => {}
    }
    field_service::reorder(&state.store, &state.fields, &ids).await?;
    Ok(Redirect::to(&format!("/settings/fields#field-{id}")).into_response())
}

pub async fn field_delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let id = id_of(&id)?;
    match field_service::delete(&state.store, &state.fields, id).await {
        Ok(def) => {
            session::flash(
                &state,
                &session,
                "success",
                &format!(
                    "Field {} was deleted with its values.",
                    display::clip(&def.label, 80)
                ),
            )
            .await?
        }
        Err(AppError::Forbidden(m)) => session::flash(&state, &session, "error", &m).await?,
        Err(AppError::NotFound(_)) => return Err(WebError::NotFound),
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to("/settings/fields").into_response())
}

// ---------------------------------------------------------------- users

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub active: bool,
    pub last_login: String,
    pub me: bool,
}

#[derive(Template)]
#[template(path = "settings_users.html")]
struct UsersPage {
    chrome: Chrome,
    section: &'static str,
    rows: Vec<UserRow>,
}

pub async fn users_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let mut db = state.store.read().await?;
    let now = now_ms();
    let rows = store::users::list(&mut db)
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            name: u.full_name(),
            username: u.username,
            email: u.email,
            role: u.role.as_str(),
            active: u.is_active,
            last_login: u
                .last_login
                .map(|t| display::relative(t, now))
                .unwrap_or_else(|| "never".into()),
            me: u.id == session.user.id,
        })
        .collect();
    Ok(render(&UsersPage {
        chrome: Chrome::new(&session, "settings"),
        section: "users",
        rows,
    }))
}

#[derive(Template)]
#[template(path = "settings_user_form.html")]
struct UserFormPage {
    chrome: Chrome,
    section: &'static str,
    title: String,
    action: String,
    creating: bool,
    me: bool,
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    role: String,
    active: bool,
    errors: Errors,
}

impl UserFormPage {
    fn error(&self, key: &str) -> String {
        self.errors.get(key).cloned().unwrap_or_default()
    }
}

pub async fn user_new_page(Extension(session): Extension<Session>) -> WebResult<Response> {
    require_admin(&session)?;
    Ok(render(&UserFormPage {
        chrome: Chrome::new(&session, "settings"),
        section: "users",
        title: "New user".into(),
        action: "/settings/users/new".into(),
        creating: true,
        me: false,
        username: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        email: String::new(),
        role: "user".into(),
        active: true,
        errors: Errors::new(),
    }))
}

pub async fn user_edit_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let id = id_of(&id)?;
    let mut db = state.store.read().await?;
    let u = store::users::by_id(&mut db, id)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(render(&UserFormPage {
        chrome: Chrome::new(&session, "settings"),
        section: "users",
        title: format!("Edit user {}", display::plain(&u.username, 64)),
        action: format!("/settings/users/{id}/edit"),
        creating: false,
        me: u.id == session.user.id,
        username: u.username,
        first_name: u.first_name,
        last_name: u.last_name,
        email: u.email,
        role: u.role.as_str().into(),
        active: u.is_active,
        errors: Errors::new(),
    }))
}

fn check_person(form: &FormData, errors: &mut Errors) {
    for key in ["first_name", "last_name"] {
        let v = form.str(key);
        if v.chars().count() > 100 || v.chars().any(char::is_control) {
            errors.insert(
                key.into(),
                "must be at most 100 characters, without control characters".into(),
            );
        }
    }
    let email = form.str("email");
    if !email.trim().is_empty()
        && let Err(m) = crate::contacts::values::validate_email(email.trim())
    {
        errors.insert("email".into(), m);
    }
    if Role::parse(&form.str("role")).is_none() {
        errors.insert("role".into(), "choose admin or user".into());
    }
}

fn user_form_again(
    session: &Session,
    id: Option<i64>,
    form: &FormData,
    errors: Errors,
    me: bool,
) -> Response {
    let page = UserFormPage {
        chrome: Chrome::new(session, "settings"),
        section: "users",
        title: if id.is_some() {
            format!("Edit user {}", display::plain(&form.str("username"), 64))
        } else {
            "New user".into()
        },
        action: id.map_or_else(
            || "/settings/users/new".into(),
            |i| format!("/settings/users/{i}/edit"),
        ),
        creating: id.is_none(),
        me,
        username: form.str("username"),
        first_name: form.str("first_name"),
        last_name: form.str("last_name"),
        email: form.str("email"),
        role: form.str("role"),
        active: form.checked("is_active"),
        errors,
    };
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

pub async fn user_create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let form = FormData(form);
    let mut errors = Errors::new();
    let username = form.str("username").trim().to_owned();
    if let Err(m) = users::check_username(&username) {
        errors.insert("username".into(), m);
    }
    check_person(&form, &mut errors);
    let password = form.str("password");
    if let Err(m) = users::check_new_password(&password) {
        errors.insert("password".into(), m);
    }
    if errors.is_empty() {
        let mut db = state.store.read().await?;
        if store::users::by_username(&mut db, &username)
            .await?
            .is_some()
        {
            errors.insert("username".into(), "is already taken".into());
        }
    }
    if !errors.is_empty() {
        return Ok(user_form_again(&session, None, &form, errors, false));
    }
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|e| anyhow::anyhow!(e))??;
    let role = Role::parse(&form.str("role")).unwrap_or(Role::User);
    let (email, first_name, last_name) = (
        form.str("email"),
        form.str("first_name"),
        form.str("last_name"),
    );
    let mut tx = state.store.begin().await?;
    let new = store::users::NewUser {
        username: &username,
        email: email.trim(),
        first_name: first_name.trim(),
        last_name: last_name.trim(),
        role,
        password_hash: &hash,
    };
    store::users::insert(&mut tx, &new, now_ms()).await?;
    tx.commit().await?;
    session::flash(
        &state,
        &session,
        "success",
        &format!("User {username} was added."),
    )
    .await?;
    Ok(Redirect::to("/settings/users").into_response())
}

pub async fn user_update(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let id = id_of(&id)?;
    let mut form = FormData(form);
    let mut db = state.store.read().await?;
    let user = store::users::by_id(&mut db, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let all = store::users::list(&mut db).await?;
    drop(db);
    form.0.push(("username".into(), user.username.clone()));
    let me = user.id == session.user.id;
    let mut errors = Errors::new();
    check_person(&form, &mut errors);
    let role = Role::parse(&form.str("role")).unwrap_or(user.role);
    let active = form.checked("is_active");
    if me && (!active || role != Role::Admin) {
        errors.insert(
            "role".into(),
            "you cannot disable yourself or take away your own admin role".into(),
        );
    }
    let other_admins = all
        .iter()
        .filter(|u| u.id != id && u.is_active && u.is_admin())
        .count();
    if user.is_admin() && user.is_active && (!active || role != Role::Admin) && other_admins == 0 {
        errors.insert(
            "role".into(),
            "Magpie needs at least one active administrator".into(),
        );
    }
    let password = form.str("password");
    if !password.is_empty()
        && let Err(m) = users::check_new_password(&password)
    {
        errors.insert("password".into(), m);
    }
    if !errors.is_empty() {
        return Ok(user_form_again(&session, Some(id), &form, errors, me));
    }
    let hash = if password.is_empty() {
        None
    } else {
        Some(
            tokio::task::spawn_blocking(move || users::hash_password(&password))
                .await
                .map_err(|e| anyhow::anyhow!(e))??,
        )
    };
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    store::users::update_profile(
        &mut tx,
        id,
        form.str("email").trim(),
        form.str("first_name").trim(),
        form.str("last_name").trim(),
        now,
    )
    .await?;
    store::users::set_role_and_active(&mut tx, id, role, active, now).await?;
    if let Some(h) = &hash {
        store::users::set_password_hash(&mut tx, id, h, now).await?;
    }
    if !active || hash.is_some() {
        // A disabled user (or one whose password was reset) is logged out everywhere.
        store::sessions::delete_for_user(&mut tx, id, None).await?;
    }
    tx.commit().await?;
    session::flash(
        &state,
        &session,
        "success",
        &format!("User {} was saved.", user.username),
    )
    .await?;
    Ok(Redirect::to("/settings/users").into_response())
}

// ---------------------------------------------------------------- contact settings

#[derive(Template)]
#[template(path = "settings_contacts.html")]
struct ContactSettingsPage {
    chrome: Chrome,
    section: &'static str,
    operator: &'static str,
    from_file: &'static str,
    identifiers: Vec<String>,
}

fn op_str(op: UniqueIdentifierOperator) -> &'static str {
    match op {
        UniqueIdentifierOperator::And => "and",
        UniqueIdentifierOperator::Or => "or",
    }
}

pub async fn contact_settings_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let mut db = state.store.read().await?;
    let op = state.operator(&mut db).await?;
    let fields = state.fields(&mut db).await?;
    Ok(render(&ContactSettingsPage {
        chrome: Chrome::new(&session, "settings"),
        section: "contacts",
        operator: op_str(op),
        from_file: op_str(state.config.file.contacts.unique_identifier_operator),
        identifiers: fields
            .unique_identifiers()
            .map(|f| f.label.clone())
            .collect(),
    }))
}

pub async fn contact_settings_save(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let form = FormData(form);
    let op = match form.str("operator").as_str() {
        "and" => "and",
        "or" => "or",
        _ => {
            return Err(WebError::BadRequest(
                "The operator must be AND or OR.".into(),
            ));
        }
    };
    let mut tx = state.store.begin().await?;
    store::settings::set(&mut tx, OPERATOR_SETTING, op).await?;
    tx.commit().await?;
    session::flash(
        &state,
        &session,
        "success",
        &format!("Unique identifiers now match with {}.", op.to_uppercase()),
    )
    .await?;
    Ok(Redirect::to("/settings/contacts").into_response())
}
