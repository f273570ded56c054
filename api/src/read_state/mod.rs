//! Read state: per-member watermarks (`last_read_seq`), unread counts, the
//! `unreadCountChanged` subscription, and the watermarks shown to others as read receipts
//! ([`receipts`]).
//!
//! An unread count is `rooms.last_seq - room_members.last_read_seq` minus the deleted messages
//! above the watermark, read through a partial index over deleted rows only: live message rows
//! are never scanned, and a batch of counts is one query.

pub mod feed;
pub mod receipts;
pub mod resolvers;
pub mod service;
pub mod types;
