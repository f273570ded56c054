//! Group commit of sends into one room (PostgreSQL).
//!
//! A send holds its room's row lock from the seq bump to its commit, so concurrent senders
//! into one room take turns, each paying a commit and waking the next waiter: eight senders
//! queue behind up to seven commits. Here the sends into a room that arrive while one of this
//! instance's is in flight wait together, and the next turn runs them all as one transaction:
//! the same statement for each, in arrival order, one commit. A lone send runs alone, as
//! before, with no wait.
//!
//! A statement that fails in a batch (a retried `clientId`, say) rolls back the whole batch;
//! then each of its sends runs again alone, so every one gets its own answer and nothing is
//! stored twice. Turns run in a task of their own: a request that is dropped mid-turn (its
//! client went away) cannot leave its room's queue stuck.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use sea_orm::{FromQueryResult, Statement, TransactionTrait};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::db::Store;
use crate::error::{ApiError, ApiResult};
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
        let waiting = Waiting { statement, reply };
        let first = match self.queues.lock().unwrap_or_else(|p| p.into_inner()).entry(room_id) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(waiting);
                false
            }
            Entry::Vacant(queue) => {
                queue.insert(vec![waiting]);
                true
            }
        };
        if first {
            // Nobody runs this room's turns: start them. Later sends only queue.
            tokio::spawn(self.clone().turns(store.clone(), room_id));
        }
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::internal(anyhow::anyhow!("a send's turn ended without an answer")))
        })
    }

    /// Runs turns until the room's queue is empty, then forgets it.
    async fn turns(self, store: Store, room_id: Uuid) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = queues.get_mut(&room_id) else { return };
                if queue.is_empty() {
                    queues.remove(&room_id);
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            run(&store, batch).await;
        }
    }
}

/// One turn: a lone send as its own statement, several in one transaction.
async fn run(store: &Store, batch: Vec<Waiting>) {
    if batch.len() > 1 {
        let statements: Vec<&Statement> = batch.iter().map(|w| &w.statement).collect();
        if let Ok(rooms) = in_one_transaction(store, &statements).await {
            metrics::counter!("parley_sends_grouped_total").increment(batch.len() as u64);
            for (waiting, room) in batch.into_iter().zip(rooms) {
                let _ = waiting.reply.send(Ok(room));
            }
            return;
        }
        // Nothing was stored: each send runs again alone and gets its own answer.
    }
    for waiting in batch {
        let room = alone(store, waiting.statement).await;
        let _ = waiting.reply.send(room);
    }
}

async fn alone(store: &Store, statement: Statement) -> Sent {
    Ok(rooms::Model::find_by_statement(statement).one(&store.db).await?)
}

async fn in_one_transaction(
    store: &Store,
    statements: &[&Statement],
) -> ApiResult<Vec<Option<rooms::Model>>> {
    let txn = store.db.begin().await?;
    let mut rooms = Vec::with_capacity(statements.len());
    for statement in statements {
        rooms.push(rooms::Model::find_by_statement(Statement::clone(statement)).one(&txn).await?);
    }
    txn.commit().await?;
    Ok(rooms)
}
