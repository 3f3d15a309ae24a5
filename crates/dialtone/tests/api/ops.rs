//! Health, metrics, request ids, the OpenAPI document and the docs page.

use std::collections::BTreeSet;

use dialtone_api::router::table;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::TestApp;

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    for path in ["/healthz", "/readyz"] {
        let resp = t.request(Method::GET, path, None, None, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers().contains_key("x-request-id"));
    }
    t.get("/v1/contacts", &key).await;
    t.call(Method::GET, "/v1/contacts", None, None).await;
    let resp = t.request(Method::GET, "/nope", None, None, &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "NOT_FOUND");
    let resp = t
        .request(Method::PATCH, "/v1/me", Some(&key), None, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A caller's request id is kept.
    let resp = t
        .request(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");

    let metrics = t
        .request(Method::GET, "/metrics", None, None, &[])
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"dialtone_auth_outcomes_total{outcome="ok"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"dialtone_auth_outcomes_total{outcome="missing"}"#));
    assert!(metrics.contains(r#"route="/v1/contacts",status="200""#));
    assert!(metrics.contains("dialtone_http_request_duration_seconds_bucket"));
    t.finish().await;
}

#[tokio::test]
async fn the_openapi_document_covers_the_route_table_and_is_committed() {
    let t = TestApp::spawn().await;
    let (status, doc) = t.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(op["security"].is_array(), "{method} {path} has no security");
            for code in ["401", "403", "429"] {
                assert!(
                    op["responses"][code].is_object(),
                    "{method} {path} lacks {code}"
                );
            }
        }
    }
    let routed: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed, "routes and OpenAPI operations differ");

    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let current = dialtone_api::openapi::document_json();
    if std::env::var("DIALTONE_UPDATE_OPENAPI").is_ok() {
        std::fs::write(committed_path, format!("{current}\n")).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed.trim_end() == current,
        "docs/openapi.json is stale: run `DIALTONE_UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "operation ids repeat: {ids:?}");
    for item in doc["paths"].as_object().expect("paths").values() {
        if let Some(params) = item["get"]["parameters"].as_array() {
            for p in params {
                if p["name"] == "limit" || p["name"] == "cursor" {
                    assert_eq!(p["in"], "query", "{p}");
                }
            }
        }
    }

    // Every operation has its human id, from the one table in openapi.rs.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            assert_eq!(
                op["operationId"].as_str(),
                dialtone_api::openapi::operation_id(method, path),
                "{method} {path} needs an entry in openapi::OPERATION_IDS"
            );
        }
    }

    // The reference page: the vendored renderer from this server, nothing from elsewhere.
    let resp = t.request(Method::GET, "/docs", None, None, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = resp.text().await.expect("html");
    assert!(html.contains(dialtone_api::reference::SCRIPT_PATH));
    assert!(
        html.contains("href=\"/v1/openapi.json\""),
        "the no-JavaScript link"
    );
    assert!(!html.contains("://"), "nothing from another host");
    t.finish().await;
}

/// What the document says of error bodies and the invoice list is what the server
/// sends: `details` is a list of fields for a validation error and an object of facts
/// for a 402; invoices come as a page.
#[tokio::test]
async fn error_details_and_the_invoice_page_are_shaped_as_documented() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", t.url))
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let schemas = &doc["components"]["schemas"];
    let shapes: Vec<&str> = schemas["ErrorDetails"]["oneOf"]
        .as_array()
        .expect("ErrorDetails is oneOf")
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(shapes, ["array", "object"]);

    let (status, invalid) = t
        .post(
            "/v1/contacts",
            &key,
            serde_json::json!({ "email": "not-an-email" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{invalid}");
    let fields = invalid["details"].as_array().expect("a list of fields");
    assert!(
        fields
            .iter()
            .all(|f| f["field"].is_string() && f["message"].is_string())
    );

    let (status, broke) = t
        .post(
            "/v1/calls",
            &key,
            serde_json::json!({ "to": "+14155550123" }),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{broke}");
    assert!(broke["details"]["needed"].is_i64() && broke["details"]["balance"].is_i64());

    let page = &schemas["Page_Invoice"]["properties"];
    assert!(
        page["data"].is_object() && page["meta"].is_object(),
        "{page}"
    );
    let (_, invoices) = t.get("/v1/billing/invoices", &key).await;
    assert!(
        invoices["data"].is_array() && invoices["meta"].is_object(),
        "{invoices}"
    );
    t.finish().await;
}
