//! Twilio status callbacks, end to end over HTTP against a server configured for
//! Twilio (no Twilio needed: the calls are placed through the store, bound to the
//! carrier, and the callbacks are signed here as Twilio signs them).
//!
//! - accepted per second: `POST /carrier/twilio/status?call=…` from 32 concurrent
//!   clients, each a signature check, a state change and its event (with its delivery
//!   queued for a disabled webhook endpoint, so no sending competes for the CPU) in
//!   one transaction; two callbacks per call (ringing, answered);
//! - callback → customer webhook received: a real receiver on a loopback port, one
//!   callback every 10 ms, each timed from its request to the arrival of its
//!   `call.ringing` event; p50 and p99.
//!
//! SQLite always; PostgreSQL too when `DIALTONE_BENCH_PG` names a database.
//!
//! `cargo bench -p dialtone-api --bench carrier_callbacks`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_api::config::CarrierChoice;
use dialtone_api::{App, ServerConfig};
use dialtone_domain::calls::Direction;
use dialtone_domain::id::new_id;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::webhooks::SecretBox;
use dialtone_store::{NewCall, NewEndpoint, Store};
use dialtone_telephony::twilio::{TwilioConfig, signature};
use secrecy::SecretString;

const TOKEN: &str = "bench-twilio-auth-token-0123456789";
/// Calls in the throughput run (two callbacks each).
const CALLS: usize = 3_000;
const CLIENTS: usize = 32;
/// Callbacks timed to their webhook.
const SAMPLES: usize = 300;

/// When each `call.ringing` event arrived, by call id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver() -> (Arrivals, String) {
    let arrivals: Arrivals = Arc::default();
    let state = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                    && v["type"] == "call.ringing"
                    && let Some(id) = v["data"]["object"]["id"].as_str()
                {
                    state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(id.to_owned())
                        .or_insert(at);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (arrivals, url)
}

/// A live-mode workspace of its own, with a webhook endpoint for the calls' events.
async fn workspace(
    store: &Store,
    secret: &SecretString,
    url: &str,
    active: bool,
) -> (Scope, String) {
    let org = store.create_org("Bench").await.expect("org");
    let scope = Scope {
        org_id: org.id.clone(),
        workspace_id: org.default_workspace_id.clone(),
        mode: Mode::Live,
    };
    let sealed = SecretBox::new(secret)
        .seal(&SecretString::from("whsec_YmVuY2gtc2VjcmV0LWJ5dGVz"))
        .expect("seal");
    let endpoint = store
        .scoped(&scope)
        .create_endpoint(NewEndpoint {
            kind: "webhook",
            url: url.to_owned(),
            events: vec!["call.ringing".into(), "call.started".into()],
            description: None,
            secret_sealed: sealed,
            active,
        })
        .await
        .expect("endpoint");
    (scope, endpoint.id)
}

/// Places `n` outbound Twilio calls (queued, each bound to its Twilio sid).
async fn calls(store: &Store, scope: &Scope, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = new_id("call");
        let sid = format!("CA{:032x}", i as u128 + (rand_base() << 64));
        store
            .scoped(scope)
            .place_call(
                NewCall {
                    id: id.clone(),
                    direction: Direction::Outbound,
                    from: "+15005550006".into(),
                    to: format!("+1415555{:04}", i % 10_000),
                    phone_number_id: None,
                    agent_id: None,
                    campaign_id: None,
                    recipient_position: None,
                    metadata: serde_json::Map::new(),
                    carrier: "twilio",
                    outcome: None,
                    reserved_seconds: Some(600),
                    carrier_sid: Some(sid.clone()),
                    api_key_id: None,
                },
                chrono::TimeDelta::zero(),
                None,
            )
            .await
            .expect("call");
        out.push((id, sid));
    }
    out
}

fn rand_base() -> u128 {
    u128::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    )
}

