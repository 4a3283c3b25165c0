//! `/api/…`: the Mautic-compatible REST API, behind HTTP Basic auth.

pub mod batch;
pub mod companies;
pub mod contact_json;
pub mod contacts;
pub mod exports;
pub mod fields;
pub mod forms;
pub mod imports;
pub mod notes;
pub mod openapi;
pub mod plugins;
pub mod stages;
pub mod tags;

use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};

use crate::error::AppError;
use crate::state::SharedState;

pub fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/contacts", get(contacts::list))
        .route("/contacts/new", post(contacts::create))
        .route("/contacts/batch/new", post(contacts::batch_new))
        .route(
            "/contacts/batch/edit",
            patch(contacts::batch_edit).put(contacts::batch_edit),
        )
        .route("/contacts/batch/delete", delete(contacts::batch_delete))
        .route("/contacts/list/fields", get(contacts::list_fields))
        .route("/contacts/list/owners", get(contacts::list_owners))
        .route("/contacts/list/segments", get(contacts::list_segments))
        .route("/contacts/activity", get(contacts::activity_everyone))
        .route("/contacts/{id}", get(contacts::get))
        .route(
            "/contacts/{id}/edit",
            patch(contacts::patch).put(contacts::put),
        )
        .route("/contacts/{id}/delete", delete(contacts::delete))
        .route("/contacts/{id}/notes", get(contacts::notes))
        .route("/contacts/{id}/devices", get(contacts::devices))
        .route("/contacts/{id}/companies", get(contacts::companies))
        .route("/contacts/{id}/campaigns", get(contacts::campaigns))
        .route("/contacts/{id}/segments", get(contacts::segments))
        .route("/contacts/{id}/activity", get(contacts::activity))
        .route("/contacts/{id}/dnc/{channel}/add", post(contacts::dnc_add))
        .route(
            "/contacts/{id}/dnc/{channel}/remove",
            post(contacts::dnc_remove),
        )
        .route("/contacts/{id}/utm/add", post(contacts::utm_add))
        .route(
            "/contacts/{id}/utm/{utm_id}/remove",
            post(contacts::utm_remove),
        )
        .route("/contacts/{id}/points/{op}/{delta}", post(contacts::points))
        .route("/contacts/{id}/merge/{other_id}", post(contacts::merge))
        .route("/fields/{object}", get(fields::list))
        .route("/fields/{object}/new", post(fields::create))
        .route("/fields/{object}/{id}", get(fields::get))
        .route(
            "/fields/{object}/{id}/edit",
            patch(fields::edit).put(fields::put),
        )
        .route("/fields/{object}/{id}/delete", delete(fields::delete))
        .route("/notes", get(notes::list))
        .route("/notes/new", post(notes::create))
        .route("/notes/{id}", get(notes::get))
        .route("/notes/{id}/edit", patch(notes::edit).put(notes::put))
        .route("/notes/{id}/delete", delete(notes::delete))
        .route(
            "/contacts/{id}/tracking-token",
            get(contacts::tracking_token),
        )
        .route("/companies", get(companies::list))
        .route("/companies/new", post(companies::create))
        .route("/companies/{id}", get(companies::get))
        .route(
            "/companies/{id}/edit",
            patch(companies::edit).put(companies::put),
        )
        .route("/companies/{id}/delete", delete(companies::delete))
        .route(
            "/companies/{id}/contact/{contact_id}/{action}",
            post(companies::contact),
        )
        .route("/forms", get(forms::list))
        .route("/forms/new", post(forms::create))
        .route("/forms/{id}", get(forms::get))
        .route("/forms/{id}/edit", patch(forms::edit).put(forms::edit))
        .route("/forms/{id}/delete", delete(forms::delete))
        .route("/tags/batch/new", post(batch::tags_new))
        .route(
            "/tags/batch/edit",
            patch(batch::tags_edit).put(batch::tags_edit),
        )
        .route("/tags/batch/delete", delete(batch::tags_delete))
        .route("/stages/batch/new", post(batch::stages_new))
        .route(
            "/stages/batch/edit",
            patch(batch::stages_edit).put(batch::stages_edit),
        )
        .route("/stages/batch/delete", delete(batch::stages_delete))
        .route("/companies/batch/new", post(batch::companies_new))
        .route(
            "/companies/batch/edit",
            patch(batch::companies_edit).put(batch::companies_edit),
        )
        .route("/companies/batch/delete", delete(batch::companies_delete))
        .route("/notes/batch/new", post(batch::notes_new))
        .route(
            "/notes/batch/edit",
            patch(batch::notes_edit).put(batch::notes_edit),
        )
        .route("/notes/batch/delete", delete(batch::notes_delete))
        .route("/tags", get(tags::list))
        .route("/tags/new", post(tags::create))
        .route("/tags/{id}", get(tags::get))
        .route("/tags/{id}/edit", patch(tags::edit).put(tags::put))
        .route("/tags/{id}/delete", delete(tags::delete))
        .route("/stages", get(stages::list))
        .route("/stages/new", post(stages::create))
        .route("/stages/{id}", get(stages::get))
        .route("/stages/{id}/edit", patch(stages::edit).put(stages::put))
        .route("/stages/{id}/delete", delete(stages::delete))
        .route(
            "/stages/{id}/contact/{contact_id}/{action}",
            post(stages::change_contact),
        )
        .merge(imports::routes())
        .merge(exports::routes())
        .route("/plugins", get(plugins::list))
        .route("/plugins/upload", post(plugins::upload))
        .route("/plugins/{name}", get(plugins::get).delete(plugins::remove))
        .route("/plugins/{name}/capabilities", put(plugins::capabilities))
        .route("/plugins/{name}/config", put(plugins::config))
        .route("/plugins/{name}/secret", get(plugins::secret))
        .route("/plugins/{name}/secret/rotate", post(plugins::rotate))
        .route("/plugins/{name}/{action}", post(plugins::enable))
        .fallback(|| async {
            AppError::NotFound("Requested URL not found: see /api/openapi.json for the API.".into())
        })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .route_layer(middleware::from_fn(mautic_shaped_refusals))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::after_answered_hits,
        ))
        // Outermost: an unauthenticated request is refused without waiting.
        .route_layer(middleware::from_fn_with_state(
            state,
            crate::http::auth::require_basic_auth,
        ))
}

/// Refusals axum makes itself before a handler runs (a path segment that is not UTF-8,
/// say) are plain text; API clients read errors in Mautic's shape, so they get it too.
async fn mautic_shaped_refusals(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() && plain_text) {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let body = serde_json::json!({ "errors": [{ "code": status.as_u16(), "message": message, "details": {}, "type": null }] });
    (status, axum::Json(body)).into_response()
}
