//! The types plugins exchange with Magpie (generated from the WIT package), with
//! constructors and helpers.

use serde_json::Value as Json;

pub use crate::bindings::imports::magpie::plugin::host::{HttpRequest, HttpResponse, LogLevel};
pub use crate::bindings::imports::magpie::plugin::types::{
    Capability, Contact, ContactRef, Error, Event, Field, FieldValue, NewEvent, Pair, PluginInfo,
    PluginKind, Setting, SettingKind, Timestamp,
};

/// `Result` with the plugin error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidInput(message.into())
    }
    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed(message.into())
    }
    /// The kind, as a word: `invalid-input`, `not-found`, `denied`, `unavailable`, `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid-input",
            Error::NotFound(_) => "not-found",
            Error::Denied(_) => "denied",
            Error::Unavailable(_) => "unavailable",
            Error::Failed(_) => "failed",
        }
    }
    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m)
            | Error::NotFound(m)
            | Error::Denied(m)
            | Error::Unavailable(m)
            | Error::Failed(m) => m,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::InvalidInput(format!("invalid JSON: {e}"))
    }
}

impl Pair {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Pair {
        Pair {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The value of `name` in a list of pairs (first match).
pub fn find_pair<'a>(pairs: &'a [Pair], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

impl FieldValue {
    /// The value as text (numbers and booleans formatted), `None` when null.
    pub fn as_text(&self) -> Option<String> {
        match self {
            FieldValue::Null => None,
            FieldValue::Text(s) => Some(s.clone()),
            FieldValue::Integer(i) => Some(i.to_string()),
            FieldValue::Float(f) => Some(f.to_string()),
            FieldValue::Boolean(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        }
    }
}

impl Field {
    pub fn new(alias: impl Into<String>, value: FieldValue) -> Field {
        Field {
            alias: alias.into(),
            value,
        }
    }
    pub fn text(alias: impl Into<String>, value: impl Into<String>) -> Field {
        Field::new(alias, FieldValue::Text(value.into()))
    }
    pub fn integer(alias: impl Into<String>, value: i64) -> Field {
        Field::new(alias, FieldValue::Integer(value))
    }
    pub fn clear(alias: impl Into<String>) -> Field {
        Field::new(alias, FieldValue::Null)
    }
}

impl Contact {
    /// A field's value, `None` when the contact has no value for it.
    pub fn field(&self, alias: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|f| f.alias == alias)
            .map(|f| &f.value)
            .filter(|v| **v != FieldValue::Null)
    }
    /// A field as text.
    pub fn text(&self, alias: &str) -> Option<String> {
        self.field(alias).and_then(FieldValue::as_text)
    }
    pub fn email(&self) -> Option<String> {
        self.text("email")
    }
    /// "First Last", or the email, or `#id`.
    pub fn display_name(&self) -> String {
        let name = [self.text("firstname"), self.text("lastname")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            return name;
        }
        self.email().unwrap_or_else(|| format!("#{}", self.id))
    }
}

impl Event {
    /// The properties parsed as JSON (`Null` when they are not valid JSON).
    pub fn props(&self) -> Json {
        serde_json::from_str(&self.properties).unwrap_or(Json::Null)
    }
}

impl NewEvent {
    /// An event of `event_type` for `contact_id`, now, with these properties.
    pub fn new(contact_id: i64, event_type: impl Into<String>, properties: Json) -> NewEvent {
        NewEvent {
            contact_id,
            event_type: event_type.into(),
            occurred_at: None,
            properties: properties.to_string(),
        }
    }
    pub fn at(mut self, occurred_at: Timestamp) -> NewEvent {
        self.occurred_at = Some(occurred_at);
        self
    }
}

impl PluginInfo {
    /// A plugin called `name` at `version`; the kind is filled in by `export_plugin!`.
    /// `plugin_info!()` fills name, version and description from Cargo.toml.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> PluginInfo {
        let name = name.into();
        PluginInfo {
            title: name.clone(),
            name,
            version: version.into(),
            kind: PluginKind::EventTypes,
            description: String::new(),
            capabilities: Vec::new(),
            config_schema: Vec::new(),
        }
    }
    pub fn title(mut self, title: impl Into<String>) -> PluginInfo {
        self.title = title.into();
        self
    }
    pub fn description(mut self, description: impl Into<String>) -> PluginInfo {
        self.description = description.into();
        self
    }
    pub fn capability(mut self, capability: Capability) -> PluginInfo {
        self.capabilities.push(capability);
        self
    }
    pub fn setting(mut self, setting: Setting) -> PluginInfo {
        self.config_schema.push(setting);
        self
    }
}

impl Setting {
    pub fn new(key: impl Into<String>, label: impl Into<String>, kind: SettingKind) -> Setting {
        Setting {
            key: key.into(),
            label: label.into(),
            description: String::new(),
            kind,
            required: false,
            default_value: None,
            options: Vec::new(),
        }
    }
    pub fn text(key: impl Into<String>, label: impl Into<String>) -> Setting {
        Setting::new(key, label, SettingKind::Text)
    }
    pub fn secret(key: impl Into<String>, label: impl Into<String>) -> Setting {
        Setting::new(key, label, SettingKind::Secret)
    }
    pub fn url(key: impl Into<String>, label: impl Into<String>) -> Setting {
        Setting::new(key, label, SettingKind::Url)
    }
    pub fn boolean(key: impl Into<String>, label: impl Into<String>) -> Setting {
        Setting::new(key, label, SettingKind::Boolean)
    }
    pub fn select(key: impl Into<String>, label: impl Into<String>, options: &[&str]) -> Setting {
        let mut s = Setting::new(key, label, SettingKind::Select);
        s.options = options.iter().map(|o| (*o).to_owned()).collect();
        s
    }
    pub fn required(mut self) -> Setting {
        self.required = true;
        self
    }
    pub fn default_value(mut self, value: impl Into<String>) -> Setting {
        self.default_value = Some(value.into());
        self
    }
    pub fn help(mut self, description: impl Into<String>) -> Setting {
        self.description = description.into();
        self
    }
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Result<Json> {
        Ok(serde_json::from_slice(&self.body)?)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
