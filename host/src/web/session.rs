//! Admin sessions and CSRF protection.
//!
//! - Logging in creates a random 256-bit token; the browser keeps it in the
//!   `magpie_session` cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) and the
//!   database keeps only its SHA-256. Expiry slides: every use (at most one write a
//!   minute) pushes it `IDLE` further.
//! - Each session has a CSRF token. Every state-changing request (any method but GET and
//!   HEAD) must carry it, in the `_csrf` form field (url-encoded or multipart) or the
//!   `X-CSRF-Token` header, or it is refused with a 403 page before its handler runs.
//! - Before login there is no session: the login form uses a double-submit cookie.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::WebError;
use crate::state::{AppState, SharedState};
use crate::store;
use crate::time::now_ms;
use crate::users::User;

pub const COOKIE: &str = "magpie_session";
/// The double-submit cookie of the login form.
pub const LOGIN_CSRF_COOKIE: &str = "magpie_login_csrf";
/// A session ends after this long without use.
pub const IDLE_MS: i64 = 12 * 60 * 60 * 1000;
/// How stale `last_seen_at` may get before a request slides the expiry.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// The logged-in user of a request, in its extensions.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub flash: Option<String>,
    /// The user's unread notifications (the navigation's indicator).
    pub unread: i64,
    token_hash: String,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request came over HTTPS (directly or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
}

/// A `Set-Cookie` value. `max_age` None removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, headers: &HeaderMap) -> String {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    match max_age {
        Some(age) => {
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
        }
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// The session a request carries, if it is live (sliding its expiry when due).
pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
    let Some(token) = cookie(headers, COOKIE).filter(|t| !t.is_empty() && t.len() <= 128) else {
        return Ok(None);
    };
    let token_hash = hash_token(token);
    let now = now_ms();
    let found = {
        let mut db = state.store.read().await?;
        store::sessions::find_live(&mut db, &token_hash, now).await?
    };
    let Some((row, user)) = found else {
        return Ok(None);
    };
    let unread = {
        let mut db = state.store.read().await?;
        store::exports::unread_count(&mut db, user.id).await?
    };
    if now - row.last_seen_at > TOUCH_EVERY_MS {
        let mut tx = state.store.begin().await?;
        store::sessions::touch(&mut tx, &token_hash, now, now + IDLE_MS).await?;
        tx.commit().await?;
    }
    Ok(Some(Session {
        user,
        csrf: row.csrf_token,
        flash: row.flash,
        unread,
        token_hash,
    }))
}

/// For other parts of Magpie (tracking must not count the marketer's own visits):
/// whether these request headers carry a live admin session.
pub async fn has_valid_session(state: &AppState, headers: &HeaderMap) -> bool {
    matches!(load(state, headers).await, Ok(Some(_)))
}

/// Starts a session for `user`; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, user: &User, headers: &HeaderMap) -> Result<String, WebError> {
    let token = random_token();
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    store::sessions::delete_expired(&mut tx, now).await?;
    store::sessions::insert(
        &mut tx,
        &hash_token(&token),
        user.id,
        &random_token(),
        now,
        now + IDLE_MS,
    )
    .await?;
    store::users::touch_login(&mut tx, user.id, now).await?;
    tx.commit().await?;
    Ok(set_cookie(COOKIE, &token, Some(IDLE_MS / 1000), headers))
}

