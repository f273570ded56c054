//! Users and organisations: lookup, search, and admin management.

pub mod input;
pub mod resolvers;
pub mod service;
pub mod types;
