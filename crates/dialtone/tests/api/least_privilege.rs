//! Least privilege from usage (issue 15, part 1): requests counted per key and per
//! permission exercised, `GET /v1/api-keys/{id}/usage` and its suggestion, and the
//! rotation into a key restricted to it, over REST and in the dashboard; counts summed
//! across two nodes on PostgreSQL.
//!
//! Past days are seeded through the store's usage flush (the path every node's counts
//! take), today's by real requests.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::least_privilege::PermissionUse;
use dialtone_domain::time::{epoch_day, now};
use dialtone_domain::users::Role;
use dialtone_store::UsageDelta;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, pg_url, with_database};
use crate::dashboard::{page, secret_in, sign_in, submit, user};

fn key_with(name: &str, permissions: &[&str]) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        permissions: Some(permissions.iter().map(|p| p.to_string()).collect()),
        ..Default::default()
    }
}

/// Writes `count` requests of `permission` for `key_id`, `days_ago` days back, as a
/// node's flush would.
async fn seed(t: &TestApp, key_id: &str, days_ago: i64, permission: &str, count: i64) {
    let at = now() - chrono::TimeDelta::days(days_ago);
    t.store
        .flush_usage(&[UsageDelta {
            key_id: key_id.to_owned(),
            day: epoch_day(at),
            count,
            last_used_at: at,
            last_ip: Some("192.0.2.7".into()),
            permissions: vec![PermissionUse {
                permission: permission.parse().expect("permission"),
                requests: count,
                last_used_at: at,
            }],
        }])
        .await
        .expect("seed usage");
}

fn used(usage: &Value) -> Vec<(String, i64)> {
    usage["permissions_used"]
        .as_array()
        .expect("permissions_used")
        .iter()
        .map(|u| {
            (
                u["permission"].as_str().expect("permission").to_owned(),
                u["requests"].as_i64().expect("requests"),
            )
        })
        .collect()
}

