//! The dialtone MCP server: tools an AI assistant uses to read (and, when the operator
//! allows it, write) the call data, over stdio (`dialtone mcp`) and streamable HTTP
//! (`/mcp` on `dialtone serve`).
//!
//! Every tool call is made of ordinary REST requests with the caller's own key (see
//! [`backend`]), so REST and MCP cannot disagree on what a key may do. Map:
//! - [`catalog`]: the tools, their flat schemas and the permission each needs;
//! - [`server`]: the MCP handler (tool list per key, dispatch, instructions);
//! - [`known`]: what `GET /v1/me` said about a key lately (a read tool makes one REST
//!   request, not two; REST still decides on each);
//! - [`timeline`]: transcript paging and `get_contact_timeline`;
//! - [`writes`] and [`confirm`]: preview-then-confirm write tools;
//! - [`stateless`]: the current revision's plain `tools/call`, answered without
//!   rmcp's per-request service (everything else goes through rmcp);
//! - [`output`]: the size cap and the untrusted-data fence on every result (the one
//!   channel for record data: no `structuredContent` beside it).

pub mod backend;
pub mod catalog;
pub mod confirm;
pub mod known;
pub mod output;
pub mod server;
pub mod stateless;
pub mod timeline;
pub mod writes;

pub use backend::{ApiRequest, ApiResponse, Backend, Caller, HttpBackend, Unreachable};
pub use confirm::Confirmations;
pub use server::{ClientAddr, DialtoneMcp, Failure, KeySource, bearer_caller};
pub use stateless::PlainCall;

use rmcp::ServiceExt;
use secrecy::SecretString;
use serde_json::Value;

/// Why `dialtone mcp` could not start.
#[derive(Debug)]
pub enum StartError {
    /// The API answered, and refused the key.
    Rejected(String),
    Unreachable(String),
    Protocol(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Rejected(m) => write!(f, "the API key was rejected: {m}"),
            StartError::Unreachable(m) => write!(f, "{m}"),
            StartError::Protocol(m) => write!(f, "MCP session failed: {m}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Serves MCP on stdin/stdout until the client closes it. The key is checked first,
/// so a missing or wrong key is reported before any client waits on it.
pub async fn serve_stdio(
    api_url: &str,
    key: SecretString,
    workspace: Option<String>,
    allow_writes: bool,
) -> Result<(), StartError> {
    let backend = HttpBackend::new(api_url).map_err(|e| StartError::Unreachable(e.to_string()))?;
    let mcp = DialtoneMcp::new(
        backend,
        KeySource::Fixed(key.clone(), workspace.clone()),
        allow_writes,
        Confirmations::random(),
    );
    let caller = Caller {
        key,
        client_addr: None,
        host: None,
        workspace,
    };
    let me = mcp.whoami(&caller).await.map_err(|f| match f {
        Failure::Api(body) => StartError::Rejected(
            body.get("message")
                .and_then(Value::as_str)
                .unwrap_or("unauthorized")
                .to_owned(),
        ),
        Failure::Unreachable(m) => StartError::Unreachable(m),
    })?;
    tracing::info!(
        key_id = %me.key_id, mode = %me.mode, workspace = %me.workspace,
        read_only = !me.permissions.has_any_write(), writes = allow_writes,
        "MCP server ready on stdio"
    );
    let service = mcp
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StartError::Protocol(e.to_string()))?;
    service
        .waiting()
        .await
        .map_err(|e| StartError::Protocol(e.to_string()))?;
    Ok(())
}
