//! Plugins' rows: the admin's decisions (enabled, grants, configuration), the webhook
//! secret, call statistics, and each plugin's private key-value storage.

use super::db::{DbResult, Exec};
use crate::params;

/// A plugin's stored state.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginRow {
    pub name: String,
    pub enabled: bool,
    /// JSON list of capability strings.
    pub granted: String,
    /// JSON object.
    pub config: String,
    pub webhook_secret: String,
    pub calls: i64,
    pub errors: i64,
    pub total_call_us: i64,
    pub consecutive_failures: i64,
    pub disabled_reason: Option<String>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "name, enabled, granted, config, webhook_secret, calls, errors, total_call_us, consecutive_failures, disabled_reason, last_error";

fn from_row(r: &super::db::Row) -> PluginRow {
    PluginRow {
        name: r.text("name"),
        enabled: r.bool("enabled"),
        granted: r.text("granted"),
        config: r.text("config"),
        webhook_secret: r.text("webhook_secret"),
        calls: r.i64("calls"),
        errors: r.i64("errors"),
        total_call_us: r.i64("total_call_us"),
        consecutive_failures: r.i64("consecutive_failures"),
        disabled_reason: r.opt_text("disabled_reason"),
        last_error: r.opt_text("last_error"),
    }
}

pub async fn get(db: &mut impl Exec, name: &str) -> DbResult<Option<PluginRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM plugins WHERE name = $1"),
            params![name],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn all(db: &mut impl Exec) -> DbResult<Vec<PluginRow>> {
    Ok(db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM plugins ORDER BY name"),
            vec![],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Creates the row of a plugin seen for the first time (no-op when it exists).
pub async fn ensure(
    db: &mut impl Exec,
    name: &str,
    enabled: bool,
    granted: &str,
    secret: &str,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "INSERT INTO plugins (name, enabled, granted, config, webhook_secret, created_at, updated_at)
         VALUES ($1, $2, $3, '{}', $4, $5, $5) ON CONFLICT (name) DO NOTHING",
        params![name, enabled, granted, secret, now],
    )
    .await
    .map(drop)
}

/// Enables or disables; enabling clears the failure streak and reason.
pub async fn set_enabled(
    db: &mut impl Exec,
    name: &str,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let n = if enabled {
        db.execute(
            "UPDATE plugins SET enabled = 1, disabled_reason = NULL, consecutive_failures = 0, updated_at = $2 WHERE name = $1",
            params![name, now],
        )
        .await?
    } else {
        db.execute(
            "UPDATE plugins SET enabled = 0, disabled_reason = $2, updated_at = $3 WHERE name = $1",
            params![name, reason, now],
        )
        .await?
    };
    Ok(n > 0)
}

pub async fn set_granted(
    db: &mut impl Exec,
    name: &str,
    granted: &str,
    now: i64,
) -> DbResult<bool> {
    Ok(db
        .execute(
            "UPDATE plugins SET granted = $2, updated_at = $3 WHERE name = $1",
            params![name, granted, now],
        )
        .await?
        > 0)
}

pub async fn set_config(db: &mut impl Exec, name: &str, config: &str, now: i64) -> DbResult<bool> {
    Ok(db
        .execute(
            "UPDATE plugins SET config = $2, updated_at = $3 WHERE name = $1",
            params![name, config, now],
        )
        .await?
        > 0)
}

pub async fn set_secret(db: &mut impl Exec, name: &str, secret: &str, now: i64) -> DbResult<bool> {
    Ok(db
        .execute(
            "UPDATE plugins SET webhook_secret = $2, updated_at = $3 WHERE name = $1",
            params![name, secret, now],
        )
        .await?
        > 0)
}

/// Adds call statistics gathered in memory; `streak` is the current run of consecutive
/// failures (replaces the stored one).
pub async fn add_stats(
    db: &mut impl Exec,
    name: &str,
    calls: i64,
    errors: i64,
    call_us: i64,
    streak: i64,
    last_error: Option<&str>,
) -> DbResult<()> {
    db.execute(
        "UPDATE plugins SET calls = calls + $2, errors = errors + $3, total_call_us = total_call_us + $4,
         consecutive_failures = $5, last_error = COALESCE($6, last_error) WHERE name = $1",
        params![name, calls, errors, call_us, streak, last_error],
    )
    .await
    .map(drop)
}

/// The newest contact whose email is `email` (case-insensitively).
pub async fn contact_by_email(db: &mut impl Exec, email: &str) -> DbResult<Option<i64>> {
    // The email index's expression and predicate (a contact with an email is known), so
    // the lookup is an index probe, not a scan.
    let expr = super::fields::search_expr(db.backend(), "email", super::db::Kind::Text);
    let fold = db.backend().fold_fn();
    db.fetch_i64(
        &format!(
            "SELECT id FROM contacts WHERE date_identified IS NOT NULL AND {expr} = {fold}($1) \
             ORDER BY id DESC LIMIT 1"
        ),
        params![email],
    )
    .await
}

// --- key-value storage -------------------------------------------------------------

pub async fn kv_get(db: &mut impl Exec, plugin: &str, key: &str) -> DbResult<Option<String>> {
    Ok(db
        .fetch_optional(
            "SELECT value FROM plugin_storage WHERE plugin = $1 AND key = $2",
            params![plugin, key],
        )
        .await?
        .map(|r| r.text("value")))
}

pub async fn kv_count(db: &mut impl Exec, plugin: &str) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "SELECT COUNT(*) FROM plugin_storage WHERE plugin = $1",
            params![plugin],
        )
        .await?
        .unwrap_or(0))
}

pub async fn kv_set(
    db: &mut impl Exec,
    plugin: &str,
    key: &str,
    value: &str,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "INSERT INTO plugin_storage (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![plugin, key, value, now],
    )
    .await
    .map(drop)
}

pub async fn kv_delete(db: &mut impl Exec, plugin: &str, key: &str) -> DbResult<()> {
    db.execute(
        "DELETE FROM plugin_storage WHERE plugin = $1 AND key = $2",
        params![plugin, key],
    )
    .await
    .map(drop)
}

/// Keys with a prefix, in byte order, after `after`, at most `limit`.
pub async fn kv_keys(
    db: &mut impl Exec,
    plugin: &str,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<String>> {
    let after = after.unwrap_or("");
    let collate = db.backend().bytewise();
    let sql = format!(
        "SELECT key FROM plugin_storage WHERE plugin = $1 AND substr(key, 1, length($2)) = $2 AND key{collate} > $3{collate}
         ORDER BY key{collate} LIMIT $4"
    );
    Ok(db
        .fetch_all(&sql, params![plugin, prefix, after, limit])
        .await?
        .iter()
        .map(|r| r.text("key"))
        .collect())
}
