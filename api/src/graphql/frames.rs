//! Shared fan-out: subscribers on this instance that run the same document with the same
//! variables, and whose per-viewer inputs are equal, share one execution and one serialised
//! payload per event (the way Hasura multiplexes live queries).
//!
//! A subscription item is wrapped in `Shared { key, item }`, where `key` names the event (a
//! message id and version, a count and its seq…). Resolving it looks up `(ShareKey, key)` in
//! this instance's `FrameMemo`: the first subscriber resolves the selection, concurrent and
//! later ones wait for and reuse that value. The WebSocket layer then finds the same memo
//! entry in the subscription's `FrameSlot` and serialises the payload once for all of them.
//!
//! Per-viewer fields (a room's unread count, the viewer's role or watermark) stay exact: a
//! document that selects one gets the viewer's id in its `ShareKey`, so it is shared only
//! between connections of the same user. Items that are themselves per viewer (an unread
//! count change) carry their values in their key, so equal values share and different
//! values never do.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_graphql::parser::types::{Field, OperationType, Selection, SelectionSet};
use async_graphql::{
    ContextSelectionSet, OutputType, Positioned, Response, ServerError, ServerResult, Value,
};
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

/// One event rendered for one `ShareKey`.
pub struct SharedFrame {
    value: Value,
    errors: Vec<ServerError>,
    /// The `payload` of the protocol message, serialised by the first connection to send it.
    payload: OnceLock<Arc<str>>,
}

impl SharedFrame {
    /// The serialised response, computed once for every subscriber sharing this frame.
    pub fn payload(&self, response: &Response) -> Arc<str> {
        self.payload.get_or_init(|| serde_json::to_string(response).unwrap_or_default().into()).clone()
    }
}

/// This instance's recent frames.
#[derive(Clone)]
pub struct FrameMemo(Cache<(ShareKey, FrameKey), Arc<SharedFrame>>);

impl Default for FrameMemo {
    fn default() -> Self {
        Self(Cache::builder().max_capacity(FRAME_CAPACITY).time_to_live(FRAME_TTL).build())
    }
}

/// Per subscription: the shared frame behind the response just produced, for the transport.
#[derive(Clone, Default)]
pub struct FrameSlot(Arc<Mutex<Option<Arc<SharedFrame>>>>);

impl FrameSlot {
    pub fn take(&self) -> Option<Arc<SharedFrame>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    fn put(&self, frame: Arc<SharedFrame>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(frame);
    }
}

/// A subscription item resolved once per `(ShareKey, FrameKey)` on this instance.
pub struct Shared<T> {
    pub key: FrameKey,
    pub item: T,
}

impl<T: OutputType> OutputType for Shared<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let (Some(memo), Some(share), Some(slot)) =
            (ctx.data_opt::<FrameMemo>(), ctx.data_opt::<ShareKey>(), ctx.data_opt::<FrameSlot>())
        else {
            return self.item.resolve(ctx, field).await;
        };
        let resolved_here = std::sync::atomic::AtomicBool::new(false);
        let frame = memo
            .0
            .try_get_with((share.clone(), self.key.clone()), async {
                resolved_here.store(true, std::sync::atomic::Ordering::Relaxed);
                let before = ctx.query_env.errors.lock().map_or(0, |e| e.len());
                let value = self.item.resolve(ctx, field).await?;
                let errors =
                    ctx.query_env.errors.lock().map_or_else(|_| Vec::new(), |e| e[before..].to_vec());
                Ok::<_, ServerError>(Arc::new(SharedFrame { value, errors, payload: OnceLock::new() }))
            })
            .await
            .map_err(|err: Arc<ServerError>| (*err).clone())?;
        if !resolved_here.load(std::sync::atomic::Ordering::Relaxed)
            && let Ok(mut errors) = ctx.query_env.errors.lock()
        {
            // The field errors of the shared execution are every sharer's errors.
            errors.extend(frame.errors.iter().cloned());
        }
        slot.put(frame.clone());
        Ok(frame.value.clone())
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
