//! Validation and normalisation of contact field values, by field type. The result is
//! what goes into the column; errors are messages for a 422 naming the field.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value as Json;

use super::fields::{FieldDef, FieldType, Storage};
use crate::store::{Kind, Value};

/// Longest value of a short text field (characters).
pub const MAX_TEXT: usize = 255;
/// Longest textarea value (characters).
pub const MAX_TEXTAREA: usize = 65_535;
pub const MAX_URL: usize = 2048;

/// A normalised input value: `None` means blank (empty string, null, empty list).
pub type Normalized = Option<Value>;

/// Whether a JSON value counts as blank ("" / null / [] / whitespace).
pub fn is_blank(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Validates `input` for `field`; returns the column value or a message.
pub fn normalize(field: &FieldDef, input: &Json) -> Result<Normalized, String> {
    if is_blank(input) {
        return Ok(None);
    }
    match field.storage() {
        Storage::Points => return integer(input).map(|i| Some(Value::Int(i))),
        Storage::Timestamp => {
            let s = scalar_text(input)?;
            let t = crate::time::parse_datetime(&s)
                .ok_or("must be a date and time like 2024-05-01 12:00:00")?;
            return Ok(Some(Value::Int(t.timestamp_millis())));
        }
        Storage::Column => {}
    }
    let t = field.field_type;
    let value = match t {
        FieldType::Number => {
            let n = number(input)?;
            let n = match field.properties.get("scale").and_then(Json::as_i64) {
                Some(scale) => {
                    let factor = 10f64.powi(scale as i32);
                    (n * factor).round() / factor
                }
                None => n,
            };
            Value::Float(n)
        }
        FieldType::Boolean => Value::Int(boolean(input)? as i64),
        FieldType::Multiselect => {
            let items: Vec<String> = match input {
                Json::Array(a) => a.iter().map(scalar_text).collect::<Result<_, _>>()?,
                other => scalar_text(other)?.split('|').map(str::to_owned).collect(),
            };
            let options = field.options();
            let mut chosen: Vec<String> = Vec::new();
            for item in items {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let value = match_option(&options, item)
                    .ok_or_else(|| format!("'{}' is not one of the options", clip(item)))?;
                if !chosen.contains(&value) {
                    chosen.push(value);
                }
            }
            if chosen.is_empty() {
                return Ok(None);
            }
            Value::Text(chosen.join("|"))
        }
        _ => {
            let s = scalar_text(input)?;
            let multiline = t == FieldType::Textarea;
            check_chars(&s, multiline)?;
            let s = if multiline {
                s.trim_end().to_owned()
            } else {
                s.trim().to_owned()
            };
            if s.is_empty() {
                return Ok(None);
            }
            Value::Text(text_value(field, t, s)?)
        }
    };
    Ok(Some(value))
}

fn text_value(field: &FieldDef, t: FieldType, s: String) -> Result<String, String> {
    // A bare host ("example.org/about") is an http URL, as Mautic's URL field takes it
    // (CSV files and forms often leave the scheme out).
    let s = match t == FieldType::Url && bare_host(&s) {
        true => format!("http://{s}"),
        false => s,
    };
    let max = match t {
        FieldType::Textarea => MAX_TEXTAREA,
        FieldType::Url => MAX_URL,
        _ => MAX_TEXT,
    };
    let len = s.chars().count();
    if len > max {
        return Err(format!("must be at most {max} characters (got {len})"));
    }
    Ok(match t {
        FieldType::Email => {
            validate_email(&s)?;
            s
        }
        FieldType::Url => {
            validate_url(&s)?;
            s
        }
        FieldType::Tel => {
            if !s.chars().any(|c| c.is_ascii_digit())
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " +-().,/#*".contains(c))
            {
                return Err("must be a phone number (digits, spaces and + - ( ) . / # *)".into());
            }
            s
        }
        FieldType::Date => {
            // A date and time gives its date as written, not the UTC day of the moment
            // (`1990-02-28T23:30:00-05:00` is the 28th).
            let d = crate::time::parse_date(&s)
                .or_else(|| crate::time::parse_written_date(&s))
                .ok_or("must be a date like 2024-05-01")?;
            d.format("%Y-%m-%d").to_string()
        }
        FieldType::Datetime => {
            let t = crate::time::parse_datetime(&s)
                .ok_or("must be a date and time like 2024-05-01 12:00:00")?;
            crate::time::sql_datetime(t.timestamp_millis())
        }
        FieldType::Time => {
            let t = crate::time::parse_time(&s).ok_or("must be a time like 14:30")?;
            use chrono::Timelike;
            if t.second() == 0 {
                t.format("%H:%M").to_string()
            } else {
                t.format("%H:%M:%S").to_string()
            }
        }
        FieldType::Select => match_option(&field.options(), &s)
            .ok_or_else(|| format!("'{}' is not one of the options", clip(&s)))?,
        FieldType::Country => country(&s)
            .ok_or_else(|| format!("'{}' is not a known country", clip(&s)))?
            .to_owned(),
        FieldType::Timezone => timezone(&s)
            .ok_or_else(|| format!("'{}' is not a known time zone", clip(&s)))?
            .to_owned(),
        FieldType::Locale => {
            locale(&s).ok_or_else(|| format!("'{}' is not a locale like en_US", clip(&s)))?
        }
        FieldType::Text | FieldType::Textarea | FieldType::Region | FieldType::Lookup => s,
        FieldType::Number | FieldType::Boolean | FieldType::Multiselect => {
            unreachable!("handled by the caller")
        }
    })
}

