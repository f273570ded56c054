//! The `messageUpdated` feed: edits and deletions in one room or in all the viewer's rooms.
//!
//! Events bring each change as it is made. After a bus resync, when events may have been
//! lost, the feed rereads from the database every message changed since its previous reread
//! or since the loss began, whichever is later (`bus::RereadWindow`), a batch at a time as
//! the client consumes them: a deletion made while Redis was away still clears the body on
//! every screen. Changes already delivered live come again in that reread;
//! a frame carries the message's whole state, so a repeat changes nothing on screen, and
//! resyncs are rare. Events queued before the resync may still come after the reread (the
//! watcher reads its topics in turn): one no newer than what the reread delivered for its
//! message is dropped, or it would put an older state back on screen. A deletion is final:
//! an edit that committed just before it but whose event came after it (published by another
//! instance, or by a task that lost the race) is dropped too, or the message would show its
//! body again.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use uuid::Uuid;

use super::record::MessageRecord;
use super::service::{self, ChangeCursor};
use crate::auth::Viewer;
use crate::bus::{Event, RereadWindow, Scope, Watched, Watcher};
use crate::error::ApiResult;
use crate::rooms::watch::{repair_or_retry, watch};
use crate::state::AppState;

/// Rows read per database round trip while rereading.
const REREAD_BATCH: u64 = 100;

/// Most messages whose reread state a feed remembers, to drop older queued events.
const REMEMBERED: usize = 1_000;

/// Latest deletions a feed remembers: an edit overtaken by a deletion arrives within moments
/// of it, and a subscription must stay small.
const DELETIONS_REMEMBERED: usize = 64;

/// What the feed delivered that a later event must not undo.
#[derive(Default)]
struct Delivered {
    /// The moment of the change the reread delivered, by message (up to `REMEMBERED`).
    reread: HashMap<Uuid, DateTime<Utc>>,
    /// The latest messages delivered deleted, oldest first (up to `DELETIONS_REMEMBERED`).
    deleted: VecDeque<Uuid>,
}

impl Delivered {
    /// False for a live event that would put an older state back on screen: no newer than
    /// what the reread delivered of its message, or not deleted when the message was.
    fn is_news(&mut self, id: Uuid, version: Option<DateTime<Utc>>, deleted: bool) -> bool {
        if !deleted && self.deleted.contains(&id) {
            return false;
        }
        if let Some(&reread) = self.reread.get(&id) {
            if version.is_none_or(|changed| changed <= reread) {
                return false;
            }
            self.reread.remove(&id);
        }
        self.note_deleted(id, deleted);
        true
    }

    /// A message the reread delivered.
    fn note_reread(&mut self, id: Uuid, version: DateTime<Utc>, deleted: bool) {
        if self.reread.len() < REMEMBERED {
            self.reread.insert(id, version);
        }
        self.note_deleted(id, deleted);
    }

    fn note_deleted(&mut self, id: Uuid, deleted: bool) {
        if !deleted || self.deleted.contains(&id) {
            return;
        }
        if self.deleted.len() == DELETIONS_REMEMBERED {
            self.deleted.pop_front();
        }
        self.deleted.push_back(id);
    }
}

struct ChangeFeed {
    state: AppState,
    viewer: Viewer,
    watcher: Watcher,
    /// From when the next reread reads.
    window: RereadWindow,
    /// Where the reread under way stands.
    cursor: Option<ChangeCursor>,
    /// The reread's last batch failed: it goes on at the watcher's `Retry`.
    reread_failed: bool,
    /// A resync's membership repair failed: the watcher's `Retry` resyncs again.
    resync_failed: bool,
    delivered: Delivered,
    pending: VecDeque<MessageRecord>,
}

pub async fn message_updated(
    state: AppState,
    viewer: Viewer,
    room_id: Option<Uuid>,
) -> ApiResult<BoxStream<'static, MessageRecord>> {
    let scope = room_id.map_or(Scope::AllRooms, Scope::Room);
    let window = RereadWindow::starting_now();
    let watcher = watch(&state, &viewer, scope).await?;
    // Boxed, as `messageAdded`'s feed: an idle subscription holds one pointer in its stream.
    let feed = Box::new(ChangeFeed {
        state,
        viewer,
        watcher,
        window,
        cursor: None,
        reread_failed: false,
        resync_failed: false,
        delivered: Delivered::default(),
        pending: VecDeque::new(),
    });
    Ok(stream::unfold(feed, |mut feed| async move { feed.next().await.map(|m| (m, feed)) }).boxed())
}

