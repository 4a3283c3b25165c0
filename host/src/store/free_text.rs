//! The deferred free-text index of SQLite. Triggers queue every known contact written
//! in `contacts_fts_pending` (migration 0011); `index_pending` moves the queue into an
//! FTS5 trigram table in large transactions, which costs a fraction of indexing each
//! small write transaction. Searches cover the queue with a scan of it
//! (`matching_ids`), so nothing waits for the indexer to be found. PostgreSQL needs
//! none of this.
//!
//! The index lives in a database file of its own, `<database>-search`, written by a
//! connection of its own (`Store::begin_free_text`): indexing runs on the other core
//! beside the main writer instead of taking turns with it. The two files cannot share a
//! transaction, so the queue says what the index may be missing or may hold stale:
//!
//! - Each queue entry has a `seq` that grows with every write (`AUTOINCREMENT`), and
//!   `stale` when the index may hold an older text of the contact (an update or a
//!   delete). A contact written again gets a new `seq`.
//! - The indexer writes the entries up to some `seq` into the index and records that
//!   `seq` there (`free_text_state.indexed_seq`), in one transaction of the index file;
//!   then it deletes them from the queue in the main file. A crash in between leaves
//!   them queued, and the next round deletes them without indexing them twice.
//! - Searches take index matches that are not queued, plus the queued contacts whose
//!   text matches. A statement reads the main database before attached ones (SQLite
//!   starts their read transactions in that order), so a search that no longer sees an
//!   entry in the queue sees the index that holds it.
//! - If the index file is lost, belongs to another database or is ahead of the queue (an
//!   older copy of the main database put back), `prepare` rebuilds it from scratch. The
//!   check cannot catch every older copy (the index may hold texts it read after the
//!   copy was made, under a `seq` the copy had issued too), so the README says to delete
//!   the index file when putting a copy back.

use std::time::Duration;

use super::db::{Backend, DbResult, Exec, Store};
use crate::params;

/// The index file of the main database at `path`.
pub fn index_path(path: &str) -> String {
    format!("{path}-search")
}

