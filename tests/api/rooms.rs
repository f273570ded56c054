//! Channels: create, update, archive, join, leave, add and remove members,
//! with every access rule (another organisation's ids, private channels,
//! non-members, room and org roles); a private channel keeps a member and an owner.

use serde_json::json;

use crate::helpers::api::{
    create_channel, create_channel_query, create_private_channel, edge_ids, id_of, latest_seq, member_ids,
    members, my_room_ids, room, send, try_send,
};
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(
    create_channel_returns_the_room,
    duplicate_channel_name_conflicts,
    other_org_ids_are_not_found,
    private_channel_is_invisible_to_non_members,
    join_and_leave_public_channel,
    update_room_requires_room_or_org_admin,
    archive_room_makes_it_read_only_and_hidden,
    add_and_remove_members,
    a_private_channel_keeps_a_member_and_an_owner,
    deactivated_members_do_not_keep_a_private_channel,
    a_private_channel_whose_owner_is_deactivated_or_removed_gets_another,
);

const JOIN: &str = "mutation($id: ID!) { joinRoom(roomId: $id) { id viewerRole members { edges { node { user { id } } } } } }";
const LEAVE: &str = "mutation($id: ID!) { leaveRoom(roomId: $id) }";
const UPDATE: &str = "mutation($input: UpdateRoomInput!) { updateRoom(input: $input) { id name topic } }";
const ARCHIVE: &str = "mutation($id: ID!) { archiveRoom(roomId: $id) { id archivedAt } }";
const ADD: &str = "mutation($id: ID!, $users: [ID!]!) { addMembers(roomId: $id, userIds: $users) { id members { edges { node { user { id } } } } } }";
const REMOVE: &str = "mutation($id: ID!, $user: ID!) { removeMember(roomId: $id, userId: $user) { id members { edges { node { user { id } } } } } }";
const OPEN_DM: &str = "mutation($ids: [ID!]!) { openDirectRoom(userIds: $ids) { id kind members { edges { node { user { id } } } } } }";
const ROOM_BY_ID: &str = "query($id: ID!) { room(id: $id) { id name } }";
const MESSAGES: &str = "query($id: ID!) { messages(roomId: $id) { edges { node { id } } } }";

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn create_channel_returns_the_room(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);

    let input = json!({ "name": "general", "topic": "All hands", "memberIds": [bob.id] });
    let created =
        app.ok(&alice, &create_channel_query(), json!({ "input": input })).await["createChannel"].clone();
    assert_eq!(created["kind"], "CHANNEL");
    assert_eq!(created["name"], "general");
    assert_eq!(created["topic"], "All hands");
    assert_eq!(created["visibility"], "PUBLIC");
    assert_eq!(created["viewerRole"], "OWNER");
    assert!(created["archivedAt"].is_null() && created["lastMessage"].is_null());
    assert!(created["createdAt"].is_string());
    assert_eq!((created["latestSeq"].as_i64(), created["unreadCount"].as_i64()), (Some(0), Some(0)));
    assert_eq!(member_ids(&created), sorted(vec![alice.id.clone(), bob.id.clone()]));
    let roles: Vec<_> =
        members(&created).iter().map(|m| (m["user"]["id"].clone(), m["role"].clone())).collect();
    assert!(roles.contains(&(json!(alice.id), json!("OWNER"))), "{roles:?}");
    assert!(roles.contains(&(json!(bob.id), json!("MEMBER"))), "{roles:?}");

    let id = id_of(&created);
    let seen_by_bob = room(&app, &bob, &id).await;
    assert_eq!(
        (seen_by_bob["name"].clone(), seen_by_bob["viewerRole"].clone()),
        (json!("general"), json!("MEMBER"))
    );
    assert_eq!(seen_by_bob["createdAt"], created["createdAt"], "the time answered is the time kept");
    assert_eq!(my_room_ids(&app, &bob, json!(null)).await, vec![id]);
}

