//! One tenant's heavy reads against everyone else (issue 13): with CALLS demo calls
//! (default 1,000,000) and 4 clients looping `GET /v1/analytics/usage` (30 days by
//! day) and contact searches, how `/healthz` answers compared with the same server
//! idle, and how long each analytics request takes. SQLite always; PostgreSQL too
//! when `DIALTONE_BENCH_PG` names a database.
//!
//! `CALLS=1000000 cargo bench -p dialtone-api --bench heavy_reads`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dialtone_api::keys::KeyIssuer;
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::keys::KeyDigester;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_store::Store;
use secrecy::{ExposeSecret, SecretString};

/// Sequential `/healthz` requests per measurement.
const PROBES: usize = 2_000;
/// Clients looping heavy reads.
const LOADERS: usize = 4;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn probe(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let at = Instant::now();
        let r = http.get(url).send().await.expect("healthz");
        assert!(r.status().is_success());
        out.push(at.elapsed());
    }
    out.sort();
    out
}

async fn run(label: &str, store: Store, calls: usize) {
    let secret = SecretString::from("bench-server-secret-0123456789");
    let org = store.create_org("Bench").await.expect("org");
    let scope = Scope {
        org_id: org.id.clone(),
        workspace_id: org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let loaded = Instant::now();
    store
        .scoped(&scope)
        .demo(10_000, calls, |_, _| {})
        .await
        .expect("demo");
    let load_time = loaded.elapsed();
    let mut config = ServerConfig::new(secret.clone());
    config.rate_limit_per_key = 100_000_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::start(listener, store.clone(), config)
        .await
        .expect("start");
    let digester = KeyDigester::new(&secret);
    let issuer = KeyIssuer {
        store: &store,
        digester: &digester,
        brand: "dt",
        cap: 100,
        ip: None,
    };
    let key = issuer
        .create(
            Actor::Operator,
            &org.id,
            KeyRequest {
                name: "bench".into(),
                mode: Some(Mode::Test),
                ..Default::default()
            },
        )
        .await
        .expect("key")
        .secret
        .expose_secret()
        .to_owned();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let healthz = format!("{base}/healthz");
    // Warm up, then the baseline: the same server with nothing else to do.
    probe(&http, &healthz).await;
    let idle = probe(&http, &healthz).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for i in 0..LOADERS {
        let (http, key, stop) = (http.clone(), key.clone(), stop.clone());
        // Three analytics loops and one search loop.
        let url = if i < 3 {
            format!("{base}/v1/analytics/usage?granularity=day")
        } else {
            format!("{base}/v1/contacts?search=nobody-by-this-name&limit=100")
        };
        loaders.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let r = http
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("heavy");
                assert!(r.status().is_success(), "{url}: {}", r.status());
                let _ = r.bytes().await;
                took.push(at.elapsed());
            }
            (i < 3, took)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_probe = probe(&http, &healthz).await;
    stop.store(true, Ordering::Relaxed);
    let (mut analytics, mut search) = (Vec::new(), Vec::new());
    for l in loaders {
        let (is_analytics, took) = l.await.expect("loader");
        if is_analytics {
            analytics.extend(took);
        } else {
            search.extend(took);
        }
    }
    analytics.sort();
    search.sort();
    let (p50, p99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (l50, l99) = (
        percentile(&loaded_probe, 0.5),
        percentile(&loaded_probe, 0.99),
    );
    println!(
        "| {label}: {calls} demo calls loaded in | {:.1} s |",
        load_time.as_secs_f64()
    );
    println!(
        "| {label}: /healthz p50 / p99, idle (baseline) | {} / {} |",
        ms(p50),
        ms(p99)
    );
    println!(
        "| {label}: /healthz p50 / p99 under {LOADERS} heavy-read loops (target p99 ≤ 10 ms) | {} / {} ({:.1}× / {:.1}× idle) |",
        ms(l50),
        ms(l99),
        l50.as_secs_f64() / p50.as_secs_f64(),
        l99.as_secs_f64() / p99.as_secs_f64()
    );
    println!(
        "| {label}: GET /v1/analytics/usage (30 days by day) p50 / p99, {} requests (target ≤ 50 ms) | {} / {} |",
        analytics.len(),
        ms(percentile(&analytics, 0.5)),
        ms(percentile(&analytics, 0.99))
    );
    println!(
        "| {label}: contact search over 10,000 contacts p50 / p99, {} requests | {} / {} |",
        search.len(),
        ms(percentile(&search, 0.5)),
        ms(percentile(&search, 0.99))
    );
    app.shutdown().await;
    store.close().await;
}

fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        dialtone_api::webhooks::install_tls_provider();
        println!(
            "| heavy reads ({}, {} cores) | value |",
            chrono::Utc::now().format("%Y-%m-%d"),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("|---|---|");
        let dir = std::env::temp_dir().join(dialtone_domain::id::new_id("bench"));
        let store = Store::open_sqlite(&dir).await.expect("sqlite");
        run("SQLite", store, calls).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(url) = std::env::var("DIALTONE_BENCH_PG") {
            let store = Store::open_postgres(&url).await.expect("postgres");
            run("PostgreSQL", store, calls).await;
        }
    });
}
