//! The durable job queue. A job is claimed by one process through a lease (owner and
//! expiry). On PostgreSQL several processes may claim at once: `FOR UPDATE SKIP LOCKED`
//! hands each a different job. On SQLite the single writer serialises claims.
//!
//! Every write a worker makes about its job is fenced by its owner id, so a worker whose
//! lease was taken over (it stalled past the expiry) can no longer commit anything.

use super::db::{Backend, DbResult, Exec, Params, Row};
use crate::params;

/// What a job is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Paused,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => JobState::Queued,
        }
    }
}

#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub state: JobState,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub stop_requested: bool,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, kind, state, created_by, created_at, updated_at, lease_owner, lease_until, attempts, stop_requested, error";

fn from_row(r: &Row) -> JobRow {
    JobRow {
        id: r.i64("id"),
        kind: r.text("kind"),
        state: JobState::parse(&r.text("state")),
        created_by: r.opt_i64("created_by"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
        lease_owner: r.opt_text("lease_owner"),
        lease_until: r.opt_i64("lease_until"),
        attempts: r.i64("attempts"),
        stop_requested: r.bool("stop_requested"),
        error: r.opt_text("error"),
    }
}

/// Adds a queued job; returns its id.
pub async fn enqueue(
    db: &mut impl Exec,
    kind: &str,
    created_by: Option<i64>,
    now: i64,
) -> DbResult<i64> {
    Ok(db
        .fetch_i64(
            "INSERT INTO jobs (kind, state, created_by, created_at, updated_at, run_after) VALUES ($1, 'queued', $2, $3, $3, 0) RETURNING id",
            params![kind, created_by, now],
        )
        .await?
        .unwrap_or_default())
}

/// Removes a job's row unless it is queued or running (of an import deleted while
/// paused or finished); false when it is.
pub async fn delete_idle(db: &mut impl Exec, id: i64) -> DbResult<bool> {
    let deleted = db
        .execute(
            "DELETE FROM jobs WHERE id = $1 AND state NOT IN ('queued', 'running')",
            params![id],
        )
        .await?
        > 0;
    // Not deleted: busy, or already gone (which is as good).
    Ok(deleted || get(db, id).await?.is_none())
}

pub async fn get(db: &mut impl Exec, id: i64) -> DbResult<Option<JobRow>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn by_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<Vec<JobRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id IN ({list})");
        out.extend(db.fetch_all(&sql, p.values).await?.iter().map(from_row));
    }
    Ok(out)
}

