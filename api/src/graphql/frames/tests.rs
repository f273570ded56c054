//! Unit tests of shared fan-out: share keys, the frame memo, and which fields are per viewer.

use std::hash::BuildHasher;
use std::sync::Arc;

use async_graphql::Variables;
use uuid::Uuid;

use super::{FrameKey, FrameMemo, PER_VIEWER_FIELDS, ShareKey, selects_per_viewer_fields as per_viewer};

/// A memo, and the share key, field and key of one `messageAdded` frame in it.
fn one_frame() -> (FrameMemo, ShareKey, Arc<str>, FrameKey) {
    let memo = FrameMemo::default();
    let request = async_graphql::Request::new("subscription { messageAdded { id body } }");
    let (share, _) = memo.share_key(Uuid::now_v7(), Uuid::now_v7(), &request);
    (memo, share, "messageAdded".into(), FrameKey::new("message", Uuid::nil(), [1; 6]))
}

/// A first subscriber whose connection stops polling once the rendering started (its
/// socket is full) holds up none of the others.
#[tokio::test]
async fn a_subscriber_that_stops_polling_holds_up_nobody() {
    use futures_util::FutureExt;

    let (memo, share, field, key) = one_frame();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let rendering = || async move {
        released.await.ok();
        Some(Arc::<str>::from("frame"))
    };
    let mut first = Box::pin(memo.payload(&share, field.clone(), key, rendering));
    assert!((&mut first).now_or_never().is_none(), "the rendering waits");
    release.send(()).ok();
    let second = memo.payload(&share, field, key, || async { Some(Arc::<str>::from("a second rendering")) });
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), second).await;
    assert_eq!(second.ok().flatten().as_deref(), Some("frame"), "rendered once, taken by the second");
    drop(first);
}

/// A rendering that fails is not kept: the next subscriber renders again.
#[tokio::test]
async fn a_failed_rendering_is_rendered_again() {
    let (memo, share, field, key) = one_frame();
    assert_eq!(memo.payload(&share, field.clone(), key, || async { None }).await, None);
    let again = memo.payload(&share, field, key, || async { Some(Arc::<str>::from("frame")) }).await;
    assert_eq!(again.as_deref(), Some("frame"));
}

