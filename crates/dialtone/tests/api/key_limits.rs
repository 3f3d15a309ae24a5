//! Per-key limits (issue 15, part 2): set on creation and by `PATCH`, shown on keys,
//! narrowed only, enforced when a call, campaign call or message is placed — under
//! concurrency and across two nodes on PostgreSQL — in test mode as in live mode,
//! with `api_key.limit_reached` once per key and day, and organization defaults.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::limits::KeyLimits;
use dialtone_domain::tenancy::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, is_terminal, pg_url, wait_for_call, with_database};

const US: &str = "+14155550123";
const GB: &str = "+442071838750";
const FR: &str = "+33142685300";
const DE: &str = "+4930901820";
const CA: &str = "+14165550100";

fn limits(v: Value) -> Option<KeyLimits> {
    Some(serde_json::from_value(v).expect("limits"))
}

/// A test key (full access) with these limits, made by an operator.
async fn limited_test_key(t: &TestApp, l: Value) -> String {
    t.key(KeyRequest {
        name: "limited".into(),
        mode: Some(Mode::Test),
        limits: limits(l),
        ..Default::default()
    })
    .await
}

/// A server whose simulated calls stay queued for a minute: calls stay "in
/// progress" for the length of a test.
async fn slow_calls() -> TestApp {
    TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(60)).await
}

