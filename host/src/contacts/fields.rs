//! Contact field definitions: types, flags, Mautic's default fields, and the rules for
//! creating and editing a field. Each field is a real column of `contacts` named after
//! its alias (see `store::fields` for the DDL).

use serde_json::{Map, Value as Json, json};

use crate::error::AppError;
use crate::store::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    Text,
    Textarea,
    Email,
    Tel,
    Url,
    Number,
    Boolean,
    Date,
    Datetime,
    Time,
    Select,
    Multiselect,
    Country,
    Region,
    Locale,
    Timezone,
    Lookup,
}

impl FieldType {
    pub const ALL: [FieldType; 17] = [
        FieldType::Text,
        FieldType::Textarea,
        FieldType::Email,
        FieldType::Tel,
        FieldType::Url,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Time,
        FieldType::Select,
        FieldType::Multiselect,
        FieldType::Country,
        FieldType::Region,
        FieldType::Locale,
        FieldType::Timezone,
        FieldType::Lookup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Tel => "tel",
            FieldType::Url => "url",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Time => "time",
            FieldType::Select => "select",
            FieldType::Multiselect => "multiselect",
            FieldType::Country => "country",
            FieldType::Region => "region",
            FieldType::Locale => "locale",
            FieldType::Timezone => "timezone",
            FieldType::Lookup => "lookup",
        }
    }

    pub fn parse(s: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The SQL type of the column holding values of this type.
    pub fn kind(self) -> Kind {
        match self {
            FieldType::Number => Kind::Float,
            FieldType::Boolean => Kind::Int,
            _ => Kind::Text,
        }
    }

    /// Types whose values are short text, searched by prefix with `lower()` indexes.
    pub fn is_textual(self) -> bool {
        self.kind() == Kind::Text
    }

    pub fn has_options(self) -> bool {
        matches!(
            self,
            FieldType::Select | FieldType::Multiselect | FieldType::Lookup
        )
    }
}

/// Where a field's value lives. Custom and most default fields are plain columns;
/// `points` and `last_active` are typed system columns that Mautic also lists as fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Column,
    /// Integer points.
    Points,
    /// Milliseconds, shown as a datetime.
    Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    pub id: i64,
    pub alias: String,
    pub label: String,
    pub field_type: FieldType,
    pub group: String,
    pub order: i64,
    pub default_value: Option<String>,
    pub is_required: bool,
    pub is_unique_identifier: bool,
    pub is_publicly_updatable: bool,
    pub is_short_visible: bool,
    pub is_listable: bool,
    pub is_visible: bool,
    pub is_index: bool,
    pub is_fixed: bool,
    pub is_published: bool,
    pub properties: Map<String, Json>,
    pub date_added: i64,
    pub date_modified: i64,
}

impl FieldDef {
    pub fn storage(&self) -> Storage {
        match self.alias.as_str() {
            "points" => Storage::Points,
            "last_active" => Storage::Timestamp,
            _ => Storage::Column,
        }
    }

    /// The column's SQL type.
    pub fn kind(&self) -> Kind {
        match self.storage() {
            Storage::Points | Storage::Timestamp => Kind::Int,
            Storage::Column => self.field_type.kind(),
        }
    }

    /// Whether the column carries a search index: unique identifiers always, plus fields
    /// marked for indexing.
    pub fn is_indexed(&self) -> bool {
        self.is_unique_identifier || self.is_index
    }

