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

    /// The envelope of a subscription's results, made once when it starts.
    pub fn next_envelope(self, id: &str) -> NextEnvelope {
        let ty = if self == Self::TransportWs { "next" } else { "data" };
        let id = Value::from(id);
        NextEnvelope(format!(r#"{{"id":{id},"type":"{ty}","payload":"#).into())
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

/// The start of one subscription's `next` (legacy: `data`) messages, up to the payload.
pub struct NextEnvelope(Box<str>);

impl NextEnvelope {
    /// A result; `payload` is the serialised GraphQL response, shared between subscribers of
    /// one document, so a frame costs one allocation of its exact size per connection.
    pub fn frame(&self, payload: &str) -> String {
        let mut frame = String::with_capacity(self.0.len() + payload.len() + 1);
        frame.push_str(&self.0);
        frame.push_str(payload);
        frame.push('}');
        frame
    }
}

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
        let frame = Protocol::TransportWs.next_envelope("a\"b").frame(r#"{"data":{"x":1}}"#);
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap_or_default();
        assert_eq!(parsed["id"], "a\"b");
        assert_eq!(parsed["type"], "next");
        assert_eq!(parsed["payload"]["data"]["x"], 1);
        let legacy: serde_json::Value =
            serde_json::from_str(&Protocol::LegacyWs.next_envelope("1").frame("{}")).unwrap_or_default();
        assert_eq!(legacy["type"], "data");
    }
}