/// The SQL NULL for a field's column.
pub fn null_for(field: &FieldDef) -> Value {
    Value::Null(field.kind())
}

/// The JSON shown for a stored value (Mautic shows numbers and 0/1 booleans as numbers).
pub fn to_json(field: &FieldDef, value: &Value) -> Json {
    match (field.storage(), value) {
        (_, Value::Null(_)) => Json::Null,
        (Storage::Timestamp, v) => v
            .as_i64()
            .map_or(Json::Null, |ms| Json::String(crate::time::sql_datetime(ms))),
        (_, Value::Int(i)) => Json::from(*i),
        (_, Value::Float(f)) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                Json::from(*f as i64)
            } else {
                serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
            }
        }
        (_, Value::Text(s)) => match field.field_type.kind() {
            Kind::Float => s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::Null, Json::Number),
            _ => Json::String(s.clone()),
        },
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn scalar_text(v: &Json) -> Result<String, String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(if *b { "1" } else { "0" }.to_owned()),
        Json::Null => Ok(String::new()),
        Json::Array(_) | Json::Object(_) => {
            Err("must be a single value, not a list or object".into())
        }
    }
}

/// Free multi-line text as long as a textarea field takes (a tag's or stage's
/// description), trimmed; `None` when blank.
pub fn textarea_text(s: &str) -> Result<Option<String>, String> {
    check_chars(s, true)?;
    let len = s.chars().count();
    if len > MAX_TEXTAREA {
        return Err(format!(
            "must be at most {MAX_TEXTAREA} characters (got {len})"
        ));
    }
    Ok(Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned))
}

/// Control characters are refused (tab, CR and LF only in multi-line text).
pub fn check_chars(s: &str, multiline: bool) -> Result<(), String> {
    for c in s.chars() {
        let allowed = !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
        if !allowed {
            return Err(format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ));
        }
    }
    Ok(())
}

fn number(v: &Json) -> Result<f64, String> {
    let n = match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n.abs() < 1e15 => Ok(n),
        Some(n) if n.is_finite() => Err("must be a number of at most 15 digits".into()),
        _ => Err("must be a number".into()),
    }
}

fn integer(v: &Json) -> Result<i64, String> {
    let n = number(v).map_err(|m| m.replace("a number", "a whole number"))?;
    if n.fract() != 0.0 {
        return Err("must be a whole number".into());
    }
    Ok(n as i64)
}

