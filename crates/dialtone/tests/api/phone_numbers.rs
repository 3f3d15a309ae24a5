//! Phone numbers and the wallet: inventory search, purchase (charged in live mode,
//! 402 when the wallet cannot pay), idempotent retries charged once, routing, release.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_isolated};
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

async fn balance(t: &TestApp, key: &str) -> i64 {
    let (status, w) = t.get("/v1/billing/wallet", key).await;
    assert_eq!(status, StatusCode::OK, "{w}");
    w["balance"].as_i64().expect("balance")
}

#[tokio::test]
async fn the_inventory_is_searched_by_country_type_and_area_code() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, found) = t
        .get("/v1/phone-numbers/available?area_code=415&limit=5", &key)
        .await;
    assert_eq!(status, StatusCode::OK);
    let data = found["data"].as_array().expect("data");
    assert_eq!(data.len(), 5);
    for n in data {
        assert!(
            n["number"]
                .as_str()
                .is_some_and(|s| s.starts_with("+1415") && s.len() == 12),
            "{n}"
        );
        assert_eq!(n["type"], "local");
        assert_eq!(n["monthly_cost"], 115);
    }
    let (_, tf) = t
        .get("/v1/phone-numbers/available?type=toll_free&limit=1", &key)
        .await;
    assert_eq!(tf["data"][0]["capabilities"]["sms"], false);
    let (_, gb) = t
        .get(
            "/v1/phone-numbers/available?country=GB&type=mobile&limit=1",
            &key,
        )
        .await;
    assert!(
        gb["data"][0]["number"]
            .as_str()
            .is_some_and(|s| s.starts_with("+447"))
    );
    for q in [
        "country=FR",
        "type=fax",
        "area_code=099",
        "limit=0",
        "limit=51",
        "colour=red",
    ] {
        let (status, err) = t
            .get(&format!("/v1/phone-numbers/available?{q}"), &key)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
    }
    t.finish().await;
}