/// A `file:` URI that opens `path` read-only (the index's writer attaches the main
/// database so, and so can never lock it). `%`, `?` and `#` are escaped, as URIs want.
pub fn read_only_uri(path: &str) -> String {
    let mut uri = String::from("file:");
    for ch in path.chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// The index's tables, created when missing (`prepare`).
///
/// No copy of the text is kept (`content=''`), a change removes the old text by
/// tombstone (`contentless_delete`), and segments are merged only when a level holds 16
/// (`automerge`): measured with SQLite 3.51, indexing 900,000 contacts in chunks of
/// 20,000 took 10.5 s with the defaults and 5.9 s so, with the same search times.
const INDEX_SCHEMA: &str = "\
    CREATE VIRTUAL TABLE IF NOT EXISTS contacts_fts USING fts5 (\
        text, tokenize = 'trigram', content = '', contentless_delete = 1); \
    INSERT INTO contacts_fts (contacts_fts, rank) VALUES ('automerge', 16); \
    CREATE TABLE IF NOT EXISTS free_text_state (\
        id INTEGER PRIMARY KEY CHECK (id = 1), \
        generation TEXT NOT NULL, \
        indexed_seq INTEGER NOT NULL)";

/// The text indexed for a contact `t`: name, email, company and location, case-folded
/// (the trigram tokenizer folds case itself; the queue's scan compares folded text).
pub fn indexed_text(t: &str) -> String {
    format!(
        "fold(coalesce({t}.firstname, '') || ' ' || coalesce({t}.lastname, '') || char(10) || coalesce({t}.email, '') || char(10) || \
         coalesce({t}.company, '') || char(10) || coalesce({t}.city, '') || char(10) || coalesce({t}.state, '') || char(10) || \
         coalesce({t}.zipcode, '') || char(10) || coalesce({t}.country, ''))"
    )
}

/// The ids of known contacts whose indexed text matches: the FTS5 `phrase` query (a
/// parameter) over the index, but for queued contacts, whose entry there may be missing
/// or stale; plus the queued contacts, each of their texts checked with every `LIKE`
/// pattern (parameters). CROSS JOIN keeps the short queue first whatever the statistics
/// say of it.
pub fn matching_ids(phrase: &str, patterns: &[String]) -> String {
    let text = indexed_text("q");
    let likes: Vec<String> = patterns
        .iter()
        .map(|p| format!("{text} LIKE {p} ESCAPE '\\'"))
        .collect();
    format!(
        "SELECT rowid FROM free_text.contacts_fts WHERE contacts_fts MATCH {phrase} \
         AND rowid NOT IN (SELECT contact_id FROM contacts_fts_pending) UNION ALL \
         SELECT q.id FROM contacts_fts_pending p CROSS JOIN contacts q ON q.id = p.contact_id \
         WHERE q.date_identified IS NOT NULL AND {}",
        likes.join(" AND ")
    )
}

/// Queue entries indexed per transaction: large enough to amortise the segment FTS5
/// writes per commit, small enough to keep each transaction well under a second.
const CHUNK: i64 = 20_000;

/// Checks that the index file belongs to this database and is not ahead of its queue;
/// otherwise empties it and queues every known contact (run after the migrations, before
/// serving). Safe against a crash at any point: the index is marked as this database's
/// only once everything is queued.
pub async fn prepare(store: &Store) -> DbResult<()> {
    let Some(mut index) = store.begin_free_text().await? else {
        return Ok(());
    };
    index.execute_script(INDEX_SCHEMA).await?;
    let state = index
        .fetch_optional(
            "SELECT generation, indexed_seq FROM free_text_state WHERE id = 1",
            vec![],
        )
        .await?;
    let (generation, issued) = {
        let g = index
            .fetch_optional("SELECT generation FROM magpie.free_text_generation", vec![])
            .await?
            .map(|r| r.text("generation"))
            .unwrap_or_default();
        let issued = index
            .fetch_i64(
                "SELECT seq FROM magpie.sqlite_sequence WHERE name = 'contacts_fts_pending'",
                vec![],
            )
            .await?
            .unwrap_or(0);
        (g, issued)
    };
    let sound =
        state.is_some_and(|r| r.text("generation") == generation && r.i64("indexed_seq") <= issued);
    index.commit().await?;
    if sound {
        return Ok(());
    }
    tracing::info!("free-text index missing or out of step with the database: rebuilding it");
    let mut tx = store.begin().await?;
    tx.execute("DELETE FROM contacts_fts_pending", vec![])
        .await?;
    tx.execute(
        "INSERT INTO contacts_fts_pending (contact_id) SELECT id FROM contacts WHERE date_identified IS NOT NULL",
        vec![],
    )
    .await?;
    tx.commit().await?;
    let mut index = store.begin_free_text().await?.expect("SQLite");
    index
        .execute_script("DROP TABLE IF EXISTS contacts_fts; DROP TABLE IF EXISTS free_text_state")
        .await?;
    index.execute_script(INDEX_SCHEMA).await?;
    index
        .execute(
            "INSERT INTO free_text_state (id, generation, indexed_seq) VALUES (1, $1, 0)",
            params![generation],
        )
        .await?;
    index.commit().await?;
    Ok(())
}

/// Indexes up to `CHUNK` queued entries in one transaction of the index file, then
/// takes them off the queue; returns how many were indexed.
pub async fn index_pending(store: &Store) -> DbResult<u64> {
    let Some((count, upto)) = index_chunk(store).await? else {
        return Ok(0);
    };
    dequeue(store, upto).await?;
    Ok(count)
}

/// Writes the next queue entries into the index and records the last one's `seq` there,
/// in one transaction of the index file. Returns how many entries it took and that
/// `seq` (the one recorded before when the queue held nothing newer).
async fn index_chunk(store: &Store) -> DbResult<Option<(u64, i64)>> {
    let Some(mut index) = store.begin_free_text().await? else {
        return Ok(None);
    };
    let done = index
        .fetch_i64(
            "SELECT indexed_seq FROM free_text_state WHERE id = 1",
            vec![],
        )
        .await?
        .unwrap_or(0);
    let chunk = index
        .fetch_all(
            "SELECT count(*) AS n, max(seq) AS last FROM (SELECT seq FROM magpie.contacts_fts_pending WHERE seq > $1 ORDER BY seq LIMIT $2)",
            params![done, CHUNK],
        )
        .await?;
    let (count, last) = chunk
        .first()
        .map_or((0, None), |r| (r.i64("n"), r.opt_i64("last")));
    let Some(last) = last else {
        return Ok(Some((0, done)));
    };
    // Take out what the index may hold of these contacts (tombstones), one rowid at a
    // time: FTS5 looks a rowid up, where an IN list could scan.
    let stale = index
        .fetch_all(
            "SELECT contact_id FROM magpie.contacts_fts_pending WHERE seq > $1 AND seq <= $2 AND stale",
            params![done, last],
        )
        .await?;
    for row in stale {
        index
            .execute(
                "DELETE FROM contacts_fts WHERE rowid = $1",
                params![row.i64("contact_id")],
            )
            .await?;
    }
    index
        .execute(
            &format!(
                "INSERT INTO contacts_fts (rowid, text) SELECT c.id, {} \
                 FROM magpie.contacts_fts_pending p CROSS JOIN magpie.contacts c ON c.id = p.contact_id \
                 WHERE p.seq > $1 AND p.seq <= $2 AND c.date_identified IS NOT NULL",
                indexed_text("c")
            ),
            params![done, last],
        )
        .await?;
    index
        .execute(
            "UPDATE free_text_state SET indexed_seq = $1 WHERE id = 1",
            params![last],
        )
        .await?;
    index.commit().await?;
    Ok(Some((count as u64, last)))
}

/// Takes the entries up to `seq`, which the index holds, off the queue (on the main
/// writer; also what a crash left there after the index's commit).
async fn dequeue(store: &Store, seq: i64) -> DbResult<()> {
    if has_pending_upto(store, seq).await? {
        let mut tx = store.begin().await?;
        tx.execute(
            "DELETE FROM contacts_fts_pending WHERE seq <= $1",
            params![seq],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Whether queue entries up to `seq` are left (a read: no write lock when there are none).
async fn has_pending_upto(store: &Store, seq: i64) -> DbResult<bool> {
    let mut db = store.read().await?;
    Ok(db
        .fetch_i64(
            "SELECT 1 FROM contacts_fts_pending WHERE seq <= $1 LIMIT 1",
            params![seq],
        )
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
            // Idle, a round only reads: the index's transaction takes its write lock at
            // its first write, and the queue is emptied only when it holds something.
            loop {
                let started = std::time::Instant::now();
                match index_pending(&store).await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(
                                entries = n,
                                ms = started.elapsed().as_millis() as u64,
                                "free-text index chunk"
                            );
                        }
                        if (n as i64) < CHUNK {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "free-text indexing failed; retrying later");
                        break;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(name: &str) -> Store {
        let dir =
            std::env::temp_dir().join(format!("magpie-free-text-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/magpie.db", dir.display()))
            .await
            .unwrap();
        crate::store::migrate::run(&store).await.unwrap();
        store
    }

    async fn add(store: &Store, lastname: &str) -> i64 {
        let mut tx = store.begin().await.unwrap();
        let id = tx
            .fetch_i64(
                "INSERT INTO contacts (date_added, date_modified, lastname, date_identified) VALUES (0, 0, $1, 0) RETURNING id",
                params![lastname],
            )
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    async fn write(store: &Store, sql: &str, id: i64) {
        let mut tx = store.begin().await.unwrap();
        tx.execute(sql, params![id]).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Every match of `word`, as a search sees it (a contact found twice shows twice).
    async fn found(store: &Store, word: &str) -> Vec<i64> {
        let mut db = store.read().await.unwrap();
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY 1",
            matching_ids("$1", &["$2".to_owned()])
        );
        db.fetch_all(&sql, params![format!("\"{word}\""), format!("%{word}%")])
            .await
            .unwrap()
            .iter()
            .map(|r| r.at(0).as_i64().unwrap())
            .collect()
    }

    async fn queued(store: &Store) -> i64 {
        let mut db = store.read().await.unwrap();
        db.fetch_i64("SELECT count(*) FROM contacts_fts_pending", vec![])
            .await
            .unwrap()
            .unwrap()
    }

    /// A contact is found exactly once whatever the indexer has done: queued, indexed
    /// but still queued (a crash between the index's commit and the dequeue), indexed;
    /// changed before and after indexing; deleted.
    #[tokio::test]
    async fn searches_find_each_contact_once_through_every_step() {
        let store = store("steps").await;
        let a = add(&store, "Zinnober").await;
        let b = add(&store, "Zinnober").await;
        assert_eq!(found(&store, "zinnober").await, vec![a, b], "queued");

        // Indexed, and the dequeue never ran.
        let (n, _) = index_chunk(&store).await.unwrap().unwrap();
        assert_eq!(n, 2);
        assert_eq!(queued(&store).await, 2);
        assert_eq!(
            found(&store, "zinnober").await,
            vec![a, b],
            "indexed, still queued"
        );
        // The next round indexes nothing again and empties the queue.
        assert_eq!(index_pending(&store).await.unwrap(), 0);
        assert_eq!(queued(&store).await, 0);
        assert_eq!(found(&store, "zinnober").await, vec![a, b], "indexed");

        // Changed after indexing: the old text is not found, even before the indexer.
        write(
            &store,
            "UPDATE contacts SET lastname = 'Scharlach' WHERE id = $1",
            a,
        )
        .await;
        assert_eq!(found(&store, "zinnober").await, vec![b]);
        assert_eq!(found(&store, "scharlach").await, vec![a]);
        // Changed twice before indexing, the first time never indexed.
        let c = add(&store, "Zinnober").await;
        write(
            &store,
            "UPDATE contacts SET lastname = 'Kobalt' WHERE id = $1",
            c,
        )
        .await;
        write(
            &store,
            "UPDATE contacts SET lastname = 'Zinnober' WHERE id = $1",
            c,
        )
        .await;
        assert_eq!(found(&store, "zinnober").await, vec![b, c]);
        while index_pending(&store).await.unwrap() > 0 {}
        assert_eq!(queued(&store).await, 0);
        assert_eq!(found(&store, "zinnober").await, vec![b, c]);
        assert_eq!(found(&store, "scharlach").await, vec![a]);
        assert!(found(&store, "kobalt").await.is_empty());

        // Deleted: gone at once, and from the index once indexed.
        write(&store, "DELETE FROM contacts WHERE id = $1", b).await;
        assert_eq!(found(&store, "zinnober").await, vec![c]);
        while index_pending(&store).await.unwrap() > 0 {}
        assert_eq!(found(&store, "zinnober").await, vec![c]);
        let mut index = store.begin_free_text().await.unwrap().unwrap();
        let in_index = index
            .fetch_i64(
                "SELECT count(*) FROM contacts_fts WHERE contacts_fts MATCH '\"zinnober\"'",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(in_index, Some(1), "the deleted contact left the index");
        drop(index);

        // A change that lands between a chunk's indexing and its dequeue stays queued.
        write(
            &store,
            "UPDATE contacts SET lastname = 'Kastanie' WHERE id = $1",
            c,
        )
        .await;
        let (n, upto) = index_chunk(&store).await.unwrap().unwrap();
        assert_eq!(n, 1);
        write(
            &store,
            "UPDATE contacts SET lastname = 'Umbra' WHERE id = $1",
            c,
        )
        .await;
        dequeue(&store, upto).await.unwrap();
        assert_eq!(queued(&store).await, 1, "the change stays queued");
        assert_eq!(found(&store, "umbra").await, vec![c]);
        assert!(found(&store, "kastanie").await.is_empty());
        assert!(found(&store, "zinnober").await.is_empty());
        while index_pending(&store).await.unwrap() > 0 {}
        assert_eq!(found(&store, "umbra").await, vec![c]);
        assert!(found(&store, "kastanie").await.is_empty());
        store.close().await;
    }

    /// An index ahead of the queue (an older copy of the database put back) or of
    /// another database is rebuilt: everything known is queued again.
    #[tokio::test]
    async fn an_index_out_of_step_is_rebuilt() {
        let store = store("rebuild").await;
        let a = add(&store, "Zinnober").await;
        while index_pending(&store).await.unwrap() > 0 {}
        prepare(&store).await.unwrap();
        assert_eq!(queued(&store).await, 0, "a sound index is kept");

        let mut index = store.begin_free_text().await.unwrap().unwrap();
        index
            .execute(
                "UPDATE free_text_state SET indexed_seq = indexed_seq + 1000",
                vec![],
            )
            .await
            .unwrap();
        index.commit().await.unwrap();
        prepare(&store).await.unwrap();
        assert_eq!(queued(&store).await, 1, "ahead of the queue");
        assert_eq!(found(&store, "zinnober").await, vec![a]);
        while index_pending(&store).await.unwrap() > 0 {}
        assert_eq!(found(&store, "zinnober").await, vec![a]);

        write(
            &store,
            "UPDATE free_text_generation SET generation = 'another' WHERE $1",
            1,
        )
        .await;
        prepare(&store).await.unwrap();
        assert_eq!(queued(&store).await, 1, "another database's index");
        while index_pending(&store).await.unwrap() > 0 {}
        assert_eq!(found(&store, "zinnober").await, vec![a]);
        store.close().await;
    }
}
