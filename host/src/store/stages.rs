//! Stages (a contact is in at most one).

use std::collections::HashSet;

use super::db::{DbResult, Exec, Params};
use super::entity_list::EntityQuery;

pub struct StageRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub weight: i64,
    pub is_published: bool,
    pub date_added: i64,
}

impl StageRow {
    /// A new published stage of weight 0 with no description (`id` 0 until inserted).
    pub fn named(name: String, date_added: i64) -> StageRow {
        StageRow {
            id: 0,
            name,
            description: String::new(),
            weight: 0,
            is_published: true,
            date_added,
        }
    }
}

pub async fn existing_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashSet<i64>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut p = Params::default();
    let list = p.list(ids.iter().copied());
    let rows = db
        .fetch_all(
            &format!("SELECT id FROM stages WHERE id IN ({list})"),
            p.values,
        )
        .await?;
    Ok(rows.iter().map(|r| r.i64("id")).collect())
}

pub async fn by_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<Vec<StageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Params::default();
    let list = p.list(ids.iter().copied());
    let sql = format!(
        "SELECT id, name, description, weight, is_published, date_added FROM stages WHERE id IN ({list})"
    );
    Ok(db
        .fetch_all(&sql, p.values)
        .await?
        .iter()
        .map(from_row)
        .collect())
}

pub async fn list(db: &mut impl Exec) -> DbResult<Vec<StageRow>> {
    let rows = db
        .fetch_all("SELECT id, name, description, weight, is_published, date_added FROM stages ORDER BY weight, name", vec![])
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// A page of stages for the API's list.
pub async fn page(db: &mut impl Exec, q: &EntityQuery) -> DbResult<(Vec<StageRow>, i64)> {
    let mut p = Params::default();
    let cond = q.condition(db.backend(), &mut p, "id", &["name", "description"]);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM stages WHERE {cond}"),
            p.values.clone(),
        )
        .await?
        .unwrap_or(0);
    let sql = format!(
        "SELECT id, name, description, weight, is_published, date_added FROM stages WHERE {cond} {} LIMIT {} OFFSET {}",
        q.order(&["name", "id"]),
        p.push(q.limit),
        p.push(q.offset)
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

/// Inserts a stage (its `id` is ignored); returns the new id.
pub async fn create(db: &mut impl Exec, s: &StageRow) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO stages (name, description, weight, is_published, date_added) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            crate::params![s.name.as_str(), s.description.as_str(), s.weight, s.is_published as i64, s.date_added],
        )
        .await?
        .unwrap_or_default())
}

pub async fn update(db: &mut impl Exec, s: &StageRow) -> DbResult<()> {
    db.execute(
        "UPDATE stages SET name = $1, description = $2, weight = $3, is_published = $4 WHERE id = $5",
        crate::params![s.name.as_str(), s.description.as_str(), s.weight, s.is_published as i64, s.id],
    )
    .await?;
    Ok(())
}

/// Deletes a stage; contacts in it are left in none (`ON DELETE SET NULL`).
pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<()> {
    db.execute("DELETE FROM stages WHERE id = $1", crate::params![id])
        .await?;
    Ok(())
}

fn from_row(r: &super::db::Row) -> StageRow {
    StageRow {
        id: r.i64("id"),
        name: r.text("name"),
        description: r.text("description"),
        weight: r.i64("weight"),
        is_published: r.bool("is_published"),
        date_added: r.i64("date_added"),
    }
}
