//! Field definitions and the DDL that keeps `contacts` columns in step with them.

use serde_json::{Map, Value as Json};

use super::db::{Backend, DbResult, Exec, Kind, Params, Row, Value};
use super::entity_list::{EntityQuery, ListColumn};
use crate::contacts::fields::{DEFAULT_FIELDS, FieldDef, FieldType};
use crate::params;

const COLUMNS: &str = "id, alias, label, type, field_group, field_order, default_value, is_required, \
    is_unique_identifier, is_publicly_updatable, is_short_visible, is_listable, is_visible, is_index, \
    is_fixed, is_published, properties, date_added, date_modified";

fn from_row(r: &Row) -> FieldDef {
    let properties = match serde_json::from_str(&r.text("properties")) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    };
    FieldDef {
        id: r.i64("id"),
        alias: r.text("alias"),
        label: r.text("label"),
        field_type: FieldType::parse(&r.text("type")).unwrap_or(FieldType::Text),
        group: r.text("field_group"),
        order: r.i64("field_order"),
        default_value: r.opt_text("default_value"),
        is_required: r.bool("is_required"),
        is_unique_identifier: r.bool("is_unique_identifier"),
        is_publicly_updatable: r.bool("is_publicly_updatable"),
        is_short_visible: r.bool("is_short_visible"),
        is_listable: r.bool("is_listable"),
        is_visible: r.bool("is_visible"),
        is_index: r.bool("is_index"),
        is_fixed: r.bool("is_fixed"),
        is_published: r.bool("is_published"),
        properties,
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
    }
}

pub async fn list(db: &mut impl Exec) -> DbResult<Vec<FieldDef>> {
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM contact_fields ORDER BY field_order, id"),
            vec![],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The counter bumped by every field change; caches compare it.
pub async fn version(db: &mut impl Exec) -> DbResult<i64> {
    Ok(db
        .fetch_optional(
            "SELECT value FROM settings WHERE key = 'fields_version'",
            vec![],
        )
        .await?
        .and_then(|r| r.at(0).as_i64())
        .unwrap_or(0))
}

async fn bump_version(db: &mut impl Exec) -> DbResult<()> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "INSERT INTO settings (key, value) VALUES ('fields_version', '1')
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS INTEGER) + 1 AS TEXT)"
        }
        Backend::Postgres => {
            "INSERT INTO settings (key, value) VALUES ('fields_version', '1')
             ON CONFLICT (key) DO UPDATE SET value = (settings.value::bigint + 1)::text"
        }
    };
    db.execute(sql, vec![]).await.map(drop)
}

/// Inserts the default field rows on first start (their columns come from migration 1).
pub async fn seed_defaults(db: &mut impl Exec, now: i64) -> DbResult<()> {
    let count = db
        .fetch_i64("SELECT COUNT(*) FROM contact_fields", vec![])
        .await?
        .unwrap_or(0);
    if count > 0 {
        return Ok(());
    }
    for (i, d) in DEFAULT_FIELDS.iter().enumerate() {
        let def = d.to_def(0, i as i64 + 1, now);
        insert_row(db, &def).await?;
    }
    bump_version(db).await
}

async fn insert_row(db: &mut impl Exec, f: &FieldDef) -> DbResult<i64> {
    let id = db
        .fetch_i64(
            &format!(
                "INSERT INTO contact_fields ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                 RETURNING id",
                COLUMNS.trim_start_matches("id, ")
            ),
            params![
                f.alias.as_str(),
                f.label.as_str(),
                f.field_type.as_str(),
                f.group.as_str(),
                f.order,
                f.default_value.clone(),
                f.is_required,
                f.is_unique_identifier,
                f.is_publicly_updatable,
                f.is_short_visible,
                f.is_listable,
                f.is_visible,
                f.is_index,
                f.is_fixed,
                f.is_published,
                Json::Object(f.properties.clone()).to_string(),
                f.date_added,
                f.date_modified,
            ],
        )
        .await?;
    Ok(id.unwrap_or_default())
}

