//! `/settings/plugins…` (administrators only): the Plugins page. Every plugin (built-in
//! and uploaded) with its kind, capabilities, statistics and state; enabling and
//! disabling; a page per plugin to grant capabilities, edit its configuration (a form
//! generated from its schema), see and rotate its webhook secret, see its event types and
//! remove it; and the upload of a `.wasm` (validated by the registry before it is
//! accepted; a refused file leaves the running set unchanged).
//!
//! Everything a plugin says about itself (title, description, labels, options) is
//! untrusted text: templates escape it like any other value. The work is done by
//! `plugins::Plugins` (the same functions as the JSON API's).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::display;
use super::error::{WebError, WebResult};
use super::forms::{self, FormData};
use super::layout::{Chrome, render, render_status};
use super::session::{self, Session};
use crate::plugins::capabilities::{self, Capability};
use crate::plugins::registry::SECRET_MASK;
use crate::plugins::{Kind, Origin, Plugin};
use crate::state::SharedState;

/// The file field of the upload form.
const FILE_FIELD: &str = "plugin";

fn require_admin(session: &Session) -> WebResult<()> {
    if session.user.is_admin() {
        Ok(())
    } else {
        Err(WebError::Forbidden(
            "Only administrators can manage plugins.".into(),
        ))
    }
}

fn plugin(state: &SharedState, name: &str) -> WebResult<Arc<Plugin>> {
    state.plugins.get(name).ok_or(WebError::NotFound)
}

fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::EventTypes => "Event types",
        Kind::BatchAction => "Batch action",
        Kind::Integration => "Integration",
        Kind::TrackingForwarder => "Tracking forwarder",
    }
}

/// What a capability lets a plugin do, for the admin deciding whether to grant it.
fn capability_help(c: &Capability) -> String {
    match c {
        Capability::ReadContacts => {
            "Read contacts (fields and tags) and find them by email or id.".into()
        }
        Capability::WriteFields => "Change contacts' field values.".into(),
        Capability::WriteTags => "Add and remove contacts' tags.".into(),
        Capability::RecordEvents => {
            "Record timeline events, including those its webhook receives.".into()
        }
        Capability::PrivateNetwork => {
            "Reach addresses on private networks through the origins granted below.".into()
        }
        Capability::Http(p) => format!("Send HTTP requests to {p}."),
    }
}

