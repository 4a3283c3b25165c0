//! Cross-process locks for the write path. SQLite has one writer, so they are no-ops
//! there; on PostgreSQL transaction-scoped advisory locks keep two servers from both
//! missing a duplicate and both inserting it.

use sha2::{Digest, Sha256};

use super::db::{Backend, DbResult, Exec, Value};

/// Locks each key (sorted, so concurrent callers never deadlock) until the transaction ends.
pub async fn identifier_locks(db: &mut impl Exec, keys: &[String]) -> DbResult<()> {
    if db.backend() != Backend::Postgres || keys.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = keys
        .iter()
        .map(|k| {
            let digest = Sha256::digest(k.as_bytes());
            i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let list: Vec<String> = (1..=chunk.len())
            .map(|i| format!("(${i}::bigint)"))
            .collect();
        let sql = format!(
            "SELECT pg_advisory_xact_lock(k) FROM (VALUES {}) AS v(k) ORDER BY k",
            list.join(", ")
        );
        db.fetch_all(&sql, chunk.iter().map(|i| Value::Int(*i)).collect())
            .await?;
    }
    Ok(())
}
