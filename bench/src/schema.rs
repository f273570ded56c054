//! The rich `messageAdded` selection, reduced to what the server under test has.
//!
//! Scenarios that measure what a client-sized selection costs (`delivery`, `fanout`, `frames`)
//! select [`RICH_FIELDS`]. Some of those fields are newer than some servers (`Message.roomId`),
//! so the schema is read once per run by introspection (`__type` of `Message`, `User` and
//! `Room`) and the fields the server lacks are left out, with a warning and a note on every
//! figure that uses the reduced selection. When introspection is off, the full selection is
//! tried in a query (`rooms { lastMessage { … } }`): it passes validation or the selection is
//! reduced to the one field known to be recent (`roomId`). A server with the fields gets the
//! full selection, unchanged.

use anyhow::Result;
use serde_json::{Value, json};

use crate::client::Gql;
use crate::config::Ctx;
use crate::seed;

/// The selection a rich client asks for on every `messageAdded` frame.
pub const RICH_FIELDS: &str =
    "id seq body createdAt clientId roomId author { id handle displayName kind } room { id name kind }";

/// Fields of [`RICH_FIELDS`] that are left out when the server lacks them: (type, field).
const OPTIONAL: [(&str, &str); 4] =
    [("Message", "roomId"), ("User", "displayName"), ("User", "kind"), ("Room", "kind")];

const INTROSPECT: &str = "{ message: __type(name: \"Message\") { fields { name } } \
                          user: __type(name: \"User\") { fields { name } } \
                          room: __type(name: \"Room\") { fields { name } } }";

/// The rich selection as the server under test accepts it.
#[derive(Debug, Clone)]
pub struct Rich {
    /// The fields inside `messageAdded { … }`.
    pub fields: String,
    /// `Type.field` left out of [`RICH_FIELDS`].
    pub missing: Vec<String>,
}

impl Rich {
    /// `subscription { messageAdded { … } }`.
    pub fn subscription(&self) -> String {
        format!("subscription {{ messageAdded {{ {} }} }}", self.fields)
    }

    /// `subscription($room: ID!) { messageAdded(roomId: $room) { … } }`.
    pub fn room_subscription(&self) -> String {
        format!("subscription($room: ID!) {{ messageAdded(roomId: $room) {{ {} }} }}", self.fields)
    }

    /// A note for the figures that use it (none when the selection is complete).
    pub fn note(&self) -> Option<String> {
        (!self.missing.is_empty())
            .then(|| format!("rich selection reduced: the server has no {}", self.missing.join(", ")))
    }

    fn without(missing: Vec<String>) -> Self {
        let mut fields = RICH_FIELDS.to_owned();
        for (ty, field) in OPTIONAL {
            if missing.contains(&format!("{ty}.{field}")) {
                fields = drop_field(&fields, ty, field);
            }
        }
        Self { fields, missing }
    }
}

/// The run's rich selection: read from the schema of instance A on first use, then cached.
pub async fn rich(ctx: &mut Ctx) -> Result<Rich> {
    if let Some(rich) = &ctx.rich {
        return Ok(rich.clone());
    }
    let org = seed::org(&ctx.db, "schema").await?;
    let user = seed::users(&ctx.db, &org, "s", 1, &ctx.env.jwt_secret).await?.remove(0);
    let gql = Gql::new(&ctx.a.http())?;
    let rich = match gql.call(&user.token, INTROSPECT, json!({})).await {
        Ok(data) if data["message"]["fields"].is_array() => Rich::without(absent(&data)),
        _ => {
            let probe =
                format!("{{ rooms(first: 1) {{ edges {{ node {{ lastMessage {{ {RICH_FIELDS} }} }} }} }} }}");
            match gql.call(&user.token, &probe, json!({})).await {
                Ok(_) => Rich::without(Vec::new()),
                Err(_) => Rich::without(vec!["Message.roomId".into()]),
            }
        }
    };
    match rich.note() {
        Some(note) => println!("  warning: {note}; using `{}`", rich.fields),
        None => println!("  rich selection: `{}`", rich.fields),
    }
    ctx.rich = Some(rich.clone());
    Ok(rich)
}

/// `Type.field` of [`OPTIONAL`] that the introspection answer does not list.
fn absent(data: &Value) -> Vec<String> {
    OPTIONAL
        .iter()
        .filter(|(ty, field)| {
            let fields = data[ty.to_lowercase()]["fields"].as_array();
            !fields.is_some_and(|f| f.iter().any(|f| f["name"].as_str() == Some(*field)))
        })
        .map(|(ty, field)| format!("{ty}.{field}"))
        .collect()
}

/// Removes `field` of `ty` from [`RICH_FIELDS`]-shaped text: top level for `Message`, inside
/// `author { … }` for `User`, inside `room { … }` for `Room`.
fn drop_field(fields: &str, ty: &str, field: &str) -> String {
    let scope = match ty {
        "User" => Some("author {"),
        "Room" => Some("room {"),
        _ => None,
    };
    let (head, body, tail) = match scope.and_then(|s| fields.find(s).map(|at| at + s.len())) {
        Some(open) => {
            let close = fields[open..].find('}').map_or(fields.len(), |c| open + c);
            (&fields[..open], &fields[open..close], &fields[close..])
        }
        None if scope.is_some() => return fields.to_owned(),
        None => ("", fields, ""),
    };
    // Only the words of this level (not inside nested braces) are candidates.
    let mut depth = 0usize;
    let mut kept = Vec::new();
    for word in body.split_whitespace() {
        let top = depth == 0;
        depth = (depth + word.matches('{').count()).saturating_sub(word.matches('}').count());
        if !(top && word == field) {
            kept.push(word);
        }
    }
    format!("{head} {} {tail}", kept.join(" ")).split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{RICH_FIELDS, Rich, drop_field};

    #[test]
    fn drops_fields_at_their_level_only() {
        assert_eq!(
            drop_field(RICH_FIELDS, "Message", "roomId"),
            "id seq body createdAt clientId author { id handle displayName kind } room { id name kind }"
        );
        assert_eq!(
            drop_field(RICH_FIELDS, "Room", "kind"),
            "id seq body createdAt clientId roomId author { id handle displayName kind } room { id name }"
        );
        assert_eq!(
            drop_field(RICH_FIELDS, "User", "kind"),
            "id seq body createdAt clientId roomId author { id handle displayName } room { id name kind }"
        );
        // `id` of Message goes, the nested ids stay.
        assert_eq!(
            drop_field(RICH_FIELDS, "Message", "id"),
            "seq body createdAt clientId roomId author { id handle displayName kind } room { id name kind }"
        );
        let all = Rich::without(vec!["Message.roomId".into(), "User.kind".into()]);
        assert_eq!(
            all.fields,
            "id seq body createdAt clientId author { id handle displayName } room { id name kind }"
        );
        assert!(Rich::without(Vec::new()).note().is_none());
    }
}
