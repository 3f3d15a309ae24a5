//! The current revision's plain `tools/call` is answered by `/mcp` itself, not by
//! rmcp's per-request service (`dialtone_mcp::stateless`): the two must answer alike,
//! and everything unusual must still reach rmcp.
//!
//! The same server answers both ways: a `Content-Type` with a charset parameter is one
//! rmcp accepts and the plain path leaves to it, so each request is sent twice, and
//! the `dialtone_mcp_plain_tool_calls` counter says which path answered.

use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::mcp::{key, read_steps, seed};

const REVISION: &str = "2026-07-28";

/// What `/metrics` says of plain calls so far.
async fn plain_calls(t: &TestApp) -> u64 {
    let text = t
        .client
        .get(format!("{}/metrics", t.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    text.lines()
        .find_map(|l| l.strip_prefix("dialtone_mcp_plain_tool_calls_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn call_body(id: Value, tool: &str, args: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": REVISION,
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "by-hand", "version": "1"}}}})
}

/// Posts a current-revision `tools/call`; `content_type` picks the path.
async fn post(
    t: &TestApp,
    key: &str,
    body: &Value,
    content_type: &str,
    extra: &[(&str, &str)],
) -> (u16, String, Value) {
    let tool = body["params"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut req = t
        .client
        .post(format!("{}/mcp", t.url))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", content_type)
        .header("mcp-protocol-version", REVISION)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("post /mcp");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, json)
}

