//! Exports (the requests, their files and download tokens), the pages of contacts an
//! export streams (keyset pagination over ids: constant memory at any size), and the
//! notifications that tell a user an export is ready.

use serde_json::Value as Json;

use super::db::{DbResult, Exec, Params, Row, Value};
use super::fields::column;
use crate::contacts::fields::{FieldSet, Storage};
use crate::params;

#[derive(Clone, Debug)]
pub struct ExportRow {
    pub id: i64,
    pub job_id: Option<i64>,
    pub created_by: i64,
    pub format: String,
    pub query: Json,
    pub stored_name: Option<String>,
    pub rows: i64,
    pub size_bytes: i64,
    pub token_hash: Option<String>,
    pub expires_at: Option<i64>,
    pub email_to: Option<String>,
    pub email_status: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, job_id, created_by, format, query, stored_name, rows, size_bytes, token_hash, expires_at, email_to, \
    email_status, created_at, finished_at";

fn from_row(r: &Row) -> ExportRow {
    ExportRow {
        id: r.i64("id"),
        job_id: r.opt_i64("job_id"),
        created_by: r.i64("created_by"),
        format: r.text("format"),
        query: serde_json::from_str(&r.text("query")).unwrap_or(Json::Null),
        stored_name: r.opt_text("stored_name"),
        rows: r.i64("rows"),
        size_bytes: r.i64("size_bytes"),
        token_hash: r.opt_text("token_hash"),
        expires_at: r.opt_i64("expires_at"),
        email_to: r.opt_text("email_to"),
        email_status: r.opt_text("email_status"),
        created_at: r.i64("created_at"),
        finished_at: r.opt_i64("finished_at"),
    }
}

pub async fn insert(
    db: &mut impl Exec,
    job_id: i64,
    created_by: i64,
    format: &str,
    query: &Json,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO exports (job_id, created_by, format, query, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            params![job_id, created_by, format, query.to_string(), now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<ExportRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM exports WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn by_job(db: &mut impl Exec, job_id: i64) -> DbResult<Option<ExportRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM exports WHERE job_id = $1"),
            params![job_id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

/// One user's exports, newest first.
pub async fn list(
    db: &mut impl Exec,
    user: i64,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<ExportRow>, i64)> {
    let total = db
        .fetch_i64(
            "SELECT COUNT(*) FROM exports WHERE created_by = $1",
            params![user],
        )
        .await?
        .unwrap_or(0);
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM exports WHERE created_by = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"),
            params![user, limit, offset],
        )
        .await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

/// The file is written: where, how big, and the link's token (hashed) and expiry.
pub struct Finished<'a> {
    pub stored_name: &'a str,
    pub rows: i64,
    pub size_bytes: i64,
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub email_to: Option<&'a str>,
    pub email_status: &'a str,
}

pub async fn finish(db: &mut impl Exec, id: i64, f: &Finished<'_>, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE exports SET stored_name = $1, rows = $2, size_bytes = $3, token_hash = $4, expires_at = $5, email_to = $6,
             email_status = $7, finished_at = $8
         WHERE id = $9",
        params![f.stored_name, f.rows, f.size_bytes, f.token_hash, f.expires_at, f.email_to, f.email_status, now, id],
    )
    .await
    .map(drop)
}

pub async fn set_email_status(db: &mut impl Exec, id: i64, status: &str) -> DbResult<()> {
    db.execute(
        "UPDATE exports SET email_status = $1 WHERE id = $2",
        params![status, id],
    )
    .await
    .map(drop)
}

/// Exports whose link expired and whose file is still on disk.
pub async fn expired_files(db: &mut impl Exec, now: i64) -> DbResult<Vec<ExportRow>> {
    let rows = db
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM exports WHERE expires_at < $1 AND stored_name IS NOT NULL"
            ),
            params![now],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn forget_file(db: &mut impl Exec, id: i64) -> DbResult<()> {
    db.execute(
        "UPDATE exports SET stored_name = NULL WHERE id = $1",
        params![id],
    )
    .await
    .map(drop)
}

/// The columns of an export page, in order: these system columns, then one per field
/// (in the field set's order; points and last_active included).
pub const PAGE_SYSTEM_COLUMNS: [&str; 6] = [
    "id",
    "date_added",
    "date_modified",
    "date_identified",
    "owner_id",
    "stage_id",
];

fn page_select(fields: &FieldSet) -> String {
    let mut cols: Vec<String> = PAGE_SYSTEM_COLUMNS
        .iter()
        .map(|c| format!("c.{c}"))
        .collect();
    for f in fields.iter() {
        cols.push(match f.storage() {
            Storage::Column => format!("c.{}", column(&f.alias)),
            Storage::Points => "c.points".to_owned(),
            Storage::Timestamp => "c.last_active".to_owned(),
        });
    }
    cols.join(", ")
}

/// The contacts of `scope`, in id order, as cells.
pub async fn page(db: &mut impl Exec, fields: &FieldSet, scope: &Scope<'_>) -> DbResult<Vec<Row>> {
    if matches!(scope, Scope::Ids { ids, .. } if ids.is_empty()) {
        return Ok(Vec::new());
    }
    let (inner, values) = scope.sql();
    let sql = format!(
        "SELECT {} FROM contacts c WHERE {inner}",
        page_select(fields)
    );
    db.fetch_all(&sql, values).await
}

/// SQLite's separators in a page of lines (`lines`): rows by U+001E, fields by
/// U+001F. A value that contains either is caught when the page is split (a row or
/// field too many) and the page is read again the usual way.
pub const ROW_SEP: u8 = 0x1e;
pub const FIELD_SEP: u8 = 0x1f;

/// Fields whose values go through the usual decoding even on the fast path: numbers
/// (SQLite's text for a REAL is not the export's) and booleans.
pub fn is_numeric_column(f: &crate::contacts::fields::FieldDef) -> bool {
    f.storage() == Storage::Column && f.kind() != super::db::Kind::Text
}

/// One text per row: `id`, one value per field (empty for numeric fields, see
/// `is_numeric_column`), then `owner_id`, `stage_id`, `date_added`, `date_modified`,
/// `date_identified`; NULL as empty. Columns that cannot be NULL are left bare: were one
/// NULL anyway, `concat_ws` would skip it and the row would have a field too few.
fn line_expr(fields: &FieldSet) -> String {
    let mut parts: Vec<String> = vec!["c.id".to_owned()];
    for f in fields.iter() {
        parts.push(if is_numeric_column(f) {
            "''".to_owned()
        } else {
            match f.storage() {
                Storage::Column => format!("ifnull(c.{}, '')", column(&f.alias)),
                Storage::Points => "c.points".to_owned(),
                Storage::Timestamp => "ifnull(c.last_active, '')".to_owned(),
            }
        });
    }
    parts.extend(
        [
            "ifnull(c.owner_id, '')",
            "ifnull(c.stage_id, '')",
            "c.date_added",
            "c.date_modified",
            "ifnull(c.date_identified, '')",
        ]
        .map(str::to_owned),
    );
    // concat_ws takes at most SQLITE_MAX_FUNCTION_ARG arguments: nest beyond 100.
    while parts.len() > 100 {
        parts = parts
            .chunks(100)
            .map(|c| format!("concat_ws(char(31), {})", c.join(", ")))
            .collect();
    }
    format!("concat_ws(char(31), {})", parts.join(", "))
}

/// The columns of the numeric fields (`is_numeric_column`), as `c.column`.
fn numeric_columns(fields: &FieldSet) -> Vec<String> {
    fields
        .iter()
        .filter(|f| is_numeric_column(f))
        .map(|f| format!("c.{}", column(&f.alias)))
        .collect()
}

/// Whether any numeric field of the row has a value (then `numbers` reads them).
fn numbers_expr(fields: &FieldSet) -> String {
    let cols: Vec<String> = numeric_columns(fields)
        .into_iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect();
    if cols.is_empty() {
        "0".to_owned()
    } else {
        cols.join(" OR ")
    }
}

/// A page read by `lines`.
pub struct Lines {
    /// Rows in the page.
    pub rows: i64,
    /// The rows' lines, separated by `ROW_SEP`, in id order.
    pub text: String,
    /// Whether some row has a numeric field with a value.
    pub numbers: bool,
}

fn lines_of(rows: Vec<Row>) -> Lines {
    let r = rows.first();
    Lines {
        rows: r.and_then(|r| r.at(0).as_i64()).unwrap_or(0),
        text: r.and_then(|r| r.at(1).as_str()).unwrap_or("").to_owned(),
        numbers: r.and_then(|r| r.at(2).as_i64()).unwrap_or(0) != 0,
    }
}

/// Which contacts a page of an export holds.
pub enum Scope<'a> {
    /// Matches of `condition` (from `contact_search::condition`, with its `params`) with
    /// ids above `after`: the first `limit` of them, or those up to `until` included.
    After {
        condition: &'a str,
        params: &'a Params,
        after: i64,
        limit: Option<i64>,
        until: Option<i64>,
    },
    /// These contacts (ids sorted ascending), those of them that match `filter` when
    /// there is one (a search or `where` given with the ids).
    Ids {
        ids: &'a [i64],
        filter: Option<(&'a str, &'a Params)>,
    },
}

impl Scope<'_> {
    /// The WHERE condition over `contacts c` (with ORDER BY and LIMIT) and its values.
    fn sql(&self) -> (String, Vec<Value>) {
        match self {
            Scope::After {
                condition,
                params,
                after,
                limit,
                until,
            } => {
                let mut values = params.values.clone();
                values.push(Value::Int(*after));
                let mut sql = format!("({condition}) AND c.id > ${}", values.len());
                if let Some(until) = until {
                    values.push(Value::Int(*until));
                    sql.push_str(&format!(" AND c.id <= ${}", values.len()));
                }
                sql.push_str(" ORDER BY c.id");
                if let Some(limit) = limit {
                    values.push(Value::Int(*limit));
                    sql.push_str(&format!(" LIMIT ${}", values.len()));
                }
                (sql, values)
            }
            Scope::Ids { ids, filter } => {
                let (mut p, condition) = match filter {
                    Some((condition, params)) => (
                        Params {
                            values: params.values.clone(),
                        },
                        format!(" AND ({condition})"),
                    ),
                    None => (Params::default(), String::new()),
                };
                let list = p.list(ids.iter().copied());
                (
                    format!("c.id IN ({list}){condition} ORDER BY c.id"),
                    p.values,
                )
            }
        }
    }
}

/// SQLite only: the page `page` would read, as text built by
/// SQLite (see `line_expr`): a page is one value to decode instead of one per cell.
pub async fn lines(db: &mut impl Exec, fields: &FieldSet, scope: &Scope<'_>) -> DbResult<Lines> {
    let (inner, values) = scope.sql();
    let sql = format!(
        "SELECT count(*), group_concat(l, char(30)), max(n) FROM (
            SELECT {} AS l, {} AS n FROM contacts c WHERE {inner}
        )",
        line_expr(fields),
        numbers_expr(fields)
    );
    Ok(lines_of(db.fetch_all(&sql, values).await?))
}

