//! The tracking journal: a hit is answered once it is durable in a journal of its own, and
//! applied to the contacts database moments later, many hits per transaction.
//!
//! Why: applying a hit (contact, device, page hit, "date left", last active, IP) is a dozen
//! row writes in the main database, whose one SQLite writer would make every visitor wait
//! for everyone else's. Appending a hit to the journal's files (`hitlog.rs`, in
//! `tracking-journal/` in the data dir) is one short record, made durable together with
//! every other hit waiting at that moment (group commit: one write and one `fdatasync`).
//! The applier reads journaled hits in order,
//! applies up to `MAX_APPLY` of them in one transaction of the main database and records
//! how far it got in that same transaction (`tracking_journal_marks`), so a crash anywhere
//! applies every journaled hit exactly once.
//!
//! What a caller sees: the pixel is answered as soon as its hit is journaled; so is
//! `/mtc/event` for a recorded device whose hit names no one (it answers with the device's
//! contact); any other `/mtc/event` hit waits until it is applied, because its answer names
//! a contact the hit may create or switch to (`Tracker::track`). Device ids are
//! signed (`token::issue_device_id`), so a visitor's next hit proves its id without a
//! lookup, even before the first hit is applied; only other ids are looked up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::hitlog::{self, Appender, Reader, Record};
use super::pace::Pace;
use super::{Hit, ParsedHit, Tracked, random_id, record_batch, token};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, Exec, Store};

/// Largest number of hits one journal commit takes.
const MAX_ACCEPT: usize = 1000;
/// Largest number of hits one applying transaction takes.
const MAX_APPLY: usize = 2000;
/// How long a paced applier waits before it looks again (`pace.rs`).
const PACE_STEP: Duration = Duration::from_millis(100);
/// Segments whose hits are all applied are deleted after about this many more hits.
const PRUNE_EVERY: i64 = 20_000;

/// The first journal of the data dir no other process holds: `tracking-journal/`, then
/// `tracking-journal-1/` … (each claimed through a lock file beside it). Processes sharing
/// a data dir (PostgreSQL) each hold one; a journal left by a process that died is applied
/// by the next one to take it.
fn claim_journal(dir: &Path) -> anyhow::Result<(String, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    for n in 0..1000 {
        let name = match n {
            0 => "tracking-journal".to_owned(),
            n => format!("tracking-journal-{n}"),
        };
        if let Some(lock) = try_lock(&dir.join(format!("{name}.lock")))? {
            return Ok((name, lock));
        }
    }
    anyhow::bail!("no free tracking journal in {}", dir.display())
}

/// The lock file at `path`, locked by this process; `None` while another process holds it.
fn try_lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

struct Submit {
    hit: Hit,
    wait: bool,
    /// The hit's record, made by the caller when its device is decided without the
    /// database (no id: a new device; an id we signed: known), so the one task that
    /// journals does not serialize every hit in turn.
    ready: Option<Ready>,
    reply: oneshot::Sender<AppResult<Accepted>>,
}

/// A hit's journal record but for its id.
struct Ready {
    new_device: bool,
    body: String,
}

impl Ready {
    /// Gives the hit a new device id unless its own is `known`, and serializes it.
    fn record(hit: &mut Hit, known: bool, secret: &[u8]) -> serde_json::Result<Ready> {
        if !known {
            hit.device_id = Some(token::issue_device_id(secret));
        }
        Ok(Ready {
            new_device: !known,
            body: serde_json::to_string(hit)?,
        })
    }
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
    /// A commit happened (or accepting stopped).
    wake: Notify,
    /// Someone started waiting for applied hits: a paced applier must not wait.
    urgent: Notify,
    /// `settled` callers waiting.
    settling: AtomicUsize,
    /// The key that signs device ids (set by `Tracker::start`).
    secret: std::sync::OnceLock<Vec<u8>>,
    accepting_done: AtomicBool,
}

impl Shared {
    /// Whether anyone waits for hits to be applied (or the server is stopping).
    fn urgent(&self) -> bool {
        self.accepting_done.load(Ordering::Acquire)
            || self.settling.load(Ordering::Acquire) > 0
            || !self.waiters.lock().expect("lock").is_empty()
    }
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
                urgent: Notify::new(),
                settling: AtomicUsize::new(0),
                secret: std::sync::OnceLock::new(),
                accepting_done: AtomicBool::new(false),
            }),
        }
    }
}

fn stopped() -> AppError {
    AppError::Internal(anyhow::anyhow!("the tracking journal has stopped"))
}

