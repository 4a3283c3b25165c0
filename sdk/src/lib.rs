//! # magpie-sdk: write Magpie plugins
//!
//! A Magpie plugin is one WebAssembly component (target `wasm32-wasip2`) of one of four
//! kinds. Implement the kind's trait on a unit struct, call [`export_plugin!`], build
//! with `cargo build --release --target wasm32-wasip2`, and upload the `.wasm` in the
//! admin (or drop it into `<data-dir>/plugins/`). The WIT package `magpie:plugin@0.1.0`
//! (in `wit/` of the Magpie repository) is the contract; this crate hides its bindings.
//!
//! | kind | trait | what it does |
//! |---|---|---|
//! | `event-types` | [`EventTypes`] | timeline event types, their rendering, webhook ingestion |
//! | `batch-action` | [`BatchAction`] | an action run over a selection of contacts |
//! | `integration` | [`Integration`] | social profiles, CRM sync |
//! | `tracking-forwarder` | [`TrackingForwarder`] | a tracking-script snippet, server-side forwarding |
//!
//! Plugins compute; everything else goes through [`host`], which checks the
//! capabilities the plugin requested in `describe` and the admin granted. Plugins
//! return structured data (summaries, rows, links), never HTML: Magpie escapes it all.
//!
//! Every call runs on a fresh instance with a deadline and a memory cap, so keep no
//! state in statics between calls: use [`host::storage`].
//!
//! ## Event types (complete example)
//!
//! ```
//! use magpie_sdk::prelude::*;
//!
//! struct Calls;
//!
//! impl EventTypes for Calls {
//!     fn describe() -> PluginInfo {
//!         plugin_info!()
//!             .title("Phone calls")
//!             .capability(Capability::RecordEvents)
//!             .setting(Setting::secret("api_key", "Telephony API key"))
//!     }
//!
//!     fn event_types() -> Vec<EventType> {
//!         vec![EventType::new("call.made", "Phone call", "fa-phone", "Calls")]
//!     }
//!
//!     fn render(event: &Event) -> Result<Rendered> {
//!         let p = event.props();
//!         let minutes = p["seconds"].as_i64().unwrap_or(0) / 60;
//!         Ok(Rendered::new(format!("Call of {minutes} min"))
//!             .row("Number", p["number"].as_str().unwrap_or(""))
//!             .link("https://calls.example.com/", "Open in the telephony app"))
//!     }
//!
//!     // POST /plugins/<name>/hook/call with {"email": "…", "number": "…", "seconds": 75}
//!     fn ingest(request: WebhookRequest) -> Result<IngestResult> {
//!         let body = request.json()?;
//!         let email = body["email"].as_str().ok_or_else(|| Error::invalid("email is required"))?;
//!         Ok(IngestResult::events(vec![IngestedEvent::new(
//!             ContactRef::Email(email.to_owned()),
//!             "call.made",
//!             json!({ "number": body["number"], "seconds": body["seconds"] }),
//!         )]))
//!     }
//! }
//!
//! export_plugin!(Calls: EventTypes);
//!
//! # fn main() {
//! // Tested natively, without the server:
//! let event = Event { id: 1, contact_id: 1, event_type: "call.made".into(), source: None,
//!     occurred_at: 0, properties: r#"{"number":"+33 1","seconds":125}"#.into() };
//! assert_eq!(Calls::render(&event).unwrap().summary, "Call of 2 min");
//! # }
//! ```
//!
//! ## Batch action (complete example)
//!
//! ```
//! use magpie_sdk::prelude::*;
//!
//! struct TagAll;
//!
//! impl BatchAction for TagAll {
//!     fn describe() -> PluginInfo {
//!         plugin_info!().title("Tag contacts").capability(Capability::WriteTags)
//!     }
//!     fn form() -> ActionForm {
//!         ActionForm::new("Add a tag", "fa-tag").field(Setting::text("tag", "Tag").required())
//!     }
//!     fn validate(input: &[Pair]) -> std::result::Result<(), Vec<InputProblem>> {
//!         match find_pair(input, "tag") {
//!             Some(t) if !t.trim().is_empty() => Ok(()),
//!             _ => Err(vec![InputProblem { key: "tag".into(), message: "is required".into() }]),
//!         }
//!     }
//!     fn run(context: RunContext, contact_ids: Vec<i64>) -> Result<BatchReport> {
//!         let tag = context.input("tag").unwrap_or_default().to_owned();
//!         let mut report = BatchReport::new();
//!         for id in contact_ids {
//!             match host::change_tags(id, &[tag.clone()], &[]) {
//!                 Ok(()) => report.succeeded.push(id),
//!                 Err(e) => report.fail(id, e.to_string(), false),
//!             }
//!         }
//!         Ok(report)
//!     }
//! }
//!
//! export_plugin!(TagAll: BatchAction);
//! # fn main() {}
//! ```
//!
//! ## Integration (complete example)
//!
//! ```
//! use magpie_sdk::prelude::*;
//!
//! struct Gravatarish;
//!
//! impl Integration for Gravatarish {
//!     fn describe() -> PluginInfo {
//!         plugin_info!()
//!             .title("Profiles")
//!             .capability(Capability::Http("https://profiles.example.com".into()))
//!     }
//!     fn features() -> CrmFeatures {
//!         CrmFeatures { social_profiles: true, ..CrmFeatures::none() }
//!     }
//!     fn social_profiles(contact: Contact) -> Result<Vec<SocialProfile>> {
//!         let Some(email) = contact.email() else { return Ok(vec![]) };
//!         let r = host::http::get(&format!("https://profiles.example.com/v1/{email}"))?;
//!         if r.status == 404 {
//!             return Ok(vec![]);
//!         }
//!         let p = r.json()?;
//!         Ok(vec![SocialProfile {
//!             network: "example".into(),
//!             handle: p["handle"].as_str().unwrap_or_default().into(),
//!             url: p["url"].as_str().map(Into::into),
//!             display_name: p["name"].as_str().map(Into::into),
//!             avatar_url: None, bio: None, location: None, followers: None, extra: vec![],
//!         }])
//!     }
//! }
//!
//! export_plugin!(Gravatarish: Integration);
//! # fn main() {}
//! ```
//!
//! ## Tracking forwarder (complete example)
//!
//! ```
//! use magpie_sdk::prelude::*;
//!
//! struct Analytics;
//!
//! impl TrackingForwarder for Analytics {
//!     fn describe() -> PluginInfo {
//!         plugin_info!()
//!             .title("Example analytics")
//!             .capability(Capability::Http("https://collect.example.com".into()))
//!             .setting(Setting::text("site_id", "Site id").required())
//!     }
//!     fn script_snippet(_: SnippetContext) -> Option<String> {
//!         let site = host::config::get("site_id")?;
//!         // Data, not code, is interpolated: serialise it as a JSON string.
//!         Some(format!("window.exampleAnalytics = {{ site: {} }};", json!(site)))
//!     }
//!     fn filter() -> ForwardFilter {
//!         ForwardFilter { kinds: vec![HitKind::PageView], identified_only: false }
//!     }
//!     fn forward(hit: TrackedHit) -> Result<()> {
//!         let site = host::config::require("site_id")?;
//!         let r = host::http::post_json(
//!             "https://collect.example.com/hit",
//!             &json!({ "site": site, "url": hit.url, "ts": hit.occurred_at }),
//!         )?;
//!         if r.is_success() { Ok(()) } else { Err(Error::Unavailable(format!("status {}", r.status))) }
//!     }
//! }
//!
//! export_plugin!(Analytics: TrackingForwarder);
//! # fn main() {}
//! ```
//!
//! ## Testing without the server
//!
//! Natively (`cargo test` on your machine), the [`host`] functions go to a
//! [`testing::FakeHost`]: install one, call the trait's functions, inspect what was
//! recorded. The host's own test suite also runs the built components in the real
//! runtime.

