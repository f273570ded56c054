//! Subscriptions without a long-lived async-graphql execution.
//!
//! async-graphql keeps one execution per subscription for the subscription's life (its
//! request, document, extensions and a stack of boxed streams, ≈ 20 KiB each), and resolves
//! every event through it for every subscriber. A WebSocket subscription here runs the
//! document twice in two short modes instead, both through the same resolvers:
//!
//! - **Set-up** (request data [`Feeds`]): each root field's resolver checks its arguments and
//!   access, opens its domain feed and leaves it in `Feeds`; the execution then ends. The
//!   connection keeps only the feeds. Each feed takes a slot of its connection's
//!   [`FeedBudget`] (`PARLEY_MAX_SUBSCRIPTIONS`) for its life: a document may alias one root
//!   field many times, and one `presenceChanged` follows everyone the viewer shares a room
//!   with, so counting documents alone left a connection's cost unbounded.
//! - **Rendering** (request data [`Rendering`]): for one event of one root field, the
//!   resolver yields just that item, and the execution produces the frame's payload. Events
//!   that subscribers may share carry a [`FrameKey`], and the payload is rendered once per
//!   `(ShareKey, field, FrameKey)` on this instance (see `frames.rs`).
//!
//! Without either (a subscription executed by async-graphql alone), [`live`] returns the
//! feed itself, as any subscription resolver would.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::Context;
use futures_util::stream::{self, BoxStream, StreamExt};

use super::frames::FrameKey;
use crate::error::ApiError;

/// A subscription item, and when subscribers with equal documents may share its frame, the
/// key naming its event.
pub struct LiveItem<T> {
    share: Option<FrameKey>,
    item: Deferred<T>,
}

/// An item, or how to make it: subscribers that reuse a shared frame never need theirs.
enum Deferred<T> {
    Ready(T),
    Later(Box<dyn FnOnce() -> T + Send>),
}

impl<T> Deferred<T> {
    fn get(self) -> T {
        match self {
            Self::Ready(item) => item,
            Self::Later(make) => make(),
        }
    }
}

impl<T> LiveItem<T> {
    pub fn shared(key: FrameKey, item: T) -> Self {
        Self { share: Some(key), item: Deferred::Ready(item) }
    }

    /// A shared item made only if this subscriber renders the frame.
    pub fn shared_later(key: FrameKey, make: impl FnOnce() -> T + Send + 'static) -> Self {
        Self { share: Some(key), item: Deferred::Later(Box::new(make)) }
    }
}

/// An item rendered for its subscriber alone (its frame depends on more than its key).
impl<T> From<T> for LiveItem<T> {
    fn from(item: T) -> Self {
        Self { share: None, item: Deferred::Ready(item) }
    }
}

/// One event of a subscription's feeds, its item type erased until it is rendered.
pub struct LiveEvent {
    /// The response key (alias or name) of the root field whose feed produced it.
    pub field: Arc<str>,
    pub share: Option<FrameKey>,
    item: Box<dyn Any + Send>,
}

/// The feeds of one subscription (several when its document has several root fields).
pub type LiveFeed = BoxStream<'static, LiveEvent>;

/// How many feeds one connection holds open. One pointer in the connection: every byte of a
/// connection task's future counts (BENCHMARKS.md: allocation size steps).
#[derive(Clone, Default)]
pub struct FeedBudget(Arc<AtomicUsize>);

impl FeedBudget {
    /// A slot for one feed, given back when the slot is dropped; RATE_LIMITED when `max` are
    /// taken.
    fn take_slot(&self, max: usize) -> Result<FeedSlot, ApiError> {
        let taken =
            self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < max).then_some(open + 1));
        match taken {
            Ok(_) => Ok(FeedSlot(self.0.clone())),
            Err(_) => Err(ApiError::rate_limited(format!(
                "at most {max} subscriptions per connection, each root field counting one"
            ))),
        }
    }
}

/// One open feed's place in its connection's budget.
struct FeedSlot(Arc<AtomicUsize>);

impl Drop for FeedSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Set-up mode: where the resolvers leave their feeds, within their connection's budget.
pub struct Feeds {
    opened: Mutex<Vec<LiveFeed>>,
    budget: FeedBudget,
    /// Most feeds the connection may hold (`PARLEY_MAX_SUBSCRIPTIONS`).
    max: usize,
}

impl Feeds {
    pub fn new(budget: FeedBudget, max: usize) -> Self {
        Self { opened: Mutex::new(Vec::new()), budget, max }
    }

    /// The feeds opened, merged into one stream; `None` when no resolver opened one.
    pub fn take(&self) -> Option<LiveFeed> {
        let mut feeds = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()));
        match feeds.len() {
            0 => None,
            1 => feeds.pop(),
            _ => Some(stream::select_all(feeds).boxed()),
        }
    }
}

/// Rendering mode: the event whose frame is being rendered.
pub struct Rendering {
    field: Arc<str>,
    item: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Rendering {
    pub fn new(event: LiveEvent) -> Self {
        Self { field: event.field, item: Mutex::new(Some(event.item)) }
    }

    /// The item, to the resolver of the field that produced it, once.
    fn take<T: 'static>(&self, field: &str) -> Option<T> {
        if *self.field != *field {
            return None;
        }
        let item = self.item.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        item.downcast::<Deferred<T>>().ok().map(|item| item.get())
    }
}

/// What a subscription resolver returns: `setup` opens its feed (argument and access
/// checks included) and is awaited only in set-up mode or without a mode.
pub async fn live<T, I, S, E>(
    ctx: &Context<'_>,
    setup: impl Future<Output = Result<S, E>> + Send,
) -> async_graphql::Result<BoxStream<'static, T>>
where
    T: Send + 'static,
    I: Into<LiveItem<T>>,
    S: futures_util::Stream<Item = I> + Send + 'static,
    E: Into<async_graphql::Error>,
{
    let field = ctx.item.node.response_key().node.as_str();
    if let Some(rendering) = ctx.data_opt::<Rendering>() {
        return Ok(stream::iter(rendering.take::<T>(field)).boxed());
    }
    let feeds = ctx.data_opt::<Arc<Feeds>>();
    // Taken before the feed opens, which may follow thousands of topics.
    let slot = feeds.map(|feeds| feeds.budget.take_slot(feeds.max)).transpose()?;
    // Boxed: the set-up's state is large, and it need not stay inline in the caller's future.
    let feed = Box::pin(setup).await.map_err(Into::into)?;
    let (Some(feeds), Some(slot)) = (feeds, slot) else {
        return Ok(feed.map(|item| item.into().item.get()).boxed());
    };
    let field: Arc<str> = field.into();
    let events = feed.map(move |item| {
        // The slot goes with the feed's stream.
        let _ = &slot;
        let LiveItem { share, item } = item.into();
        LiveEvent { field: field.clone(), share, item: Box::new(item) }
    });
    feeds.opened.lock().unwrap_or_else(|p| p.into_inner()).push(events.boxed());
    Ok(stream::empty().boxed())
}
