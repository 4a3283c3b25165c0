//! The web admin: server-rendered pages (askama templates in `host/templates/`), login
//! sessions with CSRF tokens, and a few static files. Like `http/`, this module speaks
//! HTTP; the work itself is done by the domain modules (`contacts/`, `timeline/`,
//! `users/`) and `store/`.
//!
//! Routes: `/login`, `/logout`, `/profile`, `/contacts…` (list, quick add, new/edit, the
//! contact page, notes, avatars, merge), `/forms…`, `/companies…`, `/settings/…`
//! (fields, users, contact settings, tracking), `/contacts/import…` and
//! `/contacts/imports/…` (the import wizard), `/contacts/export`, `/exports/{id}/download`,
//! `/notifications` and `/static/…`. Everything but `/login` and `/static/` needs a session.

pub mod account;
pub mod assets;
pub mod chart;
pub mod companies;
pub mod contact_form;
pub mod contact_page;
pub mod contacts;
pub mod display;
pub mod error;
pub mod exports;
pub mod forms;
pub mod forms_admin;
pub mod imports;
pub mod layout;
pub mod merge;
pub mod plugins;
pub mod session;
pub mod settings;
pub mod tracking_settings;
pub mod upload;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

pub use error::WebError;
pub use session::{Session, has_valid_session};

use crate::state::SharedState;

/// What the admin keeps in memory (safe to lose: only login throttling).
#[derive(Default)]
pub struct WebState {
    pub login_limiter: session::LoginLimiter,
}

/// Largest form or upload body the admin accepts (uploads are checked again, smaller).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn router(state: SharedState) -> Router<SharedState> {
    let private = Router::new()
        .route("/", get(|| async { Redirect::to("/contacts") }))
        .route("/logout", post(account::logout))
        .route(
            "/profile",
            get(account::profile_page).post(account::profile_save),
        )
        .route("/contacts", get(contacts::list_page))
        .route("/contacts/quick-add", post(contacts::quick_add))
        .route(
            "/contacts/new",
            get(contact_form::new_page).post(contact_form::create),
        )
        .route("/contacts/{id}", get(contact_page::page))
        .route(
            "/contacts/{id}/edit",
            get(contact_form::edit_page).post(contact_form::update),
        )
        .route("/contacts/{id}/delete", post(contact_page::delete))
        .route("/contacts/{id}/avatar", get(upload::serve_avatar))
        .route("/contacts/{id}/notes", post(contact_page::note_create))
        .route(
            "/contacts/{id}/notes/{note}/edit",
            post(contact_page::note_update),
        )
        .route(
            "/contacts/{id}/notes/{note}/delete",
            post(contact_page::note_delete),
        )
        // Issue 4: merging, forms, companies, tracking settings.
        .route("/contacts/{id}/merge", get(merge::page).post(merge::merge))
        .route("/contacts/{id}/merge/search", get(merge::search_json))
        .route("/forms", get(forms_admin::list))
        .route(
            "/forms/new",
            get(forms_admin::new_page).post(forms_admin::create),
        )
        .route("/forms/{id}", get(forms_admin::view))
        .route(
            "/forms/{id}/edit",
            get(forms_admin::edit_page_get).post(forms_admin::update),
        )
        .route("/forms/{id}/delete", post(forms_admin::delete))
        .route("/companies", get(companies::list))
        .route("/companies/{id}", get(companies::view))
        .route("/settings/tracking", get(tracking_settings::page))
        // Issue 6: import and export.
        .route("/contacts/import", get(imports::page))
        .route("/contacts/imports/{id}", get(imports::import_page))
        .route("/contacts/imports/{id}/start", post(imports::start))
        .route("/contacts/imports/{id}/stop", post(imports::stop))
        .route("/contacts/imports/{id}/resume", post(imports::resume))
        .route(
            "/contacts/imports/{id}/progress",
            get(imports::progress_json),
        )
        .route(
            "/contacts/imports/{id}/failed.csv",
            get(imports::failed_csv),
        )
        .route("/contacts/export", post(exports::export))
        .route("/exports/{id}/download", get(exports::download))
        .route("/notifications", get(exports::notifications_page))
        .route("/notifications/read", post(exports::notifications_read))
        // End of issue 6.
        .route(
            "/settings",
            get(|| async { Redirect::to("/settings/fields") }),
        )
        .route("/settings/fields", get(settings::fields_page))
        .route(
            "/settings/fields/new",
            get(settings::field_new_page).post(settings::field_create),
        )
        .route(
            "/settings/fields/{id}/edit",
            get(settings::field_edit_page).post(settings::field_update),
        )
        .route("/settings/fields/{id}/move", post(settings::field_move))
        .route("/settings/fields/{id}/delete", post(settings::field_delete))
        .route("/settings/users", get(settings::users_page))
        .route(
            "/settings/users/new",
            get(settings::user_new_page).post(settings::user_create),
        )
        .route(
            "/settings/users/{id}/edit",
            get(settings::user_edit_page).post(settings::user_update),
        )
        .route(
            "/settings/contacts",
            get(settings::contact_settings_page).post(settings::contact_settings_save),
        )
        .route(
            "/settings/plugins",
            get(plugins::list).post(plugins::upload),
        )
        .route("/settings/plugins/{name}", get(plugins::detail))
        .route(
            "/settings/plugins/{name}/{action}",
            post(plugins::set_enabled),
        )
        .route(
            "/settings/plugins/{name}/capabilities",
            post(plugins::capabilities),
        )
        .route("/settings/plugins/{name}/config", post(plugins::config))
        .route(
            "/settings/plugins/{name}/secret/rotate",
            post(plugins::rotate),
        )
        .route("/settings/plugins/{name}/delete", post(plugins::delete))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::after_answered_hits,
        ))
        // Outermost: a request without a session is sent to log in without waiting.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    // Issue 6: the CSV upload streams a body of any size to disk; its CSRF field is read
    // first, without buffering the file.
    let uploads = Router::new()
        .route(
            "/contacts/import/upload",
            post(imports::upload).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_session_streaming,
        ));
    Router::new()
        .route(
            "/login",
            get(account::login_page).post(account::login_submit),
        )
        .route("/static/{file}", get(assets::serve))
        .merge(private)
        .merge(uploads)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
}

/// Headers every admin response carries: no inline script (all JavaScript is in
/// `/static/app.js`), no framing, no MIME sniffing, no referrer outside the site.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https://www.gravatar.com data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The 404 page for unknown admin URLs (the API keeps its JSON 404).
pub async fn not_found() -> WebError {
    WebError::NotFound
}
