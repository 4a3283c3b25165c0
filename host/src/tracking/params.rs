//! The parameters of a tracking hit (`/mtc/event`, `/mtracking.gif`), as Mautic's
//! tracking script and hand-written pixels send them. Every parameter may be hostile:
//! names and values are bounded, control characters dropped, invalid UTF-8 replaced,
//! and only the first `MAX_PARAMS` distinct names are looked at.

use serde_json::{Map, Value as Json};

use crate::contacts::input::{TagChanges, UtmInput, parse_tags};

pub const MAX_PARAMS: usize = 200;
const MAX_NAME: usize = 64;
const MAX_URL: usize = 2048;
const MAX_VALUE: usize = 1000;

/// What a hit says, cleaned.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HitParams {
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub page_referrer: Option<String>,
    pub page_language: Option<String>,
    pub resolution: Option<String>,
    pub timezone_offset: Option<i64>,
    pub platform: Option<String>,
    pub device_id: Option<String>,
    pub ct: Option<String>,
    pub tags: TagChanges,
    pub utm: Option<UtmInput>,
    /// Other parameters: candidates for (publicly updatable) contact fields.
    pub fields: Vec<(String, String)>,
    /// `company`, `companyname`, `companyemail` … (company fields).
    pub company: Vec<(String, String)>,
    /// Everything kept, for the page-hit event.
    pub query: Map<String, Json>,
}

/// Names that describe the page, not the contact.
const PAGE_KEYS: [&str; 16] = [
    "page_url",
    "url",
    "page_title",
    "title",
    "page_referrer",
    "referrer",
    "page_language",
    "language",
    "resolution",
    "timezone_offset",
    "platform",
    "counter",
    "do_not_track",
    "timezone_name",
    "preferred_locale_browser",
    "mtc_id",
];

fn clean(value: &str, max: usize) -> String {
    // Most values have nothing to remove: one copy, no char-by-char rebuild.
    if value.len() <= max && !value.chars().any(|c| c.is_control()) {
        return value.trim().to_owned();
    }
    value
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A device id as we issue them (48 hex, signed; 32 before) or as Mautic did (23 of `[0-9a-z]`).
pub fn valid_device_id(s: &str) -> bool {
    (16..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Bounds what a hit's raw parameters can weigh in the journal, cheaply (the visitor
/// waits): names too long for `parse` go, values are cut far beyond what it keeps
/// (`MAX_URL` characters of up to 4 bytes), and pairs beyond `4 × MAX_PARAMS` go. What
/// `parse` keeps is unchanged but for hostile requests: names repeated or garbled so often
/// that the first `MAX_PARAMS` usable ones come later than that, or values padded with
/// thousands of control characters (which `parse` drops before cutting).
pub fn bound(raw: &mut Vec<(String, String)>) {
    raw.retain(|(k, _)| k.len() <= MAX_NAME);
    raw.truncate(MAX_PARAMS * 4);
    for (_, v) in raw.iter_mut() {
        if v.len() > MAX_URL * 4 {
            let mut end = MAX_URL * 4;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v.truncate(end);
        }
    }
}

/// A parameter's name as `parse` reads it: trimmed, lower-cased, without a trailing
/// `[]`; `None` for names it ignores.
fn name(k: &str) -> Option<String> {
    if k.len() > MAX_NAME || k.chars().any(char::is_control) {
        return None;
    }
    let key = k.trim().to_ascii_lowercase();
    let key = key.trim_end_matches("[]");
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| key.to_owned())
}

/// A parameter's value as `parse` keeps it.
fn value(name: &str, v: &str) -> String {
    let max = if name.contains("url") || name.contains("referrer") || name.contains("referer") {
        MAX_URL
    } else {
        MAX_VALUE
    };
    clean(v, max)
}

/// The device id the parameters name, as `parse` reads it (the first `mautic_device_id`).
pub fn device_id(raw: &[(String, String)]) -> Option<String> {
    let (_, v) = raw
        .iter()
        .find(|(k, _)| name(k).as_deref() == Some("mautic_device_id"))?;
    Some(value("mautic_device_id", v)).filter(|d| valid_device_id(d))
}

fn http_url(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")).then(|| s.to_owned())
}

/// Percent-decodes (`+` is a space) to bytes.
fn unescape(s: &[u8]) -> Vec<u8> {
    if !s.iter().any(|b| matches!(b, b'+' | b'%')) {
        return s.to_vec();
    }
    let spaced: Vec<u8> = s
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// The name and value bytes of each pair of a URL-encoded string, percent-decoded.
fn raw_pairs(encoded: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    encoded
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS * 4)
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(i) => (unescape(&p[..i]), unescape(&p[i + 1..])),
            None => (unescape(p), Vec::new()),
        })
}