#[tokio::test]
async fn a_test_key_buys_configures_and_releases_a_number_free_of_charge() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let (_, agent) = t
        .post("/v1/agents", &key, json!({"name": "Reception"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id");
    let (status, n) = t
        .post(
            "/v1/phone-numbers",
            &key,
            json!({"area_code": "212", "name": "Main line", "agent_id": agent_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    assert_eq!(n["object"], "phone_number");
    assert_eq!(n["livemode"], false);
    assert_eq!(n["status"], "active");
    assert_eq!(n["agent_id"], agent_id);
    assert!(n["number"].as_str().is_some_and(|s| s.starts_with("+1212")));
    assert_eq!(balance(&t, &key).await, 0, "test mode is never charged");
    let path = format!("/v1/phone-numbers/{}", n["id"].as_str().expect("id"));

    let (status, routed) = t
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"agent_id": null, "forward_to": "+15551230000"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{routed}");
    assert_eq!(routed["agent_id"], Value::Null);
    assert_eq!(routed["forward_to"], "+15551230000");
    assert_eq!(routed["name"], "Main line");
    for bad in [
        json!({"forward_to": "12"}),
        json!({"agent_id": "agt_nope"}),
        json!({"agent_id": dialtone_domain::id::new_id("agt")}),
        json!({"colour": 1}),
    ] {
        let (status, err) = t
            .call(Method::PATCH, &path, Some(&key), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
    }

    let (status, released) = t.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["status"], "released");
    assert!(released["released_at"].is_string());
    let (_, active) = t.get("/v1/phone-numbers", &key).await;
    assert_eq!(active["data"], json!([]));
    let (_, gone) = t.get("/v1/phone-numbers?status=released", &key).await;
    assert_eq!(gone["data"].as_array().map(Vec::len), Some(1));
    let (status, _) = t
        .call(Method::PATCH, &path, Some(&key), Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        t.get("/v1/phone-numbers?status=nope", &key).await.0,
        StatusCode::BAD_REQUEST
    );
    t.finish().await;
}

#[tokio::test]
async fn live_purchases_are_charged_and_refused_with_402_when_the_wallet_cannot_pay() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (status, err) = t.post("/v1/phone-numbers", &key, json!({})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{err}");
    assert_eq!(err["error"], "INSUFFICIENT_BALANCE");
    assert_eq!(err["statusCode"], 402);
    assert_eq!(err["details"]["needed"], 115);
    let (_, list) = t.get("/v1/phone-numbers?status=all", &key).await;
    assert_eq!(list["data"], json!([]), "nothing was bought");

    t.store
        .credit_wallet(&t.org.id, true, 200, "test credit")
        .await
        .expect("credit");
    assert_eq!(balance(&t, &key).await, 200);
    let (status, n) = t
        .post("/v1/phone-numbers", &key, json!({"type": "local"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    assert_eq!(balance(&t, &key).await, 85);
    let (status, err) = t.post("/v1/phone-numbers", &key, json!({})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(err["details"]["balance"], 85);
    // A toll-free number costs more; a taken number is a conflict.
    t.store
        .credit_wallet(&t.org.id, true, 1000, "test credit")
        .await
        .expect("credit");
    let taken = n["number"].as_str().expect("number");
    let (status, _) = t
        .post("/v1/phone-numbers", &key, json!({"number": taken}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, tf) = t
        .post("/v1/phone-numbers", &key, json!({"number": "+18885550100"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tf}");
    assert_eq!(tf["type"], "toll_free");
    assert_eq!(balance(&t, &key).await, 1085 - 215);
    // The same number is separate in test mode.
    let test = test_key(&t).await;
    assert_eq!(
        t.post("/v1/phone-numbers", &test, json!({"number": taken}))
            .await
            .0,
        StatusCode::CREATED
    );
    for bad in [
        json!({"number": "415"}),
        json!({"number": "+33123456789"}),
        json!({"country": "FR"}),
        json!({"type": "fax"}),
    ] {
        let (status, err) = t.post("/v1/phone-numbers", &key, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
    }
    t.finish().await;
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_answer_and_charges_once() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "test credit")
        .await
        .expect("credit");
    let body = json!({"area_code": "303"});
    let send = |k: &'static str, body: Value| {
        let client = t.client.clone();
        let url = format!("{}/v1/phone-numbers", t.url);
        let key = key.clone();
        async move {
            let resp = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", k)
                .json(&body)
                .send()
                .await
                .expect("send");
            let replayed = resp.headers().contains_key("idempotent-replayed");
            (
                resp.status(),
                replayed,
                resp.json::<Value>().await.expect("json"),
            )
        }
    };
    let (status, replayed, first) = send("order-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    let (status, replayed, again) = send("order-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first);
    assert_eq!(balance(&t, &key).await, 1000 - 115);
    // The same key for another request is refused.
    let (status, _, err) = send("order-1", json!({"area_code": "720"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    // Concurrent retries of one key: one purchase, one charge.
    let results = futures_join(
        (0..8)
            .map(|_| send("order-2", body.clone()))
            .collect::<Vec<_>>(),
    )
    .await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|(s, _, v)| {
            assert_eq!(*s, StatusCode::CREATED, "{v}");
            v["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one number for one key");
    assert_eq!(balance(&t, &key).await, 1000 - 2 * 115);
    let (_, list) = t.get("/v1/phone-numbers", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    t.finish().await;
}

async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}

#[tokio::test]
async fn numbers_stay_in_their_workspace_and_mode() {
    let t = TestApp::spawn().await;
    t.store
        .credit_wallet(&t.org.id, true, 1000, "test credit")
        .await
        .expect("credit");
    assert_isolated(&t, "/v1/phone-numbers", json!({})).await;
    t.finish().await;
}

#[tokio::test]
async fn invoices_sum_a_month_of_charges_by_kind() {
    let t =
        TestApp::spawn_with(|c| c.carrier = dialtone_api::config::CarrierChoice::Simulator).await;
    let key = t.admin_key().await;
    t.store
        .credit_wallet(&t.org.id, true, 5000, "credit")
        .await
        .expect("credit");
    t.post("/v1/phone-numbers", &key, json!({})).await;
    t.post("/v1/phone-numbers", &key, json!({"type": "toll_free"}))
        .await;
    t.post(
        "/v1/messages",
        &key,
        json!({"to": "+14155550123", "body": "x".repeat(170)}),
    )
    .await;
    let (status, list) = t.get("/v1/billing/invoices", &key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let invoices = list["data"].as_array().expect("data");
    assert_eq!(invoices.len(), 1);
    let inv = &invoices[0];
    assert_eq!(inv["object"], "invoice");
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["total"], 115 + 215 + 2);
    let numbers = inv["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["kind"] == "phone_number")
        .expect("numbers line");
    assert_eq!(
        (&numbers["quantity"], &numbers["amount"]),
        (&json!(2), &json!(330))
    );
    let id = inv["id"].as_str().expect("id");
    assert!(id.starts_with("inv_"));
    let (status, one) = t.get(&format!("/v1/billing/invoices/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, inv);
    assert_eq!(
        t.get("/v1/billing/invoices/inv_200001", &key).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/v1/billing/invoices/nope", &key).await.0,
        StatusCode::NOT_FOUND
    );
    let test = test_key(&t).await;
    let (_, none) = t.get("/v1/billing/invoices", &test).await;
    assert_eq!(none["data"], json!([]), "test mode is never charged");
    t.finish().await;
}
