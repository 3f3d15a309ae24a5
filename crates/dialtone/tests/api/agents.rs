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
