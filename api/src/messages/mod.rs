//! Messages: sending (seq assignment, idempotent retries), editing, soft deletion, history
//! pages, and the `messageAdded` / `messageUpdated` subscriptions.

mod feed;
mod record;
pub mod resolvers;
pub mod service;
pub mod types;

pub use record::{Attachment, MessageRecord};
