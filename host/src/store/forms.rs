//! Forms and their submissions.

use super::db::{DbResult, Exec, Params, Row};
use crate::params;

#[derive(Clone, Debug, PartialEq)]
pub struct FormRow {
    pub id: i64,
    pub name: String,
    /// JSON list of `{alias, label, contact_field}`.
    pub fields: String,
    pub record_utm: bool,
    pub is_published: bool,
    pub date_added: i64,
    pub date_modified: i64,
}

fn from_row(r: &Row) -> FormRow {
    FormRow {
        id: r.i64("id"),
        name: r.text("name"),
        fields: r.text("fields"),
        record_utm: r.bool("record_utm"),
        is_published: r.bool("is_published"),
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
    }
}

const COLUMNS: &str = "id, name, fields, record_utm, is_published, date_added, date_modified";

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<FormRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM forms WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn list(db: &mut impl Exec, offset: i64, limit: i64) -> DbResult<(Vec<FormRow>, i64)> {
    let total = db
        .fetch_i64("SELECT COUNT(*) FROM forms", vec![])
        .await?
        .unwrap_or(0);
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM forms ORDER BY id LIMIT $1 OFFSET $2"),
            params![limit, offset],
        )
        .await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

pub async fn insert(
    db: &mut impl Exec,
    name: &str,
    fields: &str,
    record_utm: bool,
    is_published: bool,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO forms (name, fields, record_utm, is_published, date_added, date_modified) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            params![name, fields, record_utm, is_published, now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn update(
    db: &mut impl Exec,
    id: i64,
    name: &str,
    fields: &str,
    record_utm: bool,
    is_published: bool,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "UPDATE forms SET name = $1, fields = $2, record_utm = $3, is_published = $4, date_modified = $5 WHERE id = $6",
        params![name, fields, record_utm, is_published, now, id],
    )
    .await
    .map(drop)
}

pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<bool> {
    Ok(db
        .execute("DELETE FROM forms WHERE id = $1", params![id])
        .await?
        > 0)
}

pub async fn insert_submission(
    db: &mut impl Exec,
    form_id: i64,
    contact_id: i64,
    data: &str,
    referer: Option<&str>,
    ip: Option<&str>,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO form_submissions (form_id, contact_id, data, referer, ip, date_submitted) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            params![form_id, contact_id, data, referer, ip, now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn submission_count(db: &mut impl Exec, form_id: i64) -> DbResult<i64> {
    let mut p = Params::default();
    let sql = format!(
        "SELECT COUNT(*) FROM form_submissions WHERE form_id = {}",
        p.push(form_id)
    );
    Ok(db.fetch_i64(&sql, p.values).await?.unwrap_or(0))
}

/// Submissions per form, with the latest one's time (forms without any are absent).
pub async fn submission_stats(
    db: &mut impl Exec,
    form_ids: &[i64],
) -> DbResult<std::collections::HashMap<i64, (i64, i64)>> {
    let mut out = std::collections::HashMap::new();
    for chunk in form_ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT form_id, COUNT(*) AS n, MAX(date_submitted) AS latest FROM form_submissions WHERE form_id IN ({list}) GROUP BY form_id"
        );
        for r in db.fetch_all(&sql, p.values).await? {
            out.insert(r.i64("form_id"), (r.i64("n"), r.i64("latest")));
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubmissionRow {
    pub id: i64,
    pub form_id: i64,
    /// None once the contact was deleted.
    pub contact_id: Option<i64>,
    /// JSON object of form field alias → submitted value.
    pub data: String,
    pub referer: Option<String>,
    pub ip: Option<String>,
    pub date_submitted: i64,
}

/// A form's submissions, newest first.
pub async fn submissions(
    db: &mut impl Exec,
    form_id: i64,
    offset: i64,
    limit: i64,
) -> DbResult<Vec<SubmissionRow>> {
    let rows = db
        .fetch_all(
            "SELECT id, form_id, contact_id, data, referer, ip, date_submitted FROM form_submissions
             WHERE form_id = $1 ORDER BY date_submitted DESC, id DESC LIMIT $2 OFFSET $3",
            params![form_id, limit, offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SubmissionRow {
            id: r.i64("id"),
            form_id: r.i64("form_id"),
            contact_id: r.opt_i64("contact_id"),
            data: r.text("data"),
            referer: r.opt_text("referer"),
            ip: r.opt_text("ip"),
            date_submitted: r.i64("date_submitted"),
        })
        .collect())
}
