//! Users and global lookups: `createUser` (org admins only), the `users`
//! directory with search and paging, and `node(id)` for every node type,
//! never leaking another organisation's objects; an organisation keeps an owner.

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::{Backend, assert_error_code, error_codes, spawn_app};

backend_tests!(
    create_user_is_for_org_admins,
    users_are_searched_within_the_org,
    node_resolves_every_kind,
    the_last_owner_stays_an_owner,
    an_update_with_nothing_to_change_is_refused,
);

const CREATE: &str =
    "mutation($input: CreateUserInput!) { createUser(input: $input) { id handle displayName role kind } }";
const USERS: &str = "query($search: String, $first: Int, $after: String) { users(search: $search, first: $first, after: $after) { \
    edges { node { id handle } } pageInfo { hasNextPage endCursor } } }";
const NODE: &str = "query($id: ID!) { node(id: $id) { id __typename \
    ... on Room { name } ... on User { handle } ... on Message { body seq } } }";

fn handles(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["handle"].as_str().expect("handle").to_owned())
        .collect()
}

async fn create_user_is_for_org_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let root = org.user_with_role("root", "admin").await;
    let alice = org.user("alice").await;

    let zed = app.ok(&root, CREATE, json!({ "input": { "handle": "zed", "displayName": "Zed" } })).await;
    assert_eq!(zed["createUser"]["handle"], "zed");
    assert_eq!(zed["createUser"]["displayName"], "Zed");
    assert_eq!(
        (zed["createUser"]["role"].clone(), zed["createUser"]["kind"].clone()),
        (json!("MEMBER"), json!("HUMAN"))
    );

    let input = json!({ "handle": "helper", "displayName": "Helper", "role": "AGENT", "kind": "BOT" });
    let bot = app.ok(&root, CREATE, json!({ "input": input })).await["createUser"].clone();
    assert_eq!((bot["role"].clone(), bot["kind"].clone()), (json!("AGENT"), json!("BOT")));

    let by_member =
        app.gql(&alice, CREATE, json!({ "input": { "handle": "eve", "displayName": "Eve" } })).await;
    assert_error_code(&by_member, "FORBIDDEN");
    let duplicate =
        app.gql(&root, CREATE, json!({ "input": { "handle": "zed", "displayName": "Zed 2" } })).await;
    assert_error_code(&duplicate, "CONFLICT");
    // Names no mention could reach: `@here.` is `@here` ending a sentence.
    for handle in ["here", "Channel", "everyone.", ".zed"] {
        let refused = app.gql(&root, CREATE, json!({ "input": { "handle": handle } })).await;
        assert_error_code(&refused, "BAD_USER_INPUT");
    }
    // A display name is one line that shows something.
    for name in ["\u{200B}", "Ghost\nthe admin"] {
        let input = json!({ "handle": "ghost", "displayName": name });
        assert_error_code(&app.gql(&root, CREATE, json!({ "input": input })).await, "BAD_USER_INPUT");
    }

    let all = app.ok(&alice, USERS, json!({ "first": 100 })).await;
    let mut seen = handles(&all["users"]);
    seen.sort();
    assert_eq!(
        seen,
        vec!["alice", "helper", "root", "zed"],
        "eve, the refused handles and ghost were not created, zed only once"
    );
}

async fn users_are_searched_within_the_org(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let alice = acme.user("alice").await;
    acme.user("bob").await;
    acme.user("carol").await;
    globex.user("bobby").await;

    let found = app.ok(&alice, USERS, json!({ "search": "bo" })).await;
    assert_eq!(handles(&found["users"]), vec!["bob"], "other organisations' users are never listed");
    let by_display_name = app.ok(&alice, USERS, json!({ "search": "Carol" })).await;
    assert_eq!(handles(&by_display_name["users"]), vec!["carol"]);

    let first = app.ok(&alice, USERS, json!({ "first": 2 })).await["users"].clone();
    assert_eq!(handles(&first).len(), 2);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest =
        app.ok(&alice, USERS, json!({ "first": 2, "after": first["pageInfo"]["endCursor"] })).await["users"]
            .clone();
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let mut everyone = [handles(&first), handles(&rest)].concat();
    everyone.sort();
    assert_eq!(everyone, vec!["alice", "bob", "carol"]);

    assert_error_code(&app.gql(&alice, USERS, json!({ "first": 101 })).await, "BAD_USER_INPUT");
    let long = "b".repeat(257);
    assert_error_code(&app.gql(&alice, USERS, json!({ "search": long })).await, "BAD_USER_INPUT");
    let longest = format!("  {}  ", "b".repeat(256));
    assert!(handles(&app.ok(&alice, USERS, json!({ "search": longest })).await["users"]).is_empty());
}

