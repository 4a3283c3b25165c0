//! `/api/openapi.json`, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(info(title = "Magpie API", description = "Mautic-compatible contacts API. HTTP Basic auth with a Magpie user."))]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
