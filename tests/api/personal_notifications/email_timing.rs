//! When an email goes: a message written after the recipient read the batch waits its own
//! delay, someone away by hand with a tab open is still emailed, and an SMTP server's
//! refusals are retried ("try later") or given up (refused outright).

use serde_json::json;

use super::{DELAY, deliveries, delivery_to, own_app, set_email};
use crate::helpers::api::{mark_read, open_dm, send};
use crate::helpers::smtp::SmtpSink;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, WAIT};

backend_tests!(
    a_message_after_reading_waits_its_own_delay,
    away_with_a_tab_open_is_still_emailed,
    refused_emails_are_retried_or_given_up,
);

/// A batch read before it was due, then written to again, waits for the new message's own
/// delay: the recipient is not emailed a second after it was sent, only if they leave it
/// unread for the whole delay.
async fn a_message_after_reading_waits_its_own_delay(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[]).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let alice_email = set_email(&app, &alice).await;
    let dm = open_dm(&app, &bob, &[&alice]).await;
    send(&app, &bob, &dm, "lunch?").await;
    mark_read(&app, &alice, &dm, None).await;
    tokio::time::sleep(DELAY * 3 / 4).await;

    let sent = tokio::time::Instant::now();
    send(&app, &bob, &dm, "free now?").await;
    let emails = smtp.wait_for(1, WAIT).await;
    let waited = sent.elapsed();
    assert!(waited >= DELAY, "emailed {waited:?} after the message, before its delay: {emails:#?}");
    assert_eq!(emails[0].to, vec![alice_email]);
    assert_eq!(emails[0].subject(), "1 unread message from Bob");
    assert!(emails[0].text().contains("free now?") && !emails[0].text().contains("lunch?"));
    let delivered = delivery_to(&app, "EMAIL", &alice, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 1, "the wait is not an attempt: {delivered}");
    // One batch, waited for: not a first one cancelled before the second message came.
    assert_eq!(deliveries(&app, &alice, "EMAIL").await.len(), 1);
}

/// Someone who set themselves away is emailed even with a tab open: an open tab is not
/// someone reading.
async fn away_with_a_tab_open_is_still_emailed(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[]).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let alice_email = set_email(&app, &alice).await;
    let _tab = WsClient::connect(&app, &alice).await;
    app.ok(&alice, "mutation { setPresence(status: AWAY) { status } }", json!({})).await;
    let dm = open_dm(&app, &bob, &[&alice]).await;

    send(&app, &bob, &dm, "back soon?").await;
    let emails = smtp.wait_for(1, WAIT).await;
    assert_eq!(emails[0].to, vec![alice_email]);
    assert!(emails[0].text().contains("back soon?"));
}

async fn refused_emails_are_retried_or_given_up(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[("PARLEY_WEBHOOK_MAX_ATTEMPTS", "2")]).await;
    let org = app.create_org().await;
    let (alice, bob, carol) = (org.user("alice").await, org.user("bob").await, org.user("carol").await);
    set_email(&app, &alice).await;
    set_email(&app, &carol).await;

    // "Try later" once: the next attempt delivers.
    smtp.answer_with(&[451]);
    send(&app, &bob, &open_dm(&app, &bob, &[&alice]).await, "hello alice").await;
    let delivered = delivery_to(&app, "EMAIL", &alice, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 2);
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(smtp.received()[0].to, vec!["alice@example.org".to_owned()]);

    // Refused outright: given up at once, with the server's answer.
    smtp.answer_with(&[550]);
    send(&app, &bob, &open_dm(&app, &bob, &[&carol]).await, "hello carol").await;
    let failed = delivery_to(&app, "EMAIL", &carol, "FAILED").await;
    assert_eq!(failed["attempts"], 1);
    let error = failed["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("SMTP") && error.contains("550"), "{failed}");
    assert_eq!(smtp.received().len(), 1, "nothing recorded for the refused email");
}
