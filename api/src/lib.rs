//! Parley's server as a library: the binary in `src/main.rs` only calls [`cli::main`].
//!
//! Crate map (see ARCHITECTURE.md for the invariants):
//! - [`cli`], [`config`]: the command line and every setting; [`app`]: build and serve.
//! - [`http`]: axum router, GraphQL over HTTP and WebSocket, the embedded browser pages
//!   (GraphiQL, the `/app` client), health, metrics.
//! - [`graphql`]: schema assembly, limits, loaders, ids, cursors and shared frames.
//! - [`paging`]: page sizes and "one more than the page" reads. [`rate_limit`]: the send
//!   rate limit, local or shared by the cluster through Redis.
//! - [`auth`]: tokens → [`auth::Viewer`]. [`error`]: the one error type.
//! - Domains, each with `service` (rules + database), `types` and `resolvers`:
//!   [`rooms`], [`messages`], [`read_state`], [`users`], [`favorites`], [`reminders`], [`later`],
//!   [`search`], [`typing`], [`presence`], [`mentions`], [`notifications`] (the outbox:
//!   webhooks, email, web push), [`support`] (inboxes, contacts, assignment).
//! - [`bus`]: events across instances (in-process or Redis). [`db`]: connection, migrations,
//!   the SQLite write gate. [`directory`]: cached users and rooms. [`demo`]: first-run data.

pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod directory;
pub mod error;
pub mod favorites;
pub mod graphql;
pub mod http;
pub mod later;
pub mod mentions;
pub mod messages;
pub mod notifications;
pub mod paging;
pub mod presence;
pub mod rate_limit;
pub mod read_state;
pub mod reminders;
pub mod rooms;
pub mod search;
mod secrets;
pub mod state;
pub mod support;
pub mod telemetry;
pub mod text;
pub mod times;
pub mod typing;
pub mod users;

pub use app::App;
