//! Group commit of sends (PostgreSQL): into one room, and into different rooms.
//!
//! A send holds its room's row lock from the seq bump to its commit, so concurrent senders
//! into one room take turns, each paying a commit and waking the next waiter: eight senders
//! queue behind up to seven commits. Here the sends into a room that arrive while one of this
//! instance's is in flight wait together, and the next turn runs them all as one transaction:
//! the same statement for each, in arrival order, one commit.
//!
//! Sends into different rooms do not wait on each other's locks, but PostgreSQL spends most
//! of a send's CPU starting its statement and committing, not writing its rows
//! (BENCHMARKS.md: ≈ 330 µs a send alone, ≈ 115 µs each in a statement of eight). So the turn
//! a send runs in its own room's lane goes through a second lane, shared by every room: the
//! sends that can join a batch (`statement::BATCH_SQL`) and arrive while one is in flight
//! wait together, and the next turn runs them as one statement. A room has at most one send
//! in that lane, as its own lane runs one turn at a time, which is what the batch requires.
//!
//! Inbound customer messages into settled conversations (`support::settled`) have a lane of
//! the same kind per inbox: the ones that arrive while one is in flight run as one statement.
//! Their rooms are found by the statement, not known before, so a message that meets another
//! one's room in its batch is not stored by it, and runs again alone before the lane's next
//! turn (run beside that turn, such messages met it at their rooms' locks: 3 355–3 876
//! messages/s against 4 080–4 422, BENCHMARKS.md). A lane per inbox, not one for the
//! instance: a conversation whose row is held stops only its own inbox's messages, not every
//! organisation's.
//!
//! In any lane, a lone send runs alone in its own request, as before: no wait, no hand-over
//! between tasks.
//!
//! A statement the database refuses in a batch (a retried `clientId`, say) rolls back the
//! whole batch; then each of its sends runs again alone, so every one gets its own answer and
//! nothing is stored twice. A batch that fails otherwise (no connection, a commit whose
//! outcome is unknown) answers each of its sends with the error, as a lone send would have
//! been answered. The turns of queued sends run in a task of their own, so a request that is
//! dropped (its client went away) cannot leave its lane's queue stuck.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, FromQueryResult, Statement, TransactionTrait};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::statement::{BatchRow, SendStatement};
use crate::db::Store;
use crate::error::{ApiError, ApiResult, database_error};
use entity::rooms;

/// Most sends one turn takes: a longer turn would make the first of them wait long.
const MAX_BATCH: usize = 32;

/// The room after its seq bump, or `None` when the statement wrote nothing (a failed check).
pub type Sent = ApiResult<Option<rooms::Model>>;

/// Where a send waits for its turn.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    /// Sends into one room: a turn runs them in one transaction.
    Room(Uuid),
    /// First turns of sends into different rooms that can join a batch: a turn runs them as
    /// one statement.
    Rooms,
    /// Inbound customer messages into settled conversations of one inbox: a turn runs them
    /// as one statement.
    Inbound(Uuid),
}

struct Waiting {
    send: SendStatement,
    reply: oneshot::Sender<Sent>,
}

/// The sends waiting in each lane whose turns run on this instance; a lane is listed from
/// its first send until its runner finds nothing left to do.
#[derive(Clone, Default)]
pub struct GroupCommit {
    queues: Arc<Mutex<HashMap<Lane, Vec<Waiting>>>>,
}

impl GroupCommit {
    /// Runs the send `send` into `room_id`, with the sends that wait beside it.
    pub async fn send(&self, store: &Store, room_id: Uuid, send: SendStatement) -> Sent {
        self.in_lane(store, Lane::Room(room_id), send).await
    }

    /// Runs the inbound message `send` into `inbox_id` (`support::settled`), with the ones
    /// that wait beside it.
    pub async fn inbound(&self, store: &Store, inbox_id: Uuid, send: SendStatement) -> Sent {
        self.in_lane(store, Lane::Inbound(inbox_id), send).await
    }

    async fn in_lane(&self, store: &Store, lane: Lane, send: SendStatement) -> Sent {
        let (reply, answer) = oneshot::channel();
        let queued = match self.queues.lock().unwrap_or_else(|p| p.into_inner()).entry(lane) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(Waiting { send, reply });
                None
            }
            Entry::Vacant(queue) => {
                queue.insert(Vec::new());
                Some(send)
            }
        };
        let Some(send) = queued else {
            return answer.await.unwrap_or_else(|_| {
                Err(ApiError::internal(anyhow::anyhow!("a send's turn ended without an answer")))
            });
        };
        // Nobody runs this lane's turns: this send runs now, in its own task (no hand-over
        // to wait for), and hands the sends that queued meanwhile to a runner when it ends,
        // or is dropped.
        let _turn = FirstTurn { group: self, store, lane };
        match lane {
            Lane::Room(_) if send.row.is_some() => Box::pin(self.in_lane(store, Lane::Rooms, send)).await,
            _ => alone(store, send.statement).await,
        }
    }

    /// Runs turns until the lane's queue is empty, then forgets it.
    async fn turns(self, store: Store, lane: Lane) {
        let mut runner = Runner { queues: &self.queues, lane, finished: false };
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = queues.get_mut(&lane) else {
                    runner.finished = true;
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&lane);
                    runner.finished = true;
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            match lane {
                Lane::Room(_) => run(&store, batch).await,
                Lane::Rooms | Lane::Inbound(_) => run_as_one_statement(&store, lane, batch).await,
            }
        }
    }
}