fn boolean(v: &Json) -> Result<bool, String> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Json::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" => Ok(true),
            "0" | "false" | "no" | "off" | "n" => Ok(false),
            _ => Err("must be a boolean (true/false, 1/0, yes/no)".into()),
        },
        _ => Err("must be a boolean (true/false, 1/0, yes/no)".into()),
    }
}

fn match_option(options: &[(String, String)], input: &str) -> Option<String> {
    options
        .iter()
        .find(|(_, v)| v == input)
        .or_else(|| {
            options
                .iter()
                .find(|(l, v)| v.eq_ignore_ascii_case(input) || l.eq_ignore_ascii_case(input))
        })
        .map(|(_, v)| v.clone())
}

/// Email syntax: one `@`, a plausible local part, a domain with a dot and sane labels.
pub fn validate_email(s: &str) -> Result<(), String> {
    const MSG: &str = "must be a valid email address";
    let (local, domain) = s.rsplit_once('@').ok_or(MSG)?;
    if local.is_empty() || local.len() > 64 || domain.len() > 253 || s.len() > 254 {
        return Err(MSG.into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(MSG.into());
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "@<>()[]\\,;:\"".contains(c))
    {
        return Err(MSG.into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(MSG.into());
    }
    if labels.iter().any(|l| l.len() > 63 || !host_label_ok(l)) {
        return Err(MSG.into());
    }
    let tld = labels.last().expect("two labels");
    if tld.chars().count() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return Err(MSG.into());
    }
    Ok(())
}

/// One dot-separated label of a host name: letters, digits and inner hyphens.
fn host_label_ok(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_alphanumeric() || c == '-')
}

/// `host.tld[:port][/…]` without a scheme: dot-separated labels of letters, digits and
/// inner hyphens, the last with a letter (so `3.14` or `v1.2` are not hosts).
fn bare_host(s: &str) -> bool {
    let authority = s.split(['/', '?', '#']).next().unwrap_or("");
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    };
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| host_label_ok(l))
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(char::is_alphabetic))
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && !s.chars().any(char::is_whitespace)
}

pub fn validate_url(s: &str) -> Result<(), String> {
    const MSG: &str = "must be a URL starting with http:// or https://";
    let lower = s.to_ascii_lowercase();
    let rest = ["http://", "https://", "ftp://"]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|_| &s[p.len()..]))
        .ok_or(MSG)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    if host.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(MSG.into());
    }
    Ok(())
}

struct Lists {
    countries: HashMap<String, &'static str>,
    timezones: HashMap<String, &'static str>,
    /// ISO 3166 alpha-2 codes, upper case.
    region_codes: std::collections::HashSet<String>,
    /// ISO 639-1 codes (`LANGUAGES`).
    languages: std::collections::HashSet<&'static str>,
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| {
    let mut countries = HashMap::new();
    let mut by_code = HashMap::new();
    for line in COUNTRIES_TSV.lines() {
        if let Some((code, name)) = line.split_once('\t') {
            countries.insert(code.to_lowercase(), name);
            countries.insert(name.to_lowercase(), name);
            by_code.insert(code, name);
        }
    }
    for line in COUNTRY_ALIASES_TSV.lines() {
        if let Some((alias, code)) = line.split_once('\t')
            && let Some(name) = by_code.get(code)
        {
            countries.entry(alias.to_lowercase()).or_insert(*name);
        }
    }
    let timezones = TIMEZONES_TXT
        .lines()
        .map(|tz| (tz.to_lowercase(), tz))
        .collect();
    let region_codes = by_code.keys().map(|c| c.to_string()).collect();
    Lists {
        countries,
        timezones,
        region_codes,
        languages: LANGUAGES.split_ascii_whitespace().collect(),
    }
});

const COUNTRIES_TSV: &str = include_str!("data/countries.tsv");
/// Other names people use for countries (older ISO names, "USA", "UK" …).
const COUNTRY_ALIASES_TSV: &str = include_str!("data/country_aliases.tsv");
const TIMEZONES_TXT: &str = include_str!("data/timezones.txt");