/// Claims the oldest runnable job: queued and due, or running with an expired lease
/// (its process died) and fewer than `max_attempts` claims without progress. Run inside
/// a transaction.
pub async fn claim(
    db: &mut impl Exec,
    owner: &str,
    now: i64,
    lease_ms: i64,
    max_attempts: i64,
) -> DbResult<Option<JobRow>> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT id FROM jobs
         WHERE (state = 'queued' AND run_after <= $1) OR (state = 'running' AND lease_until < $1 AND attempts < $2)
         ORDER BY id LIMIT 1{lock}"
    );
    let Some(id) = db.fetch_i64(&sql, params![now, max_attempts]).await? else {
        return Ok(None);
    };
    let row = db
        .fetch_optional(
            &format!(
                "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3
                 WHERE id = $4 RETURNING {COLUMNS}"
            ),
            params![owner, now + lease_ms, now, id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Jobs whose process died too often without making progress: failed, with a reason.
pub async fn fail_exhausted(db: &mut impl Exec, now: i64, max_attempts: i64) -> DbResult<u64> {
    db.execute(
        "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, updated_at = $1,
             error = 'the job was interrupted repeatedly without making progress; resume it to try again'
         WHERE state = 'running' AND lease_until < $1 AND attempts >= $2",
        params![now, max_attempts],
    )
    .await
}

/// SQLite only (one process owns the file): jobs left running by a previous process of
/// this database are orphans; queue them again at once instead of waiting for the lease.
pub async fn requeue_orphans(db: &mut impl Exec, now: i64) -> DbResult<u64> {
    db.execute(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE state = 'running'",
        params![now],
    )
    .await
}

/// Renews the lease of a job this owner runs. `progress` resets the attempt counter.
/// Returns `None` when the lease is no longer ours (taken over or the job was changed),
/// else whether a stop was requested.
pub async fn renew(
    db: &mut impl Exec,
    id: i64,
    owner: &str,
    now: i64,
    lease_ms: i64,
    progress: bool,
) -> DbResult<Option<bool>> {
    let sql = if progress {
        "UPDATE jobs SET lease_until = $1, updated_at = $2, attempts = 0 WHERE id = $3 AND lease_owner = $4 AND state = 'running' RETURNING stop_requested"
    } else {
        "UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND lease_owner = $4 AND state = 'running' RETURNING stop_requested"
    };
    Ok(db
        .fetch_optional(sql, params![now + lease_ms, now, id, owner])
        .await?
        .map(|r| r.bool("stop_requested")))
}

/// Ends this owner's run of a job: `done`, `failed`, `paused`, or `queued` again (shutdown,
/// retry after `run_after`). False when the lease was no longer ours.
pub async fn release(
    db: &mut impl Exec,
    id: i64,
    owner: &str,
    state: JobState,
    error: Option<&str>,
    run_after: i64,
    now: i64,
) -> DbResult<bool> {
    // A pause takes effect only while its stop is still asked for: a resume sent while
    // the job was stopping withdrew it, and the job is queued again instead.
    let (new_state, stop_clear) = if state == JobState::Paused {
        (
            "CASE WHEN stop_requested = 1 THEN $1 ELSE 'queued' END",
            ", stop_requested = 0",
        )
    } else {
        ("$1", "")
    };
    let sql = format!(
        "UPDATE jobs SET state = {new_state}, error = $2, run_after = $3, updated_at = $4, lease_owner = NULL, lease_until = NULL{stop_clear}
         WHERE id = $5 AND lease_owner = $6 AND state = 'running'"
    );
    Ok(db
        .execute(
            &sql,
            params![state.as_str(), error, run_after, now, id, owner],
        )
        .await?
        > 0)
}

/// Asks a job to stop: a queued job pauses at once, a running one at its next
/// checkpoint. Returns the job as it is now.
pub async fn request_stop(db: &mut impl Exec, id: i64, now: i64) -> DbResult<Option<JobRow>> {
    db.execute(
        "UPDATE jobs SET state = 'paused', updated_at = $1 WHERE id = $2 AND state = 'queued'",
        params![now, id],
    )
    .await?;
    db.execute(
        "UPDATE jobs SET stop_requested = 1, updated_at = $1 WHERE id = $2 AND state = 'running'",
        params![now, id],
    )
    .await?;
    get(db, id).await
}

/// Queues a paused or failed job again. Returns the job as it is now.
pub async fn resume(db: &mut impl Exec, id: i64, now: i64) -> DbResult<Option<JobRow>> {
    db.execute(
        "UPDATE jobs SET state = 'queued', stop_requested = 0, attempts = 0, error = NULL, run_after = 0, updated_at = $1
         WHERE id = $2 AND state IN ('paused', 'failed')",
        params![now, id],
    )
    .await?;
    // A stop asked for while it was running, withdrawn before it took effect.
    db.execute(
        "UPDATE jobs SET stop_requested = 0, updated_at = $1 WHERE id = $2 AND state = 'running'",
        params![now, id],
    )
    .await?;
    get(db, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stop, then resume before the job reached its checkpoint: the job's pause at that
    /// checkpoint must not win over the resume.
    #[tokio::test]
    async fn a_resume_sent_while_stopping_keeps_the_job_going() {
        let (_dir, store) = crate::store::scratch_sqlite().await;
        let mut db = store.write_conn().await.unwrap();
        let id = enqueue(&mut db, "import", None, 1).await.unwrap();
        let job = claim(&mut db, "me", 2, 60_000, 5).await.unwrap().unwrap();
        assert_eq!((job.id, job.state), (id, JobState::Running));
        assert!(
            request_stop(&mut db, id, 3)
                .await
                .unwrap()
                .unwrap()
                .stop_requested
        );
        // The worker has seen the stop; the user resumes before it pauses.
        resume(&mut db, id, 4).await.unwrap();
        assert!(
            release(&mut db, id, "me", JobState::Paused, None, 0, 5)
                .await
                .unwrap()
        );
        let job = get(&mut db, id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "queued again, to continue");
        assert!(!job.stop_requested);

        // A stop not withdrawn pauses.
        claim(&mut db, "me", 6, 60_000, 5).await.unwrap().unwrap();
        request_stop(&mut db, id, 7).await.unwrap();
        assert!(
            release(&mut db, id, "me", JobState::Paused, None, 0, 8)
                .await
                .unwrap()
        );
        assert_eq!(
            get(&mut db, id).await.unwrap().unwrap().state,
            JobState::Paused
        );
    }
}
