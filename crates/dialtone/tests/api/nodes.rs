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
