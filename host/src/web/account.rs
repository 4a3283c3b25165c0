//! Logging in and out, and the user's own profile (name, email, password).

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::error::WebResult;
use super::forms::FormData;
use super::layout::{Chrome, render, render_status};
use super::session::{self, Door, LOGIN_CSRF_COOKIE, Session};
use crate::state::SharedState;
use crate::store;
use crate::time::now_ms;
use crate::users;

/// A well-formed argon2 hash of an unguessable password: checked when the user does not
/// exist, so the response time does not tell which user names exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rl1cC8Tz2fkmHf0nbtlVjHqhSW9cKxF6rZyR8fyqW3c";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    error: Option<String>,
    next: String,
    username: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_response(
    state: &SharedState,
    status: StatusCode,
    headers: &HeaderMap,
    error: Option<String>,
    next: String,
    username: String,
) -> Response {
    // The double-submit token: the same signed random value in a cookie and in the form.
    let token = session::login_token(&state.tracking_secret);
    let page = LoginPage {
        chrome: Chrome::anonymous(token.clone()),
        error,
        next,
        username,
    };
    let mut r = render_status(status, &page);
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        LOGIN_CSRF_COOKIE,
        &token,
        Some(3600),
        headers,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> WebResult<Response> {
    let next = q
        .next
        .as_deref()
        .and_then(session::safe_next)
        .unwrap_or_default();
    if session::load(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(if next.is_empty() { "/contacts" } else { &next }).into_response());
    }
    Ok(login_response(
        &state,
        StatusCode::OK,
        &headers,
        None,
        next,
        String::new(),
    ))
}

pub async fn login_submit(
    State(state): State<SharedState>,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = FormData(form);
    let next = session::safe_next(&form.str("next")).unwrap_or_default();
    let username = form.str("username").trim().to_owned();
    let password = form.str("password");
    let cookie_token = session::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    // A login a browser posted from another site (login CSRF: the victim's browser signed
    // into the attacker's account) is refused, whatever tokens it carries. Read from
    // `Sec-Fetch-Site` alone: an `Origin` compared with a `Host` that a proxy rewrote
    // would lock out browsers that send no `Sec-Fetch-Site`.
    let cross_site = crate::http::auth::fetched_from_another_site(&headers) == Some(true);
    if !session::tokens_match(&form.str("_csrf"), cookie_token)
        || !session::login_token_issued(&state.tracking_secret, cookie_token)
        || cross_site
    {
        return Err(super::WebError::Csrf);
    }
    let ip = session::client_ip(&state, connect.as_ref().map(|e| &e.0), &headers);
    let limiter = &state.web.login_limiter;
    if !limiter.allowed(Door::LoginPage, &username, ip) {
        let msg = "Too many failed attempts. Wait a few minutes and try again.".to_owned();
        let mut r = login_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            Some(msg),
            next,
            username,
        );
        // The limiter's window, as the API says it.
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
        return Ok(r);
    }
    let user = {
        let mut db = state.store.read().await?;
        store::users::by_username(&mut db, &username).await?
    };
    let hash = user
        .as_ref()
        .filter(|u| u.is_active)
        .map_or(DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    // argon2 is CPU-heavy: off the async workers. Unknown and disabled users cost the same.
    let verified = tokio::task::spawn_blocking(move || users::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(u) if verified && u.is_active => u,
        _ => {
            limiter.failed(Door::LoginPage, &username, ip);
            let msg = "Wrong user name or password, or the account is disabled.".to_owned();
            return Ok(login_response(
                &state,
                StatusCode::UNAUTHORIZED,
                &headers,
                Some(msg),
                next,
                username,
            ));
        }
    };
    limiter.succeeded(Door::LoginPage, &username, ip);
    let cookie = session::start(&state, &user, &headers).await?;
    let mut r = Redirect::to(if next.is_empty() { "/contacts" } else { &next }).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(LOGIN_CSRF_COOKIE, "", None, &headers))
    {
        h.append(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
) -> WebResult<Response> {
    session::end(&state, &session).await?;
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(session::COOKIE, "", None, &headers))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    chrome: Chrome,
    username: String,
    role: &'static str,
    first_name: String,
    last_name: String,
    email: String,
    errors: std::collections::HashMap<String, String>,
}

impl ProfilePage {
    fn error(&self, key: &str) -> String {
        self.errors.get(key).cloned().unwrap_or_default()
    }
}

pub async fn profile_page(Extension(session): Extension<Session>) -> WebResult<Response> {
    let u = &session.user;
    Ok(render(&ProfilePage {
        chrome: Chrome::new(&session, "profile"),
        username: u.username.clone(),
        role: u.role.as_str(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        email: u.email.clone(),
        errors: Default::default(),
    }))
}

pub async fn profile_save(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form = FormData(form);
    let mut errors = std::collections::HashMap::new();
    let first = form.str("first_name").trim().to_owned();
    let last = form.str("last_name").trim().to_owned();
    let email = form.str("email").trim().to_owned();
    for (key, v) in [("first_name", &first), ("last_name", &last)] {
        if v.chars().count() > 100 || v.chars().any(char::is_control) {
            errors.insert(
                key.to_owned(),
                "must be at most 100 characters, without control characters".to_owned(),
            );
        }
    }
    if !email.is_empty()
        && let Err(m) = crate::contacts::values::validate_email(&email)
    {
        errors.insert("email".to_owned(), m);
    }
    let new_password = form.str("new_password");
    let mut new_hash = None;
    if !new_password.is_empty() {
        if new_password != form.str("confirm_password") {
            errors.insert(
                "confirm_password".to_owned(),
                "the two new passwords differ".to_owned(),
            );
        } else if let Err(m) = users::check_new_password(&new_password) {
            errors.insert("new_password".to_owned(), m);
        } else {
            let current = form.str("current_password");
            let hash = session.user.password_hash.clone();
            let ok = tokio::task::spawn_blocking(move || users::verify_password(&current, &hash))
                .await
                .unwrap_or(false);
            if !ok {
                errors.insert(
                    "current_password".to_owned(),
                    "is not your current password".to_owned(),
                );
            } else {
                let hashed =
                    tokio::task::spawn_blocking(move || users::hash_password(&new_password))
                        .await
                        .map_err(|e| anyhow::anyhow!(e))??;
                new_hash = Some(hashed);
            }
        }
    }
    if !errors.is_empty() {
        let page = ProfilePage {
            chrome: Chrome::new(&session, "profile"),
            username: session.user.username.clone(),
            role: session.user.role.as_str(),
            first_name: first,
            last_name: last,
            email,
            errors,
        };
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    store::users::update_profile(&mut tx, session.user.id, &email, &first, &last, now).await?;
    if let Some(h) = &new_hash {
        store::users::set_password_hash(&mut tx, session.user.id, h, now).await?;
    }
    tx.commit().await?;
    if new_hash.is_some() {
        session::end_others(&state, &session).await?;
        session::flash(
            &state,
            &session,
            "success",
            "Profile saved. Your password was changed and your other sessions were logged out.",
        )
        .await?;
    } else {
        session::flash(&state, &session, "success", "Profile saved.").await?;
    }
    Ok(Redirect::to("/profile").into_response())
}
