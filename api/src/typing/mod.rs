//! Typing indicators: who is writing in a room right now. Nothing is stored. `setTyping`
//! publishes on the room's signals topic, at most once per user, room and second: each
//! instance's [`throttle`] coalesces keystrokes, and with Redis a [`cluster`] gate keeps the
//! second for the whole cluster; each `typing(roomId)` subscriber turns the events into changes and expires
//! a state [`EXPIRY`] after its last renewal ([`feed`]), so a client that vanished
//! mid-sentence stops "typing" on every instance without any coordination between them.

pub mod cluster;
pub mod feed;
pub mod resolvers;
pub mod service;
pub mod throttle;

use std::time::Duration;

/// How long "typing" lasts without a renewal. Clients renew every few seconds while the
/// user types (Slack and Matrix clients send every 3–5 s).
pub const EXPIRY: Duration = Duration::from_secs(6);
