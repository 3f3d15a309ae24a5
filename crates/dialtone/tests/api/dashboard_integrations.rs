//! The dashboard's webhook creation (event picker from the domain's one list, the
//! API's URL checks and SSRF guard, the secret shown once, enable/disable) and the
//! Integrations page (a read-only key made on the spot and filled into the MCP
//! configurations, shown once, capped and audited as on the keys page). Members are
//! refused every new form, every form needs its CSRF token, bad input is a 4xx page,
//! and everything lands in the workspace and mode chosen.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::events::EventType;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::json;

use crate::common::TestApp;
use crate::dashboard::{FormExt, Signed, browser, page, secret_in, sign_in, submit, user};

/// Form fields, the status they get, words the page shows.
type Case<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str);

async fn audit_actions(app: &TestApp) -> Vec<String> {
    app.store
        .list_audit(&app.org.id, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn to_test_mode(app: &TestApp, s: &Signed) {
    let resp = submit(
        app,
        s,
        "/dashboard/context",
        &[("mode", "test"), ("back", "/dashboard/webhooks")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn dashboard_webhook_created_with_picked_events_secret_once_then_disabled_and_enabled() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let (status, html) = page(&app, &s.cookie, "/dashboard/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    for e in EventType::ALL {
        assert!(
            html.contains(&format!("name=\"events\" value=\"{}\"", e.as_str())),
            "the picker offers {}",
            e.as_str()
        );
    }
    let resp = submit(
        &app,
        &s,
        "/dashboard/webhooks",
        &[
            ("url", "http://127.0.0.1:9/hooks"),
            ("description", "CRM sync"),
            ("events", "call.completed"),
            ("events", "contact.created"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let secret = secret_in(&html).expect("the secret, once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let key = app.admin_key().await;
    let (_, list) = app.get("/v1/webhooks", &key).await;
    let e = &list["data"][0];
    assert_eq!(e["url"], "http://127.0.0.1:9/hooks");
    assert_eq!(e["events"], json!(["call.completed", "contact.created"]));
    assert_eq!(e["description"], "CRM sync");
    assert_eq!(e["active"], true);
    let id = e["id"].as_str().expect("id").to_owned();
    let here = format!("/dashboard/webhooks/{id}");
    let (_, html) = page(&app, &s.cookie, &here).await;
    assert!(!html.contains(&secret), "shown once");
    // Disable, then enable again: the API sees each.
    let resp = submit(&app, &s, &format!("{here}/active"), &[("active", "0")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, e) = app.get(&format!("/v1/webhooks/{id}"), &key).await;
    assert_eq!(e["active"], false);
    let (_, html) = page(&app, &s.cookie, &here).await;
    assert!(html.contains(">Enable</button>"));
    let resp = submit(&app, &s, &format!("{here}/active"), &[("active", "1")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, e) = app.get(&format!("/v1/webhooks/{id}"), &key).await;
    assert_eq!(e["active"], true);
    let actions = audit_actions(&app).await;
    for a in ["webhook.created", "webhook.disabled", "webhook.enabled"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited");
    }
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit").await;
    assert!(html.contains("Created webhook endpoint"));
    app.finish().await;
}

#[tokio::test]
async fn dashboard_webhook_bad_input_is_explained_and_private_urls_are_refused() {
    // The default server: private targets refused, as by the API.
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let cases: [Case; 5] = [
        (
            &[("url", "https://example.com/h")],
            StatusCode::BAD_REQUEST,
            "at least one event",
        ),
        (
            &[
                ("url", "https://example.com/h"),
                ("events", "call.exploded"),
            ],
            StatusCode::BAD_REQUEST,
            "call.exploded",
        ),
        (
            &[("url", "not a url"), ("events", "call.completed")],
            StatusCode::BAD_REQUEST,
            "url",
        ),
        (
            &[
                ("url", "http://127.0.0.1:9/h"),
                ("events", "call.completed"),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "127.0.0.1",
        ),
        (
            &[("url", "http://169.254.169.254/latest"), ("events", "*")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "169.254.169.254",
        ),
    ];
    for (fields, status, words) in cases {
        let resp = submit(&app, &s, "/dashboard/webhooks", fields).await;
        assert_eq!(resp.status(), status, "{fields:?}");
        let html = resp.text().await.expect("html");
        assert!(html.contains("id=\"form-error\""), "{fields:?}");
        assert!(html.contains(words), "{fields:?}: {words}");
    }
    let key = app.admin_key().await;
    let (_, list) = app.get("/v1/webhooks", &key).await;
    assert_eq!(list["data"], json!([]), "nothing created");
    // Enable/disable: a bad value, an unknown or malformed endpoint.
    let resp = submit(
        &app,
        &s,
        "/dashboard/webhooks/whk_01jd5x7c2m8n4p6q8r0s2t4v6w/active",
        &[("active", "0")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = submit(
        &app,
        &s,
        "/dashboard/webhooks/nope/active",
        &[("active", "0")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = submit(
        &app,
        &s,
        "/dashboard/webhooks/whk_01jd5x7c2m8n4p6q8r0s2t4v6w/active",
        &[("active", "maybe")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    app.finish().await;
}

#[tokio::test]
async fn dashboard_integrations_key_is_read_only_shown_once_in_every_config_and_audited() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let (status, html) = page(&app, &s.cookie, "/dashboard/integrations").await;
    assert_eq!(status, StatusCode::OK);
    for words in [
        "Claude Desktop",
        "Cursor",
        "VS Code",
        "/v1/hooks",
        "href=\"/v1/openapi.json\"",
        "href=\"/docs\"",
        "dt_live_…",
    ] {
        assert!(html.contains(words), "{words}");
    }
    let resp = submit(
        &app,
        &s,
        "/dashboard/integrations",
        &[("name", "Claude Desktop")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let key = secret_in(&html).expect("the key, once");
    assert!(key.starts_with("dt_live_"), "{key}");
    // In the reveal and in the three configurations.
    assert!(html.matches(&key).count() >= 4, "filled into every config");
    assert!(html.contains(&app.url), "the server's address is filled in");
    // It reads, it cannot write, and it says read-only.
    let (status, me) = app.get("/v1/me", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["read_only"], true, "{me}");
    let (status, _) = app.get("/v1/contacts", &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post("/v1/contacts", &key, json!({"first_name": "Nope"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, html) = page(&app, &s.cookie, "/dashboard/integrations").await;
    assert!(!html.contains(&key), "shown once");
    let (_, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert!(
        html.contains("Claude Desktop"),
        "listed with the other keys"
    );
    assert!(
        audit_actions(&app)
            .await
            .iter()
            .any(|a| a == "api_key.created"),
        "audited"
    );
    app.finish().await;
}

#[tokio::test]
async fn dashboard_integrations_respects_the_key_cap() {
    let app = TestApp::spawn_with(|c| c.key_cap = 2).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let mut made = 0;
    let mut refused = None;
    for _ in 0..4 {
        let resp = submit(&app, &s, "/dashboard/integrations", &[("name", "")]).await;
        if resp.status() == StatusCode::OK {
            made += 1;
        } else {
            refused = Some((resp.status(), resp.text().await.expect("html")));
            break;
        }
    }
    let (status, html) = refused.expect("the cap is reached");
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("id=\"form-error\""));
    assert!(secret_in(&html).is_none(), "no key");
    assert!(made <= 2, "{made} keys");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_members_see_webhooks_and_integrations_but_cannot_use_their_forms() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    user(&app, "member@example.com", Role::Member).await;
    let key = app.admin_key().await;
    let (_, hook) = app
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed"]}),
        )
        .await;
    let id = hook["id"].as_str().expect("id").to_owned();
    let s = sign_in(&app, "member@example.com").await;
    for path in ["/dashboard/webhooks", "/dashboard/integrations"] {
        let (status, html) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            html.matches("method=\"post\"").count(),
            3,
            "{path}: only the layout's forms"
        );
    }
    let before = audit_actions(&app).await.len();
    for (path, fields) in [
        (
            "/dashboard/webhooks".to_owned(),
            vec![("url", "http://127.0.0.1:9/x"), ("events", "*")],
        ),
        (
            format!("/dashboard/webhooks/{id}/active"),
            vec![("active", "0")],
        ),
        ("/dashboard/integrations".to_owned(), vec![("name", "x")]),
    ] {
        let resp = submit(&app, &s, &path, &fields).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (_, list) = app.get("/v1/webhooks", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["data"][0]["active"], true);
    assert_eq!(audit_actions(&app).await.len(), before, "nothing changed");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_webhook_and_integration_forms_need_the_csrf_token() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let key = app.admin_key().await;
    let (_, hook) = app
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": "http://127.0.0.1:9/h", "events": ["call.completed"]}),
        )
        .await;
    let id = hook["id"].as_str().expect("id").to_owned();
    let s = sign_in(&app, "owner@example.com").await;
    for (path, fields) in [
        (
            "/dashboard/webhooks".to_owned(),
            vec![("url", "http://127.0.0.1:9/x"), ("events", "*")],
        ),
        (
            format!("/dashboard/webhooks/{id}/active"),
            vec![("active", "0")],
        ),
        ("/dashboard/integrations".to_owned(), vec![("name", "x")]),
    ] {
        for csrf in [None, Some("forged"), Some("")] {
            let mut form = fields.clone();
            if let Some(t) = csrf {
                form.push(("csrf", t));
            }
            let resp = browser()
                .post(format!("{}{path}", app.url))
                .header(COOKIE, &s.cookie)
                .form(&form)
                .send()
                .await
                .expect("post");
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path} {csrf:?}");
        }
    }
    let (_, list) = app.get("/v1/webhooks", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["data"][0]["active"], true);
    app.finish().await;
}

#[tokio::test]
async fn dashboard_webhooks_and_integration_keys_land_in_the_chosen_workspace_and_mode() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let live = app.admin_key().await;
    let test = app
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let s = sign_in(&app, "owner@example.com").await;
    to_test_mode(&app, &s).await;
    let resp = submit(
        &app,
        &s,
        "/dashboard/webhooks",
        &[("url", "http://127.0.0.1:9/test-only"), ("events", "*")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, list) = app.get("/v1/webhooks", &test).await;
    assert_eq!(list["data"][0]["url"], "http://127.0.0.1:9/test-only");
    let id = list["data"][0]["id"].as_str().expect("id").to_owned();
    let (_, list) = app.get("/v1/webhooks", &live).await;
    assert_eq!(list["data"], json!([]), "not in live mode");
    // The live page does not list it, nor act on it.
    let resp = submit(
        &app,
        &s,
        "/dashboard/context",
        &[("mode", "live"), ("back", "/dashboard/webhooks")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &s.cookie, "/dashboard/webhooks").await;
    assert!(!html.contains(&id));
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/webhooks/{id}/active"),
        &[("active", "0")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // An integrations key in test mode of the default workspace is a test key of it.
    to_test_mode(&app, &s).await;
    let resp = submit(&app, &s, "/dashboard/integrations", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let key = secret_in(&resp.text().await.expect("html")).expect("key");
    assert!(key.starts_with("dt_test_"), "{key}");
    let (_, me) = app.get("/v1/me", &key).await;
    assert_eq!(me["read_only"], true, "{me}");
    let (_, list) = app.get("/v1/webhooks", &key).await;
    assert_eq!(list["data"][0]["id"], id.as_str(), "it sees the test data");
    app.finish().await;
}
