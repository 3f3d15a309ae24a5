//! Campaigns: recipients from JSON or CSV, the runner calling them through the
//! simulator, progress, completion, pause/resume/cancel, idempotency, isolation.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_isolated};

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

async fn wait_for_campaign(
    t: &TestApp,
    key: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, c) = t.get(&format!("/v1/campaigns/{id}"), key).await;
        if done(&c) {
            return c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "campaign never got there: {c}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_campaign_calls_every_recipient_and_completes() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (_, agent) = t
        .post("/v1/agents", &key, json!({"name": "Renewals"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id");
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "November renewals", "agent_id": agent_id,
                   "recipients": ["+14155550123", "+14155550124", "+15005550001", "+14155550123"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["object"], "campaign");
    assert_eq!(c["status"], "running");
    assert_eq!(c["progress"]["total"], 3, "duplicates are called once");
    let id = c["id"].as_str().expect("id").to_owned();
    let done = wait_for_campaign(&t, &key, &id, |c| c["status"] == "completed").await;
    assert_eq!(
        done["progress"],
        json!({"total": 3, "pending": 0, "in_progress": 0, "completed": 2, "failed": 1})
    );
    let (_, calls) = t.get(&format!("/v1/campaigns/{id}/calls"), &key).await;
    let calls = calls["data"].as_array().expect("calls");
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|call| call["campaign_id"] == id.as_str() && call["agent_id"] == agent_id)
    );
    let (_, filtered) = t.get(&format!("/v1/calls?campaign_id={id}"), &key).await;
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(3));
    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let page = PageRequest::new(Some(10), None).expect("page");
    let events = t
        .store
        .scoped(&scope)
        .list_events(Some("campaign.completed"), &page)
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.object["id"], id.as_str());
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/v1/campaigns/{id}"),
            Some(&key),
            Some(json!({"status": "running"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a completed campaign stays completed"
    );
    t.finish().await;
}

/// A recipients file as Excel saves it in a European locale: a byte order mark, `;`
/// between fields, quoted fields holding the separator, the number in the third column.
#[tokio::test]
async fn a_campaign_from_an_excel_csv_calls_its_numbers_to_completion() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (_, agent) = t
        .post("/v1/agents", &key, json!({"name": "Reminders"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id");
    let csv = "\u{feff}\"Name\";\"Company\";\"Mobile\"\r\n\"Lovelace; Ada\";\"Analytical, Ltd\";\"+14155550123\"\r\n\"Bob\";\"\";\"+14155550124\"\r\n";
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "From Excel", "agent_id": agent_id, "recipients_csv": csv}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["progress"]["total"], 2);
    let id = c["id"].as_str().expect("id").to_owned();
    let done = wait_for_campaign(&t, &key, &id, |c| c["status"] == "completed").await;
    assert_eq!(done["progress"]["pending"], 0);
    let (_, calls) = t.get(&format!("/v1/campaigns/{id}/calls"), &key).await;
    let mut called: Vec<&str> = calls["data"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|call| call["to"].as_str())
        .collect();
    called.sort_unstable();
    assert_eq!(called, ["+14155550123", "+14155550124"]);
    // A bad number in that column is named by its line.
    let (status, err) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "Bad", "agent_id": agent_id,
                   "recipients_csv": "Name;Mobile\r\nAda;+14155550123\r\nBob;555-0100\r\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["details"][0]["field"], "recipients_csv line 3");
    t.finish().await;
}

#[tokio::test]
async fn campaigns_pause_resume_cancel_and_validate() {
    let t = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    let key = test_key(&t).await;
    let (_, agent) = t.post("/v1/agents", &key, json!({"name": "A"})).await;
    let agent_id = agent["id"].as_str().expect("id");
    let csv = "phone_number,name\n+14155550123,Ada\n+14155550124,Bob\n+14155550125,Cy\n";
    let send = || {
        t.client
            .post(format!("{}/v1/campaigns", t.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", "cmp-1")
            .json(&json!({"name": "CSV", "agent_id": agent_id, "recipients_csv": csv}))
            .send()
    };
    let first: Value = send().await.expect("send").json().await.expect("json");
    let again: Value = send().await.expect("send").json().await.expect("json");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["progress"]["total"], 3);
    let path = format!("/v1/campaigns/{}", first["id"].as_str().expect("id"));
    // With slow calls, the runner keeps two in flight.
    let running = wait_for_campaign(&t, &key, first["id"].as_str().expect("id"), |c| {
        c["progress"]["in_progress"] == 2
    })
    .await;
    assert_eq!(running["progress"]["pending"], 1);
    for (to, expect) in [
        ("paused", StatusCode::OK),
        ("running", StatusCode::OK),
        ("canceled", StatusCode::OK),
        ("paused", StatusCode::CONFLICT),
    ] {
        let (status, c) = t
            .call(
                Method::PATCH,
                &path,
                Some(&key),
                Some(json!({"status": to})),
            )
            .await;
        assert_eq!(status, expect, "{to}: {c}");
        if expect == StatusCode::OK {
            assert_eq!(c["status"], to);
        }
    }
    let (status, _) = t
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for body in [
        json!({"name": "x", "agent_id": agent_id}),
        json!({"name": "x", "agent_id": agent_id, "recipients": ["555"]}),
        json!({"name": "x", "agent_id": agent_id, "recipients": []}),
        json!({"name": "x", "agent_id": dialtone_domain::id::new_id("agt"), "recipients": ["+14155550123"]}),
        json!({"name": "", "agent_id": agent_id, "recipients": ["+14155550123"]}),
        json!({"name": "x", "agent_id": agent_id, "recipients": ["+14155550123"], "recipients_csv": "+14155550124"}),
    ] {
        let (status, err) = t.post("/v1/campaigns", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    t.finish().await;
}

#[tokio::test]
async fn a_live_campaign_without_a_carrier_pauses_and_campaigns_stay_in_their_scope() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let (_, agent) = t.post("/v1/agents", &key, json!({"name": "A"})).await;
    t.post("/v1/phone-numbers", &key, json!({})).await;
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "Live", "agent_id": agent["id"], "recipients": ["+14155550123"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let paused = wait_for_campaign(&t, &key, c["id"].as_str().expect("id"), |c| {
        c["status"] == "paused"
    })
    .await;
    assert_eq!(paused["status_reason"], "carrier_unavailable");
    let body = json!({"name": "Iso", "agent_id": agent["id"], "recipients": ["+14155550123"]});
    assert_isolated(&t, "/v1/campaigns", body).await;
    t.finish().await;
}
