//! Contacts: fields, values, the search grammar, identity (duplicates) and the write
//! path every feature shares (API, admin, import, tracking).

pub mod field_service;
pub mod fields;
pub mod input;
pub mod merge;
pub mod notes;
pub mod registry;
pub mod save_group;
pub mod search;
pub mod service;
pub mod values;

use std::collections::HashMap;

use crate::store::Value;
use fields::{FieldDef, FieldSet};

/// A contact as stored: system columns plus one value per field column.
#[derive(Clone, Debug, Default)]
pub struct Contact {
    pub id: i64,
    pub date_added: i64,
    pub date_modified: i64,
    pub date_identified: Option<i64>,
    pub last_active: Option<i64>,
    pub created_by: Option<i64>,
    pub modified_by: Option<i64>,
    pub owner_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub points: i64,
    pub preferred_profile_image: Option<String>,
    /// Field alias → stored value (column fields only; points and last_active are above).
    pub values: HashMap<String, Value>,
    pub tags: Vec<String>,
}

impl Contact {
    pub fn value(&self, alias: &str) -> Option<&Value> {
        match self.values.get(alias) {
            Some(v) if !v.is_null() => Some(v),
            _ => None,
        }
    }

    pub fn text(&self, alias: &str) -> Option<String> {
        self.value(alias)
            .and_then(Value::to_text)
            .filter(|s| !s.is_empty())
    }

    /// The stored value of any field, system-backed ones included.
    pub fn field_value(&self, field: &FieldDef) -> Value {
        match field.storage() {
            fields::Storage::Points => Value::Int(self.points),
            fields::Storage::Timestamp => Value::from(self.last_active),
            fields::Storage::Column => self
                .values
                .get(&field.alias)
                .cloned()
                .unwrap_or(Value::Null(field.kind())),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.date_identified.is_none()
    }

    /// "First Last", or the email, or the company, or "Visitor".
    pub fn display_name(&self) -> String {
        let name = [self.text("firstname"), self.text("lastname")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            return name;
        }
        self.text("email")
            .or_else(|| self.text("company"))
            .unwrap_or_else(|| "Visitor".to_owned())
    }
}

/// A contact stops being anonymous when it has a name, an email, a company or any
/// unique-identifier value.
pub fn is_identifying(fields: &FieldSet, values: &HashMap<String, Value>) -> bool {
    let has = |alias: &str| {
        values
            .get(alias)
            .is_some_and(|v| !v.is_null() && v.to_text().is_some_and(|s| !s.is_empty()))
    };
    ["firstname", "lastname", "email", "company"]
        .iter()
        .any(|a| has(a))
        || fields.unique_identifiers().any(|f| has(&f.alias))
}