/// 1234 calls → "1,234"; a mean call time in µs or ms.
fn mean_time(p: &Plugin) -> String {
    if p.stats.calls.load(Ordering::Relaxed) == 0 {
        return "—".into();
    }
    let ms = p.mean_call_ms();
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// A plugin's state for the page.
pub struct StateView {
    /// "enabled", "disabled" (by the admin) or "failed" (disabled after failures).
    pub code: &'static str,
    pub label: String,
    /// Why it was disabled (after failures), with the last error.
    pub reason: Option<String>,
    /// Failures in a row of an enabled plugin (a warning before it is disabled).
    pub streak: u64,
}

fn state_of(p: &Plugin) -> StateView {
    let s = p.settings();
    let streak = p.stats.streak.load(Ordering::Relaxed);
    match (s.enabled, s.disabled_reason) {
        (true, _) => StateView {
            code: "enabled",
            label: "Enabled".into(),
            reason: None,
            streak,
        },
        (false, Some(reason)) => {
            let label = match streak {
                0 => "Disabled after failures".to_owned(),
                n => format!("Disabled after {n} failures"),
            };
            StateView {
                code: "failed",
                label,
                reason: Some(display::clip(&reason, 600)),
                streak,
            }
        }
        (false, None) => StateView {
            code: "disabled",
            label: "Disabled by an admin".into(),
            reason: None,
            streak,
        },
    }
}

/// The plugin's title, or its name when it gives none.
fn title_of(p: &Plugin) -> String {
    if p.manifest.title.trim().is_empty() {
        p.manifest.name.clone()
    } else {
        p.manifest.title.clone()
    }
}

// ---------------------------------------------------------------- the list

pub struct PluginRow {
    pub name: String,
    pub title: String,
    pub version: String,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub description: String,
    pub built_in: bool,
    /// (capability, granted)
    pub requested: Vec<(String, bool)>,
    /// Granted without being requested.
    pub extra: Vec<String>,
    pub granted_count: usize,
    pub calls: String,
    pub errors: String,
    pub has_errors: bool,
    pub mean: String,
    pub state: StateView,
    pub enabled: bool,
    pub highlight: bool,
}

fn row(p: &Plugin, highlight: &str) -> PluginRow {
    let s = p.settings();
    let m = &p.manifest;
    let errors = p.stats.errors.load(Ordering::Relaxed);
    PluginRow {
        name: m.name.clone(),
        title: title_of(p),
        version: m.version.clone(),
        kind: m.kind.as_str(),
        kind_label: kind_label(m.kind),
        description: display::clip(&m.description, 240),
        built_in: p.origin == Origin::BuiltIn,
        requested: m
            .capabilities
            .iter()
            .map(|c| (c.to_string(), s.granted.contains(c)))
            .collect(),
        extra: s
            .granted
            .iter()
            .filter(|c| !m.capabilities.contains(c))
            .map(ToString::to_string)
            .collect(),
        granted_count: s.granted.len(),
        calls: display::thousands(p.stats.calls.load(Ordering::Relaxed) as i64),
        errors: display::thousands(errors as i64),
        has_errors: errors > 0,
        mean: mean_time(p),
        state: state_of(p),
        enabled: s.enabled,
        highlight: m.name == highlight,
    }
}

#[derive(Template)]
#[template(path = "settings_plugins.html")]
struct ListPage {
    chrome: Chrome,
    section: &'static str,
    rows: Vec<PluginRow>,
    failures: Vec<(String, String)>,
    upload_error: Option<String>,
    max_upload_mb: usize,
    call_timeout_ms: u64,
    memory_mb: usize,
    max_failures: u32,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// A plugin just installed: highlighted.
    #[serde(default)]
    pub installed: String,
}

fn list_page(
    state: &SharedState,
    session: &Session,
    highlight: &str,
    upload_error: Option<String>,
) -> ListPage {
    let limits = state.plugins.limits();
    ListPage {
        chrome: Chrome::new(session, "settings"),
        section: "plugins",
        rows: state
            .plugins
            .list()
            .iter()
            .map(|p| row(p, highlight))
            .collect(),
        failures: state
            .plugins
            .load_failures()
            .into_iter()
            .map(|f| (f.file, display::clip(&f.error, 600)))
            .collect(),
        upload_error,
        max_upload_mb: super::MAX_BODY >> 20,
        call_timeout_ms: limits.call_timeout.as_millis() as u64,
        memory_mb: limits.memory_bytes >> 20,
        max_failures: limits.max_consecutive_failures,
    }
}

pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    require_admin(&session)?;
    Ok(render(&list_page(&state, &session, &q.installed, None)))
}

/// `POST /settings/plugins` (multipart: `_csrf`, `plugin`): validated and
/// installed by the registry, or refused with its message and nothing changed.
pub async fn upload(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    mp: Multipart,
) -> WebResult<Response> {
    require_admin(&session)?;
    let (_, file) = forms::read_multipart(mp, FILE_FIELD).await?;
    let refuse = |message: String| {
        render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &list_page(&state, &session, "", Some(message)),
        )
    };
    let Some(file) = file else {
        return Ok(refuse("Choose a plugin file (.wasm) to upload.".into()));
    };
    if file.bytes.is_empty() {
        return Ok(refuse(format!(
            "The file {} is empty.",
            display::plain(&file.file_name, 100)
        )));
    }
    let before: HashMap<String, String> = state
        .plugins
        .list()
        .iter()
        .map(|p| (p.name().to_owned(), p.manifest.version.clone()))
        .collect();
    match state.plugins.install(file.bytes).await {
        Ok(p) => {
            let name = p.name().to_owned();
            let mut text = match before.get(&name) {
                Some(old) => format!(
                    "Plugin {name} {} replaced version {old}, without a restart.",
                    p.manifest.version
                ),
                None => format!("Plugin {name} {} was installed.", p.manifest.version),
            };
            let missing = p
                .manifest
                .capabilities
                .iter()
                .filter(|c| !p.settings().granted.contains(c))
                .count();
            if missing > 0 {
                text.push_str(&format!(
                    " It requests {missing} capabilit{} not granted yet: open it to grant them.",
                    if missing == 1 { "y" } else { "ies" }
                ));
            }
            session::flash(&state, &session, "success", &text).await?;
            Ok(
                Redirect::to(&format!("/settings/plugins?installed={name}#plugin-{name}"))
                    .into_response(),
            )
        }
        Err(message) => Ok(refuse(format!(
            "The plugin was refused: {}",
            display::clip(&message, 1000)
        ))),
    }
}

