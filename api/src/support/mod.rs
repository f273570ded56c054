//! Support inboxes: customers (contacts) write through a signed webhook or an integration
//! token, agents answer in conversations (rooms of kind `support`), and each inbox assigns
//! its conversations fairly and says why.
//!
//! - `inboxes`: inboxes and their agents (org admins manage them); agents are members of
//!   their inbox's conversations, so unread counts and subscriptions work unchanged.
//! - `departures`: who leaves conversations: an agent leaving an inbox or deactivated, an
//!   admin demoted out of the conversations they joined by replying.
//! - `contacts`: who writes, parsed and upserted (E.164 phones, lower-cased emails).
//! - `payload`: an inbound message as sent, checked field by field; `ingest`: storing one,
//!   atomically and idempotently; `settled`: its shortcut on PostgreSQL for a message into
//!   an open conversation that has its agent (one statement); `signature`: the
//!   webhook's HMAC (served by `http::inbound`).
//! - `assign`: round robin and least busy, capacity, online first, the queue, the decision
//!   log; `conversations`: assign, unassign, statuses, and reopening snoozed ones on time.
//! - `outbound`: agents' replies posted to the inbox's outbound webhook, through the
//!   notification outbox; `metrics`: response and resolution figures, in SQL.
//! - `loaders`: batched reads of the support fields of conversations and messages.
//!
//! Architecture invariant: every assignment decision runs under the inbox row's lock, so an
//! agent's capacity holds however many instances decide at once.

pub mod assign;
pub mod contacts;
pub mod conversations;
pub mod departures;
pub mod inboxes;
pub mod ingest;
pub mod loaders;
pub mod metrics;
pub mod outbound;
pub mod payload;
pub mod resolvers;
pub mod settled;
pub mod signature;
pub mod types;
