//! Companies and which contacts belong to them.

use super::db::{DbResult, Exec, Params, Row, Value};
use super::entity_list::EntityQuery;
use crate::params;

/// The company columns besides id and dates, in order.
pub const COLUMNS: [&str; 14] = [
    "name",
    "email",
    "website",
    "address1",
    "address2",
    "city",
    "state",
    "zipcode",
    "country",
    "phone",
    "employees",
    "revenue",
    "industry",
    "description",
];

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Company {
    pub id: i64,
    /// Column → value (text, or int for employees, float for revenue).
    pub values: Vec<(&'static str, Value)>,
    pub date_added: i64,
    pub date_modified: i64,
}

impl Company {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
    pub fn name(&self) -> String {
        self.get("name")
            .and_then(Value::to_text)
            .unwrap_or_default()
    }
}

fn from_row(r: &Row) -> Company {
    Company {
        id: r.i64("id"),
        values: COLUMNS.iter().map(|c| (*c, r.get(c).clone())).collect(),
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
    }
}

fn select() -> String {
    format!(
        "SELECT id, {}, date_added, date_modified FROM companies",
        COLUMNS.join(", ")
    )
}

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<Company>> {
    Ok(db
        .fetch_optional(&format!("{} WHERE id = $1", select()), params![id])
        .await?
        .as_ref()
        .map(from_row))
}

/// The oldest company with this name, case-insensitively.
pub async fn by_name(db: &mut impl Exec, name: &str) -> DbResult<Option<Company>> {
    let expr = super::fields::search_expr(db.backend(), "name", super::db::Kind::Text);
    let fold = db.backend().fold_fn();
    Ok(db
        .fetch_optional(
            &format!("{} WHERE {expr} = {fold}($1) ORDER BY id LIMIT 1", select()),
            params![name],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn list(db: &mut impl Exec, q: &EntityQuery) -> DbResult<(Vec<Company>, i64)> {
    let mut p = Params::default();
    let cond = q.condition(db.backend(), &mut p, "id", &["name", "email"]);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM companies WHERE {cond}"),
            p.values.clone(),
        )
        .await?
        .unwrap_or(0);
    let sql = format!(
        "{} WHERE {cond} {} LIMIT {} OFFSET {}",
        select(),
        q.order(&["id"]),
        p.push(q.limit),
        p.push(q.offset)
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

pub async fn insert(
    db: &mut impl Exec,
    values: &[(&'static str, Value)],
    now: i64,
) -> DbResult<i64> {
    let mut p = Params::default();
    let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
    let phs: Vec<String> = values.iter().map(|(_, v)| p.push(v.clone())).collect();
    let sql = format!(
        "INSERT INTO companies ({}, date_added, date_modified) VALUES ({}, {}, {}) RETURNING id",
        cols.join(", "),
        phs.join(", "),
        p.push(now),
        p.push(now)
    );
    Ok(db.fetch_i64(&sql, p.values).await?.unwrap_or_default())
}

pub async fn update(
    db: &mut impl Exec,
    id: i64,
    values: &[(&'static str, Value)],
    now: i64,
) -> DbResult<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut p = Params::default();
    let sets: Vec<String> = values
        .iter()
        .map(|(c, v)| format!("{c} = {}", p.push(v.clone())))
        .collect();
    let sql = format!(
        "UPDATE companies SET {}, date_modified = {} WHERE id = {}",
        sets.join(", "),
        p.push(now),
        p.push(id)
    );
    db.execute(&sql, p.values).await.map(drop)
}

pub async fn delete(db: &mut impl Exec, id: i64) -> DbResult<bool> {
    Ok(db
        .execute("DELETE FROM companies WHERE id = $1", params![id])
        .await?
        > 0)
}

/// Links a contact to a company; the first company a contact gets is its primary one.
pub async fn link(
    db: &mut impl Exec,
    contact_id: i64,
    company_id: i64,
    now: i64,
) -> DbResult<bool> {
    let has_primary = db
        .fetch_optional(
            "SELECT 1 FROM contact_companies WHERE contact_id = $1 AND is_primary = 1",
            params![contact_id],
        )
        .await?
        .is_some();
    let n = db
        .execute(
            "INSERT INTO contact_companies (contact_id, company_id, is_primary, date_added) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            params![contact_id, company_id, !has_primary, now],
        )
        .await?;
    Ok(n > 0)
}

pub async fn unlink(db: &mut impl Exec, contact_id: i64, company_id: i64) -> DbResult<bool> {
    Ok(db
        .execute(
            "DELETE FROM contact_companies WHERE contact_id = $1 AND company_id = $2",
            params![contact_id, company_id],
        )
        .await?
        > 0)
}

/// A contact's companies with when they were linked and whether primary.
pub async fn of_contact(
    db: &mut impl Exec,
    contact_id: i64,
) -> DbResult<Vec<(Company, i64, bool)>> {
    let sql = format!(
        "SELECT c.id, {}, c.date_added, c.date_modified, cc.date_added AS linked_at, cc.is_primary
         FROM contact_companies cc JOIN companies c ON c.id = cc.company_id WHERE cc.contact_id = $1 ORDER BY cc.is_primary DESC, c.name",
        COLUMNS.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
    );
    let rows = db.fetch_all(&sql, params![contact_id]).await?;
    Ok(rows
        .iter()
        .map(|r| (from_row(r), r.i64("linked_at"), r.bool("is_primary")))
        .collect())
}

/// How many contacts each company has (companies without any are absent).
pub async fn contact_counts(
    db: &mut impl Exec,
    company_ids: &[i64],
) -> DbResult<std::collections::HashMap<i64, i64>> {
    let mut out = std::collections::HashMap::new();
    for chunk in company_ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT company_id, COUNT(*) AS n FROM contact_companies WHERE company_id IN ({list}) GROUP BY company_id"
        );
        for r in db.fetch_all(&sql, p.values).await? {
            out.insert(r.i64("company_id"), r.i64("n"));
        }
    }
    Ok(out)
}

/// A company's contacts (id, primary for the contact, linked at), most recently linked
/// first, and their total.
pub async fn contacts_of(
    db: &mut impl Exec,
    company_id: i64,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<(i64, bool, i64)>, i64)> {
    let total = db
        .fetch_i64(
            "SELECT COUNT(*) FROM contact_companies WHERE company_id = $1",
            params![company_id],
        )
        .await?
        .unwrap_or(0);
    let rows = db
        .fetch_all(
            "SELECT contact_id, is_primary, date_added FROM contact_companies WHERE company_id = $1
             ORDER BY date_added DESC, contact_id DESC LIMIT $2 OFFSET $3",
            params![company_id, limit, offset],
        )
        .await?;
    Ok((
        rows.iter()
            .map(|r| {
                (
                    r.i64("contact_id"),
                    r.bool("is_primary"),
                    r.i64("date_added"),
                )
            })
            .collect(),
        total,
    ))
}