/// Sends one signed status callback; its HTTP status.
async fn callback(
    client: &reqwest::Client,
    base: &str,
    call: &(String, String),
    status: &str,
) -> u16 {
    let path = format!("/carrier/twilio/status?call={}", call.0);
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACbench00000000000000000000000000"),
        ("CallSid", call.1.as_str()),
        ("CallStatus", status),
        ("Direction", "outbound-api"),
        ("From", "+15005550006"),
        ("To", "+14155550100"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signed = signature::sign(TOKEN.as_bytes(), &format!("{base}{path}"), &params);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    client
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signed)
        .body(body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn run(store: Store) -> (f64, f64, f64) {
    let secret = SecretString::from("bench-server-secret-0123456789");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = ServerConfig::new(secret.clone());
    config.webhook_allow_private = true;
    config.public_url = Some(base.clone());
    config.carrier = CarrierChoice::Twilio(TwilioConfig {
        account_sid: "ACbench00000000000000000000000000".into(),
        auth_token: SecretString::from(TOKEN),
        // Nothing listens there: the start-up check fails as unreachable (not as
        // refused credentials), and the server serves callbacks all the same.
        api_url: "http://127.0.0.1:9".into(),
        timeout: Duration::from_secs(1),
    });
    let app = App::start(listener, store.clone(), config)
        .await
        .expect("app");
    let (arrivals, url) = receiver().await;
    let client = reqwest::Client::new();

    // Throughput: the endpoint is disabled, so each callback queues its delivery (as
    // in production) but the senders do not compete with the callbacks for the CPU.
    let (quiet, quiet_endpoint) = workspace(&store, &secret, &url, false).await;
    let placed = Arc::new(calls(&store, &quiet, CALLS).await);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, base, placed, next) =
            (client.clone(), base.clone(), placed.clone(), next.clone());
        clients.spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(call) = placed.get(i) else {
                    return failed;
                };
                for status in ["ringing", "in-progress"] {
                    if callback(&client, &base, call, status).await != 204 {
                        failed += 1;
                    }
                }
            }
        });
    }
    let mut failed = 0;
    while let Some(f) = clients.join_next().await {
        failed += f.expect("client");
    }
    let per_second = (2 * CALLS) as f64 / started.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "callbacks were refused");

    // Latency: callback → the receiver, at a moderate pace. The disabled endpoint and
    // its backlog go first: every claim would scan it (the queue's index is by due time).
    store
        .scoped(&quiet)
        .delete_endpoint(&quiet_endpoint, "webhook")
        .await
        .expect("delete");
    let (timed, _) = workspace(&store, &secret, &url, true).await;
    let placed = calls(&store, &timed, SAMPLES).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sent = Vec::with_capacity(SAMPLES);
    for call in &placed {
        let at = Instant::now();
        assert_eq!(callback(&client, &base, call, "ringing").await, 204);
        sent.push((call.0.clone(), at));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = Instant::now();
    while arrivals.lock().unwrap_or_else(|e| e.into_inner()).len() < SAMPLES
        && waited.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(id, at)| {
            got.get(id)
                .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    app.shutdown().await;
    store.close().await;
    (per_second, p50, p99)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "| Twilio status callbacks ({}) | accepted/s ({CLIENTS} clients; target ≥ 3,000 on SQLite) | callback → webhook received, p50 (target ≤ 10 ms) | p99 |",
            chrono::Utc::now().format("%Y-%m-%d")
        );
        println!("|---|---|---|---|");
        let dir = std::env::temp_dir().join(new_id("bench"));
        let store = Store::open_sqlite(&dir).await.expect("sqlite");
        let (rate, p50, p99) = run(store).await;
        println!("| SQLite | {rate:.0} | {p50:.1} ms | {p99:.1} ms |");
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(url) = std::env::var("DIALTONE_BENCH_PG") {
            let store = Store::open_postgres(&url).await.expect("postgres");
            let (rate, p50, p99) = run(store).await;
            println!("| PostgreSQL | {rate:.0} | {p50:.1} ms | {p99:.1} ms |");
        }
    });
}
