//! `/api/plugins…`: the Plugins page's JSON (admins only): list, enable/disable, grant
//! capabilities, edit configuration, upload a `.wasm`, show or rotate the webhook
//! secret. And `POST /plugins/{name}/hook/…`, the plugins' public webhooks.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use crate::error::{AppError, AppResult};
use crate::http::auth::CurrentUser;
use crate::http::extract::{ApiBody, read_body};
use crate::plugins::bindings::{timeline, types};
use crate::plugins::capabilities;
use crate::plugins::registry::IngestError;
use crate::plugins::{CallError, Origin, Plugin};
use crate::state::SharedState;

/// The header carrying a webhook's secret (or `?secret=`).
pub const SECRET_HEADER: &str = "x-magpie-secret";
/// Largest `.wasm` accepted by the upload.
pub const MAX_UPLOAD: usize = 64 << 20;
/// Largest webhook body.
pub const MAX_HOOK_BODY: usize = 1 << 20;

fn require_admin(user: &crate::users::User) -> AppResult<()> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "You do not have access to the requested area/action.".into(),
        ))
    }
}

fn plugin(state: &SharedState, name: &str) -> AppResult<std::sync::Arc<Plugin>> {
    state
        .plugins
        .get(name)
        .ok_or_else(|| AppError::NotFound(format!("there is no plugin `{name}`")))
}

/// A plugin as the Plugins page shows it (never its secret).
pub fn plugin_json(p: &Plugin) -> Value {
    let s = p.settings();
    let m = &p.manifest;
    let values = p.masked_config();
    json!({
        "name": m.name,
        "version": m.version,
        "kind": m.kind.as_str(),
        "title": m.title,
        "description": m.description,
        "origin": match &p.origin { Origin::BuiltIn => "built-in", Origin::Directory(_) => "installed" },
        "sha256": p.sha256,
        "loadedFromCache": p.from_cache,
        "enabled": s.enabled,
        "disabledAfterFailures": !s.enabled && s.disabled_reason.is_some(),
        "disabledReason": s.disabled_reason,
        "capabilities": {
            "requested": m.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "granted": s.granted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "config": { "schema": m.settings.iter().map(|x| x.to_json()).collect::<Vec<_>>(), "values": values },
        "eventTypes": m.event_types.iter().map(|t| json!({"key": t.key, "label": t.label, "icon": t.icon, "group": t.group})).collect::<Vec<_>>(),
        "stats": {
            "calls": p.stats.calls.load(Ordering::Relaxed),
            "errors": p.stats.errors.load(Ordering::Relaxed),
            "consecutiveFailures": p.stats.streak.load(Ordering::Relaxed),
            "meanCallMs": (p.mean_call_ms() * 1000.0).round() / 1000.0,
            "lastError": p.last_error(),
        },
        "webhook": if m.kind == crate::plugins::Kind::EventTypes { json!({ "path": format!("/plugins/{}/hook/", m.name), "secretHeader": SECRET_HEADER }) } else { Value::Null },
        "warnings": m.warnings,
    })
}

/// `GET /api/plugins`
#[utoipa::path(get, path = "/api/plugins", tag = "plugins", summary = "List plugins (admins only)",
    description = "Every loaded plugin with its kind, capabilities requested and granted, configuration, call statistics and state; `failed` lists files of the plugins directory that could not be loaded.",
    responses((status = 200, description = "{plugins: [...], failed: [{file, error}], runtime: {pooling, callTimeoutMs, memoryLimitMb, maxConsecutiveFailures}}"), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let limits = state.plugins.limits();
    Ok(Json(json!({
        "plugins": state.plugins.list().iter().map(|p| plugin_json(p)).collect::<Vec<_>>(),
        "failed": state.plugins.load_failures().iter().map(|f| json!({"file": f.file, "error": f.error})).collect::<Vec<_>>(),
        "runtime": {
            "pooling": state.plugins.runtime.pooling,
            "callTimeoutMs": limits.call_timeout.as_millis() as u64,
            "memoryLimitMb": limits.memory_bytes >> 20,
            "maxConsecutiveFailures": limits.max_consecutive_failures,
        },
    })))
}

/// `GET /api/plugins/{name}`
#[utoipa::path(get, path = "/api/plugins/{name}", tag = "plugins", summary = "One plugin (admins only)", params(("name" = String, Path)), responses((status = 200, description = "{plugin}"), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let p = plugin(&state, &name)?;
    Ok(Json(json!({ "plugin": plugin_json(&p) })))
}

/// `POST /api/plugins/{name}/enable` and `/disable`
#[utoipa::path(post, path = "/api/plugins/{name}/{action}", tag = "plugins", summary = "Enable or disable a plugin (admins only)",
    description = "`action` is `enable` or `disable`. Enabling also clears a disable-after-failures.",
    params(("name" = String, Path), ("action" = String, Path, description = "enable | disable")), responses((status = 200, description = "{plugin}"), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path((name, action)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(AppError::not_found()),
    };
    plugin(&state, &name)?;
    state.plugins.set_enabled(&name, enabled).await?;
    let p = plugin(&state, &name)?;
    Ok(Json(json!({ "plugin": plugin_json(&p) })))
}

