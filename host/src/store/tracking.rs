//! Devices, hits and the bulk statements of the tracking write path.

use std::collections::HashMap;

use super::db::{Backend, DbResult, Exec, Params, Row, Value};
use crate::params;

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: i64,
    pub tracking_id: String,
    pub contact_id: i64,
    pub device_type: String,
    pub os: String,
    pub browser: String,
    pub user_agent: String,
    pub last_hit_id: Option<i64>,
    pub date_added: i64,
    pub last_seen: i64,
}

const DEVICE_COLUMNS: &str = "id, tracking_id, contact_id, device_type, os, browser, user_agent, last_hit_id, date_added, last_seen";

fn device(r: &Row) -> Device {
    Device {
        id: r.i64("id"),
        tracking_id: r.text("tracking_id"),
        contact_id: r.i64("contact_id"),
        device_type: r.text("device_type"),
        os: r.text("os"),
        browser: r.text("browser"),
        user_agent: r.text("user_agent"),
        last_hit_id: r.opt_i64("last_hit_id"),
        date_added: r.i64("date_added"),
        last_seen: r.i64("last_seen"),
    }
}

pub async fn devices_by_tracking_ids(
    db: &mut impl Exec,
    ids: &[String],
) -> DbResult<HashMap<String, Device>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list: Vec<String> = chunk.iter().map(|i| p.push(i.as_str())).collect();
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tracking_id IN ({})",
            list.join(", ")
        );
        for r in db.fetch_all(&sql, p.values).await? {
            let d = device(&r);
            out.insert(d.tracking_id.clone(), d);
        }
    }
    Ok(out)
}

pub async fn devices_of(db: &mut impl Exec, contact_id: i64) -> DbResult<Vec<Device>> {
    let rows = db
        .fetch_all(
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE contact_id = $1 ORDER BY last_seen DESC"
            ),
            params![contact_id],
        )
        .await?;
    Ok(rows.iter().map(device).collect())
}

pub struct NewDevice {
    pub tracking_id: String,
    pub contact_id: i64,
    pub device_type: String,
    pub os: String,
    pub browser: String,
    pub user_agent: String,
    pub at: i64,
}

/// Inserts devices; returns their ids in input order.
pub async fn insert_devices(db: &mut impl Exec, rows: &[NewDevice]) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|d| {
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {})",
                    p.push(d.tracking_id.as_str()),
                    p.push(d.contact_id),
                    p.push(d.device_type.as_str()),
                    p.push(d.os.as_str()),
                    p.push(d.browser.as_str()),
                    p.push(d.user_agent.as_str()),
                    p.push(d.at),
                    p.push(d.at)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO devices (tracking_id, contact_id, device_type, os, browser, user_agent, date_added, last_seen) VALUES {} RETURNING id",
            tuples.join(", ")
        );
        ids.extend(db.inserted_ids(&sql, p.values).await?);
    }
    Ok(ids)
}

pub async fn move_device(db: &mut impl Exec, device_id: i64, contact_id: i64) -> DbResult<()> {
    db.execute(
        "UPDATE devices SET contact_id = $1 WHERE id = $2",
        params![contact_id, device_id],
    )
    .await
    .map(drop)
}

