//! The "Later" list: one place for what the viewer set aside — pending and due reminders and
//! saved messages (and, once support inboxes exist, snoozed conversations) — in one
//! connection, ordered by due time (reminders, soonest first), then by when it was saved
//! (newest first). It owns no table: it reads `reminders` and `message_favorites`.

pub mod service;
pub mod types;
