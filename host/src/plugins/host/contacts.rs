//! `host.get-contact`, `find-contact`, `update-fields`, `change-tags`. Writes go through
//! `contacts::service::save`, the one write path, so they are validated and recorded
//! on the timeline like any other change.

use serde_json::Value as Json;

use super::t::FieldValue;
use super::{Contact, ContactRef, Error, Field, Sandbox, block_on, internal};
use crate::contacts::fields::{FieldSet, FieldType};
use crate::contacts::input::{ContactInput, TagChanges};
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::error::AppError;
use crate::plugins::capabilities::Capability;
use crate::plugins::lookup;
use crate::store::{self, Value};
use crate::time::now_ms;

/// Most fields or tags one call may change.
const MAX_CHANGES: usize = 200;

pub fn to_wit(fields: &FieldSet, c: &crate::contacts::Contact) -> Contact {
    let fields = fields
        .iter()
        .filter_map(|f| {
            let v = c.field_value(f);
            let value = match v {
                Value::Null(_) => return None,
                Value::Int(i) if f.field_type == FieldType::Boolean => FieldValue::Boolean(i != 0),
                Value::Int(i) => FieldValue::Integer(i),
                Value::Float(x) => FieldValue::Float(x),
                Value::Text(s) => FieldValue::Text(s),
            };
            Some(Field {
                alias: f.alias.clone(),
                value,
            })
        })
        .collect();
    Contact {
        id: c.id,
        date_added: c.date_added,
        date_modified: c.date_modified,
        date_identified: c.date_identified,
        last_active: c.last_active,
        points: c.points,
        owner_id: c.owner_id,
        stage_id: c.stage_id,
        tags: c.tags.clone(),
        fields,
    }
}

pub fn get_contact(s: &Sandbox, id: i64) -> Result<Option<Contact>, Error> {
    s.require(Capability::ReadContacts)?;
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut db = state.store.read().await?;
        let fields = state.fields.current(&mut db).await?;
        let found = store::contacts::load(&mut db, &fields, &[id]).await?;
        Ok::<_, sqlx::Error>(found.first().map(|c| to_wit(&fields, c)))
    })
    .map_err(internal)
}

pub fn find_contact(s: &Sandbox, who: &ContactRef) -> Result<Option<i64>, Error> {
    s.require(Capability::ReadContacts)?;
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut db = state.store.read().await?;
        lookup::resolve(&mut db, who).await
    })
    .map_err(internal)
}

fn app_error(e: AppError) -> Error {
    match e {
        AppError::NotFound(m) => Error::NotFound(m),
        AppError::Validation { message, details } => {
            Error::InvalidInput(format!("{message} {details}"))
        }
        AppError::BadRequest(m) => Error::InvalidInput(m),
        AppError::Internal(e) => internal(e),
        other => Error::Failed(other.to_string()),
    }
}

fn save(s: &Sandbox, contact_id: i64, input: ContactInput) -> Result<(), Error> {
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut db = state.store.read().await.map_err(AppError::from)?;
        let fields = state.fields(&mut db).await?;
        let operator = state.operator(&mut db).await?;
        drop(db);
        let ctx = SaveContext {
            fields: fields.clone(),
            operator,
            actor: None,
            source: Source::Plugin,
            now: now_ms(),
        };
        service::save(&state, &ctx, vec![(Target::Patch(contact_id), input)])
            .await?
            .remove(0)
            .map(drop)
    })
    .map_err(app_error)
}

pub fn update_fields(s: &Sandbox, contact_id: i64, fields: Vec<Field>) -> Result<(), Error> {
    s.require(Capability::WriteFields)?;
    if fields.len() > MAX_CHANGES {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_CHANGES} fields per call"
        )));
    }
    let values = fields
        .into_iter()
        .map(|f| {
            let v = match f.value {
                FieldValue::Null => Json::Null,
                FieldValue::Text(s) => Json::String(s),
                FieldValue::Integer(i) => Json::from(i),
                FieldValue::Float(x) => {
                    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
                }
                FieldValue::Boolean(b) => Json::Bool(b),
            };
            (f.alias, v)
        })
        .collect();
    save(
        s,
        contact_id,
        ContactInput {
            values,
            overwrite_with_blank: true,
            ..ContactInput::default()
        },
    )
}

pub fn change_tags(
    s: &Sandbox,
    contact_id: i64,
    add: Vec<String>,
    remove: Vec<String>,
) -> Result<(), Error> {
    s.require(Capability::WriteTags)?;
    if add.len() + remove.len() > MAX_CHANGES {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_CHANGES} tags per call"
        )));
    }
    let clean = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let tags = TagChanges {
        add: clean(add),
        remove: clean(remove),
    };
    save(
        s,
        contact_id,
        ContactInput {
            tags,
            ..ContactInput::default()
        },
    )
}
