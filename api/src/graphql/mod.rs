//! Schema assembly: the merged Query, Mutation and Subscription roots of every domain, the
//! limits, and helpers shared by resolvers (context access, ids, pages, loaders).
//!
//! Architecture invariant: resolvers stay thin — viewer, service call, mapping — and services
//! never import async-graphql.

pub mod context;
pub mod documents;
pub mod enums;
pub mod flat;
pub mod frames;
pub mod ids;
pub mod limits;
pub mod live;
pub mod loaders;
pub mod node;
pub mod nul;
pub mod pages;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::config::Limits;
use crate::favorites::resolvers::{FavoriteMutation, FavoriteSubscription};
use crate::messages::resolvers::{MessageMutation, MessageQuery, MessageSubscription};
use crate::notifications::resolvers::{NotificationMutation, NotificationQuery};
use crate::presence::resolvers::{PresenceMutation, PresenceSubscription};
use crate::read_state::resolvers::{ReadStateMutation, ReadStateQuery, ReadStateSubscription};
use crate::reminders::resolvers::{ReminderMutation, ReminderSubscription};
use crate::rooms::resolvers::{RoomMutation, RoomQuery, RoomSubscription};
use crate::search::resolvers::SearchQueryRoot;
use crate::state::AppState;
use crate::support::resolvers::{SupportMutation, SupportQuery};
use crate::typing::resolvers::{TypingMutation, TypingSubscription};
use crate::users::resolvers::{UserMutation, UserQuery};

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    UserQuery,
    RoomQuery,
    MessageQuery,
    ReadStateQuery,
    SearchQueryRoot,
    NotificationQuery,
    SupportQuery,
    node::NodeQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    RoomMutation,
    MessageMutation,
    ReadStateMutation,
    UserMutation,
    FavoriteMutation,
    ReminderMutation,
    TypingMutation,
    PresenceMutation,
    NotificationMutation,
    SupportMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    MessageSubscription,
    ReadStateSubscription,
    RoomSubscription,
    FavoriteSubscription,
    ReminderSubscription,
    TypingSubscription,
    PresenceSubscription,
);

pub type ParleySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema with its limits; `state` is absent only when printing the SDL.
pub fn build_schema(state: Option<AppState>, limits: Option<&Limits>, introspection: bool) -> ParleySchema {
    let mut builder =
        Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default());
    if let Some(limits) = limits {
        builder = builder
            .limit_depth(limits.max_query_depth)
            .limit_complexity(limits.max_query_complexity)
            .limit_recursive_depth(32)
            .limit_directives(50)
            .extension(documents::DocumentCache::new(limits));
    }
    if !introspection {
        // "Did you mean …?" in errors would reveal field names that introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL printed by `parley schema` and checked in as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, None, true).sdl()
}
