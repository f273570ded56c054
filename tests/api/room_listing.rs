//! Room listings: `viewer.rooms` and `rooms` with the default filter (the
//! viewer's live rooms, newest activity first), the `kind`, `unread`,
//! `archived` and `search` filters, cursor paging and the page-size limit.

use serde_json::json;

use crate::helpers::api::{create_channel, edge_ids, my_room_ids, open_dm, send};
use crate::helpers::{Backend, assert_error_code, spawn_app};

backend_tests!(room_listing_filters_and_pages);

async fn room_listing_filters_and_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let dm = open_dm(&app, &alice, &[&bob]).await;
    let beta = create_channel(&app, &alice, "beta", &[&bob]).await;
    let alpha = create_channel(&app, &alice, "alpha", &[&bob]).await;
    // Activity order, newest last: dm, beta, alpha.
    send(&app, &alice, &dm, "psst").await;
    send(&app, &alice, &beta, "beta news").await;
    send(&app, &bob, &alpha, "alpha news").await;

    let all = vec![alpha.clone(), beta.clone(), dm.clone()];
    assert_eq!(my_room_ids(&app, &alice, json!(null)).await, all, "newest activity first");
    let top_level = app.ok(&alice, "{ rooms(first: 100) { edges { node { id } } } }", json!({})).await;
    assert_eq!(edge_ids(&top_level["rooms"]), all);
    assert_eq!(
        my_room_ids(&app, &alice, json!({ "kind": "CHANNEL" })).await,
        vec![alpha.clone(), beta.clone()]
    );
    assert_eq!(my_room_ids(&app, &alice, json!({ "kind": "DIRECT" })).await, vec![dm.clone()]);
    assert_eq!(my_room_ids(&app, &alice, json!({ "unread": true })).await, vec![alpha.clone()]);
    assert_eq!(my_room_ids(&app, &alice, json!({ "search": "alp" })).await, vec![alpha.clone()]);

    let page = "query($after: String) { viewer { rooms(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }";
    let first = app.ok(&alice, page, json!({ "after": null })).await["viewer"]["rooms"].clone();
    assert_eq!(edge_ids(&first), vec![alpha, beta]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let second =
        app.ok(&alice, page, json!({ "after": first["pageInfo"]["endCursor"] })).await["viewer"]["rooms"]
            .clone();
    assert_eq!(edge_ids(&second), vec![dm]);
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let too_many = app.gql(&alice, "{ rooms(first: 101) { edges { node { id } } } }", json!({})).await;
    assert_error_code(&too_many, "BAD_USER_INPUT");
    let search = "query($search: String) { rooms(filter: { search: $search }) { edges { node { id } } } }";
    let too_long = app.gql(&alice, search, json!({ "search": "a".repeat(257) })).await;
    assert_error_code(&too_long, "BAD_USER_INPUT");
}