async fn duplicate_channel_name_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let alice = acme.user("alice").await;
    let bob = acme.user("bob").await;
    let mallory = globex.user("mallory").await;
    create_channel(&app, &alice, "general", &[]).await;

    // Whatever the case, as in Slack: `General` would be a second #general.
    for name in ["general", "General", "#GENERAL"] {
        let again = app.gql(&bob, &create_channel_query(), json!({ "input": { "name": name } })).await;
        assert_error_code(&again, "CONFLICT");
    }
    // Nor does one with an invisible character in it, which would look the same; a line
    // break is no part of a name.
    for name in ["gen\u{200B}eral", "gen\u{AD}eral", "general\u{FE0F}"] {
        let lookalike = app.gql(&bob, &create_channel_query(), json!({ "input": { "name": name } })).await;
        assert_error_code(&lookalike, "CONFLICT");
    }
    let two_lines = json!({ "input": { "name": "general\nsecond line" } });
    assert_error_code(&app.gql(&bob, &create_channel_query(), two_lines).await, "BAD_USER_INPUT");
    assert!(my_room_ids(&app, &bob, json!(null)).await.is_empty(), "the failed create left nothing behind");
    // One name whatever its Unicode form: `É` typed as `E` and a combining accent is `É`.
    let equipe = create_channel(&app, &bob, "E\u{301}quipe", &[]).await;
    assert_eq!(room(&app, &bob, &equipe).await["name"], "Équipe");
    let clash = app.gql(&bob, UPDATE, json!({ "input": { "roomId": equipe, "name": "GENERAL" } })).await;
    assert_error_code(&clash, "CONFLICT");
    let taken = app.gql(&alice, &create_channel_query(), json!({ "input": { "name": "éQUIPE" } })).await;
    assert_error_code(&taken, "CONFLICT");
    // A channel renamed in its own case keeps its name; one archived frees it.
    let renamed = app.ok(&bob, UPDATE, json!({ "input": { "roomId": equipe, "name": "ÉQUIPE" } })).await;
    assert_eq!(renamed["updateRoom"]["name"], "ÉQUIPE");
    app.ok(&bob, ARCHIVE, json!({ "id": equipe })).await;
    create_channel(&app, &alice, "équipe", &[]).await;
    // Names are unique per organisation only.
    create_channel(&app, &mallory, "general", &[]).await;
}

async fn other_org_ids_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let alice = acme.user("alice").await;
    let mallory = globex.user("mallory").await;
    let theirs = create_channel(&app, &mallory, "public-there", &[]).await;
    let mine = create_channel(&app, &alice, "mine", &[]).await;

    for (query, vars) in [
        (ROOM_BY_ID, json!({ "id": theirs })),
        (JOIN, json!({ "id": theirs })),
        (MESSAGES, json!({ "id": theirs })),
        (ARCHIVE, json!({ "id": theirs })),
        (UPDATE, json!({ "input": { "roomId": theirs, "name": "pwned" } })),
        (ADD, json!({ "id": mine, "users": [mallory.id] })),
        (OPEN_DM, json!({ "ids": [mallory.id] })),
        (ROOM_BY_ID, json!({ "id": uuid::Uuid::now_v7().to_string() })),
    ] {
        let response = app.gql(&alice, query, vars).await;
        assert_error_code(&response, "NOT_FOUND");
    }
    assert_error_code(&try_send(&app, &alice, json!({ "roomId": theirs, "body": "hi" })).await, "NOT_FOUND");
    assert_error_code(&app.gql(&alice, ROOM_BY_ID, json!({ "id": "not-a-uuid" })).await, "BAD_USER_INPUT");
    assert_error_code(&app.gql(&alice, JOIN, json!({ "id": "42" })).await, "BAD_USER_INPUT");

    let untouched = room(&app, &mallory, &theirs).await;
    assert_eq!(
        (untouched["name"].clone(), untouched["latestSeq"].clone()),
        (json!("public-there"), json!(0))
    );
    assert_eq!(member_ids(&untouched), vec![mallory.id.clone()]);
    assert_eq!(member_ids(&room(&app, &alice, &mine).await), vec![alice.id.clone()]);
}

