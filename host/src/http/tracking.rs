//! The public tracking endpoints (CONTRACT.md §3): `/mtc.js`, `/mtc/event`,
//! `/mtracking.gif`, `/mtc`. No authentication; every parameter may be hostile, and the
//! answer is always the JSON or the pixel, never an error page.

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::TrackingConfig;
use crate::state::SharedState;
use crate::store;
use crate::time::now_ms;
use crate::tracking::{Hit, Tracked, ip, params, ua};

/// The 43-byte transparent GIF.
pub const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x90, 0x00, 0x00, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x05, 0x10, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x04, 0x01, 0x00, 0x3b,
];

const DEVICE_COOKIE: &str = "mautic_device_id";
/// Largest tracking request body: a hit is a few hundred bytes; a larger one is refused
/// whole (413) rather than read in part.
const MAX_BODY: usize = 256 * 1024;
/// Why a hit with a larger body is not tracked.
const TOO_LARGE: &str = "body too large";

/// The script with whole-line comments and indentation removed.
static SCRIPT: LazyLock<String> = LazyLock::new(|| {
    include_str!("../../assets/mtc.js")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
});

/// `GET /mtc.js`
pub async fn script(headers: HeaderMap) -> Response {
    // The base URL is only a fallback for browsers without `document.currentScript`.
    let base = base_url(&headers);
    let body = SCRIPT.replace(
        "__MAGPIE_BASE__",
        &base.replace('\'', "%27").replace('\\', ""),
    );
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..12])
    );
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            )],
            body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex etag"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `scheme://host` of this server as the client addressed it.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!(
        "{}://{host}",
        if is_https(headers) { "https" } else { "http" }
    )
}

/// Whether an Origin may call us with credentials: empty list means any origin; entries
/// are exact origins or wildcards such as `https://*.example.com`.
pub fn origin_allowed(config: &TrackingConfig, origin: &str) -> bool {
    if config.cors_allowed_origins.is_empty() {
        return true;
    }
    let origin = origin.to_ascii_lowercase();
    config
        .cors_allowed_origins
        .iter()
        .any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &origin))
}

/// An allowed origin as `magpie.toml` may name it: `scheme://host[:port]`, where the host
/// may hold `*` wildcards, and nothing after it (browsers send no path in `Origin`).
pub fn check_origin_pattern(pattern: &str) -> Result<(), String> {
    let bad = || {
        format!("'{pattern}' is not an origin like https://example.com or https://*.example.com")
    };
    if pattern == "*" {
        return Ok(()); // any origin, as an empty list
    }
    let (scheme, rest) = pattern.split_once("://").ok_or_else(bad)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.*".contains(c));
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.*:[]_".contains(c));
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            if !text.starts_with(prefix) {
                return false;
            }
            let tail = &text[prefix.len()..];
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && wildcard_match(rest, &tail[i..]))
        }
    }
}

fn cors_headers(config: &TrackingConfig, headers: &HeaderMap, response: &mut Response) {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if !origin_allowed(config, origin) {
        return;
    }
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, X-Requested-With, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// `OPTIONS` on the tracking routes: the CORS preflight.
pub async fn preflight(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    cors_headers(&state.config.file.tracking, &headers, &mut response);
    response
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn device_cookie(device_id: &str, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={device_id}; Max-Age=31536000; Path=/; SameSite=None{secure}"
    ))
    .expect("device ids are alphanumeric")
}

/// Whether the request carries a logged-in admin session (admins browsing their own site
/// are not visitors). Only requests with the cookie cost a lookup.
async fn admin_session(state: &SharedState, headers: &HeaderMap) -> bool {
    cookie_value(headers, "magpie_session").is_some()
        && crate::web::has_valid_session(state, headers).await
}

/// Why a request is not tracked, if it is not.
async fn exclusion(
    state: &SharedState,
    headers: &HeaderMap,
    client: IpAddr,
) -> Option<&'static str> {
    let config = &state.config.file.tracking;
    if admin_session(state, headers).await {
        return Some("admin session");
    }
    if ip::is_private(&client) && !config.track_private_ip_ranges {
        return Some("private address");
    }
    if config.do_not_track_ips.iter().any(|b| b.contains(&client)) {
        return Some("ignored address");
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ua::is_bot(agent) {
        return Some("robot");
    }
    if config.honor_do_not_track {
        let on = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "1")
        };
        if on("dnt") || on("sec-gpc") {
            return Some("do not track");
        }
    }
    None
}

