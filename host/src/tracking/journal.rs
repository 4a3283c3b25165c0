//! The tracking journal: a hit is answered once it is durable in a journal of its own, and
//! applied to the contacts database moments later, many hits per transaction.
//!
//! Why: applying a hit (contact, device, page hit, "date left", last active, IP) is a dozen
//! row writes in the main database, whose one SQLite writer would make every visitor wait
//! for everyone else's. Appending a hit to its own SQLite file (`tracking-journal.db` in the
//! data dir) is one short row, committed together with every other hit waiting at that
//! moment (group commit, `synchronous = FULL`). The applier reads journaled hits in order,
//! applies up to `MAX_APPLY` of them in one transaction of the main database and records
//! how far it got in that same transaction (`tracking_journal_marks`), so a crash anywhere
//! applies every journaled hit exactly once.
//!
//! What a caller sees: the pixel is answered as soon as its hit is journaled; `/mtc/event`
//! waits until its hit is applied, because it answers with the contact id. Device ids are
//! signed (`token::issue_device_id`), so a visitor's next hit proves its id without a
//! lookup, even before the first hit is applied; only other ids are looked up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Hit, Tracked, random_id, record_batch, token};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, Exec, Params, Store};

/// Largest number of hits one journal commit takes.
const MAX_ACCEPT: usize = 1000;
/// Largest number of hits one applying transaction takes.
const MAX_APPLY: usize = 2000;
/// Applied hits are deleted from the journal in steps of about this many: small steps
/// hold the journal's write lock (which accepting hits needs) only briefly.
const PRUNE_EVERY: i64 = 2_000;

