//! Turning stored values into text for pages. Everything here returns plain text that
//! the templates escape; nothing returns HTML.

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::contacts::Contact;
use crate::contacts::fields::{FieldDef, FieldType, Storage};
use crate::store::Value;

/// Characters that reorder text (bidi overrides and isolates). Kept in page bodies
/// (where `<bdi>` and CSS isolate them) but removed where no markup can, like `<title>`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// Text for a `<title>` or another place without markup: no bidi controls, clipped.
pub fn plain(s: &str, max: usize) -> String {
    clip(
        &s.chars()
            .filter(|c| !is_bidi_control(*c) && !c.is_control())
            .collect::<String>(),
        max,
    )
}

/// At most `max` characters, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// Up to two initials for an avatar placeholder.
pub fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".to_owned()
    } else {
        letters
    }
}

/// `2024-05-01 14:30` (UTC).
pub fn datetime(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub fn datetime_opt(ms: Option<i64>) -> String {
    ms.map(datetime).unwrap_or_default()
}

/// "3 minutes ago", "2 days ago", or the date when older than a month.
pub fn relative(ms: i64, now: i64) -> String {
    let secs = (now - ms) / 1000;
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        s if s < 0 => datetime(ms),
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s if s < 30 * 86_400 => plural(s / 86_400, "day"),
        _ => Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
    }
}

/// Thousands separators: 1234567 → "1,234,567".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Gravatar's URL for an email (SHA-256 of the trimmed, lower-cased address). `d=404`
/// so the page's initials show when there is no Gravatar.
pub fn gravatar(email: &str, size: u32) -> String {
    let hash: String = Sha256::digest(email.trim().to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("https://www.gravatar.com/avatar/{hash}?s={size}&d=404")
}

/// The image URL shown for a contact, if any: the custom upload, or Gravatar by email.
pub fn avatar_url(c: &Contact, size: u32) -> Option<String> {
    match c.preferred_profile_image.as_deref() {
        Some("custom") => Some(format!("/contacts/{}/avatar?v={}", c.id, c.date_modified)),
        _ => c.text("email").map(|e| gravatar(&e, size)),
    }
}

/// "Berlin, Germany".
pub fn location(c: &Contact) -> String {
    ["city", "state", "country"]
        .iter()
        .filter_map(|a| c.text(a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A field's stored value as text for reading (labels for options and booleans).
pub fn field_value(f: &FieldDef, v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    match f.storage() {
        Storage::Timestamp => return v.as_i64().map(datetime).unwrap_or_default(),
        Storage::Points => return v.as_i64().map(thousands).unwrap_or_default(),
        Storage::Column => {}
    }
    let text = match v {
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => (*x as i64).to_string(),
        other => other.to_text().unwrap_or_default(),
    };
    let label_of = |value: &str| {
        f.options()
            .into_iter()
            .find(|(_, v)| v == value)
            .map_or_else(|| value.to_owned(), |(l, _)| l)
    };
    match f.field_type {
        FieldType::Boolean => {
            let key = if text == "1" { "yes" } else { "no" };
            f.properties
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or(if text == "1" { "Yes" } else { "No" })
                .to_owned()
        }
        FieldType::Select | FieldType::Lookup => label_of(&text),
        FieldType::Multiselect => text.split('|').map(label_of).collect::<Vec<_>>().join(", "),
        _ => text,
    }
}

/// A value as it goes back into a form input of the field's widget.
pub fn input_value(f: &FieldDef, v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    match (f.storage(), f.field_type) {
        (Storage::Timestamp, _) => v
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default(),
        (_, FieldType::Datetime) => v
            .to_text()
            .and_then(|s| crate::time::parse_datetime(&s))
            .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default(),
        (_, FieldType::Number) => match v {
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => (*x as i64).to_string(),
            other => other.to_text().unwrap_or_default(),
        },
        _ => v.to_text().unwrap_or_default(),
    }
}

/// Whether a URL from stored data may become a link: http(s) or a path on this site.
pub fn safe_href(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || (lower.starts_with('/') && !lower.starts_with("//"))
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_helpers() {
        assert_eq!(plain("a\u{202E}b<c>", 10), "ab<c>");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("  "), "?");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(12), "12");
        assert!(safe_href("https://x.example/a"));
        assert!(safe_href("/contacts/1"));
        assert!(!safe_href("javascript:alert(1)"));
        assert!(!safe_href("//evil.example"));
        assert!(gravatar(" Ada@Example.org ", 80).contains(&gravatar("ada@example.org", 80)[..60]));
    }
}
