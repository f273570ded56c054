//! Rooms: channels and direct rooms, membership, and who may read or write a room.
//!
//! Architecture invariant: whether a viewer may read or write a room is decided only in
//! `access` (NOT_FOUND for rooms they may not read), with one exception: the one-statement
//! send on PostgreSQL checks the same rules in its SQL and falls back to `access` to explain a
//! refusal. Reads that filter many rooms' rows at once (saved messages) use the rule's SQL
//! form, `access::readable_sql`. Other reads of `rooms` either scope by the viewer's organisation and membership
//! themselves (listing, the direct-room lookup, the directory cache) or take ids that already
//! passed `access` or came from the viewer's memberships (loaders, latest seqs, read positions).

pub mod access;
pub mod context;
mod feed;
pub mod listing;
pub mod listing_page;
pub mod members;
pub mod membership;
pub mod mute;
pub mod name;
pub mod resolvers;
pub mod service;
pub mod types;
pub mod watch;