/// `PUT /api/plugins/{name}/capabilities`
#[utoipa::path(put, path = "/api/plugins/{name}/capabilities", tag = "plugins", summary = "Grant capabilities (admins only)",
    description = "`{\"granted\": [\"record-events\", \"read-contacts\", \"write-fields\", \"write-tags\", \"private-network\", \"http:https://api.example.com\", \"http:https://*.example.com:*\"]}` replaces the grants. Any valid capability may be granted, requested or not.",
    params(("name" = String, Path)), request_body = Object, responses((status = 200, description = "{plugin}"), (status = 422, body = ErrorBody)))]
pub async fn capabilities(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    plugin(&state, &name)?;
    let list = body
        .get("granted")
        .and_then(Value::as_array)
        .ok_or_else(|| AppError::invalid("granted", "must be a list of capabilities"))?;
    let texts = list
        .iter()
        .map(|c| {
            c.as_str()
                .ok_or_else(|| AppError::invalid("granted", "capabilities are strings"))
        })
        .collect::<AppResult<Vec<&str>>>()?;
    let granted = capabilities::parse_grants(texts).map_err(|e| AppError::invalid("granted", e))?;
    state.plugins.set_granted(&name, granted).await?;
    let p = plugin(&state, &name)?;
    Ok(Json(json!({ "plugin": plugin_json(&p) })))
}

/// `PUT /api/plugins/{name}/config`
#[utoipa::path(put, path = "/api/plugins/{name}/config", tag = "plugins", summary = "Edit a plugin's configuration (admins only)",
    description = "`{\"values\": {key: value}}` replaces the values; keys must be in the plugin's schema, required ones set, selects one of their options. A secret sent back as `********` keeps its stored value.",
    params(("name" = String, Path)), request_body = Object, responses((status = 200, description = "{plugin}"), (status = 422, body = ErrorBody)))]
pub async fn config(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
    ApiBody(body): ApiBody,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let p = plugin(&state, &name)?;
    let values = body
        .get("values")
        .and_then(Value::as_object)
        .ok_or_else(|| AppError::invalid("values", "must be an object of setting values"))?;
    let out = p.check_config(values).map_err(|list| {
        let mut problems = crate::contacts::input::Problems::default();
        for (key, message) in list {
            problems.add(&key, message);
        }
        problems
            .into_result()
            .err()
            .unwrap_or_else(|| AppError::invalid("values", "are invalid"))
    })?;
    state.plugins.set_config(&name, out).await?;
    let p = plugin(&state, &name)?;
    Ok(Json(json!({ "plugin": plugin_json(&p) })))
}

/// `GET /api/plugins/{name}/secret`
#[utoipa::path(get, path = "/api/plugins/{name}/secret", tag = "plugins", summary = "The plugin's webhook secret (admins only)",
    params(("name" = String, Path)), responses((status = 200, description = "{secret, header, url}"), (status = 404, body = ErrorBody)))]
pub async fn secret(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let p = plugin(&state, &name)?;
    Ok(Json(
        json!({ "secret": p.settings().secret, "header": SECRET_HEADER, "url": format!("/plugins/{name}/hook/") }),
    ))
}

