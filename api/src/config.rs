//! The command line and the configuration: the one place that reads the environment.
//!
//! Every setting is a flag with a `PARLEY_*` environment variable (`DATABASE_URL` and
//! `REDIS_URL` keep their conventional names). Parsing happens once, in `main`; a bad value
//! stops start-up with one line naming the setting.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use entity::enums::UserRole;

#[derive(Debug, Parser)]
#[command(name = "parley", version, about = "GraphQL messaging backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeConfig>),
    /// Apply pending migrations and exit.
    Migrate(DatabaseConfig),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Mint a development JWT for a user; the token is the last line of output.
    Token(TokenArgs),
    /// Sign an inbound support message: prints a ready `curl` command that posts it.
    Sign(SignArgs),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Database URL: `sqlite://…` or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://parley.db?mode=rwc")]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "PARLEY_DB_POOL_SIZE", default_value_t = 12)]
    pub db_pool_size: u32,
    /// PostgreSQL connections opened and warmed before the server listens, and kept (default:
    /// the whole pool). Fewer means the first burst opens the rest while it waits.
    #[arg(long, env = "PARLEY_DB_POOL_WARM")]
    pub db_pool_warm: Option<u32>,
    /// PostgreSQL text search configuration of message search (`simple`, `english`, …); a
    /// change rebuilds the index at start-up.
    #[arg(long, env = "PARLEY_SEARCH_CONFIG", default_value = "simple")]
    pub search_config: String,
}

