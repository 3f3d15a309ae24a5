//! Contacts and notes: CRUD, validation, pagination, search, and bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestApp;

#[tokio::test]
async fn contacts_are_created_read_updated_and_deleted() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, c) = t
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "Ada", "last_name": "Lovelace", "phone_number": "+442071838750",
                   "email": "ada@example.com", "company": "Analytical", "job_title": "Engineer",
                   "external_id": "crm-1", "custom_fields": {"tier": "gold", "score": 7}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["object"], "contact");
    assert_eq!(c["first_name"], "Ada");
    assert_eq!(c["custom_fields"]["score"], 7);
    let id = c["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("ct_"));
    let path = format!("/v1/contacts/{id}");
    assert_eq!(t.get(&path, &key).await.1, c);

    let (status, patched) = t
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"email": null, "company": "Babbage & Co"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["email"], Value::Null);
    assert_eq!(patched["company"], "Babbage & Co");
    assert_eq!(patched["first_name"], "Ada");
    let (status, put) = t
        .call(
            Method::PUT,
            &path,
            Some(&key),
            Some(json!({"job_title": "Countess"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(put["job_title"], "Countess");

    let (status, deleted) = t.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deleted,
        json!({"id": id, "object": "contact", "deleted": true})
    );
    let (status, body) = t.get(&path, &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "NOT_FOUND");
    assert_eq!(
        t.call(Method::DELETE, &path, Some(&key), None).await.0,
        StatusCode::NOT_FOUND
    );
    t.finish().await;
}

#[tokio::test]
async fn bad_contacts_are_refused_with_every_reason_and_nothing_is_written() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let cases = [
        json!({"first_name": "A", "phone_number": "555-1234"}),
        json!({"first_name": "A", "email": "nope"}),
        json!({}),
        json!({"first_name": 12}),
        json!({"first_name": "A", "nickname": "x"}),
        json!({"first_name": "A", "custom_fields": {"nested": {"no": 1}}}),
        json!({"first_name": "A", "custom_fields": [1, 2]}),
        json!({"first_name": "x".repeat(201)}),
    ];
    for body in cases {
        let (status, err) = t.post("/v1/contacts", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
        assert_eq!(err["statusCode"], 400);
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, err) = t
        .post(
            "/v1/contacts",
            &key,
            json!({"phone_number": "123", "email": "bad"}),
        )
        .await;
    let fields: Vec<&str> = err["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["phone_number", "email"]);
    // Not JSON, wrong content type, too large.
    let resp = t
        .client
        .post(format!("{}/v1/contacts", t.url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = t
        .client
        .post(format!("{}/v1/contacts", t.url))
        .bearer_auth(&key)
        .body(r#"{"first_name":"A"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = "x".repeat(t.config.max_body_bytes + 10);
    let (status, err) = t
        .post("/v1/contacts", &key, json!({"first_name": big}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"], "PAYLOAD_TOO_LARGE");
    let (_, list) = t.get("/v1/contacts", &key).await;
    assert_eq!(list["data"], json!([]), "nothing was written");
    // A duplicate external_id is a conflict.
    assert_eq!(
        t.post(
            "/v1/contacts",
            &key,
            json!({"first_name": "A", "external_id": "e1"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (status, err) = t
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "B", "external_id": "e1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "CONFLICT");
    // Bad query parameters.
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=%%%",
        "colour=red",
    ] {
        let (status, err) = t.get(&format!("/v1/contacts?{q}"), &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
    }
    t.finish().await;
}

#[tokio::test]
async fn lists_page_with_cursors_and_search() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let name = if i == 2 {
            "Grace_Hopper".to_owned()
        } else {
            format!("Person{i}")
        };
        let (_, c) = t
            .post(
                "/v1/contacts",
                &key,
                json!({"first_name": name, "email": format!("p{i}@example.com")}),
            )
            .await;
        ids.push(c["id"].as_str().expect("id").to_owned());
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/contacts?limit=2&cursor={c}"),
            None => "/v1/contacts?limit=2".to_owned(),
        };
        let (status, page) = t.get(&path, &key).await;
        assert_eq!(status, StatusCode::OK);
        for c in page["data"].as_array().expect("data") {
            seen.push(c["id"].as_str().expect("id").to_owned());
        }
        if page["meta"]["has_more"] == true {
            cursor = page["meta"]["next_cursor"].as_str().map(str::to_owned);
        } else {
            assert_eq!(page["meta"]["next_cursor"], Value::Null);
            break;
        }
    }
    assert_eq!(seen, ids);
    let (_, found) = t.get("/v1/contacts?search=grace_", &key).await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["data"][0]["first_name"], "Grace_Hopper");
    // `_` is a literal, not a wildcard.
    let (_, none) = t.get("/v1/contacts?search=person_", &key).await;
    assert_eq!(none["data"], json!([]));
    let (_, by_email) = t.get("/v1/contacts?email=p3@example.com", &key).await;
    assert_eq!(by_email["data"][0]["first_name"], "Person3");
    t.finish().await;
}

#[tokio::test]
async fn contact_notes_are_written_and_listed() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (_, c) = t
        .post("/v1/contacts", &key, json!({"first_name": "Ada"}))
        .await;
    let notes = format!("/v1/contacts/{}/notes", c["id"].as_str().expect("id"));
    let (status, note) = t
        .post(&notes, &key, json!({"content": "Called about renewal"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["object"], "note");
    assert_eq!(note["contact_id"], c["id"]);
    let (_, list) = t.get(&notes, &key).await;
    assert_eq!(list["data"][0]["content"], "Called about renewal");
    let (status, _) = t
        .post(&notes, &key, json!({"content": "x".repeat(5001)}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.post(&notes, &key, json!({"content": "  "})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let missing = format!("/v1/contacts/{}/notes", dialtone_domain::id::new_id("ct"));
    assert_eq!(
        t.post(&missing, &key, json!({"content": "hi"})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.get(&missing, &key).await.0, StatusCode::NOT_FOUND);
    t.finish().await;
}
