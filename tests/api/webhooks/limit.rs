//! An organisation keeps at most 50 live webhooks, also when admins create them at once.

use serde_json::{Value, json};

use super::{CREATE, DELETE, LIST, everything_to};
use crate::helpers::api::id_of;
use crate::helpers::{Backend, assert_error_code, spawn_app_alone};

backend_tests!(fifty_webhooks_at_most_even_when_created_at_once);

/// 60 creates sent together: 50 are created and 10 refused, where counting before inserting
/// let concurrent creates all pass. Deleting one frees its place; another organisation is not
/// counted against this one.
async fn fifty_webhooks_at_most_even_when_created_at_once(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let org = app.create_org().await;
    let (ada, cy) = (org.user_with_role("ada", "admin").await, org.user_with_role("cy", "admin").await);
    let other = app.create_org().await.user_with_role("eve", "admin").await;

    let creates = (0..60).map(|i| {
        let admin = if i % 2 == 0 { &ada } else { &cy };
        let input = everything_to(&format!("http://127.0.0.1:9/hook/{i}"));
        app.gql(admin, CREATE, json!({ "input": input }))
    });
    let answers: Vec<Value> = futures_util::future::join_all(creates).await;
    let (created, refused): (Vec<&Value>, Vec<&Value>) =
        answers.iter().partition(|a| a["data"]["createOutgoingWebhook"].is_object());
    assert_eq!((created.len(), refused.len()), (50, 10), "{answers:#?}");
    for answer in &refused {
        assert_error_code(answer, "BAD_USER_INPUT");
    }
    let listed = |list: Value| list["outgoingWebhooks"].as_array().map_or(0, Vec::len);
    assert_eq!(listed(app.ok(&ada, LIST, json!({})).await), 50);

    let other_url = everything_to("http://127.0.0.1:9/elsewhere");
    app.ok(&other, CREATE, json!({ "input": other_url })).await;
    let one_more = everything_to("http://127.0.0.1:9/one-more");
    assert_error_code(&app.gql(&ada, CREATE, json!({ "input": one_more.clone() })).await, "BAD_USER_INPUT");

    let freed = id_of(&created[0]["data"]["createOutgoingWebhook"]["webhook"]);
    app.ok(&ada, DELETE, json!({ "id": freed })).await;
    app.ok(&ada, CREATE, json!({ "input": one_more })).await;
    assert_eq!(listed(app.ok(&ada, LIST, json!({})).await), 50);
}
