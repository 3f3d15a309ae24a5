//! Calls: the simulator's lifecycle and magic numbers, events, transcripts,
//! recordings with signed media, hang-up, money in live mode, idempotency, filters,
//! conversations and isolation.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_isolated, is_terminal, wait_for_call};

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

fn test_scope(t: &TestApp) -> Scope {
    Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    }
}

async fn event_types(t: &TestApp, scope: &Scope) -> Vec<(String, Value)> {
    let page = PageRequest::new(Some(100), None).expect("page");
    let mut events = t
        .store
        .scoped(scope)
        .list_events(None, &page)
        .await
        .expect("events");
    events.reverse();
    events
        .into_iter()
        .map(|e| (e.event_type, e.data.object))
        .collect()
}

#[tokio::test]
async fn a_test_call_runs_its_whole_lifecycle_with_events_transcript_and_recording() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (_, contact) = t
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "Ada", "phone_number": "+14155550123"}),
        )
        .await;
    let (status, call) = t
        .post(
            "/v1/calls",
            &key,
            json!({"to": "+14155550123", "metadata": {"ticket": "T-1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    assert_eq!(call["object"], "call");
    assert_eq!(call["status"], "queued");
    assert_eq!(call["livemode"], false);
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["from"], "+15005550006");
    assert_eq!(call["contact_id"], contact["id"]);
    assert_eq!(call["metadata"]["ticket"], "T-1");
    let id = call["id"].as_str().expect("id").to_owned();

    let done = wait_for_call(&t, &key, &id, is_terminal).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "completed");
    let duration = done["duration_seconds"].as_i64().expect("duration");
    assert!((20..=240).contains(&duration), "{duration}");
    assert_eq!(done["cost"], 0, "test calls are free");
    for field in ["started_at", "answered_at", "ended_at"] {
        assert!(done[field].is_string(), "{field} missing: {done}");
    }

    let types: Vec<String> = event_types(&t, &test_scope(&t))
        .await
        .into_iter()
        .map(|(ty, _)| ty)
        .filter(|ty| ty.starts_with("call."))
        .collect();
    assert_eq!(
        types,
        [
            "call.queued",
            "call.ringing",
            "call.started",
            "call.completed",
            "call.transcript.ready",
            "call.recording.ready"
        ]
    );

    let (status, transcript) = t.get(&format!("/v1/calls/{id}/transcript"), &key).await;
    assert_eq!(status, StatusCode::OK, "{transcript}");
    assert!(
        transcript["segments"]
            .as_array()
            .is_some_and(|s| s.len() > 3)
    );

    let (_, recordings) = t.get(&format!("/v1/recordings?call_id={id}"), &key).await;
    let rec = &recordings["data"][0];
    assert_eq!(rec["call_id"], id.as_str());
    assert_eq!(rec["duration_seconds"], duration);
    let url = rec["media_url"].as_str().expect("media_url").to_owned();
    let (status, fetched) = t
        .get(
            &format!("/v1/recordings/{}", rec["id"].as_str().expect("id")),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(fetched["media_url"].is_string());
    // The link works without a key; the audio is a real WAV as long as the call.
    let audio = t.client.get(&url).send().await.expect("media");
    assert_eq!(audio.status(), StatusCode::OK);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let bytes = audio.bytes().await.expect("bytes");
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(bytes.len() as i64, 44 + duration * 8_000 * 2);
    // Another workspace, or live mode, sees none of it.
    let ws = t
        .store
        .create_workspace(&t.org.id, "Other")
        .await
        .expect("workspace");
    let other = t
        .key(KeyRequest {
            name: "other".into(),
            mode: Some(Mode::Test),
            workspace_id: Some(ws.id),
            ..Default::default()
        })
        .await;
    let live = t.admin_key().await;
    let rec_id = rec["id"].as_str().expect("id");
    let conv_id = done["conversation_id"].as_str().expect("conversation");
    for k in [&other, &live] {
        for path in [
            format!("/v1/calls/{id}"),
            format!("/v1/calls/{id}/transcript"),
            format!("/v1/recordings/{rec_id}"),
            format!("/v1/conversations/{conv_id}"),
            format!("/v1/conversations/{conv_id}/messages"),
            format!("/v1/conversations/{conv_id}/notes"),
        ] {
            assert_eq!(t.get(&path, k).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let tampered = url.replace("signature=", "signature=0");
    assert_eq!(
        t.client
            .get(&tampered)
            .send()
            .await
            .expect("media")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = url.replace("expires=", "expires=1");
    assert_eq!(
        t.client.get(&expired).send().await.expect("media").status(),
        StatusCode::UNAUTHORIZED
    );
    t.finish().await;
}

#[tokio::test]
async fn magic_numbers_end_busy_unanswered_or_failed() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    for (number, status) in [
        ("+15005550001", "busy"),
        ("+15005550002", "no_answer"),
        ("+15005550003", "failed"),
    ] {
        let (_, call) = t.post("/v1/calls", &key, json!({"to": number})).await;
        let id = call["id"].as_str().expect("id").to_owned();
        let done = wait_for_call(&t, &key, &id, is_terminal).await;
        assert_eq!(done["status"], status);
        assert_eq!(done["end_reason"], status);
        assert_eq!(done["duration_seconds"], 0);
        assert!(done["answered_at"].is_null());
        assert_eq!(
            t.get(&format!("/v1/calls/{id}/transcript"), &key).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let events = event_types(&t, &test_scope(&t)).await;
    let failed: Vec<&str> = events
        .iter()
        .filter(|(ty, _)| ty == "call.failed")
        .filter_map(|(_, o)| o["status"].as_str())
        .collect();
    assert_eq!(failed, ["busy", "no_answer", "failed"]);
    t.finish().await;
}

#[tokio::test]
async fn a_hangup_cancels_an_unanswered_call_and_only_once() {
    let t = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    let key = test_key(&t).await;
    let (_, call) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    let path = format!("/v1/calls/{}/hangup", call["id"].as_str().expect("id"));
    let (status, ended) = t.call(Method::POST, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "canceled");
    assert_eq!(ended["end_reason"], "hangup_api");
    let (status, err) = t.call(Method::POST, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "CONFLICT");
    t.finish().await;
}

#[tokio::test]
async fn live_calls_need_money_and_a_carrier_and_are_charged_by_the_minute() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, err) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{err}");
    assert_eq!(err["error"], "INSUFFICIENT_BALANCE");
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let (status, err) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"], "CARRIER_UNAVAILABLE");
    let (_, list) = t.get("/v1/calls", &key).await;
    assert_eq!(list["data"], json!([]), "nothing was placed");
    t.finish().await;

    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    let key = t.admin_key().await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let (status, err) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no number to call from: {err}"
    );
    let (_, number) = t.post("/v1/phone-numbers", &key, json!({})).await;
    let (status, call) = t
        .post("/v1/calls", &key, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    assert_eq!(call["from"], number["number"]);
    assert_eq!(call["phone_number_id"], number["id"]);
    let id = call["id"].as_str().expect("id");
    let done = wait_for_call(&t, &key, id, is_terminal).await;
    let duration = done["duration_seconds"].as_i64().expect("duration");
    let cost = ((duration + 59) / 60) * 2;
    assert_eq!(done["cost"], cost);
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(wallet["balance"], 1000 - 115 - cost);
    t.finish().await;
}

#[tokio::test]
async fn an_idempotent_call_is_placed_once() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let send = || {
        t.client
            .post(format!("{}/v1/calls", t.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", "call-1")
            .json(&json!({"to": "+14155550123"}))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    let again = send().await.expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(again.headers().contains_key("idempotent-replayed"));
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    let (_, list) = t.get("/v1/calls", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    t.finish().await;
}

#[tokio::test]
async fn calls_are_filtered_paged_and_threaded_into_conversations() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let mut ids = Vec::new();
    for to in [
        "+14155550123",
        "+14155550123",
        "+15005550001",
        "+442071838750",
    ] {
        let (_, call) = t.post("/v1/calls", &key, json!({"to": to})).await;
        ids.push(call["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        wait_for_call(&t, &key, id, is_terminal).await;
    }
    let count = |v: &Value| v["data"].as_array().map_or(0, Vec::len);
    let (_, busy) = t.get("/v1/calls?status=busy", &key).await;
    assert_eq!(count(&busy), 1);
    let (_, to) = t.get("/v1/calls?to=%2B14155550123", &key).await;
    assert_eq!(count(&to), 2);
    let (_, long) = t.get("/v1/calls?duration_min=1", &key).await;
    assert_eq!(count(&long), 3);
    let (_, outbound) = t.get("/v1/calls?direction=outbound&limit=2", &key).await;
    assert_eq!(count(&outbound), 2);
    assert_eq!(outbound["meta"]["has_more"], true);
    let (_, later) = t
        .get(
            "/v1/calls?created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z",
            &key,
        )
        .await;
    assert_eq!(count(&later), 4);
    let (_, none) = t
        .get("/v1/calls?started_after=2999-01-01T00:00:00Z", &key)
        .await;
    assert_eq!(count(&none), 0);
    let (_, logs) = t.get("/v1/call-logs", &key).await;
    let (_, calls) = t.get("/v1/calls", &key).await;
    assert_eq!(logs, calls);
    assert_eq!(
        t.get(&format!("/v1/call-logs/{}", ids[0]), &key).await.0,
        StatusCode::OK
    );
    for q in [
        "status=ringing_loudly",
        "direction=sideways",
        "created_after=yesterday",
        "duration_min=x",
        "colour=red",
    ] {
        let (status, err) = t.get(&format!("/v1/calls?{q}"), &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {err}");
    }

    let (_, convs) = t.get("/v1/conversations", &key).await;
    assert_eq!(
        count(&convs),
        3,
        "one conversation per number called: {convs}"
    );
    // Most recently active first, and the same order page by page.
    let order: Vec<&str> = convs["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["participant"].as_str())
        .collect();
    assert_eq!(order, ["+442071838750", "+15005550001", "+14155550123"]);
    let mut paged = Vec::new();
    let mut path = "/v1/conversations?limit=1".to_owned();
    loop {
        let (status, page) = t.get(&path, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.push(
            page["data"][0]["participant"]
                .as_str()
                .expect("participant")
                .to_owned(),
        );
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/conversations?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, order);
    let (_, first) = t.get(&format!("/v1/calls/{}", ids[0]), &key).await;
    let (_, second) = t.get(&format!("/v1/calls/{}", ids[1]), &key).await;
    assert_eq!(first["conversation_id"], second["conversation_id"]);
    let (status, conv) = t
        .get(
            &format!(
                "/v1/conversations/{}",
                first["conversation_id"].as_str().expect("id")
            ),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(conv["participant"], "+14155550123");
    assert_eq!(conv["phone_number"], "+15005550006");
    t.finish().await;
}

#[tokio::test]
async fn bad_calls_are_refused_and_calls_stay_in_their_workspace_and_mode() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    for body in [
        json!({}),
        json!({"to": "555"}),
        json!({"to": "+14155550123", "from": "+19995550000"}),
        json!({"to": "+14155550123", "agent_id": "agt_nope"}),
        json!({"to": "+14155550123", "agent_id": dialtone_domain::id::new_id("agt")}),
        json!({"to": "+14155550123", "metadata": {"deep": {"x": 1}}}),
        json!({"to": "+14155550123", "priority": "high"}),
    ] {
        let (status, err) = t.post("/v1/calls", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
    }
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    t.finish().await;

    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "credit")
        .await
        .expect("credit");
    let admin = t.admin_key().await;
    t.post("/v1/phone-numbers", &admin, json!({})).await;
    let call = assert_isolated(&t, "/v1/calls", json!({"to": "+15005550001"})).await;
    wait_for_call(&t, &admin, call["id"].as_str().expect("id"), is_terminal).await;
    t.finish().await;
}
