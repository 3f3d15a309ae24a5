//! Invoices and workspaces: a workspace key's invoices add up its own workspace's
//! usage only; organization-wide totals need an organization key.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestApp;
use dialtone_domain::auth::KeyRequest;

async fn workspace_key(t: &TestApp, workspace_id: &str) -> String {
    t.key(KeyRequest {
        name: format!("key of {workspace_id}"),
        workspace_id: Some(workspace_id.to_owned()),
        ..Default::default()
    })
    .await
}

/// The only invoice `key` sees (this month's), as the list and as `GET …/{id}`.
async fn the_invoice(t: &TestApp, key: &str, headers: &[(&str, &str)]) -> Value {
    let resp = t
        .request(
            Method::GET,
            "/v1/billing/invoices",
            Some(key),
            None,
            headers,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.expect("json");
    let invoices = list["data"].as_array().expect("data");
    assert_eq!(invoices.len(), 1, "{list}");
    let inv = invoices[0].clone();
    let id = inv["id"].as_str().expect("id");
    let resp = t
        .request(
            Method::GET,
            &format!("/v1/billing/invoices/{id}"),
            Some(key),
            None,
            headers,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let one: Value = resp.json().await.expect("json");
    assert_eq!(one, inv, "the list and the invoice agree");
    inv
}

/// `kind` → (quantity, amount) of an invoice's lines.
fn lines(inv: &Value) -> Vec<(String, i64, i64)> {
    let mut out: Vec<_> = inv["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().expect("kind").to_owned(),
                l["quantity"].as_i64().expect("quantity"),
                l["amount"].as_i64().expect("amount"),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_workspace_key_sees_its_workspace_usage_only() {
    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    t.store
        .credit_wallet(&t.org.id, true, 5000, "credit")
        .await
        .expect("credit");
    let org_key = t.admin_key().await;
    let ws2 = t
        .store
        .create_workspace(&t.org.id, "Second")
        .await
        .expect("ws");
    let ws2_key = workspace_key(&t, &ws2.id).await;
    let default_key = workspace_key(&t, &t.org.default_workspace_id).await;

    // The default workspace: a local number and a two-segment message.
    let (status, body) = t.post("/v1/phone-numbers", &default_key, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = t
        .post(
            "/v1/messages",
            &default_key,
            json!({"to": "+14155550123", "body": "x".repeat(170)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The second workspace: a toll-free number.
    let (status, body) = t
        .post("/v1/phone-numbers", &ws2_key, json!({"type": "toll_free"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let second = the_invoice(&t, &ws2_key, &[]).await;
    assert_eq!(second["total"], 215, "{second}");
    assert_eq!(lines(&second), [("phone_number".to_owned(), 1, 215)]);

    let default = the_invoice(&t, &default_key, &[]).await;
    assert_eq!(default["total"], 115 + 2, "{default}");
    assert_eq!(
        lines(&default),
        [
            ("message".to_owned(), 1, 2),
            ("phone_number".to_owned(), 1, 115)
        ]
    );
    assert_eq!(default["id"], second["id"], "the same month");

    // The organization key sees the whole organization, whichever workspace it acts in.
    for headers in [
        &[][..],
        &[("Dialtone-Workspace", ws2.id.as_str())][..],
        &[("Dialtone-Workspace", t.org.default_workspace_id.as_str())][..],
    ] {
        let whole = the_invoice(&t, &org_key, headers).await;
        assert_eq!(whole["total"], 115 + 2 + 215, "{whole}");
        assert_eq!(
            lines(&whole),
            [
                ("message".to_owned(), 1, 2),
                ("phone_number".to_owned(), 2, 330)
            ]
        );
    }

    // A workspace with no usage has no invoice at all.
    let ws3 = t
        .store
        .create_workspace(&t.org.id, "Third")
        .await
        .expect("ws");
    let ws3_key = workspace_key(&t, &ws3.id).await;
    let (status, list) = t.get("/v1/billing/invoices", &ws3_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "{list}");
    let id = second["id"].as_str().expect("id");
    let (status, _) = t.get(&format!("/v1/billing/invoices/{id}"), &ws3_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.finish().await;
}
