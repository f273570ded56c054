//! Whom a message mentions, storing that with the message and its edits, and listing a
//! user's mentions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Order, Statement, Value};
use uuid::Uuid;

use super::parse::Mentions;
use crate::auth::Viewer;
use crate::db::{Store, columns};
use crate::error::{ApiError, ApiResult};
use crate::messages::MessageRecord;
use crate::paging::Keyset;
use crate::presence::Status;
use crate::rooms::access;
use crate::state::AppState;
use entity::enums::{PresenceStatus, RoomKind};
use entity::messages;

/// Rows per insert statement (SQLite allows 999 placeholders).
const INSERT_BATCH: usize = 150;

/// The members of `room_id` whom `mentions` name, the author left out: by handle, and in a
/// channel every member for `@channel` or those online for `@here`. Members only: someone who
/// cannot read the room, or has not joined it, is not notified. Runs before the send checks
/// access, so it reads nothing unless the author is a member of a live room: anyone else
/// learns nothing here and is answered by that check. Refuses a room-wide mention
/// in a channel with more members than `PARLEY_MAX_ROOM_MENTION_MEMBERS`, before anything
/// is written.
pub async fn resolve(
    app: &AppState,
    room_id: Uuid,
    author: Uuid,
    mentions: &Mentions,
) -> ApiResult<Vec<Uuid>> {
    if mentions.is_empty() {
        return Ok(Vec::new());
    }
    let store = &app.store;
    let written: Vec<&String> = mentions.handles.iter().collect();
    let fallback = |h: &String| mentions.fallbacks.get(h);
    let mut handles: Vec<&String> =
        written.iter().copied().chain(written.iter().filter_map(|h| fallback(h))).collect();
    handles.sort_unstable();
    handles.dedup();
    let mut values: Vec<Value> = vec![room_id.into(), author.into()];
    values.extend(handles.iter().map(|h| Value::from(h.as_str())));
    let named = match handles.len() {
        0 => "1 = 0".to_owned(),
        n => format!("u.handle IN ({})", (3..3 + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")),
    };
    let room_wide = mentions.channel || mentions.here;
    // A room-wide mention reads one member past the limit at most: enough to refuse it, and
    // never fewer rows than the handles named can match (all there is outside a channel).
    let (wide, limit) = if room_wide {
        let rows = (app.limits.max_room_mention_members + 1).max(handles.len());
        values.push(Value::from(i64::try_from(rows).unwrap_or(i64::MAX)));
        (" OR r.kind = 'channel'", format!(" LIMIT ${}", values.len()))
    } else {
        ("", String::new())
    };
    let rows = store
        .db
        .query_all_raw(store.stmt(
            &format!(
                "SELECT rm.user_id, u.handle, u.presence_status, r.kind FROM room_members rm \
                 JOIN users u ON u.id = rm.user_id JOIN rooms r ON r.id = rm.room_id \
                 WHERE rm.room_id = $1 AND rm.user_id <> $2 AND u.deactivated_at IS NULL \
                   AND r.archived_at IS NULL \
                   AND EXISTS (SELECT 1 FROM room_members me WHERE me.room_id = $1 AND me.user_id = $2) \
                   AND ({named}{wide}){limit}"
            ),
            values,
        ))
        .await?;
    let (mut by_handle, mut everyone, mut manual, mut channel) =
        (HashMap::new(), Vec::new(), HashMap::new(), false);
    for row in rows {
        let (user, handle): (Uuid, String) = (row.try_get("", "user_id")?, row.try_get("", "handle")?);
        channel = row.try_get::<RoomKind>("", "kind")? == RoomKind::Channel;
        manual.insert(user, row.try_get::<Option<PresenceStatus>>("", "presence_status")?);
        everyone.push(user);
        by_handle.insert(handle, user);
    }
    // Every other active member was read (or one past the limit), for a room-wide mention in
    // a channel.
    let max = app.limits.max_room_mention_members;
    if channel && room_wide && everyone.len() > max {
        return Err(ApiError::bad_input(format!(
            "@channel, @everyone and @here reach at most {max} members, and this channel has more: \
             mention people by their handles"
        )));
    }
    // `@bob_` is bob_ if anyone in the organisation has that handle (a member or not), else
    // bob: asked only for handles where that decides.
    let undecided: Vec<&String> = written
        .iter()
        .copied()
        .filter(|h| !by_handle.contains_key(*h) && fallback(h).is_some_and(|f| by_handle.contains_key(f)))
        .collect();
    let taken = taken_in_org(store, room_id, &undecided).await?;
    let mut users: Vec<Uuid> = written
        .iter()
        .filter_map(|h| match by_handle.get(*h) {
            Some(user) => Some(user),
            None if taken.contains(*h) => None,
            None => fallback(h).and_then(|f| by_handle.get(f)),
        })
        .copied()
        .collect();
    users.sort_unstable();
    users.dedup();
    // The rest were read for `@channel` / `@here`, which only mean something in a channel.
    everyone.retain(|u| !users.contains(u));
    if channel && mentions.channel {
        users.extend(everyone);
    } else if channel && mentions.here {
        let seen = app.presence.seen(&everyone).await;
        let here = |u: &Uuid| {
            let connected = seen.get(u).is_some_and(|s| s.connected);
            Status::here(manual.get(u).copied().flatten(), connected)
        };
        users.extend(everyone.into_iter().filter(here));
    }
    Ok(users)
}

/// Whom message `message_id` mentions after an edit from `before` to `after`. An edit that
/// keeps the same room-wide mentions (`@channel`, `@here`, or both) keeps whom they reached
/// when it was sent, as Slack and Mattermost do: presence and membership have moved on
/// since, and fixing a typo must neither take a mention from someone nor hand it to someone
/// new, nor meet the size limit again. Handles are resolved again: one the edit adds
/// mentions its member; one it removes no longer does, unless `@channel` reaches them anyway
/// (whether `@here` reached them too, the stored mentions do not tell: they lose it). An edit
/// that adds or drops a room-wide mention is resolved as a send.
pub async fn resolve_edit(
    app: &AppState,
    message: (Uuid, Uuid),
    author: Uuid,
    before: &Mentions,
    after: &Mentions,
) -> ApiResult<Vec<Uuid>> {
    let (message_id, room_id) = message;
    let same_reach = (before.channel, before.here) == (after.channel, after.here);
    if !same_reach || !(after.channel || after.here) {
        return resolve(app, room_id, author, after).await;
    }
    let mut users = resolve(app, room_id, author, &after.named()).await?;
    let unnamed: Vec<Uuid> = match after.channel {
        true => Vec::new(),
        false => {
            let named_before = resolve(app, room_id, author, &before.named()).await?;
            named_before.into_iter().filter(|u| !users.contains(u)).collect()
        }
    };
    let sql = "SELECT user_id FROM mentions WHERE message_id = $1";
    let rows = app.store.db.query_all_raw(app.store.stmt(sql, vec![message_id.into()])).await?;
    for row in rows {
        let user: Uuid = row.try_get("", "user_id")?;
        if !unnamed.contains(&user) {
            users.push(user);
        }
    }
    users.sort_unstable();
    users.dedup();
    Ok(users)
}

/// Which of `handles` someone in the organisation of room `room_id` has; no query for none.
async fn taken_in_org(store: &Store, room_id: Uuid, handles: &[&String]) -> ApiResult<Vec<String>> {
    if handles.is_empty() {
        return Ok(Vec::new());
    }
    let mut values: Vec<Value> = vec![room_id.into()];
    values.extend(handles.iter().map(|h| Value::from(h.as_str())));
    let list = (2..2 + handles.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT handle FROM users WHERE org_id = (SELECT org_id FROM rooms WHERE id = $1) AND handle IN ({list})"
    );
    let rows = store.db.query_all_raw(store.stmt(&sql, values)).await?;
    Ok(rows.iter().map(|row| row.try_get::<String>("", "handle")).collect::<Result<_, _>>()?)
}

/// Whether message `message_id` mentions `user_id` as it stands now (an edit rewrites its
/// mentions).
pub async fn mentions_user(store: &Store, message_id: Uuid, user_id: Uuid) -> ApiResult<bool> {
    let sql = "SELECT 1 AS one FROM mentions WHERE message_id = $1 AND user_id = $2";
    let found = store.db.query_one_raw(store.stmt(sql, vec![message_id.into(), user_id.into()])).await?;
    Ok(found.is_some())
}

/// Writes that a message (id, room, seq) mentions `users`, in the caller's transaction.
/// `replace`: first forget whom it mentioned before (an edit, a deletion).
pub async fn write(
    conn: &impl ConnectionTrait,
    store: &Store,
    message: (Uuid, Uuid, i64),
    users: &[Uuid],
    replace: bool,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if replace {
        conn.execute_raw(store.stmt("DELETE FROM mentions WHERE message_id = $1", vec![message.0.into()]))
            .await?;
    }
    for statement in inserts(store, message, users, now) {
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

/// The statements that write that a new message (id, room, seq) mentions `users`: none when
/// it mentions nobody.
pub fn inserts(
    store: &Store,
    message: (Uuid, Uuid, i64),
    users: &[Uuid],
    now: DateTime<Utc>,
) -> Vec<Statement> {
    let (message_id, room_id, seq) = message;
    users
        .chunks(INSERT_BATCH)
        .map(|batch| {
            let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 5);
            let rows: Vec<String> = batch
                .iter()
                .enumerate()
                .map(|(i, user)| {
                    values.extend([
                        message_id.into(),
                        (*user).into(),
                        room_id.into(),
                        seq.into(),
                        now.into(),
                    ]);
                    let p = i * 5;
                    format!("(${}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4, p + 5)
                })
                .collect();
            let sql = format!(
                "INSERT INTO mentions (message_id, user_id, room_id, seq, created_at) VALUES {}",
                rows.join(", ")
            );
            store.stmt(&sql, values)
        })
        .collect()
}

/// The messages mentioning the viewer in rooms they may read, newest first: one page, and
/// whether more lie beyond it in the direction it was read. Message ids grow with time
/// (UUIDv7), so they are the order and the key: `first` pages towards older messages,
/// `last` towards newer ones (from the oldest, with no cursor).
pub async fn list(
    store: &Store,
    viewer: &Viewer,
    page: Keyset<Uuid>,
) -> ApiResult<(Vec<MessageRecord>, bool)> {
    let mut values: Vec<Value> = vec![viewer.id.into(), viewer.org_id.into()];
    let window = page.window;
    let cursor = match page.cursor {
        Some(id) => {
            values.push(id.into());
            format!("AND x.message_id {} $3", page.sql_beyond(Order::Desc))
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM mentions x \
         JOIN messages m ON m.id = x.message_id \
         JOIN rooms r ON r.id = x.room_id \
         LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
         WHERE x.user_id = $1 AND r.org_id = $2 AND m.deleted_at IS NULL AND {} {cursor} \
         ORDER BY x.message_id {} LIMIT {}",
        columns::<messages::Entity>(Some("m")),
        access::readable_sql(viewer),
        window.sql_order(Order::Desc),
        window.fetch_limit()
    );
    let rows = messages::Entity::find().from_raw_sql(store.stmt(&sql, values)).all(&store.db).await?;
    let (rows, more) = window.split(rows);
    Ok((rows.into_iter().map(MessageRecord::from).collect(), more))
}
