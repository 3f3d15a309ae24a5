//! What MCP costs over REST for the same read: `tools/call list_contacts` at `/mcp`
//! against `GET /v1/contacts`, same key, same 50 contacts, same page size, one server
//! on SQLite. REST is the baseline, measured in the same run, interleaved. Rows:
//! - the current revision's stateless `tools/call` posted by the same HTTP client as
//!   REST (reqwest): the server's cost, compared with the 1.3× target;
//! - rmcp's own Rust client, current revision and a handshake session: what a Rust
//!   client sees, its own cost included;
//! - the size of `tools/list` for a full key with write tools enabled.
//!
//! `cargo bench -p dialtone-api --bench mcp`

use std::time::{Duration, Instant};

use dialtone_api::keys::KeyIssuer;
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::keys::KeyDigester;
use dialtone_domain::tenancy::Mode;
use dialtone_store::Store;
use rmcp::model::CallToolRequestParams;
use rmcp::model::ProtocolVersion;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceExt};
use secrecy::{ExposeSecret, SecretString};

const ROUNDS: usize = 400;
const WARM_UP: usize = 50;
/// What a tool call may cost over the REST request it makes (issue 16).
const TARGET_RATIO: f64 = 1.3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        dialtone_api::webhooks::install_tls_provider();
        let dir = std::env::temp_dir().join(format!("dialtone-bench-mcp-{}", std::process::id()));
        let store = Store::open_sqlite(&dir).await.expect("store");
        let secret = SecretString::from("bench-server-secret-0123456789");
        let mut config = ServerConfig::new(secret.clone());
        config.rate_limit_per_key = 1_000_000;
        config.mcp_allow_writes = true;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = App::start(listener, store.clone(), config).await.expect("start");
        let org = store.create_org("Bench").await.expect("org");
        let digester = KeyDigester::new(&secret);
        let issuer = KeyIssuer { store: &store, digester: &digester, brand: "dt", cap: 100, ip: None };
        let full = issuer
            .create(Actor::Operator, &org.id, KeyRequest { name: "full".into(), mode: Some(Mode::Test), ..Default::default() })
            .await
            .expect("key");
        let key = full.secret.expose_secret().to_owned();
        let http = reqwest::Client::new();
        let base = format!("http://{}", app.addr);
        for i in 0..50 {
            let r = http
                .post(format!("{base}/v1/contacts"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"first_name": format!("Contact {i}"), "phone_number": format!("+1415555{i:04}")}))
                .send()
                .await
                .expect("seed");
            assert_eq!(r.status(), 201);
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key.clone()),
        );
        let client = ().serve(transport).await.expect("mcp client");
        // The current revision: no session, every request stands alone.
        let current = ()
            .serve_with_lifecycle(
                StreamableHttpClientTransport::from_config(
                    StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key.clone()),
                ),
                ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
            )
            .await
            .expect("mcp client, current revision");
        let tools = client.list_all_tools().await.expect("tools/list");
        let tools_bytes = serde_json::to_string(&serde_json::json!({"tools": tools})).expect("json").len();
        let args = serde_json::json!({"limit": 10});
        let args = args.as_object().expect("object").clone();

        let mut rest = Vec::with_capacity(ROUNDS);
        let mut mcp = Vec::with_capacity(ROUNDS);
        let mut stateless = Vec::with_capacity(ROUNDS);
        let mut raw = Vec::with_capacity(ROUNDS);
        let raw_body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_contacts", "arguments": {"limit": 10}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string();
        // The current revision's stateless `tools/call`, posted as any HTTP client would.
        let raw_call = || {
            http.post(format!("{base}/mcp"))
                .bearer_auth(&key)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "list_contacts")
                .body(raw_body.clone())
        };
        // `DIALTONE_BENCH_ONLY=rest|mcp`: one kind of request in a long loop and its CPU
        // time per request, for a profiler (`perf record`) to compare the two paths.
        if let Ok(only) = std::env::var("DIALTONE_BENCH_ONLY") {
            let n = 5_000;
            let cpu = || {
                let (user, system) = cpu_seconds();
                user + system
            };
            let (t, c) = (Instant::now(), cpu());
            for _ in 0..n {
                let r = if only == "rest" {
                    http.get(format!("{base}/v1/contacts?limit=10")).bearer_auth(&key).send().await
                } else {
                    raw_call().send().await
                };
                r.expect("request").bytes().await.expect("body");
            }
            println!(
                "{only}: {:.1} µs wall, {:.1} µs CPU (client and server) per request",
                t.elapsed().as_secs_f64() * 1e6 / n as f64,
                (cpu() - c) * 1e6 / n as f64
            );
            let _ = client.cancel().await;
            let _ = current.cancel().await;
            app.shutdown().await;
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        // Interleaved, so both see the same machine; the first rounds only warm up.
        for round in 0..WARM_UP + ROUNDS {
            if round == WARM_UP {
                rest.clear();
                mcp.clear();
                stateless.clear();
                raw.clear();
            }
            let t = Instant::now();
            let r = http.get(format!("{base}/v1/contacts?limit=10")).bearer_auth(&key).send().await.expect("rest");
            assert_eq!(r.status(), 200);
            r.bytes().await.expect("body");
            rest.push(t.elapsed());
            let t = Instant::now();
            let r = client
                .call_tool(CallToolRequestParams::new("list_contacts").with_arguments(args.clone()))
                .await
                .expect("mcp");
            assert_eq!(r.is_error, Some(false));
            mcp.push(t.elapsed());
            let t = Instant::now();
            let r = current
                .call_tool(CallToolRequestParams::new("list_contacts").with_arguments(args.clone()))
                .await
                .expect("mcp");
            assert_eq!(r.is_error, Some(false));
            stateless.push(t.elapsed());
            let t = Instant::now();
            let r = raw_call()
                .send()
                .await
                .expect("raw");
            assert_eq!(r.status(), 200);
            r.bytes().await.expect("body");
            raw.push(t.elapsed());
        }
        let (rest, mcp, stateless) = (median(rest), median(mcp), median(stateless));
        let raw = median(raw);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let verdict = |r: f64| if r <= TARGET_RATIO { "" } else { ": MISSED" };
        let r0 = raw.as_secs_f64() / rest.as_secs_f64();
        println!("| list 10 contacts, current revision, one HTTP client for both (reqwest): REST / MCP tools/call ({ROUNDS} each, medians) | {:.2} ms / {:.2} ms ({r0:.2}×; target ≤ {TARGET_RATIO}×{}) |",
            ms(rest), ms(raw), verdict(r0));
        let r2 = stateless.as_secs_f64() / rest.as_secs_f64();
        println!("| the same with rmcp's Rust client, current revision (client cost included) | {:.2} ms ({r2:.2}×) |", ms(stateless));
        let ratio = mcp.as_secs_f64() / rest.as_secs_f64();
        println!("| the same with rmcp's Rust client in a handshake session (2025-11-25; client cost included) | {:.2} ms ({ratio:.2}×) |", ms(mcp));
        println!("| MCP tools/list, full key, write tools on ({} tools; budget 12 KB) | {:.1} KB |", tools.len(), tools_bytes as f64 / 1024.0);
        let _ = client.cancel().await;
        let _ = current.cancel().await;
        app.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// This process's (user, system) CPU seconds so far.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}
