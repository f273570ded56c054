//! SeaORM entities of Parley: one module per table plus the shared enums. Persistence only:
//! no GraphQL derives and no business rules live here.

pub mod assignment_decisions;
pub mod contacts;
pub mod enums;
pub mod message_favorites;
pub mod messages;
pub mod notification_deliveries;
pub mod notification_settings;
pub mod organizations;
pub mod outgoing_webhooks;
pub mod push_subscriptions;
pub mod reminders;
pub mod room_members;
pub mod rooms;
pub mod settings;
pub mod support_inbox_members;
pub mod support_inboxes;
pub mod users;