/// The numeric fields (`is_numeric_column`) of the contacts of `scope` that have one:
/// `id` first, then those fields in the field set's order.
pub async fn numbers(
    db: &mut impl Exec,
    fields: &FieldSet,
    scope: &Scope<'_>,
) -> DbResult<Vec<Row>> {
    let cols = numeric_columns(fields);
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let (inner, values) = scope.sql();
    let sql = format!(
        "SELECT c.id, {} FROM contacts c WHERE ({}) AND {inner}",
        cols.join(", "),
        numbers_expr(fields)
    );
    db.fetch_all(&sql, values).await
}

/// The tags of the contacts with ids in `first..=last` (each contact's in tag order, as
/// `contacts::tags_of` gives them): one range of the primary key instead of a lookup
/// per contact, for pages whose ids are dense.
pub async fn tags_between(db: &mut impl Exec, first: i64, last: i64) -> DbResult<Vec<Row>> {
    let sql = format!(
        "SELECT ct.contact_id, t.tag FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id
         WHERE ct.contact_id >= $1 AND ct.contact_id <= $2 ORDER BY ct.contact_id, t.tag{}",
        db.backend().bytewise()
    );
    db.fetch_all(&sql, params![first, last]).await
}

/// Before a long scan on SQLite: no memory-mapped reads on this connection (they would
/// map the whole database into the process) and a small page cache (8 MB).
pub async fn scan_begin(db: &mut impl Exec) -> DbResult<()> {
    if db.backend() == super::Backend::Sqlite {
        db.execute_script("PRAGMA mmap_size = 0; PRAGMA cache_size = -8192")
            .await?;
    }
    Ok(())
}

