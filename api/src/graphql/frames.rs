//! Shared fan-out: subscribers on this instance that run the same document with the same
//! variables, and whose per-viewer inputs are equal, share one rendering and one serialised
//! payload per event (the way Hasura multiplexes live queries).
//!
//! An event that may be shared carries a `FrameKey` naming it (a message id and version, a
//! count and its seq…). Its payload is rendered once per `(ShareKey, field, FrameKey)` in
//! this instance's `FrameMemo` (see `live.rs`): the first subscriber starts its rendering, in
//! a task of its own, concurrent and later ones wait for and reuse the serialised payload,
//! with no execution of their own.
//!
//! Per-viewer fields (a room's unread count, the viewer's role or watermark) stay exact: a
//! document that selects one gets the viewer's id in its `ShareKey`, so it is shared only
//! between connections of the same user. Items that are themselves per viewer (an unread
//! count change) carry their values in their key, so equal values share and different
//! values never do.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{OperationType, Selection, SelectionSet};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use moka::future::Cache;
use moka::ops::compute::Op;
use uuid::Uuid;

use super::documents::{LARGEST_CACHED_DOCUMENT, by_text_size};

/// Long enough for every local subscriber to take its frame, short enough to hold little.
const FRAME_TTL: Duration = Duration::from_secs(10);
const FRAME_CAPACITY: u64 = 20_000;
/// Bytes of subscription document text kept: clients send a few documents, each from many
/// connections. Weighed in bytes, and dropped when idle, because a client chooses the text
/// (up to the frame limit) and it is kept before the schema has validated it.
const DOCUMENT_BYTES: u64 = 4 << 20;
/// Bytes of share-key text kept: one key per document and variables, or per viewer as well.
const SHARE_KEY_BYTES: u64 = 16 << 20;
/// A kept text nobody subscribed with for this long is dropped.
const TEXT_IDLE: Duration = Duration::from_secs(600);

/// Fields whose value depends on who is asking (besides the items of `unreadCountChanged`,
/// whose own values are their key): read through the viewer's membership, read position or
/// saved items, or null unless the viewer may read it (`Conversation.inbox`, and
/// `SupportInbox.outboundWebhookUrl` for admins only). By name, on
/// every type: a name that is per viewer on one type makes every field of that name so. A
/// test walks the schema from the shared items and fails on a field name it does not know,
/// so a new field is sorted here or among the shared ones before it ships.
const PER_VIEWER_FIELDS: [&str; 10] = [
    "unreadCount",
    "mentionCount",
    "unreadTotal",
    "lastReadSeq",
    "viewerRole",
    "isFavorite",
    "isMuted",
    "mutedUntil",
    "inbox",
    "outboundWebhookUrl",
];

/// What makes two subscriptions' frames interchangeable: organisation, operation, variables,
/// document, and the viewer when the document reads per-viewer fields. Made by
/// [`FrameMemo::share_key`] and hashed once, when the subscription starts: every event looks
/// its frame up by this key for every subscriber.
#[derive(Clone)]
pub struct ShareKey {
    /// Interned: subscriptions with equal keys mostly hold one text, compared by pointer first.
    text: Arc<str>,
    hash: u64,
}

impl ShareKey {
    fn new(text: Arc<str>) -> Self {
        // Equal texts get equal hashes, which is all `Hash` must promise.
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        Self { text, hash: hasher.finish() }
    }
}

impl PartialEq for ShareKey {
    fn eq(&self, other: &Self) -> bool {
        // `Arc<str>`'s own `==` compares the bytes even of one allocation.
        Arc::ptr_eq(&self.text, &other.text) || (self.hash == other.hash && self.text == other.text)
    }
}

impl Eq for ShareKey {}

impl Hash for ShareKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// An event's identity and version, unique across item kinds: what kind of item it is, the id
/// of what changed, and the numbers that tell two versions of it apart (0 where unused). Plain
/// values: building and hashing one allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FrameKey {
    kind: &'static str,
    id: Uuid,
    version: [i64; 6],
}

impl FrameKey {
    pub fn new(kind: &'static str, id: Uuid, version: [i64; 6]) -> Self {
        Self { kind, id, version }
    }
}

type MemoKey = (ShareKey, Arc<str>, FrameKey);

/// A payload being rendered, or rendered: each subscriber awaits a clone of it.
type Rendering = Shared<BoxFuture<'static, Option<Arc<str>>>>;

/// This instance's recent payloads, by share key, root field and event, and the subscription
/// documents and share keys it has seen. Every subscriber looks its frame up here, so the
/// keys are hashed with foldhash (SipHash, the default, cost more than the rest of the
/// lookup); what a client controls in a key (its document) is already reduced to
/// `ShareKey`'s own hash.
#[derive(Clone)]
pub struct FrameMemo {
    payloads: Cache<MemoKey, Rendering, foldhash::fast::RandomState>,
    /// Each subscription document's text once, and whether it reads per-viewer fields:
    /// deciding that parses the document, which thousands of connections send alike.
    documents: moka::sync::Cache<Arc<str>, SubscriptionDocument>,
    /// Share keys by their text, so that equal keys share one allocation. One that was
    /// evicted is made afresh: it is still equal to the others, only compared by content.
    keys: moka::sync::Cache<Arc<str>, Arc<str>>,
}

