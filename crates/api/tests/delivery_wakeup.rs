//! The delivery worker wakes when work is queued, not at its next poll: each server
//! here polls once a minute, so a delivery that arrives within a couple of seconds
//! was woken for — in-process (SQLite), through `LISTEN`/`NOTIFY` (PostgreSQL, also
//! from another node), when a retry comes due, and when an endpoint is re-enabled.
//!
//! SQLite by default; PostgreSQL when `DIALTONE_TEST_DATABASE_URL` names a server
//! (each test creates a database of its own there and drops it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_api::{App, ServerConfig};
use dialtone_domain::id::new_id;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::webhooks::SecretBox;
use dialtone_store::{NewEndpoint, Store};
use secrecy::SecretString;

const POLL: Duration = Duration::from_secs(60);
/// Far below the poll interval; generous for a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(3);

/// Where a test's database lives.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres {
        admin: String,
        url: String,
        name: String,
    },
}

impl Db {
    async fn fresh() -> (Store, Db) {
        match std::env::var("DIALTONE_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
        {
            Some(admin) => {
                let name = new_id("dialtone_t").to_lowercase();
                let pool = sqlx::PgPool::connect(&admin).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create database");
                pool.close().await;
                let url = with_database(&admin, &name);
                let store = Store::open_postgres(&url).await.expect("open");
                (store, Db::Postgres { admin, url, name })
            }
            None => {
                let dir = std::env::temp_dir().join(new_id("dialtone-test"));
                let store = Store::open_sqlite(&dir).await.expect("open");
                (store, Db::Sqlite(dir))
            }
        }
    }

    async fn drop(self) {
        match self {
            Db::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Db::Postgres { admin, name, .. } => {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            }
        }
    }
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// A receiver that counts what arrives and answers 500 to its first `fail` requests.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    async fn start(fail: usize) -> (Receiver, String) {
        let rx = Receiver::default();
        let hits = rx.hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let hits = hits.clone();
                async move {
                    let mut hits = hits.lock().unwrap_or_else(|e| e.into_inner());
                    hits.push(Instant::now());
                    if hits.len() <= fail {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, url)
    }

    /// Waits for `n` requests; how long it took, or `None` after `limit`.
    async fn wait(&self, n: usize, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.hits.lock().unwrap_or_else(|e| e.into_inner()).len() >= n {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

fn config(retries: Vec<Duration>) -> ServerConfig {
    let mut c = ServerConfig::new(SecretString::from("wakeup-test-server-secret-0123456789"));
    c.webhook_allow_private = true;
    c.webhook_poll_interval = POLL;
    c.webhook_retry_schedule = retries;
    c
}

async fn serve(store: &Store, config: ServerConfig) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::start(listener, store.clone(), config)
        .await
        .expect("start");
    // Past the poll's first (immediate) look at the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app
}

/// A workspace with one endpoint for every event; its scope and the endpoint's id.
async fn endpoint(
    store: &Store,
    config: &ServerConfig,
    url: &str,
    active: bool,
) -> (Scope, String) {
    let org = store.create_org("Wake").await.expect("org");
    let scope = Scope {
        org_id: org.id.clone(),
        workspace_id: org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let sealed = SecretBox::new(&config.server_secret)
        .seal(&SecretString::from("whsec_d2FrZXVwLXRlc3Qtc2VjcmV0"))
        .expect("seal");
    let e = store
        .scoped(&scope)
        .create_endpoint(NewEndpoint {
            kind: "webhook",
            url: url.to_owned(),
            events: vec!["*".into()],
            description: None,
            secret_sealed: sealed,
            active,
        })
        .await
        .expect("endpoint");
    (scope, e.id)
}

#[tokio::test]
async fn a_queued_delivery_wakes_the_worker_long_before_its_poll() {
    let (store, db) = Db::fresh().await;
    let config = config(vec![Duration::ZERO]);
    let app = serve(&store, config.clone()).await;
    let (rx, url) = Receiver::start(0).await;
    let (scope, hook) = endpoint(&store, &config, &url, true).await;
    for n in 1..=3 {
        store
            .scoped(&scope)
            .test_endpoint(&hook)
            .await
            .expect("event");
        assert!(
            rx.wait(n, PROMPT).await.is_some(),
            "delivery {n} waited for the poll"
        );
    }
    app.shutdown().await;
    store.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_retry_wakes_the_worker_when_it_is_due() {
    let (store, db) = Db::fresh().await;
    let config = config(vec![Duration::ZERO, Duration::from_millis(200)]);
    let app = serve(&store, config.clone()).await;
    let (rx, url) = Receiver::start(1).await;
    let (scope, hook) = endpoint(&store, &config, &url, true).await;
    store
        .scoped(&scope)
        .test_endpoint(&hook)
        .await
        .expect("event");
    assert!(
        rx.wait(2, PROMPT).await.is_some(),
        "the retry waited for the poll"
    );
    app.shutdown().await;
    store.close().await;
    db.drop().await;
}

#[tokio::test]
async fn re_enabling_an_endpoint_wakes_the_worker() {
    let (store, db) = Db::fresh().await;
    let config = config(vec![Duration::ZERO]);
    let app = serve(&store, config.clone()).await;
    let (rx, url) = Receiver::start(0).await;
    let (scope, hook) = endpoint(&store, &config, &url, false).await;
    store
        .scoped(&scope)
        .test_endpoint(&hook)
        .await
        .expect("event");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.wait(1, Duration::ZERO).await.is_none(),
        "sent to a disabled endpoint"
    );
    store
        .scoped(&scope)
        .update_endpoint(&hook, &url, &["*".into()], None, true)
        .await
        .expect("enable");
    assert!(
        rx.wait(1, PROMPT).await.is_some(),
        "the waiting delivery waited for the poll"
    );
    app.shutdown().await;
    store.close().await;
    db.drop().await;
}

/// Node A records the event (here: a store with no worker of its own); node B,
/// which polls once a minute, hears of it through `LISTEN` and delivers it.
#[tokio::test]
async fn on_postgresql_an_event_recorded_by_another_node_wakes_this_one() {
    let (store_b, db) = Db::fresh().await;
    let Db::Postgres { url, .. } = &db else {
        return; // A SQLite database belongs to one node.
    };
    let store_a = Store::open_postgres(url).await.expect("node A's store");
    let config = config(vec![Duration::ZERO]);
    let node_b = serve(&store_b, config.clone()).await;
    let (rx, hook_url) = Receiver::start(0).await;
    let (scope, hook) = endpoint(&store_a, &config, &hook_url, true).await;
    for n in 1..=3 {
        store_a
            .scoped(&scope)
            .test_endpoint(&hook)
            .await
            .expect("event on node A");
        assert!(
            rx.wait(n, PROMPT).await.is_some(),
            "node B did not hear of delivery {n}"
        );
    }
    node_b.shutdown().await;
    store_a.close().await;
    store_b.close().await;
    db.drop().await;
}
