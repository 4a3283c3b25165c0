//! Tags as a list of their own (`/api/tags`).

use super::db::{DbResult, Exec, Params};
use super::entity_list::EntityQuery;
use crate::params;

#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub id: i64,
    pub tag: String,
    pub description: Option<String>,
}

pub async fn list(db: &mut impl Exec, q: &EntityQuery) -> DbResult<(Vec<Tag>, i64)> {
    let mut p = Params::default();
    let cond = q.condition(db.backend(), &mut p, "t.id", &["t.tag", "t.description"]);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM tags t WHERE {cond}"),
            p.values.clone(),
        )
        .await?
        .unwrap_or(0);
    let sql = format!(
        "SELECT t.id, t.tag, t.description FROM tags t WHERE {cond} {} LIMIT {} OFFSET {}",
        q.order(&["t.id"]),
        p.push(q.limit),
        p.push(q.offset)
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((
        rows.iter()
            .map(|r| Tag {
                id: r.i64("id"),
                tag: r.text("tag"),
                description: r.opt_text("description"),
            })
            .collect(),
        total,
    ))
}

/// Locks tag names (folded) until the transaction ends, on PostgreSQL: whoever creates a
/// tag holds its name's lock, so two transactions cannot both miss `vip` and create `VIP`
/// and `vip` (`ON CONFLICT (tag)` sees the same spelling only). SQLite has one writer.
pub async fn lock_names(db: &mut impl Exec, names: &[&str]) -> DbResult<()> {
    let keys: Vec<String> = names
        .iter()
        .map(|n| format!("tag\0{}", super::fold::fold(n)))
        .collect();
    super::locks::identifier_locks(db, &keys).await
}

/// The tag named `name`, case-insensitively (`VIP` is `vip`, as in Mautic); the oldest
/// when several differ only in case (tags made before names were folded).
pub async fn by_name(db: &mut impl Exec, name: &str) -> DbResult<Option<Tag>> {
    let expr = super::fields::search_expr(db.backend(), "tag", super::db::Kind::Text);
    let fold = db.backend().fold_fn();
    Ok(db
        .fetch_optional(
            &format!(
                "SELECT id, tag, description FROM tags WHERE {expr} = {fold}($1) ORDER BY id LIMIT 1"
            ),
            params![name],
        )
        .await?
        .map(|r| Tag {
            id: r.i64("id"),
            tag: r.text("tag"),
            description: r.opt_text("description"),
        }))
}

pub async fn by_id(db: &mut impl Exec, id: i64) -> DbResult<Option<Tag>> {
    Ok(db
        .fetch_optional(
            "SELECT id, tag, description FROM tags WHERE id = $1",
            params![id],
        )
        .await?
        .map(|r| Tag {
            id: r.i64("id"),
            tag: r.text("tag"),
            description: r.opt_text("description"),
        }))
}

pub async fn insert(db: &mut impl Exec, name: &str, description: Option<&str>) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO tags (tag, description) VALUES ($1, $2) RETURNING id",
            params![name, description],
        )
        .await?
        .unwrap_or_default())
}

pub async fn update(
    db: &mut impl Exec,
    id: i64,
    name: &str,
    description: Option<&str>,
) -> DbResult<()> {
    db.execute(
        "UPDATE tags SET tag = $1, description = $2 WHERE id = $3",
        params![name, description, id],
    )
    .await?;
    Ok(())
}

/// Deletes a tag; it leaves every contact (`contact_tags` cascades).
pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<()> {
    db.execute("DELETE FROM tags WHERE id = $1", params![id])
        .await?;
    Ok(())
}
