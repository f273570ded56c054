//! Parley's integration test suite: one binary (one link step) that starts
//! real `parley` processes and talks to them over HTTP and WebSocket, exactly
//! as clients do.
//!
//! Every domain test runs twice, against SQLite with the in-process bus
//! (`sqlite::…`) and against PostgreSQL + Redis (`postgres::…`, skipped with
//! one notice on stderr unless `PARLEY_TEST_DATABASE_URL` and
//! `PARLEY_TEST_REDIS_URL` are set; `PARLEY_TEST_REQUIRE_BACKENDS=1` turns the
//! skip into a failure). `cross_instance`, `membership_order`, `missed_notices`, `outages` and `faults` run on
//! PostgreSQL + Redis only (`postgres_redis::…`); `outages` and `faults` start
//! a PostgreSQL or a Redis of their own to stop.

#[macro_use]
mod helpers;

mod auth;
mod browse;
mod browser;
mod concurrency;
mod config;
mod context_rooms;
mod cross_instance;
mod direct_rooms;
mod faults;
mod favorites;
mod fuzzing;
mod http_protocol;
mod input_edges;
mod introspection;
mod keyset_paging;
mod later;
mod live_path;
mod membership_order;
mod mentions;
mod message_edits;
mod messages;
mod missed_notices;
mod muting;
mod outages;
mod pages;
mod personal_notifications;
mod presence;
mod pushed_mentions;
mod read_receipts;
mod read_state;
mod readme;
mod relay_paging;
mod reminders;
mod rolling_deploy;
mod room_listing;
mod rooms;
mod schema;
mod search;
mod subscription_updates;
mod subscriptions;
mod support;
mod tenant_isolation;
mod typing;
mod unread_model;
mod users;
mod webhooks;
mod ws_protocol;
