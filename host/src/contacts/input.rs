//! What a client may send to create or edit a contact: field aliases plus Mautic's control
//! keys (`ipAddress`, `lastActive`, `owner`, `points`, `stage`, `tags`, `doNotContact`,
//! `utmtags`, `overwriteWithBlank`). Parsing checks shapes; `service` checks values.

use std::net::IpAddr;

use serde_json::{Map, Value as Json, json};

use super::fields::FieldSet;
use crate::error::AppError;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactInput {
    /// Field alias → raw value, in the order given.
    pub values: Vec<(String, Json)>,
    pub overwrite_with_blank: bool,
    /// `Some(None)` clears the owner.
    pub owner: Option<Option<i64>>,
    pub stage: Option<Option<i64>>,
    pub tags: TagChanges,
    pub ip_address: Option<String>,
    pub dnc: Vec<DncInput>,
    pub utm: Vec<UtmInput>,
    /// The preferred profile image (`gravatar`, `custom`, `social`); admin forms only,
    /// not a key of the API body. `Some(None)` clears it.
    pub profile_image: Option<Option<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TagChanges {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Reasons of Mautic's do-not-contact records.
pub const DNC_UNSUBSCRIBED: i64 = 1;
pub const DNC_BOUNCED: i64 = 2;
pub const DNC_MANUAL: i64 = 3;
/// Mautic's "contactable" reason: the channel's do-not-contact record goes.
pub const DNC_CONTACTABLE: i64 = 0;

#[derive(Clone, Debug, PartialEq)]
pub struct DncInput {
    pub channel: String,
    pub channel_id: Option<i64>,
    pub reason: i64,
    pub comments: String,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UtmInput {
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_source: Option<String>,
    pub utm_term: Option<String>,
    pub url: Option<String>,
    pub referer: Option<String>,
    pub remote_host: Option<String>,
    pub user_agent: Option<String>,
    pub query: Map<String, Json>,
}

impl UtmInput {
    /// Any `utm_*` value (what makes a tracked hit record UTM tags).
    pub fn has_utm_values(&self) -> bool {
        [
            &self.utm_campaign,
            &self.utm_content,
            &self.utm_medium,
            &self.utm_source,
            &self.utm_term,
        ]
        .iter()
        .any(|v| v.is_some())
    }

    /// No value at all (each one is optional, as in Mautic, but a record needs one).
    pub fn is_empty(&self) -> bool {
        !self.has_utm_values()
            && [
                &self.url,
                &self.referer,
                &self.remote_host,
                &self.user_agent,
            ]
            .iter()
            .all(|v| v.is_none())
            && self.query.is_empty()
    }
}

const CONTROL_KEYS: [&str; 10] = [
    "id",
    "ipAddress",
    "lastActive",
    "owner",
    "points",
    "stage",
    "tags",
    "doNotContact",
    "utmtags",
    "overwriteWithBlank",
];

/// Collects per-key messages and turns them into one 422.
#[derive(Default)]
pub struct Problems(Map<String, Json>);

impl Problems {
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        let entry = self.0.entry(key.to_owned()).or_insert_with(|| json!([]));
        if let Json::Array(a) = entry {
            a.push(Json::String(message.into()));
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary = self
            .0
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_array()
                        .and_then(|a| a.first())
                        .and_then(Json::as_str)
                        .unwrap_or("invalid")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(AppError::Validation {
            message: summary,
            details: Json::Object(self.0),
        })
    }
}

impl ContactInput {
    /// Parses a Mautic create/edit body. Unknown keys are a 422 naming them.
    pub fn from_json(body: &Json, fields: &FieldSet) -> Result<ContactInput, AppError> {
        let Json::Object(map) = body else {
            return Err(AppError::bad_request(
                "the request body must be a JSON object of contact fields",
            ));
        };
        let mut input = ContactInput::default();
        let mut problems = Problems::default();
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !CONTROL_KEYS.contains(k) && fields.get(k).is_none())
            .collect();
        if !unknown.is_empty() {
            for key in &unknown {
                problems.add(key, "is not a contact field or a known key");
            }
            let mut err = problems.into_result().unwrap_err();
            if let AppError::Validation { message, .. } = &mut err {
                *message = format!("Unknown fields: {}", unknown.join(", "));
            }
            return Err(err);
        }
        for (key, value) in map {
            match key.as_str() {
                "overwriteWithBlank" => match flag(value) {
                    Some(b) => input.overwrite_with_blank = b,
                    None => problems.add(key, "must be true or false"),
                },
                "lastActive" => input.values.push(("last_active".into(), value.clone())),
                "owner" => match optional_id(value) {
                    Ok(v) => input.owner = Some(v),
                    Err(m) => problems.add(key, m),
                },
                "stage" => match optional_id(value) {
                    Ok(v) => input.stage = Some(v),
                    Err(m) => problems.add(key, m),
                },
                "tags" => match parse_tags(value) {
                    Ok(t) => input.tags = t,
                    Err(m) => problems.add(key, m),
                },
                "ipAddress" => match value {
                    Json::Null => {}
                    Json::String(s) if s.trim().is_empty() => {}
                    Json::String(s) => match s.trim().parse::<IpAddr>() {
                        Ok(ip) => input.ip_address = Some(ip.to_string()),
                        Err(_) => problems.add(key, "must be an IPv4 or IPv6 address"),
                    },
                    _ => problems.add(key, "must be an IPv4 or IPv6 address"),
                },
                "doNotContact" => match parse_dnc(value) {
                    Ok(d) => input.dnc = d,
                    Err(m) => problems.add(key, m),
                },
                "utmtags" => match parse_utm(value) {
                    Ok(u) => input.utm = u,
                    Err(m) => problems.add(key, m),
                },
                // Clients send back the contact they read: the path (or the match) says
                // which contact is written, so the id is ignored, as in Mautic.
                "id" => {}
                // "points" is both a control key and the points field: one value.
                alias => input.values.push((alias.to_owned(), value.clone())),
            }
        }
        problems.into_result()?;
        Ok(input)
    }
}

/// `true`/`false`, 1/0 and their strings (form-encoded bodies send strings).
pub fn flag(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => n.as_i64().filter(|n| *n == 0 || *n == 1).map(|n| n == 1),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        Json::Null => Some(false),
        _ => None,
    }
}

fn optional_id(v: &Json) -> Result<Option<i64>, &'static str> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) if s.trim().is_empty() => Ok(None),
        Json::Number(n) => n
            .as_i64()
            .filter(|i| *i > 0)
            .map(Some)
            .ok_or("must be a positive id"),
        Json::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|i| *i > 0)
            .map(Some)
            .ok_or("must be a positive id"),
        // Mautic accepts {"id": 1} too.
        Json::Object(o) => match o.get("id") {
            Some(id) => optional_id(id),
            None => Err("must be an id"),
        },
        _ => Err("must be an id"),
    }
}