/// Everything the hit says: query string, then the body (form or JSON).
async fn collect_params(parts: &Parts, body: Body) -> Result<Vec<(String, String)>, &'static str> {
    let mut pairs = params::pairs(parts.uri.query().unwrap_or(""));
    if parts.method == Method::POST {
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let body = read_capped(body).await.ok_or(TOO_LARGE)?;
        if json {
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_slice::<serde_json::Value>(&body)
            {
                for (k, v) in map.into_iter().take(params::MAX_PARAMS * 2) {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Array(items) => items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                            .join(","),
                        serde_json::Value::Null | serde_json::Value::Object(_) => continue,
                        other => other.to_string(),
                    };
                    pairs.push((k, v));
                }
            }
        } else {
            pairs.extend(params::pairs(&body));
        }
    }
    params::bound(&mut pairs);
    Ok(pairs)
}

/// The body, or `None` when it is larger than `MAX_BODY` (not read further).
async fn read_capped(body: Body) -> Option<Vec<u8>> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY {
                return None;
            }
            out.extend_from_slice(&data);
        }
    }
    Some(out)
}

/// The hit a request describes; `Err` names why it is not tracked.
async fn hit_of(state: &SharedState, parts: &Parts, body: Body) -> Result<Hit, &'static str> {
    let headers = &parts.headers;
    let peer_ip = peer(parts).map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip());
    let client = state.client_ip(peer_ip, headers);
    if let Some(reason) = exclusion(state, headers, client).await {
        return Err(reason);
    }
    let raw = collect_params(parts, body).await?;
    // A cookie names the device before any parameter does. The rest of the parameters
    // are parsed when the hit is applied (`Hit::parse`).
    let device_id = cookie_value(headers, DEVICE_COOKIE)
        .filter(|d| params::valid_device_id(d))
        .map(str::to_owned)
        .or_else(|| params::device_id(&raw));
    let config = &state.config.file.tracking;
    let stored_ip = if config.anonymize_ip {
        ip::anonymize(client)
    } else {
        client
    };
    Ok(Hit {
        raw,
        // A bare pixel's page is the one that embedded it.
        referer: headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .filter(|r| r.starts_with("http"))
            .map(|r| r.chars().take(2048).collect()),
        device_id,
        ip: Some(stored_ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(1024)
            .collect(),
        at: now_ms(),
    })
}

/// The contact of the hit's device when the device is recorded and the hit cannot move
/// it to another contact (no unique identifier, no valid `ct` token).
async fn device_staying(state: &SharedState, hit: &Hit) -> Option<i64> {
    let device = hit.device_id.as_ref()?;
    let mut db = state.store.read().await.ok()?;
    let contact_id =
        store::tracking::devices_by_tracking_ids(&mut db, std::slice::from_ref(device))
            .await
            .ok()?
            .remove(device)?
            .contact_id;
    let fields = state.fields(&mut db).await.ok()?;
    let parsed = hit
        .clone()
        .parse(&state.config.file.tracking, &state.tracking_secret);
    (!parsed.may_switch_contact(&fields)).then_some(contact_id)
}

fn not_recorded(e: crate::error::AppError) -> &'static str {
    tracing::error!(error = %e, "tracking: a hit could not be recorded");
    "not recorded"
}

fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// `POST|GET /mtc/event`: `{"success":1,"id":…,"sid":…,"device_id":…,"events":[]}`.
pub async fn event(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let result = match hit_of(&state, &parts, body).await {
        Ok(hit) => match device_staying(&state, &hit).await {
            // A recorded device whose hit names no one stays with its contact: answered
            // once the hit is journaled, like the pixel, however long the applier's
            // backlog (an earlier hit still in it may yet move the device: the contact
            // answered then resolves to its successor, as old ids do after a merge).
            Some(contact_id) => state
                .tracker
                .accept(hit)
                .await
                .map(|device_id| Tracked {
                    contact_id,
                    device_id,
                })
                .map_err(not_recorded),
            // Otherwise the answer names a contact the hit may create or switch to: wait
            // until it is applied.
            None => state.tracker.track(hit).await.map_err(not_recorded),
        },
        Err(e) => Err(e),
    };
    let (body, device) = match &result {
        Ok(t) => (
            json!({ "success": 1, "id": t.contact_id, "sid": t.device_id, "device_id": t.device_id, "events": [] }),
            Some(t.device_id.clone()),
        ),
        Err("admin session") => (json!({ "success": 0 }), None),
        Err("not recorded") => (
            json!({ "success": 0, "error": "the hit could not be recorded" }),
            None,
        ),
        Err(TOO_LARGE) => (
            json!({ "success": 0, "error": format!("the request body is larger than {} KB", MAX_BODY / 1024) }),
            None,
        ),
        Err(_) => (
            json!({ "success": 1, "id": null, "sid": null, "device_id": null, "events": [] }),
            None,
        ),
    };
    let status = match result {
        Err("not recorded") => StatusCode::SERVICE_UNAVAILABLE,
        Err(TOO_LARGE) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::OK,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(d) = device {
        response
            .headers_mut()
            .append(header::SET_COOKIE, device_cookie(&d, is_https(headers)));
    }
    cors_headers(&state.config.file.tracking, headers, &mut response);
    response
}

/// `GET /mtracking.gif`: the pixel, always.
pub async fn pixel(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // Answered once the hit is journaled; it is applied moments later.
    let result = match hit_of(&state, &parts, body).await {
        Ok(hit) => state.tracker.accept(hit).await.map_err(not_recorded),
        Err(e) => Err(e),
    };
    let status = if matches!(result, Err("not recorded")) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "image/gif")],
        PIXEL.as_slice(),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::EXPIRES,
        HeaderValue::from_static("Wed, 11 Jan 2000 12:59:00 GMT"),
    );
    if let Ok(device_id) = &result {
        h.append(
            header::SET_COOKIE,
            device_cookie(device_id, is_https(headers)),
        );
    }
    cors_headers(&state.config.file.tracking, headers, &mut response);
    response
}

/// `GET /mtc`: the contact the device cookie belongs to (`{"id","sid","device_id"}`).
pub async fn current(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let device = cookie_value(&headers, DEVICE_COOKIE)
        .filter(|d| params::valid_device_id(d))
        .map(str::to_owned);
    let found = match device {
        Some(d) => match state.store.read().await {
            Ok(mut db) => {
                store::tracking::devices_by_tracking_ids(&mut db, std::slice::from_ref(&d))
                    .await
                    .ok()
                    .and_then(|mut m| m.remove(&d))
            }
            Err(_) => None,
        },
        None => None,
    };
    let body = match found {
        Some(d) => json!({ "id": d.contact_id, "sid": d.tracking_id, "device_id": d.tracking_id }),
        None => json!({ "id": null, "sid": null, "device_id": null }),
    };
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors_headers(&state.config.file.tracking, &headers, &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut c = TrackingConfig::default();
        assert!(origin_allowed(&c, "https://anything.example"));
        c.cors_allowed_origins = vec![
            "https://shop.example".into(),
            "https://*.example.org".into(),
        ];
        let cases = [
            ("https://shop.example", true),
            ("https://SHOP.example", true),
            ("http://shop.example", false),
            ("https://www.example.org", true),
            ("https://a.b.example.org", true),
            ("https://example.org", false),
            ("https://evil.example.org.attacker.net", false),
            ("null", false),
        ];
        for (origin, want) in cases {
            assert_eq!(origin_allowed(&c, origin), want, "{origin}");
        }
    }

    #[test]
    fn the_pixel_is_a_43_byte_gif() {
        assert_eq!(PIXEL.len(), 43);
        assert_eq!(&PIXEL[..6], b"GIF89a");
    }

    #[test]
    fn the_script_is_compacted() {
        assert!(!SCRIPT.contains("\n//"));
        assert!(SCRIPT.contains("mtc/event"));
        assert!(SCRIPT.len() < include_str!("../../assets/mtc.js").len());
    }
}