    /// Option labels and values of select, multiselect and lookup fields (a lookup's
    /// plain values are their own labels).
    pub fn options(&self) -> Vec<(String, String)> {
        match self.properties.get("list") {
            Some(Json::Array(items)) => items
                .iter()
                .filter_map(|item| {
                    if let Some(v) = item.as_str() {
                        return Some((v.to_owned(), v.to_owned()));
                    }
                    let label = item.get("label").and_then(Json::as_str)?;
                    let value = item.get("value").and_then(Json::as_str)?;
                    Some((label.to_owned(), value.to_owned()))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Mautic's field JSON.
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "isPublished": self.is_published,
            "dateAdded": crate::time::iso(self.date_added),
            "dateModified": crate::time::iso(self.date_modified),
            "label": self.label,
            "alias": self.alias,
            "type": self.field_type.as_str(),
            "group": self.group,
            "order": self.order,
            "object": "lead",
            "defaultValue": self.default_value,
            "isRequired": self.is_required,
            "isPubliclyUpdatable": self.is_publicly_updatable,
            "isUniqueIdentifier": self.is_unique_identifier,
            "isUniqueIdentifer": self.is_unique_identifier,
            "isVisible": self.is_visible,
            "isShortVisible": self.is_short_visible,
            "isListable": self.is_listable,
            "isIndex": self.is_index,
            "isFixed": self.is_fixed,
            "properties": Json::Object(self.properties.clone()),
        })
    }
}

/// All field definitions, in display order, with lookup by alias.
#[derive(Clone, Debug, Default)]
pub struct FieldSet {
    fields: Vec<FieldDef>,
}

impl FieldSet {
    pub fn new(mut fields: Vec<FieldDef>) -> FieldSet {
        fields.sort_by_key(|f| (f.order, f.id));
        FieldSet { fields }
    }
    pub fn get(&self, alias: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.alias == alias)
    }
    pub fn by_id(&self, id: i64) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.id == id)
    }
    pub fn iter(&self) -> std::slice::Iter<'_, FieldDef> {
        self.fields.iter()
    }
    pub fn len(&self) -> usize {
        self.fields.len()
    }
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
    pub fn unique_identifiers(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.is_unique_identifier)
    }
    /// The default fields as they are after the first start (ids from 1), without a database.
    pub fn defaults_for_tests() -> FieldSet {
        FieldSet::new(
            DEFAULT_FIELDS
                .iter()
                .enumerate()
                .map(|(i, d)| d.to_def(i as i64 + 1, i as i64 + 1, 0))
                .collect(),
        )
    }
}

impl DefaultField {
    pub fn to_def(&self, id: i64, order: i64, now: i64) -> FieldDef {
        let properties = match serde_json::from_str(self.properties) {
            Ok(Json::Object(m)) => m,
            _ => Map::new(),
        };
        FieldDef {
            id,
            alias: self.alias.to_owned(),
            label: self.label.to_owned(),
            field_type: self.field_type,
            group: self.group.to_owned(),
            order,
            default_value: None,
            is_required: false,
            is_unique_identifier: self.is_unique_identifier,
            is_publicly_updatable: self.is_publicly_updatable,
            is_short_visible: self.is_short_visible,
            is_listable: self.is_listable,
            is_visible: true,
            is_index: self.is_index,
            is_fixed: self.is_fixed,
            is_published: true,
            properties,
            date_added: now,
            date_modified: now,
        }
    }
}

/// The groups Mautic shows as tabs; custom groups are allowed too.
pub const STANDARD_GROUPS: [&str; 4] = ["core", "social", "personal", "professional"];

/// Keys of a contact's JSON and control keys that a field alias may not take (nor the
/// columns of `contacts` that are not fields: `store::contacts::NON_FIELD_COLUMNS`).
const RESERVED_ALIASES: &[&str] = &[
    "all",
    "core",
    "social",
    "personal",
    "professional",
    "owner",
    "stage",
    "tags",
    "tag",
    "fields",
    "ipaddress",
    "ipaddresses",
    "lastactive",
    "donotcontact",
    "utmtags",
    "frequencyrules",
    "overwritewithblank",
    "contact",
    "lead",
    "leads",
    "contacts",
    "company_id",
    "companies",
    "segments",
    "campaigns",
    "color",
    "dateadded",
    "datemodified",
    "dateidentified",
    "is",
    "ids",
    "name",
    "ip",
    "segment",
    "common",
    "mine",
    "anonymous",
    "unowned",
    "rowid",
    "oid",
    "ctid",
    "xmin",
    "xmax",
    "cmin",
    "cmax",
    "tableoid",
];

pub const MAX_ALIAS_LEN: usize = 50;

pub fn validate_alias(alias: &str) -> Result<(), String> {
    let mut chars = alias.chars();
    let Some(first) = chars.next() else {
        return Err("alias must not be empty".into());
    };
    if !first.is_ascii_lowercase() {
        return Err("alias must start with a lowercase letter".into());
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err("alias may contain only lowercase letters, digits and underscores".into());
    }
    if alias.len() > MAX_ALIAS_LEN {
        return Err(format!("alias must be at most {MAX_ALIAS_LEN} characters"));
    }
    if RESERVED_ALIASES.contains(&alias)
        || crate::store::contacts::NON_FIELD_COLUMNS.contains(&alias)
    {
        return Err(format!("alias '{alias}' is reserved"));
    }
    Ok(())
}

