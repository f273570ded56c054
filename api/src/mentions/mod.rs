//! Mentions: `@handle` (and `@channel` / `@here` in channels) parsed from a message body when
//! it is stored ([`parse`]), kept as rows beside the message and rewritten by its edits
//! ([`service`]), counted per room above the viewer's watermark (`Room.mentionCount`, and
//! `unreadCountChanged.mentionCount` through `read_state`) and listed (`viewer.mentions`).

pub mod parse;
pub mod service;
pub mod types;
