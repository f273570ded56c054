//! One WebSocket subscription as a stream of protocol messages: set up through the schema,
//! then driven from its feeds, each event rendered (or taken from the shared frames) only
//! when it arrives. See `graphql/live.rs` for the two modes.

use std::pin::Pin;
use std::sync::Arc;

use async_graphql::{Request, Response, Variables};
use futures_util::future::{self, Either};
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};

use super::protocol::Protocol;
use crate::auth::Viewer;
use crate::error::{ErrorCode, graphql_error};
use crate::graphql::documents;
use crate::graphql::frames::ShareKey;
use crate::graphql::live::{FeedBudget, Feeds, LiveEvent, LiveFeed, Rendering};
use crate::http::HttpState;
use crate::http::graphql::with_viewer;

/// One subscription's protocol messages, each with whether it is the subscription's last.
pub type Frames = Pin<Box<dyn Stream<Item = (String, bool)> + Send>>;

/// A first result with errors and no data (invalid document, no access) is a last `error`
/// message, as is a document that follows nothing (its field selected through a fragment);
/// otherwise `next`s, then a last `complete`.
pub fn frames(
    state: Arc<HttpState>,
    protocol: Protocol,
    id: String,
    request: Request,
    viewer: Viewer,
    budget: FeedBudget,
) -> Frames {
    let (share, kept) = state.frames.share_key(viewer.org_id, viewer.id, &request);
    let document = Arc::new(Document {
        share,
        query: kept.query,
        operation: request.operation_name.clone(),
        variables: request.variables.clone(),
        viewer: viewer.clone(),
    });
    let feeds = Arc::new(Feeds::new(budget, state.app.limits.max_subscriptions));
    let responses = state.schema.execute_stream(with_viewer(&state, request, viewer).data(feeds.clone()));
    let subscription = Box::new(Subscription {
        state,
        protocol,
        id: id.into(),
        document,
        phase: Phase::SettingUp { responses, feeds, first: true },
        _active: ActiveSubscription::new(),
    });
    // The step's future is the stream's state: an `async` block around it would hold the
    // subscription a second time in every idle subscription's stream. Boxed, so each step
    // moves a pointer in and out of the stream, not the subscription.
    Box::pin(stream::unfold(Some(subscription), |subscription| match subscription {
        Some(subscription) => Either::Left(subscription.step()),
        None => Either::Right(future::ready(None)),
    }))
}

struct Subscription {
    state: Arc<HttpState>,
    protocol: Protocol,
    id: Arc<str>,
    /// Shared with the renderings it starts, which run as tasks of their own.
    document: Arc<Document>,
    phase: Phase,
    _active: ActiveSubscription,
}

/// What each rendering executes again.
struct Document {
    share: ShareKey,
    /// Shared by every subscription that sent the same text.
    query: Arc<str>,
    operation: Option<String>,
    variables: Variables,
    viewer: Viewer,
}

enum Phase {
    /// The set-up execution runs; its resolvers leave their feeds in `feeds`.
    SettingUp {
        responses: BoxStream<'static, Response>,
        feeds: Arc<Feeds>,
        first: bool,
    },
    Live(LiveFeed),
}

/// A protocol message, and the subscription to go on with unless it was the last.
type Step = Option<((String, bool), Option<Box<Subscription>>)>;

impl Subscription {
    async fn step(mut self: Box<Self>) -> Step {
        loop {
            match &mut self.phase {
                Phase::SettingUp { responses, feeds, first } => {
                    let Some(mut response) = responses.next().await else {
                        match feeds.take() {
                            Some(feed) => self.phase = Phase::Live(feed),
                            // async-graphql follows only the fields named at the root: one
                            // selected through a fragment (`subscription { ...F }`) opens no
                            // feed and answers nothing, which would end without a word.
                            None if std::mem::take(first) => {
                                let error = graphql_error(
                                    ErrorCode::BadUserInput,
                                    "this subscription follows nothing: select its field directly, not through a fragment",
                                );
                                return Some((
                                    (self.protocol.error(&self.id, serde_json::json!([error])), true),
                                    None,
                                ));
                            }
                            None => return self.complete(),
                        }
                        continue;
                    };
                    if std::mem::take(first)
                        && response.data == async_graphql::Value::Null
                        && !response.errors.is_empty()
                    {
                        documents::mark_request_errors(&mut response.errors);
                        let errors = serde_json::to_value(&response.errors).unwrap_or_default();
                        return Some(((self.protocol.error(&self.id, errors), true), None));
                    }
                    // A root field that opens no feed (`__typename`) answers during set-up.
                    return match encode(&response) {
                        Some(payload) => self.next(&payload),
                        None => self.complete(),
                    };
                }
                Phase::Live(feed) => {
                    let Some(event) = feed.next().await else { return self.complete() };
                    // Boxed: a rendering's state is large and must not stay in every
                    // idle subscription's stream.
                    return match Box::pin(render(&self.state, &self.document, event)).await {
                        Some(payload) => self.next(&payload),
                        None => self.complete(),
                    };
                }
            }
        }
    }

    fn next(self: Box<Self>, payload: &str) -> Step {
        Some(((self.protocol.next(&self.id, payload), false), Some(self)))
    }

    fn complete(&self) -> Step {
        Some(((self.protocol.complete(&self.id), true), None))
    }
}

/// The event's payload: shared with the subscribers of the same document when the event has
/// a key, else rendered for this subscriber alone.
async fn render(state: &Arc<HttpState>, document: &Arc<Document>, mut event: LiveEvent) -> Option<Arc<str>> {
    match event.share.take() {
        Some(key) => {
            let field = event.field.clone();
            // Owned, on a miss only: the shared rendering runs as a task of its own (see
            // `FrameMemo::payload`).
            let rendering = || {
                let (state, document) = (state.clone(), document.clone());
                async move { execute(&state, &document, event).await }
            };
            state.frames.payload(&document.share, field, key, rendering).await
        }
        None => execute(state, document, event).await,
    }
}

/// Runs the document in rendering mode for one event.
async fn execute(state: &HttpState, document: &Document, event: LiveEvent) -> Option<Arc<str>> {
    let mut request = Request::new(&*document.query).variables(document.variables.clone());
    if let Some(operation) = &document.operation {
        request = request.operation_name(operation.clone());
    }
    let request = with_viewer(state, request, document.viewer.clone()).data(Rendering::new(event));
    let Some(response) = state.schema.execute_stream(request).next().await else {
        tracing::error!("rendering a subscription event produced no result");
        return None;
    };
    encode(&response)
}

fn encode(response: &Response) -> Option<Arc<str>> {
    match serde_json::to_string(response) {
        Ok(payload) => Some(payload.into()),
        Err(err) => {
            tracing::error!(%err, "cannot encode a subscription result");
            None
        }
    }
}

/// Counts live subscriptions; dropped with the subscription's stream.
struct ActiveSubscription;

impl ActiveSubscription {
    fn new() -> Self {
        metrics::gauge!("parley_active_subscriptions").increment(1.0);
        Self
    }
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!("parley_active_subscriptions").decrement(1.0);
    }
}
