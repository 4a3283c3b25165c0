//! Creating, editing and deleting contact fields: validation of the definition, then the
//! row and its column change in one transaction.

use serde_json::{Map, Value as Json};

use super::fields::{self, FieldDef, FieldSet, FieldType, SEARCH_TEXT_COLUMNS, Storage};
use super::input::{Problems, flag};
use super::values;
use crate::error::{AppError, AppResult};
use crate::store::{self, Store};
use crate::time::now_ms;

const KEYS: [&str; 16] = [
    "label",
    "alias",
    "type",
    "group",
    "order",
    "defaultValue",
    "isPublished",
    "isRequired",
    "isVisible",
    "isShortVisible",
    "isListable",
    "isPubliclyUpdatable",
    "isUniqueIdentifier",
    // Mautic's own spelling of the same flag (its field entity and form use it).
    "isUniqueIdentifer",
    "isIndex",
    "properties",
];
/// Keys Mautic clients send back from a GET that are not editable; accepted and ignored.
const IGNORED: [&str; 8] = [
    "id",
    "object",
    "isFixed",
    "dateAdded",
    "dateModified",
    "createdBy",
    "modifiedBy",
    "createdByUser",
];

fn text(v: &Json, key: &str, max: usize, problems: &mut Problems) -> Option<String> {
    match v {
        Json::String(s) if s.chars().any(char::is_control) => {
            problems.add(key, "must not contain control characters");
            None
        }
        Json::String(s) if s.trim().chars().count() > max => {
            problems.add(key, format!("must be at most {max} characters"));
            None
        }
        Json::String(s) => Some(s.trim().to_owned()),
        Json::Number(n) => Some(n.to_string()),
        Json::Null => None,
        _ => {
            problems.add(key, "must be a string");
            None
        }
    }
}

/// How a body applies to a field.
#[derive(Clone, Copy, PartialEq)]
pub enum Edit {
    /// A new field: `label` is required, `alias` and `type` may be given.
    Create,
    /// PATCH: what the body names changes, the rest stays.
    Patch,
    /// PUT on an existing field: a whole field, as Mautic submits its form clearing what is
    /// missing. What the body leaves out returns to a new field's value, except what makes
    /// the field itself (id, alias, type, whether it is a default field), where it sits
    /// (group, order), and a default field's flags.
    Replace,
}