/// Country names (ISO 3166 English short names), for the admin's drop-downs.
pub fn country_names() -> impl Iterator<Item = &'static str> {
    COUNTRIES_TSV
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(_, n)| n))
}

pub fn timezone_names() -> impl Iterator<Item = &'static str> {
    TIMEZONES_TXT.lines()
}

/// A country by name or ISO alpha-2 code, case-insensitively → its canonical name.
pub fn country(s: &str) -> Option<&'static str> {
    LISTS.countries.get(&s.trim().to_lowercase()).copied()
}

pub fn timezone(s: &str) -> Option<&'static str> {
    LISTS.timezones.get(&s.trim().to_lowercase()).copied()
}

/// ISO 639-1 language codes (and the older `iw`, `in`, `ji` some systems still send).
const LANGUAGES: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca \
ce ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv \
ha he hi ho hr ht hu hy hz ia id ie ig ii ik in io is it iu iw ja ji jv ka kg ki kj kk kl km kn \
ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl \
nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so \
sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi \
yo za zh zu";

/// A locale as language, optional script and optional region: `en`, `en_US`, `en-us`,
/// `es_419`, `zh_Hant_TW`, `sr-latn` → `en`, `en_US`, `en_US`, `es_419`, `zh_Hant_TW`,
/// `sr_Latn`. Two-letter languages and regions must exist (ISO 639-1, ISO 3166);
/// three-letter languages (ISO 639-2/3, `fil`, `yue` …) and scripts are checked by shape.
pub fn locale(s: &str) -> Option<String> {
    let mut parts = s.trim().split(['_', '-']);
    let lang = parts.next()?.to_ascii_lowercase();
    let known_lang = match lang.len() {
        2 => LISTS.languages.contains(lang.as_str()),
        3 => lang.chars().all(|c| c.is_ascii_lowercase()),
        _ => false,
    };
    if !known_lang {
        return None;
    }
    let mut out = lang;
    let mut rest: Vec<&str> = parts.collect();
    if let Some(script) = rest.first().filter(|p| p.len() == 4) {
        if !script.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let lower = script.to_ascii_lowercase();
        out = format!("{out}_{}{}", lower[..1].to_ascii_uppercase(), &lower[1..]);
        rest.remove(0);
    }
    match rest.as_slice() {
        [] => Some(out),
        [r] if r.len() == 2 && LISTS.region_codes.contains(&r.to_ascii_uppercase()) => {
            Some(format!("{out}_{}", r.to_ascii_uppercase()))
        }
        [r] if r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()) => Some(format!("{out}_{r}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn field(t: FieldType, properties: Json) -> FieldDef {
        FieldDef {
            id: 1,
            alias: "f".into(),
            label: "F".into(),
            field_type: t,
            group: "core".into(),
            order: 0,
            default_value: None,
            is_required: false,
            is_unique_identifier: false,
            is_publicly_updatable: false,
            is_short_visible: false,
            is_listable: true,
            is_visible: true,
            is_index: false,
            is_fixed: false,
            is_published: true,
            properties: match properties {
                Json::Object(m) => m,
                _ => Map::new(),
            },
            date_added: 0,
            date_modified: 0,
        }
    }

    /// (type, input, expected normalised value or Err).
    #[test]
    fn table() {
        use FieldType::*;
        let options =
            json!({"list": [{"label": "Red", "value": "red"}, {"label": "Blue", "value": "blue"}]});
        let t = |s: &str| Ok(Some(Value::Text(s.to_owned())));
        let cases: Vec<(FieldType, Json, Json, Result<Normalized, ()>)> = vec![
            (Text, json!("  Ada "), json!({}), t("Ada")),
            (Text, json!(""), json!({}), Ok(None)),
            (Text, json!(null), json!({}), Ok(None)),
            (Text, json!(42), json!({}), t("42")),
            (Text, json!("a\u{0}b"), json!({}), Err(())),
            (Text, json!("line\nbreak"), json!({}), Err(())),
            (Text, json!("x".repeat(256)), json!({}), Err(())),
            (Text, json!("x".repeat(255)), json!({}), t(&"x".repeat(255))),
            (Text, json!({"a": 1}), json!({}), Err(())),
            (
                Text,
                json!("<script>alert(1)</script>"),
                json!({}),
                t("<script>alert(1)</script>"),
            ),
            (
                Text,
                json!("O'Brien; DROP TABLE contacts"),
                json!({}),
                t("O'Brien; DROP TABLE contacts"),
            ),
            (Textarea, json!("line\nbreak"), json!({}), t("line\nbreak")),
            (Textarea, json!("x".repeat(70_000)), json!({}), Err(())),
            (
                Email,
                json!("Ada@Example.org"),
                json!({}),
                t("Ada@Example.org"),
            ),
            (Email, json!("ada@example"), json!({}), Err(())),
            (Email, json!("ada.example.org"), json!({}), Err(())),
            (Email, json!("ada@@example.org"), json!({}), Err(())),
            (Email, json!("a da@example.org"), json!({}), Err(())),
            (Email, json!("ada@-example.org"), json!({}), Err(())),
            (Email, json!("ada@exa_mple.org"), json!({}), Err(())),
            (
                Email,
                json!("ada@münchen.de"),
                json!({}),
                t("ada@münchen.de"),
            ),
            (Email, json!(".ada@example.org"), json!({}), Err(())),
            (
                Tel,
                json!("+1 (555) 010-9999 ext 12"),
                json!({}),
                t("+1 (555) 010-9999 ext 12"),
            ),
            (Tel, json!("call me"), json!({}), Err(())),
            (
                Url,
                json!("https://example.org/a?b=c"),
                json!({}),
                t("https://example.org/a?b=c"),
            ),
            (Url, json!("javascript:alert(1)"), json!({}), Err(())),
            (
                Url,
                json!("example.org"),
                json!({}),
                t("http://example.org"),
            ),
            (
                Url,
                json!("www.acme.example:8080/a?b=c"),
                json!({}),
                t("http://www.acme.example:8080/a?b=c"),
            ),
            (Url, json!("localhost"), json!({}), Err(())),
            (Url, json!("exa mple.org"), json!({}), Err(())),
            (Url, json!("javascript:alert(1).x"), json!({}), Err(())),
            (Url, json!(".example.org"), json!({}), Err(())),
            (
                Url,
                json!("example.org/?next=https://x.org"),
                json!({}),
                t("http://example.org/?next=https://x.org"),
            ),
            (Url, json!("3.14"), json!({}), Err(())),
            (Url, json!("file.txt"), json!({}), t("http://file.txt")),
            (Url, json!("a..b.org"), json!({}), Err(())),
            (Url, json!("-x.org"), json!({}), Err(())),
            (Url, json!("example.org:"), json!({}), Err(())),
            (Url, json!("https://"), json!({}), Err(())),
            (
                Number,
                json!(12.34567),
                json!({"scale": 2}),
                Ok(Some(Value::Float(12.35))),
            ),
            (Number, json!("42"), json!({}), Ok(Some(Value::Float(42.0)))),
            (Number, json!("4x2"), json!({}), Err(())),
            (Number, json!(true), json!({}), Err(())),
            (Boolean, json!(true), json!({}), Ok(Some(Value::Int(1)))),
            (Boolean, json!("no"), json!({}), Ok(Some(Value::Int(0)))),
            (Boolean, json!(0), json!({}), Ok(Some(Value::Int(0)))),
            (Boolean, json!("maybe"), json!({}), Err(())),
            (Boolean, json!(2), json!({}), Err(())),
            (Date, json!("2024-02-29"), json!({}), t("2024-02-29")),
            (Date, json!("2023-02-29"), json!({}), Err(())),
            (
                Date,
                json!("1990-02-28T23:30:00-05:00"),
                json!({}),
                t("1990-02-28"),
            ),
            (Date, json!("2024-5-1 10:00"), json!({}), t("2024-05-01")),
            (
                Date,
                json!("2024-05-01 10:00:00"),
                json!({}),
                t("2024-05-01"),
            ),
            (Date, json!("01/05/2024"), json!({}), Err(())),
            (
                Datetime,
                json!("2024-05-01T12:00:00+02:00"),
                json!({}),
                t("2024-05-01 10:00:00"),
            ),
            (
                Datetime,
                json!("2024-05-01 12:00"),
                json!({}),
                t("2024-05-01 12:00:00"),
            ),
            (Datetime, json!("tomorrow"), json!({}), Err(())),
            (Time, json!("14:30"), json!({}), t("14:30")),
            (Time, json!("14:30:15"), json!({}), t("14:30:15")),
            (Time, json!("25:00"), json!({}), Err(())),
            (Select, json!("red"), options.clone(), t("red")),
            (Select, json!("Blue"), options.clone(), t("blue")),
            (Select, json!("green"), options.clone(), Err(())),
            (
                Multiselect,
                json!(["red", "blue", "red"]),
                options.clone(),
                t("red|blue"),
            ),
            (
                Multiselect,
                json!("blue|red"),
                options.clone(),
                t("blue|red"),
            ),
            (
                Multiselect,
                json!(["red", "green"]),
                options.clone(),
                Err(()),
            ),
            (Multiselect, json!([]), options.clone(), Ok(None)),
            (Country, json!("france"), json!({}), t("France")),
            (Country, json!("DE"), json!({}), t("Germany")),
            (Country, json!("Atlantis"), json!({}), Err(())),
            (
                Country,
                json!("United Kingdom"),
                json!({}),
                t("United Kingdom"),
            ),
            (Country, json!("uk"), json!({}), t("United Kingdom")),
            (Country, json!("USA"), json!({}), t("United States")),
            (Country, json!("Korea (South)"), json!({}), t("South Korea")),
            (
                Timezone,
                json!("europe/paris"),
                json!({}),
                t("Europe/Paris"),
            ),
            (Timezone, json!("Mars/Olympus"), json!({}), Err(())),
            (Locale, json!("en-us"), json!({}), t("en_US")),
            (Locale, json!("fr"), json!({}), t("fr")),
            (Locale, json!("english"), json!({}), Err(())),
            (Locale, json!("zh_Hant_TW"), json!({}), t("zh_Hant_TW")),
            (Locale, json!("sr-latn"), json!({}), t("sr_Latn")),
            (Locale, json!("es_419"), json!({}), t("es_419")),
            (Locale, json!("fil_PH"), json!({}), t("fil_PH")),
            (Locale, json!("zz_ZZ"), json!({}), Err(())),
            (Locale, json!("en_ZZ"), json!({}), Err(())),
            (Locale, json!("en_US_POSIX"), json!({}), Err(())),
            (Locale, json!("en_"), json!({}), Err(())),
            (Region, json!("Bavaria"), json!({}), t("Bavaria")),
            (Lookup, json!("Dr"), json!({}), t("Dr")),
        ];
        for (t, input, props, want) in cases {
            let f = field(t, props);
            let got = normalize(&f, &input);
            match want {
                Ok(v) => assert_eq!(got, Ok(v), "{t:?} {input}"),
                Err(()) => assert!(got.is_err(), "{t:?} {input} should fail, got {got:?}"),
            }
        }
    }

    #[test]
    fn system_fields() {
        let mut f = field(FieldType::Number, json!({}));
        f.alias = "points".into();
        assert_eq!(normalize(&f, &json!(12)), Ok(Some(Value::Int(12))));
        assert!(normalize(&f, &json!(1.5)).is_err());
        f.alias = "last_active".into();
        f.field_type = FieldType::Datetime;
        assert_eq!(
            normalize(&f, &json!("1970-01-01 00:00:01")),
            Ok(Some(Value::Int(1000)))
        );
    }
}
