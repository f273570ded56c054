//! Group commit of sends into one room (PostgreSQL).
//!
//! A send holds its room's row lock from the seq bump to its commit, so concurrent senders
//! into one room take turns, each paying a commit and waking the next waiter: eight senders
//! queue behind up to seven commits. Here the sends into a room that arrive while one of this
//! instance's is in flight wait together, and the next turn runs them all as one transaction:
//! the same statement for each, in arrival order, one commit. A lone send runs alone in its
//! own request, as before: no wait, no hand-over between tasks.
//!
//! A statement the database refuses in a batch (a retried `clientId`, say) rolls back the
//! whole batch; then each of its sends runs again alone, so every one gets its own answer and
//! nothing is stored twice. A batch that fails otherwise (no connection, a commit whose
//! outcome is unknown) answers each of its sends with the error, as a lone send would have
//! been answered. The turns of queued sends run in a task of their own, so a request that is
//! dropped (its client went away) cannot leave its room's queue stuck.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use sea_orm::{DbErr, FromQueryResult, Statement, TransactionTrait};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::db::Store;
use crate::error::{ApiError, ApiResult, database_error};
use entity::rooms;

/// Most sends one transaction takes: a longer turn would make the first of them wait long.
const MAX_BATCH: usize = 32;

/// The room after its seq bump, or `None` when the statement wrote nothing (a failed check).
pub type Sent = ApiResult<Option<rooms::Model>>;

struct Waiting {
    statement: Statement,
    reply: oneshot::Sender<Sent>,
}

/// The sends waiting for each room whose turns run on this instance; a room is listed from
/// its first send until its runner finds nothing left to do.
#[derive(Clone, Default)]
pub struct GroupCommit {
    queues: Arc<Mutex<HashMap<Uuid, Vec<Waiting>>>>,
}

impl GroupCommit {
    /// Runs the send statement `statement` into `room_id`, with the sends that wait beside it.
    pub async fn send(&self, store: &Store, room_id: Uuid, statement: Statement) -> Sent {
        let (reply, answer) = oneshot::channel();
        let queued = match self.queues.lock().unwrap_or_else(|p| p.into_inner()).entry(room_id) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(Waiting { statement, reply });
                None
            }
            Entry::Vacant(queue) => {
                queue.insert(Vec::new());
                Some(statement)
            }
        };
        let Some(statement) = queued else {
            return answer.await.unwrap_or_else(|_| {
                Err(ApiError::internal(anyhow::anyhow!("a send's turn ended without an answer")))
            });
        };
        // Nobody runs this room's turns: this send runs now, in its own task (no hand-over
        // to wait for), and hands the sends that queued meanwhile to a runner when it ends,
        // or is dropped.
        let _turn = FirstTurn { group: self, store, room_id };
        alone(store, statement).await
    }

    /// Runs turns until the room's queue is empty, then forgets it.
    async fn turns(self, store: Store, room_id: Uuid) {
        let mut runner = Runner { queues: &self.queues, room_id, finished: false };
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = queues.get_mut(&room_id) else {
                    runner.finished = true;
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&room_id);
                    runner.finished = true;
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            run(&store, batch).await;
        }
    }
}

/// The turn a send runs in its own request. When it ends, the sends that queued behind it go
/// to a runner task; a dropped request (its client went away) cannot strand them.
struct FirstTurn<'a> {
    group: &'a GroupCommit,
    store: &'a Store,
    room_id: Uuid,
}

impl Drop for FirstTurn<'_> {
    fn drop(&mut self) {
        let mut queues = self.group.queues.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = queues.get(&self.room_id).is_some_and(|queue| !queue.is_empty());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if waiting => {
                runtime.spawn(self.group.clone().turns(self.store.clone(), self.room_id));
            }
            // Nothing waits, or the runtime is shutting down: the sends waiting get an error.
            _ => {
                queues.remove(&self.room_id);
            }
        }
    }
}

/// Forgets its room if the runner stops before the queue is empty (a panic): the sends
/// waiting there get an error instead of waiting for ever, and the next send starts a runner.
struct Runner<'a> {
    queues: &'a Mutex<HashMap<Uuid, Vec<Waiting>>>,
    room_id: Uuid,
    finished: bool,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.queues.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.room_id);
        }
    }
}

/// How a batch failed.
enum Failed {
    /// The database refused a statement (a retried `clientId`, a deadlock): nothing was
    /// stored, and each send run alone gets its own answer.
    Refused(DbErr),
    /// No transaction, a broken connection, or a commit whose outcome is unknown: running the
    /// sends again could wait on a database that is down, or store a message twice.
    Broken(DbErr),
}

/// One turn: a lone send as its own statement, several in one transaction. A send whose
/// request is gone is dropped unsent, as it would have been before reaching the database:
/// stored now, it would never be announced.
async fn run(store: &Store, mut batch: Vec<Waiting>) {
    batch.retain(|waiting| !waiting.reply.is_closed());
    if batch.len() > 1 {
        let statements: Vec<&Statement> = batch.iter().map(|w| &w.statement).collect();
        match in_one_transaction(store, &statements).await {
            Ok(rooms) => {
                metrics::counter!("parley_sends_grouped_total").increment(batch.len() as u64);
                for (waiting, room) in batch.into_iter().zip(rooms) {
                    let _ = waiting.reply.send(Ok(room));
                }
                return;
            }
            Err(Failed::Refused(err)) => tracing::debug!(%err, "a grouped send was refused; each runs alone"),
            Err(Failed::Broken(err)) => {
                tracing::warn!(%err, "a group commit failed");
                for waiting in batch {
                    let _ =
                        waiting.reply.send(Err(ApiError::internal(anyhow::anyhow!("group commit: {err}"))));
                }
                return;
            }
        }
    }
    for waiting in batch {
        if !waiting.reply.is_closed() {
            let room = alone(store, waiting.statement).await;
            let _ = waiting.reply.send(room);
        }
    }
}

async fn alone(store: &Store, statement: Statement) -> Sent {
    Ok(rooms::Model::find_by_statement(statement).one(&store.db).await?)
}

async fn in_one_transaction(
    store: &Store,
    statements: &[&Statement],
) -> Result<Vec<Option<rooms::Model>>, Failed> {
    let txn = store.db.begin().await.map_err(Failed::Broken)?;
    let mut rooms = Vec::with_capacity(statements.len());
    for statement in statements {
        match rooms::Model::find_by_statement(Statement::clone(statement)).one(&txn).await {
            Ok(room) => rooms.push(room),
            Err(err) if database_error(&err).is_some() => return Err(Failed::Refused(err)),
            Err(err) => return Err(Failed::Broken(err)),
        }
    }
    txn.commit().await.map_err(Failed::Broken)?;
    Ok(rooms)
}