/// Longest tag name (characters).
pub const MAX_TAG: usize = 255;

/// `["a", "-b"]` or `"a,-b"`: add a, remove b.
pub fn parse_tags(v: &Json) -> Result<TagChanges, String> {
    let items: Vec<String> = match v {
        Json::Null => Vec::new(),
        Json::String(s) => s.split(',').map(str::to_owned).collect(),
        Json::Array(a) => a
            .iter()
            .map(|t| match t {
                Json::String(s) => Ok(s.clone()),
                Json::Number(n) => Ok(n.to_string()),
                // Mautic returns tags as {"id", "tag"}; accept that shape back.
                Json::Object(o) => o
                    .get("tag")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| "tags must be strings".to_owned()),
                _ => Err("tags must be strings".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("must be a list of tags or a comma-separated string".into()),
    };
    if items.len() > 1000 {
        return Err("at most 1000 tags at once".into());
    }
    let mut changes = TagChanges::default();
    for item in items {
        let item = item.trim();
        let (remove, name) = match item.strip_prefix('-') {
            Some(rest) => (true, rest.trim()),
            None => (false, item),
        };
        if name.is_empty() {
            continue;
        }
        let name = normalize_tag(name)?;
        let list = if remove {
            &mut changes.remove
        } else {
            &mut changes.add
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }
    Ok(changes)
}

/// A tag name: trimmed, inner whitespace collapsed, no control characters.
pub fn normalize_tag(name: &str) -> Result<String, String> {
    if name.chars().any(char::is_control) {
        return Err("tags must not contain control characters".into());
    }
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX_TAG {
        return Err(format!("tags must be at most {MAX_TAG} characters"));
    }
    Ok(name)
}

/// A stage's name, trimmed: 1 to 191 characters, no control characters.
pub fn normalize_stage_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 191 || name.chars().any(char::is_control) {
        return Err("must be 1 to 191 characters without control characters".into());
    }
    Ok(name.to_owned())
}

fn short_text(o: &Map<String, Json>, key: &str, max: usize) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Json::String(s)) if s.chars().any(char::is_control) => {
            Err(format!("{key} must not contain control characters"))
        }
        Some(Json::String(s)) if s.chars().count() > max => {
            Err(format!("{key} must be at most {max} characters"))
        }
        Some(Json::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Json::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn objects(v: &Json) -> Result<Vec<&Map<String, Json>>, String> {
    match v {
        Json::Null => Ok(Vec::new()),
        Json::Object(o)
            if o.values().all(Json::is_object)
                && !o.is_empty()
                && o.keys().all(|k| k.parse::<usize>().is_ok()) =>
        {
            // A form-encoded list arrives as {"0": {...}, "1": {...}}.
            Ok(o.values().filter_map(Json::as_object).collect())
        }
        Json::Object(o) => Ok(vec![o]),
        Json::Array(a) => a
            .iter()
            .map(|i| {
                i.as_object()
                    .ok_or_else(|| "must be a list of objects".to_owned())
            })
            .collect(),
        _ => Err("must be an object or a list of objects".into()),
    }
}

pub fn parse_dnc(v: &Json) -> Result<Vec<DncInput>, String> {
    let mut out = Vec::new();
    for o in objects(v)? {
        for key in o.keys() {
            if !["reason", "comments", "channel", "channel_id", "channelId"].contains(&key.as_str())
            {
                return Err(format!(
                    "unknown key '{key}' (expected reason, comments, channel, channel_id)"
                ));
            }
        }
        // 0 is Mautic's "contactable": the channel's record is removed.
        let reason = match o.get("reason") {
            None | Some(Json::Null) => DNC_MANUAL,
            Some(r) => r
                .as_i64()
                .or_else(|| r.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|r| (0..=3).contains(r))
                .ok_or("reason must be 0 (contactable again), 1 (unsubscribed), 2 (bounced) or 3 (manual)")?,
        };
        let channel = short_text(o, "channel", 64)?.unwrap_or_else(|| "email".to_owned());
        if !channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            return Err("channel must be a simple name like email or sms".into());
        }
        // Mautic's PHP library sends form-encoded bodies: numbers come as strings.
        // `channelId` is how a contact's JSON spells it.
        let channel_id = match o.get("channel_id").or_else(|| o.get("channelId")) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or("channel_id must be a number")?,
            ),
        };
        let comments = short_text(o, "comments", 1000)?.unwrap_or_default();
        out.push(DncInput {
            channel,
            channel_id,
            reason,
            comments,
        });
    }
    Ok(out)
}

