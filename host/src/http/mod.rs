//! HTTP: with `web/` (the admin's pages), the only modules that speak axum. Routers per
//! area, extractors, auth, logging.

pub mod api;
pub mod auth;
pub mod extract;
pub mod forms;
pub mod php_query;
pub mod serve;
pub mod tracking;

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::SharedState;

/// A pixel is answered once its hit is journaled, and the hit is applied moments later.
/// An API call or an admin page first waits (up to two seconds, and not during a burst)
/// for the hits answered before it, so whoever tracks a visit and then reads or edits the contact sees the
/// visit, as with Mautic, which applies a hit before answering it.
pub async fn after_answered_hits(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    state
        .tracker
        .caught_up(std::time::Duration::from_secs(2))
        .await;
    next.run(request).await
}

/// The whole application. Tests call this without a socket.
pub fn app(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/mtc.js", get(tracking::script))
        .route(
            "/mtc/event",
            get(tracking::event)
                .post(tracking::event)
                .options(tracking::preflight),
        )
        .route(
            "/mtracking.gif",
            get(tracking::pixel).options(tracking::preflight),
        )
        .route("/mtc", get(tracking::current).options(tracking::preflight))
        .route("/form/submit", post(forms::submit))
        .nest("/api", api::router(state.clone()))
        // Plugins' webhooks: public, authenticated by each plugin's secret.
        .route("/plugins/{name}/hook", post(api::plugins::hook))
        .route("/plugins/{name}/hook/{*rest}", post(api::plugins::hook))
        .merge(crate::web::router(state.clone()))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// 200 once migrations ran (they ran before the listener opened) and the database answers.
async fn healthz(State(state): State<SharedState>) -> Response {
    match state.store.read().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// One log line per request: method, path (never the query: it may carry personal data
/// or credentials), status and latency.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, latency_ms = format!("{ms:.2}"), "request");
    } else {
        tracing::info!(%method, %path, status, latency_ms = format!("{ms:.2}"), "request");
    }
    response
}