/// `POST /api/plugins/{name}/secret/rotate`
#[utoipa::path(post, path = "/api/plugins/{name}/secret/rotate", tag = "plugins", summary = "Replace the webhook secret (admins only)",
    params(("name" = String, Path)), responses((status = 200, description = "{secret, header, url}"), (status = 404, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    let secret = state
        .plugins
        .rotate_secret(&name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no plugin `{name}`")))?;
    Ok(Json(
        json!({ "secret": secret, "header": SECRET_HEADER, "url": format!("/plugins/{name}/hook/") }),
    ))
}

/// `POST /api/plugins/upload`: the body is the `.wasm` itself.
#[utoipa::path(post, path = "/api/plugins/upload", tag = "plugins", summary = "Install or replace a plugin (admins only)",
    description = "The body is the component (`application/wasm`). It is compiled, linked and described before it is accepted; a bad file is refused with a message and the running plugins are unchanged. A plugin of the same name is swapped without a restart (calls in flight finish on the old code). Built-in names are refused. Uploaded plugins start with no capability granted.",
    request_body(content = Vec<u8>, content_type = "application/wasm"), responses((status = 201, description = "{plugin}"), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    req: Request<Body>,
) -> AppResult<Response> {
    require_admin(&me)?;
    let bytes = read_body(req.into_body(), MAX_UPLOAD).await?;
    if bytes.is_empty() {
        return Err(AppError::bad_request(
            "send the plugin's .wasm file as the request body",
        ));
    }
    match state.plugins.install(bytes.to_vec()).await {
        Ok(p) => Ok((
            StatusCode::CREATED,
            Json(json!({ "plugin": plugin_json(&p) })),
        )
            .into_response()),
        Err(message) => Err(AppError::Validation {
            message: format!("the plugin was refused: {message}"),
            details: json!({ "file": [message] }),
        }),
    }
}

/// `DELETE /api/plugins/{name}`
#[utoipa::path(delete, path = "/api/plugins/{name}", tag = "plugins", summary = "Remove an installed plugin (admins only)",
    description = "Built-in plugins cannot be removed (disable them). The plugin's settings and storage are kept for a reinstall.",
    params(("name" = String, Path)), responses((status = 200, description = "{removed: true}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<SharedState>,
    Extension(CurrentUser(me)): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> AppResult<Json<Value>> {
    require_admin(&me)?;
    match state.plugins.remove(&name).await {
        Ok(true) => Ok(Json(json!({ "removed": true }))),
        Ok(false) => Err(AppError::NotFound(format!("there is no plugin `{name}`"))),
        Err(m) => Err(AppError::bad_request(m)),
    }
}

/// `POST /plugins/{name}/hook/{*rest}`: a plugin's webhook (public; the plugin's secret
/// in `X-Magpie-Secret` or `?secret=`). Answers `{recorded, skipped: [{index, reason}], message}`.
#[utoipa::path(post, path = "/plugins/{name}/hook/{rest}", tag = "plugins", summary = "A plugin's webhook (authenticated by the plugin's secret)",
    description = "Reaches the plugin's `ingest`, which turns the request into timeline events; contacts are found by email (or id; device ids once tracking exists). 401 without the right secret, 404 for a plugin without webhooks, 400 when the plugin refuses the input, 502 when the plugin fails, 503 when it is disabled.",
    params(("name" = String, Path), ("rest" = String, Path), ("secret" = Option<String>, Query)), security(()), request_body = Object,
    responses((status = 200, description = "{recorded, skipped, message}"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn hook(
    State(state): State<SharedState>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request<Body>,
) -> Response {
    let name = params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let rest = params
        .iter()
        .find(|(k, _)| k == "rest")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let query: Vec<(String, String)> = req.uri().query().map(query_pairs).unwrap_or_default();
    let mut secret = query
        .iter()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.clone());
    if let Some(h) = req
        .headers()
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        secret = Some(h.to_owned());
    }
    let headers: Vec<types::Pair> = req
        .headers()
        .iter()
        .filter(|(k, _)| {
            k.as_str() != SECRET_HEADER && *k != header::AUTHORIZATION && *k != header::COOKIE
        })
        .take(100)
        .map(|(k, v)| types::Pair {
            name: k.as_str().to_owned(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let body = match read_body(req.into_body(), MAX_HOOK_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let request = timeline::WebhookRequest {
        method,
        path: rest.trim_start_matches('/').to_owned(),
        query: query
            .into_iter()
            .filter(|(k, _)| k != "secret")
            .map(|(name, value)| types::Pair { name, value })
            .collect(),
        headers,
        body: body.to_vec(),
    };
    match state.plugins.ingest(&name, secret.as_deref(), request).await {
        Ok(o) => Json(json!({
            "recorded": o.recorded,
            "skipped": o.skipped.iter().map(|(i, r)| json!({"index": i, "reason": r})).collect::<Vec<_>>(),
            "message": o.message,
        }))
        .into_response(),
        Err(e) => hook_error(e).into_response(),
    }
}

fn hook_error(e: IngestError) -> Response {
    let (status, message) = match &e {
        IngestError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        IngestError::Unauthorized => (StatusCode::UNAUTHORIZED, e.to_string()),
        IngestError::Denied(m) => (StatusCode::FORBIDDEN, m.clone()),
        IngestError::Plugin(err) => match err {
            types::Error::InvalidInput(m) => (StatusCode::BAD_REQUEST, m.clone()),
            types::Error::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            types::Error::Denied(m) => (StatusCode::FORBIDDEN, m.clone()),
            types::Error::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
            types::Error::Failed(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
        },
        IngestError::Call(CallError::Disabled(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        IngestError::Call(c) => (StatusCode::BAD_GATEWAY, c.to_string()),
        IngestError::Database(err) => {
            tracing::error!(error = %err, "webhook: database error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; it has been logged.".to_owned(),
            )
        }
    };
    let message: String = message.chars().take(2000).collect();
    (status, Json(json!({ "errors": [{ "code": status.as_u16(), "message": message, "details": {}, "type": null }] }))).into_response()
}

/// `a=1&b=x+y` → [("a", "1"), ("b", "x y")], percent-decoded.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(200)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}
