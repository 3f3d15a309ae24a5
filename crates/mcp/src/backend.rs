//! How tools reach the REST API: every tool call is one or more ordinary `/v1`
//! requests made with the caller's own key, so the key checks, scopes, rate limits and
//! usage counting are exactly those of REST.
//!
//! [`HttpBackend`] is a real HTTP client (for `dialtone mcp` over stdio); the server
//! crate implements [`Backend`] in-process for `/mcp`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Who is calling: the bearer key and, over HTTP, where the MCP request came from.
#[derive(Clone)]
pub struct Caller {
    pub key: SecretString,
    /// The MCP client's address (recorded as the key's last IP).
    pub client_addr: Option<SocketAddr>,
    /// The `Host` the MCP client used (signed media links are built on it).
    pub host: Option<String>,
    /// For an organization key: the workspace to act in (`Dialtone-Workspace`).
    pub workspace: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("client_addr", &self.client_addr)
            .finish_non_exhaustive()
    }
}

/// One REST request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: http::Method,
    /// Path and query, e.g. `/v1/calls?status=completed&limit=10`.
    pub path: String,
    pub body: Option<Value>,
    pub idempotency_key: Option<String>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        ApiRequest {
            method: http::Method::GET,
            path: path.into(),
            body: None,
            idempotency_key: None,
        }
    }
}

/// Its answer: the status and the body's bytes (JSON, from the API) as they came, so
/// that a read whose answer fits is fenced without being parsed into a tree and
/// written again ([`crate::output::ApiJson`]).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub bytes: Vec<u8>,
    /// The answer is the replay of an earlier request with the same idempotency key.
    pub replayed: bool,
}

impl ApiResponse {
    /// An answer with `body` as its JSON (for API doubles in tests).
    pub fn json(status: u16, body: &Value) -> Self {
        ApiResponse {
            status,
            bytes: serde_json::to_vec(body).unwrap_or_default(),
            replayed: false,
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as a JSON tree (`null` if it is not JSON).
    pub fn body(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

/// The API could not be reached at all (not an HTTP error answer).
#[derive(Debug, Clone)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the dialtone API could not be reached: {}", self.0)
    }
}

pub trait Backend: Send + Sync + 'static {
    fn send(
        &self,
        caller: &Caller,
        request: ApiRequest,
    ) -> impl Future<Output = Result<ApiResponse, Unreachable>> + Send;
}

/// The REST API over the network (`DIALTONE_API_URL`).
#[derive(Debug, Clone)]
pub struct HttpBackend {
    base_url: String,
    client: reqwest::Client,
}

impl HttpBackend {
    pub fn new(base_url: &str) -> Result<Self, Unreachable> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("dialtone-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Unreachable(e.to_string()))?;
        Ok(HttpBackend {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

impl Backend for HttpBackend {
    async fn send(&self, caller: &Caller, request: ApiRequest) -> Result<ApiResponse, Unreachable> {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self
            .client
            .request(request.method, &url)
            .bearer_auth(caller.key.expose_secret());
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        if let Some(ws) = &caller.workspace {
            builder = builder.header("Dialtone-Workspace", ws);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        // The error names the URL only: never the key.
        let response = builder
            .send()
            .await
            .map_err(|e| Unreachable(format!("{url}: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Unreachable(e.without_url().to_string()))?;
        Ok(ApiResponse {
            status,
            bytes: bytes.into(),
            replayed,
        })
    }
}