impl DatabaseConfig {
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The connections `Store::open_warm` opens at start-up: `PARLEY_DB_POOL_WARM`, refused
    /// above the pool's size (no silent cap).
    pub fn warm_connections(&self) -> anyhow::Result<u32> {
        match self.db_pool_warm {
            None => Ok(self.db_pool_size),
            Some(warm) if warm <= self.db_pool_size => Ok(warm),
            Some(warm) => anyhow::bail!(
                "PARLEY_DB_POOL_WARM: {warm} is more than the pool's {} connections (PARLEY_DB_POOL_SIZE)",
                self.db_pool_size
            ),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// HS256 secret. Unset with SQLite: generated once and kept in the database.
    #[arg(long, env = "PARLEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key (RS256, ES256 or EdDSA), or a path to one; replaces the HS256 secret.
    #[arg(long, env = "PARLEY_JWT_PUBLIC_KEY", hide_env_values = true)]
    pub jwt_public_key: Option<String>,
    /// Expected `iss` claim, checked when set.
    #[arg(long, env = "PARLEY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Expected `aud` claim, checked when set.
    #[arg(long, env = "PARLEY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub notifications: NotificationConfig,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PARLEY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Redis URL for the cross-instance event bus; unset: in-process bus (one instance).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// The first part of every Redis key and channel: deployments sharing one Redis need
    /// different ones (letters, digits, `.`, `_`, `-`; at most 64).
    #[arg(long, env = "PARLEY_REDIS_NAMESPACE", default_value = "parley", value_parser = parse_namespace)]
    pub redis_namespace: String,
    /// Seed demo data into an empty database.
    #[arg(long, env = "PARLEY_DEMO", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo: bool,
    /// Do not seed demo data (same as PARLEY_DEMO=false).
    #[arg(long)]
    pub no_demo: bool,
    /// Serve GraphiQL at `/` and allow introspection.
    #[arg(long, env = "PARLEY_PLAYGROUND", default_value_t = true, action = clap::ArgAction::Set)]
    pub playground: bool,
    /// Log format: `text` or `json`.
    #[arg(long, env = "PARLEY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Allowed CORS origins, comma separated; `*` allows any.
    #[arg(long, env = "PARLEY_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,
}

impl ServeConfig {
    pub fn seed_demo(&self) -> bool {
        self.demo && !self.no_demo
    }
}

impl AuthConfig {
    /// Checks what can be checked before touching the database, so a bad setting changes
    /// nothing. With SQLite a missing secret is generated later and kept in the database.
    pub fn validate(&self, database: &DatabaseConfig) -> anyhow::Result<()> {
        if self.jwt_secret.is_none() && self.jwt_public_key.is_none() && !database.is_sqlite() {
            anyhow::bail!("PARLEY_JWT_SECRET: required with PostgreSQL (or set PARLEY_JWT_PUBLIC_KEY)");
        }
        if self.jwt_public_key.is_some() {
            crate::auth::JwtAuth::new(self, None)?;
        }
        Ok(())
    }
}

/// Limits, each answered with a clear error and no side effect.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest message body, in characters after trimming.
    #[arg(long, env = "PARLEY_MAX_MESSAGE_CHARS", default_value_t = 10_000)]
    pub max_message_chars: usize,
    /// Largest number of attachments on one message.
    #[arg(long, env = "PARLEY_MAX_ATTACHMENTS", default_value_t = 10)]
    pub max_attachments: usize,
    /// How long an author may edit a message, in seconds.
    #[arg(long, env = "PARLEY_EDIT_WINDOW_SECS", default_value_t = 900)]
    pub edit_window_secs: u64,
    /// Sustained messages and edits per second per user (token bucket refill).
    #[arg(long, env = "PARLEY_SEND_RATE_PER_SEC", default_value_t = 10)]
    pub send_rate_per_sec: u32,
    /// Messages and edits a user may send in a burst.
    #[arg(long, env = "PARLEY_SEND_BURST", default_value_t = 30)]
    pub send_burst: u32,
    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "PARLEY_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest WebSocket frame, in bytes.
    #[arg(long, env = "PARLEY_MAX_WS_FRAME_BYTES", default_value_t = 256 << 10)]
    pub max_ws_frame_bytes: usize,
    /// Deepest query accepted.
    #[arg(long, env = "PARLEY_MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,
    /// Highest query complexity accepted: one per field, a page's fields once per item it
    /// may hold (`first`/`last`, 50 when not given).
    #[arg(long, env = "PARLEY_MAX_QUERY_COMPLEXITY", default_value_t = 50_000)]
    pub max_query_complexity: usize,
    /// Most fields one document selects once its fragments are spread, whatever its pages
    /// (async-graphql walks them all, in every operation, before it weighs any).
    #[arg(long, env = "PARLEY_MAX_QUERY_FIELDS", default_value_t = 5_000)]
    pub max_query_fields: usize,
    /// Longest document (query text) accepted, in bytes. Parsing holds ≈ 200 bytes per byte of
    /// a dense document (a list literal of small numbers) until it is done, so the body limit
    /// alone would let one request hold hundreds of MiB. Longer documents than the default are
    /// parsed anew each time they run (a subscription's, for every event).
    #[arg(long, env = "PARLEY_MAX_QUERY_BYTES", default_value_t = crate::graphql::documents::LARGEST_CACHED_DOCUMENT)]
    pub max_query_bytes: usize,
    /// Largest page a client may ask for (`first`/`last`).
    #[arg(long, env = "PARLEY_MAX_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_page_size: u64,
    /// Most aliases in one operation.
    #[arg(long, env = "PARLEY_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Time a WebSocket has to send `connection_init`, in milliseconds.
    #[arg(long, env = "PARLEY_WS_INIT_TIMEOUT_MS", default_value_t = 5_000)]
    pub ws_init_timeout_ms: u64,
    /// Server-side keepalive ping interval on WebSockets, in seconds; a client that sends
    /// nothing for three intervals is taken for dead and closed.
    #[arg(long, env = "PARLEY_WS_KEEPALIVE_SECS", default_value_t = 15)]
    pub ws_keepalive_secs: u64,
    /// Most active subscriptions on one WebSocket connection, each root field of a document
    /// counting one (`graphql::live::FeedBudget`).
    #[arg(long, env = "PARLEY_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub max_subscriptions: usize,
    /// Newest messages of an organisation that search ranks before the older ones (see
    /// `search::window`).
    #[arg(long, env = "PARLEY_SEARCH_WINDOW", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub search_window: u64,
    /// How often each instance renews its presence leases and sweeps those of dead
    /// instances, in milliseconds. A lease lasts three heartbeats: the users of a killed
    /// instance go offline within four.
    #[arg(long, env = "PARLEY_PRESENCE_HEARTBEAT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub presence_heartbeat_ms: u64,
    /// Most members (the author aside) that `@channel`, `@everyone` or `@here` may reach: in
    /// a larger channel they are refused, since each would read every member and write a
    /// mention and a notification for each inside the send (Mattermost's default is the same).
    #[arg(long, env = "PARLEY_MAX_ROOM_MENTION_MEMBERS", default_value_t = 1_000)]
    pub max_room_mention_members: usize,
    /// Most pending reminders one user may have.
    #[arg(long, env = "PARLEY_MAX_PENDING_REMINDERS", default_value_t = 1_000)]
    pub max_pending_reminders: u64,
    /// Attempts at one webhook delivery before it is marked failed.
    #[arg(long, env = "PARLEY_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub webhook_max_attempts: u32,
    /// The wait before a delivery's first retry, in milliseconds; it doubles with each
    /// attempt (capped at an hour), with ±50 % jitter.
    #[arg(long, env = "PARLEY_WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,
    /// How long one delivery attempt may take (connecting included), in milliseconds. A
    /// claimed delivery is its worker's for three times this, then another instance retries it.
    #[arg(long, env = "PARLEY_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub webhook_timeout_ms: u64,
    /// How long a delivery target (a webhook's or an inbox gateway's URL) is paused for an
    /// organisation after 5 failed attempts in a row, in milliseconds; its deliveries wait
    /// without spending attempts. Each failed probe after a pause doubles it, up to an hour.
    #[arg(long, env = "PARLEY_WEBHOOK_PAUSE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub webhook_pause_ms: u64,
    /// Allow webhook targets on loopback, private and link-local addresses (tests, trusted
    /// networks); refused by default so a webhook cannot reach inside the network.
    #[arg(long, env = "PARLEY_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// How long settled deliveries (delivered, failed, cancelled) stay listed in
    /// `notificationDeliveries` before they are deleted, in seconds (30 days by default).
    #[arg(long, env = "PARLEY_DELIVERY_RETENTION_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(1..=3_153_600_000))]
    pub delivery_retention_secs: u64,
}

impl Limits {
    pub fn edit_window(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.edit_window_secs).unwrap_or(i64::MAX))
    }
    pub fn ws_init_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_init_timeout_ms)
    }
    pub fn ws_keepalive(&self) -> Duration {
        Duration::from_secs(self.ws_keepalive_secs.max(1))
    }
    /// How long a peer may leave us unanswered before its connection is taken for dead:
    /// three keepalive periods without a frame from a WebSocket client, and as long for the
    /// acknowledgement of anything sent on any connection (`TCP_USER_TIMEOUT`, so a write to a
    /// phone that lost its network fails instead of waiting for TCP's 15 minutes).
    pub fn dead_peer_after(&self) -> Duration {
        self.ws_keepalive() * 3
    }
    pub fn presence_heartbeat(&self) -> Duration {
        Duration::from_millis(self.presence_heartbeat_ms)
    }
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms)
    }
    pub fn webhook_pause(&self) -> Duration {
        Duration::from_millis(self.webhook_pause_ms)
    }
    pub fn delivery_retention(&self) -> Duration {
        Duration::from_secs(self.delivery_retention_secs)
    }
}

