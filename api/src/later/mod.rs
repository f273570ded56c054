//! The "Later" list: one place for what the viewer set aside — pending and due reminders and
//! saved messages — in one connection, ordered by due time (reminders, soonest first), then
//! by when it was saved (newest first). It owns no table: it reads `reminders` and
//! `message_favorites`. Snoozed support conversations are not in it: they belong to their
//! inbox's queue, to which they come back when their snooze ends (`support::conversations`),
//! as in Chatwoot.

pub mod service;
pub mod types;