impl Tracker {
    async fn submit(&self, mut hit: Hit, wait: bool) -> AppResult<Accepted> {
        // Decided here when no database is needed: no id is a new device, an id we
        // signed is known. Other ids are left to the journaling task's lookup.
        let ready = match self.shared.secret.get() {
            Some(secret) => {
                let known = match &hit.device_id {
                    None => Some(false),
                    Some(d) if token::is_issued_device_id(secret, d) => Some(true),
                    Some(_) => None,
                };
                known
                    .map(|known| Ready::record(&mut hit, known, secret))
                    .transpose()
                    .map_err(|e| AppError::Internal(e.into()))?
            }
            None => None,
        };
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Submit {
                hit,
                wait,
                ready,
                reply,
            })
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
        let shared = &self.shared;
        let target = shared.committed.load(Ordering::Acquire);
        // However the wait ends: a count left behind would keep the applier from pacing.
        let _waiting = crate::waiting::Waiting::new(&shared.settling);
        shared.urgent.notify_one();
        let mut applied = shared.applied.subscribe();
        let _ = applied.wait_for(|a| *a >= target).await;
    }

    /// Waits, at most `bound`, until every hit answered so far is applied, so that an API
    /// call sees (and follows) the hits answered before it, as with Mautic, which applies
    /// a hit before answering it. Free when the applier has caught up. During a burst,
    /// when more than one batch is waiting and the applier steps aside by design, it does
    /// not wait: every call would otherwise take the whole bound.
    pub async fn caught_up(&self, bound: Duration) {
        let shared = &self.shared;
        let waiting = shared.committed.load(Ordering::Acquire) - *shared.applied.borrow();
        if waiting <= 0 || waiting > MAX_APPLY as i64 {
            return;
        }
        let _ = tokio::time::timeout(bound, self.settled()).await;
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
        let data_dir = state.config.data_dir.clone();
        let (name, lock) = claim_journal(&data_dir)?;
        let dir = data_dir.join(&name);
        let (_, journal_id) = blocking(dir.clone(), |d| hitlog::journal_id(d, random_id)).await;
        let journal_id = journal_id?;
        drain_legacy(&state, &data_dir.join(format!("{name}.db")), &dir).await?;
        let mark =
            store::tracking::journal_mark(&mut state.store.read().await?, &journal_id).await?;
        let (_, opened) = blocking(dir.clone(), move |d| hitlog::open(d, mark)).await;
        let opened = opened?;
        if opened.last_id > mark {
            tracing::info!(
                hits = opened.last_id - mark,
                "tracking: applying hits journaled before the restart"
            );
        }
        let shared = state.tracker.shared.clone();
        let _ = shared.secret.set(state.tracking_secret.clone());
        shared.committed.store(opened.last_id, Ordering::Release);
        shared.applied.send_replace(mark);

        Ok(vec![
            spawn_on_own_thread(
                "tracking-journal",
                false,
                accept_loop(state.clone(), opened.appender, receiver, stop),
            )?,
            spawn_on_own_thread(
                "tracking-apply",
                true,
                apply_loop(
                    state.clone(),
                    Reader::new(&dir, mark),
                    dir,
                    journal_id,
                    lock,
                ),
            )?,
        ])
    }
}

/// Runs a loop of the journal on a thread of its own (its future still on the server's
/// runtime, through its handle, so connections and timers are the runtime's):
/// - the journaling loop, so its `fdatasync` blocks that thread alone and each commit
///   needs no hand-off to a blocking-pool thread and back;
/// - the applier, at a lower OS priority (`lower_priority`): applying is batch work that
///   may fall behind for a while (its hits are durable in the journal), while visitors
///   wait for their answers.
fn spawn_on_own_thread(
    name: &str,
    lower_priority: bool,
    work: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::current();
    let (done, finished) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if lower_priority {
                lower_thread_priority();
            }
            runtime.block_on(work);
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}

/// Nice 10 for the calling thread (on Linux the nice value is per thread). Elsewhere, or
/// when refused, the thread keeps the normal priority.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Takes every hit waiting, journals them in one commit, answers them. It runs on a
/// thread of its own (`spawn_on_own_thread`): appending blocks that thread.
async fn accept_loop(
    state: Arc<AppState>,
    mut appender: Appender,
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
        journal_batch(&state, &mut appender, batch).await;
    }
    // Shutting down: what is queued is still journaled (and then applied).
    receiver.close();
    let mut rest = Vec::new();
    while let Ok(job) = receiver.try_recv() {
        rest.push(job);
    }
    while !rest.is_empty() {
        let batch: Vec<Submit> = rest.drain(..rest.len().min(MAX_ACCEPT)).collect();
        journal_batch(&state, &mut appender, batch).await;
    }
    shared.accepting_done.store(true, Ordering::Release);
    shared.wake.notify_one();
}

