//! Users of the admin and the API.

use std::collections::HashSet;

use super::db::{DbResult, Exec, Params, Row};
use crate::params;
use crate::users::{Role, User};

const COLUMNS: &str = "id, username, email, first_name, last_name, role, password_hash, is_active, date_added, date_modified, last_login";

pub(super) fn from_row(r: &Row) -> User {
    User {
        id: r.i64("id"),
        username: r.text("username"),
        email: r.text("email"),
        first_name: r.text("first_name"),
        last_name: r.text("last_name"),
        role: Role::parse(&r.text("role")).unwrap_or(Role::User),
        password_hash: r.text("password_hash"),
        is_active: r.bool("is_active"),
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
        last_login: r.opt_i64("last_login"),
    }
}

pub async fn by_username(db: &mut impl Exec, username: &str) -> DbResult<Option<User>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM users WHERE username = $1"),
            params![username],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn by_id(db: &mut impl Exec, id: i64) -> DbResult<Option<User>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn by_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Params::default();
    let list = p.list(ids.iter().copied());
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM users WHERE id IN ({list})"),
            p.values,
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn list(db: &mut impl Exec) -> DbResult<Vec<User>> {
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM users ORDER BY username"),
            vec![],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn existing_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashSet<i64>> {
    Ok(by_ids(db, ids).await?.into_iter().map(|u| u.id).collect())
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

pub async fn insert(db: &mut impl Exec, u: &NewUser<'_>, now: i64) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO users (username, email, first_name, last_name, role, password_hash, is_active, date_added, date_modified)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING id",
            params![u.username, u.email, u.first_name, u.last_name, u.role.as_str(), u.password_hash, now],
        )
        .await?
        .unwrap_or_default())
}

pub async fn update_profile(
    db: &mut impl Exec,
    id: i64,
    email: &str,
    first_name: &str,
    last_name: &str,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "UPDATE users SET email = $1, first_name = $2, last_name = $3, date_modified = $4 WHERE id = $5",
        params![email, first_name, last_name, now, id],
    )
    .await
    .map(drop)
}

pub async fn set_role_and_active(
    db: &mut impl Exec,
    id: i64,
    role: Role,
    is_active: bool,
    now: i64,
) -> DbResult<()> {
    db.execute(
        "UPDATE users SET role = $1, is_active = $2, date_modified = $3 WHERE id = $4",
        params![role.as_str(), is_active, now, id],
    )
    .await
    .map(drop)
}

pub async fn set_password_hash(db: &mut impl Exec, id: i64, hash: &str, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE users SET password_hash = $1, date_modified = $2 WHERE id = $3",
        params![hash, now, id],
    )
    .await
    .map(drop)
}

pub async fn touch_login(db: &mut impl Exec, id: i64, now: i64) -> DbResult<()> {
    db.execute(
        "UPDATE users SET last_login = $1 WHERE id = $2",
        params![now, id],
    )
    .await
    .map(drop)
}
