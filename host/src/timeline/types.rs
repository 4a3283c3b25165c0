//! The catalogue of timeline event types: key → label, icon and source group, and how an
//! event's details read (a summary line, key/value rows, an optional link). The host's
//! built-in types live here; plugins add theirs. An event of an unknown type still
//! shows: labelled by its key, its properties rendered raw and marked so.

use serde_json::Value as Json;

use super::Event;

/// One event type as the admin and the activity API show it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventType {
    pub key: String,
    pub label: String,
    pub icon: String,
    /// The source group the admin's filter list shows it under.
    pub group: String,
}

/// An event's details, as structured data: the host turns it into escaped HTML.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Rendered {
    pub summary: String,
    pub rows: Vec<(String, String)>,
    pub link: Option<String>,
    /// True when no renderer knew the type (or it failed): rows are the raw properties.
    pub raw: bool,
}

const BUILT_IN: &[(&str, &str, &str, &str)] = &[
    ("lead.create", "Contact created", "fa-user-plus", "Contacts"),
    ("lead.apiadded", "Added through API", "fa-cloud-upload", "Contacts"),
    ("lead.identified", "Contact identified", "fa-user", "Contacts"),
    ("lead.ipadded", "Accessed from IP", "fa-globe", "Contacts"),
    ("lead.donotcontact", "Do not contact", "fa-ban", "Contacts"),
    ("lead.utmtagsadded", "UTM tags recorded", "fa-tag", "Contacts"),
    ("lead.tags", "Tags changed", "fa-tags", "Contacts"),
    ("lead.note", "Note", "fa-file-text", "Contacts"),
    ("lead.imported", "Imported", "fa-download", "Contacts"),
    ("lead.merged", "Contacts merged", "fa-compress", "Contacts"),
    ("point.gained", "Point gained", "fa-trophy", "Points"),
    ("stage.changed", "Stage changed", "fa-tachometer", "Stages"),
    ("page.hit", "Page hit", "fa-link", "Tracking"),
    ("form.submitted", "Form submitted", "fa-pencil-square-o", "Forms"),
];

/// Every known event type and how to render events. Held in `AppState`; plugins extend it.
pub struct Catalogue {
    types: Vec<EventType>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue::built_in()
    }
}

impl Catalogue {
    pub fn built_in() -> Catalogue {
        Catalogue {
            types: BUILT_IN
                .iter()
                .map(|(key, label, icon, group)| EventType {
                    key: (*key).to_owned(),
                    label: (*label).to_owned(),
                    icon: (*icon).to_owned(),
                    group: (*group).to_owned(),
                })
                .collect(),
        }
    }

    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    pub fn find(&self, key: &str) -> Option<&EventType> {
        self.types.iter().find(|t| t.key == key)
    }

    pub fn label(&self, key: &str) -> String {
        self.find(key).map_or_else(|| key.to_owned(), |t| t.label.clone())
    }

    pub fn icon(&self, key: &str) -> String {
        self.find(key).map_or_else(|| "fa-circle".to_owned(), |t| t.icon.clone())
    }

    /// An event's details. Known types get a summary from their label; the rows are the
    /// properties flattened to text.
    pub fn render(&self, e: &Event) -> Rendered {
        let known = self.find(&e.event_type).is_some();
        Rendered { summary: self.label(&e.event_type), rows: flatten(&e.properties), link: None, raw: !known }
    }
}

/// Properties as `key: text` rows (nested objects become `a.b`).
pub fn flatten(v: &Json) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            Json::Null => {}
            Json::String(s) => out.push((prefix.to_owned(), s.clone())),
            Json::Array(a) => out.push((prefix.to_owned(), a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).collect::<Vec<_>>().join(", "))),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.truncate(100);
    out
}
