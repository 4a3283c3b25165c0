//! Key-value settings changed at run time (the admin's settings pages).

use super::db::{DbResult, Exec};
use crate::params;

pub async fn get(db: &mut impl Exec, key: &str) -> DbResult<Option<String>> {
    Ok(db
        .fetch_optional("SELECT value FROM settings WHERE key = $1", params![key])
        .await?
        .map(|r| r.text("value")))
}

pub async fn set(db: &mut impl Exec, key: &str, value: &str) -> DbResult<()> {
    db.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .await
    .map(drop)
}

pub async fn insert_if_missing(db: &mut impl Exec, key: &str, value: &str) -> DbResult<()> {
    db.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        params![key, value],
    )
    .await
    .map(drop)
}
