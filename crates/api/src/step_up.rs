//! Step-up for OAuth clients of `/mcp` (MCP authorization, "scope challenge handling").
//!
//! A `tools/call` made with an OAuth access token for a tool this server offers, whose
//! permission the grant lacks, is refused at the HTTP layer before the tool runs: 403
//! with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`
//! ([`crate::oauth::insufficient_scope`]), so the client asks the person for the
//! missing permission and retries. The decision is the domain's
//! ([`Principal::require`]) on the tool's permission from the catalog
//! ([`dialtone_mcp::catalog`]), as REST would decide it.
//!
//! API keys (pasted, nobody to ask) and stdio keep SPEC §6: the tool runs and answers a
//! tool error `{error: "INSUFFICIENT_PERMISSIONS", statusCode: 403}`. So does a write
//! tool the operator did not enable: stepping up could not make it work.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Error;
use dialtone_domain::auth::Principal;
use dialtone_mcp::catalog;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Lets `req` through (its body read and put back), or answers the step-up 403.
/// Call it only for a verified OAuth access token.
pub(crate) async fn check(
    state: &AppState,
    principal: &Principal,
    req: Request,
) -> Result<Request, Response> {
    if req.method() != Method::POST {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return Err(ApiError(Error::PayloadTooLarge).into_response());
    };
    for name in tools_called(&bytes) {
        let Some(tool) = catalog::find(&name) else {
            continue;
        };
        if tool.is_write() && !state.config.mcp_allow_writes {
            continue;
        }
        let Some(needed) = tool.permission else {
            continue;
        };
        if let Err(refused) = principal.require(needed) {
            return Err(crate::oauth::insufficient_scope(
                state,
                &parts.headers,
                principal.permissions,
                needed,
                tool.name,
                refused,
            ));
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The tool names of the `tools/call` requests in a JSON-RPC message (or batch).
/// Anything else (not JSON, another method) names none: rmcp answers it as usual.
fn tools_called(body: &Bytes) -> Vec<String> {
    let messages = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    messages
        .iter()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter_map(|m| m.pointer("/params/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tool_calls_name_tools() {
        let one = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_message"}}"#,
        );
        assert_eq!(tools_called(&one), ["send_message"]);
        let batch = Bytes::from_static(
            br#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"place_call"}}]"#,
        );
        assert_eq!(tools_called(&batch), ["place_call"]);
        for other in [
            &br#"{"method":"tools/list"}"#[..],
            b"not json",
            b"",
            br#"{"method":"tools/call","params":{"name":7}}"#,
        ] {
            assert!(tools_called(&Bytes::copy_from_slice(other)).is_empty());
        }
    }
}
