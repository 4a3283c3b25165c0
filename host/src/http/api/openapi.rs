//! `/api/openapi.json`, generated from the handlers' annotations.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Mautic's error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorItem {
    pub code: u16,
    pub message: String,
    /// Per-field messages for 422s: `{"email": ["must be a valid email address"]}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// `"access_denied"` for a refused login (as Mautic's firewall answers), else null.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// What the annotations cannot say by themselves: the methods a route serves twice
/// (Mautic's clients send PUT where PATCH is documented), other ways to send a body, and
/// operation ids unique across the document (the handlers' names repeat from one area to
/// the next), made of the method and the path: `get_api_contacts_id_activity`.
struct Completions;

impl Modify for Completions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref};
        // A webhook may be called with no path after `hook` too.
        if let Some(mut bare) = openapi
            .paths
            .paths
            .get("/plugins/{name}/hook/{rest}")
            .cloned()
        {
            if let Some(params) = bare.post.as_mut().and_then(|o| o.parameters.as_mut()) {
                params.retain(|p| p.name != "rest");
            }
            openapi
                .paths
                .paths
                .insert("/plugins/{name}/hook".into(), bare);
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.ends_with("/batch/edit") || path == "/api/forms/{id}/edit" {
                item.put = item.put.take().or_else(|| item.patch.clone());
            }
            if path == "/api/imports"
                && let Some(body) = item.post.as_mut().and_then(|o| o.request_body.as_mut())
            {
                body.content.insert(
                    "multipart/form-data".into(),
                    ContentBuilder::new()
                        .schema(Some(Ref::new("#/components/schemas/FileUpload")))
                        .build(),
                );
            }
            let name: String = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_matches(|c| c == '{' || c == '}'))
                .collect::<Vec<_>>()
                .join("_");
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{name}"));
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            "FileUpload".into(),
            utoipa::openapi::ObjectBuilder::new()
                .property(
                    "file",
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Binary,
                        ))),
                )
                .required("file")
                .into(),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        super::contacts::list,
        super::contacts::get,
        super::contacts::create,
        super::contacts::patch,
        super::contacts::put,
        super::contacts::delete,
        super::contacts::batch_new,
        super::contacts::batch_edit,
        super::contacts::batch_delete,
        super::contacts::list_fields,
        super::contacts::list_owners,
        super::contacts::notes,
        super::contacts::devices,
        super::contacts::companies,
        super::contacts::campaigns,
        super::contacts::segments,
        super::contacts::list_segments,
        super::contacts::activity,
        super::contacts::activity_everyone,
        super::contacts::dnc_add,
        super::contacts::dnc_remove,
        super::contacts::utm_add,
        super::contacts::utm_remove,
        super::contacts::points,
        super::contacts::merge,
        super::contacts::tracking_token,
        super::companies::list,
        super::companies::get,
        super::companies::create,
        super::companies::edit,
        super::companies::put,
        super::companies::delete,
        super::companies::contact,
        super::forms::list,
        super::forms::get,
        super::forms::create,
        super::forms::edit,
        super::forms::delete,
        super::fields::list,
        super::fields::get,
        super::fields::create,
        super::fields::edit,
        super::fields::put,
        super::fields::delete,
        super::notes::list,
        super::notes::get,
        super::notes::create,
        super::notes::edit,
        super::notes::put,
        super::notes::delete,
        super::tags::list,
        super::tags::create,
        super::batch::tags_new,
        super::batch::tags_edit,
        super::batch::tags_delete,
        super::batch::stages_new,
        super::batch::stages_edit,
        super::batch::stages_delete,
        super::batch::companies_new,
        super::batch::companies_edit,
        super::batch::companies_delete,
        super::batch::notes_new,
        super::batch::notes_edit,
        super::batch::notes_delete,
        super::tags::get,
        super::tags::edit,
        super::tags::put,
        super::tags::delete,
        super::stages::list,
        super::stages::create,
        super::stages::get,
        super::stages::edit,
        super::stages::put,
        super::stages::delete,
        super::stages::change_contact,
        super::imports::upload,
        super::imports::list,
        super::imports::get_one,
        super::imports::start,
        super::imports::stop,
        super::imports::resume,
        super::imports::delete_one,
        super::imports::failed_csv,
        super::exports::create,
        super::exports::list,
        super::exports::get_one,
        super::exports::download,
        super::exports::direct,
        super::exports::notifications,
        super::exports::notifications_read,
        super::plugins::list,
        super::plugins::get,
        super::plugins::enable,
        super::plugins::capabilities,
        super::plugins::config,
        super::plugins::secret,
        super::plugins::rotate,
        super::plugins::upload,
        super::plugins::remove,
        super::plugins::hook
    ),
    components(schemas(ErrorBody, ErrorItem)),
    modifiers(&BasicAuth, &Completions),
    security(("basic" = [])),
    info(title = "Magpie API", description = "Mautic-compatible contacts API. HTTP Basic auth with a Magpie user."))]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