/// The first journal of the data dir no other process holds: `tracking-journal.db`, then
/// `tracking-journal-1.db` … Processes sharing a data dir (PostgreSQL) each hold one; a
/// journal left by a process that died is applied by the next one to take it.
fn claim_journal(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    for n in 0..1000 {
        let name = match n {
            0 => "tracking-journal.db".to_owned(),
            n => format!("tracking-journal-{n}.db"),
        };
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{name}.lock")))?;
        match lock.try_lock() {
            Ok(()) => return Ok((dir.join(name), lock)),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    anyhow::bail!("no free tracking journal in {}", dir.display())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- device_id: the hit's device, checked or handed out when the hit was accepted;
-- new_device: it was handed out with this hit.
CREATE TABLE IF NOT EXISTS hits (
    id         INTEGER PRIMARY KEY,
    device_id  TEXT    NOT NULL,
    new_device INTEGER NOT NULL,
    body       TEXT    NOT NULL
);
-- Hits that could not be applied even on their own: kept for inspection, never dropped.
CREATE TABLE IF NOT EXISTS failed (
    id        INTEGER PRIMARY KEY,
    body      TEXT    NOT NULL,
    error     TEXT    NOT NULL,
    failed_at INTEGER NOT NULL
);
";

struct Submit {
    hit: Hit,
    wait: bool,
    reply: oneshot::Sender<AppResult<Accepted>>,
}

/// A journaled hit.
struct Accepted {
    device_id: String,
    /// When asked for: resolves once the hit is applied, with its contact.
    applied: Option<oneshot::Receiver<AppResult<Tracked>>>,
}

struct Shared {
    /// Callers waiting for their hit (journal id) to be applied.
    waiters: Mutex<HashMap<i64, oneshot::Sender<AppResult<Tracked>>>>,
    /// The last journal id committed.
    committed: AtomicI64,
    /// The last journal id applied (or set aside).
    applied: watch::Sender<i64>,
    wake: Notify,
    accepting_done: AtomicBool,
}

/// The front door of the tracking write path.
pub struct Tracker {
    sender: mpsc::Sender<Submit>,
    receiver: Mutex<Option<mpsc::Receiver<Submit>>>,
    shared: Arc<Shared>,
}

impl Default for Tracker {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(MAX_ACCEPT * 16);
        Tracker {
            sender,
            receiver: Mutex::new(Some(receiver)),
            shared: Arc::new(Shared {
                waiters: Mutex::default(),
                committed: AtomicI64::new(0),
                applied: watch::Sender::new(0),
                wake: Notify::new(),
                accepting_done: AtomicBool::new(false),
            }),
        }
    }
}

fn stopped() -> AppError {
    AppError::Internal(anyhow::anyhow!("the tracking journal has stopped"))
}

impl Tracker {
    async fn submit(&self, hit: Hit, wait: bool) -> AppResult<Accepted> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Submit { hit, wait, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Journals a hit and returns its device id; the hit is applied moments later.
    pub async fn accept(&self, hit: Hit) -> AppResult<String> {
        Ok(self.submit(hit, false).await?.device_id)
    }

    /// Journals a hit and resolves once it is applied, with the contact it was recorded for.
    pub async fn track(&self, hit: Hit) -> AppResult<Tracked> {
        let accepted = self.submit(hit, true).await?;
        accepted
            .applied
            .expect("asked to wait")
            .await
            .map_err(|_| stopped())?
    }

    /// Resolves once every hit journaled so far is applied.
    pub async fn settled(&self) {
        let target = self.shared.committed.load(Ordering::Acquire);
        let mut applied = self.shared.applied.subscribe();
        let _ = applied.wait_for(|a| *a >= target).await;
    }

    /// Opens the journal, picks up where the last run stopped and starts the accepting and
    /// applying tasks. They stop with `stop`, once every accepted hit is applied.
    pub async fn start(
        state: Arc<AppState>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let Some(receiver) = state.tracker.receiver.lock().expect("lock").take() else {
            return Ok(Vec::new());
        };
        let (path, lock) = claim_journal(&state.config.data_dir)?;
        let journal = Store::connect(&format!("sqlite://{}", path.display())).await?;
        let mut conn = journal.write_conn().await?;
        conn.execute_script(SCHEMA).await?;
        let journal_id = match conn
            .fetch_optional("SELECT value FROM meta WHERE key = 'journal_id'", vec![])
            .await?
        {
            Some(r) => r.text("value"),
            None => {
                let id = random_id();
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('journal_id', $1)",
                    crate::params![id.as_str()],
                )
                .await?;
                id
            }
        };
        let mark =
            store::tracking::journal_mark(&mut state.store.read().await?, &journal_id).await?;
        conn.execute("DELETE FROM hits WHERE id <= $1", crate::params![mark])
            .await?;
        let last = conn
            .fetch_i64("SELECT MAX(id) FROM hits", vec![])
            .await?
            .unwrap_or(0)
            .max(mark);
        drop(conn);
        if last > mark {
            tracing::info!(
                hits = last - mark,
                "tracking: applying hits journaled before the restart"
            );
        }
        let shared = state.tracker.shared.clone();
        shared.committed.store(last, Ordering::Release);
        shared.applied.send_replace(mark);

        let mut tasks = vec![
            tokio::spawn(accept_loop(
                state.clone(),
                journal.clone(),
                receiver,
                stop.clone(),
            )),
            tokio::spawn(apply_loop(state.clone(), journal.clone(), journal_id, lock)),
        ];
        tasks.extend(journal.spawn_checkpointer(stop));
        Ok(tasks)
    }
}

/// Takes every hit waiting, journals them in one commit, answers them.
async fn accept_loop(
    state: Arc<AppState>,
    journal: Store,
    mut receiver: mpsc::Receiver<Submit>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = state.tracker.shared.clone();
    loop {
        let first = tokio::select! {
            job = receiver.recv() => job,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_ACCEPT {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        journal_batch(&state, &journal, batch).await;
    }
    // Shutting down: what is queued is still journaled (and then applied).
    receiver.close();
    let mut rest = Vec::new();
    while let Ok(job) = receiver.try_recv() {
        rest.push(job);
    }
    while !rest.is_empty() {
        let batch: Vec<Submit> = rest.drain(..rest.len().min(MAX_ACCEPT)).collect();
        journal_batch(&state, &journal, batch).await;
    }
    shared.accepting_done.store(true, Ordering::Release);
    shared.wake.notify_one();
}

async fn journal_batch(state: &AppState, journal: &Store, mut batch: Vec<Submit>) {
    let shared = &state.tracker.shared;
    // A device id the visitor sends is theirs when we signed it, or when the database
    // knows it (ids from before signing); any other id is forged or forgotten, and the
    // visitor gets a new one.
    let secret = &state.tracking_secret;
    let mut real: HashSet<String> = HashSet::new();
    let mut unsure: Vec<String> = Vec::new();
    for d in batch.iter().filter_map(|s| s.hit.params.device_id.as_ref()) {
        if token::is_issued_device_id(secret, d) {
            real.insert(d.clone());
        } else {
            unsure.push(d.clone());
        }
    }
    if !unsure.is_empty() {
        let known = async {
            let mut conn = state.store.read().await?;
            store::tracking::devices_by_tracking_ids(&mut conn, &unsure).await
        }
        .await;
        match known {
            Ok(known) => real.extend(known.into_keys()),
            Err(e) => return fail_all(batch, &AppError::from(e)),
        }
    }

    let first_id = shared.committed.load(Ordering::Acquire) + 1;
    let mut rows = Vec::with_capacity(batch.len());
    let mut receivers = Vec::with_capacity(batch.len());
    for (i, s) in batch.iter_mut().enumerate() {
        let id = first_id + i as i64;
        let known = s
            .hit
            .params
            .device_id
            .as_ref()
            .is_some_and(|d| real.contains(d));
        if !known {
            s.hit.params.device_id = Some(token::issue_device_id(secret));
        }
        let body = match serde_json::to_string(&s.hit) {
            Ok(b) => b,
            Err(e) => return fail_all(batch, &AppError::Internal(e.into())),
        };
        rows.push((
            id,
            s.hit.params.device_id.clone().unwrap_or_default(),
            !known,
            body,
        ));
        receivers.push(None);
    }
    // Known before the commit, so an applier never sees a hit nobody waits for.
    {
        let mut waiters = shared.waiters.lock().expect("lock");
        for (i, s) in batch.iter().enumerate() {
            if s.wait {
                let (tx, rx) = oneshot::channel();
                waiters.insert(rows[i].0, tx);
                receivers[i] = Some(rx);
            }
        }
    }
    let started = std::time::Instant::now();
    let written = async {
        let mut tx = journal.begin().await?;
        for chunk in rows.chunks(200) {
            let mut p = Params::default();
            let tuples: Vec<String> = chunk
                .iter()
                .map(|(id, device, new, body)| {
                    format!(
                        "({}, {}, {}, {})",
                        p.push(*id),
                        p.push(device.as_str()),
                        p.push(*new),
                        p.push(body.as_str())
                    )
                })
                .collect();
            tx.execute(
                &format!(
                    "INSERT INTO hits (id, device_id, new_device, body) VALUES {}",
                    tuples.join(", ")
                ),
                p.values,
            )
            .await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        {
            let mut waiters = shared.waiters.lock().expect("lock");
            for (id, ..) in &rows {
                waiters.remove(id);
            }
        }
        tracing::error!(error = %e, hits = batch.len(), "tracking: hits could not be journaled");
        return fail_all(batch, &AppError::from(e));
    }
    if started.elapsed() > Duration::from_millis(100) {
        // Every hit of the batch waited this long for its answer.
        tracing::warn!(
            ms = started.elapsed().as_millis() as u64,
            hits = batch.len(),
            "tracking: slow journal commit"
        );
    }
    shared
        .committed
        .store(first_id + batch.len() as i64 - 1, Ordering::Release);
    shared.wake.notify_one();
    for ((s, (_, device_id, ..)), applied) in batch.into_iter().zip(rows).zip(receivers) {
        let _ = s.reply.send(Ok(Accepted { device_id, applied }));
    }
}

fn fail_all(batch: Vec<Submit>, e: &AppError) {
    for s in batch {
        let _ = s
            .reply
            .send(Err(AppError::Internal(anyhow::anyhow!("{e}"))));
    }
}

/// A journaled hit, as the applier reads it back.
struct Journaled {
    id: i64,
    hit: Result<Hit, String>,
    body: String,
}

/// Applies journaled hits in order until accepting has stopped and nothing is left.
/// `_lock` keeps this process's claim on the journal until the last hit is applied.
async fn apply_loop(
    state: Arc<AppState>,
    journal: Store,
    journal_id: String,
    _lock: std::fs::File,
) {
    let shared = state.tracker.shared.clone();
    let mut pruned_through = *shared.applied.borrow();
    loop {
        let applied = *shared.applied.borrow();
        if shared.committed.load(Ordering::Acquire) <= applied {
            if applied > pruned_through {
                pruned_through = prune(&journal, applied).await.unwrap_or(pruned_through);
            }
            if shared.accepting_done.load(Ordering::Acquire)
                && shared.committed.load(Ordering::Acquire) <= applied
            {
                break;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let batch = match read_batch(&journal, applied).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "tracking: cannot read the journal");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        apply(&state, &journal, &journal_id, batch).await;
        let applied = *shared.applied.borrow();
        if applied - pruned_through >= PRUNE_EVERY {
            pruned_through = prune(&journal, applied).await.unwrap_or(pruned_through);
        }
    }
}

async fn prune(journal: &Store, through: i64) -> anyhow::Result<i64> {
    let mut conn = journal.write_conn().await?;
    conn.execute("DELETE FROM hits WHERE id <= $1", crate::params![through])
        .await?;
    Ok(through)
}

/// The next hits after `applied`. A batch ends before a second hit of a device handed
/// out within it, so each batch creates a new device once.
async fn read_batch(journal: &Store, applied: i64) -> anyhow::Result<Vec<Journaled>> {
    let rows = journal
        .read()
        .await?
        .fetch_all(
            "SELECT id, device_id, new_device, body FROM hits WHERE id > $1 ORDER BY id LIMIT $2",
            crate::params![applied, MAX_APPLY as i64],
        )
        .await?;
    let mut new_here = HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let device = r.text("device_id");
        if new_here.contains(&device) {
            break;
        }
        if r.bool("new_device") {
            new_here.insert(device);
        }
        let body = r.text("body");
        out.push(Journaled {
            id: r.i64("id"),
            hit: serde_json::from_str(&body).map_err(|e| e.to_string()),
            body,
        });
    }
    Ok(out)
}

/// Applies a batch in one transaction; when that fails, hit by hit, so one bad hit
/// cannot hold up the others. A hit that still fails on its own after a few tries is set
/// aside in the journal's `failed` table (kept, never dropped). Setting aside writes to the
/// main database too, so while that database is unavailable nothing moves on.
async fn apply(state: &AppState, journal: &Store, journal_id: &str, batch: Vec<Journaled>) {
    let Some(through) = batch.last().map(|j| j.id) else {
        return;
    };
    if batch.iter().all(|j| j.hit.is_ok()) {
        let hits: Vec<Hit> = batch
            .iter()
            .filter_map(|j| j.hit.as_ref().ok().cloned())
            .collect();
        let started = std::time::Instant::now();
        match record_batch(state, &hits, (journal_id, through)).await {
            Ok(results) => {
                tracing::debug!(
                    hits = hits.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "tracking: hits applied"
                );
                return applied(state, &batch, results.into_iter().map(Ok).collect());
            }
            Err(e) => {
                tracing::warn!(error = %e, hits = batch.len(), "tracking: batch failed; applying hits one by one");
            }
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    'hits: for j in &batch {
        let mut tries = 0;
        let error = loop {
            let outcome = match &j.hit {
                Ok(hit) => record_batch(state, std::slice::from_ref(hit), (journal_id, j.id))
                    .await
                    .map(|mut v| v.remove(0))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("unreadable journal entry: {e}")),
            };
            match outcome {
                Ok(t) => {
                    results.push(Ok(t));
                    continue 'hits;
                }
                Err(e) if j.hit.is_ok() && tries < 3 => {
                    tries += 1;
                    tracing::warn!(error = %e, journal_id = j.id, "tracking: hit not applied; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => break e,
            }
        };
        if let Err(e) = set_aside(state, journal, journal_id, j, &error).await {
            tracing::error!(error = %e, "tracking: cannot set a failed hit aside; trying again later");
            tokio::time::sleep(Duration::from_secs(1)).await;
            break;
        }
        tracing::error!(error = %error, journal_id = j.id, "tracking: hit set aside in the journal's failed table");
        results.push(Err(AppError::Internal(anyhow::anyhow!(error))));
    }
    let done = &batch[..results.len()];
    applied(state, done, results);
}

async fn set_aside(
    state: &AppState,
    journal: &Store,
    journal_id: &str,
    j: &Journaled,
    error: &str,
) -> anyhow::Result<()> {
    journal
        .write_conn()
        .await?
        .execute(
            "INSERT OR REPLACE INTO failed (id, body, error, failed_at) VALUES ($1, $2, $3, $4)",
            crate::params![j.id, j.body.as_str(), error, crate::time::now_ms()],
        )
        .await?;
    let mut tx = state.store.begin().await?;
    store::tracking::set_journal_mark(&mut tx, journal_id, j.id).await?;
    tx.commit().await?;
    Ok(())
}

/// After a commit: the mark moves, waiters hear back.
fn applied(state: &AppState, done: &[Journaled], results: Vec<AppResult<Tracked>>) {
    let Some(through) = done.last().map(|j| j.id) else {
        return;
    };
    let shared = &state.tracker.shared;
    {
        let mut waiters = shared.waiters.lock().expect("lock");
        for (j, r) in done.iter().zip(results) {
            if let Some(w) = waiters.remove(&j.id) {
                let _ = w.send(r);
            }
        }
    }
    shared.applied.send_replace(through);
}

#[cfg(test)]
mod tests {
    use super::claim_journal;

    #[test]
    fn each_process_claims_a_journal_of_its_own() {
        let dir = std::env::temp_dir().join(format!("magpie-journal-claim-{}", std::process::id()));
        let (first, lock) = claim_journal(&dir).unwrap();
        let (second, _second_lock) = claim_journal(&dir).unwrap();
        assert!(first.ends_with("tracking-journal.db"));
        assert!(second.ends_with("tracking-journal-1.db"));
        drop(lock);
        let (again, _) = claim_journal(&dir).unwrap();
        assert_eq!(again, first, "a released journal is taken again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
