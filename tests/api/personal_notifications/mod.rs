//! Email and web push for people who are not online, against an SMTP sink and a push service
//! the test starts: one email per room batch after the delay (plain text, escaped HTML, a
//! link, one-click unsubscribe), cancelled by reading, suppressed by mute, do-not-disturb,
//! being online and the user's settings; mentions in channels and nothing else there; pushes
//! decrypted with the browser's key and signed with the server's VAPID key; a subscription
//! removed when its push service answers 410; bad input refused. `email_timing` has when an
//! email goes: a message after reading waiting its own delay, away with a tab open, refusals
//! retried or given up.

mod email_timing;

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, mark_read, open_dm, send};
use crate::helpers::push::{Browser, vapid_signed};
use crate::helpers::receiver::Receiver;
use crate::helpers::services::OwnDatabase;
use crate::helpers::smtp::SmtpSink;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, TestApp, TestUser, WAIT, assert_error_code, spawn_app_with};

backend_tests!(
    unread_direct_messages_are_emailed_once_per_batch_after_the_delay,
    reading_mute_presence_and_settings_hold_emails_back,
    pushes_are_encrypted_signed_and_stop_at_410,
    push_subscriptions_refuse_bad_input,
);

/// The email delay in these tests.
const DELAY: Duration = Duration::from_secs(2);
/// The delay, a worker's poll (1 s) and some slack: what has not arrived by then is not coming.
const PAST_THE_DELAY: Duration = Duration::from_millis(4_500);

const SETTINGS: &str = "{ viewer { email notificationSettings { emailEnabled pushEnabled emailAvailable \
    emailDelaySeconds vapidPublicKey pushSubscriptions { id endpoint } } } }";
const UPDATE: &str = "mutation($input: UpdateNotificationSettingsInput!) { updateNotificationSettings(input: $input) \
    { emailEnabled pushEnabled } }";
pub(crate) const REGISTER: &str = "mutation($input: RegisterPushSubscriptionInput!) { registerPushSubscription(input: $input) \
    { id endpoint } }";
const MY_DELIVERIES: &str = "query($filter: NotificationDeliveryFilter) { viewer { notificationDeliveries(filter: $filter, first: 50) { \
    edges { node { kind status attempts lastError recipientId messageId } } } } }";
const ORG_DELIVERIES: &str = "query($filter: NotificationDeliveryFilter) { notificationDeliveries(filter: $filter, first: 50) { \
    edges { node { id } } } }";

/// A server with email to `smtp` (after `DELAY`), links under `http://parley.test`, and an
/// outbox no other test's server claims (on PostgreSQL, a database of its own).
pub(crate) async fn own_app(
    backend: Backend,
    smtp: &SmtpSink,
    overrides: &[(&str, &str)],
) -> (Option<OwnDatabase>, TestApp) {
    let delay = DELAY.as_secs().to_string();
    let mut settings = vec![
        ("PARLEY_SMTP_URL", smtp.url.as_str()),
        ("PARLEY_EMAIL_DELAY_SECS", delay.as_str()),
        ("PARLEY_PUBLIC_URL", "http://parley.test"),
    ];
    settings.extend_from_slice(overrides);
    match backend {
        Backend::Sqlite => (None, spawn_app_with(backend, &settings).await),
        Backend::PostgresRedis => {
            let database = OwnDatabase::create();
            settings.push(("DATABASE_URL", database.url.as_str()));
            let app = spawn_app_with(backend, &settings).await;
            (Some(database), app)
        }
    }
}

async fn set_email(app: &TestApp, user: &TestUser) -> String {
    let email = format!("{}@example.org", user.handle);
    let query = "mutation($email: String!) { updateProfile(input: {email: $email}) { email } }";
    let answer = app.ok(user, query, json!({ "email": email })).await;
    assert_eq!(answer["updateProfile"]["email"], email.as_str());
    email
}