/// Turns a label into an alias candidate, as Mautic does when no alias is given.
pub fn alias_from_label(label: &str) -> String {
    let mut alias = String::new();
    for c in label.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            alias.push(c);
        } else if !alias.ends_with('_') && !alias.is_empty() {
            alias.push('_');
        }
    }
    let mut alias = alias.trim_end_matches('_').to_owned();
    if alias.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        alias.insert(0, 'f');
    }
    alias.truncate(MAX_ALIAS_LEN);
    alias
}

/// Normalises the `properties` sent for a field of type `t`: option lists become
/// `[{"label","value"}]`, number and boolean settings are checked.
pub fn normalize_properties(
    t: FieldType,
    input: Option<&Json>,
) -> Result<Map<String, Json>, AppError> {
    let invalid = |m: &str| AppError::invalid("properties", m);
    let mut out = Map::new();
    let input = match input {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(Json::Array(a)) if a.is_empty() => Map::new(),
        Some(_) => return Err(invalid("must be an object")),
    };
    for (key, value) in &input {
        match (key.as_str(), t) {
            ("list", t) if t.has_options() => {
                let options = parse_option_list(value).map_err(|m| invalid(&m))?;
                // A lookup's list is suggestions, kept as the plain values Mautic's
                // clients send and read back; select options have labels.
                let options = match t {
                    FieldType::Lookup => options.into_iter().map(|o| o["value"].clone()).collect(),
                    _ => options,
                };
                out.insert("list".into(), Json::Array(options));
            }
            ("scale" | "precision", FieldType::Number) => {
                let scale = match value {
                    Json::Null => None,
                    Json::String(s) if s.trim().is_empty() => None,
                    Json::String(s) => Some(
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| invalid("scale must be a number"))?,
                    ),
                    Json::Number(n) => n.as_i64(),
                    _ => return Err(invalid("scale must be a number")),
                };
                match scale {
                    Some(s) if (0..=10).contains(&s) => {
                        out.insert("scale".into(), json!(s));
                    }
                    Some(_) => return Err(invalid("scale must be between 0 and 10")),
                    None => {}
                }
            }
            ("roundmode", FieldType::Number) => {
                let mode = match value {
                    Json::Number(n) => n.as_i64(),
                    Json::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match mode {
                    Some(m) if (0..=6).contains(&m) => {
                        out.insert("roundmode".into(), json!(m));
                    }
                    _ => return Err(invalid("roundmode must be an integer from 0 to 6")),
                }
            }
            ("yes" | "no", FieldType::Boolean) => match value {
                Json::String(s) if s.chars().count() <= 64 => {
                    out.insert(key.clone(), json!(s.trim()));
                }
                _ => return Err(invalid("yes/no labels must be short strings")),
            },
            ("placeholder", _) => match value {
                Json::String(s) if s.chars().count() <= 255 => {
                    out.insert(key.clone(), json!(s));
                }
                Json::Null => {}
                _ => {
                    return Err(invalid(
                        "placeholder must be a string of at most 255 characters",
                    ));
                }
            },
            (other, t) => {
                return Err(invalid(&format!(
                    "'{other}' is not a property of {} fields",
                    t.as_str()
                )));
            }
        }
    }
    if matches!(t, FieldType::Select | FieldType::Multiselect)
        && out
            .get("list")
            .and_then(Json::as_array)
            .is_none_or(|l| l.is_empty())
    {
        return Err(invalid(
            "select fields need at least one option in properties.list",
        ));
    }
    if t == FieldType::Boolean {
        out.entry("no").or_insert_with(|| json!("No"));
        out.entry("yes").or_insert_with(|| json!("Yes"));
    }
    Ok(out)
}

