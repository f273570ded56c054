//! README.md's GraphQL examples work against the server they describe. Each ```graphql block
//! is sent whole, as a user pastes it into GraphiQL, once per operation it holds (with
//! `operationName`, in the order the README gives them): the block must parse, and every
//! query and mutation must run without an error, with its variables taken from a small world
//! (a channel, a direct room, a message, an inbox with a conversation, a webhook, a reminder).
//! Subscriptions pass validation and are then refused over HTTP POST, with a code; the
//! subscription tests cover what they deliver.
//!
//! And its settings: every variable the server reads (as `parley --help` lists them) is in
//! README.md, and every `PARLEY_…` name README.md gives is one the server or the test suite reads.

use async_graphql_parser::types::{
    BaseType, DocumentOperations, OperationDefinition, OperationType, Selection,
};
use serde_json::{Value, json};

use crate::helpers::api::{create_channel, id_of, open_dm, send};
use crate::helpers::push::Browser;
use crate::helpers::{Backend, TestApp, TestUser, parley_command, spawn_app_alone_with};
use crate::support;

const README: &str = include_str!("../../README.md");
/// What the test suite reads, as README.md's "Tests" section says.
const TEST_SETTINGS: [&str; 5] = [
    "PARLEY_TEST_DATABASE_URL",
    "PARLEY_TEST_REDIS_URL",
    "PARLEY_TEST_REQUIRE_BACKENDS",
    "PARLEY_TEST_REQUIRE_BROWSER",
    "PARLEY_CHROMIUM",
];

backend_tests!(every_readme_example_runs);

async fn every_readme_example_runs(backend: Backend) {
    // Its own database, and one attempt per delivery: the examples' webhooks point at hosts
    // that do not resolve, and no other test's server should try them.
    let (_database, app) = spawn_app_alone_with(backend, &[("PARLEY_WEBHOOK_MAX_ATTEMPTS", "1")]).await;
    let world = World::new(&app).await;
    let blocks = graphql_blocks(README);
    assert!(blocks.len() >= 4, "README.md has its GraphQL examples in ```graphql blocks");
    let mut ran = 0;
    for block in &blocks {
        let document = async_graphql_parser::parse_query(block)
            .unwrap_or_else(|e| panic!("a README block does not parse ({e}):\n{block}"));
        let DocumentOperations::Multiple(operations) = document.operations else {
            panic!("every README example is a named operation:\n{block}");
        };
        let mut operations: Vec<_> = operations.into_iter().collect();
        operations.sort_by_key(|(_, operation)| (operation.pos.line, operation.pos.column));
        // Reserved names: the examples' webhooks are registered as written but never reach a
        // real host (hooks.slack.com resolves where there is a network).
        let offline = block.replace(".com/", ".invalid/");
        for (name, operation) in &operations {
            let variables = world.variables(&operation.node);
            let body = json!({ "query": offline, "operationName": name.as_str(), "variables": variables });
            let response: Value =
                app.post_graphql(Some(&world.ada.token), &body).await.json().await.expect("JSON");
            if operation.node.ty == OperationType::Subscription {
                let error = &response["errors"][0];
                assert!(
                    error["message"].as_str().is_some_and(|m| m.contains("not supported"))
                        && error["extensions"]["code"] == "BAD_USER_INPUT",
                    "README's `{name}` passes validation, then is refused over POST with a code: {response}"
                );
            } else {
                assert!(response.get("errors").is_none(), "README's `{name}` fails: {response}\n{block}");
                assert!(response["data"].is_object(), "`{name}` returned data: {response}");
            }
            ran += 1;
        }
    }
    assert!(ran >= 60, "README.md's examples hold {ran} operations");
}

