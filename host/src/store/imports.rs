//! CSV imports: the import rows (file, settings, checkpoint, counters) and the rows
//! that failed. The checkpoint and the counters are written in the same transaction as
//! the contacts of the batch they describe.

use serde_json::Value as Json;

use super::db::{DbResult, Exec, Params, Row, Value};
use crate::params;

#[derive(Clone, Debug)]
pub struct ImportRow {
    pub id: i64,
    pub job_id: Option<i64>,
    pub created_by: Option<i64>,
    pub file_name: String,
    pub stored_name: String,
    pub size_bytes: i64,
    pub line_count: i64,
    pub settings: Json,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub offset_bytes: i64,
    pub next_row: i64,
    pub next_line: i64,
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub run_started_at: Option<i64>,
    pub run_bytes_start: i64,
    pub total_rows: Option<i64>,
}

const COLUMNS: &str = "id, job_id, created_by, file_name, stored_name, size_bytes, line_count, settings, created_at, updated_at, \
    started_at, finished_at, offset_bytes, next_row, next_line, rows_done, created_count, updated_count, skipped_count, \
    failed_count, run_started_at, run_bytes_start, total_rows";

fn from_row(r: &Row) -> ImportRow {
    ImportRow {
        id: r.i64("id"),
        job_id: r.opt_i64("job_id"),
        created_by: r.opt_i64("created_by"),
        file_name: r.text("file_name"),
        stored_name: r.text("stored_name"),
        size_bytes: r.i64("size_bytes"),
        line_count: r.i64("line_count"),
        settings: serde_json::from_str(&r.text("settings")).unwrap_or(Json::Null),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
        started_at: r.opt_i64("started_at"),
        finished_at: r.opt_i64("finished_at"),
        offset_bytes: r.i64("offset_bytes"),
        next_row: r.i64("next_row"),
        next_line: r.i64("next_line"),
        rows_done: r.i64("rows_done"),
        created: r.i64("created_count"),
        updated: r.i64("updated_count"),
        skipped: r.i64("skipped_count"),
        failed: r.i64("failed_count"),
        run_started_at: r.opt_i64("run_started_at"),
        run_bytes_start: r.i64("run_bytes_start"),
        total_rows: r.opt_i64("total_rows"),
    }
}

pub struct NewImport<'a> {
    pub created_by: Option<i64>,
    pub file_name: &'a str,
    pub stored_name: &'a str,
    pub size_bytes: i64,
    pub line_count: i64,
    pub settings: &'a Json,
}

pub async fn insert(db: &mut impl Exec, n: &NewImport<'_>, now: i64) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO imports (created_by, file_name, stored_name, size_bytes, line_count, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            params![n.created_by, n.file_name, n.stored_name, n.size_bytes, n.line_count, n.settings.to_string(), now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<ImportRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM imports WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn by_job(db: &mut impl Exec, job_id: i64) -> DbResult<Option<ImportRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM imports WHERE job_id = $1"),
            params![job_id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

/// Newest first; `user` limits to one user's imports.
pub async fn list(
    db: &mut impl Exec,
    user: Option<i64>,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<ImportRow>, i64)> {
    let (cond, mut p) = match user {
        Some(u) => ("WHERE created_by = $1", params![u]),
        None => ("", vec![]),
    };
    let total = db
        .fetch_i64(&format!("SELECT COUNT(*) FROM imports {cond}"), p.clone())
        .await?
        .unwrap_or(0);
    let n = p.len();
    p.push(Value::Int(limit));
    p.push(Value::Int(offset));
    let sql = format!(
        "SELECT {COLUMNS} FROM imports {cond} ORDER BY id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    Ok((
        db.fetch_all(&sql, p).await?.iter().map(from_row).collect(),
        total,
    ))
}

/// Records the chosen settings and the job that runs the import.
pub async fn set_started(
    db: &mut impl Exec,
    id: i64,
    job_id: i64,
    settings: &Json,
    offset: i64,
    next_row: i64,
    next_line: i64,
    now: i64,
) -> DbResult<bool> {
    // Only an import not started yet: of two concurrent starts, one wins.
    Ok(db
        .execute(
            "UPDATE imports SET job_id = $1, settings = $2, started_at = $3, updated_at = $3, offset_bytes = $4, next_row = $5, next_line = $6
             WHERE id = $7 AND job_id IS NULL",
            params![job_id, settings.to_string(), now, offset, next_row, next_line, id],
        )
        .await?
        == 1)
}

pub async fn set_settings(db: &mut impl Exec, id: i64, settings: &Json, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE imports SET settings = $1, updated_at = $2 WHERE id = $3",
        params![settings.to_string(), now, id],
    )
    .await
    .map(drop)
}

/// A run (first or resumed) starts: the base of the rate and ETA.
pub async fn set_run_started(db: &mut impl Exec, id: i64, now: i64, bytes: i64) -> DbResult<()> {
    db.execute("UPDATE imports SET run_started_at = $1, run_bytes_start = $2, updated_at = $1 WHERE id = $3", params![now, bytes, id])
        .await
        .map(drop)
}

