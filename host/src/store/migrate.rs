//! Embedded migrations: `migrations/sqlite` and `migrations/postgres` share numbering;
//! each is applied once, in its own transaction, and recorded in `magpie_migrations`.

use super::db::{Backend, Exec, Store};
use crate::params;
use crate::time::now_ms;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../../../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../../../migrations/postgres/", $name, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init"),
    migration!(2, "0002_admin"),
    migration!(3, "0003_plugins"),
    migration!(4, "0004_tracking"),
    migration!(5, "0005_jobs"),
    migration!(6, "0006_deferred_fts"),
    migration!(7, "0007_expression_statistics"),
    migration!(8, "0008_tracking_journal"),
    migration!(9, "0009_narrower_write_indexes"),
    migration!(10, "0010_contentless_fts"),
    migration!(11, "0011_free_text_file"),
    migration!(12, "0012_derived_creation_events"),
    migration!(13, "0013_tag_descriptions"),
    migration!(14, "0014_lookup_lists"),
    migration!(15, "0015_folded_email_keys"),
    migration!(16, "0016_events_by_time"),
];

/// Applies every migration not yet recorded. Safe to run from several processes at once
/// on PostgreSQL (an advisory lock serialises them).
pub async fn run(store: &Store) -> anyhow::Result<()> {
    if store.backend() == Backend::Sqlite {
        // One process owns a SQLite file; its single writer connection serialises us.
        apply(store, Backend::Sqlite).await?;
        let mut tx = store.begin().await?;
        super::fold::ensure_indexes(&mut tx).await?;
        tx.commit().await?;
        // The free-text index's file must belong to the database it now sees.
        return Ok(super::free_text::prepare(store).await?);
    }
    let mut lock = store.write_conn().await?;
    lock.execute("SELECT pg_advisory_lock(7011969)", vec![])
        .await?;
    let result = apply(store, Backend::Postgres).await;
    lock.execute("SELECT pg_advisory_unlock(7011969)", vec![])
        .await?;
    result
}

async fn apply(store: &Store, backend: Backend) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    tx.execute_script(
        "CREATE TABLE IF NOT EXISTS magpie_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    tx.commit().await?;
    for m in MIGRATIONS {
        let mut tx = store.begin().await?;
        let done = tx
            .fetch_optional(
                "SELECT version FROM magpie_migrations WHERE version = $1",
                params![m.version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        tx.execute_script(sql)
            .await
            .map_err(|e| anyhow::anyhow!("migration {} failed: {e}", m.name))?;
        if (backend, m.version) == (Backend::Sqlite, 15) {
            super::fold::upgrade(&mut tx)
                .await
                .map_err(|e| anyhow::anyhow!("migration {} failed: {e}", m.name))?;
        }
        tx.execute(
            "INSERT INTO magpie_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            params![m.version, m.name, now_ms()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = m.name, "applied migration");
    }
    Ok(())
}