async fn private_channel_is_invisible_to_non_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let secret = create_private_channel(&app, &alice, "secret", &[&bob]).await;
    send(&app, &alice, &secret, "for members only").await;

    assert_eq!(room(&app, &bob, &secret).await["visibility"], "PRIVATE");
    for (query, vars) in [
        (ROOM_BY_ID, json!({ "id": secret })),
        (JOIN, json!({ "id": secret })),
        (MESSAGES, json!({ "id": secret })),
        (LEAVE, json!({ "id": secret })),
    ] {
        assert_error_code(&app.gql(&carol, query, vars).await, "NOT_FOUND");
    }
    assert_error_code(
        &try_send(&app, &carol, json!({ "roomId": secret, "body": "let me in" })).await,
        "NOT_FOUND",
    );
    let listed = app
        .ok(&carol, "{ rooms(filter: { search: \"secret\" }) { edges { node { id } } } }", json!({}))
        .await;
    assert!(edge_ids(&listed["rooms"]).is_empty(), "private room listed to a non-member: {listed}");
    assert_eq!(latest_seq(&app, &alice, &secret).await, 1);
}

async fn join_and_leave_public_channel(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, carol) = (org.user("alice").await, org.user("carol").await);
    let random = create_channel(&app, &alice, "random", &[]).await;

    let not_joined = try_send(&app, &carol, json!({ "roomId": random, "body": "hi" })).await;
    assert_error_code(&not_joined, "FORBIDDEN");

    let joined = app.ok(&carol, JOIN, json!({ "id": random })).await["joinRoom"].clone();
    assert_eq!(joined["viewerRole"], "MEMBER");
    assert_eq!(member_ids(&joined), sorted(vec![alice.id.clone(), carol.id.clone()]));
    assert_eq!(send(&app, &carol, &random, "hi all").await["seq"], 1);
    assert_eq!(my_room_ids(&app, &carol, json!(null)).await, vec![random.clone()]);

    assert_eq!(app.ok(&carol, LEAVE, json!({ "id": random })).await["leaveRoom"], true);
    assert!(my_room_ids(&app, &carol, json!(null)).await.is_empty());
    assert_error_code(
        &try_send(&app, &carol, json!({ "roomId": random, "body": "still here?" })).await,
        "FORBIDDEN",
    );
    assert_eq!(member_ids(&room(&app, &alice, &random).await), vec![alice.id.clone()]);
    assert_eq!(latest_seq(&app, &alice, &random).await, 1);
}

async fn update_room_requires_room_or_org_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let root = org.user_with_role("root", "admin").await;
    let id = create_channel(&app, &alice, "general", &[&bob]).await;

    let renamed = app
        .ok(&alice, UPDATE, json!({ "input": { "roomId": id, "name": "lobby", "topic": "Say hi" } }))
        .await;
    assert_eq!(renamed["updateRoom"], json!({ "id": id, "name": "lobby", "topic": "Say hi" }));

    let by_member = app.gql(&bob, UPDATE, json!({ "input": { "roomId": id, "name": "mine" } })).await;
    assert_error_code(&by_member, "FORBIDDEN");
    assert_eq!(room(&app, &alice, &id).await["name"], "lobby");

    let by_org_admin =
        app.ok(&root, UPDATE, json!({ "input": { "roomId": id, "topic": "Moderated" } })).await;
    assert_eq!(by_org_admin["updateRoom"]["topic"], "Moderated");
    assert_eq!(by_org_admin["updateRoom"]["name"], "lobby", "an omitted field is unchanged");
}