fn assert_refused(status: StatusCode, body: &Value, limit: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["statusCode"], 403);
    assert_eq!(body["error"], "KEY_LIMIT_EXCEEDED", "{body}");
    assert_eq!(body["details"]["limit"], limit, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn limits_are_set_on_creation_shown_changed_by_patch_and_validated() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let (status, created) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "dialer", "limits": {"max_concurrent_calls": 2,
                   "allowed_destination_countries": ["us", "GB"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["limits"],
        json!({"max_concurrent_calls": 2, "max_call_minutes_per_day": null,
               "max_messages_per_day": null, "max_spend_cents_per_day": null,
               "allowed_destination_countries": ["GB", "US"]})
    );
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/api-keys/{id}");
    let (_, got) = t.get(&path, &admin).await;
    assert_eq!(got["limits"], created["limits"]);
    let (_, list) = t.get("/v1/api-keys", &admin).await;
    let listed = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(listed["limits"], created["limits"]);

    // PATCH renames and replaces the limits whole.
    let (status, patched) = t
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"name": "dialer v2", "limits": {"max_messages_per_day": 10}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "dialer v2");
    assert_eq!(patched["limits"]["max_messages_per_day"], 10);
    assert_eq!(patched["limits"]["max_concurrent_calls"], Value::Null);
    assert_eq!(patched["permissions"], created["permissions"]);
    let audit = t.store.list_audit(&t.org.id, 50).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "api_key.updated" && e.target == id),
        "audited"
    );

    // Each bad input: 400 in the spec's shape, naming the field; nothing changes.
    for (body, field) in [
        (
            json!({"limits": {"max_concurrent_calls": -1}}),
            Some("limits.max_concurrent_calls"),
        ),
        (
            json!({"limits": {"max_spend_cents_per_day": -5}}),
            Some("limits.max_spend_cents_per_day"),
        ),
        (
            json!({"limits": {"allowed_destination_countries": ["XX"]}}),
            Some("limits.allowed_destination_countries"),
        ),
        (
            json!({"limits": {"allowed_destination_countries": ["USA"]}}),
            Some("limits.allowed_destination_countries"),
        ),
        (json!({"limits": {"max_calls": 3}}), None),
        (json!({"permissions": ["contacts:read"]}), None),
        (json!({"limits": {"max_concurrent_calls": "many"}}), None),
        (json!({"name": "  "}), Some("name")),
    ] {
        let (status, err) = t
            .call(Method::PATCH, &path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["statusCode"], 400);
        assert_eq!(err["error"], "VALIDATION_ERROR");
        if let Some(field) = field {
            assert!(
                err["details"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["field"] == field)),
                "{body}: {err}"
            );
        }
    }
    let (_, after) = t.get(&path, &admin).await;
    assert_eq!(after["limits"], patched["limits"]);
    // Creation validates the same way.
    let (status, err) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "x", "limits": {"max_messages_per_day": -1}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    // A missing key is a 404; a revoked one cannot change (409).
    let (status, _) = t
        .call(
            Method::PATCH,
            "/v1/api-keys/key_01jd5x7c2m8n4p6q8r0s2t4v6w",
            Some(&admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.call(Method::DELETE, &path, Some(&admin), None).await;
    let (status, _) = t
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    t.finish().await;
}

#[tokio::test]
async fn a_key_only_narrows_its_own_limits_and_gives_at_most_its_own() {
    let t = TestApp::spawn().await;
    let own = json!({"max_concurrent_calls": 2, "max_messages_per_day": 50,
                     "allowed_destination_countries": ["US", "CA"]});
    let created = t
        .create_key(KeyRequest {
            name: "parent".into(),
            limits: limits(own.clone()),
            ..Default::default()
        })
        .await;
    let parent = secrecy::ExposeSecret::expose_secret(&created.secret).to_owned();
    let me = format!("/v1/api-keys/{}", created.key.id);

    // Wider than itself: refused, the limits unchanged.
    for wider in [
        json!({"max_concurrent_calls": 3, "max_messages_per_day": 50,
               "allowed_destination_countries": ["US", "CA"]}),
        json!({"max_concurrent_calls": 2, "max_messages_per_day": 50,
               "allowed_destination_countries": ["US", "CA", "FR"]}),
        json!({"max_concurrent_calls": 2, "allowed_destination_countries": ["US"]}),
        json!({}),
    ] {
        let (status, err) = t
            .call(
                Method::PATCH,
                &me,
                Some(&parent),
                Some(json!({ "limits": wider })),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{wider}: {err}");
        assert_eq!(err["error"], "INSUFFICIENT_PERMISSIONS");
    }
    let (_, unchanged) = t.get(&me, &parent).await;
    assert_eq!(unchanged["limits"]["max_concurrent_calls"], 2);
    // Narrower: fine, and the narrower limits hold from then on.
    let (status, narrowed) = t
        .call(
            Method::PATCH,
            &me,
            Some(&parent),
            Some(
                json!({"limits": {"max_concurrent_calls": 1, "max_messages_per_day": 50,
                                   "allowed_destination_countries": ["US"]}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let (status, err) = t
        .call(
            Method::PATCH,
            &me,
            Some(&parent),
            Some(
                json!({"limits": {"max_concurrent_calls": 2, "max_messages_per_day": 50,
                                   "allowed_destination_countries": ["US"]}}),
            ),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "back to 2 is widening: {err}"
    );

    // A child wider than the parent: refused; none asked: the parent's own.
    let (status, err) = t
        .post(
            "/v1/api-keys",
            &parent,
            json!({"name": "child", "limits": {"max_concurrent_calls": 5,
                   "max_messages_per_day": 50, "allowed_destination_countries": ["US"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let (status, err) = t
        .post(
            "/v1/api-keys",
            &parent,
            json!({"name": "child", "limits": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no limits is wider: {err}");
    let (status, child) = t
        .post("/v1/api-keys", &parent, json!({"name": "child"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert_eq!(child["limits"], narrowed["limits"]);
    let (status, narrower_child) = t
        .post(
            "/v1/api-keys",
            &parent,
            json!({"name": "child 2", "limits": {"max_concurrent_calls": 0,
                   "max_messages_per_day": 3, "max_spend_cents_per_day": 10,
                   "allowed_destination_countries": ["US"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{narrower_child}");
    // Nor may it widen a key it manages beyond its own.
    let child_path = format!("/v1/api-keys/{}", child["id"].as_str().expect("id"));
    let (status, _) = t
        .call(
            Method::PATCH,
            &child_path,
            Some(&parent),
            Some(json!({"limits": {"max_concurrent_calls": 9}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An operator's key (no limits) may widen it.
    let admin = t.admin_key().await;
    let (status, widened) = t
        .call(
            Method::PATCH,
            &me,
            Some(&admin),
            Some(json!({"limits": {"max_concurrent_calls": 9}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{widened}");
    assert_eq!(widened["limits"]["max_concurrent_calls"], 9);
    t.finish().await;
}

/// Fires `n` calls at once, spread over `urls`, and counts the answers.
async fn burst(urls: &[String], key: &str, n: usize) -> (usize, Vec<Value>) {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("{}/v1/calls", urls[i % urls.len()]);
        let client = client.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "to": US }))
                .send()
                .await
                .expect("request");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("json"))
        }));
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            StatusCode::CREATED => ok += 1,
            _ => refused.push(body),
        }
    }
    (ok, refused)
}

#[tokio::test]
async fn twenty_concurrent_calls_with_max_concurrent_calls_three_place_exactly_three() {
    let t = slow_calls().await;
    let key = limited_test_key(&t, json!({"max_concurrent_calls": 3})).await;
    let (ok, refused) = burst(std::slice::from_ref(&t.url), &key, 20).await;
    assert_eq!(ok, 3, "{refused:?}");
    assert_eq!(refused.len(), 17);
    for body in &refused {
        assert_eq!(body["error"], "KEY_LIMIT_EXCEEDED", "{body}");
        assert_eq!(
            body["details"],
            json!({"limit": "max_concurrent_calls", "value": 3, "current": 3})
        );
    }
    // Another key of the organization is not held back by this one's limit.
    let other = limited_test_key(&t, json!({"max_concurrent_calls": 1})).await;
    let (status, call) = t.post("/v1/calls", &other, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    t.finish().await;
}

#[tokio::test]
async fn a_call_that_ends_frees_its_slot() {
    let t = TestApp::spawn().await;
    let key = limited_test_key(&t, json!({"max_concurrent_calls": 1})).await;
    let (status, call) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_concurrent_calls");
    wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
    let (status, next) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    t.finish().await;
}

#[tokio::test]
async fn twenty_calls_over_two_nodes_on_postgresql_place_exactly_the_limit() {
    if pg_url().is_none() {
        return;
    }
    let t = slow_calls().await;
    let TestDb::Postgres { admin_url, name } = &t.db else {
        return;
    };
    let second_store = dialtone_store::Store::open_postgres(&with_database(admin_url, name))
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, second_store.clone(), t.config.clone())
        .await
        .expect("node b");
    let urls = [t.url.clone(), format!("http://{}", b.addr)];
    let key = limited_test_key(&t, json!({"max_concurrent_calls": 4})).await;
    let (ok, refused) = burst(&urls, &key, 20).await;
    assert_eq!(ok, 4, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|b| b["details"]["limit"] == "max_concurrent_calls"),
        "{refused:?}"
    );
    b.shutdown().await;
    second_store.close().await;
    t.finish().await;
}

#[tokio::test]
async fn destination_countries_are_decided_from_the_number() {
    let t = TestApp::spawn().await;
    let key = limited_test_key(
        &t,
        json!({"allowed_destination_countries": ["US", "GB", "DE"]}),
    )
    .await;
    for (to, allowed, country) in [
        (US, true, "US"),
        (GB, true, "GB"),
        (DE, true, "DE"),
        (FR, false, "FR"),
        (CA, false, "CA"),
        ("+81312345678", false, "JP"),
    ] {
        let (status, body) = t.post("/v1/calls", &key, json!({ "to": to })).await;
        if allowed {
            assert_eq!(status, StatusCode::CREATED, "{to}: {body}");
        } else {
            assert_refused(status, &body, "allowed_destination_countries");
            assert_eq!(body["details"]["current"], country, "{to}");
            assert_eq!(body["details"]["value"], json!(["DE", "GB", "US"]));
        }
        let (status, body) = t
            .post("/v1/messages", &key, json!({ "to": to, "body": "hello" }))
            .await;
        if allowed {
            assert_eq!(status, StatusCode::CREATED, "{to}: {body}");
        } else {
            assert_refused(status, &body, "allowed_destination_countries");
        }
    }
    // Nothing refused was stored.
    let (_, calls) = t.get("/v1/calls?limit=100", &key).await;
    assert_eq!(calls["data"].as_array().map(Vec::len), Some(3));
    t.finish().await;
}

#[tokio::test]
async fn daily_limits_hold_at_their_edge() {
    let t = TestApp::spawn().await;
    // Messages: the second goes through, the third does not.
    let key = limited_test_key(&t, json!({"max_messages_per_day": 2})).await;
    for _ in 0..2 {
        let (status, body) = t
            .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_refused(status, &body, "max_messages_per_day");
    assert_eq!(body["details"]["value"], 2);
    assert_eq!(body["details"]["current"], 2);

    // Minutes: one minute a day. The first call may last at most a minute; while it
    // runs (its minute reserved) and after (its minute billed) no second call.
    let key = limited_test_key(&t, json!({"max_call_minutes_per_day": 1})).await;
    let (status, call) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_call_minutes_per_day");
    assert_eq!(body["details"]["current"], 1);
    let ended = wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
    assert!(
        ended["duration_seconds"].as_i64().is_some_and(|d| d <= 60),
        "capped at the minute left: {ended}"
    );
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_call_minutes_per_day");

    // Spend: 3 cents. A call reserves a minute (2 cents); a one-segment message (1
    // cent) still fits; the next message does not, nor does a second call.
    let key = limited_test_key(&t, json!({"max_spend_cents_per_day": 3})).await;
    let (status, call) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_refused(status, &body, "max_spend_cents_per_day");
    assert_eq!(body["details"]["current"], 3);
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_spend_cents_per_day");
    // A large budget is shared: each running call reserves at most an hour of it.
    let key = limited_test_key(&t, json!({"max_call_minutes_per_day": 150})).await;
    for _ in 0..2 {
        let (status, call) = t.post("/v1/calls", &key, json!({ "to": US })).await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
    }
    // A zero limit refuses the very first.
    let key = limited_test_key(&t, json!({"max_concurrent_calls": 0})).await;
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_concurrent_calls");
    t.finish().await;
}

#[tokio::test]
async fn live_keys_are_limited_exactly_like_test_keys() {
    let t = TestApp::spawn_with(|c| {
        c.carrier = dialtone_api::config::CarrierChoice::Simulator;
    })
    .await;
    let admin = t.admin_key().await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let (status, number) = t.post("/v1/phone-numbers", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{number}");
    let (_, created) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "live dialer", "mode": "live",
                   "limits": {"max_messages_per_day": 1, "allowed_destination_countries": ["US"]}}),
        )
        .await;
    let key = created["secret"].as_str().expect("secret").to_owned();
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": FR, "body": "hi"}))
        .await;
    assert_refused(status, &body, "allowed_destination_countries");
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_refused(status, &body, "max_messages_per_day");
    // A live call under a one-minute limit is charged at most that minute.
    let (_, created) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "live caller", "mode": "live", "limits": {"max_call_minutes_per_day": 1}}),
        )
        .await;
    let key = created["secret"].as_str().expect("secret").to_owned();
    let (status, call) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let (status, body) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_refused(status, &body, "max_call_minutes_per_day");
    let done = wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
    assert!(
        done["duration_seconds"].as_i64().is_some_and(|d| d <= 60),
        "{done}"
    );
    assert!(done["cost"].as_i64().is_some_and(|c| c <= 2), "{done}");
    t.finish().await;
}

#[tokio::test]
async fn the_first_refusal_of_a_day_emits_api_key_limit_reached_once() {
    let t = slow_calls().await;
    let key = limited_test_key(&t, json!({"max_concurrent_calls": 1})).await;
    let (status, _) = t.post("/v1/calls", &key, json!({ "to": US })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (ok, refused) = burst(std::slice::from_ref(&t.url), &key, 6).await;
    assert_eq!((ok, refused.len()), (0, 6));
    let (status, body) = t
        .post("/v1/messages", &key, json!({"to": US, "body": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "no message limit: {body}");
    let (status, events) = t.get("/v1/events?type=api_key.limit_reached", &key).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let events = events["data"].as_array().expect("data").clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let object = &events[0]["data"]["object"];
    assert_eq!(object["object"], "api_key_limit");
    assert_eq!(object["limit"], "max_concurrent_calls");
    assert_eq!(object["value"], 1);
    assert_eq!(object["current"], 1);
    assert_eq!(events[0]["livemode"], false);
    let audit = t.store.list_audit(&t.org.id, 100).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "api_key.limit_reached")
            .count(),
        1
    );
    // It is one of the documented event types.
    let (_, types) = t.get("/v1/event-types", &key).await;
    assert!(
        types["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|e| e["name"] == "api_key.limit_reached"),
        "{types}"
    );
    t.finish().await;
}

#[tokio::test]
async fn campaign_calls_obey_the_limits_of_the_key_that_created_the_campaign() {
    let t = TestApp::spawn().await;
    // One minute a day: the campaign places one call, then pauses.
    let key = limited_test_key(
        &t,
        json!({"max_call_minutes_per_day": 1, "allowed_destination_countries": ["US"]}),
    )
    .await;
    let (_, agent) = t
        .post("/v1/agents", &key, json!({"name": "Renewals"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id");
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "renewals", "agent_id": agent_id,
                   "recipients": ["+14155550123", "+14155550124", "+14155550125"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().expect("id").to_owned();
    let paused = wait_campaign(&t, &key, &id, |c| c["status"] == "paused").await;
    assert_eq!(paused["status_reason"], "key_limit_exceeded");
    let (_, calls) = t.get(&format!("/v1/campaigns/{id}/calls"), &key).await;
    assert_eq!(calls["data"].as_array().map(Vec::len), Some(1), "{calls}");

    // A destination the key may not call: paused before any call.
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &limited_test_key(&t, json!({"allowed_destination_countries": ["US"]})).await,
            json!({"name": "abroad", "agent_id": agent_id, "recipients": [FR]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().expect("id").to_owned();
    let paused = wait_campaign(&t, &key, &id, |c| c["status"] == "paused").await;
    assert_eq!(paused["status_reason"], "key_limit_exceeded");
    assert_eq!(paused["progress"]["pending"], 1);

    // Concurrency: a campaign of four with one call at a time still calls everyone.
    let one = limited_test_key(&t, json!({"max_concurrent_calls": 1})).await;
    let (_, agent) = t.post("/v1/agents", &one, json!({"name": "One"})).await;
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &one,
            json!({"name": "one at a time", "agent_id": agent["id"],
                   "recipients": ["+14155550131", "+14155550132", "+14155550133", "+14155550134"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().expect("id").to_owned();
    let mut most = 0;
    let started = std::time::Instant::now();
    loop {
        let (_, c) = t.get(&format!("/v1/campaigns/{id}"), &one).await;
        most = most.max(c["progress"]["in_progress"].as_i64().unwrap_or(0));
        if c["status"] == "completed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{c}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(most <= 1, "{most} calls at once");
    t.finish().await;
}

async fn wait_campaign(t: &TestApp, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, c) = t.get(&format!("/v1/campaigns/{id}"), key).await;
        if done(&c) {
            return c;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{c}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn organization_defaults_apply_to_new_live_keys_without_limits() {
    let t = TestApp::spawn().await;
    // Made before the defaults: an unlimited operator's key.
    let admin = t.admin_key().await;
    let defaults =
        limits(json!({"max_concurrent_calls": 5, "allowed_destination_countries": ["US"]}))
            .expect("limits");
    t.store
        .set_org_key_limits(&t.org.id, &defaults, "cli")
        .await
        .expect("set");
    let (_, live) = t
        .post("/v1/api-keys", &admin, json!({"name": "live"}))
        .await;
    assert_eq!(live["limits"]["max_concurrent_calls"], 5);
    assert_eq!(
        live["limits"]["allowed_destination_countries"],
        json!(["US"])
    );
    let (_, test) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "test", "mode": "test"}),
        )
        .await;
    assert_eq!(test["limits"]["max_concurrent_calls"], Value::Null);
    let (_, explicit) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "explicit", "limits": {"max_messages_per_day": 7}}),
        )
        .await;
    assert_eq!(explicit["limits"]["max_messages_per_day"], 7);
    assert_eq!(explicit["limits"]["max_concurrent_calls"], Value::Null);
    // A key made under the defaults passes them on: its children are within them.
    let limited = secrecy::ExposeSecret::expose_secret(
        &t.create_key(KeyRequest {
            name: "operator-made".into(),
            ..Default::default()
        })
        .await
        .secret,
    )
    .to_owned();
    let (status, child) = t
        .post(
            "/v1/api-keys",
            &limited,
            json!({"name": "child", "mode": "test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert_eq!(child["limits"]["max_concurrent_calls"], 5);
    t.finish().await;
}
