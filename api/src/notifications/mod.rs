//! Notifications beyond the open socket, delivered from one outbox: today outgoing webhooks
//! (email and web push are to come through the same outbox).
//!
//! - `webhooks`: registering and deleting webhooks (org admins), `target`: which URLs they may
//!   reach and the HTTP client that keeps to them.
//! - `outbox`: the `notification_deliveries` statements: enqueued in the transaction of the
//!   message that causes them (see `messages::send`), claimed, settled, listed.
//! - `worker`: one task per instance that delivers due rows, `render`: bodies and signatures.
//!
//! Architecture invariant: nothing is delivered that was not committed with its cause, and
//! nothing committed is dropped: a delivery ends delivered or failed (with its last error),
//! never silently.

pub mod outbox;
mod render;
pub mod resolvers;
pub mod target;
pub mod types;
pub mod webhooks;
pub mod worker;
