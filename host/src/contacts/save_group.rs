//! Group commit of contact saves on SQLite.
//!
//! At a million contacts a commit costs about as much as the inserts it commits: WAL
//! mode writes every page a transaction dirtied, and the tails of the tables and indexes
//! that every new contact touches (contacts, events, last-active, names …) are the same
//! pages for every request. So saves that arrive while the writer is busy queue here, and
//! one task writes each queue in one transaction: every request's `save_in` in turn, one
//! commit, then each request gets its own answer. Nothing is answered before the commit
//! that holds it.
//!
//! Requests in one transaction see each other as consecutive transactions would: a
//! request's duplicate matching finds the contacts an earlier one created. When one
//! request fails as a whole (a database error, not an item's validation), the
//! transaction is dropped and every request of the group runs again in a transaction of
//! its own, so a failure is reported exactly as without grouping.
//!
//! PostgreSQL is left alone: its connections write concurrently, and several Magpie
//! processes share one database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::input::ContactInput;
use super::service::{SaveContext, Saved, Target, save_alone, save_in};
use crate::error::AppResult;
use crate::store::{Backend, Store};

/// Items written per transaction at most (requests are never split). Large enough to
/// share the commit among several 200-contact API batches, small enough to hold the
/// writer for a fraction of a second.
const GROUP_ITEMS: usize = 1000;

type Answer = AppResult<Vec<AppResult<Saved>>>;

/// A save waiting for its group, and where to answer.
struct Request {
    ctx: SaveContext,
    items: Vec<(Target, ContactInput)>,
    /// A copy of the items, made by the requester (not the writer), for running the
    /// request alone when its group fails.
    spare: Vec<(Target, ContactInput)>,
    answer: oneshot::Sender<Answer>,
}

/// The queue of one server (its task starts with the first save).
#[derive(Default)]
pub struct SaveGroups {
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Groups that failed and were saved one request at a time.
    fallbacks: AtomicU64,
}

impl SaveGroups {
    /// Saves through the group on SQLite, directly on PostgreSQL.
    pub async fn save(
        &self,
        store: &Store,
        ctx: &SaveContext,
        items: Vec<(Target, ContactInput)>,
    ) -> Answer {
        if store.backend() != Backend::Sqlite {
            return save_alone(store, ctx, items).await;
        }
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(store.clone(), rx, self.counts.clone()));
            tx
        });
        let (answer, answered) = oneshot::channel();
        let request = Request {
            ctx: ctx.clone(),
            spare: items.clone(),
            items,
            answer,
        };
        if let Err(mpsc::error::SendError(mut request)) = queue.send(request) {
            // The task is gone (the runtime that started it ended): write directly.
            let items = std::mem::take(&mut request.items);
            return save_alone(store, &request.ctx, items).await;
        }
        answered
            .await
            .map_err(|_| anyhow::anyhow!("the contact writer stopped before answering"))?
    }
}

