//! The Relay `Node` interface and `node(id)`: ids are UUIDs, unique across tables.

use async_graphql::{Context, ID, Interface, Object, Result};

use super::context::ContextExt;
use super::ids::parse_id;
use crate::error::found;
use crate::messages::MessageRecord;
use crate::messages::service as messages;
use crate::messages::types::Message;
use crate::rooms::access;
use crate::rooms::types::Room;
use crate::users::service as users;
use crate::users::types::User;

#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    Room(Room),
    Message(Message),
    User(User),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any room, message or user the viewer may see, by id; null otherwise.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let (store, viewer) = (&ctx.state()?.store, ctx.viewer()?);
        let id = parse_id(&id)?;
        if let Some(room) = found(access::readable(store, viewer, id).await)? {
            return Ok(Some(Node::Room(Room::from(room.room))));
        }
        if let Some((message, _)) = found(messages::readable(store, viewer, id).await)? {
            return Ok(Some(Node::Message(Message::from(MessageRecord::from(message)))));
        }
        Ok(found(users::find(store, viewer.org_id, id).await)?.map(|user| Node::User(User(user))))
    }
}