fn sql_type(backend: Backend, kind: Kind) -> &'static str {
    match (backend, kind) {
        (_, Kind::Text) => "TEXT",
        (Backend::Sqlite, Kind::Int) => "INTEGER",
        (Backend::Postgres, Kind::Int) => "BIGINT",
        (Backend::Sqlite, Kind::Float) => "REAL",
        (Backend::Postgres, Kind::Float) => "DOUBLE PRECISION",
    }
}

/// The expression searched and indexed for a field's column: case-folded text (in
/// byte order on PostgreSQL so prefix ranges use the index), or the value itself.
pub fn search_expr(backend: Backend, column: &str, kind: Kind) -> String {
    match (kind, backend) {
        (Kind::Text, Backend::Sqlite) => format!("fold({column})"),
        (Kind::Text, Backend::Postgres) => format!("(lower({column}) COLLATE \"C\")"),
        _ => column.to_owned(),
    }
}

/// Quotes an alias as a column name (aliases are validated to `[a-z][a-z0-9_]*`).
pub fn column(alias: &str) -> String {
    debug_assert!(
        alias
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    );
    format!("\"{alias}\"")
}

fn index_name(alias: &str) -> String {
    format!("contacts_f_{alias}")
}

async fn create_index(db: &mut impl Exec, f: &FieldDef) -> DbResult<()> {
    let expr = search_expr(db.backend(), &column(&f.alias), f.kind());
    // Partial on known contacts, like the built-in search indexes: a contact with a value in
    // an identifier is known, and the list hides anonymous visitors unless asked for.
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {} ON contacts (({expr})) WHERE date_identified IS NOT NULL",
        index_name(&f.alias)
    );
    db.execute_script(&sql).await?;
    if db.backend() == Backend::Postgres && f.kind() == Kind::Text {
        // The planner ignores the statistics of partial indexes; without these it guesses
        // 0.5% of the table for any prefix (see migration 7).
        let sql = format!(
            "CREATE STATISTICS IF NOT EXISTS contacts_s_{} ON (({expr})) FROM contacts",
            f.alias
        );
        db.execute_script(&sql).await?;
    }
    Ok(())
}

/// Creates any field index that is missing: a SQLite database restored from a `.dump`
/// by a shell that lacks `fold()` (`store::fold`) lost them without a word.
pub async fn ensure_indexes(db: &mut impl Exec) -> DbResult<()> {
    for f in list(db).await?.iter().filter(|f| f.is_indexed()) {
        create_index(db, f).await?;
    }
    Ok(())
}

async fn drop_index(db: &mut impl Exec, alias: &str) -> DbResult<()> {
    db.execute_script(&format!("DROP INDEX IF EXISTS {}", index_name(alias)))
        .await?;
    if db.backend() == Backend::Postgres {
        db.execute_script(&format!("DROP STATISTICS IF EXISTS contacts_s_{alias}"))
            .await?;
    }
    Ok(())
}

/// Creates the field's row, column and (when indexed) index, in the caller's transaction.
pub async fn create(db: &mut impl Exec, f: &FieldDef) -> DbResult<i64> {
    let id = insert_row(db, f).await?;
    let sql = format!(
        "ALTER TABLE contacts ADD COLUMN {} {}",
        column(&f.alias),
        sql_type(db.backend(), f.kind())
    );
    db.execute_script(&sql).await?;
    if f.is_indexed() {
        create_index(db, f).await?;
    }
    bump_version(db).await?;
    Ok(id)
}

