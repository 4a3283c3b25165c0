//! `/contacts/new` and `/contacts/{id}/edit`: every field in tabs by group, owner, stage,
//! tags and the profile image; the duplicate warning before anything is saved; the
//! service's validation errors next to their fields with what the user typed kept.

use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::display;
use super::error::{WebError, WebResult};
use super::forms::{self, FormData, FormState, Group, Upload};
use super::layout::{Chrome, render, render_status};
use super::session::{self, Session};
use super::upload;
use crate::contacts::Contact;
use crate::contacts::fields::{FieldSet, FieldType};
use crate::contacts::input::Problems;
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::{self, Conn};
use crate::time::now_ms;

#[derive(Template)]
#[template(path = "contact_form.html")]
struct FormPage {
    chrome: Chrome,
    title: String,
    action: String,
    cancel: String,
    editing: bool,
    groups: Vec<Group>,
    active_tab: String,
    owners: Vec<(i64, String, bool)>,
    stages: Vec<(i64, String, bool)>,
    tags: String,
    owner_error: Option<String>,
    stage_error: Option<String>,
    tags_error: Option<String>,
    image: String,
    image_error: Option<String>,
    has_custom: bool,
    gravatar: Option<String>,
    duplicates: Vec<(i64, String)>,
    general_error: Option<String>,
}

struct Ctx {
    contact: Option<Contact>,
}

fn id_of(s: &str) -> WebResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)
}

/// The form's values for an existing contact (or the defaults for a new one).
fn state_of(fields: &FieldSet, contact: Option<&Contact>) -> FormState {
    let mut fs = FormState::default();
    for f in forms::form_fields(fields) {
        let values = match contact {
            Some(c) => {
                let v = c.field_value(f);
                let text = display::input_value(f, &v);
                if f.field_type == FieldType::Multiselect {
                    text.split('|').map(str::to_owned).collect()
                } else {
                    vec![text]
                }
            }
            None => vec![f.default_value.clone().unwrap_or_default()],
        };
        fs.values.insert(f.alias.clone(), values);
    }
    fs
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &SharedState,
    db: &mut Conn,
    session: &Session,
    fields: &FieldSet,
    ctx: &Ctx,
    fs: &FormState,
    form: Option<&FormData>,
    duplicates: Vec<(i64, String)>,
    general_error: Option<String>,
) -> WebResult<FormPage> {
    let contact = ctx.contact.as_ref();
    let groups = forms::groups(fields, fs);
    let active_tab = groups
        .iter()
        .find(|g| g.has_error)
        .or(groups.first())
        .map(|g| g.key.clone())
        .unwrap_or_default();
    let owner = match form {
        Some(f) => forms::optional_id(&f.str("_owner")).ok().flatten(),
        None => contact.map_or(Some(session.user.id), |c| c.owner_id),
    };
    let stage = match form {
        Some(f) => forms::optional_id(&f.str("_stage")).ok().flatten(),
        None => contact.and_then(|c| c.stage_id),
    };
    let owners = store::users::list(db)
        .await?
        .into_iter()
        .filter(|u| u.is_active || Some(u.id) == owner)
        .map(|u| (u.id, u.full_name(), Some(u.id) == owner))
        .collect();
    let stages = store::stages::list(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name, Some(s.id) == stage))
        .collect();
    let tags = match form {
        Some(f) => f.str("_tags"),
        None => contact.map(|c| c.tags.join(", ")).unwrap_or_default(),
    };
    let image = match form {
        Some(f) => f.str("_image"),
        None => contact
            .and_then(|c| c.preferred_profile_image.clone())
            .unwrap_or_else(|| "gravatar".into()),
    };
    let name = contact.map(|c| {
        if c.is_anonymous() {
            "Visitor".to_owned()
        } else {
            c.display_name()
        }
    });
    Ok(FormPage {
        chrome: Chrome::new(session, "contacts"),
        title: match &name {
            Some(n) => format!("Edit {}", display::plain(n, 80)),
            None => "New contact".to_owned(),
        },
        action: contact.map_or_else(
            || "/contacts/new".to_owned(),
            |c| format!("/contacts/{}/edit", c.id),
        ),
        cancel: contact.map_or_else(|| "/contacts".to_owned(), |c| format!("/contacts/{}", c.id)),
        editing: contact.is_some(),
        groups,
        active_tab,
        owners,
        stages,
        tags,
        owner_error: fs.error("_owner").or_else(|| fs.error("owner")),
        stage_error: fs.error("_stage").or_else(|| fs.error("stage")),
        tags_error: fs.error("_tags"),
        image: if image == "custom" {
            "custom".into()
        } else {
            "gravatar".into()
        },
        image_error: fs.error("_avatar"),
        has_custom: contact.is_some_and(|c| upload::exists(state, c.id)),
        gravatar: contact
            .and_then(|c| c.text("email"))
            .map(|e| display::gravatar(&e, 96)),
        duplicates,
        general_error,
    })
}

pub async fn new_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let ctx = Ctx { contact: None };
    let fs = state_of(&fields, None);
    Ok(render(
        &page(
            &state,
            &mut db,
            &session,
            &fields,
            &ctx,
            &fs,
            None,
            Vec::new(),
            None,
        )
        .await?,
    ))
}

pub async fn edit_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let contact = store::contacts::load(&mut db, &fields, &[id])
        .await?
        .pop()
        .ok_or(WebError::NotFound)?;
    let fs = state_of(&fields, Some(&contact));
    let ctx = Ctx {
        contact: Some(contact),
    };
    Ok(render(
        &page(
            &state,
            &mut db,
            &session,
            &fields,
            &ctx,
            &fs,
            None,
            Vec::new(),
            None,
        )
        .await?,
    ))
}

