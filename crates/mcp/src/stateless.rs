//! The current revision's plain `tools/call`, answered in the request's own task.
//!
//! In MCP 2026-07-28 every request stands alone: it names its protocol version and
//! the client's capabilities in `_meta`, and the answer is one JSON message. rmcp
//! serves such a request by starting a service for it (two spawned tasks, channels,
//! a wake-up of another worker thread), which costs as much CPU as the REST request
//! the tool makes. [`PlainCall`] recognises the one request that is worth sparing
//! that — a well-formed `tools/call` of a tool this server has, with nothing a plain
//! answer could get wrong — and [`DialtoneMcp::answer`] runs the same tool code
//! ([`DialtoneMcp::call_tool`]'s) and writes the same JSON-RPC answer with rmcp's
//! own types.
//!
//! Anything else is left to rmcp, which then answers (or refuses) it as before:
//! sessions, other methods, other revisions, a `Mcp-Param-*` header, an `Origin`, a
//! progress token, a task request, a parameter this parser does not know, an
//! `Accept` or `Content-Type` with parameters, a `Host` outside the allow-list. So
//! this path only ever answers requests rmcp would have answered with a tool result,
//! and `tests/api/mcp_stateless.rs` checks that both answer them alike.

use http::HeaderMap;
use rmcp::model::{CallToolResponse, NumberOrString, ServerJsonRpcMessage, ServerResult};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::backend::{Backend, Caller};
use crate::catalog::{self, ToolSpec};
use crate::server::{DialtoneMcp, Failure};

/// The revision whose requests stand alone.
const REVISION: &str = "2026-07-28";

/// A `tools/call` this module answers itself.
#[derive(Debug)]
pub struct PlainCall {
    id: NumberOrString,
    spec: &'static ToolSpec,
    arguments: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    jsonrpc: String,
    id: WireId,
    method: String,
    params: Params,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireId {
    Number(i64),
    String(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta")]
    meta: Meta,
}

/// The request metadata of the revision, and nothing else. A progress token (rmcp's
/// client sends one with every call) asks for progress notifications, which no tool
/// here sends, through rmcp or not.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: String,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    client_capabilities: Map<String, Value>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    _client_info: Option<Map<String, Value>>,
    /// Which log notifications the client wants: this server sends none.
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    _log_level: Option<String>,
    #[serde(rename = "progressToken")]
    _progress_token: Option<WireId>,
}

impl PlainCall {
    /// The call, if `headers` and `body` make exactly a plain current-revision
    /// `tools/call` of a known tool, sent to one of `allowed_hosts` (rmcp's list;
    /// empty: any). `None`: leave the request to rmcp.
    pub fn recognise(headers: &HeaderMap, body: &[u8], allowed_hosts: &[String]) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if headers.contains_key("mcp-session-id")
            || headers.contains_key(http::header::ORIGIN)
            || headers.keys().any(|k| k.as_str().starts_with("mcp-param-"))
            || header("mcp-protocol-version") != Some(REVISION)
            || header("mcp-method") != Some("tools/call")
            || !header(http::header::CONTENT_TYPE.as_str())
                .is_some_and(|v| v.eq_ignore_ascii_case("application/json"))
            || !accepts_json_and_events(header(http::header::ACCEPT.as_str())?)
            || !host_allowed(header(http::header::HOST.as_str())?, allowed_hosts)
        {
            return None;
        }
        let wire: Wire = serde_json::from_slice(body).ok()?;
        if wire.jsonrpc != "2.0"
            || wire.method != "tools/call"
            || wire.params.meta.protocol_version != REVISION
            // Tasks change what a call answers.
            || wire.params.meta.client_capabilities.contains_key("extensions")
            || header("mcp-name") != Some(wire.params.name.as_str())
        {
            return None;
        }
        Some(PlainCall {
            id: match wire.id {
                WireId::Number(n) => NumberOrString::Number(n),
                WireId::String(s) => NumberOrString::String(s.into()),
            },
            spec: catalog::find(&wire.params.name)?,
            arguments: wire.params.arguments.unwrap_or_default(),
        })
    }
}

/// `Accept` names both types, each bare (no parameters, so no `q=0`).
fn accepts_json_and_events(accept: &str) -> bool {
    let types: Vec<&str> = accept.split(',').map(str::trim).collect();
    let has = |t: &str| types.iter().any(|x| x.eq_ignore_ascii_case(t));
    has("application/json") && has("text/event-stream")
}

/// rmcp's DNS-rebinding rule, read the same way: the `Host` authority's host (and
/// port, when the allowed entry names one).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host) else {
        return false;
    };
    let name = |h: &str| h.trim_matches('[').trim_matches(']').to_ascii_lowercase();
    allowed.is_empty()
        || allowed.iter().any(|entry| {
            http::uri::Authority::try_from(entry.trim()).is_ok_and(|a| {
                name(a.host()) == name(host.host())
                    && a.port_u16().is_none_or(|p| host.port_u16() == Some(p))
            })
        })
}

