//! A key's secret is shown once and then exists nowhere: not in the database, not in
//! the logs (of the real binary, at debug level), not in later answers.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::common::{TestApp, TestDb, drop_db, fresh_db, with_database};

async fn database_text(t: &TestApp) -> Vec<u8> {
    match &t.db {
        TestDb::Sqlite(dir) => {
            // Everything SQLite keeps: the database, its WAL and shared memory.
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir).expect("data dir") {
                bytes.extend(std::fs::read(entry.expect("entry").path()).unwrap_or_default());
            }
            bytes
        }
        TestDb::Postgres { admin_url, name } => {
            let pool = sqlx::PgPool::connect(&with_database(admin_url, name))
                .await
                .expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&pool)
            .await
            .expect("tables");
            assert!(tables.iter().any(|t| t == "api_keys"));
            let mut text = String::new();
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST(t AS TEXT) FROM \"{table}\" t"
                )))
                .fetch_all(&pool)
                .await
                .expect("rows");
                text.push_str(&rows.join("\n"));
            }
            pool.close().await;
            text.into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tokens_never_reach_the_database() {
    let t = TestApp::spawn().await;
    let operator = t
        .create_key(dialtone_domain::auth::KeyRequest {
            name: "op".into(),
            ..Default::default()
        })
        .await;
    let admin = operator.secret.expose_secret().to_owned();
    let (status, created) = t.post("/v1/api-keys", &admin, json!({"name": "api"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let api_secret = created["secret"].as_str().expect("secret").to_owned();
    let (_, rotated) = t
        .post(
            &format!(
                "/v1/api-keys/{}/rotate",
                created["id"].as_str().expect("id")
            ),
            &admin,
            json!({}),
        )
        .await;
    let rotated_secret = rotated["secret"].as_str().expect("secret").to_owned();
    for s in [&admin, &api_secret, &rotated_secret] {
        assert_eq!(t.get("/v1/contacts", s).await.0, StatusCode::OK);
    }
    t.app().state.flush_usage().await.expect("flush");
    let text = database_text(&t).await;
    assert!(
        contains(&text, &operator.key.id),
        "the dump holds the key rows"
    );
    for s in [&admin, &api_secret, &rotated_secret] {
        assert!(!contains(&text, s), "a token was found in the database");
        // Nor the random part alone.
        assert!(!contains(&text, &s[8..s.len() - 6]));
    }
    t.finish().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn tokens_never_reach_the_logs_of_the_real_binary() {
    dialtone_api::webhooks::install_tls_provider();
    let (store, db) = fresh_db().await;
    store.close().await;
    let bin = env!("CARGO_BIN_EXE_dialtone");
    let mut env: Vec<(&str, String)> = vec![
        ("RUST_LOG", "debug".into()),
        ("DIALTONE_SECRET_KEY", crate::common::SECRET.into()),
    ];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let run = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let out = run(&["org", "create", "--name", "Logs", "--json"])
        .output()
        .await
        .expect("org");
    let org: Value = serde_json::from_slice(&out.stdout).expect("org json");
    let org_id = org["id"].as_str().expect("id");
    let out = run(&[
        "keys", "create", "--org", org_id, "--name", "first", "--json",
    ])
    .output()
    .await
    .expect("keys");
    let mut logs = out.stderr.clone();
    let created: Value = serde_json::from_slice(&out.stdout).expect("key json");
    let admin = created["secret"].as_str().expect("secret").to_owned();

    let port = free_port();
    let mut server = run(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not start");
    let created: Value = client
        .post(format!("{base}/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "second"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let second = created["secret"].as_str().expect("secret").to_owned();
    let second_id = created["id"].as_str().expect("id").to_owned();
    for auth in [
        admin.clone(),
        format!("{second_id}:{second}"),
        format!("{}x", &second),
    ] {
        client
            .get(format!("{base}/v1/contacts"))
            .bearer_auth(&auth)
            .send()
            .await
            .expect("get");
    }
    client
        .delete(format!("{base}/v1/api-keys/{second_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&second)
        .send()
        .await
        .expect("get");
    server.start_kill().expect("kill");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut s) = server.stdout.take() {
        s.read_to_end(&mut stdout).await.expect("stdout");
    }
    if let Some(mut s) = server.stderr.take() {
        s.read_to_end(&mut stderr).await.expect("stderr");
    }
    let _ = server.wait().await;
    logs.extend(stdout);
    logs.extend(stderr);
    let text = String::from_utf8_lossy(&logs);
    assert!(
        text.contains("/v1/contacts"),
        "the requests were logged at all"
    );
    assert!(text.contains(&second_id), "key ids may be logged");
    for s in [&admin, &second] {
        assert!(!text.contains(s.as_str()), "a token appeared in the logs");
        assert!(
            !text.contains(&s[8..s.len() - 6]),
            "a token's random part appeared in the logs"
        );
    }
    drop_db(&db).await;
}
