//! Full-text search over messages: `searchMessages`, ranked and highlighted, over the rooms
//! the viewer may read. It owns the query syntax ([`query`]), the per-engine SQL
//! ([`service`] assembles a page from [`clauses`]), snippets as HTML ([`highlight`]) and PostgreSQL's text search
//! configuration ([`index`]), and the recency window search ranks first ([`window`]). It owns no table of its own: the index lives beside
//! `messages` (a generated `tsvector` column on PostgreSQL, an FTS5 table on SQLite; see the
//! `message_search` migration). Searching rooms and users by name lives with rooms and users.

mod clauses;
pub mod highlight;
pub mod index;
pub mod query;
pub mod resolvers;
pub mod service;
pub mod types;
pub mod window;