impl<B: Backend> DialtoneMcp<B> {
    /// Runs `call` as `caller` and writes the JSON-RPC answer rmcp would write.
    pub async fn answer(&self, call: PlainCall, caller: Result<Caller, Failure>) -> Vec<u8> {
        let result = match caller {
            Ok(caller) => self.run_tool(call.spec, &call.arguments, &caller).await,
            Err(e) => e.into_result(),
        };
        let message = ServerJsonRpcMessage::response(
            ServerResult::from(CallToolResponse::from(result)),
            call.id,
        );
        serde_json::to_vec(&message).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:8080"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", REVISION),
            ("mcp-method", "tools/call"),
            ("mcp-name", "list_contacts"),
        ] {
            h.insert(k, HeaderValue::from_str(v).expect("value"));
        }
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn body(params: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}))
            .expect("json")
    }

    fn plain() -> Value {
        serde_json::json!({"name": "list_contacts", "arguments": {"limit": 3},
            "_meta": {"io.modelcontextprotocol/protocolVersion": REVISION,
                      "io.modelcontextprotocol/clientCapabilities": {}}})
    }

    const HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

    fn hosts() -> Vec<String> {
        HOSTS.iter().map(|h| (*h).to_owned()).collect()
    }

    #[test]
    fn a_plain_current_call_of_a_known_tool_is_answered_here() {
        let call = PlainCall::recognise(&headers(&[]), &body(plain()), &hosts()).expect("plain");
        assert_eq!(call.spec.name, "list_contacts");
        assert_eq!(call.arguments["limit"], 3);
        assert_eq!(call.id, NumberOrString::Number(7));
    }

    #[test]
    fn anything_unusual_is_left_to_rmcp() {
        let h = hosts();
        let with = |extra: &[(&'static str, &str)]| {
            PlainCall::recognise(&headers(extra), &body(plain()), &h).is_some()
        };
        assert!(!with(&[("mcp-session-id", "abc")]));
        assert!(!with(&[("origin", "https://app.example")]));
        assert!(!with(&[("mcp-param-limit", "3")]));
        assert!(!with(&[("mcp-protocol-version", "2025-11-25")]));
        assert!(!with(&[("mcp-method", "tools/list")]));
        assert!(!with(&[("mcp-name", "list_calls")]));
        assert!(!with(&[(
            "content-type",
            "application/json; charset=utf-8"
        )]));
        assert!(!with(&[("accept", "application/json")]));
        assert!(!with(&[(
            "accept",
            "application/json;q=0, text/event-stream"
        )]));
        assert!(!with(&[("host", "evil.example")]));
        assert!(!with(&[("host", "127.0.0.1:80:80")]));
        let mut no_host = headers(&[]);
        no_host.remove("host");
        assert!(PlainCall::recognise(&no_host, &body(plain()), &h).is_none());
        // The allow-list's own rules: a port, when named, must match; empty allows all.
        let ported = vec!["127.0.0.1:9".to_owned()];
        assert!(PlainCall::recognise(&headers(&[]), &body(plain()), &ported).is_none());
        assert!(PlainCall::recognise(&headers(&[]), &body(plain()), &[]).is_some());
        let upper = headers(&[("host", "LOCALHOST")]);
        assert!(PlainCall::recognise(&upper, &body(plain()), &h).is_some());

        let body_with = |f: &dyn Fn(&mut Value)| {
            let mut p = plain();
            f(&mut p);
            PlainCall::recognise(&headers(&[]), &body(p), &h).is_some()
        };
        assert!(body_with(&|p| p["_meta"]["progressToken"] = 1.into()));
        assert!(!body_with(
            &|p| p["_meta"]["io.modelcontextprotocol/subscriptionId"] = "s".into()
        ));
        assert!(!body_with(&|p| p["_meta"]["other"] = 1.into()));
        assert!(!body_with(&|p| p["task"] = serde_json::json!({"ttl": 1})));
        assert!(!body_with(
            &|p| p["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25".into()
        ));
        assert!(!body_with(&|p| {
            p["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
                serde_json::json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
        }));
        assert!(!body_with(&|p| p["_meta"]
            .as_object_mut()
            .map(|m| m.remove("io.modelcontextprotocol/clientCapabilities"))
            .map(drop)
            .unwrap_or_default()));
        assert!(!body_with(&|p| p["name"] = "no_such_tool".into()));
        assert!(!body_with(&|p| p["arguments"] = serde_json::json!([1])));
        // A well-formed envelope around something else.
        let other = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": plain()});
        let other = serde_json::to_vec(&other).expect("json");
        assert!(PlainCall::recognise(&headers(&[]), &other, &h).is_none());
        assert!(PlainCall::recognise(&headers(&[]), b"{not json", &h).is_none());
        assert!(PlainCall::recognise(&headers(&[]), b"[]", &h).is_none());
    }
}
