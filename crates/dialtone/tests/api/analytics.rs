//! Usage analytics over calls and messages.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::calls::Direction;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_store::NewMessage;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, is_terminal, wait_for_call};

#[tokio::test]
async fn usage_sums_calls_and_messages_by_bucket_and_group() {
    let t = TestApp::spawn().await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let mut minutes = 0;
    for to in ["+14155550123", "+14155550124", "+15005550001"] {
        let (_, call) = t.post("/v1/calls", &key, json!({"to": to})).await;
        let done = wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
        minutes += (done["duration_seconds"].as_i64().expect("duration") + 59) / 60;
    }
    t.post(
        "/v1/messages",
        &key,
        json!({"to": "+14155550123", "body": "hello"}),
    )
    .await;
    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    let inbound = NewMessage {
        id: dialtone_domain::id::new_id("msg"),
        direction: Direction::Inbound,
        from: "+14155550123".into(),
        to: "+15005550006".into(),
        body: "hi back".into(),
        phone_number_id: None,
        fail: false,
        carrier: dialtone_store::SIMULATOR,
        carrier_sid: None,
    };
    t.store
        .scoped(&scope)
        .create_message(inbound, chrono::TimeDelta::zero(), None)
        .await
        .expect("inbound");

    let (status, report) = t.get("/v1/analytics/usage", &key).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["object"], "usage_report");
    assert_eq!(report["granularity"], "day");
    let totals = &report["totals"];
    assert_eq!(
        (
            &totals["calls"],
            &totals["answered"],
            &totals["missed"],
            &totals["messages_out"],
            &totals["messages_in"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(totals["minutes"], minutes);
    assert_eq!(totals["cost"], 0);
    assert!(
        report["data"][0]["period_start"]
            .as_str()
            .is_some_and(|p| p.ends_with("T00:00:00Z"))
    );

    let (_, by_direction) = t
        .get(
            "/v1/analytics/usage?group_by=direction&granularity=hour",
            &key,
        )
        .await;
    let data = by_direction["data"].as_array().expect("data");
    let outbound: i64 = data
        .iter()
        .filter(|b| b["group"] == "outbound")
        .map(|b| b["calls"].as_i64().unwrap_or(0))
        .sum();
    let inbound: i64 = data
        .iter()
        .filter(|b| b["group"] == "inbound")
        .map(|b| b["messages_in"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!((outbound, inbound), (3, 1));
    assert!(data.iter().all(|b| {
        b["period_start"]
            .as_str()
            .is_some_and(|p| p.ends_with(":00:00Z"))
    }));

    let (_, empty) = t
        .get(
            "/v1/analytics/usage?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
            &key,
        )
        .await;
    assert_eq!(empty["totals"]["calls"], 0);
    assert_eq!(empty["data"], json!([]));
    let live = t.admin_key().await;
    let (_, live_report) = t.get("/v1/analytics/usage", &live).await;
    assert_eq!(
        live_report["totals"]["calls"], 0,
        "live keys see live usage only"
    );
    for q in [
        "granularity=week",
        "group_by=colour",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday",
    ] {
        let (status, err) = t.get(&format!("/v1/analytics/usage?{q}"), &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {err}");
    }
    t.finish().await;
}