pub async fn create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    mp: Multipart,
) -> WebResult<Response> {
    let (form, upload) = forms::read_multipart(mp, "_avatar").await?;
    submit(state, session, None, form, upload).await
}

pub async fn update(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    mp: Multipart,
) -> WebResult<Response> {
    let id = id_of(&id)?;
    let (form, upload) = forms::read_multipart(mp, "_avatar").await?;
    submit(state, session, Some(id), form, upload).await
}

async fn submit(
    state: SharedState,
    session: Session,
    id: Option<i64>,
    form: FormData,
    upload: Option<Upload>,
) -> WebResult<Response> {
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let operator = state.operator(&mut db).await?;
    let contact = match id {
        Some(id) => Some(
            store::contacts::load(&mut db, &fields, &[id])
                .await?
                .pop()
                .ok_or(WebError::NotFound)?,
        ),
        None => None,
    };
    let mut fs = FormState::from_form(&form);
    let mut input = forms::contact_input(&fields, &form, contact.is_some());
    let mut problems = Problems::default();
    match forms::optional_id(&form.str("_owner")) {
        Ok(o) => input.owner = Some(o),
        Err(m) => problems.add("_owner", m),
    }
    if form.has("_stage") {
        match forms::optional_id(&form.str("_stage")) {
            Ok(s) => input.stage = Some(s),
            Err(m) => problems.add("_stage", m),
        }
    }
    let current_tags = contact.as_ref().map(|c| c.tags.clone()).unwrap_or_default();
    match forms::tag_changes(&form.str("_tags"), &current_tags) {
        Ok(t) => input.tags = t,
        Err(m) => problems.add("_tags", m),
    }
    let mut new_image = None;
    match form.str("_image").as_str() {
        "custom" => match upload {
            Some(u) => match upload::check(&u.bytes) {
                Ok(()) => {
                    new_image = Some(u.bytes);
                    input.profile_image = Some(Some("custom".into()));
                }
                Err(m) => problems.add("_avatar", format!("Upload refused: {m}.")),
            },
            None if id.is_some_and(|id| upload::exists(&state, id)) => {
                input.profile_image = Some(Some("custom".into()))
            }
            None => problems.add(
                "_avatar",
                "Choose an image to upload (PNG, JPEG, GIF or WebP, at most 2 MB).",
            ),
        },
        _ => {
            if let Some(u) = upload.filter(|u| !u.bytes.is_empty()) {
                // A file chosen without switching to "custom": still check it, then use it.
                match upload::check(&u.bytes) {
                    Ok(()) => {
                        new_image = Some(u.bytes);
                        input.profile_image = Some(Some("custom".into()));
                    }
                    Err(m) => problems.add("_avatar", format!("Upload refused: {m}.")),
                }
            } else {
                input.profile_image = Some(Some("gravatar".into()));
            }
        }
    }
    let ctx = Ctx { contact };
    const CORRECT: &str = "Please correct the highlighted fields.";
    // Either saved (and redirected), or the form comes back with errors or the duplicate
    // warning, keeping what was typed.
    let (duplicates, general) =
        if let Err(AppError::Validation { details, .. }) = problems.into_result() {
            fs.add_errors(&details);
            (Vec::new(), Some(CORRECT.to_owned()))
        } else {
            let probe = forms::identifier_values(&fields, &input);
            let found = service::find_duplicates(&mut db, &fields, operator, &probe, id).await?;
            if !found.is_empty() && !form.checked("_confirm") {
                (
                    found
                        .iter()
                        .take(5)
                        .map(|c| (c.id, display::clip(&c.display_name(), 80)))
                        .collect(),
                    None,
                )
            } else {
                let target = match id {
                    Some(id) => Target::Patch(id),
                    None => Target::Create,
                };
                let save_ctx = SaveContext {
                    fields: fields.clone(),
                    operator,
                    actor: Some(session.user.id),
                    source: Source::Admin,
                    now: now_ms(),
                };
                match service::save(&state, &save_ctx, vec![(target, input)])
                    .await?
                    .remove(0)
                {
                    Ok(saved) => {
                        if let Some(bytes) = new_image {
                            upload::store(&state, saved.id, bytes).await?;
                        }
                        let name = store::contacts::load(&mut db, &fields, &[saved.id])
                            .await?
                            .pop()
                            .map(|c| c.display_name())
                            .unwrap_or_default();
                        let verb = if saved.created { "created" } else { "saved" };
                        session::flash(
                            &state,
                            &session,
                            "success",
                            &format!("{} was {verb}.", display::clip(&name, 80)),
                        )
                        .await?;
                        return Ok(Redirect::to(&format!("/contacts/{}", saved.id)).into_response());
                    }
                    Err(AppError::Validation { details, .. }) => {
                        fs.add_errors(&details);
                        (Vec::new(), Some(CORRECT.to_owned()))
                    }
                    Err(AppError::NotFound(_)) => return Err(WebError::NotFound),
                    Err(e) => return Err(e.into()),
                }
            }
        };
    let status = if duplicates.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::CONFLICT
    };
    let p = page(
        &state,
        &mut db,
        &session,
        &fields,
        &ctx,
        &fs,
        Some(&form),
        duplicates,
        general,
    )
    .await?;
    Ok(render_status(status, &p))
}