/// A subscription document as the memo keeps it.
#[derive(Clone)]
pub struct SubscriptionDocument {
    /// The text, one allocation for every subscription that sent it.
    pub query: Arc<str>,
    per_viewer: bool,
}

impl Default for FrameMemo {
    fn default() -> Self {
        let builder = Cache::builder().max_capacity(FRAME_CAPACITY).time_to_live(FRAME_TTL);
        Self {
            payloads: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            documents: by_text_size(DOCUMENT_BYTES).time_to_idle(TEXT_IDLE).build(),
            keys: by_text_size(SHARE_KEY_BYTES).time_to_idle(TEXT_IDLE).build(),
        }
    }
}

impl FrameMemo {
    /// A subscription's share key, and its document as kept here.
    pub fn share_key(
        &self,
        org_id: Uuid,
        viewer_id: Uuid,
        request: &async_graphql::Request,
    ) -> (ShareKey, SubscriptionDocument) {
        let document = self.documents.get(request.query.as_str()).unwrap_or_else(|| {
            let document = SubscriptionDocument {
                query: request.query.as_str().into(),
                per_viewer: selects_per_viewer_fields(&request.query),
            };
            self.documents.insert(document.query.clone(), document.clone());
            document
        });
        let viewer = if document.per_viewer { viewer_id.to_string() } else { String::new() };
        let variables = serde_json::to_string(&request.variables).unwrap_or_default();
        let operation = request.operation_name.as_deref().unwrap_or("");
        let text = format!("{org_id}\n{viewer}\n{operation}\n{variables}\n{}", request.query);
        let text = self.keys.get(text.as_str()).unwrap_or_else(|| {
            let text: Arc<str> = text.into();
            self.keys.insert(text.clone(), text.clone());
            text
        });
        (ShareKey::new(text), document)
    }

    /// The payload of one event for one share key: rendered once, for the first subscriber to
    /// ask, and awaited by every other. `render` makes the rendering's future only on a miss:
    /// it is large, and most subscribers never need it. A rendering that fails (`None`) is not
    /// kept: the next subscriber renders again.
    ///
    /// The rendering runs as a task of its own, not in the first subscriber's: a connection
    /// that stops polling (a slow client's full socket) would otherwise hold up every other
    /// subscriber of the document on this instance.
    pub async fn payload<F>(
        &self,
        share: &ShareKey,
        field: Arc<str>,
        key: FrameKey,
        render: impl FnOnce() -> F,
    ) -> Option<Arc<str>>
    where
        F: Future<Output = Option<Arc<str>>> + Send + 'static,
    {
        let key = (share.clone(), field, key);
        let rendering = match self.payloads.get(&key).await {
            Some(rendering) => match rendering.peek() {
                // Most subscribers: the payload is there, taken without waiting.
                Some(Some(payload)) => return Some(payload.clone()),
                None => rendering,
                // Failed, and not forgotten yet.
                Some(None) => {
                    self.forget(&key, &rendering).await;
                    self.start(key.clone(), render).await
                }
            },
            None => self.start(key.clone(), render).await,
        };
        let payload = rendering.clone().await;
        if payload.is_none() {
            self.forget(&key, &rendering).await;
        }
        payload
    }

    async fn start<F>(&self, key: MemoKey, render: impl FnOnce() -> F) -> Rendering
    where
        F: Future<Output = Option<Arc<str>>> + Send + 'static,
    {
        // Yields the rendering's future on purpose: moka runs this only when it inserts, so
        // a subscriber that lost the race to another spawns nothing.
        #[allow(clippy::async_yields_async)]
        let start = async {
            let task = tokio::spawn(render());
            let rendered = task.map(|rendered| match rendered {
                Ok(payload) => payload,
                Err(err) => {
                    tracing::error!(error = %err, "rendering a shared frame panicked");
                    None
                }
            });
            rendered.boxed().shared()
        };
        self.payloads.get_with(key, start).await
    }

    /// Removes a failed rendering, unless a newer one took its place since.
    async fn forget(&self, key: &MemoKey, failed: &Rendering) {
        let failed = failed.clone();
        let decide = |entry: Option<moka::Entry<MemoKey, Rendering>>| async move {
            match entry {
                Some(entry) if entry.value().ptr_eq(&failed) => Op::Remove,
                _ => Op::Nop,
            }
        };
        self.payloads.entry_by_ref(key).and_compute_with(decide).await;
    }
}

/// Whether a subscription document reads fields that depend on the viewer. Conservative:
/// any such name anywhere counts, except the item fields of `unreadCountChanged` itself, and
/// a document too long to parse here counts as reading them.
pub fn selects_per_viewer_fields(query: &str) -> bool {
    // This runs before the set-up checks `PARLEY_MAX_QUERY_BYTES` (a WebSocket message may
    // hold 256 KiB): longer documents than the default limit are not parsed here.
    if query.len() > LARGEST_CACHED_DOCUMENT {
        return true;
    }
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
mod tests;
