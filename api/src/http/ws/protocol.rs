//! The two subprotocols' messages and close codes.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`, the current protocol.
    TransportWs,
    /// `graphql-ws`, the legacy subscriptions-transport-ws protocol.
    LegacyWs,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::TransportWs => "graphql-transport-ws",
            Self::LegacyWs => "graphql-ws",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "graphql-transport-ws" => Some(Self::TransportWs),
            "graphql-ws" => Some(Self::LegacyWs),
            _ => None,
        }
    }

    /// A result; `payload` is the serialised GraphQL response, shared between subscribers
    /// of one document, so only the envelope is written per connection: into one buffer of
    /// the frame's size, without the formatting machinery (this runs for every subscriber
    /// of every event).
    pub fn next(self, id: &str, payload: &str) -> String {
        let ty = if self == Self::TransportWs { "next" } else { "data" };
        let mut frame = String::with_capacity(id.len() + payload.len() + 40);
        frame.push_str(r#"{"id":"#);
        // Clients choose ids; one that JSON must escape is written by serde_json.
        if id.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            frame.push('"');
            frame.push_str(id);
            frame.push('"');
        } else {
            frame.push_str(&Value::from(id).to_string());
        }
        frame.push_str(r#","type":""#);
        frame.push_str(ty);
        frame.push_str(r#"","payload":"#);
        frame.push_str(payload);
        frame.push('}');
        frame
    }

    pub fn error(self, id: &str, errors: Value) -> String {
        json!({ "id": id, "type": "error", "payload": errors }).to_string()
    }

    pub fn complete(self, id: &str) -> String {
        json!({ "id": id, "type": "complete" }).to_string()
    }

    /// The server's keepalive.
    pub fn keepalive(self) -> String {
        let ty = if self == Self::TransportWs { "ping" } else { "ka" };
        json!({ "type": ty }).to_string()
    }
}

/// Why a connection's loop stopped: a close code and reason, or the peer went away.
pub type Closing = Option<(u16, String)>;

/// Close codes of graphql-transport-ws (and WebSocket's own).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    /// "Service Restart": graphql-ws clients reconnect, here to start over with the account's
    /// new role.
    pub const RECONNECT: u16 = 1012;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// graphql-ws's `InternalServerError`: a dependency failed, try again.
    pub const INTERNAL_ERROR: u16 = 4500;
}

/// A client message of either protocol.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    /// `subscribe` (graphql-transport-ws) or `start` (legacy).
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    /// `complete` (graphql-transport-ws) or `stop` (legacy).
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    /// Legacy: the client is leaving.
    ConnectionTerminate {},
}

/// The token in a `connection_init` payload: `Authorization` (any case) or `token`.
pub fn init_token(payload: Option<&Value>) -> Option<String> {
    let object = payload?.as_object()?;
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization") || key.eq_ignore_ascii_case("token"))
        .and_then(|(_, value)| value.as_str())
        .map(|value| crate::auth::bearer_token(value).to_owned())
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn a_result_envelope_is_valid_json_with_an_escaped_id() {
        let frame = Protocol::TransportWs.next("a\"b", r#"{"data":{"x":1}}"#);
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap_or_default();
        assert_eq!(parsed["id"], "a\"b");
        assert_eq!(parsed["type"], "next");
        assert_eq!(parsed["payload"]["data"]["x"], 1);
        let legacy: serde_json::Value =
            serde_json::from_str(&Protocol::LegacyWs.next("m1", "{}")).unwrap_or_default();
        assert_eq!(legacy["type"], "data");
        assert_eq!(legacy["id"], "m1");
        let control: serde_json::Value =
            serde_json::from_str(&Protocol::TransportWs.next("a\nb\\", "{}")).unwrap_or_default();
        assert_eq!(control["id"], "a\nb\\");
    }
}
