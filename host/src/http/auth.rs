//! HTTP Basic authentication for `/api/` (Mautic's "Basic Auth" mode).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::error::AppError;
use crate::state::SharedState;
use crate::store;
use crate::users::User;
use crate::web::session::Door;

/// The authenticated user, put into request extensions by `require_basic_auth`.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub User);

/// A well-formed hash of an unguessable password: verifying against it when the user
/// does not exist keeps the response time from telling which user names exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rl1cC8Tz2fkmHf0nbtlVjHqhSW9cKxF6rZyR8fyqW3c";

fn credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// A write a browser sends from a page of another site. Scripts and servers send no
/// `Origin`, and no page can read the API's answers (no CORS), but a plain HTML form
/// posted from any site would ride on Basic credentials the browser remembers from an
/// earlier visit to the API.
fn cross_site_write(req: &Request) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && from_another_site(req.headers())
}

/// Whether a browser sent this request from a page of another site, sibling subdomains
/// included: by its `Sec-Fetch-Site` when it sends one (no page can forge it, and it
/// survives proxies that rewrite `Host`), else by an `Origin` that names another host
/// than this server's (`Host`, or a proxy's `X-Forwarded-Host`). No `Origin`: not a
/// browser's cross-site request.
fn from_another_site(headers: &HeaderMap) -> bool {
    if let Some(other) = fetched_from_another_site(headers) {
        return other;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host.to_ascii_lowercase());
    let Some(origin_host) = origin_host else {
        return true; // `null` (a sandboxed page, a redirect) or garbage
    };
    let ours = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(&origin_host))
    };
    !(ours(header::HOST) || ours(HeaderName::from_static("x-forwarded-host")))
}

/// What a browser's `Sec-Fetch-Site` says: whether the page that sent the request is on
/// another site (sibling subdomains included); `None` when it says nothing.
pub fn fetched_from_another_site(headers: &HeaderMap) -> Option<bool> {
    let site = headers.get("sec-fetch-site")?.as_bytes();
    Some(matches!(site, b"cross-site" | b"same-site"))
}

pub async fn require_basic_auth(
    State(state): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some((username, password)) = credentials(&req) else {
        return AppError::Unauthorized.into_response();
    };
    if cross_site_write(&req) {
        return AppError::Forbidden(
            "the API does not take writes from pages of other sites (the request's Origin); call it from a script or a server"
                .into(),
        )
        .into_response();
    }
    // Wrong passwords count as the login page's do, per address: ten within 15 minutes
    // and that address is refused until they pass, before any password is checked.
    let ip = crate::web::session::client_ip(
        &state,
        req.extensions().get::<ConnectInfo<SocketAddr>>(),
        req.headers(),
    );
    let limiter = &state.web.login_limiter;
    if !limiter.allowed(Door::Api, &username, ip) {
        return AppError::TooManyRequests.into_response();
    }
    let user = match state.store.read().await {
        Ok(mut db) => match store::users::by_username(&mut db, &username).await {
            Ok(u) => u,
            Err(e) => return AppError::from(e).into_response(),
        },
        Err(e) => return AppError::from(e).into_response(),
    };
    let ok = match &user {
        Some(u) if u.is_active => {
            let state = state.clone();
            let u = u.clone();
            // argon2 is CPU-heavy: keep it off the async workers.
            tokio::task::spawn_blocking(move || state.credentials.verify(&u, &password))
                .await
                .unwrap_or(false)
        }
        _ => {
            tokio::task::spawn_blocking(move || {
                crate::users::verify_password(&password, DUMMY_HASH)
            })
            .await
            .ok();
            false
        }
    };
    match user {
        Some(u) if ok => {
            limiter.succeeded(Door::Api, &username, ip);
            req.extensions_mut().insert(CurrentUser(u));
            next.run(req).await
        }
        _ => {
            limiter.failed(Door::Api, &username, ip);
            AppError::Unauthorized.into_response()
        }
    }
}