/// Splits a URL-encoded string into pairs. A pair that is not UTF-8 once decoded is left
/// out: a tracking hit ignores a parameter it cannot read, as it does any invalid value
/// (mtc.js and the links Magpie makes always send UTF-8).
pub fn pairs(encoded: impl AsRef<[u8]>) -> Vec<(String, String)> {
    raw_pairs(encoded.as_ref())
        .filter_map(|(k, v)| Some((String::from_utf8(k).ok()?, String::from_utf8(v).ok()?)))
        .collect()
}

/// Splits a form post into pairs. A browser encodes a form in its page's charset, so a
/// value that is not UTF-8 is read as Windows-1252 (a superset of Latin-1, what a
/// legacy Western page uses), as imports do: the visitor's `José` is kept, not lost.
pub fn form_pairs(encoded: &[u8]) -> Vec<(String, String)> {
    raw_pairs(encoded)
        .map(|(k, v)| (form_text(k), form_text(v)))
        .collect()
}

/// Form bytes as text: UTF-8, its broken bytes as Windows-1252.
pub fn form_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|e| crate::legacy_text::utf8_else_windows_1252(e.as_bytes()))
}

pub fn parse(raw: Vec<(String, String)>) -> HitParams {
    // Later duplicates do not override earlier ones; names are case-insensitive.
    let mut map: Vec<(String, String)> = Vec::new();
    for (k, v) in raw {
        let Some(key) = name(&k) else {
            continue;
        };
        if map.iter().any(|(existing, _)| *existing == key) {
            continue;
        }
        if map.len() >= MAX_PARAMS {
            break;
        }
        let v = value(&key, &v);
        map.push((key, v));
    }
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| map.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
            .filter(|v| !v.is_empty())
    };
    let mut hit = HitParams {
        page_url: get(&["page_url", "url"]).and_then(|u| http_url(&u)),
        page_title: get(&["page_title", "title"]).map(|t| t.chars().take(512).collect()),
        page_referrer: get(&["page_referrer", "referrer"]),
        page_language: get(&["page_language", "language"]).map(|l| l.chars().take(35).collect()),
        resolution: get(&["resolution"]).filter(|r| r.len() <= 20),
        timezone_offset: get(&["timezone_offset"])
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| t.abs() <= 24 * 60),
        platform: get(&["platform"]).map(|p| p.chars().take(64).collect()),
        device_id: get(&["mautic_device_id"]).filter(|d| valid_device_id(d)),
        ct: get(&["ct"]),
        ..HitParams::default()
    };
    // Parameters in the page's own URL count too, beneath the explicit ones (Mautic does
    // this, so `?utm_source=x&email=…` on a landing page works).
    let mut all = map.clone();
    if let Some(url) = &hit.page_url
        && let Some((_, query)) = url.split_once('?')
    {
        let query = query.split('#').next().unwrap_or("");
        for (k, v) in pairs(query) {
            let key = clean(&k, MAX_NAME).to_ascii_lowercase();
            if key.is_empty()
                || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || all.iter().any(|(e, _)| *e == key)
            {
                continue;
            }
            if all.len() >= MAX_PARAMS {
                break;
            }
            all.push((key, clean(&v, MAX_VALUE)));
        }
    }
    let mut utm = UtmInput::default();
    for (k, v) in &all {
        if !k.starts_with("page_") && k != "ct" {
            hit.query.insert(k.clone(), Json::String(v.clone()));
        }
        if v.is_empty() {
            continue;
        }
        let value = Some(v.chars().take(255).collect::<String>());
        match k.as_str() {
            "utm_source" => utm.utm_source = value,
            "utm_medium" => utm.utm_medium = value,
            "utm_campaign" => utm.utm_campaign = value,
            "utm_content" => utm.utm_content = value,
            "utm_term" => utm.utm_term = value,
            "tags" => hit.tags = parse_tags(&Json::String(v.clone())).unwrap_or_default(),
            "mautic_device_id" | "ct" => {}
            k if k == "company" || k.starts_with("company") => {
                hit.company.push((k.to_owned(), v.clone()))
            }
            k if PAGE_KEYS.contains(&k) => {}
            k => hit.fields.push((k.to_owned(), v.clone())),
        }
    }
    if utm.has_utm_values() {
        utm.url = hit.page_url.clone();
        utm.referer = hit.page_referrer.clone();
        hit.utm = Some(utm);
    }
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> HitParams {
        parse(
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn mautic_script_parameters() {
        let h = p(&[
            (
                "page_url",
                "https://shop.example/offer?utm_source=news&email=page@example.org&Campaign=x",
            ),
            ("page_title", "Offer <script>alert(1)</script>"),
            ("page_language", "en-GB"),
            ("page_referrer", "search.example"),
            ("resolution", "1920x1080"),
            ("timezone_offset", "-60"),
            ("mautic_device_id", "0123456789abcdef0123456789abcdef"),
            ("email", "explicit@example.org"),
            ("tags", "vip,-old"),
            ("companyname", "Acme"),
            ("utm_campaign", "spring"),
        ]);
        assert_eq!(
            h.page_url.as_deref(),
            Some("https://shop.example/offer?utm_source=news&email=page@example.org&Campaign=x")
        );
        assert_eq!(
            h.page_title.as_deref(),
            Some("Offer <script>alert(1)</script>"),
            "stored as text, escaped when shown"
        );
        assert_eq!(h.timezone_offset, Some(-60));
        assert_eq!(
            h.device_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(
            h.fields
                .contains(&("email".into(), "explicit@example.org".into())),
            "explicit wins over the page URL"
        );
        assert!(!h.fields.iter().any(|(_, v)| v == "page@example.org"));
        assert!(
            h.fields.contains(&("campaign".into(), "x".into())),
            "URL keys are lower-cased"
        );
        assert_eq!(h.tags.add, vec!["vip"]);
        assert_eq!(h.tags.remove, vec!["old"]);
        assert_eq!(h.company, vec![("companyname".into(), "Acme".into())]);
        let utm = h.utm.unwrap();
        assert_eq!(utm.utm_source.as_deref(), Some("news"));
        assert_eq!(utm.utm_campaign.as_deref(), Some("spring"));
    }

    #[test]
    fn hostile_parameters() {
        let many: Vec<(String, String)> =
            (0..10_000).map(|i| (format!("p{i}"), "x".into())).collect();
        let h = parse(many);
        assert_eq!(h.fields.len(), MAX_PARAMS);
        let h = p(&[
            ("page_url", "javascript:alert(1)"),
            ("mautic_device_id", "../../etc/passwd"),
            ("email\u{0}", "x"),
            ("a b", "c"),
        ]);
        assert_eq!(h.page_url, None);
        assert_eq!(h.device_id, None);
        assert!(h.fields.is_empty());
        let h = p(&[
            ("page_title", &"x".repeat(100_000)),
            ("firstname", "a\u{0}b\u{1b}c"),
        ]);
        assert_eq!(h.page_title.unwrap().len(), 512);
        assert_eq!(h.fields, vec![("firstname".into(), "abc".into())]);
        let mut bounded: Vec<(String, String)> = (0..2000)
            .map(|i| (format!("p{i}"), "é".repeat(10_000)))
            .chain([("k".repeat(65), "x".into())])
            .collect();
        bound(&mut bounded);
        assert_eq!(bounded.len(), MAX_PARAMS * 4);
        assert!(
            bounded
                .iter()
                .all(|(_, v)| v.len() <= MAX_URL * 4 && v.chars().count() >= MAX_URL)
        );
        assert_eq!(
            parse(bounded.clone()).fields,
            parse(
                (0..2000)
                    .map(|i| (format!("p{i}"), "é".repeat(10_000)))
                    .collect()
            )
            .fields,
            "bounding changes nothing parse keeps"
        );
        let raw = pairs("a=%FF%FE&b=%E2%28%A1&page_url=https%3A%2F%2Fx.example%2F");
        assert_eq!(raw.len(), 1, "what is not UTF-8 is left out: {raw:?}");
        assert_eq!(
            pairs(b"tags=ok\xff&x=1".as_slice()),
            vec![("x".to_owned(), "1".to_owned())]
        );
        assert_eq!(
            form_pairs(b"mauticform%5Bfirst%5D=Jos%E9&ok=%C3%A9"),
            vec![
                ("mauticform[first]".to_owned(), "Jos\u{e9}".to_owned()),
                ("ok".to_owned(), "\u{e9}".to_owned())
            ],
            "not UTF-8: read as Windows-1252"
        );
        assert_eq!(
            form_text(b"\xff\xfeJos\xe9".to_vec()),
            "\u{ff}\u{fe}Jos\u{e9}"
        );
        assert_eq!(
            form_pairs(b"a+b=c%20d&e"),
            vec![
                ("a b".to_owned(), "c d".to_owned()),
                ("e".to_owned(), String::new())
            ]
        );
        let h = parse(raw);
        assert_eq!(h.page_url.as_deref(), Some("https://x.example/"));
        assert!(
            h.fields
                .iter()
                .all(|(_, v)| v.chars().all(|c| !c.is_control()))
        );
    }
}
