//! `fold(x)`: SQLite's stand-in for PostgreSQL's `lower()`, so both databases fold case the
//! same way: every character lower-cased alone (`ZOË` → `zoë`, `Émile` → `émile`).
//! SQLite's own `lower()` folds ASCII letters only, which made `ZOË@x.org` and
//! `zoë@x.org` two contacts and `name:émile` miss `Émile` there and not on PostgreSQL.
//!
//! Registered on every SQLite connection Magpie opens (`Store::connect`); the expression
//! indexes (`contacts_f_*`, `tags_lower`, `companies_name`) are built on it
//! (migration 15, `upgrade`; `ensure_indexes` at each start). A connection without it
//! (the `sqlite3` shell) can read the database but not write the rows those indexes
//! cover: it gets "no such function: fold" rather than index entries folded another way.

use std::ffi::c_int;

use libsqlite3_sys as ffi;

use super::db::{DbResult, Exec, Value};

/// Case-folds text as `fold()` does in SQL and PostgreSQL's `lower()` does in a UTF-8
/// locale: each character alone (a final Σ is σ, not ς).
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    fold_chars(s).collect()
}

/// The characters of `fold(s)`, without building it (to compare two texts folded).
pub fn fold_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(|c| {
        // İ (dotted capital I) lower-cases to "i̇" in Unicode's full mapping, to "i" in
        // PostgreSQL's (one character for one): follow PostgreSQL.
        let c = if c == '\u{130}' { 'I' } else { c };
        c.to_lowercase()
    })
}

/// Whether two texts are equal once folded (tag names), without building either.
pub fn same(a: &str, b: &str) -> bool {
    a == b || fold_chars(a).eq(fold_chars(b))
}

/// Registers `fold(x)` on a raw connection; returns SQLite's result code.
///
/// # Safety
/// `db` must be an open connection, used by this thread alone for the call.
pub unsafe fn register(db: *mut ffi::sqlite3) -> c_int {
    unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"fold".as_ptr(),
            1,
            // Deterministic so indexes may use it; innocuous: no side effects, safe in
            // schema and triggers.
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            Some(fold_sql),
            None,
            None,
            None,
        )
    }
}