/// Saves an edited definition; adds or drops the index when indexing changed.
pub async fn update(db: &mut impl Exec, before: &FieldDef, after: &FieldDef) -> DbResult<()> {
    db.execute(
        "UPDATE contact_fields SET label = $1, field_group = $2, field_order = $3, default_value = $4,
            is_required = $5, is_unique_identifier = $6, is_publicly_updatable = $7, is_short_visible = $8,
            is_listable = $9, is_visible = $10, is_index = $11, is_published = $12, properties = $13,
            date_modified = $14, type = $15
         WHERE id = $16",
        params![
            after.label.as_str(),
            after.group.as_str(),
            after.order,
            after.default_value.clone(),
            after.is_required,
            after.is_unique_identifier,
            after.is_publicly_updatable,
            after.is_short_visible,
            after.is_listable,
            after.is_visible,
            after.is_index,
            after.is_published,
            Json::Object(after.properties.clone()).to_string(),
            after.date_modified,
            after.field_type.as_str(),
            before.id,
        ],
    )
    .await?;
    if before.is_indexed() != after.is_indexed() {
        if after.is_indexed() {
            create_index(db, after).await?;
        } else {
            drop_index(db, &after.alias).await?;
        }
    }
    bump_version(db).await
}

/// Sets the display order of many fields at once (admin reordering).
pub async fn reorder(db: &mut impl Exec, order: &[(i64, i64)]) -> DbResult<()> {
    for (id, position) in order {
        db.execute(
            "UPDATE contact_fields SET field_order = $1 WHERE id = $2",
            params![*position, *id],
        )
        .await?;
    }
    bump_version(db).await
}

/// Drops the field's index, column and row.
pub async fn delete(db: &mut impl Exec, f: &FieldDef) -> DbResult<()> {
    drop_index(db, &f.alias).await?;
    db.execute_script(&format!(
        "ALTER TABLE contacts DROP COLUMN {}",
        column(&f.alias)
    ))
    .await?;
    db.execute("DELETE FROM contact_fields WHERE id = $1", params![f.id])
        .await?;
    bump_version(db).await
}

pub async fn max_order(db: &mut impl Exec) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "SELECT COALESCE(MAX(field_order), 0) FROM contact_fields",
            vec![],
        )
        .await?
        .unwrap_or(0))
}

/// A NULL of the column type, for clearing.
pub fn null(f: &FieldDef) -> Value {
    Value::Null(f.kind())
}

/// What the fields list's `orderBy` and `where` may name: Mautic's field properties.
pub const FIELD_COLUMNS: &[ListColumn] = &[
    ListColumn::int("id", "id"),
    ListColumn::text("alias", "alias"),
    ListColumn::text("label", "label"),
    ListColumn::text("type", "type"),
    ListColumn::text("group", "field_group"),
    ListColumn::int("order", "field_order"),
    ListColumn::text("defaultValue", "default_value"),
    ListColumn::int("isRequired", "is_required"),
    ListColumn::int("isUniqueIdentifier", "is_unique_identifier"),
    ListColumn::int("isPubliclyUpdatable", "is_publicly_updatable"),
    ListColumn::int("isShortVisible", "is_short_visible"),
    ListColumn::int("isListable", "is_listable"),
    ListColumn::int("isVisible", "is_visible"),
    ListColumn::int("isFixed", "is_fixed"),
    ListColumn::int("isPublished", "is_published"),
    ListColumn::time("dateAdded", "date_added"),
    ListColumn::time("dateModified", "date_modified"),
];

/// A page of the fields list: the ids in order, and how many match.
pub async fn page(db: &mut impl Exec, q: &EntityQuery) -> DbResult<(Vec<i64>, i64)> {
    let mut p = Params::default();
    let cond = q.condition(db.backend(), &mut p, "id", &["alias", "label"]);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM contact_fields WHERE {cond}"),
            p.values.clone(),
        )
        .await?
        .unwrap_or(0);
    let sql = format!(
        "SELECT id FROM contact_fields WHERE {cond} {} LIMIT {} OFFSET {}",
        q.order(&["field_order", "id"]),
        p.push(q.limit),
        p.push(q.offset)
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((rows.iter().map(|r| r.i64("id")).collect(), total))
}
