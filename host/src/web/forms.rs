//! Form data in and out: url-encoded and multipart bodies as ordered pairs, the widgets
//! of contact fields (one per field type), and the mapping from a submitted contact form
//! to the `ContactInput` that `contacts::service::save` takes.

use std::collections::HashMap;

use axum::extract::Multipart;
use serde_json::{Map, Value as Json};

use super::error::WebError;
use crate::contacts::fields::{FieldDef, FieldSet, FieldType, STANDARD_GROUPS, Storage};
use crate::contacts::input::{ContactInput, TagChanges, normalize_tag};
use crate::contacts::values;

/// A submitted form: its fields in order (a key may repeat).
#[derive(Clone, Debug, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn from_urlencoded(bytes: &[u8]) -> Result<FormData, WebError> {
        serde_urlencoded::from_bytes(bytes)
            .map(FormData)
            .map_err(|_| WebError::BadRequest("The form could not be read.".into()))
    }

    /// The last value of a key (a checkbox after its hidden default wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn str(&self, key: &str) -> String {
        self.get(key).unwrap_or("").to_owned()
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn checked(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "on" | "true" | "yes"))
    }
}

/// An uploaded file.
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Reads a multipart body: text fields, plus the one file field named `file_field`
/// (empty file inputs are skipped).
pub async fn read_multipart(
    mut mp: Multipart,
    file_field: &str,
) -> Result<(FormData, Option<Upload>), WebError> {
    let mut form = FormData::default();
    let mut upload = None;
    let bad = |_| WebError::BadRequest("The form could not be read.".into());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        if name == file_field {
            let file_name = field.file_name().unwrap_or("").to_owned();
            let bytes = field.bytes().await.map_err(bad)?;
            if !bytes.is_empty() || !file_name.is_empty() {
                upload = Some(Upload {
                    file_name,
                    bytes: bytes.to_vec(),
                });
            }
        } else {
            let text = field.text().await.map_err(bad)?;
            form.0.push((name, text));
        }
    }
    Ok((form, upload))
}

/// One option of a select.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The input of one contact field in a form.
pub struct Widget {
    pub alias: String,
    pub label: String,
    /// input, textarea, switch, select, multiselect
    pub kind: &'static str,
    /// The `type` of an `<input>`: text, email, tel, url, number, date, datetime-local, time.
    pub input_type: &'static str,
    pub value: String,
    pub options: Vec<Opt>,
    /// A `<datalist>` of suggestions (lookup fields).
    pub suggestions: Vec<String>,
    pub error: Option<String>,
    pub required: bool,
    pub unique: bool,
    pub placeholder: String,
    pub step: &'static str,
}

/// A tab of the contact form.
pub struct Group {
    pub key: String,
    pub label: String,
    pub widgets: Vec<Widget>,
    pub has_error: bool,
}

pub fn group_label(key: &str) -> String {
    match key {
        "core" => "Core".to_owned(),
        "social" => "Social".to_owned(),
        "personal" => "Personal".to_owned(),
        "professional" => "Professional".to_owned(),
        other => {
            let mut s: String = other.replace('_', " ");
            if let Some(first) = s.get(0..1) {
                s.replace_range(0..1, &first.to_uppercase());
            }
            s
        }
    }
}

/// Fields a form shows: published and visible.
pub fn form_fields(fields: &FieldSet) -> impl Iterator<Item = &FieldDef> {
    fields.iter().filter(|f| f.is_published && f.is_visible)
}

/// Group keys in tab order: the standard four, then custom groups as they first appear.
pub fn group_order(fields: &FieldSet) -> Vec<String> {
    let mut keys: Vec<String> = STANDARD_GROUPS.iter().map(|g| (*g).to_owned()).collect();
    for f in form_fields(fields) {
        if !keys.contains(&f.group) {
            keys.push(f.group.clone());
        }
    }
    keys
}

/// What the form shows in each input: the values (one per alias, several for
/// multiselect) and the errors.
#[derive(Default)]
pub struct FormState {
    pub values: HashMap<String, Vec<String>>,
    pub errors: HashMap<String, String>,
}

impl FormState {
    pub fn one(&self, key: &str) -> String {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .cloned()
            .unwrap_or_default()
    }
    pub fn error(&self, key: &str) -> Option<String> {
        self.errors.get(key).cloned()
    }
    /// Turns a service error's details (`{"email": ["…"]}`) into messages per key.
    pub fn add_errors(&mut self, details: &Json) {
        if let Json::Object(m) = details {
            for (k, v) in m {
                let msg = v
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(Json::as_str)
                    .unwrap_or("is invalid");
                self.errors.insert(k.clone(), msg.to_owned());
            }
        }
    }
    pub fn from_form(form: &FormData) -> FormState {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in &form.0 {
            values.entry(k.clone()).or_default().push(v.clone());
        }
        FormState {
            values,
            errors: HashMap::new(),
        }
    }
}

