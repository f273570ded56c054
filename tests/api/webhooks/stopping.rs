//! What ends a webhook's posts: its deletion (between two attempts of a retried delivery), and
//! its creator no longer being an active admin.

use serde_json::json;

use super::{DELETE, Hooked, PAST_A_POLL, deliveries, delivery_of, everything_to, hooked, register};
use crate::helpers::api::{create_channel, id_of, send};
use crate::helpers::receiver::Receiver;
use crate::helpers::{Backend, WAIT, spawn_app_alone};

backend_tests!(
    a_deleted_webhook_gets_nothing_more,
    a_demoted_or_deactivated_admins_webhook_gets_nothing_more
);

async fn a_deleted_webhook_gets_nothing_more(backend: Backend) {
    // Retries wait at least a second, so the deletion lands between two attempts.
    let Hooked { _database, app, receiver, ada, bob, general, webhook: id } =
        hooked(backend, &[("PARLEY_WEBHOOK_RETRY_BASE_MS", "2000")]).await;

    receiver.answer_with(&[500]);
    let message = id_of(&send(&app, &bob, &general, "retried later").await);
    receiver.wait_for(1, WAIT).await;
    app.ok(&ada, DELETE, json!({ "id": id })).await;
    let failed = delivery_of(&app, &ada, &message, "FAILED").await;
    assert_eq!(failed["lastError"], "the webhook no longer exists");
    let after = id_of(&send(&app, &bob, &general, "after the deletion").await);
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(receiver.received().len(), 1, "nothing after the deletion");
    assert!(
        deliveries(&app, &ada).await.iter().all(|d| d["messageId"] != after.as_str()),
        "no delivery is even queued for a deleted webhook"
    );
}

/// A webhook stops with its creator's admin rights: once they are demoted or deactivated, a
/// public channel's messages (which the whole organisation reads) are no longer posted to it.
async fn a_demoted_or_deactivated_admins_webhook_gets_nothing_more(backend: Backend) {
    let (_database, app) = spawn_app_alone(backend).await;
    let receiver = Receiver::start().await;
    let org = app.create_org().await;
    let (ada, amy) = (org.user_with_role("ada", "admin").await, org.user_with_role("amy", "admin").await);
    let bob = org.user("bob").await;
    let general = create_channel(&app, &ada, "general", &[&bob]).await;
    register(&app, &amy, everything_to(&receiver.url)).await;
    let refused = "the webhook's creator is no longer an active admin";
    let set_role =
        "mutation($id: ID!, $role: UserRole) { updateUser(input: { userId: $id, role: $role }) { role } }";

    app.ok(&ada, set_role, json!({ "id": amy.id, "role": "MEMBER" })).await;
    let demoted = id_of(&send(&app, &bob, &general, "after the demotion").await);
    assert_eq!(delivery_of(&app, &ada, &demoted, "FAILED").await["lastError"], refused);
    app.ok(&ada, set_role, json!({ "id": amy.id, "role": "ADMIN" })).await;
    send(&app, &bob, &general, "an admin again").await;
    receiver.wait_for(1, WAIT).await;

    let deactivate = "mutation($id: ID!) { deactivateUser(userId: $id) { deactivatedAt } }";
    app.ok(&ada, deactivate, json!({ "id": amy.id })).await;
    let after = id_of(&send(&app, &bob, &general, "after the deactivation").await);
    assert_eq!(delivery_of(&app, &ada, &after, "FAILED").await["lastError"], refused);
    assert_eq!(receiver.received().len(), 1, "only what was sent while amy was an admin");
}
