//! Lists a user changes while paging them page by each item's place, not its position.
//! After each change the next page, forward or backward, starts beside the item its cursor
//! named, even when that item is gone; with positions as cursors each of these tests fails
//! at its first page after a change. `personal`: saved messages, reminders, the Later list,
//! and equal times, fractions of a second (which SQLite keeps as text of different lengths)
//! and a leap second walked one at a time both ways. `shared`: the deliveries log, an
//! inbox's queue, rooms (an unread list read, a browse list joined, favorites first) and a
//! room's members.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::api::id_of;
use crate::helpers::{TestApp, TestUser, data};

mod personal;
mod shared;

const SAVE: &str =
    "mutation($id: ID!, $f: Boolean!) { setMessageFavorite(messageId: $id, favorite: $f) { id } }";
const REMIND: &str = "mutation($input: CreateReminderInput!) { createReminder(input: $input) { id } }";
const COMPLETE: &str = "mutation($id: ID!) { completeReminder(id: $id) { id } }";

/// One list, read a page at a time with the four Relay arguments.
struct List<'a> {
    app: &'a TestApp,
    reader: &'a TestUser,
    /// The list's field (`viewer.later`: under `viewer`; the parent may take arguments), and
    /// its arguments besides paging.
    field: &'a str,
    args: &'static str,
    /// What each node selects; `name` reads an item's name from it.
    node: &'static str,
    name: fn(&Value) -> Option<&str>,
}

impl List<'_> {
    async fn page(&self, variables: Value) -> Page {
        let (parent, field) = self.field.rsplit_once('.').unwrap_or(("", self.field));
        let list = format!(
            "{field}({}first: $first, after: $after, last: $last, before: $before) {{ edges {{ cursor \
             node {{ {} }} }} pageInfo {{ hasNextPage hasPreviousPage }} }}",
            self.args, self.node
        );
        let selection = if parent.is_empty() { list } else { format!("{parent} {{ {list} }}") };
        let query =
            format!("query($first: Int, $after: String, $last: Int, $before: String) {{ {selection} }}");
        let answer = self.app.ok(self.reader, &query, variables).await;
        // A parent's answer is under its name, without its arguments.
        let parent_key = parent.split('(').next().unwrap_or_default();
        let connection = if parent.is_empty() { &answer[field] } else { &answer[parent_key][field] };
        let edges = connection["edges"].as_array().cloned().unwrap_or_default();
        Page {
            names: edges.iter().map(|e| (self.name)(&e["node"]).unwrap_or_default().to_owned()).collect(),
            cursors: edges.iter().map(|e| e["cursor"].clone()).collect(),
            more: (
                connection["pageInfo"]["hasPreviousPage"].clone(),
                connection["pageInfo"]["hasNextPage"].clone(),
            ),
        }
    }
}

struct Page {
    names: Vec<String>,
    cursors: Vec<Value>,
    /// (hasPreviousPage, hasNextPage)
    more: (Value, Value),
}

const BOTH: (Value, Value) = (Value::Bool(true), Value::Bool(true));

fn in_minutes(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn remind(app: &TestApp, user: &TestUser, input: Value) -> String {
    id_of(&data(app.gql(user, REMIND, json!({ "input": input })).await)["createReminder"])
}

/// Reminders `r1`…`rn` due one, two, … n hours from now; their ids.
async fn remind_hourly(app: &TestApp, user: &TestUser, n: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for hours in 1..=n {
        let input = json!({ "remindAt": in_minutes(60 * hours), "note": format!("r{hours}") });
        ids.push(remind(app, user, input).await);
    }
    ids
}

/// One item at a time, forward and then backward: every item once, the same order both ways.
async fn walk_one_at_a_time(list: &List<'_>) -> Vec<String> {
    let (mut forward, mut after) = (Vec::new(), Value::Null);
    for _ in 0..20 {
        let page = list.page(json!({ "first": 1, "after": after })).await;
        forward.extend(page.names);
        if page.more.1 != json!(true) {
            break;
        }
        after = page.cursors[0].clone();
    }
    let (mut backward, mut before) = (Vec::new(), Value::Null);
    for _ in 0..20 {
        let page = list.page(json!({ "last": 1, "before": before })).await;
        backward.splice(0..0, page.names);
        if page.more.0 != json!(true) {
            break;
        }
        before = page.cursors[0].clone();
    }
    assert_eq!(backward, forward, "{}: walked backward", list.field);
    forward
}
