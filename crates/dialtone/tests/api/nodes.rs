//! Several servers on one PostgreSQL: a key revoked on one node is refused by another
//! on its next request after the change is pushed (LISTEN/NOTIFY), also after the
//! notification connection was killed. Skipped on SQLite (one node per data directory).

use std::time::{Duration, Instant};

use dialtone_domain::auth::KeyRequest;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;

use crate::common::{TestApp, TestDb, pg_url, with_database};

/// Polls `url` with `key` until it answers 401; returns how long that took.
async fn until_refused(client: &reqwest::Client, url: &str, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let status = client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
            .status();
        if status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_node_reaches_the_other_by_push_even_after_the_listener_dies() {
    if pg_url().is_none() {
        return;
    }
    // No polling fallback within the test: only the push can evict.
    let hour = Duration::from_secs(3600);
    let t = TestApp::spawn_with(|c| c.key_poll_interval = hour).await;
    let TestDb::Postgres { admin_url, name } = &t.db else {
        return;
    };
    let db_url = with_database(admin_url, name);
    let second_store = dialtone_store::Store::open_postgres(&db_url)
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, second_store.clone(), t.config.clone())
        .await
        .expect("node b");
    let b_me = format!("http://{}/v1/me", b.addr);
    let admin = t.admin_key().await;
    let client = reqwest::Client::new();
    // Let node B's listener connect.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut propagation = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // Kill node B's notification connection; it must reconnect and still hear.
            let pool = sqlx::PgPool::connect(&db_url).await.expect("connect");
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_all(&pool)
            .await
            .expect("terminate");
            assert!(!killed.is_empty(), "a listener connection existed");
            pool.close().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let victim = t
            .create_key(KeyRequest {
                name: format!("victim {round}"),
                ..Default::default()
            })
            .await;
        let secret = victim.secret.expose_secret().to_owned();
        assert_eq!(
            client
                .get(&b_me)
                .bearer_auth(&secret)
                .send()
                .await
                .expect("b")
                .status(),
            StatusCode::OK,
            "cached on B"
        );
        let (status, _) = t
            .call(
                Method::DELETE,
                &format!("/v1/api-keys/{}", victim.key.id),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        propagation.push(until_refused(&client, &b_me, &secret).await);
    }
    eprintln!("revocation reached the other node after {propagation:?}");
    b.shutdown().await;
    second_store.close().await;
    t.finish().await;
}

