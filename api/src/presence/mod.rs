//! Presence: who is online. A user is online while they hold at least one authenticated
//! WebSocket on any instance ([`tracker`], with Redis leases in [`cluster`]); a status they
//! set by hand (`setPresence`: online, away, dnd, stored on the user) is shown instead until
//! they clear it ([`service`]). Only changes of what others see are announced, on the user's
//! presence topic, which `presenceChanged` subscribers follow for the people they share a room
//! with ([`feed`]).
//!
//! When an instance dies its leases stop being renewed; the next sweep on any other instance
//! (every heartbeat) ends them and announces the users who had no other connection.

pub mod cluster;
pub mod feed;
pub mod resolvers;
pub mod service;
pub mod tracker;

use entity::enums::PresenceStatus as Manual;

/// What others see of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    Away,
    Dnd,
    Offline,
}

impl Status {
    /// The status set by hand if any, else the connection state.
    pub fn shown(manual: Option<Manual>, connected: bool) -> Self {
        match manual {
            Some(Manual::Online) => Self::Online,
            Some(Manual::Away) => Self::Away,
            Some(Manual::Dnd) => Self::Dnd,
            None if connected => Self::Online,
            None => Self::Offline,
        }
    }

    /// Whether `@here` reaches the user: shown online (by hand, or connected with no status
    /// set), or connected in do-not-disturb (the mention counts; no push or email goes out).
    /// Someone who set themselves away is not here, tab open or not, as in Slack.
    pub fn here(manual: Option<Manual>, connected: bool) -> bool {
        match manual {
            Some(Manual::Online) => true,
            Some(Manual::Away) => false,
            Some(Manual::Dnd) | None => connected,
        }
    }

    /// Whether the user sees a message live, so that an email or push about it is not needed:
    /// connected, and not set away (a tab left open while away is not someone reading).
    pub fn sees_live(manual: Option<Manual>, connected: bool) -> bool {
        connected && manual != Some(Manual::Away)
    }

    /// The name carried on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Dnd => "dnd",
            Self::Offline => "offline",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Online, Self::Away, Self::Dnd, Self::Offline].into_iter().find(|s| s.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn away_by_hand_is_neither_here_nor_watching() {
        for connected in [false, true] {
            assert!(Status::here(Some(Manual::Online), connected));
            assert!(!Status::here(Some(Manual::Away), connected));
            assert!(!Status::sees_live(Some(Manual::Away), connected));
            assert!(!Status::sees_live(Some(Manual::Online), false));
        }
        assert_eq!(Status::here(None, true), Status::sees_live(None, true));
        assert!(Status::here(Some(Manual::Dnd), true) && !Status::here(Some(Manual::Dnd), false));
        assert!(!Status::here(None, false) && !Status::sees_live(None, false));
    }
}
