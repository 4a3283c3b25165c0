//! The deferred free-text index of SQLite (migration 0006): contacts written are queued
//! in `contacts_fts_pending` by triggers; `index_pending` moves them into the FTS5
//! trigram table in large transactions, which costs a fraction of indexing each small
//! write transaction. Searches cover the queue with a scan of it (`contact_search`), so
//! nothing waits for the indexer to be found. PostgreSQL needs none of this.

use std::time::Duration;

use super::db::{Backend, DbResult, Exec, Store};
use crate::params;

/// The text indexed for a contact `t`: name, email, company and location, lower-cased
/// (the trigram tokenizer folds case itself; the queue's scan compares lower-cased text).
pub fn indexed_text(t: &str) -> String {
    format!(
        "lower(coalesce({t}.firstname, '') || ' ' || coalesce({t}.lastname, '') || char(10) || coalesce({t}.email, '') || char(10) || \
         coalesce({t}.company, '') || char(10) || coalesce({t}.city, '') || char(10) || coalesce({t}.state, '') || char(10) || \
         coalesce({t}.zipcode, '') || char(10) || coalesce({t}.country, ''))"
    )
}

/// The ids of known contacts whose indexed text matches: the FTS5 `phrase` query (a
/// parameter) over the index, plus the queue the indexer has not reached, each of its
/// contacts' text checked with every `LIKE` pattern (parameters). CROSS JOIN keeps the
/// short queue first whatever the statistics say of it.
pub fn matching_ids(phrase: &str, patterns: &[String]) -> String {
    let text = indexed_text("q");
    let likes: Vec<String> = patterns
        .iter()
        .map(|p| format!("{text} LIKE {p} ESCAPE '\\'"))
        .collect();
    format!(
        "SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH {phrase} UNION ALL \
         SELECT q.id FROM contacts_fts_pending p CROSS JOIN contacts q ON q.id = p.contact_id \
         WHERE q.date_identified IS NOT NULL AND {}",
        likes.join(" AND ")
    )
}

/// Contacts indexed per transaction: large enough to amortise the segment FTS5 writes
/// per commit, small enough to hold the writer for well under a second.
const CHUNK: i64 = 20_000;

/// Indexes up to `CHUNK` queued contacts in one transaction; returns how many were taken
/// from the queue.
pub async fn index_pending(store: &Store) -> DbResult<u64> {
    if store.backend() != Backend::Sqlite {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let Some(last) = tx
        .fetch_i64("SELECT max(contact_id) FROM (SELECT contact_id FROM contacts_fts_pending ORDER BY contact_id LIMIT $1)", params![CHUNK])
        .await?
    else {
        return Ok(0);
    };
    // Still-queued contacts are not in the index (the triggers take them out when they
    // change), so a plain insert cannot duplicate a row.
    tx.execute(
        &format!(
            "INSERT INTO contacts_fts (rowid, text) SELECT c.id, {} FROM contacts_fts_pending p CROSS JOIN contacts c ON c.id = p.contact_id \
             WHERE p.contact_id <= $1 AND c.date_identified IS NOT NULL",
            indexed_text("c")
        ),
        params![last],
    )
    .await?;
    let taken = tx
        .execute(
            "DELETE FROM contacts_fts_pending WHERE contact_id <= $1",
            params![last],
        )
        .await?;
    tx.commit().await?;
    Ok(taken)
}

/// Whether anything waits to be indexed (a read: no write lock taken when idle).
async fn has_pending(store: &Store) -> DbResult<bool> {
    let mut db = store.read().await?;
    Ok(db
        .fetch_i64("SELECT 1 FROM contacts_fts_pending LIMIT 1", vec![])
        .await?
        .is_some())
}

/// The background indexer: drains the queue shortly after writes, until `stop`.
/// What it has not indexed at shutdown stays queued for the next start.
pub fn spawn_indexer(
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if store.backend() != Backend::Sqlite {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            loop {
                match has_pending(&store).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "free-text queue unreadable");
                        break;
                    }
                }
                match index_pending(&store).await {
                    Ok(n) if n as i64 >= CHUNK => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "free-text indexing failed; retrying later");
                        break;
                    }
                }
            }
        }
    }))
}
