//! Durable background jobs: imports and exports today, batch work later.
//!
//! A job is a row of `jobs` (see `store::jobs`) plus a detail row of its kind that holds
//! its checkpoint. Workers (`[jobs] workers` per process) claim jobs with a lease that a
//! heartbeat renews; a job whose process died is claimed again once its lease expired
//! (at once on SQLite, which one process owns). A worker commits each piece of work
//! together with its checkpoint and a lease check (`JobCtx::checkpoint`), so a crash
//! between two commits loses nothing and repeats nothing, and a worker that lost its
//! lease can no longer write.
//!
//! Stop and resume go through the database (`stop_requested`, `paused`), so they work
//! from any process. On shutdown a worker finishes the piece in hand, commits it, and
//! puts its job back in the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::state::SharedState;
use crate::store::jobs::{self as store_jobs, JobRow, JobState};
use crate::store::{Backend, Exec, Tx};
use crate::time::now_ms;

/// Job kinds.
pub const IMPORT: &str = "import";
pub const EXPORT: &str = "export";

/// Claims in a row that end with the process dying, before a job is failed.
const MAX_ATTEMPTS: i64 = 5;
/// How often an idle worker looks for work it was not woken for (other processes,
/// expired leases, retries).
const POLL: Duration = Duration::from_millis(500);

/// The per-process part of the job system, held in `AppState`: who this process is (the
/// lease owner), a bell for new work, and the shutdown flag. Safe to lose.
pub struct Jobs {
    pub owner: String,
    wake: Notify,
    stopping: watch::Sender<bool>,
    /// `http://<address the server listens on>`, for links when `[export] public_url`
    /// is not set.
    listen_url: std::sync::OnceLock<String>,
}

impl Default for Jobs {
    fn default() -> Self {
        let owner = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Jobs {
            owner,
            wake: Notify::new(),
            stopping: watch::channel(false).0,
            listen_url: std::sync::OnceLock::new(),
        }
    }
}

impl Jobs {
    /// Tells idle workers of this process that a job was queued.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
    /// Records the address the server listens on (set once by `server::start`).
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.listen_url.set(format!("http://{addr}"));
    }
    /// The base of links in emails: `[export] public_url`, else the listening address.
    pub fn public_url(&self, config: &crate::config::Config) -> String {
        config
            .file
            .export
            .public_url
            .clone()
            .or_else(|| self.listen_url.get().cloned())
            .unwrap_or_else(|| format!("http://{}", config.listen))
    }
}

/// What a job handler reports when it returns.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Stopped on request at a checkpoint; resumable.
    Paused,
    /// Stopped at a checkpoint because the server shuts down; queued again.
    Interrupted,
    /// Another process took the job over; this one wrote nothing after losing it.
    LeaseLost,
    /// Cannot succeed as it is (bad input, missing file): failed with this message.
    Failed(String),
}

/// What `JobCtx::checkpoint` says to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// A stop was requested: commit this piece, then return `Outcome::Paused`.
    Stop,
    /// The lease is gone: roll back and return `Outcome::LeaseLost`.
    LeaseLost,
}

/// A running job as its handler sees it.
pub struct JobCtx {
    pub job: JobRow,
    pub owner: String,
    pub lease_ms: i64,
    stopping: watch::Receiver<bool>,
    lost: Arc<AtomicBool>,
}

impl JobCtx {
    /// The server is shutting down: stop at the next checkpoint.
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }
    /// The heartbeat found the lease taken over.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
    /// Inside the transaction that commits a piece of work: renews the lease (only if it
    /// is still ours, which also locks the job row on PostgreSQL until commit) and reads
    /// whether a stop was requested. Call it first in the transaction.
    pub async fn checkpoint(&self, tx: &mut Tx) -> crate::store::DbResult<Control> {
        match store_jobs::renew(tx, self.job.id, &self.owner, now_ms(), self.lease_ms, true).await?
        {
            None => Ok(Control::LeaseLost),
            Some(true) => Ok(Control::Stop),
            Some(false) => Ok(Control::Continue),
        }
    }
}

/// Queues a job (inside the caller's transaction, with its detail row); call
/// `Jobs::wake` after the commit.
pub async fn enqueue(
    tx: &mut Tx,
    kind: &str,
    created_by: Option<i64>,
) -> crate::store::DbResult<i64> {
    store_jobs::enqueue(tx, kind, created_by, now_ms()).await
}

