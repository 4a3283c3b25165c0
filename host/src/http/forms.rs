//! `POST /form/submit?formId=N`: public form submissions (`mauticform[field]=value`),
//! form-encoded or multipart. Answers JSON to scripts (`?ajax=1` or XHR), otherwise
//! redirects back to the page (`mauticform[return]`) or shows a short thank-you page.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::config::TrackingConfig;
use crate::error::AppError;
use crate::forms::{self, Submission};
use crate::state::SharedState;
use crate::tracking::{ip, params};

const MAX_FORM_BYTES: usize = 1024 * 1024;

/// `mauticform[alias]` → alias; multi-value `mauticform[alias][]` joined with `|`.
fn form_key(key: &str) -> Option<String> {
    let inner = key.strip_prefix("mauticform[")?;
    let inner = inner.strip_suffix("[]").unwrap_or(inner);
    let alias = inner.strip_suffix(']')?;
    (!alias.is_empty() && alias.len() <= 64).then(|| alias.to_ascii_lowercase())
}

fn push(values: &mut Vec<(String, String)>, key: &str, value: String) {
    let Some(alias) = form_key(key) else { return };
    if values.len() >= 500 {
        return;
    }
    match values.iter_mut().find(|(k, _)| *k == alias) {
        Some((_, existing)) => {
            existing.push('|');
            existing.push_str(&value);
        }
        None => values.push((alias, value)),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub async fn submit(State(state): State<SharedState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let query = params::pairs(req.uri().query().unwrap_or(""));
    let wants_json = query.iter().any(|(k, v)| k == "ajax" && v == "1")
        || headers
            .get("x-requested-with")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"))
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut values: Vec<(String, String)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        match Multipart::from_request(req, &state).await {
            Ok(mut mp) => {
                let mut total = 0usize;
                while let Ok(Some(field)) = mp.next_field().await {
                    let name = field.name().unwrap_or("").to_owned();
                    if field.file_name().is_some() {
                        continue; // file uploads are not part of Magpie's forms
                    }
                    match field.bytes().await {
                        Ok(bytes) => {
                            total += bytes.len();
                            if total > MAX_FORM_BYTES {
                                break;
                            }
                            push(&mut values, &name, params::form_text(bytes.to_vec()));
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(_) => {
                return answer(
                    wants_json,
                    Err(AppError::bad_request("the form data could not be read")),
                    None,
                    &headers,
                );
            }
        }
    } else {
        let body = match crate::http::extract::read_body(req.into_body(), MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(e) => return answer(wants_json, Err(e), None, &headers),
        };
        for (k, v) in params::form_pairs(&body) {
            push(&mut values, &k, v);
        }
    }
    let take = |values: &mut Vec<(String, String)>, key: &str| {
        values
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| values.remove(i).1)
    };
    let form_id = take(&mut values, "formid")
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "formId")
                .map(|(_, v)| v.clone())
        })
        .and_then(|v| v.trim().parse::<i64>().ok());
    let return_url = take(&mut values, "return")
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(|u| u.chars().take(2048).collect::<String>());
    // mtc.js adds the visitor's device id to forms posting here (for browsers that keep
    // no cookie for this site); the cookie, when there is one, comes first.
    let field_device = take(&mut values, "mautic_device_id").filter(|d| params::valid_device_id(d));
    for control in ["formname", "messenger", "mauticpage", "submit"] {
        take(&mut values, control);
    }
    let redirect = return_url
        .clone()
        .filter(|url| may_return_to(url, &headers, &state.config.file.tracking));
    let Some(form_id) = form_id else {
        return answer(
            wants_json,
            Err(AppError::bad_request("formId is missing")),
            redirect.as_deref(),
            &headers,
        );
    };
    let client = state.client_ip(peer, &headers);
    let stored_ip = if state.config.file.tracking.anonymize_ip {
        ip::anonymize(client)
    } else {
        client
    };
    let device_id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == "mautic_device_id")
        .map(|(_, v)| v.to_owned())
        .filter(|d| params::valid_device_id(d))
        .or(field_device);
    let submission = Submission {
        form_id,
        values,
        return_url: return_url.clone(),
        device_id,
        ip: Some(stored_ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(1024)
            .collect(),
    };
    let result = forms::submit(&state, submission).await;
    answer(wants_json, result, redirect.as_deref(), &headers)
}

/// Whether a plain post may be sent back to `url`: only to the site that posted the form
/// (the request's `Origin`, else its `Referer`) or to an origin the tracking settings
/// list. A return address taken on trust would make Magpie an open redirect to anywhere.
fn may_return_to(url: &str, headers: &HeaderMap, tracking: &TrackingConfig) -> bool {
    let Some(target) = origin_of(url) else {
        return false;
    };
    if HeaderValue::from_str(url).is_err() {
        return false; // no `Location` can hold it
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let posted_from = header(header::ORIGIN)
        .and_then(origin_of)
        .or_else(|| header(header::REFERER).and_then(origin_of));
    // A listed origin, but not a pattern for every site (`*`, `https://*`), which
    // allows tracking from anywhere and must not allow redirects to anywhere.
    let listed = tracking.cors_allowed_origins.iter().any(|pattern| {
        names_one_site(pattern)
            && crate::http::tracking::wildcard_match(&pattern.to_ascii_lowercase(), &target)
    });
    posted_from.as_deref() == Some(target.as_str()) || listed
}

/// Whether an allowed-origin pattern names one site (`https://shop.example`, or its
/// subdomains `https://*.shop.example`), not hosts at large (`*`, `https://**`,
/// `https://*.com`, a trailing dot): only such a pattern may receive redirects.
fn names_one_site(pattern: &str) -> bool {
    let host = pattern.split_once("://").map_or(pattern, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    let (subdomains, site) = match host.strip_prefix("*.") {
        Some(site) => (true, site),
        None => (false, host),
    };
    !site.is_empty()
        && !site.contains('*')
        && !site.ends_with('.')
        && (!subdomains || site.contains('.'))
}

/// `scheme://host[:port]` of an http(s) address, lower-cased, without a default port;
/// `None` for anything else, or an authority a browser might read differently (user
/// info, backslashes, spaces).
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '@' | '\\') || c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

fn answer(
    json_wanted: bool,
    result: Result<forms::Submitted, AppError>,
    return_url: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        == Some("https");
    let mut response = match (&result, json_wanted) {
        (Ok(s), true) => axum::Json(json!({ "success": 1, "results": s.results, "successMessage": "Thank you for your submission." })).into_response(),
        (Ok(_), false) => match return_url {
            Some(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_owned())]).into_response(),
            None => Html("<!doctype html><meta charset=utf-8><title>Thank you</title><p>Thank you for your submission.</p>".to_owned()).into_response(),
        },
        (Err(e), true) => {
            let body = match e {
                AppError::Validation { details, .. } => {
                    let errors: serde_json::Map<String, serde_json::Value> = details
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.get(0).cloned().unwrap_or(json!("invalid"))))
                        .collect();
                    json!({ "success": 0, "validationErrors": errors })
                }
                other => json!({ "success": 0, "errorMessage": other.to_string() }),
            };
            (e.status(), axum::Json(body)).into_response()
        }
        (Err(e), false) => match (return_url, e) {
            (Some(url), err) if !matches!(err, AppError::Internal(_)) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let message: String = percent_encoding::utf8_percent_encode(&err.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
                (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{url}{sep}mauticError={message}"))]).into_response()
            }
            (_, err) => (err.status(), Html(format!("<!doctype html><meta charset=utf-8><title>Form error</title><p>{}</p>", html_escape(&err.to_string())))).into_response(),
        },
    };
    if let Err(AppError::Internal(e)) = &result {
        tracing::error!(error = %e, "form submission failed");
    }
    if let Ok(s) = &result {
        let secure = if https { "; Secure" } else { "" };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "mautic_device_id={}; Max-Age=31536000; Path=/; SameSite=None{secure}",
            s.device_id
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_only_to_the_posting_site() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let open = TrackingConfig::default();
        let from_shop = headers(&[("origin", "https://shop.example")]);
        let cases: [(&str, &HeaderMap, bool); 11] = [
            ("https://shop.example/thanks?a=1", &from_shop, true),
            ("HTTPS://Shop.Example:443/thanks", &from_shop, true),
            ("https://shop.example:8443/thanks", &from_shop, false),
            ("http://shop.example/thanks", &from_shop, false),
            ("https://evil.example/", &from_shop, false),
            ("https://shop.example@evil.example/", &from_shop, false),
            ("https://shop.example\\@evil.example/", &from_shop, false),
            ("https://shop.example.evil.example/", &from_shop, false),
            ("javascript:alert(1)", &from_shop, false),
            (
                "https://shop.example/x",
                &headers(&[("referer", "https://shop.example/form?x=1")]),
                true,
            ),
            ("https://shop.example/x", &HeaderMap::new(), false),
        ];
        for (url, h, expected) in cases {
            assert_eq!(may_return_to(url, h, &open), expected, "{url} {h:?}");
        }
        let anywhere = TrackingConfig {
            cors_allowed_origins: [
                "*",
                "https://*",
                "*://*:8443",
                "https://**",
                "https://*.**",
                "https://*.",
                "https://*.com",
                "https://evil.example.",
            ]
            .map(String::from)
            .to_vec(),
            ..TrackingConfig::default()
        };
        for url in [
            "https://evil.example/",
            "https://evil.com./",
            "https://a.b.com/",
        ] {
            assert!(
                !may_return_to(url, &HeaderMap::new(), &anywhere),
                "{url}: tracking from anywhere is no redirect to anywhere"
            );
        }
        assert!(
            !may_return_to("https://shop.example/\n", &from_shop, &open),
            "no Location can hold it"
        );
        let listed = TrackingConfig {
            cors_allowed_origins: vec!["https://*.shop.example".into()],
            ..TrackingConfig::default()
        };
        assert!(may_return_to(
            "https://thanks.shop.example/",
            &HeaderMap::new(),
            &listed
        ));
        assert!(!may_return_to(
            "https://evil.example/",
            &HeaderMap::new(),
            &listed
        ));
    }

    #[test]
    fn keys() {
        assert_eq!(form_key("mauticform[email]").as_deref(), Some("email"));
        assert_eq!(form_key("mauticform[Colors][]").as_deref(), Some("colors"));
        assert_eq!(form_key("email"), None);
        assert_eq!(form_key("mauticform[]"), None);
        let mut v = Vec::new();
        push(&mut v, "mauticform[c][]", "a".into());
        push(&mut v, "mauticform[c][]", "b".into());
        assert_eq!(v, vec![("c".into(), "a|b".into())]);
    }
}
