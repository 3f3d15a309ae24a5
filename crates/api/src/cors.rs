//! CORS for what browser-based MCP clients (MCP Inspector, web assistants) call
//! cross-origin: the OAuth metadata, registration and token endpoints, and `/mcp`.
//!
//! Any origin, never credentials: these endpoints act on a bearer token or on nothing,
//! no cookie gives them authority, so a page on another origin can do no more than any
//! program could. The dashboard (cookies) and `/oauth/authorize` (a top-level
//! navigation, not a fetch) get no CORS headers. `/mcp` keeps its `Host` allow-list
//! (DNS rebinding) whatever the origin.

use std::time::Duration;

use axum::http::{HeaderName, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// The protected-resource and authorization-server metadata, `/oauth/register` and
/// `/oauth/token`.
pub(crate) fn oauth() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// `/mcp`: the bearer token, the MCP headers, and the answers' session id and
/// challenge readable by the page.
pub(crate) fn mcp() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("dialtone-workspace"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}