/// `POST /settings/plugins/{name}/enable` and `/disable`; `back=detail` returns to the
/// plugin's page, else to the list.
pub async fn set_enabled(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(WebError::NotFound),
    };
    let p = plugin(&state, &name)?;
    state.plugins.set_enabled(&name, enabled).await?;
    let text = match (enabled, p.manifest.kind) {
        (true, _) => format!("Plugin {name} was enabled."),
        (false, Kind::EventTypes) => {
            format!("Plugin {name} was disabled: its events show raw and its webhook is refused.")
        }
        (false, _) => format!("Plugin {name} was disabled."),
    };
    session::flash(&state, &session, "success", &text).await?;
    Ok(Redirect::to(&back(&FormData(form), &name)).into_response())
}

fn back(form: &FormData, name: &str) -> String {
    if form.str("back") == "detail" {
        format!("/settings/plugins/{name}")
    } else {
        format!("/settings/plugins#plugin-{name}")
    }
}

// ---------------------------------------------------------------- one plugin

pub struct CapabilityBox {
    pub value: String,
    pub help: String,
    pub checked: bool,
    pub requested: bool,
}

pub struct ConfigWidget {
    pub key: String,
    pub label: String,
    pub description: String,
    /// The setting's kind (text, secret, integer, number, boolean, url, email, select, textarea).
    pub kind: &'static str,
    /// The input's `type` for single-line inputs.
    pub input_type: &'static str,
    pub step: &'static str,
    pub required: bool,
    pub default: Option<String>,
    pub value: String,
    /// (option, selected)
    pub options: Vec<(String, bool)>,
    /// A secret with a stored value (shown masked).
    pub secret_set: bool,
    pub error: Option<String>,
}