/// Accepts `"a|b|c"`, `["a","b"]`, `[{"label":"A","value":"a"}]` or Mautic's older
/// `{"list": {"0": {...}}}` object form.
fn parse_option_list(value: &Json) -> Result<Vec<Json>, String> {
    let items: Vec<Json> = match value {
        Json::String(s) => s.split('|').map(|v| json!(v)).collect(),
        Json::Array(a) => a.clone(),
        Json::Object(m) => m.values().cloned().collect(),
        _ => return Err("list must be an array of options".into()),
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        let (label, value) = match &item {
            Json::String(s) => (s.trim().to_owned(), s.trim().to_owned()),
            Json::Number(n) => (n.to_string(), n.to_string()),
            Json::Object(o) => {
                let value = match o.get("value") {
                    Some(Json::String(s)) => s.trim().to_owned(),
                    Some(Json::Number(n)) => n.to_string(),
                    _ => return Err("each option needs a value".into()),
                };
                let label = match o.get("label") {
                    Some(Json::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                    _ => value.clone(),
                };
                (label, value)
            }
            _ => return Err("options must be strings or {label, value} objects".into()),
        };
        if value.is_empty() {
            continue;
        }
        if value.contains('|') {
            return Err(format!("option value '{value}' must not contain '|'"));
        }
        if value.chars().count() > 255 || label.chars().count() > 255 {
            return Err("option labels and values must be at most 255 characters".into());
        }
        if !seen.insert(value.clone()) {
            return Err(format!("option value '{value}' appears twice"));
        }
        out.push(json!({ "label": label, "value": value }));
    }
    if out.len() > 1000 {
        return Err("at most 1000 options".into());
    }
    Ok(out)
}

/// One default field: (alias, label, type, group, order, flags, properties).
pub struct DefaultField {
    pub alias: &'static str,
    pub label: &'static str,
    pub field_type: FieldType,
    pub group: &'static str,
    pub is_fixed: bool,
    pub is_short_visible: bool,
    pub is_listable: bool,
    pub is_unique_identifier: bool,
    pub is_publicly_updatable: bool,
    pub is_index: bool,
    pub properties: &'static str,
}

const fn df(
    alias: &'static str,
    label: &'static str,
    field_type: FieldType,
    group: &'static str,
) -> DefaultField {
    DefaultField {
        alias,
        label,
        field_type,
        group,
        is_fixed: false,
        is_short_visible: false,
        is_listable: true,
        is_unique_identifier: false,
        is_publicly_updatable: false,
        is_index: false,
        properties: "{}",
    }
}

/// Mautic's default contact fields, in Mautic's order. Their columns are created by the
/// first migration.
pub const DEFAULT_FIELDS: &[DefaultField] = &[
    DefaultField {
        is_fixed: true,
        properties: r#"{"list":["Mr","Mrs","Miss"]}"#,
        ..df("title", "Title", FieldType::Lookup, "core")
    },
    DefaultField {
        is_fixed: true,
        is_short_visible: true,
        is_index: true,
        ..df("firstname", "First Name", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        is_short_visible: true,
        is_index: true,
        ..df("lastname", "Last Name", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        is_index: true,
        ..df("company", "Primary company", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("position", "Position", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        is_short_visible: true,
        is_unique_identifier: true,
        is_publicly_updatable: true,
        is_index: true,
        ..df("email", "Email", FieldType::Email, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("mobile", "Mobile", FieldType::Tel, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("phone", "Phone", FieldType::Tel, "core")
    },
    DefaultField {
        is_fixed: true,
        properties: r#"{"roundmode":4,"scale":0}"#,
        ..df("points", "Points", FieldType::Number, "core")
    },
    DefaultField {
        ..df("fax", "Fax", FieldType::Tel, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("address1", "Address Line 1", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("address2", "Address Line 2", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("city", "City", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("state", "State", FieldType::Region, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("zipcode", "Zip Code", FieldType::Text, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df("country", "Country", FieldType::Country, "core")
    },
    DefaultField {
        is_fixed: true,
        ..df(
            "preferred_locale",
            "Preferred Locale",
            FieldType::Locale,
            "core",
        )
    },
    DefaultField {
        is_fixed: true,
        ..df(
            "timezone",
            "Preferred Timezone",
            FieldType::Timezone,
            "core",
        )
    },
    DefaultField {
        is_fixed: true,
        ..df(
            "last_active",
            "Date Last Active",
            FieldType::Datetime,
            "core",
        )
    },
    DefaultField {
        is_fixed: true,
        ..df(
            "attribution_date",
            "Attribution Date",
            FieldType::Datetime,
            "core",
        )
    },
    DefaultField {
        is_fixed: true,
        properties: r#"{"roundmode":4,"scale":2}"#,
        ..df("attribution", "Attribution", FieldType::Number, "core")
    },
    DefaultField {
        ..df("website", "Website", FieldType::Url, "core")
    },
    DefaultField {
        ..df("facebook", "Facebook", FieldType::Text, "social")
    },
    DefaultField {
        ..df("foursquare", "Foursquare", FieldType::Text, "social")
    },
    DefaultField {
        ..df("instagram", "Instagram", FieldType::Text, "social")
    },
    DefaultField {
        ..df("linkedin", "LinkedIn", FieldType::Text, "social")
    },
    DefaultField {
        ..df("skype", "Skype", FieldType::Text, "social")
    },
    DefaultField {
        ..df("twitter", "Twitter", FieldType::Text, "social")
    },
];

/// The columns that free-text search covers; these fields cannot be deleted.
pub const SEARCH_TEXT_COLUMNS: [&str; 8] = [
    "firstname",
    "lastname",
    "email",
    "company",
    "city",
    "state",
    "zipcode",
    "country",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        let cases: &[(&str, bool)] = &[
            ("favorite_color", true),
            ("a1", true),
            ("x", true),
            ("", false),
            ("1abc", false),
            ("_abc", false),
            ("Abc", false),
            ("with-dash", false),
            ("with space", false),
            ("émile", false),
            ("id", false),
            ("owner", false),
            ("date_added", false),
            ("search_text", false),
            ("x'; DROP TABLE contacts; --", false),
            (&"a".repeat(50), true),
            (&"a".repeat(51), false),
        ];
        for (alias, ok) in cases {
            assert_eq!(validate_alias(alias).is_ok(), *ok, "{alias}");
        }
    }

    #[test]
    fn alias_from_labels() {
        assert_eq!(alias_from_label("Favorite Color"), "favorite_color");
        assert_eq!(alias_from_label("  Shoe size (EU) "), "shoe_size_eu");
        assert_eq!(alias_from_label("2nd email"), "f2nd_email");
    }

    #[test]
    fn properties() {
        let p = normalize_properties(FieldType::Select, Some(&json!({"list": "a|b| c"}))).unwrap();
        assert_eq!(
            p["list"],
            json!([{"label":"a","value":"a"},{"label":"b","value":"b"},{"label":"c","value":"c"}])
        );
        let p = normalize_properties(
            FieldType::Select,
            Some(&json!({"list": [{"label": "Red", "value": "red"}]})),
        )
        .unwrap();
        assert_eq!(p["list"][0]["label"], "Red");
        assert!(normalize_properties(FieldType::Select, None).is_err());
        assert!(
            normalize_properties(FieldType::Select, Some(&json!({"list": ["a", "a"]}))).is_err()
        );
        assert!(normalize_properties(FieldType::Select, Some(&json!({"list": ["a|b"]}))).is_err());
        assert!(normalize_properties(FieldType::Text, Some(&json!({"list": "a"}))).is_err());
        // A lookup keeps plain values, as sent (Mautic's PHP library reads them back).
        let p =
            normalize_properties(FieldType::Lookup, Some(&json!({"list": ["Mr", "Dr"]}))).unwrap();
        assert_eq!(p["list"], json!(["Mr", "Dr"]));
        let p = normalize_properties(FieldType::Lookup, Some(&json!({"list": "Mr|Dr"}))).unwrap();
        assert_eq!(p["list"], json!(["Mr", "Dr"]));
        assert!(
            normalize_properties(
                FieldType::Number,
                Some(&json!({"scale": 2, "roundmode": 4}))
            )
            .is_ok()
        );
        assert!(normalize_properties(FieldType::Number, Some(&json!({"scale": 99}))).is_err());
        let b = normalize_properties(FieldType::Boolean, None).unwrap();
        assert_eq!(b["yes"], "Yes");
        assert!(normalize_properties(FieldType::Text, Some(&json!("x"))).is_err());
    }

    #[test]
    fn default_fields_are_well_formed() {
        for f in DEFAULT_FIELDS {
            validate_alias(f.alias)
                .or_else(|e| {
                    if ["points"].contains(&f.alias) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .unwrap();
            let props: Json = serde_json::from_str(f.properties).unwrap();
            normalize_properties(f.field_type, Some(&props)).unwrap();
        }
    }
}
