//! Messages and conversation notes: simulated delivery and failure, threading with
//! calls, live money, idempotency, bad input, and inbound traffic from the CLI.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{
    SECRET, TestApp, TestDb, assert_isolated, is_terminal, wait_for_call, with_database,
};

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

async fn wait_for_message(t: &TestApp, key: &str, id: &str, status: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, m) = t.get(&format!("/v1/messages/{id}"), key).await;
        if m["status"] == status {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "message never became {status}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_are_delivered_or_fail_and_share_the_conversation_with_calls() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (status, m) = t
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+14155550123", "body": "Your appointment is Thursday."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["object"], "message");
    assert_eq!(m["status"], "sent");
    assert_eq!(m["segments"], 1);
    assert_eq!(m["cost"], 0);
    let id = m["id"].as_str().expect("id").to_owned();
    wait_for_message(&t, &key, &id, "delivered").await;
    let (_, failing) = t
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+15005550003", "body": "x"}),
        )
        .await;
    wait_for_message(&t, &key, failing["id"].as_str().expect("id"), "failed").await;

    // A call to the same number joins the same conversation.
    let (_, call) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(call["conversation_id"], m["conversation_id"]);
    wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
    let conv = m["conversation_id"].as_str().expect("conversation");
    let (_, thread) = t
        .get(&format!("/v1/conversations/{conv}/messages"), &key)
        .await;
    assert_eq!(thread["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(thread["data"][0]["id"], id.as_str());

    let notes = format!("/v1/conversations/{conv}/notes");
    let (status, note) = t
        .post(&notes, &key, json!({"content": "Asked for a reminder"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["conversation_id"], conv);
    let (_, listed) = t.get(&notes, &key).await;
    assert_eq!(listed["data"][0]["content"], "Asked for a reminder");
    assert_eq!(
        t.post(&notes, &key, json!({"content": "x".repeat(5001)}))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let missing = format!(
        "/v1/conversations/{}/notes",
        dialtone_domain::id::new_id("conv")
    );
    assert_eq!(
        t.post(&missing, &key, json!({"content": "hi"})).await.0,
        StatusCode::NOT_FOUND
    );

    let (_, outbound) = t.get("/v1/messages?direction=outbound", &key).await;
    assert_eq!(outbound["data"].as_array().map(Vec::len), Some(2));
    for body in [
        json!({"to": "+14155550123"}),
        json!({"to": "+14155550123", "body": ""}),
        json!({"to": "+14155550123", "body": "x".repeat(1601)}),
        json!({"to": "12", "body": "x"}),
        json!({"to": "+14155550123", "body": "x", "media": []}),
    ] {
        let (status, err) = t.post("/v1/messages", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    t.finish().await;
}

#[tokio::test]
async fn live_messages_are_charged_per_segment_once_per_idempotency_key() {
    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    let key = t.admin_key().await;
    let (status, err) = t
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+14155550123", "body": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{err}");
    t.store
        .credit_wallet(&t.org.id, true, 200, "credit")
        .await
        .expect("credit");
    t.post("/v1/phone-numbers", &key, json!({})).await; // 115
    let send = |k: &'static str| {
        t.client
            .post(format!("{}/v1/messages", t.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", k)
            .json(&json!({"to": "+14155550123", "body": "x".repeat(200)}))
            .send()
    };
    let first: Value = send("sms-1")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(first["segments"], 2);
    assert_eq!(first["cost"], 2);
    let again: Value = send("sms-1")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["id"], first["id"]);
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(wallet["balance"], 200 - 115 - 2);
    t.finish().await;
}

#[tokio::test]
async fn messages_stay_in_their_workspace_and_mode() {
    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let admin = t.admin_key().await;
    t.post("/v1/phone-numbers", &admin, json!({})).await;
    assert_isolated(
        &t,
        "/v1/messages",
        json!({"to": "+14155550123", "body": "hi"}),
    )
    .await;
    t.finish().await;
}

#[tokio::test]
async fn the_cli_simulates_inbound_calls_and_messages() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (_, agent) = t
        .post(
            "/v1/agents",
            &key,
            json!({"name": "Reception", "greeting": "Acme, how can I help?"}),
        )
        .await;
    let (_, number) = t
        .post("/v1/phone-numbers", &key, json!({"agent_id": agent["id"]}))
        .await;
    let ours = number["number"].as_str().expect("number").to_owned();
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match &t.db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let run = |args: Vec<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dialtone"));
        c.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let out = run(vec![
        "simulate",
        "inbound-message",
        "--to",
        &ours,
        "--from",
        "+14155550199",
        "--body",
        "Running late",
        "--test",
        "--json",
    ])
    .output()
    .await
    .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["status"], "received");
    let (_, inbound) = t.get("/v1/messages?direction=inbound", &key).await;
    assert_eq!(inbound["data"][0]["body"], "Running late");

    let out = run(vec![
        "simulate",
        "inbound-call",
        "--to",
        &ours,
        "--from",
        "+14155550199",
        "--test",
        "--json",
    ])
    .output()
    .await
    .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let call: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["agent_id"], agent["id"]);
    assert_eq!(call["conversation_id"], m["conversation_id"]);
    let id = call["id"].as_str().expect("id");
    let done = wait_for_call(&t, &key, id, is_terminal).await;
    assert_eq!(done["status"], "completed");
    let (_, transcript) = t.get(&format!("/v1/calls/{id}/transcript"), &key).await;
    assert_eq!(transcript["segments"][0]["text"], "Acme, how can I help?");
    let unknown = run(vec![
        "simulate",
        "inbound-call",
        "--to",
        "+19995550000",
        "--from",
        "+14155550199",
        "--test",
    ])
    .output()
    .await
    .expect("run");
    assert!(!unknown.status.success());
    t.finish().await;
}
