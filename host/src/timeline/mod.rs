//! The contact timeline: what happened to a contact, stored generically (type key,
//! source, time, JSON properties). Which types exist and how they read is the
//! catalogue's business (`types`); storage never interprets properties.

pub mod types;

use serde_json::Value as Json;

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub contact_id: i64,
    pub event_type: String,
    pub source: Option<String>,
    pub occurred_at: i64,
    pub ref_id: Option<i64>,
    pub properties: Json,
}

impl Event {
    /// Read from the contact's own row rather than stored (`store::events` gives these
    /// negative ids); there is one of each such type per contact.
    pub fn is_derived(&self) -> bool {
        self.id < 0
    }
}

/// An event to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub contact_id: i64,
    pub event_type: String,
    pub source: Option<String>,
    pub occurred_at: i64,
    pub ref_id: Option<i64>,
    pub properties: Json,
}

impl NewEvent {
    pub fn new(contact_id: i64, event_type: &str, occurred_at: i64, properties: Json) -> NewEvent {
        NewEvent {
            contact_id,
            event_type: event_type.to_owned(),
            source: None,
            occurred_at,
            ref_id: None,
            properties,
        }
    }
    pub fn source(mut self, source: &str) -> NewEvent {
        self.source = Some(source.to_owned());
        self
    }
    pub fn ref_id(mut self, id: i64) -> NewEvent {
        self.ref_id = Some(id);
        self
    }
}

/// Event type keys the host records. The first three are read from the contact's own row
/// (`created_source`, `identified_source`; see `store::events`), not stored as events.
pub mod keys {
    pub const CREATED: &str = "lead.create";
    pub const API_ADDED: &str = "lead.apiadded";
    pub const IDENTIFIED: &str = "lead.identified";
    pub const IP_ADDED: &str = "lead.ipadded";
    pub const DNC: &str = "lead.donotcontact";
    pub const UTM: &str = "lead.utmtagsadded";
    pub const TAGS: &str = "lead.tags";
    pub const NOTE: &str = "lead.note";
    pub const MERGED: &str = "lead.merged";
    pub const IMPORTED: &str = "lead.imported";
    pub const PAGE_HIT: &str = "page.hit";
    pub const FORM_SUBMITTED: &str = "form.submitted";
    pub const POINTS: &str = "point.gained";
    pub const STAGE: &str = "stage.changed";
}