pub struct EventTypeView {
    pub key: String,
    pub label: String,
    pub group: String,
    /// Another plugin that provides this key (this one's declaration is ignored).
    pub taken_by: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_plugin.html")]
struct DetailPage {
    chrome: Chrome,
    section: &'static str,
    name: String,
    title: String,
    version: String,
    kind: &'static str,
    kind_label: &'static str,
    description: String,
    built_in: bool,
    sha256: String,
    from_cache: bool,
    warnings: Vec<String>,
    state: StateView,
    enabled: bool,
    calls: String,
    errors: String,
    mean: String,
    last_error: Option<String>,
    max_failures: u32,
    // capabilities
    capabilities: Vec<CapabilityBox>,
    private_network: CapabilityBox,
    origins: String,
    capabilities_error: Option<String>,
    // configuration
    config: Vec<ConfigWidget>,
    config_failed: bool,
    // webhook
    webhook: bool,
    webhook_url: String,
    secret_header: &'static str,
    secret: Option<String>,
    event_types: Vec<EventTypeView>,
}

/// What the form sent, to show again with its errors.
#[derive(Default)]
struct Submitted {
    capabilities: Option<(FormData, String)>,
    config: Option<(FormData, HashMap<String, String>)>,
}

/// `scheme://host` of the request, for the webhook's full URL.
fn site(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .unwrap_or("localhost");
    format!(
        "{}://{host}",
        if session::is_https(headers) {
            "https"
        } else {
            "http"
        }
    )
}

fn detail_page(
    state: &SharedState,
    session: &Session,
    p: &Plugin,
    headers: &HeaderMap,
    show_secret: bool,
    sent: Submitted,
) -> DetailPage {
    let s = p.settings();
    let m = &p.manifest;
    let name = m.name.clone();

    // Capabilities: the requested ones (and non-HTTP ones granted anyway) as checkboxes;
    // other granted origins as lines of text; private networks on their own.
    let cap_form = sent.capabilities.as_ref().map(|(f, _)| f);
    let is_checked = |value: &str, granted: bool| match cap_form {
        Some(f) => f.all("cap").contains(&value),
        None => granted,
    };
    let mut boxes: Vec<CapabilityBox> = Vec::new();
    for c in m
        .capabilities
        .iter()
        .filter(|c| **c != Capability::PrivateNetwork)
    {
        let value = c.to_string();
        boxes.push(CapabilityBox {
            checked: is_checked(&value, s.granted.contains(c)),
            help: capability_help(c),
            requested: true,
            value,
        });
    }
    for c in s.granted.iter().filter(|c| {
        !m.capabilities.contains(c)
            && !matches!(c, Capability::Http(_) | Capability::PrivateNetwork)
    }) {
        let value = c.to_string();
        boxes.push(CapabilityBox {
            checked: is_checked(&value, true),
            help: capability_help(c),
            requested: false,
            value,
        });
    }
    let private_network = CapabilityBox {
        value: Capability::PrivateNetwork.to_string(),
        help: capability_help(&Capability::PrivateNetwork),
        checked: is_checked(
            "private-network",
            s.granted.contains(&Capability::PrivateNetwork),
        ),
        requested: m.capabilities.contains(&Capability::PrivateNetwork),
    };
    let origins = match cap_form {
        Some(f) => f.str("origins"),
        None => s
            .granted
            .iter()
            .filter_map(|c| match c {
                Capability::Http(o) if !m.capabilities.contains(c) => Some(o.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };

    // Configuration: one widget per setting of the schema.
    let stored = p.masked_config();
    let config = m
        .settings
        .iter()
        .map(|spec| {
            let stored_value = stored.get(&spec.key).map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            });
            let (value, error) = match &sent.config {
                Some((f, errors)) => (f.str(&spec.key), errors.get(&spec.key).cloned()),
                None => (stored_value.clone().unwrap_or_default(), None),
            };
            let (input_type, step) = match spec.kind {
                "secret" => ("password", ""),
                "integer" => ("number", "1"),
                "number" => ("number", "any"),
                "url" => ("url", ""),
                "email" => ("email", ""),
                _ => ("text", ""),
            };
            let effective = if value.is_empty() && sent.config.is_none() {
                spec.default_value.clone().unwrap_or_default()
            } else {
                value.clone()
            };
            let value = if spec.kind == "boolean" {
                if matches!(effective.as_str(), "1" | "true") {
                    "1".into()
                } else {
                    "0".into()
                }
            } else {
                value
            };
            ConfigWidget {
                key: spec.key.clone(),
                label: if spec.label.trim().is_empty() {
                    spec.key.clone()
                } else {
                    spec.label.clone()
                },
                description: spec.description.clone(),
                kind: spec.kind,
                input_type,
                step,
                required: spec.required && spec.default_value.is_none(),
                default: spec
                    .default_value
                    .clone()
                    .filter(|d| !d.is_empty() && !spec.is_secret()),
                options: spec
                    .options
                    .iter()
                    .map(|o| (o.clone(), *o == value))
                    .collect(),
                secret_set: spec.is_secret() && stored_value.as_deref() == Some(SECRET_MASK),
                value,
                error,
            }
        })
        .collect();

    let event_types = m
        .event_types
        .iter()
        .map(|t| EventTypeView {
            key: t.key.clone(),
            label: t.label.clone(),
            group: t.group.clone(),
            taken_by: state.events.provider(&t.key).filter(|owner| *owner != name),
        })
        .collect();

    let webhook = m.kind == Kind::EventTypes;
    DetailPage {
        chrome: Chrome::new(session, "settings"),
        section: "plugins",
        title: title_of(p),
        version: m.version.clone(),
        kind: m.kind.as_str(),
        kind_label: kind_label(m.kind),
        description: m.description.clone(),
        built_in: p.origin == Origin::BuiltIn,
        sha256: p.sha256.clone(),
        from_cache: p.from_cache,
        warnings: m.warnings.iter().map(|w| display::clip(w, 300)).collect(),
        state: state_of(p),
        enabled: s.enabled,
        calls: display::thousands(p.stats.calls.load(Ordering::Relaxed) as i64),
        errors: display::thousands(p.stats.errors.load(Ordering::Relaxed) as i64),
        mean: mean_time(p),
        last_error: p.last_error().map(|e| display::clip(&e, 600)),
        max_failures: state.plugins.limits().max_consecutive_failures,
        capabilities: boxes,
        private_network,
        origins,
        capabilities_error: sent.capabilities.map(|(_, e)| e),
        config_failed: sent.config.is_some(),
        config,
        webhook,
        webhook_url: format!("{}/plugins/{name}/hook/", site(headers)),
        secret_header: "X-Magpie-Secret",
        secret: (webhook && show_secret).then(|| s.secret.clone()),
        event_types,
        name,
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    /// `secret=show` reveals the webhook secret.
    #[serde(default)]
    pub secret: String,
}

pub async fn detail(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
    headers: HeaderMap,
) -> WebResult<Response> {
    require_admin(&session)?;
    let p = plugin(&state, &name)?;
    Ok(render(&detail_page(
        &state,
        &session,
        &p,
        &headers,
        q.secret == "show",
        Submitted::default(),
    )))
}

/// `POST /settings/plugins/{name}/capabilities`: `cap` (repeated: checked capabilities),
/// `origins` (one `scheme://host[:port]` pattern a line). Replaces the grants.
pub async fn capabilities(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let p = plugin(&state, &name)?;
    let form = FormData(form);
    let mut texts: Vec<String> = form.all("cap").into_iter().map(str::to_owned).collect();
    for line in form
        .str("origins")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        texts.push(
            if line.starts_with("http:") && !line.starts_with("http://") {
                line.to_owned()
            } else {
                format!("http:{line}")
            },
        );
    }
    let granted = match capabilities::parse_grants(texts.iter().map(String::as_str)) {
        Ok(g) => g,
        Err(message) => {
            let sent = Submitted {
                capabilities: Some((form, message)),
                config: None,
            };
            return Ok(render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &detail_page(&state, &session, &p, &headers, false, sent),
            ));
        }
    };
    let summary = if granted.is_empty() {
        "nothing".to_owned()
    } else {
        granted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    state.plugins.set_granted(&name, granted).await?;
    session::flash(
        &state,
        &session,
        "success",
        &format!("Plugin {name} is now granted {summary}."),
    )
    .await?;
    Ok(Redirect::to(&format!("/settings/plugins/{name}#capabilities")).into_response())
}

/// `POST /settings/plugins/{name}/config`: one form field per setting key. Checked by
/// the registry against the schema; errors are shown by their fields, input kept.
pub async fn config(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    require_admin(&session)?;
    let p = plugin(&state, &name)?;
    let form = FormData(form);
    let values: Map<String, Json> = p
        .manifest
        .settings
        .iter()
        .filter_map(|s| Some((s.key.clone(), Json::String(form.get(&s.key)?.to_owned()))))
        .collect();
    match p.check_config(&values) {
        Ok(out) => {
            state.plugins.set_config(&name, out).await?;
            session::flash(
                &state,
                &session,
                "success",
                &format!("The configuration of {name} was saved."),
            )
            .await?;
            Ok(Redirect::to(&format!("/settings/plugins/{name}#configuration")).into_response())
        }
        Err(problems) => {
            let mut errors = HashMap::new();
            for (key, message) in problems {
                errors.entry(key).or_insert(message);
            }
            let sent = Submitted {
                capabilities: None,
                config: Some((form, errors)),
            };
            Ok(render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &detail_page(&state, &session, &p, &headers, false, sent),
            ))
        }
    }
}

/// `POST /settings/plugins/{name}/secret/rotate`: a new webhook secret, shown once the
/// page is back.
pub async fn rotate(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> WebResult<Response> {
    require_admin(&session)?;
    state
        .plugins
        .rotate_secret(&name)
        .await?
        .ok_or(WebError::NotFound)?;
    session::flash(
        &state,
        &session,
        "success",
        &format!("Plugin {name} has a new webhook secret; the old one no longer works."),
    )
    .await?;
    Ok(Redirect::to(&format!("/settings/plugins/{name}?secret=show#webhook")).into_response())
}

/// `POST /settings/plugins/{name}/delete`: removes an uploaded plugin (its settings and
/// storage stay for a reinstall). Built-ins can only be disabled.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> WebResult<Response> {
    require_admin(&session)?;
    match state.plugins.remove(&name).await {
        Ok(true) => {
            session::flash(
                &state,
                &session,
                "success",
                &format!("Plugin {name} was removed."),
            )
            .await?;
            Ok(Redirect::to("/settings/plugins").into_response())
        }
        Ok(false) => Err(WebError::NotFound),
        Err(message) => {
            session::flash(
                &state,
                &session,
                "error",
                &format!("Plugin {name} could not be removed: {message}"),
            )
            .await?;
            Ok(Redirect::to(&format!("/settings/plugins/{name}")).into_response())
        }
    }
}