/// After the scan: the connection's usual settings (see `db.rs`).
pub async fn scan_end(db: &mut impl Exec) -> DbResult<()> {
    if db.backend() == super::Backend::Sqlite {
        db.execute_script("PRAGMA mmap_size = 268435456; PRAGMA cache_size = -65536")
            .await?;
    }
    Ok(())
}

/// Id → name of every stage, and id → username of every user (small tables).
pub async fn names(
    db: &mut impl Exec,
) -> DbResult<(
    std::collections::HashMap<i64, String>,
    std::collections::HashMap<i64, String>,
)> {
    let stages = db
        .fetch_all("SELECT id, name FROM stages", vec![])
        .await?
        .iter()
        .map(|r| (r.i64("id"), r.text("name")))
        .collect();
    let users = db
        .fetch_all("SELECT id, username FROM users", vec![])
        .await?
        .iter()
        .map(|r| (r.i64("id"), r.text("username")))
        .collect();
    Ok((stages, users))
}

#[derive(Clone, Debug)]
pub struct Notification {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub link: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

pub async fn notify(
    db: &mut impl Exec,
    user_id: i64,
    kind: &str,
    title: &str,
    message: &str,
    link: Option<&str>,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO notifications (user_id, kind, title, message, link, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            params![user_id, kind, title, message, link, now],
        )
        .await?
        .unwrap_or_default())
}

/// A user's notifications, newest first, and how many are unread.
pub async fn notifications(
    db: &mut impl Exec,
    user_id: i64,
    limit: i64,
) -> DbResult<(Vec<Notification>, i64)> {
    let unread = unread_count(db, user_id).await?;
    let rows = db
        .fetch_all(
            "SELECT id, user_id, kind, title, message, link, created_at, read_at FROM notifications WHERE user_id = $1
             ORDER BY id DESC LIMIT $2",
            params![user_id, limit],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| Notification {
            id: r.i64("id"),
            user_id: r.i64("user_id"),
            kind: r.text("kind"),
            title: r.text("title"),
            message: r.text("message"),
            link: r.opt_text("link"),
            created_at: r.i64("created_at"),
            read_at: r.opt_i64("read_at"),
        })
        .collect();
    Ok((list, unread))
}

pub async fn mark_notifications_read(db: &mut impl Exec, user_id: i64, now: i64) -> DbResult<u64> {
    db.execute(
        "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL",
        params![now, user_id],
    )
    .await
}

/// How many of a user's notifications are unread.
pub async fn unread_count(db: &mut impl Exec, user_id: i64) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
            params![user_id],
        )
        .await?
        .unwrap_or(0))
}