#[tokio::test]
async fn every_setting_is_in_the_readme_and_every_setting_named_there_exists() {
    let output = parley_command(&[]).arg("--help").output().await.expect("run `parley --help`");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let read: Vec<&str> = help.split("[env: ").skip(1).map(setting_name).collect();
    assert!(read.len() >= 40 && read.contains(&"PARLEY_BIND"), "`parley --help` lists the settings: {help}");
    for name in &read {
        assert!(README.contains(&format!("`{name}`")), "README.md does not document {name}");
    }
    let named = README.split("PARLEY_").skip(1).map(|rest| format!("PARLEY_{}", setting_name(rest)));
    for name in named.filter(|name| !name.ends_with('_')) {
        assert!(
            read.contains(&name.as_str()) || TEST_SETTINGS.contains(&name.as_str()),
            "README.md names {name}, which nothing reads"
        );
    }
}

/// The setting name at the start of `text`.
fn setting_name(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// What the examples' variables name, made beforehand by an admin (ada, the one who runs
/// every example) and two others.
struct World {
    ada: TestUser,
    bob: TestUser,
    carol: TestUser,
    channel: String,
    dm: String,
    message: String,
    inbox: String,
    conversation: String,
    webhook: String,
    reminder: String,
    push: Value,
}

impl World {
    async fn new(app: &TestApp) -> World {
        let org = app.create_org().await;
        let ada = org.user_with_role("ada", "admin").await;
        let bob = org.user_with_role("bob", "agent").await;
        let carol = org.user("carol").await;
        let channel = create_channel(app, &ada, "eng", &[&bob]).await;
        let dm = open_dm(app, &ada, &[&bob]).await;
        let message = id_of(&send(app, &ada, &channel, "release notes are out").await);
        let (inbox, secret) = support::inbox(app, &ada, json!({ "name": "Web" }), &[&ada]).await;
        let (_, stored) =
            support::post(app, &inbox, &secret, &support::sms("r-1", "+41790000001", "hi")).await;
        let conversation = stored["conversationId"].as_str().expect("a conversation").to_owned();
        let hook = "mutation { createOutgoingWebhook(input: { url: \"https://hooks.example.invalid/readme\", \
                    events: [MESSAGE_ADDED] }) { webhook { id } } }";
        let webhook = id_of(&app.ok(&ada, hook, json!({})).await["createOutgoingWebhook"]["webhook"]);
        let remind = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
        let input = json!({ "input": { "remindAt": in_hours(1), "note": "readme" } });
        let reminder = id_of(&app.ok(&ada, remind, input).await["createReminder"]);
        let push = Browser::new("https://push.example.invalid/readme".to_owned()).subscription();
        World { ada, bob, carol, channel, dm, message, inbox, conversation, webhook, reminder, push }
    }

    /// A value for each variable `operation` declares, by its name (and, for a bare `$id`, by
    /// the field the operation calls).
    fn variables(&self, operation: &OperationDefinition) -> serde_json::Map<String, Value> {
        let field = operation.selection_set.node.items.first().and_then(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        });
        let mut variables = serde_json::Map::new();
        for definition in &operation.variable_definitions {
            let name = definition.node.name.node.as_str();
            let value = match (name, field) {
                ("roomId", _) => json!(self.channel),
                ("ids", _) => json!([self.channel]),
                ("dmId", _) => json!(self.dm),
                ("messageId", _) => json!(self.message),
                ("room", _) => json!(self.conversation),
                ("inbox", _) => json!(self.inbox),
                ("user" | "seller", _) => json!(self.bob.id),
                ("me", _) => json!(self.ada.id),
                ("at", _) => json!(in_hours(2)),
                ("until", _) => json!(in_hours(3)),
                ("endpoint" | "p256dh" | "auth", _) => self.push[name].clone(),
                ("id", Some("deleteOutgoingWebhook")) => json!(self.webhook),
                ("id", Some("updateUser" | "deactivateUser")) => json!(self.carol.id),
                ("id", Some("snoozeReminder" | "completeReminder")) => json!(self.reminder),
                _ => panic!("README's examples use `${name}` (on {field:?}), which this test does not fill"),
            };
            assert_eq!(
                matches!(definition.node.var_type.node.base, BaseType::List(_)),
                value.is_array(),
                "`${name}`'s value has its declared shape"
            );
            variables.insert(name.to_owned(), value);
        }
        variables
    }
}

fn in_hours(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339()
}

/// The bodies of the ```graphql fences, in order.
fn graphql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```graphql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}
