//! Webhooks against a real receiver on a loopback port: both signatures verified
//! (the `standardwebhooks` crate and seed 001's HMAC), retries, `Retry-After`, 410,
//! disabled endpoints catching up, the delivery log, REST hooks, and SSRF refusals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::TestApp;

/// A request the receiver got: its headers and body.
type Received = (HeaderMap, Vec<u8>);
/// An answer to give: status and `Retry-After`.
type Answer = (u16, Option<u64>);

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order (then 200).
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    pub(crate) async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state
                        .got
                        .lock()
                        .expect("lock")
                        .push((headers, body.to_vec()));
                    let (status, retry_after) = state
                        .script
                        .lock()
                        .expect("lock")
                        .pop_front()
                        .unwrap_or((200, None));
                    let mut h = HeaderMap::new();
                    if let Some(s) = retry_after {
                        h.insert("retry-after", s.into());
                    }
                    (
                        AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK),
                        h,
                        "ok",
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("json"))
            .collect()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let got = self.got.lock().expect("lock").clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "only {} of {n} deliveries arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn fast(c: &mut dialtone_api::ServerConfig) {
    c.webhook_allow_private = true;
    c.webhook_retry_schedule = vec![
        Duration::ZERO,
        Duration::from_millis(50),
        Duration::from_millis(50),
        Duration::from_millis(50),
    ];
}

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

fn seed_001_verify(body: &[u8], signature: &str, secret: &str) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == signature
}

#[tokio::test]
async fn deliveries_verify_with_standard_webhooks_and_seed_001() {
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    let (status, generated) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["contact.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{generated}");
    let generated_secret = generated["secret"].as_str().expect("secret").to_owned();
    assert!(generated_secret.starts_with("whsec_"));
    let own_secret = "my-own-shared-secret";
    let (_, own) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["*"], "secret": own_secret}),
        )
        .await;
    let (_, fetched) = t
        .get(
            &format!("/v1/webhooks/{}", generated["id"].as_str().expect("id")),
            &key,
        )
        .await;
    assert!(fetched.get("secret").is_none(), "the secret is shown once");

    let (_, contact) = t
        .post("/v1/contacts", &key, json!({"first_name": "Ada"}))
        .await;
    let got = rx.wait_for(2).await;
    for (headers, body) in &got {
        let envelope: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(envelope["type"], "contact.created");
        assert_eq!(envelope["object"], "event");
        assert_eq!(envelope["livemode"], false);
        assert_eq!(envelope["data"]["object"]["id"], contact["id"]);
        assert_eq!(headers["webhook-id"], envelope["id"].as_str().expect("id"));
        let signature = headers["x-dialtone-signature"].to_str().expect("ascii");
        let mut http_headers = HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            http_headers.insert(
                name,
                headers[name]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("header"),
            );
        }
        let verified_generated = standardwebhooks::Webhook::new(&generated_secret)
            .expect("secret")
            .verify(body, &http_headers)
            .is_ok()
            && seed_001_verify(body, signature, &generated_secret);
        let verified_own = standardwebhooks::Webhook::from_bytes(own_secret.as_bytes().to_vec())
            .expect("secret")
            .verify(body, &http_headers)
            .is_ok()
            && seed_001_verify(body, signature, own_secret);
        assert!(
            verified_generated ^ verified_own,
            "each delivery verifies with exactly its endpoint's secret, both ways"
        );
    }
    // The delivery log records the attempt (just after the receiver answered).
    let path = format!(
        "/v1/webhooks/{}/deliveries",
        own["id"].as_str().expect("id")
    );
    let started = std::time::Instant::now();
    let log = loop {
        let (_, log) = t.get(&path, &key).await;
        if log["data"][0]["status"] == "succeeded" {
            break log;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let d = &log["data"][0];
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["response_body"], "ok");
    t.finish().await;
}