#[test]
fn share_keys_are_equal_exactly_when_their_requests_are() {
    let memo = FrameMemo::default();
    let key = |org, viewer, request: &async_graphql::Request| memo.share_key(org, viewer, request).0;
    let (org, alice, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let bare = async_graphql::Request::new("subscription { messageAdded { id body } }");
    let counted = async_graphql::Request::new("subscription { messageAdded { room { unreadCount } } }");
    let hasher = foldhash::fast::RandomState::default();
    let same = (key(org, alice, &bare), key(org, bob, &bare));
    assert!(same.0 == same.1 && hasher.hash_one(&same.0) == hasher.hash_one(&same.1));
    assert!(key(org, alice, &bare) != key(Uuid::now_v7(), alice, &bare));
    assert!(key(org, alice, &counted) != key(org, bob, &counted));
    assert!(key(org, alice, &bare) != key(org, alice, &counted));
    let room = |id: &str| {
        async_graphql::Request::new("subscription($room: ID!) { messageAdded(roomId: $room) { id } }")
            .variables(Variables::from_json(serde_json::json!({ "room": id })))
    };
    assert!(key(org, alice, &room("a")) == key(org, bob, &room("a")));
    assert!(key(org, alice, &room("a")) != key(org, alice, &room("b")));
}

#[test]
fn subscriptions_alike_share_one_key_text_and_one_document_text() {
    let memo = FrameMemo::default();
    let org = Uuid::now_v7();
    let request = || async_graphql::Request::new("subscription { messageAdded { id body } }");
    let (first, first_document) = memo.share_key(org, Uuid::now_v7(), &request());
    let (second, second_document) = memo.share_key(org, Uuid::now_v7(), &request());
    assert!(Arc::ptr_eq(&first.text, &second.text));
    assert!(Arc::ptr_eq(&first_document.query, &second_document.query));
    assert_eq!(&*first_document.query, request().query);
}

#[test]
fn frame_keys_differ_by_kind_id_and_every_version_number() {
    let id = Uuid::now_v7();
    let key = FrameKey::new("added", id, [1, 0, 0, 0, 0, 0]);
    assert_eq!(key, FrameKey::new("added", id, [1, 0, 0, 0, 0, 0]));
    assert_ne!(key, FrameKey::new("updated", id, [1, 0, 0, 0, 0, 0]));
    assert_ne!(key, FrameKey::new("added", Uuid::now_v7(), [1, 0, 0, 0, 0, 0]));
    assert_ne!(key, FrameKey::new("added", id, [1, 0, 0, 0, 0, 1]));
}

#[test]
fn plain_message_selections_are_shared_across_viewers() {
    assert!(!per_viewer("subscription { messageAdded { id seq body author { handle } room { id name } } }"));
    assert!(!per_viewer("subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }"));
}

#[test]
fn per_viewer_fields_anywhere_make_the_document_per_viewer() {
    assert!(per_viewer("subscription { messageAdded { room { unreadCount } } }"));
    assert!(per_viewer("subscription { unreadCountChanged { room { viewerRole } } }"));
    assert!(per_viewer("subscription { messageAdded { room { ...R } } } fragment R on Room { lastReadSeq }"));
    assert!(per_viewer("subscription { messageAdded { room { ... on Room { unreadCount } } } }"));
}

#[test]
fn an_unparsable_document_is_never_shared() {
    assert!(per_viewer("subscription {"));
}

#[test]
fn mention_counts_and_a_conversations_inbox_are_per_viewer() {
    assert!(per_viewer("subscription { messageAdded { room { mentionCount } } }"));
    assert!(per_viewer("subscription { messageAdded { room { conversation { inbox { name } } } } }"));
    // An item of `unreadCountChanged` carries its own counts in its key.
    assert!(!per_viewer("subscription { unreadCountChanged { roomId mentionCount } }"));
}

/// Field names reachable from the items whose frames are shared (`Message`, and
/// `UnreadCountChange` below its own counts) that read nothing of the viewer: each
/// resolver reads its object, or data every reader of the room sees alike.
#[rustfmt::skip]
const SHARED_FIELDS: [&str; 84] = [
    "active", "agent", "agentCapacity", "archivedAt", "assignee", "assignment",
    "assignmentDecision", "attachments", "attempts", "author", "authorId", "body", "candidates",
    "capacity", "chosen", "clientId", "contact", "contentType", "contextRef", "conversation",
    "conversations", "createdAt", "cursor", "deactivatedAt", "decidedAt", "deletedAt",
    "deliveredAt", "delivery", "displayName", "edges", "editedAt", "email", "endCursor",
    "event", "externalRef", "firstResponseAt", "handle", "hasNextPage", "hasPreviousPage", "id",
    "joinedAt", "kind", "lastError", "lastMessage", "lastMessageAt", "lastReadAt", "lastSeenAt",
    "latestSeq", "load", "members", "messageId", "name", "nextAttemptAt", "node", "nodes",
    "online", "openAssigned", "pageInfo", "phone", "presence", "readBy",
    "readReceipts", "reason", "recipientId", "replyTo", "resolvedAt", "role", "room", "roomId",
    "senderRole", "seq", "size", "snoozedUntil", "source", "startCursor", "status", "strategy",
    "topic", "totalCount", "url", "user", "userId", "visibility", "webhookId",
];

/// Sharing is decided by field name, so every name a shared frame can reach must be
/// sorted: per viewer, or shared above. A new field fails here until someone decides.
#[test]
fn every_field_a_shared_frame_reaches_is_sorted() {
    use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
    use std::collections::{HashMap, HashSet};

    let schema = async_graphql::parser::parse_schema(crate::graphql::sdl()).expect("the schema parses");
    let fields: HashMap<String, Vec<(String, String)>> = schema
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(t) => match &t.node.kind {
                TypeKind::Object(o) => Some((t.node.name.node.to_string(), &o.fields)),
                TypeKind::Interface(i) => Some((t.node.name.node.to_string(), &i.fields)),
                _ => None,
            },
            _ => None,
        })
        .map(|(name, list)| {
            fn named(ty: &Type) -> String {
                match &ty.base {
                    BaseType::Named(name) => name.to_string(),
                    BaseType::List(inner) => named(inner),
                }
            }
            let list = list.iter().map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node))).collect();
            (name, list)
        })
        .collect();
    let (mut seen, mut reached) = (HashSet::new(), HashSet::new());
    let mut todo = vec!["Message".to_string()];
    // `unreadCountChanged`'s own fields are keyed by value; what lies below them is not.
    todo.extend(fields["UnreadCountChange"].iter().map(|(_, ty)| ty.clone()));
    while let Some(ty) = todo.pop() {
        let Some(list) = fields.get(&ty) else { continue };
        if !seen.insert(ty) {
            continue;
        }
        for (name, ty) in list {
            reached.insert(name.clone());
            todo.push(ty.clone());
        }
    }
    assert!(
        reached.contains("body") && reached.contains("mentionCount"),
        "the walk reached the items' fields"
    );
    let unsorted: Vec<_> = reached
        .iter()
        .filter(|name| !PER_VIEWER_FIELDS.contains(&name.as_str()) && !SHARED_FIELDS.contains(&name.as_str()))
        .collect();
    assert!(unsorted.is_empty(), "sort these into PER_VIEWER_FIELDS or SHARED_FIELDS: {unsorted:?}");
    let both: Vec<_> = SHARED_FIELDS.iter().filter(|name| PER_VIEWER_FIELDS.contains(name)).collect();
    assert!(both.is_empty(), "both per viewer and shared: {both:?}");
}
