//! What a plugin says about itself (`describe`, `event-types`), checked before the
//! plugin is accepted: names, versions, capabilities, settings and event types.

use serde_json::{Value as Json, json};

use super::Kind;
use super::bindings::{timeline, types};
use super::capabilities::Capability;
use crate::timeline::types::EventType;

/// One admin-editable setting of a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingSpec {
    pub key: String,
    pub label: String,
    pub description: String,
    pub kind: &'static str,
    pub required: bool,
    pub default_value: Option<String>,
    pub options: Vec<String>,
}

impl SettingSpec {
    pub fn to_json(&self) -> Json {
        json!({
            "key": self.key, "label": self.label, "description": self.description, "kind": self.kind,
            "required": self.required, "default": self.default_value, "options": self.options,
        })
    }
    pub fn is_secret(&self) -> bool {
        self.kind == "secret"
    }
}

/// A validated plugin description.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub capabilities: Vec<Capability>,
    pub settings: Vec<SettingSpec>,
    /// Event types (event-types plugins), already checked; invalid ones are dropped
    /// with a warning in `warnings`.
    pub event_types: Vec<EventType>,
    pub warnings: Vec<String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.ends_with('-')
}

fn valid_version(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    s.len() <= 64
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_setting_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[a-z0-9_.-]+`, starting with a letter, at most 100 characters (`video.view`,
/// `segment_membership`).
pub fn valid_event_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// `fa-…` icon classes only: they end up in a class attribute.
pub fn valid_icon(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with("fa-")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

fn setting_kind(k: types::SettingKind) -> &'static str {
    use types::SettingKind as K;
    match k {
        K::Text => "text",
        K::Secret => "secret",
        K::Integer => "integer",
        K::Number => "number",
        K::Boolean => "boolean",
        K::Url => "url",
        K::Email => "email",
        K::Select => "select",
        K::Textarea => "textarea",
    }
}

pub fn capability_from_wit(c: &types::Capability) -> Result<Capability, String> {
    use types::Capability as C;
    Ok(match c {
        C::ReadContacts => Capability::ReadContacts,
        C::WriteFields => Capability::WriteFields,
        C::WriteTags => Capability::WriteTags,
        C::RecordEvents => Capability::RecordEvents,
        C::PrivateNetwork => Capability::PrivateNetwork,
        C::Http(p) => Capability::Http(super::capabilities::OriginPattern::parse(p)?),
    })
}

pub fn kind_from_wit(k: types::PluginKind) -> Kind {
    match k {
        types::PluginKind::EventTypes => Kind::EventTypes,
        types::PluginKind::BatchAction => Kind::BatchAction,
        types::PluginKind::Integration => Kind::Integration,
        types::PluginKind::TrackingForwarder => Kind::TrackingForwarder,
    }
}

/// Checks `describe`'s answer against the kind found in the component.
pub fn validate(
    info: types::PluginInfo,
    kind: Kind,
    event_types: Vec<timeline::EventType>,
) -> Result<Manifest, String> {
    if !valid_name(&info.name) {
        return Err(format!(
            "invalid plugin name `{}`: use [a-z][a-z0-9-]*, at most 64 characters",
            clip(&info.name, 80)
        ));
    }
    if !valid_version(&info.version) {
        return Err(format!(
            "invalid version `{}`: use semantic versioning (1.2.3)",
            clip(&info.version, 80)
        ));
    }
    let declared = kind_from_wit(info.kind);
    if declared != kind {
        return Err(format!(
            "the plugin says it is `{}` but exports the `{}` world",
            declared.as_str(),
            kind.as_str()
        ));
    }
    if info.capabilities.len() > 64 || info.config_schema.len() > 100 {
        return Err("too many capabilities or settings".into());
    }
    let mut capabilities = Vec::new();
    for c in &info.capabilities {
        let c = capability_from_wit(c).map_err(|e| format!("invalid capability: {e}"))?;
        if !capabilities.contains(&c) {
            capabilities.push(c);
        }
    }
    let mut settings: Vec<SettingSpec> = Vec::new();
    for s in info.config_schema {
        if !valid_setting_key(&s.key) {
            return Err(format!(
                "invalid setting key `{}`: use [a-z][a-z0-9_]*",
                clip(&s.key, 80)
            ));
        }
        if settings.iter().any(|x| x.key == s.key) {
            return Err(format!("the setting `{}` is declared twice", s.key));
        }
        settings.push(SettingSpec {
            key: s.key,
            label: clip(&s.label, 200),
            description: clip(&s.description, 2000),
            kind: setting_kind(s.kind),
            required: s.required,
            default_value: s.default_value.map(|d| clip(&d, 10_000)),
            options: s
                .options
                .into_iter()
                .take(500)
                .map(|o| clip(&o, 200))
                .collect(),
        });
    }
    let mut warnings = Vec::new();
    if event_types.len() > 500 {
        return Err(format!(
            "too many event types ({}; at most 500)",
            event_types.len()
        ));
    }
    let mut types_out: Vec<EventType> = Vec::new();
    for t in event_types {
        if !valid_event_key(&t.key) {
            warnings.push(format!(
                "event type `{}` dropped: keys are [a-z][a-z0-9_.-]*",
                clip(&t.key, 80)
            ));
            continue;
        }
        if types_out.iter().any(|x| x.key == t.key) {
            warnings.push(format!("event type `{}` declared twice", t.key));
            continue;
        }
        let icon = if valid_icon(&t.icon) {
            t.icon
        } else {
            "fa-circle".to_owned()
        };
        types_out.push(EventType {
            key: t.key,
            label: clip(&t.label, 100),
            icon,
            group: clip(&t.group, 100),
        });
    }
    Ok(Manifest {
        name: info.name,
        version: info.version,
        kind,
        title: clip(&info.title, 200),
        description: clip(&info.description, 2000),
        capabilities,
        settings,
        event_types: types_out,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_keys_icons() {
        for (name, ok) in [
            ("core-events", true),
            ("a", true),
            ("a1-b2", true),
            ("", false),
            ("Core", false),
            ("1abc", false),
            ("a_b", false),
            ("a-", false),
            ("a b", false),
        ] {
            assert_eq!(valid_name(name), ok, "{name}");
        }
        assert!(!valid_name(&"a".repeat(65)));
        for (v, ok) in [
            ("1.2.3", true),
            ("0.1.0-beta.1", true),
            ("1.2.3+build", true),
            ("1.2", false),
            ("v1.2.3", false),
            ("1.x.3", false),
            ("", false),
        ] {
            assert_eq!(valid_version(v), ok, "{v}");
        }
        for (k, ok) in [
            ("video.view", true),
            ("lead.source.created", true),
            ("campaign_membership.change", true),
            ("sms_reply", true),
            ("Bad Key!", false),
            (".a", false),
            ("a.", false),
            ("1.a", false),
            ("", false),
        ] {
            assert_eq!(valid_event_key(k), ok, "{k}");
        }
        for (i, ok) in [
            ("fa-play", true),
            ("fa-x\" onclick=\"x", false),
            ("glyphicon", false),
            ("fa-", true),
        ] {
            assert_eq!(valid_icon(i), ok, "{i}");
        }
    }
}
