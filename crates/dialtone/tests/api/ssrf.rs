//! Webhook SSRF: every loopback, private, reserved or translating address form is
//! refused at save time; at delivery the address actually connected to is checked
//! (IP literals included), and a re-enabled endpoint's stored URL is checked again.

use std::time::Duration;

use dialtone_api::App;
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::webhooks::{Receiver, fast};

async fn test_key(t: &TestApp) -> String {
    t.key(KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn special_address_forms_are_refused_at_save() {
    let t = TestApp::spawn().await;
    let key = test_key(&t).await;
    let refused = [
        // Loopback, in every IPv4 spelling the URL parser accepts.
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0/",
        "http://[::1]/",
        // IPv4-mapped, IPv4-compatible (::/96) and IPv4-translated (::ffff:0:0:0/96).
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::127.0.0.1]/",
        "http://[::8.8.8.8]/",
        "http://[::ffff:0:7f00:1]/",
        "http://[::ffff:0:808:808]/",
        // NAT64, well-known and local-use.
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::808:808]/",
        "http://[64:ff9b:1::a00:1]/",
        // 6to4 embedding a private or loopback IPv4, and its relay anycast.
        "http://[2002:7f00:1::1]/",
        "http://[2002:c0a8:101::1]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://192.88.99.1/",
        // Teredo and the rest of 2001::/23.
        "http://[2001::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[2001:2::1]/",
        // Site-local, discard, unique local, link-local, documentation, multicast.
        "http://[fec0::1]/",
        "http://[100::1]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[2001:db8::1]/",
        "http://[3fff::1]/",
        "http://[ff02::1]/",
        // Private, link-local, shared and reserved IPv4.
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/",
        "http://100.64.0.1/",
        "http://192.0.0.1/",
        "http://198.18.0.1/",
        "http://192.0.2.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "https://localhost/",
    ];
    for url in refused {
        let (status, body) = t
            .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"], "VALIDATION_ERROR", "{url}: {body}");
        assert_eq!(body["details"][0]["field"], "url", "{url}: {body}");
    }
    // Public addresses (no DNS needed) are accepted, including 6to4 of a public IPv4.
    for url in [
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://[2002:808:808::1]/hook",
        "https://[::ffff:8.8.8.8]/hook",
    ] {
        let (status, body) = t
            .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
    }
    t.finish().await;
}

/// Polls an endpoint's deliveries until one has an attempt; returns that attempt.
async fn first_attempt(t: &TestApp, key: &str, endpoint: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, page) = t
            .get(&format!("/v1/webhooks/{endpoint}/deliveries"), key)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if let Some(a) = page["data"]
            .as_array()
            .and_then(|d| d.first())
            .and_then(|d| d["attempts"].as_array())
            .and_then(|a| a.first())
        {
            return a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt for {endpoint}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn private_urls_saved_earlier_are_not_delivered_to_or_re_enabled() {
    // Saved while private targets were allowed…
    let mut t = TestApp::spawn_with(fast).await;
    let key = test_key(&t).await;
    let (rx, url) = Receiver::start().await;
    let port = url
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches("/hook");
    let urls = [
        url.clone(),
        format!("http://2130706433:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ];
    let mut endpoints = Vec::new();
    for u in &urls {
        let (status, e) = t
            .post(
                "/v1/webhooks",
                &key,
                json!({"url": u, "events": ["contact.created"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{u}: {e}");
        endpoints.push(e["id"].as_str().expect("id").to_owned());
    }
    // (One is disabled meanwhile.)
    let (status, e) = t
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", endpoints[1]),
            Some(&key),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");

    // …then the server restarts without allowing them.
    t.app.take().expect("running").shutdown().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = t.config.clone();
    config.webhook_allow_private = false;
    let app = App::start(listener, t.store.clone(), config.clone())
        .await
        .expect("start");
    t.url = format!("http://{}", app.addr);
    t.app = Some(app);
    t.config = config;

    let (status, c) = t
        .post("/v1/contacts", &key, json!({"first_name": "Ada"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    for (id, u) in endpoints.iter().zip(&urls) {
        if id == &endpoints[1] {
            continue;
        }
        let attempt = first_attempt(&t, &key, id).await;
        assert_eq!(attempt["status_code"], Value::Null, "{u}: {attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("refused to connect to")
                || error.contains("resolves to no public address"),
            "{u}: {attempt}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.bodies().is_empty(), "delivered: {:?}", rx.bodies());

    // Re-enabling an endpoint checks its stored URL again.
    let (status, body) = t
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", endpoints[1]),
            Some(&key),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"][0]["field"], "url", "{body}");
    let (_, e) = t.get(&format!("/v1/webhooks/{}", endpoints[1]), &key).await;
    assert_eq!(e["active"], false, "{e}");
    // An endpoint still active can have its other settings changed.
    let (status, e) = t
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", endpoints[0]),
            Some(&key),
            Some(json!({"description": "kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    t.finish().await;
}
