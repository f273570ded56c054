//! GraphQL enums mirroring the stored ones (the `entity` crate carries no GraphQL derives).

use async_graphql::Enum;

use entity::enums as db;

/// Declares a GraphQL enum with the same variants as a stored enum, and conversions both ways.
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident <=> $db:ty { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl From<$db> for $name {
            fn from(value: $db) -> Self {
                match value { $(<$db>::$variant => Self::$variant),+ }
            }
        }

        impl From<$name> for $db {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => Self::$variant),+ }
            }
        }
    };
}

mirror_enum!(UserRole <=> db::UserRole { Owner, Admin, Agent, Member, Integration });
mirror_enum!(
    /// How an inbox assigns new conversations.
    AssignmentStrategy <=> db::AssignmentStrategy { Manual, RoundRobin, LeastBusy }
);
mirror_enum!(
    /// Where a support conversation stands.
    ConversationStatus <=> db::ConversationStatus { Open, Pending, Snoozed, Resolved }
);
mirror_enum!(UserKind <=> db::UserKind { Human, Bot, System });
mirror_enum!(RoomKind <=> db::RoomKind { Direct, Channel, Support });
mirror_enum!(Visibility <=> db::Visibility { Public, Private });
mirror_enum!(MemberRole <=> db::MemberRole { Owner, Admin, Member });
mirror_enum!(SenderRole <=> db::SenderRole { User, Assistant, System });
mirror_enum!(MessageSource <=> db::MessageSource { Chat, Sms, Email, Api });
