//! Timeline event types: declare types, render events as structured data, and
//! optionally turn webhook requests into events (a new source of events).

use std::marker::PhantomData;

use serde_json::Value as Json;

use crate::bindings::event_types as world;
use crate::types::*;

pub use world::exports::magpie::plugin::timeline::{
    EventType, IngestResult, IngestedEvent, Link, Rendered, WebhookRequest,
};

/// A plugin of the `event-types` kind. Only `describe` and `event_types` are required.
pub trait EventTypes {
    /// Who the plugin is (the kind is filled in for you).
    fn describe() -> PluginInfo;

    /// The event types the plugin provides.
    fn event_types() -> Vec<EventType>;

    /// One event's details. The default lists the properties as rows.
    fn render(event: &Event) -> Result<Rendered> {
        Ok(Rendered::from_properties(event))
    }

    /// A page of events (one call per history page). The default renders each.
    fn render_page(events: Vec<Event>) -> Vec<Result<Rendered>> {
        events.iter().map(Self::render).collect()
    }

    /// A webhook request (`POST /plugins/<name>/hook/<path>`) turned into events. The
    /// default refuses: the plugin has no webhook.
    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        let _ = request;
        Err(Error::NotFound(
            "this plugin takes no webhook requests".into(),
        ))
    }
}

impl EventType {
    /// `key` (e.g. `video.view`), label, Font Awesome 4 icon class, source group.
    pub fn new(key: &str, label: &str, icon: &str, group: &str) -> EventType {
        EventType {
            key: key.into(),
            label: label.into(),
            icon: icon.into(),
            group: group.into(),
        }
    }
}

impl Rendered {
    pub fn new(summary: impl Into<String>) -> Rendered {
        Rendered {
            summary: summary.into(),
            rows: Vec::new(),
            link: None,
        }
    }
    /// Adds a row (skipped when the value is empty).
    pub fn row(mut self, label: impl Into<String>, value: impl Into<String>) -> Rendered {
        let value = value.into();
        if !value.is_empty() {
            self.rows.push(Pair::new(label, value));
        }
        self
    }
    /// Adds a row when there is a value.
    pub fn row_opt(self, label: impl Into<String>, value: Option<impl Into<String>>) -> Rendered {
        match value {
            Some(v) => self.row(label, v),
            None => self,
        }
    }
    pub fn link(mut self, url: impl Into<String>, label: impl Into<String>) -> Rendered {
        self.link = Some(Link {
            url: url.into(),
            label: label.into(),
        });
        self
    }
    /// The event's type as the summary and its properties as rows.
    pub fn from_properties(event: &Event) -> Rendered {
        let mut r = Rendered::new(event.event_type.clone());
        flatten("", &event.props(), &mut r.rows);
        r
    }
}

/// Properties as `key: text` rows (nested objects become `a.b`).
pub fn flatten(prefix: &str, v: &Json, out: &mut Vec<Pair>) {
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Json::Null => {}
        Json::String(s) => out.push(Pair::new(prefix, s.clone())),
        Json::Array(a) => out.push(Pair::new(
            prefix,
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
        )),
        other => out.push(Pair::new(prefix, other.to_string())),
    }
}

impl WebhookRequest {
    /// The body as JSON.
    pub fn json(&self) -> Result<Json> {
        Ok(serde_json::from_slice(&self.body)?)
    }
    /// A header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, &name.to_ascii_lowercase())
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        find_pair(&self.query, name)
    }
}

impl IngestedEvent {
    pub fn new(
        contact: ContactRef,
        event_type: impl Into<String>,
        properties: Json,
    ) -> IngestedEvent {
        IngestedEvent {
            contact,
            event_type: event_type.into(),
            occurred_at: None,
            properties: properties.to_string(),
        }
    }
    pub fn at(mut self, occurred_at: Timestamp) -> IngestedEvent {
        self.occurred_at = Some(occurred_at);
        self
    }
}

impl IngestResult {
    pub fn events(events: Vec<IngestedEvent>) -> IngestResult {
        IngestResult {
            events,
            message: None,
        }
    }
    pub fn message(mut self, message: impl Into<String>) -> IngestResult {
        self.message = Some(message.into());
        self
    }
}

#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: EventTypes + 'static> world::Guest for Export<T> {
    fn describe() -> PluginInfo {
        PluginInfo {
            kind: PluginKind::EventTypes,
            ..T::describe()
        }
    }
}

impl<T: EventTypes + 'static> world::exports::magpie::plugin::timeline::Guest for Export<T> {
    fn event_types() -> Vec<EventType> {
        T::event_types()
    }
    fn render(events: Vec<Event>) -> Vec<Result<Rendered>> {
        T::render_page(events)
    }
    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        T::ingest(request)
    }
}
