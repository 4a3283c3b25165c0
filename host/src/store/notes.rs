//! Notes on contacts.

use super::contact_search::WhereFilter;
use super::db::{DbResult, Exec, Params, Row};
use super::entity_list::{EntityQuery, ListColumn};
use crate::params;

#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub id: i64,
    pub contact_id: i64,
    pub text: String,
    pub note_type: String,
    pub date_time: Option<i64>,
    pub created_by: Option<i64>,
    pub date_added: i64,
    pub date_modified: i64,
}

const COLUMNS: &str =
    "id, contact_id, text, type, date_time, created_by, date_added, date_modified";

fn from_row(r: &Row) -> Note {
    Note {
        id: r.i64("id"),
        contact_id: r.i64("contact_id"),
        text: r.text("text"),
        note_type: r.text("type"),
        date_time: r.opt_i64("date_time"),
        created_by: r.opt_i64("created_by"),
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
    }
}

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<Note>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM contact_notes WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

/// The columns a notes list may be ordered and filtered by (`orderBy`, `where`).
pub const LIST_COLUMNS: &[ListColumn] = &[
    ListColumn::int("id", "id"),
    ListColumn::time("dateAdded", "date_added"),
    ListColumn::time("dateTime", "date_time"),
    ListColumn::time("dateModified", "date_modified"),
    ListColumn::text("type", "type"),
    ListColumn::text("text", "text"),
    ListColumn::int("lead", "contact_id"),
];

/// `q` narrowed to one contact's notes.
pub fn of_contact(mut q: EntityQuery, contact_id: i64) -> EntityQuery {
    q.columns = LIST_COLUMNS;
    q.wheres
        .push(WhereFilter::eq("lead", contact_id.to_string()));
    q
}

/// A page of notes: search (the note's text, `ids:`), filters (a contact's notes are
/// `lead` = its id), order and page.
pub async fn list(db: &mut impl Exec, q: &EntityQuery) -> DbResult<(Vec<Note>, i64)> {
    let mut p = Params::default();
    let cond = q.condition(db.backend(), &mut p, "id", &["text"]);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM contact_notes WHERE {cond}"),
            p.values.clone(),
        )
        .await?
        .unwrap_or(0);
    let sql = format!(
        "SELECT {COLUMNS} FROM contact_notes WHERE {cond} {} LIMIT {} OFFSET {}",
        q.order(&["id"]),
        p.push(q.limit),
        p.push(q.offset)
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

pub async fn insert(
    db: &mut impl Exec,
    contact_id: i64,
    text: &str,
    note_type: &str,
    date_time: Option<i64>,
    created_by: Option<i64>,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO contact_notes (contact_id, text, type, date_time, created_by, date_added, date_modified)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            params![contact_id, text, note_type, date_time, created_by, now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn update(
    db: &mut impl Exec,
    id: i64,
    text: &str,
    note_type: &str,
    date_time: Option<i64>,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "UPDATE contact_notes SET text = $1, type = $2, date_time = $3, date_modified = $4 WHERE id = $5",
        params![text, note_type, date_time, now, id],
    )
    .await
    .map(drop)
}

pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<()> {
    db.execute("DELETE FROM contact_notes WHERE id = $1", params![id])
        .await
        .map(drop)
}
