//! Admin login sessions. Rows are keyed by the SHA-256 of the cookie token, so a leaked
//! database does not hand out live sessions.

use super::db::{DbResult, Exec, Row};
use crate::params;
use crate::users::User;

#[derive(Clone, Debug)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub flash: Option<String>,
}

fn from_row(r: &Row) -> SessionRow {
    SessionRow {
        token_hash: r.text("token_hash"),
        user_id: r.i64("user_id"),
        csrf_token: r.text("csrf_token"),
        created_at: r.i64("created_at"),
        last_seen_at: r.i64("last_seen_at"),
        expires_at: r.i64("expires_at"),
        flash: r.opt_text("flash"),
    }
}

pub async fn insert(
    db: &mut impl Exec,
    token_hash: &str,
    user_id: i64,
    csrf_token: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    db.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        params![token_hash, user_id, csrf_token, now, expires_at],
    )
    .await
    .map(drop)
}

/// A live session and its (active) user, in one statement.
pub async fn find_live(
    db: &mut impl Exec,
    token_hash: &str,
    now: i64,
) -> DbResult<Option<(SessionRow, User)>> {
    let sql = "SELECT s.token_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, s.flash,
                      u.id, u.username, u.email, u.first_name, u.last_name, u.role, u.password_hash, u.is_active,
                      u.date_added, u.date_modified, u.last_login
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.is_active = 1";
    Ok(db
        .fetch_optional(sql, params![token_hash, now])
        .await?
        .map(|r| (from_row(&r), super::users::from_row(&r))))
}

/// Slides the expiry (callers do it at most once a minute per session).
pub async fn touch(
    db: &mut impl Exec,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    db.execute(
        "UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3",
        params![now, expires_at, token_hash],
    )
    .await
    .map(drop)
}

pub async fn set_flash(db: &mut impl Exec, token_hash: &str, flash: Option<&str>) -> DbResult<()> {
    db.execute(
        "UPDATE sessions SET flash = $1 WHERE token_hash = $2",
        params![flash, token_hash],
    )
    .await
    .map(drop)
}

pub async fn delete(db: &mut impl Exec, token_hash: &str) -> DbResult<()> {
    db.execute(
        "DELETE FROM sessions WHERE token_hash = $1",
        params![token_hash],
    )
    .await
    .map(drop)
}

/// Ends every session of a user (disabled, or password changed), except `keep`.
pub async fn delete_for_user(
    db: &mut impl Exec,
    user_id: i64,
    keep: Option<&str>,
) -> DbResult<u64> {
    db.execute(
        "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
        params![user_id, keep.unwrap_or("")],
    )
    .await
}

pub async fn delete_expired(db: &mut impl Exec, now: i64) -> DbResult<u64> {
    db.execute("DELETE FROM sessions WHERE expires_at <= $1", params![now])
        .await
}