pub fn widget(f: &FieldDef, state: &FormState) -> Widget {
    let values_of = || state.values.get(&f.alias).cloned().unwrap_or_default();
    let value = state.one(&f.alias);
    let mut w = Widget {
        alias: f.alias.clone(),
        label: f.label.clone(),
        kind: "input",
        input_type: "text",
        value: value.clone(),
        options: Vec::new(),
        suggestions: Vec::new(),
        error: state.error(&f.alias),
        required: f.is_required,
        unique: f.is_unique_identifier,
        placeholder: f
            .properties
            .get("placeholder")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
        step: "",
    };
    let opts = |list: Vec<(String, String)>, chosen: &[String]| -> Vec<Opt> {
        list.into_iter()
            .map(|(label, v)| Opt {
                selected: chosen.contains(&v),
                value: v,
                label,
            })
            .collect()
    };
    match (f.storage(), f.field_type) {
        (Storage::Timestamp, _) | (_, FieldType::Datetime) => w.input_type = "datetime-local",
        (Storage::Points, _) => {
            w.input_type = "number";
            w.step = "1";
        }
        (_, FieldType::Text | FieldType::Region) => {}
        (_, FieldType::Textarea) => w.kind = "textarea",
        (_, FieldType::Email) => w.input_type = "email",
        (_, FieldType::Tel) => w.input_type = "tel",
        (_, FieldType::Url) => w.input_type = "url",
        (_, FieldType::Number) => {
            w.input_type = "number";
            w.step = "any";
        }
        (_, FieldType::Date) => w.input_type = "date",
        (_, FieldType::Time) => w.input_type = "time",
        (_, FieldType::Boolean) => w.kind = "switch",
        (_, FieldType::Select) => {
            w.kind = "select";
            w.options = opts(f.options(), &[value]);
        }
        (_, FieldType::Multiselect) => {
            w.kind = "multiselect";
            let chosen: Vec<String> = values_of()
                .iter()
                .flat_map(|v| v.split('|').map(str::to_owned).collect::<Vec<_>>())
                .collect();
            w.options = opts(f.options(), &chosen);
        }
        (_, FieldType::Lookup) => w.suggestions = f.options().into_iter().map(|(_, v)| v).collect(),
        (_, FieldType::Country) => {
            w.kind = "select";
            w.options = opts(
                values::country_names()
                    .map(|n| (n.to_owned(), n.to_owned()))
                    .collect(),
                &[value],
            );
        }
        (_, FieldType::Timezone) => {
            w.kind = "select";
            w.options = opts(
                values::timezone_names()
                    .map(|n| (n.to_owned(), n.to_owned()))
                    .collect(),
                &[value],
            );
        }
        (_, FieldType::Locale) => {
            w.kind = "select";
            let mut list: Vec<(String, String)> = LOCALES
                .iter()
                .map(|(code, name)| (format!("{name} ({code})"), (*code).to_owned()))
                .collect();
            if !w.value.is_empty() && !LOCALES.iter().any(|(c, _)| *c == w.value) {
                list.insert(0, (w.value.clone(), w.value.clone()));
            }
            w.options = opts(list, &[value]);
        }
    }
    w
}

/// The tabs of the contact form with their widgets.
pub fn groups(fields: &FieldSet, state: &FormState) -> Vec<Group> {
    group_order(fields)
        .into_iter()
        .filter_map(|key| {
            let widgets: Vec<Widget> = form_fields(fields)
                .filter(|f| f.group == key)
                .map(|f| widget(f, state))
                .collect();
            if widgets.is_empty() {
                return None;
            }
            let has_error = widgets.iter().any(|w| w.error.is_some());
            Some(Group {
                label: group_label(&key),
                key,
                widgets,
                has_error,
            })
        })
        .collect()
}

/// The submitted field values of a contact form, as the service's input. Only fields
/// whose input was in the form are sent; `overwrite` makes blanks clear values (edit).
pub fn contact_input(fields: &FieldSet, form: &FormData, overwrite: bool) -> ContactInput {
    let mut input = ContactInput {
        overwrite_with_blank: overwrite,
        ..ContactInput::default()
    };
    for f in form_fields(fields) {
        if !form.has(&f.alias) {
            continue;
        }
        let value = match f.field_type {
            FieldType::Multiselect if f.storage() == Storage::Column => Json::Array(
                form.all(&f.alias)
                    .into_iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| Json::String(v.to_owned()))
                    .collect(),
            ),
            _ => Json::String(form.str(&f.alias)),
        };
        input.values.push((f.alias.clone(), value));
    }
    input
}

