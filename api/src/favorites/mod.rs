//! Favorites, per user: favorite rooms (`room_members.favorite_at`, so only members have
//! them) and saved messages (`message_favorites`). Setting either is idempotent; a change is
//! announced on the user's topic (`favoritesChanged`) so the user's other devices follow.
//! A saved message the viewer can no longer read drops out of `viewer.favoriteMessages`; a
//! deleted one stays, shown as deleted.

pub mod feed;
pub mod resolvers;
pub mod service;
pub mod types;