pub async fn end(state: &AppState, session: &Session) -> Result<(), WebError> {
    let mut tx = state.store.begin().await?;
    store::sessions::delete(&mut tx, &session.token_hash).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the user's other sessions (after a password change).
pub async fn end_others(state: &AppState, session: &Session) -> Result<(), WebError> {
    let mut tx = state.store.begin().await?;
    store::sessions::delete_for_user(&mut tx, session.user.id, Some(&session.token_hash)).await?;
    tx.commit().await?;
    Ok(())
}

/// A message for the next page: `kind` is "success", "error" or "info".
pub async fn flash(
    state: &AppState,
    session: &Session,
    kind: &str,
    text: &str,
) -> Result<(), WebError> {
    let text: String = text.chars().take(500).collect();
    let mut tx = state.store.begin().await?;
    store::sessions::set_flash(
        &mut tx,
        &session.token_hash,
        Some(&format!("{kind}:{text}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A local path to return to after login: must start with one `/` and stay on this site.
pub fn safe_next(next: &str) -> Option<String> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 2000
        && !next.starts_with("/login")
        && !next.starts_with("/logout");
    ok.then(|| next.to_owned())
}

fn login_redirect(req: &Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let next = if req.method() == Method::GET {
        safe_next(target)
    } else {
        None
    };
    match next {
        Some(n) => {
            let enc = percent_encoding::utf8_percent_encode(&n, percent_encoding::NON_ALPHANUMERIC);
            Redirect::to(&format!("/login?next={enc}")).into_response()
        }
        None => Redirect::to("/login").into_response(),
    }
}

/// The login form's token: random, with the time it was issued, signed with the
/// server's secret (the same in every process: it is kept in the database), so the cookie
/// of the double submit holds only values this server issued within the last
/// `LOGIN_TOKEN_TTL`. Posts from other sites are refused besides (`login_submit`).
pub fn login_token(secret: &[u8]) -> String {
    let payload = format!("{}.{}", random_token(), now_ms() / 1000);
    let signature = login_signature(secret, &payload);
    format!("{payload}.{signature}")
}

/// How long a login form's token is taken: its cookie's life, with room for a slow typist.
const LOGIN_TOKEN_TTL: i64 = 2 * 3600;

pub fn login_token_issued(secret: &[u8], token: &str) -> bool {
    let Some((payload, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let fresh = payload
        .split_once('.')
        .and_then(|(_, issued)| issued.parse::<i64>().ok())
        .and_then(|issued| (now_ms() / 1000).checked_sub(issued))
        .is_some_and(|age| (0..=LOGIN_TOKEN_TTL).contains(&age));
    fresh && tokens_match(signature, &login_signature(secret, payload))
}

/// Signed as click-through tokens are, under a prefix of its own (theirs start `v1.`).
fn login_signature(secret: &[u8], payload: &str) -> String {
    crate::tracking::token::sign(secret, &format!("login.{payload}"))
}

/// Constant-time comparison of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The CSRF token a request sends: header, url-encoded `_csrf`, or multipart `_csrf`.
/// Returns the request rebuilt with its body so the handler can still read it.
async fn csrf_of(req: Request) -> Result<(Option<String>, Request), WebError> {
    if let Some(t) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return Ok((Some(t.to_owned()), req));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (parts, body) = req.into_parts();
    let bytes = crate::http::extract::read_body(body, super::MAX_BODY)
        .await
        .map_err(|_| {
            WebError::TooLarge(format!(
                "The request is larger than {} MB.",
                super::MAX_BODY / (1024 * 1024)
            ))
        })?;
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let token = if mime == "application/x-www-form-urlencoded" {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(k, _)| k == "_csrf")
                    .map(|(_, v)| v)
            })
    } else if mime == "multipart/form-data" {
        let mut probe = Request::builder()
            .header(header::CONTENT_TYPE, &content_type)
            .body(Body::from(bytes.clone()))
            .map_err(|e| WebError::Internal(e.into()))?;
        // The same body limit as the handler's (set by the router's DefaultBodyLimit).
        *probe.extensions_mut() = parts.extensions.clone();
        let mut token = None;
        if let Ok(mut multipart) = Multipart::from_request(probe, &()).await {
            while let Ok(Some(field)) = multipart.next_field().await {
                if field.name() == Some("_csrf") {
                    token = field.text().await.ok();
                    break;
                }
            }
        }
        token
    } else {
        None
    };
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The body of a request being probed for its CSRF field: chunks pass through and are
/// kept, so they can be replayed in front of the part not read yet.
struct Tee {
    rest: Option<axum::body::BodyDataStream>,
    seen: Vec<bytes::Bytes>,
    seen_bytes: usize,
    failed: bool,
}

struct TeeStream(Arc<Mutex<Tee>>);

impl futures_util::Stream for TeeStream {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let mut tee = self.0.lock().expect("tee poisoned");
        // The CSRF field comes first; a body that does not reach it within the admin's
        // usual limit is not read further here.
        if tee.seen_bytes > super::MAX_BODY {
            return Poll::Ready(None);
        }
        let Some(rest) = tee.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match std::pin::Pin::new(rest).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                tee.seen_bytes += chunk.len();
                tee.seen.push(chunk.clone());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                tee.failed = true;
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            other => other.map(|o| o.map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))),
        }
    }
}