/// `fold(x)`: NULL stays NULL; anything else is folded as text (as `lower()` does).
unsafe extern "C" fn fold_sql(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    unsafe {
        if argc != 1 {
            ffi::sqlite3_result_error(ctx, c"fold() takes one argument".as_ptr(), -1);
            return;
        }
        let value = *argv;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_NULL {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let text = ffi::sqlite3_value_text(value);
        let len = ffi::sqlite3_value_bytes(value);
        if text.is_null() {
            ffi::sqlite3_result_error_nomem(ctx);
            return;
        }
        let bytes = std::slice::from_raw_parts(text, len as usize);
        // Text that is already folded (most of it: emails, lower-case input) is handed
        // back as it is, without a copy through Rust.
        if !bytes
            .iter()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            ffi::sqlite3_result_text(ctx, text.cast(), len, ffi::SQLITE_TRANSIENT());
            return;
        }
        let folded = match std::str::from_utf8(bytes) {
            Ok(s) => fold(s),
            // Not UTF-8 (a blob cast to text): fold the ASCII letters, as `lower()`.
            Err(_) => {
                let mut b = bytes.to_vec();
                b.make_ascii_lowercase();
                ffi::sqlite3_result_blob(ctx, b.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT());
                return;
            }
        };
        ffi::sqlite3_result_text(
            ctx,
            folded.as_ptr().cast(),
            folded.len() as c_int,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

/// Migration 15's SQLite half, in its transaction (SQL alone cannot: custom fields' index
/// definitions vary, and SQLite has no `reverse()`): the case-folding indexes move from
/// `lower()` to `fold()`, and older suffix-search keys are folded again.
pub async fn upgrade(db: &mut impl Exec) -> DbResult<()> {
    let rebuilt = rebuild_lower_indexes(db).await?;
    refold_email_keys(db).await?;
    tracing::info!(indexes = rebuilt, "case-folding indexes rebuilt on fold()");
    Ok(())
}

/// Creates any case-folding index that is missing: a database restored from a `.dump` by
/// the `sqlite3` shell, which lacks `fold()`, lost them without a word. Runs at every
/// start; statements that find their index cost nothing.
pub async fn ensure_indexes(db: &mut impl Exec) -> DbResult<()> {
    db.execute_script(
        "CREATE INDEX IF NOT EXISTS tags_lower ON tags (fold(tag)); \
         CREATE INDEX IF NOT EXISTS companies_name ON companies (fold(name));",
    )
    .await?;
    super::fields::ensure_indexes(db).await
}

/// Rebuilds the expression indexes on SQLite's `lower()` (those of the first migrations,
/// and custom fields' from before `fold` existed) on `fold()`.
async fn rebuild_lower_indexes(db: &mut impl Exec) -> DbResult<usize> {
    let rows = db
        .fetch_all(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('contacts', 'tags', 'companies') AND sql GLOB '*lower(*'",
            vec![],
        )
        .await?;
    let count = rows.len();
    for row in rows {
        let (name, sql) = (row.text("name"), row.text("sql"));
        db.execute_script(&format!(
            "DROP INDEX \"{name}\"; {}",
            sql.replace("lower(", "fold(")
        ))
        .await?;
    }
    Ok(count)
}

/// Redoes the suffix-search keys (`contacts::email_rev`) of emails with non-ASCII
/// characters, which older servers folded as ASCII.
async fn refold_email_keys(db: &mut impl Exec) -> DbResult<()> {
    let rows = db
        .fetch_all(
            "SELECT id, email FROM contacts WHERE email_rev IS NOT NULL AND email GLOB '*[^ -~]*'",
            vec![],
        )
        .await?;
    for row in rows {
        let key = super::contacts::email_rev(&row.text("email"));
        db.execute(
            "UPDATE contacts SET email_rev = $1 WHERE id = $2",
            vec![Value::Text(key), Value::Int(row.i64("id"))],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fold;
    use crate::store::{Exec, Value};

    /// A database from before `fold()` (indexes on `lower()`, migration 15 not applied) is
    /// moved to `fold()` at start, and SQL folds non-ASCII letters as the Rust side does.
    #[tokio::test]
    async fn old_lower_indexes_are_rebuilt_on_fold() {
        let (_dir, store) = crate::store::scratch_sqlite().await;
        let mut db = store.write_conn().await.unwrap();
        let on_lower =
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql LIKE '%lower(%'";
        assert_eq!(db.fetch_i64(on_lower, vec![]).await.unwrap(), Some(0));
        db.execute_script(
            "INSERT INTO contacts (date_added, date_modified, date_identified, email, email_rev) \
             VALUES (0, 0, 0, 'a@MÜLLER.DE', 'ed.rellÜm@'); \
             DROP INDEX contacts_f_email; \
             CREATE INDEX contacts_f_email ON contacts (lower(email)) WHERE date_identified IS NOT NULL; \
             DROP INDEX tags_lower; CREATE INDEX tags_lower ON tags (lower(tag)); \
             DELETE FROM magpie_migrations WHERE version = 15;",
        )
        .await
        .unwrap();
        assert_eq!(db.fetch_i64(on_lower, vec![]).await.unwrap(), Some(2));
        drop(db);
        crate::store::migrate::run(&store).await.unwrap();
        let mut db = store.write_conn().await.unwrap();
        assert_eq!(db.fetch_i64(on_lower, vec![]).await.unwrap(), Some(0));
        let key = db
            .fetch_all("SELECT email_rev FROM contacts", vec![])
            .await
            .unwrap();
        assert_eq!(
            key[0].text("email_rev"),
            "ed.rellüm@",
            "suffix keys refolded"
        );
        let folded = db
            .fetch_all(
                "SELECT fold($1), fold(NULL), fold(12)",
                vec![Value::Text("ÉMILE Ørsted".into())],
            )
            .await
            .unwrap();
        assert_eq!(folded[0].at(0).to_text().as_deref(), Some("émile ørsted"));
        assert!(folded[0].at(1).to_text().is_none());
        assert_eq!(folded[0].at(2).to_text().as_deref(), Some("12"));
        // Indexes a restore by the `sqlite3` shell lost come back at start.
        crate::store::fields::seed_defaults(&mut db, 0)
            .await
            .unwrap();
        db.execute_script("DROP INDEX contacts_f_firstname; DROP INDEX tags_lower;")
            .await
            .unwrap();
        drop(db);
        crate::store::migrate::run(&store).await.unwrap();
        let mut db = store.write_conn().await.unwrap();
        let back = db
            .fetch_i64(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' \
                 AND name IN ('contacts_f_firstname', 'tags_lower') AND sql LIKE '%fold(%'",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(back, Some(2));
        drop(db);
        store.close().await;
    }

    #[test]
    fn folds_each_character() {
        for (input, want) in [
            ("ZOË@Example.ORG", "zoë@example.org"),
            ("Émile", "émile"),
            ("ÅSA ØRSTED", "åsa ørsted"),
            ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ"), // each alone: no final ς
            ("İSTANBUL", "istanbul"), // one character for one, as PostgreSQL
            ("already folded", "already folded"),
            ("", ""),
        ] {
            assert_eq!(fold(input), want, "{input}");
        }
    }
}
