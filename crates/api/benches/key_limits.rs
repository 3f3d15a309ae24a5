//! What per-key limits add to placing a call: `POST /v1/calls` over HTTP from
//! concurrent clients with a key without limits and with a key holding every limit
//! (none reached: each call reads the key's limits, locks its row and counts its
//! running calls and today's minutes and messages in the call's transaction), in
//! alternating rounds of the same run. Test keys (the simulator, whose calls stay
//! queued for the run), so nothing but the limits differs.
//!
//! SQLite always; PostgreSQL too when `DIALTONE_BENCH_PG` names a database.
//!
//! `cargo bench -p dialtone-api --bench key_limits`

use std::time::{Duration, Instant};

use dialtone_api::keys::KeyIssuer;
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::id::new_id;
use dialtone_domain::keys::KeyDigester;
use dialtone_domain::limits::KeyLimits;
use dialtone_domain::tenancy::Mode;
use dialtone_store::Store;
use secrecy::{ExposeSecret, SecretString};

const CLIENTS: usize = 8;
/// Calls per round and key.
const PER_ROUND: usize = 400;
const ROUNDS: usize = 4;

async fn key(store: &Store, config: &ServerConfig, org: &str, limits: Option<KeyLimits>) -> String {
    let digester = KeyDigester::new(&config.server_secret);
    let created = KeyIssuer {
        store,
        digester: &digester,
        brand: &config.key_brand,
        cap: config.key_cap,
        ip: None,
    }
    .create(
        Actor::Operator,
        org,
        KeyRequest {
            name: "bench".into(),
            mode: Some(Mode::Test),
            limits,
            ..Default::default()
        },
    )
    .await
    .expect("key");
    created.secret.expose_secret().to_owned()
}

/// `PER_ROUND` calls from `CLIENTS` clients; the elapsed time.
async fn round(client: &reqwest::Client, url: &str, key: &str) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let url = url.to_owned();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (c..PER_ROUND).step_by(CLIENTS) {
                let to = format!("+1415555{:04}", i % 10_000);
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({ "to": to }))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(
                    resp.status(),
                    201,
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    started.elapsed()
}

/// Calls per second without limits, with limits.
async fn run(store: Store) -> (f64, f64) {
    let mut config = ServerConfig::new(SecretString::from("bench-server-secret-0123456789"));
    config.rate_limit_per_key = 1_000_000;
    config.key_cap = 1000;
    // Calls stay queued for the whole run: the running-call count grows as it would.
    config.simulator_step = Duration::from_secs(3600);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::start(listener, store.clone(), config.clone())
        .await
        .expect("start");
    let org = store.create_org("Bench").await.expect("org");
    let big = 1_000_000_000;
    let limits = KeyLimits {
        max_concurrent_calls: Some(big),
        max_call_minutes_per_day: Some(big),
        max_messages_per_day: Some(big),
        max_spend_cents_per_day: Some(big),
        allowed_destination_countries: Some(vec!["US".into(), "CA".into()]),
    };
    let off = key(&store, &config, &org.id, None).await;
    let on = key(&store, &config, &org.id, Some(limits)).await;
    let url = format!("http://{}/v1/calls", app.addr);
    let client = reqwest::Client::new();
    // Warm up both paths.
    round(&client, &url, &off).await;
    round(&client, &url, &on).await;
    let (mut t_off, mut t_on) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        t_off += round(&client, &url, &off).await;
        t_on += round(&client, &url, &on).await;
    }
    app.shutdown().await;
    store.close().await;
    let calls = (PER_ROUND * ROUNDS) as f64;
    (calls / t_off.as_secs_f64(), calls / t_on.as_secs_f64())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "| POST /v1/calls ({}, {CLIENTS} clients) | calls/s, no limits | calls/s, every limit set | cost of the limits (time per call, on ÷ off) |",
            chrono::Utc::now().format("%Y-%m-%d")
        );
        println!("|---|---|---|---|");
        let dir = std::env::temp_dir().join(new_id("bench"));
        let store = Store::open_sqlite(&dir).await.expect("sqlite");
        let (off, on) = run(store).await;
        println!("| SQLite | {off:.0} | {on:.0} | {:.2}× |", off / on);
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(url) = std::env::var("DIALTONE_BENCH_PG") {
            let store = Store::open_postgres(&url).await.expect("postgres");
            let (off, on) = run(store).await;
            println!("| PostgreSQL | {off:.0} | {on:.0} | {:.2}× |", off / on);
        }
    });
}