/// Email and web push. The attempt limits and backoff are the webhooks' (`PARLEY_WEBHOOK_*`):
/// one outbox, one worker.
#[derive(Debug, Clone, Args)]
pub struct NotificationConfig {
    /// SMTP server for notification emails: `smtp://host:port` (plain), `smtp://…?tls=required`
    /// (STARTTLS), `smtps://…` (TLS); credentials as `smtp://user:password@host`. Unset: no
    /// emails (said at start-up).
    #[arg(long, env = "PARLEY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of notification emails.
    #[arg(long, env = "PARLEY_SMTP_FROM", default_value = "Parley <parley@localhost>")]
    pub smtp_from: String,
    /// How long an unread message waits before it is emailed; reading the room meanwhile
    /// cancels the email.
    #[arg(long, env = "PARLEY_EMAIL_DELAY_SECS", default_value_t = 600)]
    pub email_delay_secs: u64,
    /// Where users reach this server (links in emails and pushes); unset: `http://PARLEY_BIND`.
    #[arg(long, env = "PARLEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The VAPID private key (base64url of the 32-byte P-256 scalar). Unset: generated once
    /// and kept in the database.
    #[arg(long, env = "PARLEY_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,
    /// The contact push services see in the VAPID token (`mailto:` or `https:`); unset: the
    /// public URL.
    #[arg(long, env = "PARLEY_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The JSON body to post (`{"externalId", "source", "contact": {…}, "body"}`).
    #[arg(long)]
    pub body: String,
    /// The inbox; may be omitted when only one inbox exists (the demo's).
    #[arg(long)]
    pub inbox: Option<uuid::Uuid>,
    /// Where the server listens.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    /// The user's handle.
    #[arg(long)]
    pub user: String,
    /// The organisation's slug; omitted: `demo`, the demo's organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl: u64,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation; prints its id.
    Create {
        #[command(flatten)]
        database: DatabaseConfig,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints its id.
    Create {
        #[command(flatten)]
        database: DatabaseConfig,
        /// The organisation's slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        handle: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Where notification emails go.
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value = "member", value_parser = parse_role)]
        role: UserRole,
    },
}

/// A Redis namespace is written into Lua scripts' strings and key names: only characters
/// that need no quoting anywhere.
fn parse_namespace(value: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value.len() > 64 || !value.chars().all(allowed) {
        return Err("1 to 64 letters, digits, `.`, `_` or `-`".to_owned());
    }
    Ok(value.to_owned())
}

fn parse_role(value: &str) -> Result<UserRole, String> {
    match value {
        "owner" => Ok(UserRole::Owner),
        "admin" => Ok(UserRole::Admin),
        "agent" => Ok(UserRole::Agent),
        "member" => Ok(UserRole::Member),
        "integration" => Ok(UserRole::Integration),
        other => Err(format!("unknown role `{other}` (owner, admin, agent, member, integration)")),
    }
}