/// Tags typed as "a, b, c" compared with the contact's tags: what to add and remove.
/// Names compare case-insensitively, as tags do (`vip` typed as `VIP` is no change).
pub fn tag_changes(typed: &str, current: &[String]) -> Result<TagChanges, String> {
    let has = |list: &[String], t: &str| list.iter().any(|x| crate::store::fold::same(x, t));
    let mut wanted: Vec<String> = Vec::new();
    for t in typed.split(',') {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        let t = normalize_tag(t)?;
        if !has(&wanted, &t) {
            wanted.push(t);
        }
    }
    if wanted.len() > 200 {
        return Err("at most 200 tags".into());
    }
    Ok(TagChanges {
        add: wanted
            .iter()
            .filter(|t| !has(current, t))
            .cloned()
            .collect(),
        remove: current
            .iter()
            .filter(|t| !has(&wanted, t))
            .cloned()
            .collect(),
    })
}

/// An optional id from a select ("" is none).
pub fn optional_id(s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .map(Some)
        .ok_or_else(|| "is not a valid choice".to_owned())
}

/// The field values for duplicate detection: (alias, raw value) of unique identifiers.
pub fn identifier_values(fields: &FieldSet, input: &ContactInput) -> Vec<(String, Json)> {
    input
        .values
        .iter()
        .filter(|(a, _)| fields.get(a).is_some_and(|f| f.is_unique_identifier))
        .cloned()
        .collect()
}

/// A JSON object from pairs (for the field service).
pub fn object(pairs: Vec<(&str, Json)>) -> Json {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_owned(), v);
    }
    Json::Object(m)
}

/// Locales offered by the locale widget (any valid locale is accepted).
pub const LOCALES: &[(&str, &str)] = &[
    ("ar", "Arabic"),
    ("bg", "Bulgarian"),
    ("ca", "Catalan"),
    ("cs", "Czech"),
    ("da", "Danish"),
    ("de", "German"),
    ("de_AT", "German (Austria)"),
    ("de_CH", "German (Switzerland)"),
    ("de_DE", "German (Germany)"),
    ("el", "Greek"),
    ("en", "English"),
    ("en_AU", "English (Australia)"),
    ("en_CA", "English (Canada)"),
    ("en_GB", "English (United Kingdom)"),
    ("en_IE", "English (Ireland)"),
    ("en_IN", "English (India)"),
    ("en_NZ", "English (New Zealand)"),
    ("en_US", "English (United States)"),
    ("es", "Spanish"),
    ("es_419", "Spanish (Latin America)"),
    ("es_ES", "Spanish (Spain)"),
    ("es_MX", "Spanish (Mexico)"),
    ("et", "Estonian"),
    ("fa", "Persian"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("fr_BE", "French (Belgium)"),
    ("fr_CA", "French (Canada)"),
    ("fr_CH", "French (Switzerland)"),
    ("fr_FR", "French (France)"),
    ("he", "Hebrew"),
    ("hi", "Hindi"),
    ("hr", "Croatian"),
    ("hu", "Hungarian"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("it_IT", "Italian (Italy)"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("lt", "Lithuanian"),
    ("lv", "Latvian"),
    ("ms", "Malay"),
    ("nb", "Norwegian Bokmål"),
    ("nl", "Dutch"),
    ("nl_BE", "Dutch (Belgium)"),
    ("nl_NL", "Dutch (Netherlands)"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("pt_BR", "Portuguese (Brazil)"),
    ("pt_PT", "Portuguese (Portugal)"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("sk", "Slovak"),
    ("sl", "Slovenian"),
    ("sr", "Serbian"),
    ("sv", "Swedish"),
    ("th", "Thai"),
    ("tr", "Turkish"),
    ("uk", "Ukrainian"),
    ("vi", "Vietnamese"),
    ("zh", "Chinese"),
    ("zh_CN", "Chinese (China)"),
    ("zh_TW", "Chinese (Taiwan)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_diff() {
        let current = vec!["a".to_owned(), "b".to_owned()];
        let c = tag_changes("b, c ,, c", &current).unwrap();
        assert_eq!(c.add, vec!["c"]);
        assert_eq!(c.remove, vec!["a"]);
        // Another case of a tag the contact has is no change (it would remove it).
        let c = tag_changes("A, B, Été", &["a".into(), "b".into(), "ÉTÉ".into()]).unwrap();
        assert!(c.add.is_empty() && c.remove.is_empty(), "{c:?}");
        let c = tag_changes("vip, VIP", &[]).unwrap();
        assert_eq!(c.add, vec!["vip"]);
    }

    #[test]
    fn contact_form_to_input() {
        let fields = FieldSet::defaults_for_tests();
        let form = FormData(vec![
            ("firstname".into(), "Ada".into()),
            ("email".into(), "".into()),
            ("_csrf".into(), "x".into()),
            ("bogus".into(), "y".into()),
        ]);
        let input = contact_input(&fields, &form, true);
        assert_eq!(
            input.values,
            vec![
                ("firstname".into(), Json::String("Ada".into())),
                ("email".into(), Json::String("".into()))
            ]
        );
        assert!(input.overwrite_with_blank);
    }
}