/// Applies a Mautic field body to `def` (a fresh default for creation).
fn apply_body(
    def: &mut FieldDef,
    body: &Map<String, Json>,
    edit: Edit,
    existing: &FieldSet,
) -> AppResult<()> {
    let creating = edit == Edit::Create;
    let mut problems = Problems::default();
    let unknown: Vec<&String> = body
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()))
        .collect();
    for k in &unknown {
        problems.add(k, "is not a field property");
    }
    problems.into_result()?;
    let mut problems = Problems::default();
    if let Some(v) = body.get("label") {
        match text(v, "label", 191, &mut problems) {
            Some(l) if !l.is_empty() => def.label = l,
            Some(_) | None => problems.add("label", "is required"),
        }
    } else if edit != Edit::Patch {
        problems.add("label", "is required");
    }
    if let Some(v) = body.get("type") {
        let t = v.as_str().and_then(FieldType::parse);
        match t {
            Some(t) if creating => def.field_type = t,
            Some(t) if t == def.field_type => {}
            // As in Mautic: the values stored under the old type (and its default) need
            // not be values of the new one.
            Some(_) => problems.add(
                "type",
                "cannot change once the field exists; create a new field instead",
            ),
            None => problems.add(
                "type",
                format!(
                    "must be one of: {}",
                    FieldType::ALL.map(|t| t.as_str()).join(", ")
                ),
            ),
        }
    }
    if let Some(v) = body.get("alias") {
        let alias = text(v, "alias", 100, &mut problems).unwrap_or_default();
        if creating {
            if !alias.is_empty() {
                match fields::validate_alias(&alias) {
                    Ok(()) if existing.get(&alias).is_some() => problems.add(
                        "alias",
                        format!("'{alias}' is already used by another field"),
                    ),
                    Ok(()) => def.alias = alias,
                    Err(m) => problems.add("alias", m),
                }
            }
        } else if !alias.is_empty() && alias != def.alias {
            problems.add("alias", "cannot be changed");
        }
    }
    if creating && def.alias.is_empty() && !def.label.is_empty() {
        let base = fields::alias_from_label(&def.label);
        let base = if fields::validate_alias(&base).is_ok() {
            base
        } else {
            format!("f_{base}")
                .chars()
                .take(fields::MAX_ALIAS_LEN)
                .collect()
        };
        let mut candidate = base.clone();
        let mut n = 1;
        while existing.get(&candidate).is_some() || fields::validate_alias(&candidate).is_err() {
            candidate = format!("{}{n}", &base[..base.len().min(fields::MAX_ALIAS_LEN - 4)]);
            n += 1;
            if n > 999 {
                problems.add(
                    "alias",
                    "could not derive a free alias from the label; give one",
                );
                break;
            }
        }
        def.alias = candidate;
    }
    if let Some(v) = body.get("group") {
        match text(v, "group", 32, &mut problems) {
            Some(g) if !g.is_empty() && g.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') => def.group = g,
            Some(g) if g.is_empty() => def.group = "core".into(),
            _ => problems.add("group", "must be core, social, personal, professional or a custom name of lowercase letters, digits and _"),
        }
    }
    if let Some(v) = body.get("order") {
        match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(o) if (0..=100_000).contains(&o) => def.order = o,
            _ => problems.add("order", "must be a whole number from 0 to 100000"),
        }
    }
    // Mautic's own spelling, which its clients send, unless the right one is there too.
    let unique = match body.contains_key("isUniqueIdentifier") {
        true => "isUniqueIdentifier",
        false => "isUniqueIdentifer",
    };
    let flags: [(&str, &mut bool); 8] = [
        ("isPublished", &mut def.is_published),
        ("isRequired", &mut def.is_required),
        ("isVisible", &mut def.is_visible),
        ("isShortVisible", &mut def.is_short_visible),
        ("isListable", &mut def.is_listable),
        ("isPubliclyUpdatable", &mut def.is_publicly_updatable),
        (unique, &mut def.is_unique_identifier),
        ("isIndex", &mut def.is_index),
    ];
    for (key, slot) in flags {
        if let Some(v) = body.get(key) {
            match flag(v) {
                Some(b) => *slot = b,
                None => problems.add(key, "must be true or false"),
            }
        }
    }
    if let Some(v) = body.get("properties").filter(|_| true) {
        match fields::normalize_properties(def.field_type, Some(v)) {
            Ok(p) => def.properties = p,
            Err(AppError::Validation { details, .. }) => {
                for m in details
                    .get("properties")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    problems.add("properties", m.as_str().unwrap_or("invalid"));
                }
            }
            Err(e) => return Err(e),
        }
    } else if edit != Edit::Patch || body.contains_key("type") {
        match fields::normalize_properties(
            def.field_type,
            Some(&Json::Object(def.properties.clone())),
        ) {
            Ok(p) => def.properties = p,
            Err(_) => problems.add(
                "properties",
                "are required for this type (e.g. a list of options)",
            ),
        }
    }
    if def.is_unique_identifier
        && (def.storage() != Storage::Column
            || matches!(
                def.field_type,
                FieldType::Textarea | FieldType::Boolean | FieldType::Multiselect
            ))
    {
        problems.add(
            "isUniqueIdentifier",
            "this field cannot be a unique identifier",
        );
    }
    if def.is_fixed && !def.is_published {
        problems.add("isPublished", "default fields cannot be unpublished");
    }
    if let Some(v) = body.get("defaultValue") {
        match v {
            Json::Null => def.default_value = None,
            _ if values::is_blank(v) => def.default_value = None,
            _ => match values::normalize(def, v) {
                Ok(Some(value)) => def.default_value = value.to_text(),
                Ok(None) => def.default_value = None,
                Err(m) => problems.add("defaultValue", m),
            },
        }
    } else if def.field_type.has_options()
        && body.contains_key("properties")
        && let Some(default) = def.default_value.clone()
        && let Err(m) = values::normalize(def, &Json::String(default))
    {
        // New options that leave out the default: say so rather than drop it later.
        problems.add(
            "defaultValue",
            format!("no longer fits the field ({m}); change or clear it too"),
        );
    }
    problems.into_result()
}

fn blank_def() -> FieldDef {
    let now = now_ms();
    FieldDef {
        id: 0,
        alias: String::new(),
        label: String::new(),
        field_type: FieldType::Text,
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
        properties: Map::new(),
        date_added: now,
        date_modified: now,
    }
}

fn body_map(body: &Json) -> AppResult<&Map<String, Json>> {
    body.as_object()
        .ok_or_else(|| AppError::bad_request("the body must be a JSON object describing the field"))
}