impl ChangeFeed {
    async fn next(&mut self) -> Option<MessageRecord> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            self.pending = VecDeque::new();
            if let Some(cursor) = self.cursor
                && !self.reread_failed
            {
                Box::pin(self.reread_from(cursor)).await;
                continue;
            }
            match self.watcher.next().await? {
                Watched::Room(_, envelope) => {
                    if let Event::MessageUpdated { message, .. } = &envelope.event {
                        let message = MessageRecord::from(message.as_ref());
                        if self.delivered.is_news(message.id, message.version(), message.is_deleted()) {
                            return Some(message);
                        }
                    }
                }
                Watched::User(envelope) => {
                    if let Event::MembershipChanged { room_id, change, .. } = envelope.event
                        && !change.is_member()
                        && self.watcher.scope() == Scope::Room(room_id)
                    {
                        return None;
                    }
                }
                Watched::Resync(lost_after) => {
                    self.window.resync(lost_after);
                    if !Box::pin(self.resync()).await {
                        return None;
                    }
                }
                Watched::Retry => {
                    self.reread_failed = false;
                    if self.resync_failed && !Box::pin(self.resync()).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Events may have been lost: repair membership, then reread what changed. False when the
    /// one room of this feed is no longer readable.
    async fn resync(&mut self) -> bool {
        // A failed batch's retry was cancelled by this resync, which rereads anyway.
        (self.resync_failed, self.reread_failed) = (false, false);
        let Some(repaired) = repair_or_retry(&self.state, &self.viewer, &mut self.watcher).await else {
            self.resync_failed = true;
            return true;
        };
        if let Scope::Room(room_id) = self.watcher.scope()
            && repaired.left.contains(&room_id)
        {
            return false;
        }
        if let Some(due) = self.window.begin() {
            // A reread still under way goes on from where it stands, if that is further back.
            let from = (due, Uuid::nil());
            self.cursor = Some(self.cursor.map_or(from, |cursor| cursor.min(from)));
            self.delivered.reread.clear();
        }
        true
    }

    /// Reads the next batch of changed messages from the database.
    async fn reread_from(&mut self, cursor: ChangeCursor) {
        let rooms = self.watcher.rooms();
        match service::changed_after(&self.state.store, &self.viewer, &rooms, cursor, REREAD_BATCH).await {
            Ok(rows) => {
                let full = rows.len() as u64 == REREAD_BATCH;
                self.cursor = None;
                for message in rows.into_iter().map(MessageRecord::from) {
                    // Every row read has a version: the query reads changed messages only.
                    if let Some(changed) = message.version() {
                        self.cursor = Some((changed, message.id)).filter(|_| full);
                        self.delivered.note_reread(message.id, changed, message.is_deleted());
                    }
                    self.pending.push_back(message);
                }
            }
            Err(err) => {
                tracing::warn!(?err, "rereading changed messages failed; retried");
                self.reread_failed = true;
                self.watcher.retry_later();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use uuid::Uuid;

    use super::Delivered;

    #[test]
    fn an_edit_arriving_after_the_deletion_is_dropped() {
        let (mut delivered, id, edited) = (Delivered::default(), Uuid::now_v7(), Utc::now());
        let deleted = edited + TimeDelta::milliseconds(1);
        assert!(delivered.is_news(id, Some(deleted), true));
        assert!(!delivered.is_news(id, Some(edited), false), "the deletion is final");
        assert!(delivered.is_news(Uuid::now_v7(), Some(edited), false), "other messages go on");
        for _ in 0..super::DELETIONS_REMEMBERED {
            assert!(delivered.is_news(Uuid::now_v7(), Some(deleted), true));
        }
        assert!(delivered.is_news(id, Some(edited), false), "only the latest deletions are kept");
    }

    #[test]
    fn a_live_event_no_newer_than_the_reread_is_dropped() {
        let (mut delivered, id, at) = (Delivered::default(), Uuid::now_v7(), Utc::now());
        delivered.note_reread(id, at, false);
        assert!(!delivered.is_news(id, Some(at), false));
        assert!(delivered.is_news(id, Some(at + TimeDelta::milliseconds(1)), false));
        delivered.note_reread(id, at, true);
        assert!(!delivered.is_news(id, Some(at + TimeDelta::seconds(1)), false), "deleted by the reread");
    }
}
