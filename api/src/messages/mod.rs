//! Messages: sending (seq assignment, idempotent retries), editing, soft deletion, history
//! pages, and the `messageAdded` / `messageUpdated` subscriptions.

mod changes;
mod feed;
pub mod group_commit;
pub mod input;
pub mod record;
pub mod resolvers;
pub mod send;
pub mod service;
pub mod statement;
pub mod types;

pub use record::{Attachment, LiveMessage, MessageRecord};
