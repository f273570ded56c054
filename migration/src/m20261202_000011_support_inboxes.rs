//! Support inboxes: contacts, inboxes and their agents, conversations (support rooms) and the
//! log of assignment decisions.
//!
//! `contacts`: external customers, unique per organisation on each of phone, email and
//! external reference (partial unique indexes: most contacts have only one of them).
//!
//! `support_inboxes`: the assignment strategy (`manual`, `round_robin`, `least_busy`), the
//! agent capacity (open conversations per agent; null: no limit), the inbound webhook secret,
//! the outbound webhook URL, and the round-robin cursor (how many assignments it made).
//!
//! `support_inbox_members`: an inbox's agents, `active` or paused, each with `open_assigned`,
//! the open conversations assigned to them, kept as a counter so a decision reads no
//! conversations.
//!
//! `rooms` gains the conversation's inbox, contact, status, assignee, snooze and the moments
//! of its first agent reply and resolution; one conversation per inbox and contact.
//!
//! `assignment_decisions`: why each conversation went to whom (or waited).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000011_support_inboxes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("contacts")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(string_null("display_name"))
                .col(string_null("phone"))
                .col(string_null("email"))
                .col(string_null("external_ref"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut reference("contacts", "org_id", "organizations"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        for column in ["phone", "email", "external_ref"] {
            db.execute_unprepared(&format!(
                "CREATE UNIQUE INDEX contacts_org_{column} ON contacts (org_id, {column}) WHERE {column} IS NOT NULL"
            ))
            .await?;
        }
        m.create_table(
            Table::create()
                .table("support_inboxes")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(string("name"))
                .col(string("assignment"))
                .col(integer_null("agent_capacity"))
                .col(string("webhook_secret"))
                .col(text_null("outbound_webhook_url"))
                .col(big_integer("round_robin_cursor").default(0))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut reference("support_inboxes", "org_id", "organizations"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("support_inboxes_org").table("support_inboxes").col("org_id").to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("support_inbox_members")
                .col(uuid("inbox_id"))
                .col(uuid("user_id"))
                .col(boolean("active"))
                .col(integer("open_assigned").default(0))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("inbox_id").col("user_id"))
                .foreign_key(&mut reference("support_inbox_members", "inbox_id", "support_inboxes"))
                .foreign_key(&mut reference("support_inbox_members", "user_id", "users"))
                .to_owned(),
        )
        .await?;
        // One column per statement: what SQLite's ALTER TABLE takes.
        for column in [uuid_null("inbox_id"), uuid_null("contact_id"), uuid_null("assignee_id")] {
            m.alter_table(Table::alter().table("rooms").add_column(column).to_owned()).await?;
        }
        for column in [
            ColumnDef::new("status").string_len(16).null().to_owned(),
            timestamp_with_time_zone_null("snoozed_until"),
            timestamp_with_time_zone_null("first_response_at"),
            timestamp_with_time_zone_null("resolved_at"),
        ] {
            m.alter_table(Table::alter().table("rooms").add_column(column).to_owned()).await?;
        }
        db.execute_unprepared(
            "CREATE UNIQUE INDEX rooms_inbox_contact ON rooms (inbox_id, contact_id) WHERE inbox_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX rooms_snoozed ON rooms (snoozed_until) WHERE status = 'snoozed'")
            .await?;
        m.create_index(
            Index::create()
                .name("rooms_inbox_status")
                .table("rooms")
                .col("inbox_id")
                .col("status")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("assignment_decisions")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(uuid("room_id"))
                .col(string("strategy"))
                .col(text("candidates"))
                .col(uuid_null("chosen_id"))
                .col(text("reason"))
                .col(timestamp_with_time_zone("decided_at"))
                .foreign_key(&mut reference("assignment_decisions", "room_id", "rooms"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("assignment_decisions_room")
                .table("assignment_decisions")
                .col("room_id")
                .col("decided_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("assignment_decisions").to_owned()).await?;
        let db = m.get_connection();
        for index in ["rooms_inbox_contact", "rooms_snoozed", "rooms_inbox_status"] {
            db.execute_unprepared(&format!("DROP INDEX {index}")).await?;
        }
        for column in [
            "inbox_id",
            "contact_id",
            "assignee_id",
            "status",
            "snoozed_until",
            "first_response_at",
            "resolved_at",
        ] {
            m.alter_table(Table::alter().table("rooms").drop_column(column).to_owned()).await?;
        }
        m.drop_table(Table::drop().table("support_inbox_members").to_owned()).await?;
        m.drop_table(Table::drop().table("support_inboxes").to_owned()).await?;
        m.drop_table(Table::drop().table("contacts").to_owned()).await
    }
}

fn reference(table: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}_{column}")).from(table, column).to(to, "id").to_owned()
}