/// A worker key that holds more than it uses: contacts read and written, calls read
/// today; messages read ten days ago; billing read 40 days ago (outside the window);
/// calls:write and webhooks never.
async fn mixed_history(t: &TestApp) -> (dialtone_api::keys::CreatedKey, String) {
    let worker = t
        .create_key(key_with(
            "worker",
            &[
                "contacts:write",
                "calls:write",
                "messages:read",
                "billing:read",
                "webhooks:write",
            ],
        ))
        .await;
    let secret = worker.secret.expose_secret().to_owned();
    for _ in 0..3 {
        assert_eq!(t.get("/v1/contacts", &secret).await.0, StatusCode::OK);
    }
    let (status, c) = t
        .post(
            "/v1/contacts",
            &secret,
            json!({"first_name": "Ada", "phone_number": "+442071838750"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    for _ in 0..2 {
        assert_eq!(t.get("/v1/calls", &secret).await.0, StatusCode::OK);
    }
    // Routes any key may call exercise no permission.
    assert_eq!(t.get("/v1/me", &secret).await.0, StatusCode::OK);
    assert_eq!(t.get("/v1/events", &secret).await.0, StatusCode::OK);
    // A refused request exercised nothing either.
    assert_eq!(
        t.get("/v1/agents", &secret).await.0,
        StatusCode::FORBIDDEN,
        "agents:read is not held"
    );
    seed(t, &worker.key.id, 10, "messages:read", 5).await;
    seed(t, &worker.key.id, 40, "billing:read", 7).await;
    (worker, secret)
}

fn expected_used() -> Vec<(String, i64)> {
    vec![
        ("messages:read".into(), 5),
        ("contacts:read".into(), 3),
        ("calls:read".into(), 2),
        ("contacts:write".into(), 1),
    ]
}

#[tokio::test]
async fn usage_suggests_the_smallest_set_that_allowed_a_mixed_30_day_history() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let (worker, _) = mixed_history(&t).await;
    let path = format!("/v1/api-keys/{}/usage", worker.key.id);
    // Today's counts are still in memory (the flush interval is an hour in tests):
    // the answer merges them with the stored days.
    let (status, usage) = t.get(&path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["object"], "api_key_usage");
    assert_eq!(usage["key_id"], worker.key.id.as_str());
    assert_eq!(usage["window_days"], 30);
    assert_eq!(used(&usage), expected_used());
    // contacts read and written: only contacts:write (it implies the read); billing was
    // used 40 days ago, calls:write and webhooks never: all left out.
    assert_eq!(
        usage["suggested_permissions"],
        json!(["contacts:write", "messages:read", "calls:read"])
    );
    assert_eq!(usage["can_narrow"], true);
    let last = usage["permissions_used"][0]["last_used_at"]
        .as_str()
        .expect("last_used_at");
    assert!(last.ends_with('Z'), "{last}");
    // After the flush the same answer comes from the database alone.
    t.app().state.flush_usage().await.expect("flush");
    let (_, after) = t.get(&path, &admin).await;
    assert_eq!(used(&after), expected_used());
    assert_eq!(
        after["suggested_permissions"],
        usage["suggested_permissions"]
    );
    // A key that made no request: nothing used, nothing suggested.
    let idle = t.create_key(key_with("idle", &["contacts:read"])).await;
    let (_, idle_usage) = t
        .get(&format!("/v1/api-keys/{}/usage", idle.key.id), &admin)
        .await;
    assert_eq!(idle_usage["permissions_used"], json!([]));
    assert_eq!(idle_usage["suggested_permissions"], json!([]));
    assert_eq!(idle_usage["can_narrow"], false);
    t.finish().await;
}

#[tokio::test]
async fn usage_is_read_with_the_visibility_of_the_key_itself() {
    let t = TestApp::spawn().await;
    let (worker, worker_secret) = mixed_history(&t).await;
    let path = format!("/v1/api-keys/{}/usage", worker.key.id);
    // Without api_keys:read: 403 naming it.
    let (status, body) = t.get(&path, &worker_secret).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["required_permission"], "api_keys:read");
    // A workspace key of another workspace: 404, as for GET /v1/api-keys/{id}.
    let ws2 = t
        .store
        .create_workspace(&t.org.id, "Second")
        .await
        .expect("ws");
    let mut req = key_with("ws2 admin", &["api_keys:write"]);
    req.workspace_id = Some(ws2.id.clone());
    let ws2_admin = t.key(req).await;
    let (status, body) = t.get(&path, &ws2_admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        t.get(&format!("/v1/api-keys/{}", worker.key.id), &ws2_admin)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // A test key cannot see a live key's usage; a malformed id is 404 too.
    let mut req = key_with("test admin", &["api_keys:read"]);
    req.mode = Some(dialtone_domain::tenancy::Mode::Test);
    let test_admin = t.key(req).await;
    assert_eq!(t.get(&path, &test_admin).await.0, StatusCode::NOT_FOUND);
    let admin = t.admin_key().await;
    assert_eq!(
        t.get("/v1/api-keys/nonsense/usage", &admin).await.0,
        StatusCode::NOT_FOUND
    );
    // Another organization's key: 404.
    let other = t.store.create_org("Other").await.expect("org");
    let digester = dialtone_domain::keys::KeyDigester::new(&t.config.server_secret);
    let foreign = dialtone_api::keys::KeyIssuer {
        store: &t.store,
        digester: &digester,
        brand: &t.config.key_brand,
        cap: t.config.key_cap,
        ip: None,
    }
    .create(
        dialtone_domain::auth::Actor::Operator,
        &other.id,
        key_with("theirs", &["contacts:read"]),
    )
    .await
    .expect("foreign key");
    assert_eq!(
        t.get(&format!("/v1/api-keys/{}/usage", foreign.key.id), &admin)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    t.finish().await;
}

#[tokio::test]
async fn rotating_into_the_suggestion_over_rest_narrows_and_keeps_the_old_key() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let (worker, old_secret) = mixed_history(&t).await;
    let (_, usage) = t
        .get(&format!("/v1/api-keys/{}/usage", worker.key.id), &admin)
        .await;
    let rotate = format!("/v1/api-keys/{}/rotate", worker.key.id);
    // Widening is refused, even to a full-access key: 400 on `permissions`.
    for wider in [
        json!(["contacts:read", "agents:read"]),
        json!(["messages:write"]),
    ] {
        let (status, body) = t
            .post(&rotate, &admin, json!({ "permissions": wider }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["details"][0]["field"], "permissions", "{body}");
    }
    let (status, body) = t.post(&rotate, &admin, json!({"permissions": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = t
        .post(&rotate, &admin, json!({"permissions": ["nope:read"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Into the suggestion.
    let (status, new) = t
        .post(
            &rotate,
            &admin,
            json!({ "permissions": usage["suggested_permissions"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    assert_eq!(new["rotated_from"], worker.key.id.as_str());
    assert_eq!(new["name"], "worker");
    assert_eq!(
        new["permissions"],
        json!([
            "contacts:read",
            "contacts:write",
            "messages:read",
            "calls:read"
        ])
    );
    let new_secret = new["secret"].as_str().expect("secret once").to_owned();
    // It does everything the old key did in the window, and nothing else.
    assert_eq!(t.get("/v1/contacts", &new_secret).await.0, StatusCode::OK);
    assert_eq!(t.get("/v1/calls", &new_secret).await.0, StatusCode::OK);
    assert_eq!(t.get("/v1/messages", &new_secret).await.0, StatusCode::OK);
    for refused in ["/v1/billing/wallet", "/v1/webhooks"] {
        assert_eq!(
            t.get(refused, &new_secret).await.0,
            StatusCode::FORBIDDEN,
            "{refused}"
        );
    }
    let (status, body) = t
        .post(
            "/v1/calls",
            &new_secret,
            json!({"to": "+14155550100", "from": "+14155550101"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["required_permission"], "calls:write");
    // The old key keeps working until revoked, as in any rotation.
    assert_eq!(
        t.get("/v1/billing/wallet", &old_secret).await.0,
        StatusCode::OK
    );
    // A key cannot rotate another into permissions it lacks itself.
    let narrow_admin = t
        .key(key_with(
            "narrow admin",
            &["api_keys:write", "contacts:read"],
        ))
        .await;
    let (status, body) = t
        .post(
            &rotate,
            &narrow_admin,
            json!({"permissions": ["contacts:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The audit log says what the new key holds.
    let audit = t.store.list_audit(&t.org.id, 10).await.expect("audit");
    let entry = audit
        .iter()
        .find(|e| e.action == "api_key.rotated")
        .expect("rotation audited");
    assert!(
        entry
            .detail
            .contains("contacts:read, contacts:write, messages:read, calls:read"),
        "{}",
        entry.detail
    );
    t.finish().await;
}

#[tokio::test]
async fn the_dashboard_shows_what_a_key_used_and_rotates_it_into_a_restricted_key() {
    let t = TestApp::spawn().await;
    user(&t, "admin@example.com", Role::Admin).await;
    user(&t, "member@example.com", Role::Member).await;
    let reader = t
        .create_key(key_with(
            "crm sync",
            &["contacts:write", "calls:read", "billing:read"],
        ))
        .await;
    let secret = reader.secret.expose_secret().to_owned();
    assert_eq!(t.get("/v1/contacts", &secret).await.0, StatusCode::OK);
    seed(&t, &reader.key.id, 3, "calls:read", 4).await;
    let idle = t.create_key(key_with("idle", &["contacts:read"])).await;

    // A member sees the usage line but no action, and cannot rotate by posting.
    let member = sign_in(&t, "member@example.com").await;
    let (_, html) = page(&t, &member.cookie, "/dashboard/keys").await;
    assert!(
        html.contains("used only contacts:read and calls:read in 30 days"),
        "the row says what the key used"
    );
    assert!(html.contains("not used in 30 days"), "the idle key's row");
    assert!(
        !html.contains(&format!("data-open=\"narrow-{}\"", reader.key.id)),
        "no action for members"
    );
    let resp = submit(
        &t,
        &member,
        &format!("/dashboard/keys/{}/rotate", reader.key.id),
        &[("permissions", "contacts:read,calls:read")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let admin = sign_in(&t, "admin@example.com").await;
    let (_, html) = page(&t, &admin.cookie, "/dashboard/keys").await;
    assert!(html.contains(&format!("data-open=\"narrow-{}\"", reader.key.id)));
    assert!(html.contains("name=\"permissions\" value=\"contacts:read,calls:read\""));
    assert!(
        !html.contains(&format!("id=\"narrow-{}\"", idle.key.id)),
        "nothing to restrict an unused key to"
    );
    // Without the CSRF field: refused, nothing made.
    let resp = crate::dashboard::browser()
        .post(format!("{}/dashboard/keys/{}/rotate", t.url, reader.key.id))
        .header(reqwest::header::COOKIE, &admin.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("permissions=contacts%3Aread")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A form edited to widen the key is refused on the page.
    let resp = submit(
        &t,
        &admin,
        &format!("/dashboard/keys/{}/rotate", reader.key.id),
        &[("permissions", "contacts:read,agents:write")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("A rotation can only narrow a key")
    );
    // The action: the new key shown once, restricted; the old key kept.
    let resp = submit(
        &t,
        &admin,
        &format!("/dashboard/keys/{}/rotate", reader.key.id),
        &[
            ("permissions", "contacts:read,calls:read"),
            ("old_key_expires", "keep"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Replacement key created"));
    assert!(html.contains("the new key holds only contacts:read, calls:read"));
    let new = secret_in(&html).expect("the new key, shown once");
    let (_, me) = t.get("/v1/me", &new).await;
    assert_eq!(me["permissions"], json!(["contacts:read", "calls:read"]));
    assert_eq!(t.get("/v1/contacts", &new).await.0, StatusCode::OK);
    assert_eq!(
        t.get("/v1/billing/wallet", &new).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.get("/v1/billing/wallet", &secret).await.0, StatusCode::OK);
    let (_, html) = page(&t, &admin.cookie, "/dashboard/keys").await;
    assert!(!html.contains(&new), "shown once");
    assert!(html.contains("Rotated key"), "audited");
    t.finish().await;
}

#[tokio::test]
async fn permission_counts_from_two_nodes_add_up_on_postgres() {
    if pg_url().is_none() {
        return;
    }
    let t = TestApp::spawn().await;
    let TestDb::Postgres { admin_url, name } = &t.db else {
        return;
    };
    let b_store = dialtone_store::Store::open_postgres(&with_database(admin_url, name))
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = dialtone_api::App::start(listener, b_store.clone(), t.config.clone())
        .await
        .expect("node b");
    let b_url = format!("http://{}", b.addr);
    let admin = t.admin_key().await;
    let worker = t
        .create_key(key_with("worker", &["contacts:read", "calls:read"]))
        .await;
    let secret = worker.secret.expose_secret().to_owned();
    let client = reqwest::Client::new();
    for i in 0..10 {
        let base = if i % 2 == 0 { &t.url } else { &b_url };
        let resp = client
            .get(format!("{base}/v1/contacts"))
            .bearer_auth(&secret)
            .send()
            .await
            .expect("contacts");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = client
        .get(format!("{b_url}/v1/calls"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("calls");
    assert_eq!(resp.status(), StatusCode::OK);
    let path = format!("/v1/api-keys/{}/usage", worker.key.id);
    // Each node flushes its own counts; the rows add up.
    t.app().state.flush_usage().await.expect("flush a");
    b.state.flush_usage().await.expect("flush b");
    let (_, usage) = t.get(&path, &admin).await;
    assert_eq!(
        used(&usage),
        vec![("contacts:read".into(), 10), ("calls:read".into(), 1)]
    );
    assert_eq!(usage["can_narrow"], false, "it uses all it holds");
    // A second round flushed on both nodes adds to the same daily rows.
    for base in [&t.url, &b_url] {
        client
            .get(format!("{base}/v1/contacts"))
            .bearer_auth(&secret)
            .send()
            .await
            .expect("contacts");
    }
    t.app().state.flush_usage().await.expect("flush a");
    b.state.flush_usage().await.expect("flush b");
    let (_, usage) = t.get(&path, &admin).await;
    assert_eq!(used(&usage)[0], ("contacts:read".into(), 12));
    b.shutdown().await;
    b_store.close().await;
    t.finish().await;
}
