//! Settings of a running server (the binary fills them from flags and `DIALTONE_…`).

use std::time::Duration;

use secrecy::SecretString;

/// The carrier of live mode (test mode always uses the simulator).
#[derive(Debug, Clone, Default)]
pub enum CarrierChoice {
    /// Live calls and messages answer 503 `CARRIER_UNAVAILABLE`.
    #[default]
    None,
    /// The built-in simulator, charged as real traffic (demos).
    Simulator,
    /// Twilio, with the account's credentials.
    Twilio(dialtone_telephony::twilio::TwilioConfig),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// First part of every token: `dt` gives `dt_live_…`.
    pub key_brand: String,
    /// Active keys allowed per organization.
    pub key_cap: usize,
    /// Requests per second per key; bursts of twice this are allowed.
    pub rate_limit_per_key: u32,
    /// Secret under which token digests are computed. Must be the same on every node.
    pub server_secret: SecretString,
    /// How often batched usage counters are written.
    pub usage_flush_interval: Duration,
    /// How often other nodes' (and operator commands') key changes are picked up.
    pub key_poll_interval: Duration,
    /// Share per-key rate limits between nodes through this Redis.
    pub redis_url: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// A request's headers must arrive within this (counted from its first byte, or
    /// from the connection's opening for its first request).
    pub header_read_timeout: Duration,
    /// A request body must keep making progress: at most this between two reads.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted (keep it below the
    /// process's open-file limit).
    pub max_connections: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// Wall time between two steps of a simulated call (queued → ringing → …).
    pub simulator_step: Duration,
    /// The carrier live calls, messages and numbers go through.
    pub carrier: CarrierChoice,
    /// The server's public base URL: signed media links, and where carriers call back
    /// (required with a real carrier); default for links: from `Host`.
    pub public_url: Option<String>,
    /// How often live calls and messages whose carrier reports stopped coming are
    /// looked up at the carrier (a lost callback must not leave a call open forever).
    pub carrier_reconcile_interval: Duration,
    /// How long a live call or message may go without a report before it is looked up.
    pub carrier_quiet_after: Duration,
    /// Allow webhook URLs on loopback, private and other reserved addresses.
    pub webhook_allow_private: bool,
    /// The seed-001 signature header (`X-Dialtone-Signature`, or e.g. `X-DialNexa-Signature`).
    pub webhook_signature_header: String,
    /// Waits before each attempt: about 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    pub webhook_retry_schedule: Vec<Duration>,
    /// How long a receiver may take to answer.
    pub webhook_timeout: Duration,
    /// An endpoint that has only failed for this long is disabled (5 days).
    pub webhook_disable_after: Duration,
    /// Largest event body sent; a bigger one fails without being sent.
    pub webhook_max_payload: usize,
    /// How often the delivery worker looks at the queue without being woken (the
    /// safety net: queued work wakes it at once, in-process or by `LISTEN`).
    pub webhook_poll_interval: Duration,
    /// Serve MCP over streamable HTTP at `/mcp`.
    pub mcp_enabled: bool,
    /// Offer MCP write tools (still confirmation-gated, still per key permissions).
    pub mcp_allow_writes: bool,
    /// `Host` values `/mcp` accepts (DNS-rebinding protection); empty: loopback only.
    pub mcp_allowed_hosts: Vec<String>,
    /// OAuth Dynamic Client Registrations one client address may make per hour (a
    /// burst of this many, then one every `3600 / n` seconds); shared through Redis
    /// like the per-key limits.
    pub oauth_registrations_per_hour: u32,
    /// Registered OAuth clients nobody has authorized yet that may exist at once;
    /// past it `/oauth/register` answers 429. Such clients are deleted a day after
    /// registration.
    pub oauth_max_unused_clients: u64,
    /// The public keys that sign secret scanning reports (`POST
    /// /v1/secret-scanning/report`); `None`: the route answers 404.
    pub secret_scanning_keys: Option<std::sync::Arc<crate::secret_scanning::ReporterKeys>>,
    /// What a report of a live, active key does: revoke it (the default) or only flag it.
    pub secret_scanning_action: crate::secret_scanning::LeakAction,
    /// Test-only: accept an OAuth Client ID Metadata Document at `http://127.0.0.1:…`
    /// or `http://localhost:…` (the spec requires https). No command-line flag or
    /// environment variable sets it; only code building a `ServerConfig` can.
    #[doc(hidden)]
    pub oauth_metadata_allow_http_loopback: bool,
    /// Test-only: a root certificate (PEM) trusted for fetching an OAuth Client ID
    /// Metadata Document at `https://127.0.0.1:…` or `https://localhost:…`, so a test
    /// can serve one with a self-signed certificate. Such a fetch trusts this root
    /// alone and may reach loopback; every other fetch (other metadata documents,
    /// webhooks) keeps the public roots and the SSRF guard. No command-line flag or
    /// environment variable sets it; only code building a `ServerConfig` can.
    #[doc(hidden)]
    pub oauth_metadata_test_root: Option<String>,
    /// Whether the current revision's plain `tools/call`s at `/mcp` are answered
    /// without rmcp's per-request service (`dialtone_mcp::stateless`). Always on;
    /// tests turn it off to compare the two answers.
    #[doc(hidden)]
    pub mcp_plain_calls: bool,
}

impl ServerConfig {
    pub fn new(server_secret: SecretString) -> Self {
        ServerConfig {
            key_brand: "dt".to_owned(),
            key_cap: 25,
            rate_limit_per_key: 100,
            server_secret,
            usage_flush_interval: Duration::from_secs(10),
            key_poll_interval: Duration::from_millis(250),
            max_body_bytes: 256 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
            redis_url: None,
            trust_proxy: false,
            simulator_step: Duration::from_millis(500),
            carrier: CarrierChoice::None,
            public_url: None,
            carrier_reconcile_interval: Duration::from_secs(60),
            carrier_quiet_after: Duration::from_secs(300),
            webhook_allow_private: false,
            webhook_signature_header: "X-Dialtone-Signature".to_owned(),
            webhook_retry_schedule: [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            webhook_timeout: Duration::from_secs(15),
            webhook_max_payload: 256 * 1024,
            webhook_poll_interval: Duration::from_millis(500),
            webhook_disable_after: Duration::from_secs(5 * 24 * 3600),
            mcp_enabled: true,
            mcp_allow_writes: false,
            mcp_allowed_hosts: Vec::new(),
            oauth_registrations_per_hour: 20,
            oauth_max_unused_clients: 10_000,
            secret_scanning_keys: None,
            secret_scanning_action: crate::secret_scanning::LeakAction::Revoke,
            oauth_metadata_allow_http_loopback: false,
            mcp_plain_calls: true,
            oauth_metadata_test_root: None,
        }
    }
}
