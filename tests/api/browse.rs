//! Browsing channels (`rooms(filter: {joined: false})`): the organisation's public channels
//! the viewer has not joined, by name, with member counts — never private channels, direct
//! rooms, archived ones (unless asked) or another organisation's. And `Room.members` as a
//! connection: paged in joining order, with `totalCount`.

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, create_private_channel, id_of, open_dm};
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, spawn_app};

backend_tests!(
    browse_lists_only_unjoined_public_channels_of_the_organisation,
    members_are_paged_with_a_total
);

const BROWSE: &str = "query($search: String, $archived: Boolean, $unread: Boolean) { rooms(filter: { joined: false, \
    search: $search, archived: $archived, unread: $unread }, first: 50) { edges { node { id name members { totalCount } } } } }";
const MEMBERS: &str = "query($id: ID!, $first: Int, $after: String) { room(id: $id) { members(first: $first, after: $after) { \
    totalCount edges { cursor node { user { id } } } pageInfo { hasNextPage endCursor } } } }";

async fn browse(app: &TestApp, user: &TestUser, variables: Value) -> Vec<(String, i64)> {
    let page = app.ok(user, BROWSE, variables).await;
    let edges = page["rooms"]["edges"].as_array().expect("edges").clone();
    edges
        .iter()
        .map(|e| {
            (
                e["node"]["name"].as_str().unwrap_or("").to_owned(),
                e["node"]["members"]["totalCount"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

async fn browse_lists_only_unjoined_public_channels_of_the_organisation(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let zeta = create_channel(&app, &bob, "zeta", &[&carol]).await;
    create_channel(&app, &bob, "alpha", &[]).await;
    create_channel(&app, &alice, "beta", &[]).await;
    // Case does not decide the order: `Beta two` comes after `alpha` and `beta`.
    create_channel(&app, &alice, "Beta two", &[]).await;
    create_private_channel(&app, &bob, "gamma", &[&carol]).await;
    open_dm(&app, &bob, &[&carol]).await;
    let delta = create_channel(&app, &bob, "delta", &[]).await;
    app.ok(&bob, "mutation($id: ID!) { archiveRoom(roomId: $id) { id } }", json!({ "id": delta })).await;
    let other = app.create_org().await.user("olga").await;
    create_channel(&app, &other, "omega", &[]).await;

    assert_eq!(browse(&app, &alice, json!({})).await, [("alpha".to_owned(), 1), ("zeta".to_owned(), 2)]);
    assert_eq!(browse(&app, &alice, json!({ "search": "ZET" })).await, [("zeta".to_owned(), 2)]);
    assert_eq!(browse(&app, &alice, json!({ "archived": true })).await, [("delta".to_owned(), 1)]);
    assert_eq!(
        browse(&app, &carol, json!({})).await,
        [("alpha".to_owned(), 1), ("beta".to_owned(), 1), ("Beta two".to_owned(), 1)]
    );

    app.ok(&alice, "mutation($id: ID!) { joinRoom(roomId: $id) { id } }", json!({ "id": zeta })).await;
    assert_eq!(browse(&app, &alice, json!({})).await, [("alpha".to_owned(), 1)]);
    assert_error_code(&app.gql(&alice, BROWSE, json!({ "unread": true })).await, "BAD_USER_INPUT");
}

async fn members_are_paged_with_a_total(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let owner = org.user("owner").await;
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(org.user(&format!("member{i}")).await);
    }
    let room = create_channel(&app, &owner, "crowd", &[]).await;
    let mut joined = vec![owner.id.clone()];
    for member in &others {
        app.ok(member, "mutation($id: ID!) { joinRoom(roomId: $id) { id } }", json!({ "id": room })).await;
        joined.push(member.id.clone());
    }

    let (mut seen, mut after) = (Vec::new(), Value::Null);
    loop {
        let page = app.ok(&owner, MEMBERS, json!({ "id": room, "first": 2, "after": after })).await;
        let members = &page["room"]["members"];
        assert_eq!(members["totalCount"], 5);
        let edges = members["edges"].as_array().expect("edges");
        assert!(edges.len() <= 2);
        seen.extend(edges.iter().map(|e| id_of(&e["node"]["user"])));
        if members["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = members["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, joined, "every member once, in joining order");
    assert_error_code(&app.gql(&owner, MEMBERS, json!({ "id": room, "first": 101 })).await, "BAD_USER_INPUT");
}