pub async fn create(
    store: &Store,
    registry: &super::registry::FieldRegistry,
    body: &Json,
) -> AppResult<FieldDef> {
    let mut tx = store.begin().await?;
    let def = create_in(&mut tx, body).await?;
    tx.commit().await?;
    registry.invalidate();
    Ok(def)
}

/// Creates a field inside `tx` (its column too): nothing of it stays if `tx` rolls back.
/// The caller invalidates the registry after committing.
pub async fn create_in(tx: &mut store::Tx, body: &Json) -> AppResult<FieldDef> {
    let body = body_map(body)?;
    let existing = FieldSet::new(store::fields::list(tx).await?);
    let mut def = blank_def();
    def.order = store::fields::max_order(tx).await? + 1;
    apply_body(&mut def, body, Edit::Create, &existing)?;
    if existing.len() >= 500 {
        return Err(AppError::invalid("alias", "at most 500 fields"));
    }
    def.id = store::fields::create(tx, &def)
        .await
        .map_err(|e| alias_taken(e, &def.alias))?;
    Ok(def)
}

/// A 422 when a concurrent request created the same alias first (its row's unique key,
/// or its column: PostgreSQL reports whichever it meets first), else the error.
fn alias_taken(e: sqlx::Error, alias: &str) -> AppError {
    let taken = e.as_database_error().is_some_and(|d| {
        d.is_unique_violation()
            || d.code().as_deref() == Some("42701")
            || d.message().contains("duplicate column name")
    });
    if taken {
        AppError::invalid("alias", format!("a field with the alias '{alias}' exists"))
    } else {
        e.into()
    }
}

pub async fn update(
    store: &Store,
    registry: &super::registry::FieldRegistry,
    id: i64,
    body: &Json,
    edit: Edit,
) -> AppResult<FieldDef> {
    let body = body_map(body)?;
    let mut tx = store.begin().await?;
    let existing = FieldSet::new(store::fields::list(&mut tx).await?);
    let before = existing
        .by_id(id)
        .cloned()
        .ok_or_else(AppError::not_found)?;
    let mut after = match edit {
        // A default field keeps its flags unless the body names them: de-duplication,
        // search and tracking's identification rest on email's.
        Edit::Replace if before.is_fixed => FieldDef {
            label: String::new(),
            default_value: None,
            properties: Map::new(),
            ..before.clone()
        },
        Edit::Replace => FieldDef {
            id: before.id,
            alias: before.alias.clone(),
            field_type: before.field_type,
            is_fixed: before.is_fixed,
            group: before.group.clone(),
            order: before.order,
            date_added: before.date_added,
            ..blank_def()
        },
        Edit::Create | Edit::Patch => before.clone(),
    };
    apply_body(&mut after, body, edit, &existing)?;
    after.date_modified = now_ms();
    store::fields::update(&mut tx, &before, &after).await?;
    tx.commit().await?;
    registry.invalidate();
    Ok(after)
}

/// Sets the order of fields: ids in their new order.
pub async fn reorder(
    store: &Store,
    registry: &super::registry::FieldRegistry,
    ids: &[i64],
) -> AppResult<()> {
    let mut tx = store.begin().await?;
    let order: Vec<(i64, i64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as i64 + 1))
        .collect();
    store::fields::reorder(&mut tx, &order).await?;
    tx.commit().await?;
    registry.invalidate();
    Ok(())
}

/// The field `id`, if it exists and may be deleted.
fn deletable(existing: &FieldSet, id: i64) -> AppResult<FieldDef> {
    let def = existing
        .by_id(id)
        .cloned()
        .ok_or_else(AppError::not_found)?;
    if def.is_fixed || SEARCH_TEXT_COLUMNS.contains(&def.alias.as_str()) {
        return Err(AppError::Forbidden(format!(
            "'{}' is a default field and cannot be deleted",
            def.alias
        )));
    }
    Ok(def)
}

pub async fn delete(
    store: &Store,
    registry: &super::registry::FieldRegistry,
    id: i64,
) -> AppResult<FieldDef> {
    // Refused at once when it would be (no waiting for exports); then checked again in
    // the transaction that deletes.
    {
        let mut db = store.read().await?;
        deletable(&FieldSet::new(store::fields::list(&mut db).await?), id)?;
    }
    // An export in progress reads this column by name until it ends.
    let _columns = registry.dropping_columns().await;
    let mut tx = store.begin().await?;
    let def = deletable(&FieldSet::new(store::fields::list(&mut tx).await?), id)?;
    store::fields::delete(&mut tx, &def).await?;
    tx.commit().await?;
    registry.invalidate();
    Ok(def)
}
