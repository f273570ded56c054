//! Clients of a `parley` instance over HTTP, as a frontend would use it: GraphQL over HTTP
//! and HS256 token minting.
//!
//! The HTTP client counts a response as failed when its body carries GraphQL `errors`, not only
//! on a bad HTTP status. WebSocket clients are in `ws`, and what they observe goes to an
//! `inbox::Inbox`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use uuid::Uuid;

pub fn mint(secret: &str, user: Uuid, org: Uuid) -> Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": user, "org": org, "role": "member", "iat": now, "exp": now + 6 * 3600 });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
        .context("minting a JWT")
}

/// GraphQL over HTTP against one instance.
#[derive(Clone)]
pub struct Gql {
    http: reqwest::Client,
    url: String,
}

impl Gql {
    /// `base` is `http://127.0.0.1:PORT`.
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, url: format!("{base}/graphql") })
    }

    /// Runs an operation; `Err` on a transport failure, a bad status or GraphQL `errors`.
    pub async fn call(&self, token: &str, query: &str, variables: Value) -> Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("accept", "application/graphql-response+json, application/json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .context("POST /graphql")?;
        let status = response.status();
        let body: Value =
            response.json().await.with_context(|| format!("HTTP {status}: body is not JSON"))?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            let first = &errors[0];
            bail!(
                "GraphQL error (HTTP {status}, {} in all): {} [{}]",
                errors.len(),
                first["message"].as_str().unwrap_or("?"),
                first["extensions"]["code"].as_str().unwrap_or("no code")
            );
        }
        if !status.is_success() {
            bail!("HTTP {status}");
        }
        match body.get("data") {
            Some(data) if !data.is_null() => Ok(data.clone()),
            _ => bail!("HTTP {status}: a response without data"),
        }
    }

    /// `sendMessage`; returns the stored message's seq.
    pub async fn send(&self, token: &str, room: Uuid, body: &str) -> Result<i64> {
        const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }";
        let input = json!({ "roomId": room, "body": body, "clientId": body });
        let data = self.call(token, SEND, json!({ "input": input })).await?;
        data["sendMessage"]["seq"].as_i64().context("sendMessage without a seq")
    }
}

/// Someone who can post into a room: used for warm-up and measured messages.
#[derive(Clone)]
pub struct Poster {
    pub gql: Gql,
    pub token: String,
    pub room: Uuid,
}

impl Poster {
    pub async fn send(&self, body: &str) -> Result<i64> {
        self.gql.send(&self.token, self.room, body).await
    }
}