pub fn parse_utm(v: &Json) -> Result<Vec<UtmInput>, String> {
    const KEYS: [&str; 11] = [
        "utm_campaign",
        "utm_content",
        "utm_medium",
        "utm_source",
        "utm_term",
        "url",
        "referer",
        "remote_host",
        "user_agent",
        "query",
        "lastActive",
    ];
    let mut out = Vec::new();
    for o in objects(v)? {
        // Keys in any case, and Mautic's own names (`Useragent`, `remotehost`).
        let mut named = Map::new();
        for (key, value) in o {
            let lower = key.to_ascii_lowercase();
            let name = match lower.as_str() {
                "useragent" => "user_agent",
                "remotehost" => "remote_host",
                other => KEYS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(other))
                    .ok_or_else(|| format!("unknown key '{key}' in utmtags"))?,
            };
            named.insert(name.to_owned(), value.clone());
        }
        let o = &named;
        let query = match o.get("query") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(q)) if q.len() <= 100 => q.clone(),
            Some(Json::String(s)) => {
                let mut m = Map::new();
                for (k, v) in url_pairs(s).into_iter().take(100) {
                    m.insert(k, Json::String(v));
                }
                m
            }
            Some(_) => return Err("query must be an object or a query string".into()),
        };
        let utm = UtmInput {
            utm_campaign: short_text(o, "utm_campaign", 255)?,
            utm_content: short_text(o, "utm_content", 255)?,
            utm_medium: short_text(o, "utm_medium", 255)?,
            utm_source: short_text(o, "utm_source", 255)?,
            utm_term: short_text(o, "utm_term", 255)?,
            url: short_text(o, "url", 2048)?,
            referer: short_text(o, "referer", 2048)?,
            remote_host: short_text(o, "remote_host", 255)?,
            user_agent: short_text(o, "user_agent", 1024)?,
            query,
        };
        if utm.is_empty() {
            return Err("a UTM record needs at least one value".into());
        }
        out.push(utm);
    }
    Ok(out)
}

