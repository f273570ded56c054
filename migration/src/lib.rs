//! Parley's schema history. Each migration is frozen once released: it never imports the
//! `entity` crate (entities change, history must not), and it runs unchanged on SQLite and
//! PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_core;
mod m20261123_000002_saved_messages;
mod m20261123_000003_reminders;
mod m20261123_000004_message_search;
mod m20261124_000005_message_recency;
mod m20261201_000006_read_receipts;
mod m20261201_000007_presence;
mod m20261201_000008_mentions;
mod m20261201_000009_outgoing_webhooks;
mod m20261202_000010_personal_notifications;
mod m20261202_000011_support_inboxes;
mod m20261203_000012_role_changes;
mod m20261204_000013_favorites_version;
mod m20261204_000014_round_robin_last_agent;
mod m20261207_000015_message_changes;
mod m20261207_000016_room_changes;
mod m20261207_000017_channel_name_keys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_core::Migration),
            Box::new(m20261123_000002_saved_messages::Migration),
            Box::new(m20261123_000003_reminders::Migration),
            Box::new(m20261123_000004_message_search::Migration),
            Box::new(m20261124_000005_message_recency::Migration),
            Box::new(m20261201_000006_read_receipts::Migration),
            Box::new(m20261201_000007_presence::Migration),
            Box::new(m20261201_000008_mentions::Migration),
            Box::new(m20261201_000009_outgoing_webhooks::Migration),
            Box::new(m20261202_000010_personal_notifications::Migration),
            Box::new(m20261202_000011_support_inboxes::Migration),
            Box::new(m20261203_000012_role_changes::Migration),
            Box::new(m20261204_000013_favorites_version::Migration),
            Box::new(m20261204_000014_round_robin_last_agent::Migration),
            Box::new(m20261207_000015_message_changes::Migration),
            Box::new(m20261207_000016_room_changes::Migration),
            Box::new(m20261207_000017_channel_name_keys::Migration),
        ]
    }
}