/// The writer task: takes what has queued, up to `GROUP_ITEMS`, and writes it.
async fn run(store: Store, mut queue: mpsc::UnboundedReceiver<Request>, counts: Arc<Counts>) {
    while let Some(first) = queue.recv().await {
        let mut size = first.items.len();
        let mut group = vec![first];
        while size < GROUP_ITEMS {
            match queue.try_recv() {
                Ok(r) => {
                    size += r.items.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        write(&store, group, &counts).await;
    }
}

async fn write(store: &Store, mut group: Vec<Request>, counts: &Counts) {
    if group.len() == 1 {
        let mut r = group.pop().expect("one request");
        let items = std::mem::take(&mut r.items);
        let answer = save_alone(store, &r.ctx, items).await;
        let _ = r.answer.send(answer);
        return;
    }
    match together(store, &mut group).await {
        Ok(answers) => {
            for (r, a) in group.into_iter().zip(answers) {
                let _ = r.answer.send(Ok(a));
            }
        }
        Err(e) => {
            counts.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, requests = group.len(), "group save failed; saving its requests one by one");
            for mut r in group {
                let items = std::mem::take(&mut r.spare);
                let answer = save_alone(store, &r.ctx, items).await;
                let _ = r.answer.send(answer);
            }
        }
    }
}

/// Every request of the group in one transaction; on failure nothing is written.
async fn together(
    store: &Store,
    group: &mut [Request],
) -> anyhow::Result<Vec<Vec<AppResult<Saved>>>> {
    let mut tx = store.begin().await?;
    let mut answers = Vec::with_capacity(group.len());
    for r in group.iter_mut() {
        let items = std::mem::take(&mut r.items);
        answers.push(save_in(&mut tx, &r.ctx, items).await?);
    }
    tx.commit().await?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UniqueIdentifierOperator;
    use crate::contacts::fields::FieldSet;
    use crate::contacts::service::Source;
    use serde_json::json;

    fn request(
        fields: &Arc<FieldSet>,
        body: serde_json::Value,
    ) -> (Request, oneshot::Receiver<Answer>) {
        let items = vec![(
            Target::Upsert,
            ContactInput::from_json(&body, fields).expect("valid input"),
        )];
        let (answer, answered) = oneshot::channel();
        let r = Request {
            ctx: SaveContext {
                fields: fields.clone(),
                operator: UniqueIdentifierOperator::And,
                actor: None,
                source: Source::Api,
                now: 1_700_000_000_000,
            },
            spare: items.clone(),
            items,
            answer,
        };
        (r, answered)
    }

    async fn saved(answered: oneshot::Receiver<Answer>) -> AppResult<Saved> {
        answered.await.expect("answered")?.remove(0)
    }

    /// A group is one transaction whose requests see each other; a request that fails
    /// as a whole (here: validated against a field whose column was dropped since) fails
    /// alone, and the others are written.
    #[tokio::test]
    async fn groups_write_together_and_a_failure_stays_with_its_request() {
        let dir = std::env::temp_dir().join(format!("magpie-save-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}/magpie.db", dir.display()))
            .await
            .unwrap();
        crate::store::migrate::run(&store).await.unwrap();
        let fields = Arc::new(FieldSet::defaults_for_tests());
        let mut with_ghost: Vec<_> = fields.iter().cloned().collect();
        let mut ghost = with_ghost[0].clone();
        ghost.id = 999;
        ghost.alias = "ghost".into();
        ghost.field_type = crate::contacts::fields::FieldType::Text;
        with_ghost.push(ghost);
        let with_ghost = Arc::new(FieldSet::new(with_ghost));
        let counts = Counts::default();

        let (a, a_answer) = request(&fields, json!({"email": "ada@example.org"}));
        let (b, b_answer) = request(
            &fields,
            json!({"email": "ADA@example.org", "lastname": "Lovelace"}),
        );
        write(&store, vec![a, b], &counts).await;
        let (a, b) = (
            saved(a_answer).await.unwrap(),
            saved(b_answer).await.unwrap(),
        );
        assert!(a.created);
        assert_eq!(
            b,
            Saved {
                id: a.id,
                created: false,
                skipped: false,
            },
            "the second request finds the first's contact"
        );
        assert_eq!(counts.fallbacks.load(Ordering::Relaxed), 0);

        let (c, c_answer) = request(&fields, json!({"email": "grace@example.org"}));
        let (ghostly, ghostly_answer) = request(
            &with_ghost,
            json!({"email": "alan@example.org", "ghost": "boo"}),
        );
        let (d, d_answer) = request(&fields, json!({"email": "alan@example.org"}));
        write(&store, vec![c, ghostly, d], &counts).await;
        assert_eq!(counts.fallbacks.load(Ordering::Relaxed), 1);
        assert!(saved(c_answer).await.unwrap().created);
        assert!(
            ghostly_answer.await.unwrap().is_err(),
            "the request with a dropped field fails as a whole"
        );
        let d = saved(d_answer).await.unwrap();
        assert!(d.created, "the ghost's contact was not written");
        let mut db = store.read().await.unwrap();
        let n = crate::store::Exec::fetch_i64(&mut db, "SELECT count(*) FROM contacts", vec![])
            .await
            .unwrap();
        assert_eq!(n, Some(3), "ada, grace, alan");
        drop(db);
        std::fs::remove_dir_all(&dir).ok();
    }
}