/// The workers of this process.
pub struct Runner {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Starts `[jobs] workers` workers and the janitor.
    pub async fn start(state: SharedState) -> anyhow::Result<Runner> {
        if state.store.backend() == Backend::Sqlite {
            // One process owns a SQLite file: jobs still marked running were left by a
            // process that died. Take them back now rather than after the lease.
            let mut tx = state.store.begin().await?;
            let n = store_jobs::requeue_orphans(&mut tx, now_ms()).await?;
            tx.commit().await?;
            if n > 0 {
                tracing::info!(jobs = n, "resuming jobs interrupted by the previous stop");
            }
        }
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        for n in 0..state.config.file.jobs.workers {
            tasks.push(tokio::spawn(worker(state.clone(), stop.subscribe(), n)));
        }
        tasks.push(tokio::spawn(janitor(state.clone(), stop.subscribe())));
        Ok(Runner { stop, tasks })
    }

    /// Asks every worker to stop at its next checkpoint and waits for them: work in hand
    /// is committed and its job queued again.
    pub async fn shutdown(self, state: &SharedState) {
        let _ = state.jobs.stopping.send(true);
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn worker(state: SharedState, mut stop: watch::Receiver<bool>, n: usize) {
    loop {
        if *stop.borrow() {
            break;
        }
        // Listen before looking, so a wake between the two is not missed.
        let notified = state.jobs.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match claim(&state).await {
            Ok(Some(job)) => run(&state, job, n).await,
            Ok(None) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "job runner: cannot claim work");
                tokio::select! {
                    _ = tokio::time::sleep(POLL * 4) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

async fn claim(state: &SharedState) -> anyhow::Result<Option<JobRow>> {
    let mut tx = state.store.begin().await?;
    let job = store_jobs::claim(
        &mut tx,
        &state.jobs.owner,
        now_ms(),
        lease_ms(state),
        MAX_ATTEMPTS,
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

fn lease_ms(state: &SharedState) -> i64 {
    (state.config.file.jobs.lease_seconds * 1000) as i64
}

async fn run(state: &SharedState, job: JobRow, worker: usize) {
    let owner = state.jobs.owner.clone();
    let id = job.id;
    let kind = job.kind.clone();
    let attempts = job.attempts;
    if job.stop_requested {
        // Asked to stop while its previous owner was gone: it stops here.
        release(state, id, JobState::Paused, None, 0).await;
        return;
    }
    tracing::info!(job = id, kind = %kind, worker, attempt = attempts, "job started");
    let lost = Arc::new(AtomicBool::new(false));
    let ctx = JobCtx {
        job,
        owner: owner.clone(),
        lease_ms: lease_ms(state),
        stopping: state.jobs.stopping.subscribe(),
        lost: lost.clone(),
    };
    let heartbeat = tokio::spawn(heartbeat(state.clone(), id, owner, ctx.lease_ms, lost));
    let handler = {
        let state = state.clone();
        tokio::spawn(async move { dispatch(&state, &ctx).await })
    };
    let result = handler.await;
    heartbeat.abort();
    let now = now_ms();
    match result {
        Ok(Ok(Outcome::Done)) => {
            tracing::info!(job = id, kind = %kind, "job done");
            release(state, id, JobState::Done, None, 0).await;
        }
        Ok(Ok(Outcome::Paused)) => {
            tracing::info!(job = id, kind = %kind, "job stopped on request (paused, or queued again if resumed meanwhile)");
            release(state, id, JobState::Paused, None, 0).await;
            // Unless a resume came meanwhile: then it is queued again, for any worker.
            state.jobs.wake();
        }
        Ok(Ok(Outcome::Interrupted)) => {
            tracing::info!(job = id, kind = %kind, "job interrupted by shutdown; it continues from its checkpoint on the next start");
            release(state, id, JobState::Queued, None, 0).await;
        }
        Ok(Ok(Outcome::LeaseLost)) => {
            tracing::warn!(job = id, kind = %kind, "job taken over by another process; this run stopped");
        }
        Ok(Ok(Outcome::Failed(message))) => {
            tracing::warn!(job = id, kind = %kind, error = %message, "job failed");
            failed(state, id, &kind, &message).await;
        }
        Ok(Err(e)) => {
            if attempts < 3 && !state.jobs.is_stopping() {
                let delay = 1000 * (1 << attempts.clamp(0, 6));
                tracing::warn!(job = id, kind = %kind, error = format!("{e:#}"), retry_in_ms = delay, "job error; it will be retried");
                release(
                    state,
                    id,
                    JobState::Queued,
                    Some(&format!("{e:#}")),
                    now + delay,
                )
                .await;
            } else if state.jobs.is_stopping() {
                release(state, id, JobState::Queued, None, 0).await;
            } else {
                tracing::error!(job = id, kind = %kind, error = format!("{e:#}"), "job failed after retries");
                failed(state, id, &kind, &format!("{e:#}")).await;
            }
        }
        Err(join) => {
            let message = if join.is_panic() {
                "internal error (the job panicked; see the server log)"
            } else {
                "the job was cancelled"
            };
            tracing::error!(job = id, kind = %kind, error = %join, "job crashed");
            failed(state, id, &kind, message).await;
        }
    }
}

/// Marks a job failed for good; an export's user is told (they were promised an email),
/// before the job shows as failed, so whoever sees it failed finds the notification.
async fn failed(state: &SharedState, id: i64, kind: &str, message: &str) {
    if kind == EXPORT
        && let Err(e) = crate::exports::notify_failure(state, id, message).await
    {
        tracing::warn!(
            job = id,
            error = format!("{e:#}"),
            "export failure not notified"
        );
    }
    release(state, id, JobState::Failed, Some(message), 0).await;
}

async fn dispatch(state: &SharedState, ctx: &JobCtx) -> anyhow::Result<Outcome> {
    match ctx.job.kind.as_str() {
        IMPORT => crate::imports::run_job(state, ctx).await,
        EXPORT => crate::exports::run_job(state, ctx).await,
        other => Ok(Outcome::Failed(format!("unknown job kind '{other}'"))),
    }
}

async fn release(state: &SharedState, id: i64, to: JobState, error: Option<&str>, run_after: i64) {
    let result = async {
        let mut tx = state.store.begin().await?;
        let ok = store_jobs::release(
            &mut tx,
            id,
            &state.jobs.owner,
            to,
            error,
            run_after,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        anyhow::Ok(ok)
    }
    .await;
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = id, "job lease was lost before its end was recorded"),
        Err(e) => {
            tracing::error!(job = id, error = %e, "cannot record the end of a job; it will be picked up again")
        }
    }
    state.jobs.wake();
}

/// Renews the lease while the handler runs (exports write files for a while between
/// commits); flags the loss of the lease.
async fn heartbeat(
    state: SharedState,
    id: i64,
    owner: String,
    lease_ms: i64,
    lost: Arc<AtomicBool>,
) {
    let every = Duration::from_millis((lease_ms / 3).max(100) as u64);
    loop {
        tokio::time::sleep(every).await;
        let renewed = async {
            let mut conn = state.store.write_conn().await?;
            anyhow::Ok(store_jobs::renew(&mut conn, id, &owner, now_ms(), lease_ms, false).await?)
        }
        .await;
        match renewed {
            Ok(Some(_)) => {}
            Ok(None) => {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(job = id, error = %e, "cannot renew a job lease"),
        }
    }
}

/// Housekeeping: fails jobs that keep dying, deletes export files whose link expired.
async fn janitor(state: SharedState, mut stop: watch::Receiver<bool>) {
    loop {
        let work = async {
            let mut tx = state.store.begin().await?;
            let failed = store_jobs::fail_exhausted(&mut tx, now_ms(), MAX_ATTEMPTS).await?;
            tx.commit().await?;
            if failed > 0 {
                tracing::warn!(
                    jobs = failed,
                    "failed jobs that were interrupted repeatedly"
                );
            }
            crate::exports::delete_expired_files(&state).await?;
            crate::imports::delete_abandoned_uploads(&state).await;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = work {
            tracing::warn!(error = %e, "job janitor");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Rows of `jobs` for these ids (status of imports and exports).
pub async fn states(
    db: &mut impl Exec,
    ids: &[i64],
) -> crate::store::DbResult<std::collections::HashMap<i64, JobRow>> {
    Ok(store_jobs::by_ids(db, ids)
        .await?
        .into_iter()
        .map(|j| (j.id, j))
        .collect())
}
