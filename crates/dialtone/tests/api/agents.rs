//! Voice agents: CRUD, validation, pagination, isolation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_isolated};

#[tokio::test]
async fn agents_are_created_read_updated_and_deleted() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, a) = t
        .post(
            "/v1/agents",
            &key,
            json!({"name": "Front desk", "prompt": "Book appointments.", "greeting": "Hello!"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(a["object"], "agent");
    assert_eq!(a["voice"], "default");
    assert_eq!(a["language"], "en-US");
    let id = a["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("agt_"));
    let path = format!("/v1/agents/{id}");
    assert_eq!(t.get(&path, &key).await.1, a);

    let (status, patched) = t
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"language": "fr", "greeting": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["language"], "fr");
    assert_eq!(patched["greeting"], Value::Null);
    assert_eq!(patched["prompt"], "Book appointments.");

    let (status, deleted) = t.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deleted,
        json!({"id": id, "object": "agent", "deleted": true})
    );
    assert_eq!(t.get(&path, &key).await.0, StatusCode::NOT_FOUND);
    t.finish().await;
}

#[tokio::test]
async fn bad_agents_are_refused() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    for body in [
        json!({}),
        json!({"name": " "}),
        json!({"name": "A", "language": "english"}),
        json!({"name": "A", "prompt": "x".repeat(20_001)}),
        json!({"name": "A", "temperature": 0.3}),
        json!({"name": ["A"]}),
    ] {
        let (status, err) = t.post("/v1/agents", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
    }
    let (_, a) = t.post("/v1/agents", &key, json!({"name": "A"})).await;
    let path = format!("/v1/agents/{}", a["id"].as_str().expect("id"));
    let (status, _) = t
        .call(Method::PATCH, &path, Some(&key), Some(json!({"name": ""})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        t.get(&path, &key).await.1["name"],
        "A",
        "a refused patch changes nothing"
    );
    t.finish().await;
}

#[tokio::test]
async fn agents_page_and_stay_in_their_workspace_and_mode() {
    let t = TestApp::spawn().await;
    assert_isolated(&t, "/v1/agents", json!({"name": "Isolated"})).await;
    let key = t.admin_key().await;
    for i in 0..4 {
        t.post("/v1/agents", &key, json!({"name": format!("A{i}")}))
            .await;
    }
    let (_, first) = t.get("/v1/agents?limit=3", &key).await;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(first["meta"]["has_more"], true);
    let cursor = first["meta"]["next_cursor"].as_str().expect("cursor");
    let (_, second) = t
        .get(&format!("/v1/agents?limit=3&cursor={cursor}"), &key)
        .await;
    assert_eq!(second["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(second["meta"]["has_more"], false);
    t.finish().await;
}

fn test_mode(name: &str) -> dialtone_domain::auth::KeyRequest {
    dialtone_domain::auth::KeyRequest {
        name: name.into(),
        mode: Some(dialtone_domain::tenancy::Mode::Test),
        ..Default::default()
    }
}

/// An agent that an active number routes to or a running or paused campaign calls
/// with is not deleted: 409 in the error shape, naming them, and nothing changes. Once
/// the number is routed elsewhere (or released) and the campaign canceled, it is, and
/// the finished campaign keeps its record of it. The dashboard's delete is the same
/// operation.
#[tokio::test]
async fn an_agent_still_used_by_numbers_or_campaigns_is_not_deleted() {
    use crate::dashboard::{page, sign_in, submit, user};
    use dialtone_domain::users::Role;

    // Calls that never progress: the campaign stays running until canceled.
    let t = TestApp::spawn_with(|c| c.simulator_step = std::time::Duration::from_secs(3600)).await;
    let key = t.key(test_mode("test")).await;
    let (_, a) = t.post("/v1/agents", &key, json!({"name": "A"})).await;
    let a = a["id"].as_str().expect("id").to_owned();
    let (_, b) = t.post("/v1/agents", &key, json!({"name": "B"})).await;
    let b = b["id"].as_str().expect("id").to_owned();
    let (status, n) = t
        .post(
            "/v1/phone-numbers",
            &key,
            json!({"area_code": "212", "agent_id": a}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    let n = n["id"].as_str().expect("id").to_owned();
    let (status, c) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "Renewals", "agent_id": a, "recipients": ["+14155550123"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let c = c["id"].as_str().expect("id").to_owned();
    let agent_a = t.get(&format!("/v1/agents/{a}"), &key).await.1;

    let agent_path = format!("/v1/agents/{a}");
    let delete_a = || t.call(Method::DELETE, &agent_path, Some(&key), None);
    let (status, err) = delete_a().await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["statusCode"], 409);
    assert_eq!(err["error"], "CONFLICT");
    assert_eq!(
        err["details"],
        json!({"phone_numbers": [n], "campaigns": [c]})
    );
    let message = err["message"].as_str().expect("message");
    assert!(message.contains(&n) && message.contains(&c), "{message}");
    assert_eq!(t.get(&format!("/v1/agents/{a}"), &key).await.1, agent_a);

    // Paused still counts; the number routed elsewhere no longer does.
    let campaign = format!("/v1/campaigns/{c}");
    let (status, paused) = t
        .call(
            Method::PATCH,
            &campaign,
            Some(&key),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let number = format!("/v1/phone-numbers/{n}");
    let (status, _) = t
        .call(
            Method::PATCH,
            &number,
            Some(&key),
            Some(json!({"agent_id": b})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = delete_a().await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(
        err["details"],
        json!({"phone_numbers": [], "campaigns": [c]})
    );

    let (status, _) = t
        .call(
            Method::PATCH,
            &campaign,
            Some(&key),
            Some(json!({"status": "canceled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, deleted) = delete_a().await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(
        t.get(&format!("/v1/agents/{a}"), &key).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get(&campaign, &key).await.1["agent_id"],
        a.as_str(),
        "history kept"
    );
    // A number cannot be routed to the deleted agent.
    let (status, err) = t
        .call(
            Method::PATCH,
            &number,
            Some(&key),
            Some(json!({"agent_id": a})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    // The dashboard deletes through the same operation: B is routed to by the number.
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let resp = submit(&t, &s, "/dashboard/context", &[("mode", "test")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let delete_b = format!("/dashboard/agents/{b}/delete");
    let resp = submit(&t, &s, &delete_b, &[]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let html = resp.text().await.expect("html");
    assert!(html.contains(&n), "the page names the number: {html}");
    let (status, _) = page(&t, &s.cookie, &format!("/dashboard/agents/{b}")).await;
    assert_eq!(status, StatusCode::OK, "still there");
    // A released number routes nothing.
    let (status, _) = t.call(Method::DELETE, &number, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    let resp = submit(&t, &s, &delete_b, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        t.get(&format!("/v1/agents/{b}"), &key).await.0,
        StatusCode::NOT_FOUND
    );
    t.finish().await;
}

/// Routing a number to an agent while the agent is being deleted: either the routing
/// fails (no such agent) or the deletion does (409); never a number routed to an agent
/// that is gone. Several rounds, concurrently, on each database.
#[tokio::test]
async fn routing_a_number_and_deleting_its_agent_at_once_never_leaves_a_dangling_route() {
    let t = TestApp::spawn().await;
    let key = t.key(test_mode("test")).await;
    let (status, n) = t
        .post("/v1/phone-numbers", &key, json!({"area_code": "212"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    let number = format!("/v1/phone-numbers/{}", n["id"].as_str().expect("id"));
    for round in 0..20 {
        let (_, a) = t.post("/v1/agents", &key, json!({"name": "A"})).await;
        let a = a["id"].as_str().expect("id").to_owned();
        let agent = format!("/v1/agents/{a}");
        let route = t.call(
            Method::PATCH,
            &number,
            Some(&key),
            Some(json!({"agent_id": a})),
        );
        let delete = t.call(Method::DELETE, &agent, Some(&key), None);
        let ((routed, _), (deleted, _)) = tokio::join!(route, delete);
        let routed_to = t.get(&number, &key).await.1["agent_id"].clone();
        let exists = t.get(&agent, &key).await.0 == StatusCode::OK;
        match (routed, deleted) {
            (StatusCode::OK, StatusCode::CONFLICT) => {
                assert_eq!(routed_to, a.as_str(), "round {round}");
                assert!(exists, "round {round}");
            }
            (StatusCode::BAD_REQUEST, StatusCode::OK) => assert!(!exists, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
        if exists {
            t.call(
                Method::PATCH,
                &number,
                Some(&key),
                Some(json!({"agent_id": null})),
            )
            .await;
        }
    }
    t.finish().await;
}