/// The deliveries of `kind` to `recipient`, as they see them.
async fn deliveries(app: &TestApp, recipient: &TestUser, kind: &str) -> Vec<Value> {
    let answer = app.ok(recipient, MY_DELIVERIES, json!({ "filter": { "kind": kind } })).await;
    let edges = answer["viewer"]["notificationDeliveries"]["edges"].as_array().expect("edges").clone();
    let rows: Vec<Value> = edges.iter().map(|e| e["node"].clone()).collect();
    assert!(rows.iter().all(|d| d["recipientId"] == recipient.id.as_str()), "only their own: {rows:#?}");
    rows
}

/// Waits until `recipient` sees a delivery of `kind` in `status`.
pub(crate) async fn delivery_to(app: &TestApp, kind: &str, recipient: &TestUser, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = deliveries(app, recipient, kind).await;
        if let Some(found) = all.iter().find(|d| d["status"] == status) {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {status} {kind} to {}: {all:#?}",
            recipient.handle
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn unread_direct_messages_are_emailed_once_per_batch_after_the_delay(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[]).await;
    let org = app.create_org().await;
    let ada = org.user_with_role("ada", "admin").await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let alice_email = set_email(&app, &alice).await;
    set_email(&app, &bob).await;
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    let settings = &settings["viewer"]["notificationSettings"];
    assert_eq!(
        (settings["emailEnabled"].as_bool(), settings["emailAvailable"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(settings["emailDelaySeconds"], 2);

    let dm = open_dm(&app, &bob, &[&alice]).await;
    for body in ["first <b>bold</b> & more", "second", "third"] {
        send(&app, &bob, &dm, body).await;
    }
    let long = "x".repeat(120);
    for n in 4..=7 {
        send(&app, &bob, &dm, &format!("{n} {long}")).await;
    }
    tokio::time::sleep(DELAY / 2).await;
    assert!(smtp.received().is_empty(), "nothing before the delay");

    let emails = smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(smtp.received().len(), 1, "one email for the batch, none for bob (the author): {emails:#?}");
    let email = &emails[0];
    assert_eq!(email.to, vec![alice_email.clone()]);
    assert_eq!(email.subject(), "7 unread messages from Bob");
    let text = email.text();
    assert!(text.contains("Bob (") && text.contains("): first <b>bold</b> & more"), "{text}");
    let cut = format!("4 {}…", &long[..78]);
    assert!(text.contains(&cut), "previews are cut at 80 characters: {text}");
    assert!(!text.contains("6 x") && text.contains("…and 2 more."), "5 previews, the rest counted: {text}");
    assert!(text.contains(&format!("http://parley.test/app#room={dm}")), "{text}");
    let html = email.html();
    assert!(html.contains("first &lt;b&gt;bold&lt;/b&gt; &amp; more") && !html.contains("<b>bold"), "{html}");
    let unsubscribe = email.header("List-Unsubscribe");
    assert!(unsubscribe.starts_with("<http://parley.test/notifications/unsubscribe?user="), "{unsubscribe}");
    assert_eq!(email.header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    let delivered = delivery_to(&app, "EMAIL", &alice, "DELIVERED").await;
    assert!(delivered["lastError"].is_null());
    // Emails tell which rooms someone was written to in and whether they read them: an
    // admin's delivery log does not list them.
    let log = app.ok(&ada, ORG_DELIVERIES, json!({ "filter": { "kind": "EMAIL" } })).await;
    assert_eq!(log["notificationDeliveries"]["edges"], json!([]));

    // A new message after the batch went out starts the next batch.
    send(&app, &bob, &dm, "one more").await;
    let emails = smtp.wait_for(2, WAIT).await;
    assert_eq!(emails[1].subject(), "1 unread message from Bob");
    assert!(emails[1].text().contains("one more") && !emails[1].text().contains("third"));

    // The link, followed as a mail client does (RFC 8058), turns email off; a forged one
    // changes nothing.
    let link = unsubscribe.trim_matches(['<', '>']).replace("http://parley.test", &app.url(""));
    let token = link.rsplit_once("token=").map(|(_, t)| t.to_owned()).expect("a token");
    let flipped = format!("{}{}", if token.starts_with('0') { '1' } else { '0' }, &token[1..]);
    for forged in [link.replace(&token, &flipped), link.replace(&alice.id, &bob.id)] {
        let refused =
            app.http.post(&forged).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST");
        assert_eq!(refused.status().as_u16(), 404, "{forged}");
    }
    // A link a mail client mangled gets the same page, not a plain-text error.
    let mangled = link.replace(&alice.id, "not-an-id");
    let clicked = app.http.get(&mangled).send().await.expect("GET");
    let posted =
        app.http.post(&mangled).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST");
    for answer in [clicked, posted] {
        assert_eq!(answer.status().as_u16(), 404);
        let policy = answer.headers().get("content-security-policy").and_then(|p| p.to_str().ok());
        assert_eq!(policy, Some("default-src 'none'; form-action 'self'"));
        assert!(answer.text().await.expect("a page").contains("This link is not valid."));
    }
    let bob_settings = app.ok(&bob, SETTINGS, json!({})).await;
    assert_eq!(
        bob_settings["viewer"]["notificationSettings"]["emailEnabled"], true,
        "forgeries changed nothing"
    );
    let page = app.http.get(&link).send().await.expect("GET the link");
    assert_eq!(page.status().as_u16(), 200, "a GET only asks");
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    assert_eq!(settings["viewer"]["notificationSettings"]["emailEnabled"], true);
    let done = app.http.post(&link).form(&[("List-Unsubscribe", "One-Click")]).send().await.expect("POST");
    assert_eq!(done.status().as_u16(), 200);
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    assert_eq!(settings["viewer"]["notificationSettings"]["emailEnabled"], false);
    send(&app, &bob, &dm, "after unsubscribing").await;
    tokio::time::sleep(PAST_THE_DELAY).await;
    assert_eq!(smtp.received().len(), 2, "no email once turned off");
}

async fn reading_mute_presence_and_settings_hold_emails_back(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[]).await;
    let org = app.create_org().await;
    let (alice, bob, carol, dave, erin, fred) = (
        org.user("alice").await,
        org.user("bob").await,
        org.user("carol").await,
        org.user("dave").await,
        org.user("erin").await,
        org.user("fred").await,
    );
    for user in [&alice, &bob, &carol, &dave, &erin, &fred] {
        set_email(&app, user).await;
    }
    // alice reads before the delay; carol muted the conversation; dave is online; erin is
    // in do-not-disturb; fred turned email off.
    let to_alice = open_dm(&app, &bob, &[&alice]).await;
    let to_carol = open_dm(&app, &bob, &[&carol]).await;
    let to_dave = open_dm(&app, &bob, &[&dave]).await;
    let to_erin = open_dm(&app, &bob, &[&erin]).await;
    let to_fred = open_dm(&app, &bob, &[&fred]).await;
    app.ok(&carol, "mutation($id: ID!) { muteRoom(roomId: $id) { id } }", json!({ "id": to_carol })).await;
    let _online = WsClient::connect(&app, &dave).await;
    app.ok(&erin, "mutation { setPresence(status: DND) { status } }", json!({})).await;
    let off = app.ok(&fred, UPDATE, json!({ "input": { "emailEnabled": false } })).await;
    assert_eq!(off["updateNotificationSettings"], json!({ "emailEnabled": false, "pushEnabled": true }));
    // In a channel only a mention is emailed.
    let general = create_channel(&app, &bob, "general", &[&alice, &carol]).await;

    for room in [&to_alice, &to_carol, &to_dave, &to_erin, &to_fred] {
        send(&app, &bob, room, "are you there?").await;
    }
    mark_read(&app, &alice, &to_alice, None).await;
    send(&app, &bob, &general, "@alice please look").await;
    send(&app, &bob, &general, "nothing for anyone").await;

    smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(PAST_THE_DELAY).await;
    let emails: Vec<_> = smtp.received().into_iter().map(|e| (e.to.clone(), e.subject(), e.text())).collect();
    assert_eq!(emails.len(), 1, "only alice's mention: {emails:#?}");
    assert_eq!(emails[0].0, vec!["alice@example.org".to_owned()]);
    assert_eq!(emails[0].1, "1 unread message from Bob in #general");
    assert!(emails[0].2.contains("@alice please look") && !emails[0].2.contains("nothing for anyone"));

    let read = delivery_to(&app, "EMAIL", &alice, "CANCELLED").await;
    assert_eq!(read["lastError"], "read before it was sent");
    let online = delivery_to(&app, "EMAIL", &dave, "CANCELLED").await;
    assert_eq!(online["lastError"], "the recipient is online and sees it live");
    let dnd = delivery_to(&app, "EMAIL", &erin, "CANCELLED").await;
    assert_eq!(dnd["lastError"], "the recipient is in do not disturb");
    for quiet in [&carol, &fred] {
        assert_eq!(
            deliveries(&app, quiet, "EMAIL").await,
            Vec::<Value>::new(),
            "nothing queued for {}",
            quiet.handle
        );
    }
}

async fn pushes_are_encrypted_signed_and_stop_at_410(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[]).await;
    let service = Receiver::start().await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let browser = Browser::new(format!("{}/push/alice-laptop", service.url));
    let registered = app.ok(&alice, REGISTER, json!({ "input": browser.subscription() })).await;
    assert_eq!(registered["registerPushSubscription"]["endpoint"], browser.endpoint.as_str());
    // The same browser again replaces its row.
    app.ok(&alice, REGISTER, json!({ "input": browser.subscription() })).await;
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    let settings = &settings["viewer"]["notificationSettings"];
    assert_eq!(settings["pushSubscriptions"].as_array().map(Vec::len), Some(1));
    let server_key = settings["vapidPublicKey"].as_str().expect("a VAPID key").to_owned();

    let dm = open_dm(&app, &bob, &[&alice]).await;
    let general = create_channel(&app, &bob, "general", &[&alice]).await;
    send(&app, &bob, &general, "no mention, no push").await;
    let sent = send(&app, &bob, &dm, "lunch at <12>?").await;
    let pushes = service.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(service.received().len(), 1, "one push, for the direct message: {pushes:#?}");
    let push = &pushes[0];
    assert_eq!(push.path, "/push/alice-laptop");
    // The audience is the push service's scheme and host: `web-push-native` leaves the port
    // out, which real push services (all on 443) do not notice.
    let audience = service.url.rsplit_once(':').map(|(origin, _)| origin).expect("a port");
    assert!(vapid_signed(push, &server_key, audience), "VAPID-signed: {:?}", push.headers);
    assert!(!vapid_signed(push, &server_key, "https://elsewhere.example"), "for that service only");
    assert!(push.header("ttl").parse::<u64>().is_ok_and(|ttl| ttl > 0));
    let payload = browser.decrypt(push);
    assert_eq!(payload["title"], "Bob");
    assert_eq!(payload["body"], "lunch at <12>?");
    assert_eq!(payload["roomId"], dm.as_str());
    assert_eq!(payload["messageId"], sent["id"]);
    assert_eq!(payload["url"], format!("http://parley.test/app#room={dm}"));

    // A mention in the channel, whose kind this instance now knows from the first send
    // (that send's statement then leaves out the email and push parts): pushed.
    send(&app, &bob, &general, "@alice a look?").await;
    let pushes = service.wait_for(2, WAIT).await;
    assert_eq!(browser.decrypt(&pushes[1])["body"], "@alice a look?");

    // Online: seen live, not pushed.
    let online = WsClient::connect(&app, &alice).await;
    send(&app, &bob, &dm, "while you are here").await;
    let cancelled = delivery_to(&app, "PUSH", &alice, "CANCELLED").await;
    assert_eq!(cancelled["lastError"], "the recipient is online and sees it live");
    drop(online);

    // The browser went away: the push service answers 410, and the subscription goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.answer_with(&[410]);
    send(&app, &bob, &dm, "anyone?").await;
    let failed = delivery_to(&app, "PUSH", &alice, "FAILED").await;
    assert!(failed["lastError"].as_str().is_some_and(|e| e.starts_with("HTTP 410")), "{failed}");
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    assert_eq!(settings["viewer"]["notificationSettings"]["pushSubscriptions"], json!([]));
    let before = service.received().len();
    send(&app, &bob, &dm, "nobody to push to").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(service.received().len(), before, "nothing pushed to a removed subscription");

    // A browser registered again by another user is theirs from then on.
    let shared = Browser::new(format!("{}/push/shared", service.url));
    app.ok(&alice, REGISTER, json!({ "input": shared.subscription() })).await;
    app.ok(&bob, REGISTER, json!({ "input": shared.subscription() })).await;
    let mine = app.ok(&alice, SETTINGS, json!({})).await;
    assert_eq!(mine["viewer"]["notificationSettings"]["pushSubscriptions"], json!([]));
    let unregister = "mutation($endpoint: String!) { unregisterPushSubscription(endpoint: $endpoint) }";
    let endpoint = json!({ "endpoint": shared.endpoint });
    let theirs = app.ok(&alice, unregister, endpoint.clone()).await;
    assert_eq!(theirs["unregisterPushSubscription"], false, "not alice's to remove any more");
    send(&app, &bob, &dm, "to alice, who left that browser").await;
    send(&app, &alice, &dm, "to bob, who has it now").await;
    let pushes = service.wait_for(before + 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(service.received().len(), before + 1, "one push: {pushes:#?}");
    assert_eq!(shared.decrypt(&pushes[before])["body"], "to bob, who has it now");
}

async fn push_subscriptions_refuse_bad_input(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let (_database, app) = own_app(backend, &smtp, &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let alice = app.create_org().await.user("alice").await;
    // A public address literal: nothing to resolve (the machine may have no DNS).
    let good = Browser::new("https://1.1.1.1/send/1".to_owned()).subscription();
    let with = |field: &str, value: &str| {
        let mut input = good.clone();
        input[field] = json!(value);
        json!({ "input": input })
    };
    for (variables, says) in [
        (with("endpoint", "http://1.1.1.1/send/1"), "https"),
        (with("endpoint", "not a url"), "endpoint"),
        (with("endpoint", "https://127.0.0.1/send"), "endpoint"),
        (with("p256dh", "AAAA"), "p256dh"),
        (with("p256dh", "!!not base64!!"), "p256dh"),
        (with("auth", "AAAA"), "auth"),
    ] {
        let answer = app.gql(&alice, REGISTER, variables.clone()).await;
        assert_error_code(&answer, "BAD_USER_INPUT");
        assert!(answer.to_string().contains(says), "{variables}: {answer}");
    }
    let bad_email = app
        .gql(&alice, "mutation { updateProfile(input: {email: \"not an address\"}) { email } }", json!({}))
        .await;
    assert_error_code(&bad_email, "BAD_USER_INPUT");
    assert_error_code(&app.gql(&alice, UPDATE, json!({ "input": {} })).await, "BAD_USER_INPUT");
    let settings = app.ok(&alice, SETTINGS, json!({})).await;
    assert_eq!(settings["viewer"]["email"], Value::Null, "refusals changed nothing");
    let set = "mutation($email: String!) { updateProfile(input: {email: $email}) { email } }";
    app.ok(&alice, set, json!({ "email": "alice@example.org" })).await;
    let cleared = app.ok(&alice, set, json!({ "email": " " })).await;
    assert_eq!(cleared["updateProfile"]["email"], Value::Null, "an empty address removes it");
    assert_eq!(settings["viewer"]["notificationSettings"]["pushSubscriptions"], json!([]));
    assert_eq!(settings["viewer"]["notificationSettings"]["emailAvailable"], false, "no address yet");
}