fn url_pairs(s: &str) -> Vec<(String, String)> {
    s.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> FieldSet {
        FieldSet::defaults_for_tests()
    }

    #[test]
    fn parses_fields_and_control_keys() {
        let body = json!({
            "firstname": "Ada", "email": "ada@example.org", "points": 5, "lastActive": "2024-05-01 10:00:00",
            "owner": 1, "stage": null, "tags": ["vip", "-old", " spaced   out "], "ipAddress": "192.0.2.1",
            "overwriteWithBlank": true,
            "doNotContact": [{"reason": 2, "comments": "bounced", "channel": "email"}],
            "utmtags": {"utm_source": "newsletter", "utm_campaign": "spring", "query": "a=1&b=two+words"}
        });
        let input = ContactInput::from_json(&body, &fields()).unwrap();
        assert!(input.overwrite_with_blank);
        assert_eq!(input.owner, Some(Some(1)));
        assert_eq!(input.stage, Some(None));
        assert_eq!(input.tags.add, vec!["vip", "spaced out"]);
        assert_eq!(input.tags.remove, vec!["old"]);
        assert_eq!(input.ip_address.as_deref(), Some("192.0.2.1"));
        assert_eq!(input.dnc[0].reason, DNC_BOUNCED);
        assert_eq!(input.utm[0].utm_source.as_deref(), Some("newsletter"));
        assert_eq!(input.utm[0].query["b"], "two words");
        assert!(
            input
                .values
                .contains(&("last_active".into(), json!("2024-05-01 10:00:00")))
        );
        assert!(input.values.contains(&("points".into(), json!(5))));
    }

    #[test]
    fn rejects_unknown_keys_naming_them() {
        let err = ContactInput::from_json(
            &json!({"firstname": "A", "favourite": 1, "bogus": 2}),
            &fields(),
        )
        .unwrap_err();
        match err {
            AppError::Validation { message, details } => {
                assert!(
                    message.contains("favourite") && message.contains("bogus"),
                    "{message}"
                );
                assert!(details.get("bogus").is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_control_values() {
        let bad = [
            json!({"owner": "me"}),
            json!({"owner": -1}),
            json!({"tags": 5}),
            json!({"tags": [["nested"]]}),
            json!({"tags": ["a\u{1}b"]}),
            json!({"ipAddress": "999.1.1.1"}),
            json!({"doNotContact": [{"reason": 9}]}),
            json!({"doNotContact": [{"channel": "e mail"}]}),
            json!({"doNotContact": [{"why": "x"}]}),
            json!({"utmtags": {"utm_source": "x", "evil": 1}}),
            json!({"utmtags": {}}),
            json!({"overwriteWithBlank": "perhaps"}),
            json!([1, 2]),
        ];
        for body in bad {
            assert!(ContactInput::from_json(&body, &fields()).is_err(), "{body}");
        }
    }

    #[test]
    fn tags_from_a_comma_string() {
        let t = parse_tags(&json!("a, b ,-c,,a")).unwrap();
        assert_eq!(t.add, vec!["a", "b"]);
        assert_eq!(t.remove, vec!["c"]);
        assert!(parse_tags(&json!("x".repeat(300))).is_err());
    }
}