async fn node_resolves_every_kind(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let (alice, bob) = (acme.user("alice").await, acme.user("bob").await);
    let mallory = globex.user("mallory").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let message = id_of(&send(&app, &alice, &room, "hello").await);
    let theirs = create_channel(&app, &mallory, "theirs", &[]).await;
    let their_message = id_of(&send(&app, &mallory, &theirs, "secret").await);

    let node = |id: &str| app.ok(&alice, NODE, json!({ "id": id }));
    assert_eq!(node(&room).await["node"], json!({ "id": room, "__typename": "Room", "name": "general" }));
    assert_eq!(node(&bob.id).await["node"], json!({ "id": bob.id, "__typename": "User", "handle": "bob" }));
    assert_eq!(
        node(&message).await["node"],
        json!({ "id": message, "__typename": "Message", "body": "hello", "seq": 1 })
    );

    // Another organisation's ids, and unknown ids, resolve to nothing: null or NOT_FOUND.
    for id in [theirs, their_message, mallory.id.clone(), uuid::Uuid::now_v7().to_string()] {
        let response = app.gql(&alice, NODE, json!({ "id": id })).await;
        let codes = error_codes(&response);
        assert!(response["data"]["node"].is_null(), "node({id}) leaked {response:#}");
        assert!(codes.is_empty() || codes == ["NOT_FOUND"], "node({id}) failed with {codes:?}");
    }
    assert_error_code(&app.gql(&alice, NODE, json!({ "id": "nope" })).await, "BAD_USER_INPUT");
}

/// Nobody could make an owner again once the last one is gone, so the last active owner
/// cannot demote themselves; with a second owner, either may step down.
async fn the_last_owner_stays_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (olga, ada) = (org.user_with_role("olga", "owner").await, org.user_with_role("ada", "admin").await);
    let set_role =
        "mutation($id: ID!, $role: UserRole!) { updateUser(input: { userId: $id, role: $role }) { role } }";
    let role_of = |id: &str| app.ok(&ada, NODE_ROLE, json!({ "id": id }));

    for role in ["ADMIN", "MEMBER", "INTEGRATION"] {
        let refused = app.gql(&olga, set_role, json!({ "id": olga.id, "role": role })).await;
        assert_error_code(&refused, "BAD_USER_INPUT");
    }
    assert_eq!(role_of(&olga.id).await["node"]["role"], "OWNER", "nothing changed");

    app.ok(&olga, set_role, json!({ "id": ada.id, "role": "OWNER" })).await;
    app.ok(&olga, set_role, json!({ "id": olga.id, "role": "ADMIN" })).await;
    assert_eq!(role_of(&olga.id).await["node"]["role"], "ADMIN");
    // Now ada is the last one.
    let refused = app.gql(&ada, set_role, json!({ "id": ada.id, "role": "MEMBER" })).await;
    assert_error_code(&refused, "BAD_USER_INPUT");
    assert_eq!(role_of(&ada.id).await["node"]["role"], "OWNER");
}

/// `updateUser` with neither a name nor a role is refused, as `updateProfile` with nothing is,
/// for a user updating themselves and for an admin alike.
async fn an_update_with_nothing_to_change_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (ada, bob) = (org.user_with_role("ada", "admin").await, org.user("bob").await);
    let update = "mutation($id: ID!) { updateUser(input: { userId: $id }) { displayName role } }";
    for (viewer, user) in [(&bob, &bob), (&ada, &bob), (&ada, &ada)] {
        assert_error_code(&app.gql(viewer, update, json!({ "id": user.id })).await, "BAD_USER_INPUT");
    }
    let bob_now = app
        .ok(
            &ada,
            "query($id: ID!) { node(id: $id) { ... on User { displayName role } } }",
            json!({ "id": bob.id }),
        )
        .await;
    assert_eq!(bob_now["node"]["role"], "MEMBER", "nothing changed: {bob_now}");
}

const NODE_ROLE: &str = "query($id: ID!) { node(id: $id) { ... on User { role } } }";
