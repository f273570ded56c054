//! Shared fan-out: subscribers on this instance that run the same document with the same
//! variables, and whose per-viewer inputs are equal, share one rendering and one serialised
//! payload per event (the way Hasura multiplexes live queries).
//!
//! An event that may be shared carries a `FrameKey` naming it (a message id and version, a
//! count and its seq…). Its payload is rendered once per `(ShareKey, field, FrameKey)` in
//! this instance's `FrameMemo` (see `live.rs`): the first subscriber renders it, concurrent
//! and later ones wait for and reuse the serialised payload, with no execution of their own.
//!
//! Per-viewer fields (a room's unread count, the viewer's role or watermark) stay exact: a
//! document that selects one gets the viewer's id in its `ShareKey`, so it is shared only
//! between connections of the same user. Items that are themselves per viewer (an unread
//! count change) carry their values in their key, so equal values share and different
//! values never do.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{OperationType, Selection, SelectionSet};
use moka::future::Cache;
use uuid::Uuid;

/// Long enough for every local subscriber to take its frame, short enough to hold little.
const FRAME_TTL: Duration = Duration::from_secs(10);
const FRAME_CAPACITY: u64 = 20_000;

/// Fields whose value depends on who is asking (besides the items of `unreadCountChanged`,
/// whose own values are their key).
const PER_VIEWER_FIELDS: [&str; 7] =
    ["unreadCount", "unreadTotal", "lastReadSeq", "viewerRole", "isFavorite", "isMuted", "mutedUntil"];

/// What makes two subscriptions' frames interchangeable: organisation, operation, variables,
/// document, and the viewer when the document reads per-viewer fields.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShareKey(Arc<str>);

impl ShareKey {
    pub fn new(org_id: Uuid, viewer_id: Uuid, request: &async_graphql::Request) -> Self {
        let viewer =
            if selects_per_viewer_fields(&request.query) { viewer_id.to_string() } else { String::new() };
        let variables = serde_json::to_string(&request.variables).unwrap_or_default();
        let operation = request.operation_name.as_deref().unwrap_or("");
        Self(format!("{org_id}\n{viewer}\n{operation}\n{variables}\n{}", request.query).into())
    }
}

/// An event's identity and version, unique across item kinds.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FrameKey(pub String);

/// This instance's recent payloads, by share key, root field and event.
#[derive(Clone)]
pub struct FrameMemo(Cache<(ShareKey, Arc<str>, FrameKey), Arc<str>>);

impl Default for FrameMemo {
    fn default() -> Self {
        Self(Cache::builder().max_capacity(FRAME_CAPACITY).time_to_live(FRAME_TTL).build())
    }
}

impl FrameMemo {
    /// The payload of one event for one share key: `render`ed by the first subscriber to
    /// ask, waited for by concurrent ones. A rendering that fails (`None`) is not kept.
    pub async fn payload(
        &self,
        share: &ShareKey,
        field: Arc<str>,
        key: FrameKey,
        render: impl Future<Output = Option<Arc<str>>>,
    ) -> Option<Arc<str>> {
        self.0.optionally_get_with((share.clone(), field, key), render).await
    }
}

/// Whether a subscription document reads fields that depend on the viewer. Conservative:
/// any such name anywhere counts, except the item fields of `unreadCountChanged` itself.
pub fn selects_per_viewer_fields(query: &str) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else { return true };
    let fragments = document.fragments.values().any(|f| mentions(&f.node.selection_set.node));
    let operations = document.operations.iter().any(|(_, op)| {
        op.node.ty != OperationType::Subscription
            || op.node.selection_set.node.items.iter().any(|item| match &item.node {
                Selection::Field(root) if root.node.name.node == "unreadCountChanged" => {
                    root.node.selection_set.node.items.iter().any(|child| match &child.node {
                        Selection::Field(f) => mentions(&f.node.selection_set.node),
                        _ => true,
                    })
                }
                Selection::Field(root) => mentions(&root.node.selection_set.node),
                _ => true,
            })
    });
    fragments || operations
}

fn mentions(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            PER_VIEWER_FIELDS.contains(&f.node.name.node.as_str()) || mentions(&f.node.selection_set.node)
        }
        Selection::InlineFragment(f) => mentions(&f.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::selects_per_viewer_fields as per_viewer;

    #[test]
    fn plain_message_selections_are_shared_across_viewers() {
        assert!(!per_viewer(
            "subscription { messageAdded { id seq body author { handle } room { id name } } }"
        ));
        assert!(!per_viewer("subscription { unreadCountChanged { roomId unreadCount unreadTotal seq } }"));
    }

    #[test]
    fn per_viewer_fields_anywhere_make_the_document_per_viewer() {
        assert!(per_viewer("subscription { messageAdded { room { unreadCount } } }"));
        assert!(per_viewer("subscription { unreadCountChanged { room { viewerRole } } }"));
        assert!(per_viewer(
            "subscription { messageAdded { room { ...R } } } fragment R on Room { lastReadSeq }"
        ));
        assert!(per_viewer("subscription { messageAdded { room { ... on Room { unreadCount } } } }"));
    }

    #[test]
    fn an_unparsable_document_is_never_shared() {
        assert!(per_viewer("subscription {"));
    }
}
