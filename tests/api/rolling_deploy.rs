//! A rolling deploy (PostgreSQL + Redis only): a newer release's migration adds columns while
//! an older instance keeps serving with the statements it prepared before the migration.

use serde_json::json;

use crate::cross_instance::psql;
use crate::helpers::api::{create_channel, room, send};
use crate::helpers::services::OwnDatabase;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, spawn_app_with};

pg_test!(statements_prepared_before_a_migration_keep_working);

const FEED: &str = "subscription($room: ID) { messageAdded(roomId: $room) { seq body } }";

async fn statements_prepared_before_a_migration_keep_working() {
    // Its own database: the migration below must not reach other tests' servers.
    let db = OwnDatabase::create();
    let app = spawn_app_with(Backend::PostgresRedis, &[("DATABASE_URL", db.url.as_str())]).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let channel = create_channel(&app, &alice, "deploy", &[&bob]).await;
    let mut ws = WsClient::connect(&app, &bob).await;
    let mut feed = ws.subscribe("feed", FEED, json!({ "room": channel })).await;
    send(&app, &alice, &channel, "before").await;
    assert_eq!(room(&app, &bob, &channel).await["lastMessage"]["body"], "before");

    let migration = "ALTER TABLE rooms ADD COLUMN added_later integer; \
                     ALTER TABLE messages ADD COLUMN added_later integer; \
                     ALTER TABLE room_members ADD COLUMN added_later integer";
    assert!(psql(&db.url, migration).await, "the newer release's migration ran");

    for body in ["after", "and again"] {
        assert_eq!(send(&app, &alice, &channel, body).await["body"], body);
    }
    let summary = room(&app, &bob, &channel).await;
    assert_eq!(
        (summary["latestSeq"].clone(), summary["lastMessage"]["body"].clone()),
        (json!(3), json!("and again"))
    );
    let delivered: Vec<_> =
        [feed.next("messageAdded").await, feed.next("messageAdded").await, feed.next("messageAdded").await]
            .iter()
            .map(|m| m["body"].clone())
            .collect();
    assert_eq!(delivered, [json!("before"), json!("after"), json!("and again")]);
}