pub mod batch_action;
#[doc(hidden)]
pub mod bindings;
pub mod event_types;
pub mod host;
pub mod integration;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod tracking_forwarder;
pub mod types;

pub use batch_action::BatchAction;
pub use event_types::EventTypes;
pub use integration::Integration;
pub use serde_json::{self, Value as Json, json};
pub use tracking_forwarder::TrackingForwarder;
pub use types::*;

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::batch_action::{
        ActionForm, BatchAction, BatchReport, InputProblem, ItemFailure, RunContext,
    };
    pub use crate::event_types::{
        EventType, EventTypes, IngestResult, IngestedEvent, Link, Rendered, WebhookRequest,
    };
    pub use crate::integration::{
        CrmFeatures, FieldMapping, Integration, PullBatch, PushAction, PushOutcome, PushRequest,
        RemoteChange, RemoteField, SocialProfile, SyncDirection,
    };
    pub use crate::tracking_forwarder::{
        ForwardFilter, HitKind, SnippetContext, TrackedHit, TrackingForwarder,
    };
    pub use crate::types::*;
    pub use crate::{export_plugin, host, plugin_info};
    pub use serde_json::{Value as Json, json};
}

/// A [`PluginInfo`] named, versioned and described from the plugin's Cargo.toml.
#[macro_export]
macro_rules! plugin_info {
    () => {
        $crate::PluginInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            .description(env!("CARGO_PKG_DESCRIPTION"))
    };
}

/// Exports a type as the plugin: `export_plugin!(MyPlugin: EventTypes);` (or
/// `BatchAction`, `Integration`, `TrackingForwarder`). Expands to nothing when not
/// building for wasm32, so native tests call the trait directly.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty : EventTypes) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __MagpiePluginExport = $crate::event_types::Export<$ty>;
            $crate::bindings::event_types::__export_event_types_world!(__MagpiePluginExport with_types_in $crate::bindings::event_types);
        };
    };
    ($ty:ty : BatchAction) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __MagpiePluginExport = $crate::batch_action::Export<$ty>;
            $crate::bindings::batch_action::__export_batch_action_world!(__MagpiePluginExport with_types_in $crate::bindings::batch_action);
        };
    };
    ($ty:ty : Integration) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __MagpiePluginExport = $crate::integration::Export<$ty>;
            $crate::bindings::integration::__export_integration_world!(__MagpiePluginExport with_types_in $crate::bindings::integration);
        };
    };
    ($ty:ty : TrackingForwarder) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __MagpiePluginExport = $crate::tracking_forwarder::Export<$ty>;
            $crate::bindings::tracking_forwarder::__export_tracking_forwarder_world!(__MagpiePluginExport with_types_in $crate::bindings::tracking_forwarder);
        };
    };
}
