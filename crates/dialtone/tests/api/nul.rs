//! NUL characters (`\u0000`, `%00`): PostgreSQL cannot store them in text, SQLite
//! can; both answer the same 400 `VALIDATION_ERROR` naming the field, and store nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn nul_characters_are_refused_with_the_field_named() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, contact) = t
        .post("/v1/contacts", &key, json!({"first_name": "Ada"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact = format!("/v1/contacts/{}", contact["id"].as_str().expect("id"));
    let (status, agent) = t.post("/v1/agents", &key, json!({"name": "Ava"})).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = format!("/v1/agents/{}", agent["id"].as_str().expect("id"));

    let cases = [
        (
            Method::POST,
            "/v1/contacts".to_owned(),
            json!({"first_name": "A\u{0}da"}),
            "first_name",
        ),
        (
            Method::POST,
            "/v1/contacts".to_owned(),
            json!({"first_name": "Ada", "custom_fields": {"ti\u{0}er": "gold"}}),
            "custom_fields",
        ),
        (
            Method::POST,
            "/v1/contacts".to_owned(),
            json!({"first_name": "Ada", "custom_fields": {"tier": "go\u{0}ld"}}),
            "custom_fields.tier",
        ),
        (
            Method::PATCH,
            contact.clone(),
            json!({"company": "\u{0}"}),
            "company",
        ),
        (
            Method::POST,
            "/v1/agents".to_owned(),
            json!({"name": "Av\u{0}a"}),
            "name",
        ),
        (
            Method::PATCH,
            agent.clone(),
            json!({"name": "Av\u{0}a"}),
            "name",
        ),
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            json!({"url": "https://example.com/hook", "events": ["*"], "description": "d\u{0}"}),
            "description",
        ),
        (
            Method::POST,
            "/v1/webhooks".to_owned(),
            json!({"url": "https://example.com/hook", "events": ["*", "call.\u{0}"]}),
            "events[1]",
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            json!({"name": "k\u{0}"}),
            "name",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = t
            .call(method.clone(), &path, Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["statusCode"], 400, "{answer}");
        assert_eq!(answer["error"], "VALIDATION_ERROR", "{answer}");
        assert_eq!(
            answer["details"][0]["field"], field,
            "{method} {path}: {answer}"
        );
        assert!(
            answer["message"].as_str().expect("message").contains("NUL"),
            "{answer}"
        );
    }

    for query in [
        "/v1/contacts?search=a%00b",
        "/v1/contacts?email=a%00@example.com",
        "/v1/contacts?cursor=%00",
    ] {
        let (status, answer) = t.get(query, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_eq!(answer["error"], "VALIDATION_ERROR", "{answer}");
        let field = query.split(['?', '=']).nth(1).expect("field");
        assert_eq!(answer["details"][0]["field"], field, "{query}: {answer}");
    }

    // Nothing was stored, nothing was changed.
    let (_, list) = t.get("/v1/contacts", &key).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1, "{list}");
    assert_eq!(
        list["data"][0]["company"],
        serde_json::Value::Null,
        "{list}"
    );
    let (_, agents) = t.get("/v1/agents", &key).await;
    assert_eq!(agents["data"][0]["name"], "Ava", "{agents}");
    let (_, hooks) = t.get("/v1/webhooks", &key).await;
    assert_eq!(hooks["data"].as_array().expect("data").len(), 0, "{hooks}");

    // A backslash followed by `u0000` is text, not a NUL.
    let (status, c) = t
        .post("/v1/contacts", &key, json!({"first_name": "\\u0000"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["first_name"], "\\u0000");
    t.finish().await;
}