/// The answer with what differs between two answers by design blanked: each
/// result's fence nonce (fresh per result) and a signed media link's expiry (counted
/// from the moment of the request).
fn without_nonces(v: &Value) -> Value {
    let text = blank_after(&v.to_string(), "expires=", |c| c.is_ascii_digit());
    let text = blank_after(&text, "signature=", |c| c.is_ascii_hexdigit());
    let text = blank_after(&text, "media_url_expires_at\\\":\\\"", |c| c != '\\');
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("untrusted-data-") {
        let (head, tail) = rest.split_at(at + "untrusted-data-".len());
        out.push_str(head);
        let hex = tail.chars().take_while(char::is_ascii_hexdigit).count();
        out.push_str(if hex == 16 { "NONCE" } else { "" });
        rest = &tail[if hex == 16 { 16 } else { 0 }..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).expect("json")
}

/// `text` with the run of characters matching `keep` after each `marker` removed.
fn blank_after(text: &str, marker: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let len: usize = tail
            .chars()
            .take_while(|c| keep(*c))
            .map(char::len_utf8)
            .sum();
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn plain_calls_are_answered_exactly_as_rmcp_answers_them() {
    let t = TestApp::spawn_with(|c| c.mcp_allow_writes = true).await;
    let full = key(&t, false).await;
    let ro = key(&t, true).await;
    let s = seed(&t, &full).await;
    // The usage report's default range ends at the moment of the request (and so
    // does every total in it): a fixed range instead.
    let fixed = json!({"from": "2026-01-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"});
    let mut cases: Vec<(String, &'static str, Value)> = read_steps(&s)
        .into_iter()
        .map(|(tool, args)| match tool {
            "get_usage_analytics" => (ro.clone(), tool, fixed.clone()),
            _ => (ro.clone(), tool, args),
        })
        .collect();
    cases.extend([
        // Tool errors: REST's 404, a bad argument, an unknown argument, a permission
        // the key lacks (a read-only key and a write tool), an answer cut to fit.
        (
            ro.clone(),
            "get_contact",
            json!({"contact_id": "ct_doesnotexist"}),
        ),
        (ro.clone(), "list_contacts", json!({"limit": 99})),
        (ro.clone(), "list_contacts", json!({"colour": "blue"})),
        (ro.clone(), "get_contact", json!({})),
        (
            ro.clone(),
            "create_contact_note",
            json!({"contact_id": s.contact_id, "content": "x"}),
        ),
        (
            full.clone(),
            "list_contacts",
            json!({"limit": 1, "cursor": "garbage"}),
        ),
    ]);
    let mut plain = 0;
    for (i, (key, tool, args)) in cases.iter().enumerate() {
        for id in [json!(i), json!(format!("req-{i}"))] {
            let body = call_body(id, tool, args);
            let before = plain_calls(&t).await;
            let fast = post(&t, key, &body, "application/json", &[]).await;
            assert_eq!(
                plain_calls(&t).await,
                before + 1,
                "{tool}: not answered plainly"
            );
            let slow = post(&t, key, &body, "application/json; charset=utf-8", &[]).await;
            assert_eq!(
                plain_calls(&t).await,
                before + 1,
                "{tool}: rmcp's path was not taken"
            );
            assert_eq!(fast.0, slow.0, "{tool}: status");
            assert_eq!(fast.1, slow.1, "{tool}: content type");
            assert_eq!(
                without_nonces(&fast.2),
                without_nonces(&slow.2),
                "{tool}: the plain answer differs from rmcp's"
            );
            assert_eq!(
                fast.2["result"]["resultType"], "complete",
                "{tool}: {}",
                fast.2
            );
            plain += 1;
        }
    }
    assert!(plain > 40);
    t.finish().await;
}

#[tokio::test]
async fn unusual_requests_still_get_rmcps_answers_and_revocation_holds() {
    let t = TestApp::spawn().await;
    let ro = key(&t, true).await;
    let args = json!({"limit": 2});
    let body = call_body(json!(1), "list_contacts", &args);
    let before = plain_calls(&t).await;

    // A Mcp-Name that contradicts the body: rmcp's 400 header mismatch.
    let resp = t
        .client
        .post(format!("{}/mcp", t.url))
        .bearer_auth(&ro)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", REVISION)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_calls")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    // An unknown tool: rmcp's JSON-RPC error, not a tool result.
    let (status, _, unknown) = post(
        &t,
        &ro,
        &call_body(json!(2), "no_such_tool", &json!({})),
        "application/json",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        unknown["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown tool")),
        "{unknown}"
    );
    // A Host outside the allow-list: rmcp's 403.
    let (status, _, _) = post(
        &t,
        &ro,
        &body,
        "application/json",
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    // A session id with a current-revision request: rmcp's (it ignores the id).
    let (status, _, _) = post(
        &t,
        &ro,
        &body,
        "application/json",
        &[("mcp-session-id", "nope")],
    )
    .await;
    assert_eq!(status, 200);
    // A body past the plain path's bound: rmcp reads it.
    let big = call_body(
        json!(3),
        "list_contacts",
        &json!({"search": "a".repeat(70_000)}),
    );
    let (status, _, answer) = post(&t, &ro, &big, "application/json", &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        plain_calls(&t).await,
        before,
        "none of these was answered plainly"
    );

    // A revoked key's very next plain call is refused.
    let (status, _, _) = post(&t, &ro, &body, "application/json", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(plain_calls(&t).await, before + 1);
    let admin = t.admin_key().await;
    let id = t.get("/v1/api-keys?limit=100", &admin).await.1["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "assistant")
        .and_then(|k| k["id"].as_str())
        .expect("the assistant key")
        .to_owned();
    let (s, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (status, _, _) = post(&t, &ro, &body, "application/json", &[]).await;
    assert_eq!(status, 401);
    t.finish().await;
}

#[tokio::test]
async fn a_half_sent_plain_call_times_out_with_408_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t =
        TestApp::spawn_with(|c| c.body_read_timeout = std::time::Duration::from_millis(500)).await;
    let ro = key(&t, true).await;
    let body = call_body(json!(1), "list_contacts", &json!({"limit": 2})).to_string();
    let mut s = tokio::net::TcpStream::connect(t.app().addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ro}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         Mcp-Protocol-Version: {REVISION}\r\nMcp-Method: tools/call\r\nMcp-Name: list_contacts\r\n\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..20]
    );
    s.write_all(head.as_bytes()).await.expect("write");
    // Meanwhile a whole call is answered.
    let (status, _, answer) = post(
        &t,
        &ro,
        &call_body(json!(2), "list_contacts", &json!({})),
        "application/json",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let mut got = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("the stalled connection was never closed")
        .expect("read");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408") && text.contains("REQUEST_TIMEOUT"),
        "{text}"
    );
    t.finish().await;
}

#[tokio::test]
async fn rmcps_own_client_of_the_current_revision_takes_the_plain_path() {
    let t = TestApp::spawn().await;
    let ro = key(&t, true).await;
    let client = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", t.url))
                    .auth_header(ro.clone()),
            ),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("rmcp client, current revision");
    let before = plain_calls(&t).await;
    let args = json!({"limit": 5});
    let r = client
        .call_tool(
            CallToolRequestParams::new("list_contacts")
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .expect("tools/call");
    assert_eq!(r.is_error, Some(false));
    assert_eq!(plain_calls(&t).await, before + 1);
    let _ = client.cancel().await;
    t.finish().await;
}