/// Runs blocking file work off the async workers, handing `owner` there and back.
async fn blocking<T: Send + 'static, R: Send + 'static>(
    owner: T,
    work: impl FnOnce(&mut T) -> R + Send + 'static,
) -> (T, R) {
    tokio::task::spawn_blocking(move || {
        let mut owner = owner;
        let r = work(&mut owner);
        (owner, r)
    })
    .await
    .expect("tracking journal file work panicked")
}

async fn journal_batch(state: &AppState, appender: &mut Appender, mut batch: Vec<Submit>) {
    let shared = &state.tracker.shared;
    // A device id the visitor sends is theirs when we signed it, or when the database
    // knows it (ids from before signing); any other id is forged or forgotten, and the
    // visitor gets a new one.
    let secret = &state.tracking_secret;
    let mut real: HashSet<String> = HashSet::new();
    let mut unsure: Vec<String> = Vec::new();
    let undecided = batch.iter().filter(|s| s.ready.is_none());
    for d in undecided.filter_map(|s| s.hit.device_id.as_ref()) {
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
    let mut records = Vec::with_capacity(batch.len());
    let mut receivers = Vec::with_capacity(batch.len());
    for (i, s) in batch.iter_mut().enumerate() {
        let ready = match s.ready.take() {
            Some(ready) => ready,
            None => {
                let known = s.hit.device_id.as_ref().is_some_and(|d| real.contains(d));
                match Ready::record(&mut s.hit, known, secret) {
                    Ok(ready) => ready,
                    Err(e) => return fail_all(batch, &AppError::Internal(e.into())),
                }
            }
        };
        records.push(Record {
            id: first_id + i as i64,
            new_device: ready.new_device,
            device_id: s.hit.device_id.clone().unwrap_or_default(),
            body: ready.body,
        });
        receivers.push(None);
    }
    // Known before the commit, so an applier never sees a hit nobody waits for.
    {
        let mut waiters = shared.waiters.lock().expect("lock");
        for (i, s) in batch.iter().enumerate() {
            if s.wait {
                let (tx, rx) = oneshot::channel();
                waiters.insert(records[i].id, tx);
                receivers[i] = Some(rx);
            }
        }
    }
    let started = std::time::Instant::now();
    if let Err(e) = appender.append(&records) {
        {
            let mut waiters = shared.waiters.lock().expect("lock");
            for r in &records {
                waiters.remove(&r.id);
            }
        }
        tracing::error!(error = %e, hits = batch.len(), "tracking: hits could not be journaled");
        return fail_all(batch, &AppError::Internal(e.into()));
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
    if batch.iter().any(|s| s.wait) {
        shared.urgent.notify_one();
    }
    for ((s, r), applied) in batch.into_iter().zip(records).zip(receivers) {
        let _ = s.reply.send(Ok(Accepted {
            device_id: r.device_id,
            applied,
        }));
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
    hit: Result<ParsedHit, String>,
    body: String,
}

/// The hits of `held` for one applying transaction, taken from its front. A batch ends
/// before a second hit of a device handed out within it, so each batch creates a new
/// device once.
fn take_batch(state: &AppState, held: &mut Vec<Record>) -> Vec<Journaled> {
    let mut new_here = HashSet::new();
    let mut cut = held.len();
    for (i, r) in held.iter().enumerate() {
        if new_here.contains(r.device_id.as_str()) {
            cut = i;
            break;
        }
        if r.new_device {
            new_here.insert(r.device_id.as_str());
        }
    }
    held.drain(..cut)
        .map(|r| Journaled {
            id: r.id,
            hit: Hit::read(&r.body, &state.config.file.tracking, &state.tracking_secret),
            body: r.body,
        })
        .collect()
}

/// Applies journaled hits in order until accepting has stopped and nothing is left.
/// `_lock` keeps this process's claim on the journal until the last hit is applied. It
/// runs on the applier's own thread (`spawn_on_own_thread`), so reading the journal's files
/// blocks that thread, not the runtime's workers.
async fn apply_loop(
    state: Arc<AppState>,
    mut reader: Reader,
    dir: PathBuf,
    journal_id: String,
    _lock: std::fs::File,
) {
    let shared = state.tracker.shared.clone();
    let mut held: Vec<Record> = Vec::new();
    let mut pruned_through = *shared.applied.borrow();
    let mut pace = Pace::new(Duration::from_secs(
        state.config.file.tracking.apply_lag_seconds,
    ));
    loop {
        let applied = *shared.applied.borrow();
        let committed = shared.committed.load(Ordering::Acquire);
        let now = std::time::Instant::now();
        pace.observe(now, committed, applied);
        if committed > applied && pace.should_wait(now, shared.urgent()) {
            tokio::select! {
                _ = shared.urgent.notified() => {}
                _ = tokio::time::sleep(PACE_STEP) => {}
            }
            continue;
        }
        if committed <= applied {
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
        if held.len() < MAX_APPLY {
            match reader.read(committed, MAX_APPLY - held.len()) {
                Ok(more) => held.extend(more),
                Err(e) => {
                    tracing::error!(error = %e, "tracking: cannot read the journal");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let batch = take_batch(&state, &mut held);
        let (hits, started) = (batch.len(), std::time::Instant::now());
        apply(&state, &dir, &journal_id, batch).await;
        pace.applied(hits, started.elapsed());
        let applied = *shared.applied.borrow();
        if applied - pruned_through >= PRUNE_EVERY {
            match hitlog::prune(&dir, applied) {
                Ok(()) => pruned_through = applied,
                Err(e) => {
                    tracing::warn!(error = %e, "tracking: cannot delete applied journal segments")
                }
            }
        }
    }
}

/// Hits an earlier version journaled in SQLite (`tracking-journal.db`) and left unapplied
/// are applied first, exactly once (the old journal's mark moves with them); then the old
/// file goes.
async fn drain_legacy(state: &AppState, path: &Path, dir: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    // A process of the earlier version still running on this data dir holds the old
    // journal's lock and applies its hits itself.
    let Some(_lock) = try_lock(Path::new(&format!("{}.lock", path.display())))? else {
        tracing::info!(journal = %path.display(), "tracking: the old journal is in use; left to its process");
        return Ok(());
    };
    let old = Store::connect(&format!("sqlite://{}", path.display())).await?;
    let old_id = old
        .read()
        .await?
        .fetch_optional("SELECT value FROM meta WHERE key = 'journal_id'", vec![])
        .await?
        .map(|r| r.text("value"));
    if let Some(old_id) = old_id {
        loop {
            let mark =
                store::tracking::journal_mark(&mut state.store.read().await?, &old_id).await?;
            let rows = old
                .read()
                .await?
                .fetch_all(
                    "SELECT id, device_id, new_device, body FROM hits WHERE id > $1 ORDER BY id LIMIT $2",
                    crate::params![mark, MAX_APPLY as i64],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            tracing::info!(
                hits = rows.len(),
                "tracking: applying hits of the old SQLite journal"
            );
            let mut held: Vec<Record> = rows
                .into_iter()
                .map(|r| Record {
                    id: r.i64("id"),
                    new_device: r.bool("new_device"),
                    device_id: r.text("device_id"),
                    body: r.text("body"),
                })
                .collect();
            while !held.is_empty() {
                let batch = take_batch(state, &mut held);
                apply(state, dir, &old_id, batch).await;
            }
        }
    }
    old.close().await;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Applies a batch in one transaction; when that fails, hit by hit, so one bad hit
/// cannot hold up the others. A hit that still fails on its own after a few tries is set
/// aside in the journal's `failed.jsonl` (kept, never dropped). Setting aside writes to the
/// main database too, so while that database is unavailable nothing moves on.
async fn apply(state: &AppState, dir: &Path, journal_id: &str, batch: Vec<Journaled>) {
    let Some(through) = batch.last().map(|j| j.id) else {
        return;
    };
    if batch.iter().all(|j| j.hit.is_ok()) {
        let hits: Vec<&ParsedHit> = batch.iter().filter_map(|j| j.hit.as_ref().ok()).collect();
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
                Ok(hit) => record_batch(state, &[hit], (journal_id, j.id))
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
        if let Err(e) = set_aside(state, dir, journal_id, j, &error).await {
            tracing::error!(error = %e, "tracking: cannot set a failed hit aside; trying again later");
            tokio::time::sleep(Duration::from_secs(1)).await;
            break;
        }
        tracing::error!(error = %error, journal_id = j.id, "tracking: hit set aside in the journal's failed.jsonl");
        results.push(Err(AppError::Internal(anyhow::anyhow!(error))));
    }
    let done = &batch[..results.len()];
    applied(state, done, results);
}

async fn set_aside(
    state: &AppState,
    dir: &Path,
    journal_id: &str,
    j: &Journaled,
    error: &str,
) -> anyhow::Result<()> {
    let entry = serde_json::json!({
        "journal": journal_id,
        "id": j.id,
        "body": j.body,
        "error": error,
        "failed_at": crate::time::now_ms(),
    });
    let (_, kept) = blocking(dir.to_owned(), move |d| hitlog::set_aside(d, &entry)).await;
    kept?;
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
        assert_eq!(first, "tracking-journal");
        assert_eq!(second, "tracking-journal-1");
        drop(lock);
        let (again, _) = claim_journal(&dir).unwrap();
        assert_eq!(again, first, "a released journal is taken again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
