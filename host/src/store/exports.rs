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

/// The next page of contacts matching `condition` (built by
/// `contact_search::condition`), ids above `after`, in id order.
pub async fn page_after(
    db: &mut impl Exec,
    fields: &FieldSet,
    condition: &str,
    params: &Params,
    after: i64,
    limit: i64,
) -> DbResult<Vec<Row>> {
    let mut values = params.values.clone();
    values.push(Value::Int(after));
    let after_ph = values.len();
    values.push(Value::Int(limit));
    let limit_ph = values.len();
    let sql = format!(
        "SELECT {} FROM contacts c WHERE ({condition}) AND c.id > ${after_ph} ORDER BY c.id LIMIT ${limit_ph}",
        page_select(fields)
    );
    db.fetch_all(&sql, values).await
}

/// These contacts (ids sorted ascending by the caller), in id order.
pub async fn page_of_ids(db: &mut impl Exec, fields: &FieldSet, ids: &[i64]) -> DbResult<Vec<Row>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Params::default();
    let list: Vec<String> = ids.iter().map(|i| p.push(*i)).collect();
    let sql = format!(
        "SELECT {} FROM contacts c WHERE c.id IN ({}) ORDER BY c.id",
        page_select(fields),
        list.join(", ")
    );
    db.fetch_all(&sql, p.values).await
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
