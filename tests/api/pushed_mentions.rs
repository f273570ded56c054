//! A channel's push is for a mention: when the author edits the mention out before the push
//! goes (here, while it waits for its retry), it is cancelled rather than sent with text
//! that no longer mentions the recipient.

use serde_json::json;

use crate::helpers::api::{create_channel, send};
use crate::helpers::push::Browser;
use crate::helpers::receiver::Receiver;
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{Backend, WAIT};
use crate::personal_notifications::{REGISTER, delivery_to, own_app};

backend_tests!(a_push_for_a_mention_edited_out_is_cancelled,);

async fn a_push_for_a_mention_edited_out_is_cancelled(backend: Backend) {
    let smtp = SmtpSink::start().await;
    // Retries wait at least a second (2 s ± 50 %): time to edit.
    let (_database, app) = own_app(backend, &smtp, &[("PARLEY_WEBHOOK_RETRY_BASE_MS", "2000")]).await;
    let service = Receiver::start().await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let browser = Browser::new(format!("{}/push/alice-laptop", service.url));
    app.ok(&alice, REGISTER, json!({ "input": browser.subscription() })).await;
    let general = create_channel(&app, &bob, "general", &[&alice]).await;

    service.answer_with(&[503]);
    let sent = send(&app, &bob, &general, "@alice deploy?").await;
    service.wait_for(1, WAIT).await;
    let edit = "mutation($input: EditMessageInput!) { editMessage(input: $input) { body } }";
    app.ok(&bob, edit, json!({ "input": { "messageId": sent["id"], "body": "@bob deploy?" } })).await;

    let cancelled = delivery_to(&app, "PUSH", &alice, "CANCELLED").await;
    assert_eq!(cancelled["lastError"], "the message no longer mentions them");
    assert_eq!(service.received().len(), 1, "only the attempt that failed reached the push service");
}