/// The `_csrf` field of a multipart body, reading no further than needed; the request
/// comes back with its whole body (what was read, then the rest, still streaming).
async fn csrf_of_streaming(req: Request) -> Result<(Option<String>, Request), WebError> {
    use futures_util::StreamExt;
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Tee {
        rest: Some(body.into_data_stream()),
        seen: Vec::new(),
        seen_bytes: 0,
        failed: false,
    }));
    let mut probe = Request::builder()
        .header(
            header::CONTENT_TYPE,
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(header::HeaderValue::from_static("")),
        )
        .body(Body::from_stream(TeeStream(shared.clone())))
        .map_err(|e| WebError::Internal(e.into()))?;
    *probe.extensions_mut() = parts.extensions.clone();
    let mut token = None;
    if let Ok(mut multipart) = Multipart::from_request(probe, &()).await {
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.name() == Some("_csrf") {
                token = field.text().await.ok();
                break;
            }
        }
    }
    let mut tee = shared.lock().expect("tee poisoned");
    if tee.failed {
        return Err(WebError::BadRequest("The upload was interrupted.".into()));
    }
    let seen = std::mem::take(&mut tee.seen);
    let rest = tee.rest.take();
    drop(tee);
    let replay = futures_util::stream::iter(seen.into_iter().map(Ok::<_, axum::Error>));
    let body = match rest {
        Some(rest) => Body::from_stream(replay.chain(rest)),
        None => Body::from_stream(replay),
    };
    Ok((token, Request::from_parts(parts, body)))
}

/// Middleware of every admin route but login: a live session, and a CSRF token on
/// state-changing requests. Unauthenticated visits go to the login page and come back.
pub async fn require_session(
    State(state): State<SharedState>,
    req: Request,
    next: Next,
) -> Response {
    check_session(&state, req, next, false).await
}

/// `require_session` for routes that take uploads of any size (the CSV import): a
/// multipart body is read only as far as its `_csrf` field, which the form sends first,
/// and the handler streams the rest.
pub async fn require_session_streaming(
    State(state): State<SharedState>,
    req: Request,
    next: Next,
) -> Response {
    check_session(&state, req, next, true).await
}

