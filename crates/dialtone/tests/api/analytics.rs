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
        api_key_id: None,
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

    // Whole hours only (the current one included: `to` is the next hour's start), so
    // all of it comes from the rollup kept current by each change: the same answer.
    let hour = |t: chrono::DateTime<chrono::Utc>| {
        use chrono::DurationRound;
        t.duration_trunc(chrono::TimeDelta::hours(1))
            .expect("hour")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let now = chrono::Utc::now();
    let (_, rolled) = t
        .get(
            &format!(
                "/v1/analytics/usage?from={}&to={}",
                hour(now - chrono::TimeDelta::hours(3)),
                hour(now + chrono::TimeDelta::hours(1))
            ),
            &key,
        )
        .await;
    for field in [
        "calls",
        "answered",
        "missed",
        "minutes",
        "messages_in",
        "messages_out",
        "cost",
    ] {
        assert_eq!(
            rolled["totals"][field], report["totals"][field],
            "{field}: {rolled}"
        );
    }

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

/// A quarter of a year of calls written in bulk (`dialtone demo`): the report, read
/// mostly from the rollup, is exactly what the calls themselves add up to.
#[tokio::test]
async fn the_rollup_agrees_with_the_calls_it_sums() {
    let t = TestApp::spawn().await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    t.store
        .scoped(&scope)
        .demo(20, 400, |_, _| {})
        .await
        .expect("demo");
    // An odd range: partial hours at both ends come from the calls themselves.
    let to = chrono::Utc::now() - chrono::TimeDelta::minutes(17);
    let from = to - chrono::TimeDelta::days(61) + chrono::TimeDelta::seconds(7);
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, report) = t
        .get(
            &format!("/v1/analytics/usage?from={}&to={}", stamp(from), stamp(to)),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    // What the calls say, page by page.
    let (mut calls, mut answered, mut missed, mut minutes) = (0, 0, 0, 0);
    let mut cursor = String::new();
    loop {
        let (_, page) = t.get(&format!("/v1/calls?limit=100{cursor}"), &key).await;
        for c in page["data"].as_array().expect("calls") {
            let created: chrono::DateTime<chrono::Utc> = c["created_at"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("created_at");
            if created < from || created >= to {
                continue;
            }
            calls += 1;
            answered += i64::from(!c["answered_at"].is_null());
            missed += i64::from(matches!(
                c["status"].as_str(),
                Some("busy" | "no_answer" | "failed" | "canceled")
            ));
            minutes += (c["duration_seconds"].as_i64().expect("duration") + 59) / 60;
        }
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(
        calls > 200,
        "most of the demo's 90 days are in range: {calls}"
    );
    let totals = &report["totals"];
    assert_eq!(
        (
            &totals["calls"],
            &totals["answered"],
            &totals["missed"],
            &totals["minutes"]
        ),
        (
            &json!(calls),
            &json!(answered),
            &json!(missed),
            &json!(minutes)
        ),
        "{totals}"
    );
    t.finish().await;
}

/// A heavy read over its time budget is stopped and answered 503 `QUERY_TIMEOUT`;
/// within budget the same request answers.
#[tokio::test]
async fn a_read_over_its_time_budget_is_stopped_with_a_clear_error() {
    let t = TestApp::spawn().await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    };
    t.store
        .scoped(&scope)
        .demo(30_000, 1, |_, _| {})
        .await
        .expect("demo");
    // A search no index serves: it reads all 30,000 contacts.
    let search = "/v1/contacts?search=no-such-person-anywhere";
    t.store
        .set_query_budget(std::time::Duration::from_millis(1));
    let (status, err) = t.get(search, &key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"], "QUERY_TIMEOUT");
    let (status, _) = t.get("/v1/contacts?limit=5", &key).await;
    assert_eq!(status, StatusCode::OK, "light reads have no such budget");
    t.store
        .set_query_budget(dialtone_store::DEFAULT_QUERY_BUDGET);
    let (status, found) = t.get(search, &key).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["data"], json!([]));
    t.finish().await;
}
