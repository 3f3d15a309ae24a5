//! Webhook delivery throughput and latency, end to end through a real receiver on a
//! loopback port: signed deliveries per second draining a queue of 5,000, and the
//! median time from a change (a contact created) to its arrival at the receiver.
//! SQLite always; PostgreSQL too when `DIALTONE_BENCH_PG` names a server.
//!
//! `cargo bench -p dialtone-api --bench webhooks`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_api::{App, ServerConfig};
use dialtone_domain::contacts::ContactInput;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::webhooks::SecretBox;
use dialtone_store::{NewEndpoint, Store};
use secrecy::SecretString;

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

async fn run(label: &str, store: Store) -> (f64, f64) {
    let secret = SecretString::from("bench-server-secret-0123456789");
    let org = store.create_org("Bench").await.expect("org");
    let scope = Scope {
        org_id: org.id.clone(),
        workspace_id: org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let (arrivals, url) = receiver().await;
    let mut config = ServerConfig::new(secret.clone());
    config.webhook_allow_private = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::start(listener, store.clone(), config)
        .await
        .expect("app");
    let scoped = store.scoped(&scope);
    let sealed = SecretBox::new(&secret)
        .seal(&SecretString::from("whsec_YmVuY2gtc2VjcmV0LWJ5dGVz"))
        .expect("seal");
    let endpoint = scoped
        .create_endpoint(NewEndpoint {
            kind: "webhook",
            url: url.clone(),
            events: vec!["contact.created".into()],
            description: None,
            secret_sealed: sealed,
            active: false,
        })
        .await
        .expect("endpoint");

    // Throughput: queue 5,000 deliveries behind a disabled endpoint, then enable it.
    const N: usize = 5_000;
    for i in 0..N {
        let input = ContactInput {
            first_name: Some(format!("C{i}")),
            ..Default::default()
        };
        scoped.create_contact(input).await.expect("contact");
    }
    let started = Instant::now();
    scoped
        .update_endpoint(&endpoint.id, &url, &["contact.created".into()], None, true)
        .await
        .expect("enable");
    while arrivals.lock().unwrap_or_else(|e| e.into_inner()).len() < N {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{label}: deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let per_second = N as f64 / started.elapsed().as_secs_f64();

    // Latency: changes at a moderate pace, each timed to its arrival.
    let mut created = Vec::new();
    for i in 0..200 {
        let at = Instant::now();
        let c = scoped
            .create_contact(ContactInput {
                first_name: Some(format!("L{i}")),
                ..Default::default()
            })
            .await
            .expect("contact");
        created.push((c.id, at));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<f64> = created
        .iter()
        .filter_map(|(id, at)| {
            got.get(id)
                .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    app.shutdown().await;
    store.close().await;
    (per_second, median)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("| webhooks ({}) | deliveries/s (5,000 queued; target ≥ 2,000 on SQLite) | change → receiver, median |", chrono::Utc::now().format("%Y-%m-%d"));
        println!("|---|---|---|");
        let dir = std::env::temp_dir().join(dialtone_domain::id::new_id("bench"));
        let store = Store::open_sqlite(&dir).await.expect("sqlite");
        let (rate, median) = run("SQLite", store).await;
        println!("| SQLite | {rate:.0} | {median:.1} ms |");
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(url) = std::env::var("DIALTONE_BENCH_PG") {
            let store = Store::open_postgres(&url).await.expect("postgres");
            let (rate, median) = run("PostgreSQL", store).await;
            println!("| PostgreSQL | {rate:.0} | {median:.1} ms |");
        }
    });
}