async fn check_session(state: &AppState, req: Request, next: Next, streaming: bool) -> Response {
    let session = match load(state, req.headers()).await {
        Ok(Some(s)) => s,
        Ok(None) => return login_redirect(&req),
        Err(e) => return e.into_response(),
    };
    let mut req = req;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let found = if streaming && is_multipart(req.headers()) {
            csrf_of_streaming(req).await
        } else {
            csrf_of(req).await
        };
        let (token, rebuilt) = match found {
            Ok(x) => x,
            Err(e) => return e.into_response(),
        };
        if !token.is_some_and(|t| tokens_match(&t, &session.csrf)) {
            tracing::warn!(path = %rebuilt.uri().path(), "refused a request without a valid CSRF token");
            return WebError::Csrf.into_response();
        }
        req = rebuilt;
    } else if session.flash.is_some() && req.method() == Method::GET {
        // The flash is shown by this page: consume it.
        if let Ok(mut tx) = state.store.begin().await
            && store::sessions::set_flash(&mut tx, &session.token_hash, None)
                .await
                .is_ok()
        {
            let _ = tx.commit().await;
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The client's address, when the server knows it (it does when serving a socket): the
/// peer, or behind a trusted proxy the client it names (`AppState::client_ip`).
pub fn client_ip(
    state: &AppState,
    req_ext: Option<&ConnectInfo<SocketAddr>>,
    headers: &axum::http::HeaderMap,
) -> Option<IpAddr> {
    req_ext.map(|c| state.client_ip(c.0.ip(), headers))
}

/// Throttles password guessing: after `MAX_FAILURES` failed logins for one user name or
/// from one address within `WINDOW`, further attempts are refused until it passes.
/// In memory on purpose: losing it (restart) only resets the counters.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Wrong API passwords from one address, whatever the names, before it is refused.
pub const API_MAX_FAILURES: u32 = 100;

/// Where a password is tried. Each door counts apart, so guessing at one does not lock
/// the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    LoginPage,
    Api,
}

impl LoginLimiter {
    /// The counters an attempt adds to, each with its limit; the first is the user name's,
    /// which the right password clears. The login page counts per name and per address.
    /// The API counts per name from an address and, more loosely, per address: a name
    /// alone is not a key there, so guesses from one place cannot lock an integration
    /// calling from another out of the API. Names are cut to 64 characters, so the map's
    /// keys stay small whatever a client sends.
    fn keys(door: Door, username: &str, ip: Option<IpAddr>) -> Vec<(String, u32)> {
        let user: String = username.to_lowercase().chars().take(64).collect();
        match door {
            Door::LoginPage => {
                let mut keys = vec![(format!("u:{user}"), MAX_FAILURES)];
                if let Some(ip) = ip {
                    keys.push((format!("ip:{ip}"), MAX_FAILURES));
                }
                keys
            }
            Door::Api => {
                let at = ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
                vec![
                    (format!("api:{user}@{at}"), MAX_FAILURES),
                    (format!("api-ip:{at}"), API_MAX_FAILURES),
                ]
            }
        }
    }

    /// Whether an attempt may be made now.
    pub fn allowed(&self, door: Door, username: &str, ip: Option<IpAddr>) -> bool {
        let map = self.failures.lock().expect("limiter poisoned");
        Self::keys(door, username, ip).iter().all(|(k, max)| {
            map.get(k)
                .is_none_or(|(n, since)| *n < *max || since.elapsed() > WINDOW)
        })
    }

    pub fn failed(&self, door: Door, username: &str, ip: Option<IpAddr>) {
        let mut map = self.failures.lock().expect("limiter poisoned");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        for (k, _) in Self::keys(door, username, ip) {
            let entry = map.entry(k).or_insert((0, Instant::now()));
            if entry.1.elapsed() > WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    /// The right password clears the user name's count.
    pub fn succeeded(&self, door: Door, username: &str, ip: Option<IpAddr>) {
        let (name_key, _) = Self::keys(door, username, ip).swap_remove(0);
        self.failures
            .lock()
            .expect("limiter poisoned")
            .remove(&name_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_tokens_are_ours_and_fresh() {
        let secret = b"secret";
        let token = login_token(secret);
        assert!(login_token_issued(secret, &token));
        assert!(!login_token_issued(b"another secret", &token));
        assert!(!login_token_issued(secret, &token.replace('.', "-")));
        assert!(!login_token_issued(secret, "chosen.by-the-attacker"));
        let issued = |secs_ago: i64| {
            let payload = format!("{}.{}", random_token(), now_ms() / 1000 - secs_ago);
            format!("{payload}.{}", login_signature(secret, &payload))
        };
        assert!(login_token_issued(secret, &issued(3600)));
        assert!(
            !login_token_issued(secret, &issued(LOGIN_TOKEN_TTL + 60)),
            "a harvested token does not last"
        );
        assert!(
            !login_token_issued(secret, &issued(-3600)),
            "nor one from the future"
        );
        assert!(!login_token_issued(secret, &format!("x.{}.sig", i64::MIN)));
    }

    #[test]
    fn next_must_stay_local() {
        assert_eq!(safe_next("/contacts?q=a"), Some("/contacts?q=a".into()));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "",
            "/login",
            "/a\u{0}b",
            "/a\\b",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cookies_and_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; magpie_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", ""));
        assert_eq!(random_token().len(), 43);
        assert!(set_cookie(COOKIE, "x", Some(5), &h).contains("HttpOnly; SameSite=Lax"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie(COOKIE, "x", Some(5), &h).ends_with("; Secure"));
    }

    #[test]
    fn limiter_locks_after_failures() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let page = Door::LoginPage;
        for _ in 0..MAX_FAILURES {
            assert!(l.allowed(page, "ada", Some(ip)));
            l.failed(page, "ada", Some(ip));
        }
        assert!(!l.allowed(page, "ada", None));
        assert!(!l.allowed(page, "other", Some(ip)));
        assert!(l.allowed(page, "other", None));
        // The API counts apart: per name from an address, then per address.
        assert!(l.allowed(Door::Api, "ada", Some(ip)));
        for i in 0..API_MAX_FAILURES {
            l.failed(Door::Api, &format!("name{i}"), Some(ip));
        }
        assert!(!l.allowed(Door::Api, "someone", Some(ip)));
        assert!(l.allowed(Door::Api, "someone", Some("192.0.2.2".parse().unwrap())));
    }
}