/// `WITH v(a, b, …) AS (VALUES …)` with typed placeholders, for bulk updates by key.
pub(super) fn values_cte(
    p: &mut Params,
    name: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
) -> String {
    let tuples: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row
                .into_iter()
                .map(|v| {
                    let ty = match &v {
                        Value::Int(_) | Value::Null(super::db::Kind::Int) => "BIGINT",
                        Value::Float(_) | Value::Null(super::db::Kind::Float) => "DOUBLE PRECISION",
                        _ => "TEXT",
                    };
                    format!("CAST({} AS {ty})", p.push(v))
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "WITH {name}({}) AS (VALUES {})",
        columns.join(", "),
        tuples.join(", ")
    )
}

/// `{cte} UPDATE table …` setting `assignments` (column, expression over `v` and the table)
/// on the rows whose `id` is in `v`. SQLite gets a rowid lookup per row of `v`: for
/// `UPDATE … FROM v` its planner may scan the whole table instead (seen: 62 s for 500
/// page hits among 5 million events).
pub(super) fn update_by_id(
    backend: Backend,
    cte: &str,
    table: &str,
    assignments: &[(&str, String)],
) -> String {
    match backend {
        Backend::Sqlite => {
            let columns: Vec<&str> = assignments.iter().map(|(c, _)| *c).collect();
            let values: Vec<&str> = assignments.iter().map(|(_, e)| e.as_str()).collect();
            format!(
                "{cte} UPDATE {table} SET ({}) = (SELECT {} FROM v WHERE v.id = {table}.id) WHERE id IN (SELECT id FROM v)",
                columns.join(", "),
                values.join(", ")
            )
        }
        Backend::Postgres => {
            let sets: Vec<String> = assignments
                .iter()
                .map(|(c, e)| format!("{c} = {e}"))
                .collect();
            format!(
                "{cte} UPDATE {table} SET {} FROM v WHERE {table}.id = v.id",
                sets.join(", ")
            )
        }
    }
}

/// After a batch of hits: each device's last hit and when it was seen.
pub async fn touch_devices(db: &mut impl Exec, rows: &[(i64, Option<i64>, i64)]) -> DbResult<()> {
    for chunk in rows.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let cte = values_cte(
            &mut p,
            "v",
            &["id", "hit", "at"],
            chunk
                .iter()
                .map(|(id, hit, at)| vec![Value::Int(*id), Value::from(*hit), Value::Int(*at)])
                .collect(),
        );
        let sql = update_by_id(
            db.backend(),
            &cte,
            "devices",
            &[
                ("last_hit_id", "COALESCE(v.hit, devices.last_hit_id)".into()),
                ("last_seen", "v.at".into()),
            ],
        );
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

/// Fills in "date left" of earlier page hits: (event id, ms).
pub async fn set_date_left(db: &mut impl Exec, rows: &[(i64, i64)]) -> DbResult<()> {
    let backend = db.backend();
    for chunk in rows.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let cte = values_cte(
            &mut p,
            "v",
            &["id", "at"],
            chunk
                .iter()
                .map(|(id, at)| vec![Value::Int(*id), Value::Int(*at)])
                .collect(),
        );
        let set = match backend {
            Backend::Sqlite => "json_set(contact_events.properties, '$.date_left', v.at)",
            Backend::Postgres => {
                "(contact_events.properties::jsonb || jsonb_build_object('date_left', v.at))::text"
            }
        };
        let sql = update_by_id(
            backend,
            &cte,
            "contact_events",
            &[("properties", set.into())],
        );
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

/// Records (contact, ip, ms) sightings in bulk.
pub async fn upsert_ips(db: &mut impl Exec, rows: &[(i64, String, i64)]) -> DbResult<()> {
    // One row per (contact, ip): PostgreSQL refuses to upsert the same row twice in a statement.
    let mut latest: HashMap<(i64, &str), i64> = HashMap::new();
    for (c, ip, at) in rows {
        let e = latest.entry((*c, ip.as_str())).or_insert(*at);
        *e = (*e).max(*at);
    }
    let rows: Vec<(i64, String, i64)> = latest
        .into_iter()
        .map(|((c, ip), at)| (c, ip.to_owned(), at))
        .collect();
    for chunk in rows.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|(c, ip, at)| {
                format!(
                    "({}, {}, {}, {})",
                    p.push(*c),
                    p.push(ip.as_str()),
                    p.push(*at),
                    p.push(*at)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO contact_ips (contact_id, ip, first_seen, last_seen) VALUES {}
             ON CONFLICT (contact_id, ip) DO UPDATE SET last_seen = excluded.last_seen",
            tuples.join(", ")
        );
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

/// How far the hits of the journal `journal_id` are applied (0: none yet).
pub async fn journal_mark(db: &mut impl Exec, journal_id: &str) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "SELECT applied_through FROM tracking_journal_marks WHERE journal_id = $1",
            params![journal_id],
        )
        .await?
        .unwrap_or(0))
}

/// Records that the journal's hits up to `through` are applied (in the applying transaction).
pub async fn set_journal_mark(db: &mut impl Exec, journal_id: &str, through: i64) -> DbResult<()> {
    db.execute(
        "INSERT INTO tracking_journal_marks (journal_id, applied_through) VALUES ($1, $2) \
         ON CONFLICT (journal_id) DO UPDATE SET applied_through = excluded.applied_through",
        params![journal_id, through],
    )
    .await?;
    Ok(())
}