async fn archive_room_makes_it_read_only_and_hidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let id = create_channel(&app, &alice, "old-project", &[&bob]).await;
    send(&app, &bob, &id, "last words").await;

    assert_error_code(&app.gql(&bob, ARCHIVE, json!({ "id": id })).await, "FORBIDDEN");
    assert!(room(&app, &bob, &id).await["archivedAt"].is_null());

    let archived = app.ok(&alice, ARCHIVE, json!({ "id": id })).await["archiveRoom"].clone();
    assert!(archived["archivedAt"].is_string(), "{archived}");
    let refused = try_send(&app, &bob, json!({ "roomId": id, "body": "anyone?" })).await;
    assert_error_code(&refused, "FORBIDDEN");
    assert_eq!(latest_seq(&app, &bob, &id).await, 1, "the refused message was not stored");

    assert!(my_room_ids(&app, &bob, json!(null)).await.is_empty(), "archived rooms are hidden by default");
    assert_eq!(my_room_ids(&app, &bob, json!({ "archived": true })).await, vec![id.clone()]);
    assert_eq!(
        room(&app, &bob, &id).await["archivedAt"],
        archived["archivedAt"],
        "archived rooms stay readable"
    );
}

async fn add_and_remove_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let (acme, globex) = (app.create_org().await, app.create_org().await);
    let (alice, bob, carol) = (acme.user("alice").await, acme.user("bob").await, acme.user("carol").await);
    let mallory = globex.user("mallory").await;
    let team = create_private_channel(&app, &alice, "team", &[]).await;

    let added =
        app.ok(&alice, ADD, json!({ "id": team, "users": [bob.id, carol.id] })).await["addMembers"].clone();
    assert_eq!(member_ids(&added), sorted(vec![alice.id.clone(), bob.id.clone(), carol.id.clone()]));
    assert_eq!(room(&app, &carol, &team).await["viewerRole"], "MEMBER");

    assert_error_code(&app.gql(&bob, REMOVE, json!({ "id": team, "user": alice.id })).await, "FORBIDDEN");
    assert_error_code(&app.gql(&alice, ADD, json!({ "id": team, "users": [mallory.id] })).await, "NOT_FOUND");
    assert_error_code(
        &app.gql(&alice, ADD, json!({ "id": team, "users": ["nope"] })).await,
        "BAD_USER_INPUT",
    );
    // Past 1 000 ids a call is refused whole, before one is looked up.
    let many: Vec<String> = (0..1001).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_error_code(&app.gql(&alice, ADD, json!({ "id": team, "users": many })).await, "BAD_USER_INPUT");

    let removed =
        app.ok(&alice, REMOVE, json!({ "id": team, "user": carol.id })).await["removeMember"].clone();
    assert_eq!(member_ids(&removed), sorted(vec![alice.id.clone(), bob.id.clone()]));
    assert_error_code(&app.gql(&carol, ROOM_BY_ID, json!({ "id": team })).await, "NOT_FOUND");
    assert_error_code(
        &try_send(&app, &carol, json!({ "roomId": team, "body": "hello?" })).await,
        "NOT_FOUND",
    );
    assert_eq!(latest_seq(&app, &alice, &team).await, 0);
}