/// Sends `n` requests to `url` with `key`; returns how many were refused with 429.
async fn refused(client: &reqwest::Client, url: &str, key: &str, n: usize) -> usize {
    let mut count = 0;
    for _ in 0..n {
        let status = client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
            .status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            count += 1;
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    count
}

#[tokio::test]
async fn with_redis_two_nodes_share_one_limit() {
    let Some(redis) = std::env::var("DIALTONE_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let t = TestApp::spawn_with(|c| {
        c.rate_limit_per_key = 2;
        c.redis_url = Some(redis.clone());
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, t.store.clone(), t.config.clone())
        .await
        .expect("node b");
    // Let both nodes connect to Redis.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = t.admin_key().await;
    let client = reqwest::Client::new();
    let a_url = format!("{}/v1/me", t.url);
    let b_url = format!("http://{}/v1/me", b.addr);
    // A burst of 4 in all: 3 on A and 3 on B cannot all pass.
    let denied = refused(&client, &a_url, &key, 3).await + refused(&client, &b_url, &key, 3).await;
    assert_eq!(denied, 2, "one shared bucket of 4");
    b.shutdown().await;
    t.finish().await;
}

#[tokio::test]
async fn without_redis_each_node_limits_alone_and_keeps_serving() {
    // Redis configured but unreachable: requests are served, limited per node.
    let t = TestApp::spawn_with(|c| {
        c.rate_limit_per_key = 2;
        c.redis_url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, t.store.clone(), t.config.clone())
        .await
        .expect("node b");
    let key = t.admin_key().await;
    let client = reqwest::Client::new();
    let a_url = format!("{}/v1/me", t.url);
    let b_url = format!("http://{}/v1/me", b.addr);
    assert_eq!(
        refused(&client, &a_url, &key, 4).await,
        0,
        "a burst of 4 on node A"
    );
    assert_eq!(
        refused(&client, &b_url, &key, 4).await,
        0,
        "and another on node B"
    );
    assert_eq!(
        refused(&client, &a_url, &key, 1).await,
        1,
        "node A's own limit still holds"
    );
    b.shutdown().await;
    t.finish().await;
}

/// Restarts the machine's PostgreSQL: run alone (`--ignored`), never beside other tests.
struct PgRestart;

impl PgRestart {
    fn ctl(action: &str) {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .expect("a PostgreSQL cluster");
        let status = std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", action])
            .status()
            .expect("pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action}");
    }
}

impl Drop for PgRestart {
    fn drop(&mut self) {
        // Whatever happened, leave PostgreSQL running.
        let _ = std::panic::catch_unwind(|| PgRestart::ctl("start"));
    }
}

#[tokio::test]
#[ignore = "restarts PostgreSQL: .ci/run runs it alone"]
async fn the_server_reports_unready_while_postgresql_is_down_and_recovers_by_itself() {
    if pg_url().is_none() {
        return;
    }
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let (status, c) = t
            .post(
                "/v1/contacts",
                &key,
                serde_json::json!({"first_name": format!("Before {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        acknowledged.push(c["id"].as_str().expect("id").to_owned());
    }
    let guard = PgRestart;
    PgRestart::ctl("stop");
    let ready = client
        .get(format!("{}/readyz", t.url))
        .send()
        .await
        .expect("readyz")
        .status();
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    // A write while the database is away is refused as unavailable, not lost silently.
    let (status, err) = t
        .post(
            "/v1/contacts",
            &key,
            serde_json::json!({"first_name": "During"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    PgRestart::ctl("start");
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("{}/readyz", t.url))
            .send()
            .await
            .expect("readyz")
            .status();
        if ready == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, c) = t
        .post(
            "/v1/contacts",
            &key,
            serde_json::json!({"first_name": "After"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    acknowledged.push(c["id"].as_str().expect("id").to_owned());
    for id in &acknowledged {
        assert_eq!(
            t.get(&format!("/v1/contacts/{id}"), &key).await.0,
            StatusCode::OK,
            "acknowledged write {id} lost"
        );
    }
    drop(guard);
    t.finish().await;
}

/// Two nodes on one PostgreSQL for the cross-node tests: (first app, second app's base URL).
pub(crate) async fn two_nodes(
    tweak: impl FnOnce(&mut dialtone_api::ServerConfig),
) -> Option<(TestApp, dialtone_api::App, dialtone_store::Store, String)> {
    pg_url()?;
    let t = TestApp::spawn_with(tweak).await;
    let TestDb::Postgres { admin_url, name } = &t.db else {
        return None;
    };
    let store = dialtone_store::Store::open_postgres(&with_database(admin_url, name))
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, store.clone(), t.config.clone())
        .await
        .expect("node b");
    let b_url = format!("http://{}", b.addr);
    Some((t, b, store, b_url))
}

#[tokio::test]
async fn the_key_cap_idempotency_and_usage_hold_across_nodes() {
    let Some((t, b, b_store, b_url)) = two_nodes(|_| {}).await else {
        return;
    };
    let admin = t.admin_key().await;
    let worker = t
        .create_key(KeyRequest {
            name: "worker".into(),
            ..Default::default()
        })
        .await;
    let secret = worker.secret.expose_secret().to_owned();
    let client = reqwest::Client::new();
    // 40 concurrent creations spread over both nodes: exactly the cap.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            format!("{}/v1/api-keys", t.url)
        } else {
            format!("{b_url}/v1/api-keys")
        };
        let (client, admin) = (client.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&serde_json::json!({"name": format!("k{i}")}))
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.expect("join") == StatusCode::CREATED {
            created += 1;
        }
    }
    assert_eq!(created, 23, "the admin and worker keys are two of the 25");
    // One idempotency key retried on both nodes at once: one number, one charge.
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = if i % 2 == 0 {
            format!("{}/v1/phone-numbers", t.url)
        } else {
            format!("{b_url}/v1/phone-numbers")
        };
        let (client, admin) = (client.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(admin)
                .header("Idempotency-Key", "cross-node")
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("send");
            resp.json::<serde_json::Value>().await.expect("json")["id"]
                .as_str()
                .map(str::to_owned)
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.expect("join").expect("a number"));
    }
    assert_eq!(ids.len(), 1, "one purchase");
    let (_, wallet) = t.get("/v1/billing/wallet", &admin).await;
    assert_eq!(wallet["balance"], 1000 - 115, "one charge");
    // Usage counted on both nodes adds up.
    for i in 0..10 {
        let base = if i % 2 == 0 {
            t.url.clone()
        } else {
            b_url.clone()
        };
        assert_eq!(
            client
                .get(format!("{base}/v1/me"))
                .bearer_auth(&secret)
                .send()
                .await
                .expect("me")
                .status(),
            StatusCode::OK
        );
    }
    t.app().state.flush_usage().await.expect("flush a");
    b.state.flush_usage().await.expect("flush b");
    let stored = t
        .store
        .get_key(&t.org.id, &worker.key.id)
        .await
        .expect("key");
    assert_eq!(stored.requests_30d, 10);
    b.shutdown().await;
    b_store.close().await;
    t.finish().await;
}

#[tokio::test]
async fn service_continues_when_redis_stops_mid_run() {
    // A Redis of the test's own, so stopping it disturbs nothing else.
    let Ok(probe) = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
    else {
        return;
    };
    if !probe.status.success() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    let t = TestApp::spawn_with(|c| {
        c.rate_limit_per_key = 1000;
        c.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = t.admin_key().await;
    for _ in 0..5 {
        assert_eq!(t.get("/v1/me", &key).await.0, StatusCode::OK);
    }
    redis.start_kill().expect("stop redis");
    let _ = redis.wait().await;
    for _ in 0..20 {
        assert_eq!(
            t.get("/v1/me", &key).await.0,
            StatusCode::OK,
            "served without Redis"
        );
    }
    t.finish().await;
}
