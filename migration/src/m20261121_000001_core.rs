//! The core tables: organisations, users, rooms, memberships, messages, and the settings
//! store that keeps a generated development JWT secret.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_core"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create().table("settings").col(string("key").primary_key()).col(text("value")).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("organizations")
                .col(uuid("id").primary_key())
                .col(string("name"))
                .col(string("slug").unique_key())
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("users")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(string("handle"))
                .col(string("display_name"))
                .col(string_null("email"))
                .col(string("role"))
                .col(string("kind"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("last_seen_at"))
                .col(timestamp_with_time_zone_null("deactivated_at"))
                .foreign_key(&mut fk("users", "org_id", "organizations"))
                .to_owned(),
        )
        .await?;
        m.create_index(unique_index("users_org_handle", "users", &["org_id", "handle"])).await?;

        m.create_table(
            Table::create()
                .table("rooms")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(string("kind"))
                .col(string_null("name"))
                .col(text_null("topic"))
                .col(string("visibility"))
                .col(string_null("dm_key"))
                .col(string_null("context_ref"))
                .col(big_integer("last_seq").default(0))
                .col(timestamp_with_time_zone_null("last_message_at"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("archived_at"))
                .col(timestamp_with_time_zone_null("deleted_at"))
                .foreign_key(&mut fk("rooms", "org_id", "organizations"))
                .to_owned(),
        )
        .await?;
        m.create_index(unique_index("rooms_org_dm_key", "rooms", &["org_id", "dm_key"])).await?;
        m.create_index(unique_index("rooms_org_context_ref", "rooms", &["org_id", "context_ref"])).await?;
        m.create_index(plain_index("rooms_org_activity", "rooms", &["org_id", "last_message_at"])).await?;
        // A channel name is unique among the organisation's live channels; archived or deleted
        // channels free their name. Partial indexes read the same on both backends.
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX rooms_org_live_channel_name ON rooms (org_id, name) \
             WHERE kind = 'channel' AND archived_at IS NULL AND deleted_at IS NULL",
        )
        .await?;

        m.create_table(
            Table::create()
                .table("room_members")
                .col(uuid("room_id"))
                .col(uuid("user_id"))
                .col(string("role"))
                .col(timestamp_with_time_zone("joined_at"))
                .col(big_integer("last_read_seq").default(0))
                .col(timestamp_with_time_zone_null("last_read_at"))
                .col(timestamp_with_time_zone_null("favorite_at"))
                .col(timestamp_with_time_zone_null("muted_until"))
                .primary_key(Index::create().col("room_id").col("user_id"))
                .foreign_key(&mut fk("room_members", "room_id", "rooms"))
                .foreign_key(&mut fk("room_members", "user_id", "users"))
                .to_owned(),
        )
        .await?;
        m.create_index(plain_index("room_members_user", "room_members", &["user_id"])).await?;

        m.create_table(
            Table::create()
                .table("messages")
                .col(uuid("id").primary_key())
                .col(uuid("org_id"))
                .col(uuid("room_id"))
                .col(big_integer("seq"))
                .col(uuid_null("author_user_id"))
                .col(uuid_null("author_contact_id"))
                .col(string("sender_role"))
                .col(text("body"))
                .col(string("source"))
                .col(string_null("external_id"))
                .col(string_null("client_id"))
                .col(uuid_null("reply_to_id"))
                .col(json_binary("attachments"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("edited_at"))
                .col(timestamp_with_time_zone_null("deleted_at"))
                .foreign_key(&mut fk("messages", "room_id", "rooms"))
                .to_owned(),
        )
        .await?;
        m.create_index(unique_index("messages_room_seq", "messages", &["room_id", "seq"])).await?;
        m.create_index(unique_index(
            "messages_room_author_client_id",
            "messages",
            &["room_id", "author_user_id", "client_id"],
        ))
        .await?;
        m.create_index(unique_index(
            "messages_org_source_external_id",
            "messages",
            &["org_id", "source", "external_id"],
        ))
        .await?;
        // Unread counts subtract deleted messages above a watermark; deletions are rare, so a
        // partial index keeps that subtraction from touching live message rows.
        db.execute_unprepared(
            "CREATE INDEX messages_room_deleted_seq ON messages (room_id, seq) \
             WHERE deleted_at IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["messages", "room_members", "rooms", "users", "organizations", "settings"] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

fn fk(from: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{from}_{column}")).from(from, column).to(to, "id").to_owned()
}

fn unique_index(name: &str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = plain_index(name, table, cols);
    index.unique();
    index
}

fn plain_index(name: &str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}
