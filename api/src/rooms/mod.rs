//! Rooms: channels and direct rooms, membership, and who may read or write a room.
//!
//! Architecture invariant: every room lookup goes through `access`, which scopes by the
//! viewer's organisation and answers NOT_FOUND for rooms the viewer may not read.

pub mod access;
mod feed;
pub mod membership;
pub mod resolvers;
pub mod service;
pub mod types;
pub mod watch;
