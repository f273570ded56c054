//! DataLoaders of the support fields, so a page of conversations or of a conversation's
//! messages costs one query per field, not one per object: `Conversation.inbox`,
//! `Conversation.contact`, `Conversation.assignmentDecision`, `Message.contact` and
//! `Message.delivery`. Each filters by the viewer's organisation itself.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::graphql::loaders::{LoadError, Loaders};
use entity::{
    assignment_decisions, contacts, notification_deliveries, support_inbox_members, support_inboxes,
};

/// An inbox the viewer may read: an org admin, or one of its agents. Others get nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadableInboxKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactKey(pub Uuid);
/// The latest assignment decision of a conversation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKey(pub Uuid);
/// The outbound delivery of an agent's reply, by message id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutboundDeliveryKey(pub Uuid);

impl Loader<ReadableInboxKey> for Loaders {
    type Value = support_inboxes::Model;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ReadableInboxKey],
    ) -> Result<HashMap<ReadableInboxKey, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut query = support_inboxes::Entity::find()
            .filter(support_inboxes::Column::OrgId.eq(self.viewer.org_id))
            .filter(support_inboxes::Column::Id.is_in(ids.iter().copied()));
        if !self.viewer.is_admin() {
            let agent_of = support_inbox_members::Entity::find()
                .filter(support_inbox_members::Column::UserId.eq(self.viewer.id))
                .filter(support_inbox_members::Column::InboxId.is_in(ids))
                .all(&self.store.db)
                .await?;
            query = query.filter(support_inboxes::Column::Id.is_in(agent_of.into_iter().map(|m| m.inbox_id)));
        }
        let rows = query.all(&self.store.db).await?;
        Ok(rows.into_iter().map(|inbox| (ReadableInboxKey(inbox.id), inbox)).collect())
    }
}

impl Loader<ContactKey> for Loaders {
    type Value = contacts::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[ContactKey]) -> Result<HashMap<ContactKey, Self::Value>, Self::Error> {
        let rows = contacts::Entity::find()
            .filter(contacts::Column::OrgId.eq(self.viewer.org_id))
            .filter(contacts::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.store.db)
            .await?;
        Ok(rows.into_iter().map(|contact| (ContactKey(contact.id), contact)).collect())
    }
}

impl Loader<DecisionKey> for Loaders {
    type Value = assignment_decisions::Model;
    type Error = LoadError;

    /// Reads every decision of these conversations, newest first, and keeps each one's first:
    /// a conversation has one per assignment, a handful.
    async fn load(&self, keys: &[DecisionKey]) -> Result<HashMap<DecisionKey, Self::Value>, Self::Error> {
        let rows = assignment_decisions::Entity::find()
            .filter(assignment_decisions::Column::OrgId.eq(self.viewer.org_id))
            .filter(assignment_decisions::Column::RoomId.is_in(keys.iter().map(|k| k.0)))
            .order_by_desc(assignment_decisions::Column::DecidedAt)
            .order_by_desc(assignment_decisions::Column::Id)
            .all(&self.store.db)
            .await?;
        let mut latest = HashMap::new();
        for decision in rows {
            latest.entry(DecisionKey(decision.room_id)).or_insert(decision);
        }
        Ok(latest)
    }
}

impl Loader<OutboundDeliveryKey> for Loaders {
    type Value = notification_deliveries::Model;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[OutboundDeliveryKey],
    ) -> Result<HashMap<OutboundDeliveryKey, Self::Value>, Self::Error> {
        let rows = notification_deliveries::Entity::find()
            .filter(notification_deliveries::Column::OrgId.eq(self.viewer.org_id))
            .filter(notification_deliveries::Column::Channel.eq("outbound"))
            .filter(notification_deliveries::Column::MessageId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.store.db)
            .await?;
        let mut found = HashMap::new();
        for delivery in rows {
            if let Some(message_id) = delivery.message_id {
                found.entry(OutboundDeliveryKey(message_id)).or_insert(delivery);
            }
        }
        Ok(found)
    }
}