#[tokio::test]
async fn failures_are_retried_retry_after_honoured_and_410_disables_until_reenabled() {
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    rx.script
        .lock()
        .expect("lock")
        .extend([(500, None), (503, Some(1))]);
    let (_, hook) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["contact.created"]}),
        )
        .await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    t.post("/v1/contacts", &key, json!({"first_name": "Retry"}))
        .await;
    let got = rx.wait_for(3).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().expect("ascii"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "the same event id on every retry"
    );
    // The receiver has the third request; wait for its attempt to be recorded.
    let started = std::time::Instant::now();
    let log = loop {
        let (_, log) = t
            .get(&format!("/v1/webhooks/{hook_id}/deliveries"), &key)
            .await;
        if log["data"][0]["status"] == "succeeded" {
            break log;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let attempts = log["data"][0]["attempts"]
        .as_array()
        .expect("attempts")
        .clone();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["status_code"].as_i64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [500, 503, 200]
    );
    // Retry-After: 1 s, although the schedule said 50 ms.
    let t2: chrono::DateTime<chrono::Utc> = attempts[1]["attempted_at"]
        .as_str()
        .expect("time")
        .parse()
        .expect("time");
    let t3: chrono::DateTime<chrono::Utc> = attempts[2]["attempted_at"]
        .as_str()
        .expect("time")
        .parse()
        .expect("time");
    assert!(
        t3 - t2 >= chrono::TimeDelta::milliseconds(900),
        "{t2} → {t3}"
    );

    // 410 disables the endpoint; later events are kept and delivered once re-enabled.
    rx.script.lock().expect("lock").push_back((410, None));
    t.post("/v1/contacts", &key, json!({"first_name": "Gone"}))
        .await;
    rx.wait_for(4).await;
    let started = std::time::Instant::now();
    loop {
        let (_, h) = t.get(&format!("/v1/webhooks/{hook_id}"), &key).await;
        if h["active"] == false {
            assert_eq!(h["disabled_reason"], "gone");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not disabled: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.post("/v1/contacts", &key, json!({"first_name": "Kept"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.got.lock().expect("lock").len(),
        4,
        "nothing goes to a disabled endpoint"
    );
    let (status, h) = t
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{hook_id}"),
            Some(&key),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["disabled_reason"], Value::Null);
    rx.wait_for(6).await;
    let names: Vec<String> = rx
        .bodies()
        .iter()
        .map(|b| {
            b["data"]["object"]["first_name"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        names.iter().filter(|n| *n == "Gone").count() == 2 && names.contains(&"Kept".to_owned()),
        "{names:?}"
    );
    t.finish().await;
}

#[tokio::test]
async fn every_retry_used_fails_the_delivery() {
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    rx.script
        .lock()
        .expect("lock")
        .extend([(500, None), (500, None), (500, None), (500, None)]);
    let (_, hook) = t
        .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
        .await;
    t.post("/v1/contacts", &key, json!({"first_name": "Doomed"}))
        .await;
    rx.wait_for(4).await;
    let path = format!(
        "/v1/webhooks/{}/deliveries",
        hook["id"].as_str().expect("id")
    );
    let started = std::time::Instant::now();
    loop {
        let (_, log) = t.get(&path, &key).await;
        if log["data"][0]["status"] == "failed" {
            assert_eq!(log["data"][0]["attempts"].as_array().map(Vec::len), Some(4));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.finish().await;
}

#[tokio::test]
async fn private_targets_and_bad_input_are_refused_and_rest_hooks_subscribe() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "http://192.168.1.1/",
    ] {
        let (status, err) = t
            .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
    }
    for body in [
        json!({"url": "ftp://example.com", "events": ["*"]}),
        json!({"url": "https://example.com", "events": []}),
        json!({"url": "https://example.com", "events": ["call.exploded"]}),
        json!({"url": "https://example.com", "events": ["*"], "secret": "short"}),
        json!({"url": "https://example.com", "events": ["*"], "colour": 1}),
    ] {
        let (status, err) = t.post("/v1/webhooks", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    t.finish().await;

    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    let (status, hook) = t
        .post(
            "/v1/hooks",
            &key,
            json!({"url": url, "event": "contact.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let id = hook["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("hook_"));
    t.post("/v1/contacts", &key, json!({"first_name": "Zap"}))
        .await;
    rx.wait_for(1).await;
    let (status, _) = t
        .call(Method::DELETE, &format!("/v1/hooks/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    t.post("/v1/contacts", &key, json!({"first_name": "After"}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.got.lock().expect("lock").len(), 1, "unsubscribed");
    let (_, list) = t.get("/v1/webhooks", &key).await;
    assert_eq!(
        list["data"],
        json!([]),
        "REST hooks are not webhook endpoints"
    );
    t.finish().await;
}

#[tokio::test]
async fn webhook_secrets_are_sealed_in_the_database() {
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (_, created) = t.post("/v1/webhooks", &key, json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": "plain-text-secret-123"})).await;
    assert_eq!(created["secret"], "plain-text-secret-123");
    let scope = dialtone_domain::tenancy::Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let row = t
        .store
        .scoped(&scope)
        .get_endpoint(created["id"].as_str().expect("id"))
        .await
        .expect("row");
    assert!(!row.secret_sealed.contains("plain-text-secret-123"));
    t.finish().await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_and_ping_redeliver_recover_work() {
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    let (_, hook) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["contact.created"]}),
        )
        .await;
    let id = hook["id"].as_str().expect("id").to_owned();
    let old_secret = hook["secret"].as_str().expect("secret").to_owned();
    let (status, rotated) = t
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, old_secret);

    // A ping goes to this endpoint only, verifiable with either secret during the overlap.
    let (status, ping) = t
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/test"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{ping}");
    let got = rx.wait_for(1).await;
    let (headers, body) = &got[0];
    let envelope: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(envelope["type"], "webhook.test");
    let mut h = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].clone());
    }
    for secret in [&old_secret, &new_secret] {
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .verify(body, &h)
            .expect("verifies during the overlap");
    }
    assert!(seed_001_verify(
        body,
        headers["x-dialtone-signature"].to_str().expect("ascii"),
        &new_secret
    ));

    // A failed delivery is recovered; any delivery can be sent again.
    rx.script
        .lock()
        .expect("lock")
        .extend([(500, None), (500, None), (500, None), (500, None)]);
    t.post("/v1/contacts", &key, json!({"first_name": "Again"}))
        .await;
    rx.wait_for(5).await;
    let log_path = format!("/v1/webhooks/{id}/deliveries");
    let started = std::time::Instant::now();
    let failed_id = loop {
        let (_, log) = t.get(&log_path, &key).await;
        if let Some(d) = log["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|d| d["status"] == "failed")
        {
            break d["id"].as_str().expect("id").to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, recovered) = t
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            &key,
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovered}");
    assert_eq!(recovered["queued"], 1);
    rx.wait_for(6).await;
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{failed_id}/redeliver"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = rx.wait_for(7).await;
    let last: Value = serde_json::from_slice(&got[6].1).expect("json");
    assert_eq!(last["data"]["object"]["first_name"], "Again");
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/dlv_nope/redeliver"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.finish().await;
}

#[tokio::test]
async fn a_private_address_is_refused_again_at_delivery_time() {
    // Saved while private targets were allowed (or resolving elsewhere then), the URL
    // now points at loopback: the delivery client refuses to connect.
    let t = TestApp::spawn_with(|c| c.webhook_retry_schedule = vec![Duration::ZERO]).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    let url = url.replace("127.0.0.1", "localhost");
    let scope = dialtone_domain::tenancy::Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let sealed = dialtone_domain::webhooks::SecretBox::new(&t.config.server_secret)
        .seal(&secrecy::SecretString::from("whsec_c2VjcmV0c2VjcmV0"))
        .expect("seal");
    let row = t
        .store
        .scoped(&scope)
        .create_endpoint(dialtone_store::NewEndpoint {
            kind: "webhook",
            url,
            events: vec!["*".into()],
            description: None,
            secret_sealed: sealed,
            active: true,
        })
        .await
        .expect("endpoint");
    t.post("/v1/contacts", &key, json!({"first_name": "Blocked"}))
        .await;
    let path = format!("/v1/webhooks/{}/deliveries", row.id);
    let started = std::time::Instant::now();
    loop {
        let (_, log) = t.get(&path, &key).await;
        if log["data"][0]["status"] == "failed" {
            let error = log["data"][0]["attempts"][0]["error"]
                .as_str()
                .unwrap_or("");
            assert!(error.contains("public address"), "{error}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        rx.got.lock().expect("lock").is_empty(),
        "nothing reached the loopback receiver"
    );
    t.finish().await;
}

/// A receiver that holds each request for `hold`, and notes any event that arrives
/// while another delivery of the same event is still being received.
#[derive(Clone, Default)]
struct SlowReceiver {
    ids: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    concurrent_duplicates: Arc<Mutex<usize>>,
}

impl SlowReceiver {
    async fn start(hold: Duration) -> (SlowReceiver, String) {
        let r = SlowReceiver::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let id = headers["webhook-id"].to_str().unwrap_or("").to_owned();
                    {
                        let mut f = state.in_flight.lock().expect("lock");
                        let n = f.entry(id.clone()).or_default();
                        if *n > 0 {
                            *state.concurrent_duplicates.lock().expect("lock") += 1;
                        }
                        *n += 1;
                    }
                    tokio::time::sleep(hold).await;
                    *state
                        .in_flight
                        .lock()
                        .expect("lock")
                        .entry(id.clone())
                        .or_default() -= 1;
                    state.ids.lock().expect("lock").push(id);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn unique(&self) -> std::collections::BTreeSet<String> {
        self.ids.lock().expect("lock").iter().cloned().collect()
    }

    async fn wait_unique(&self, n: usize, within: Duration) {
        let started = std::time::Instant::now();
        while self.unique().len() < n {
            assert!(
                started.elapsed() < within,
                "{} of {n} events arrived",
                self.unique().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn kill_9_with_deliveries_pending_and_in_flight_loses_nothing() {
    use crate::common::{SECRET, TestDb, drop_db, fresh_db, with_database};
    dialtone_api::webhooks::install_tls_provider();
    let (store, db) = fresh_db().await;
    let org = store.create_org("Crash").await.expect("org");
    store.close().await;
    let (rx, url) = SlowReceiver::start(Duration::from_millis(400)).await;
    let mut env: Vec<(&str, String)> = vec![
        ("DIALTONE_SECRET_KEY", SECRET.into()),
        ("DIALTONE_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("DIALTONE_WEBHOOK_TIMEOUT_MS", "1000".into()),
    ];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let bin = env!("CARGO_BIN_EXE_dialtone");
    let out = tokio::process::Command::new(bin)
        .args([
            "keys", "create", "--org", &org.id, "--name", "k", "--test", "--json",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("keys");
    let key = serde_json::from_slice::<Value>(&out.stdout).expect("json")["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let start = || {
        tokio::process::Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("serve")
    };
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let wait_up = || async {
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    };
    let mut server = start();
    wait_up().await;
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    post(
        "/v1/webhooks",
        json!({"url": url, "events": ["contact.created"]}),
    )
    .await
    .expect("webhook");
    for i in 0..30 {
        post("/v1/contacts", json!({"first_name": format!("C{i}")}))
            .await
            .expect("contact");
    }
    // Some deliveries are at the receiver, others still queued: kill -9 now.
    let started = std::time::Instant::now();
    while rx.in_flight.lock().expect("lock").values().all(|n| *n == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill().expect("kill -9");
    let _ = server.wait().await;
    assert!(
        rx.unique().len() < 30,
        "the kill came before everything was delivered"
    );
    let mut server = start();
    wait_up().await;
    rx.wait_unique(30, Duration::from_secs(20)).await;
    server.start_kill().expect("kill");
    let _ = server.wait().await;
    drop_db(&db).await;
}

#[tokio::test]
async fn two_servers_on_postgresql_share_the_queue_without_concurrent_duplicates() {
    let Some(_) = crate::common::pg_url() else {
        return; // A SQLite data directory belongs to one server.
    };
    let t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = SlowReceiver::start(Duration::from_millis(20)).await;
    let crate::common::TestDb::Postgres { admin_url, name } = &t.db else {
        return;
    };
    let second_store =
        dialtone_store::Store::open_postgres(&crate::common::with_database(admin_url, name))
            .await
            .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let second = dialtone_api::App::start(listener, second_store.clone(), t.config.clone())
        .await
        .expect("second node");
    let (_, hook) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["contact.created"], "active": false}),
        )
        .await;
    for i in 0..120 {
        t.post("/v1/contacts", &key, json!({"first_name": format!("N{i}")}))
            .await;
    }
    // Both nodes' workers start on the same 120 deliveries at once.
    t.call(
        Method::PATCH,
        &format!("/v1/webhooks/{}", hook["id"].as_str().expect("id")),
        Some(&key),
        Some(json!({"active": true})),
    )
    .await;
    rx.wait_unique(120, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *rx.concurrent_duplicates.lock().expect("lock"),
        0,
        "an event was being delivered twice at once"
    );
    assert_eq!(
        rx.ids.lock().expect("lock").len(),
        120,
        "each event exactly once"
    );
    second.shutdown().await;
    second_store.close().await;
    t.finish().await;
}

#[tokio::test]
async fn an_endpoint_that_only_fails_for_the_disable_period_is_disabled() {
    // Five days in production; 100 ms here.
    let t = TestApp::spawn_with(|c| {
        fast(c);
        c.webhook_retry_schedule = vec![
            Duration::ZERO,
            Duration::from_millis(150),
            Duration::from_millis(150),
        ];
        c.webhook_disable_after = Duration::from_millis(100);
    })
    .await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    rx.script
        .lock()
        .expect("lock")
        .extend([(500, None), (500, None), (500, None)]);
    let (_, hook) = t
        .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
        .await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().expect("id"));
    t.post("/v1/contacts", &key, json!({"first_name": "Failing"}))
        .await;
    let started = std::time::Instant::now();
    loop {
        let (_, h) = t.get(&path, &key).await;
        if h["active"] == false {
            assert_eq!(h["disabled_reason"], "failing");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.finish().await;
}

/// A REST hook (`POST /v1/hooks`) and a webhook endpoint are different things: every
/// `/v1/webhooks/{id}` route and every dashboard webhook page answers a hook's id exactly
/// as an id that does not exist (and `DELETE /v1/hooks/{id}` a webhook's), and neither
/// is changed by the attempt.
#[tokio::test]
async fn a_rest_hook_and_a_webhook_endpoint_cannot_be_reached_as_each_other() {
    use crate::dashboard::{page, sign_in, submit, user};
    use dialtone_domain::users::Role;

    let t = TestApp::spawn_with(fast).await;
    let key = t.admin_key().await;
    let (rx, url) = Receiver::start().await;
    let (status, webhook) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["contact.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let webhook = webhook["id"].as_str().expect("id").to_owned();
    let (status, hook) = t
        .post(
            "/v1/hooks",
            &key,
            json!({"url": url, "event": "contact.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook = hook["id"].as_str().expect("id").to_owned();
    // Ids of each kind that no longer exist: what "not found" looks like.
    let (_, gone_webhook) = t
        .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
        .await;
    let gone_webhook = gone_webhook["id"].as_str().expect("id").to_owned();
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/v1/webhooks/{gone_webhook}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, gone_hook) = t
        .post(
            "/v1/hooks",
            &key,
            json!({"url": url, "event": "call.completed"}),
        )
        .await;
    let gone_hook = gone_hook["id"].as_str().expect("id").to_owned();
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/v1/hooks/{gone_hook}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // One event, so each has a delivery.
    let (status, _) = t
        .post(
            "/v1/contacts",
            &key,
            json!({"phone_number": "+14155550100"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    rx.wait_for(2).await;
    let scope = dialtone_domain::tenancy::Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Live,
    };
    let store = t.store.scoped(&scope);
    let all = dialtone_domain::page::PageRequest::new(Some(100), None).expect("page");
    let snapshot = |id: String| {
        let store = &store;
        let all = &all;
        async move {
            let row = store.get_endpoint(&id).await.expect("endpoint");
            let deliveries = store.list_deliveries(&id, all).await.expect("deliveries");
            (
                row.url,
                row.events,
                row.active,
                row.secret_sealed,
                row.updated_at,
                deliveries.len(),
            )
        }
    };
    let hook_before = snapshot(hook.clone()).await;
    let webhook_before = snapshot(webhook.clone()).await;
    assert_eq!(hook_before.5, 1, "the hook got the event");
    let hook_delivery = store
        .list_deliveries(&hook, &all)
        .await
        .expect("deliveries")[0]
        .id
        .clone();

    let since = json!({"since": "2020-01-01T00:00:00Z"});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/webhooks/{id}".into(), None),
        (
            Method::PATCH,
            "/v1/webhooks/{id}".into(),
            Some(json!({"active": false, "events": ["*"]})),
        ),
        (Method::DELETE, "/v1/webhooks/{id}".into(), None),
        (Method::GET, "/v1/webhooks/{id}/deliveries".into(), None),
        (
            Method::POST,
            format!("/v1/webhooks/{{id}}/deliveries/{hook_delivery}/redeliver"),
            None,
        ),
        (
            Method::POST,
            "/v1/webhooks/{id}/recover".into(),
            Some(since),
        ),
        (Method::POST, "/v1/webhooks/{id}/test".into(), None),
        (Method::POST, "/v1/webhooks/{id}/rotate-secret".into(), None),
    ];
    for (method, path, body) in &routes {
        let expected = t
            .call(
                method.clone(),
                &path.replace("{id}", &gone_webhook),
                Some(&key),
                body.clone(),
            )
            .await;
        assert_eq!(expected.0, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(expected.1["error"], "NOT_FOUND", "{method} {path}");
        let got = t
            .call(
                method.clone(),
                &path.replace("{id}", &hook),
                Some(&key),
                body.clone(),
            )
            .await;
        assert_eq!(got, expected, "{method} {path} with a REST hook's id");
    }
    let expected = t
        .call(
            Method::DELETE,
            &format!("/v1/hooks/{gone_hook}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(expected.0, StatusCode::NOT_FOUND);
    let got = t
        .call(
            Method::DELETE,
            &format!("/v1/hooks/{webhook}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(got, expected, "DELETE /v1/hooks with a webhook's id");
    // Only webhooks are listed as webhooks.
    let (_, list) = t.get("/v1/webhooks", &key).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, vec![webhook.as_str()]);

    // The dashboard's webhook pages and forms: the same.
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    for path in [
        "/dashboard/webhooks/{id}",
        "/dashboard/webhooks/{id}/rotate-secret",
    ] {
        let (status, _) = page(&t, &s.cookie, &path.replace("{id}", &hook)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
    }
    let forms: [(String, &[(&str, &str)]); 4] = [
        ("/dashboard/webhooks/{id}/active".into(), &[("active", "0")]),
        ("/dashboard/webhooks/{id}/test".into(), &[]),
        (
            format!("/dashboard/webhooks/{{id}}/deliveries/{hook_delivery}/redeliver"),
            &[],
        ),
        ("/dashboard/webhooks/{id}/rotate-secret".into(), &[]),
    ];
    for (path, fields) in &forms {
        let resp = submit(&t, &s, &path.replace("{id}", &hook), fields).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "POST {path}");
    }

    // Nothing changed, nothing was queued.
    assert_eq!(snapshot(hook.clone()).await, hook_before);
    assert_eq!(snapshot(webhook.clone()).await, webhook_before);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.bodies().len(), 2, "no test ping or redelivery went out");
    t.finish().await;
}