/// Where the next batch starts, and what the batch just written counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checkpoint {
    pub offset_bytes: i64,
    pub next_row: i64,
    pub next_line: i64,
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

pub async fn checkpoint(db: &mut impl Exec, id: i64, c: &Checkpoint, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE imports SET offset_bytes = $1, next_row = $2, next_line = $3, rows_done = rows_done + $4,
             created_count = created_count + $5, updated_count = updated_count + $6, skipped_count = skipped_count + $7,
             failed_count = failed_count + $8, updated_at = $9
         WHERE id = $10",
        params![c.offset_bytes, c.next_row, c.next_line, c.rows, c.created, c.updated, c.skipped, c.failed, now, id],
    )
    .await
    .map(drop)
}

/// The end of the file was reached.
pub async fn finish(db: &mut impl Exec, id: i64, total_rows: i64, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE imports SET total_rows = $1, finished_at = $2, updated_at = $2 WHERE id = $3",
        params![total_rows, now, id],
    )
    .await
    .map(drop)
}

pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<()> {
    db.execute("DELETE FROM imports WHERE id = $1", params![id])
        .await
        .map(drop)
}

/// A row that could not be imported.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub row: i64,
    pub line: i64,
    pub reason: String,
    /// The row's values: whole when the row could be read; clipped to 1,000 characters
    /// when the reader refused it (binary data, too long, a quote never closed).
    pub values: Vec<String>,
}

pub async fn insert_failures(
    db: &mut impl Exec,
    import_id: i64,
    failures: &[Failure],
) -> DbResult<()> {
    for chunk in failures.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|f| {
                format!(
                    "({}, {}, {}, {}, {})",
                    p.push(import_id),
                    p.push(f.row),
                    p.push(f.line),
                    p.push(f.reason.as_str()),
                    p.push(serde_json::to_string(&f.values).unwrap_or_default())
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO import_failures (import_id, row_number, line_number, reason, raw) VALUES {} ON CONFLICT DO NOTHING",
            tuples.join(", ")
        );
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

/// Failed rows after `after_row`, in row order (for streaming the failed-rows CSV).
pub async fn failures_after(
    db: &mut impl Exec,
    import_id: i64,
    after_row: i64,
    limit: i64,
) -> DbResult<Vec<Failure>> {
    let rows = db
        .fetch_all(
            "SELECT row_number, line_number, reason, raw FROM import_failures WHERE import_id = $1 AND row_number > $2
             ORDER BY row_number LIMIT $3",
            params![import_id, after_row, limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Failure {
            row: r.i64("row_number"),
            line: r.i64("line_number"),
            reason: r.text("reason"),
            values: serde_json::from_str(&r.text("raw")).unwrap_or_default(),
        })
        .collect())
}

/// Which of these contact ids exist (matching an import's id column).
pub async fn existing_contact_ids(
    db: &mut impl Exec,
    ids: &[i64],
) -> DbResult<std::collections::HashSet<i64>> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list: Vec<String> = chunk.iter().map(|i| p.push(*i)).collect();
        for r in db
            .fetch_all(
                &format!("SELECT id FROM contacts WHERE id IN ({})", list.join(", ")),
                p.values,
            )
            .await?
        {
            out.insert(r.i64("id"));
        }
    }
    Ok(out)
}

/// Dates a file carried for contacts the import created (`dateAdded`, `dateIdentified`
/// columns): set after the write path created them, in the same transaction.
pub async fn set_contact_dates(
    db: &mut impl Exec,
    dates: &[(i64, Option<i64>, Option<i64>)],
) -> DbResult<()> {
    for (id, added, identified) in dates {
        match (added, identified) {
            (Some(a), Some(i)) => {
                db.execute(
                    "UPDATE contacts SET date_added = $1, date_identified = $2 WHERE id = $3",
                    params![*a, *i, *id],
                )
                .await?
            }
            (Some(a), None) => {
                db.execute(
                    "UPDATE contacts SET date_added = $1 WHERE id = $2",
                    params![*a, *id],
                )
                .await?
            }
            (None, Some(i)) => {
                db.execute(
                    "UPDATE contacts SET date_identified = $1 WHERE id = $2",
                    params![*i, *id],
                )
                .await?
            }
            (None, None) => 0,
        };
    }
    Ok(())
}

/// Planner settings for the transaction of an import batch. PostgreSQL estimates the
/// duplicate lookup's `lower(email) IN (…500 values…)` at most of the table when planned
/// with the values (no statistics for the folded expression) and scans the whole table
/// for every batch, slower as it grows; the plan made without the values uses the index.
pub async fn tune_batch(db: &mut impl Exec) -> DbResult<()> {
    if db.backend() == super::Backend::Postgres {
        db.execute_script("SET LOCAL plan_cache_mode = force_generic_plan")
            .await?;
    }
    Ok(())
}

/// Every user and stage, for resolving owner and stage columns.
pub async fn stage_names(db: &mut impl Exec) -> DbResult<Vec<(i64, String)>> {
    Ok(db
        .fetch_all("SELECT id, name FROM stages", vec![])
        .await?
        .iter()
        .map(|r| (r.i64("id"), r.text("name")))
        .collect())
}