/// Nobody outside a private channel sees it, org admins included. So when its owner leaves,
/// the member who joined first becomes its owner, and its last member cannot leave it, even
/// archived: they archive it, which frees its name.
async fn a_private_channel_keeps_a_member_and_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let launch = create_private_channel(&app, &alice, "launch", &[&bob]).await;
    app.ok(&alice, ADD, json!({ "id": launch, "users": [carol.id] })).await;
    let role = "query($id: ID!) { room(id: $id) { viewerRole archivedAt } }";

    app.ok(&alice, LEAVE, json!({ "id": launch })).await;
    assert_eq!(app.ok(&bob, role, json!({ "id": launch })).await["room"]["viewerRole"], "OWNER");
    assert_eq!(app.ok(&carol, role, json!({ "id": launch })).await["room"]["viewerRole"], "MEMBER");
    let renamed = json!({ "input": { "roomId": launch, "name": "launch-2027" } });
    assert_eq!(app.ok(&bob, UPDATE, renamed).await["updateRoom"]["name"], "launch-2027");

    app.ok(&bob, REMOVE, json!({ "id": launch, "user": carol.id })).await;
    assert_error_code(&app.gql(&bob, LEAVE, json!({ "id": launch })).await, "BAD_USER_INPUT");
    assert_error_code(
        &app.gql(&bob, REMOVE, json!({ "id": launch, "user": bob.id })).await,
        "BAD_USER_INPUT",
    );
    assert_eq!(
        app.ok(&bob, role, json!({ "id": launch })).await["room"]["viewerRole"],
        "OWNER",
        "still in it"
    );

    // Archived, it frees its name, and still keeps its last member.
    app.ok(&bob, ARCHIVE, json!({ "id": launch })).await;
    create_private_channel(&app, &carol, "launch-2027", &[]).await;
    assert_error_code(&app.gql(&bob, LEAVE, json!({ "id": launch })).await, "BAD_USER_INPUT");
}

/// Deactivated members cannot reach a private channel either: they are no heirs, and do
/// not make its last active member's leave possible.
async fn deactivated_members_do_not_keep_a_private_channel(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let root = org.user_with_role("root", "admin").await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let launch = create_private_channel(&app, &alice, "launch", &[&bob]).await;
    app.ok(&alice, ADD, json!({ "id": launch, "users": [carol.id] })).await;
    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { id } }";
    app.ok(&root, deactivate, json!({ "id": bob.id })).await;

    app.ok(&alice, LEAVE, json!({ "id": launch })).await;
    let role = "query($id: ID!) { room(id: $id) { viewerRole } }";
    assert_eq!(app.ok(&carol, role, json!({ "id": launch })).await["room"]["viewerRole"], "OWNER", "not bob");
    assert_error_code(&app.gql(&carol, LEAVE, json!({ "id": launch })).await, "BAD_USER_INPUT");
}

/// A private channel's owner deactivated by an admin: the member who joined first becomes
/// its owner, and may archive it (its members were left unable to manage, archive or, the
/// last of them, leave it). The same when a member who is an org admin removes its owner.
/// One whose last active member is deactivated is archived, and its name is free again.
async fn a_private_channel_whose_owner_is_deactivated_or_removed_gets_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let root = org.user_with_role("root", "admin").await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    let role = "query($id: ID!) { room(id: $id) { viewerRole } }";

    let launch = create_private_channel(&app, &alice, "launch", &[&bob]).await;
    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { id } }";
    app.ok(&root, deactivate, json!({ "id": alice.id })).await;
    assert_eq!(app.ok(&bob, role, json!({ "id": launch })).await["room"]["viewerRole"], "OWNER");
    let archived = app.ok(&bob, ARCHIVE, json!({ "id": launch })).await;
    assert!(archived["archiveRoom"]["archivedAt"].is_string(), "{archived}");

    let plans = create_private_channel(&app, &carol, "plans", &[&bob]).await;
    app.ok(&carol, ADD, json!({ "id": plans, "users": [root.id] })).await;
    app.ok(&root, REMOVE, json!({ "id": plans, "user": carol.id })).await;
    assert_eq!(
        app.ok(&bob, role, json!({ "id": plans })).await["room"]["viewerRole"],
        "OWNER",
        "joined first"
    );
    app.ok(&root, LEAVE, json!({ "id": plans })).await;
    let update = json!({ "input": { "roomId": plans, "name": "plans-2" } });
    assert_eq!(app.ok(&bob, UPDATE, update).await["updateRoom"]["name"], "plans-2");

    // Its last active member deactivated, a private channel is archived, which frees its name.
    app.ok(&root, deactivate, json!({ "id": bob.id })).await;
    let input = json!({ "name": "plans-2" });
    assert_eq!(
        app.ok(&carol, &create_channel_query(), json!({ "input": input })).await["createChannel"]["name"],
        "plans-2"
    );
}
