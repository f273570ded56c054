//! Reminders: a user asks to be reminded of a message, a room, or only a note, at a moment in
//! the future. `service.rs` creates, moves, completes, cancels and lists them (each user sees
//! only their own); `scheduler.rs` runs in every instance and fires each due reminder exactly
//! once across all of them, as `reminderDue` on the owner's user topic (`feed.rs`).
//!
//! A reminder's life: `pending` → (fires) `fired` (shown as DUE) → `done` when completed, or
//! `cancelled`; snoozing a pending or due reminder makes it pending again at the new time.

pub mod feed;
pub mod input;
pub mod resolvers;
pub mod scheduler;
pub mod service;
pub mod types;
