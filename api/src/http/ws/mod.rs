//! GraphQL over WebSocket, replacing async-graphql's built-in handler, which deviates from
//! `graphql-transport-ws` (see PITFALLS.md). Both subprotocols are spoken:
//! `graphql-transport-ws` (graphql-ws ≥ 5) and the legacy `graphql-ws`
//! (subscriptions-transport-ws).
//!
//! One task per connection runs `Connection::run`: it reads frames, enforces the protocol's
//! close codes, and drives its subscriptions (`subscription.rs`), writing what they produce.

mod connection;
mod protocol;
mod subscription;
mod viewer_checks;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use super::HttpState;
use protocol::Protocol;

pub fn upgrade(state: Arc<HttpState>, upgrade: WebSocketUpgrade) -> Response {
    let max = state.app.limits.max_ws_frame_bytes;
    upgrade
        .protocols([Protocol::TransportWs.name(), Protocol::LegacyWs.name()])
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite's default 128 KiB read buffer is zero-filled on first read and then
        // kept: with it an idle connection costs ~200 KiB. Clients send few and small
        // messages (`subscribe`: a few hundred bytes; `connection_init` with an RS256 token:
        // ≈ 650, two reads). Each read takes at most 512 bytes, so a larger frame costs
        // about size / 512 reads while the buffer grows to hold it whole.
        .read_buffer_size(512)
        .write_buffer_size(4 << 10)
        .on_upgrade(move |socket| {
            let protocol = socket
                .protocol()
                .and_then(|p| p.to_str().ok())
                .and_then(Protocol::from_name)
                .unwrap_or(Protocol::TransportWs);
            connection::Connection::new(state, protocol).run(socket)
        })
}