/// The turn a send runs in its own request. When it ends, the sends that queued behind it go
/// to a runner task; a dropped request (its client went away) cannot strand them.
struct FirstTurn<'a> {
    group: &'a GroupCommit,
    store: &'a Store,
    lane: Lane,
}

impl Drop for FirstTurn<'_> {
    fn drop(&mut self) {
        let mut queues = self.group.queues.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = queues.get(&self.lane).is_some_and(|queue| !queue.is_empty());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if waiting => {
                runtime.spawn(self.group.clone().turns(self.store.clone(), self.lane));
            }
            // Nothing waits, or the runtime is shutting down: the sends waiting get an error.
            _ => {
                queues.remove(&self.lane);
            }
        }
    }
}

/// Forgets its lane if the runner stops before the queue is empty (a panic): the sends
/// waiting there get an error instead of waiting for ever, and the next send starts a runner.
struct Runner<'a> {
    queues: &'a Mutex<HashMap<Lane, Vec<Waiting>>>,
    lane: Lane,
    finished: bool,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.queues.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.lane);
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
        let statements: Vec<&Statement> = batch.iter().map(|w| &w.send.statement).collect();
        match in_one_transaction(store, &statements).await {
            Ok(rooms) => {
                metrics::counter!("parley_sends_grouped_total").increment(batch.len() as u64);
                for (waiting, room) in batch.into_iter().zip(rooms) {
                    let _ = waiting.reply.send(Ok(room));
                }
                return;
            }
            Err(failed) => return each_alone(store, batch, failed).await,
        }
    }
    each_alone(store, batch, None).await
}

/// One turn across rooms or of inbound messages: a lone send as its own statement, several as
/// one batch statement. A send into a room missing from the answer failed a check. An inbound
/// message missing from it may have met another one's room, so it runs again alone, which
/// answers `None` when the statement does not fit it (the transactional way's messages pay
/// this one statement more when they arrive in a batch).
async fn run_as_one_statement(store: &Store, lane: Lane, mut batch: Vec<Waiting>) {
    batch.retain(|waiting| !waiting.reply.is_closed());
    if batch.len() > 1 {
        match in_one_statement(store, &batch).await {
            Ok(mut rooms) => {
                let (size, inbound) = (batch.len(), matches!(lane, Lane::Inbound(_)));
                let mut again = Vec::new();
                for waiting in batch {
                    match waiting.send.row.as_ref().and_then(|row| rooms.remove(&row.message_id)) {
                        None if inbound => again.push(waiting),
                        room => {
                            let _ = waiting.reply.send(Ok(room));
                        }
                    }
                }
                let name =
                    if inbound { "parley_inbound_batched_total" } else { "parley_sends_batched_total" };
                metrics::counter!(name).increment((size - again.len()) as u64);
                return each_alone(store, again, None).await;
            }
            Err(failed) => return each_alone(store, batch, failed).await,
        }
    }
    each_alone(store, batch, None).await
}

/// The sends of a batch that was refused (or of a lone turn) run one by one, each getting
/// its own answer; a broken batch answers each with its error.
async fn each_alone(store: &Store, batch: Vec<Waiting>, failed: impl Into<Option<Failed>>) {
    match failed.into() {
        Some(Failed::Broken(err)) => {
            tracing::warn!(%err, "a group commit failed");
            for waiting in batch {
                let _ = waiting.reply.send(Err(ApiError::internal(anyhow::anyhow!("group commit: {err}"))));
            }
            return;
        }
        Some(Failed::Refused(err)) => tracing::debug!(%err, "a grouped send was refused; each runs alone"),
        None => {}
    }
    for waiting in batch {
        alone_then_reply(store, waiting).await;
    }
}

/// Runs a send alone and answers it, unless its request is gone.
async fn alone_then_reply(store: &Store, waiting: Waiting) {
    if !waiting.reply.is_closed() {
        let room = alone(store, waiting.send.statement).await;
        let _ = waiting.reply.send(room);
    }
}

async fn alone(store: &Store, statement: Statement) -> Sent {
    Ok(rooms::Model::find_by_statement(statement).one(&store.db).await?)
}

/// The batch as one statement: the rooms written, by the id of the message each got.
async fn in_one_statement(store: &Store, batch: &[Waiting]) -> Result<HashMap<Uuid, rooms::Model>, Failed> {
    let rows: Vec<&BatchRow> = batch.iter().filter_map(|w| w.send.row.as_ref()).collect();
    // The sends of a lane are of one kind, so their rows are of one statement.
    let Some(sql) = rows.first().map(|row| row.sql) else { return Ok(HashMap::new()) };
    let rows: Vec<&serde_json::Value> = rows.iter().map(|row| &row.values).collect();
    let rows = serde_json::to_value(rows).map_err(|err| Failed::Broken(DbErr::Custom(err.to_string())))?;
    let statement = Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, [rows.into()]);
    let answer = match store.db.query_all_raw(statement).await {
        Ok(answer) => answer,
        Err(err) if database_error(&err).is_some() => return Err(Failed::Refused(err)),
        Err(err) => return Err(Failed::Broken(err)),
    };
    let mut rooms = HashMap::with_capacity(answer.len());
    for row in answer {
        let room = rooms::Model::from_query_result(&row, "").map_err(Failed::Broken)?;
        rooms.insert(row.try_get::<Uuid>("", "message_id").map_err(Failed::Broken)?, room);
    }
    Ok(rooms)
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
