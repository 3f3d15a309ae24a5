//! API keys end to end: the 401s, permissions from the route table, revocation, the
//! cap, partitions, scoping, rotation, expiry and usage.

use std::time::Duration;

use dialtone_api::keys::CreatedKey;
use dialtone_api::router::table;
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::keys::generate;
use dialtone_domain::permissions::Access;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::now;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{TestApp, unauthorized_body};

fn named(name: &str) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_kind_of_bad_key_gets_the_exact_401_body() {
    let t = TestApp::spawn().await;
    let good = t.admin_key().await;
    let mut typo = good.clone().into_bytes();
    let i = typo.len() - 10;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let unknown = generate("dt", Mode::Live).secret.expose_secret().to_owned();
    let revoked = t.create_key(named("revoked")).await;
    t.store
        .revoke_key(&t.org.id, &revoked.key.id, "cli", None)
        .await
        .expect("revoke");
    let mut expiring = named("expiring");
    expiring.expires_at = Some(now() + chrono::TimeDelta::milliseconds(700));
    let expiring = t.key(expiring).await;
    assert_eq!(t.get("/v1/me", &expiring).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not-a-key".into())),
        ("bad checksum", Some(typo)),
        ("unknown", Some(unknown)),
        ("revoked", Some(revoked.secret.expose_secret().to_owned())),
        ("expired", Some(expiring)),
    ];
    for (what, key) in cases {
        let resp = t
            .request(Method::GET, "/v1/contacts", key.as_deref(), None, &[])
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(resp.headers().contains_key("x-request-id"), "{what}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body, unauthorized_body(), "{what}");
    }
    // A non-bearer scheme is refused the same way.
    let resp = t
        .request(
            Method::GET,
            "/v1/me",
            None,
            None,
            &[("authorization", &format!("Basic {good}"))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    t.finish().await;
}

/// Fills `{id}` with an id of the right prefix for the route.
fn concrete(path: &str) -> String {
    let prefixes = [
        ("/v1/api-keys", "key"),
        ("/v1/contacts", "ct"),
        ("/v1/agents", "agt"),
        ("/v1/phone-numbers", "pn"),
        ("/v1/calls", "call"),
        ("/v1/call-logs", "call"),
        ("/v1/recordings", "rec"),
        ("/v1/conversations", "conv"),
        ("/v1/messages", "msg"),
        ("/v1/campaigns", "cmp"),
        ("/v1/webhooks", "whk"),
        ("/v1/hooks", "hook"),
    ];
    if path.starts_with("/v1/billing/invoices") {
        return path.replace("{id}", "inv_200001");
    }
    let prefix = prefixes
        .iter()
        .find(|(p, _)| path.starts_with(p))
        .map_or("x", |(_, prefix)| prefix);
    path.replace("{id}", &dialtone_domain::id::new_id(prefix))
        .replace("{delivery_id}", &dialtone_domain::id::new_id("dlv"))
}

#[tokio::test]
async fn a_read_only_key_is_refused_on_every_write_route_and_allowed_every_read() {
    let t = TestApp::spawn().await;
    let mut ro = named("read only");
    ro.read_only = true;
    let ro = t.key(ro).await;
    let routes = table();
    assert!(
        routes.iter().any(|r| r.method == Method::POST),
        "the table lists write routes"
    );
    for r in routes {
        let path = concrete(r.path);
        let body = (r.method != Method::GET && r.method != Method::DELETE).then(|| json!({}));
        let (status, body) = t.call(r.method.clone(), &path, Some(&ro), body).await;
        match r.permission {
            Some(p) if p.access == Access::Write => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{} {}", r.method, r.path);
                assert_eq!(body["error"], "INSUFFICIENT_PERMISSIONS");
                assert_eq!(body["statusCode"], 403);
                assert_eq!(body["required_permission"], p.to_string());
            }
            _ => assert!(
                status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                "{} {} answered {status} to a read-only key",
                r.method,
                r.path
            ),
        }
    }
    t.finish().await;
}

#[tokio::test]
async fn a_key_without_a_permission_gets_403_naming_it() {
    let t = TestApp::spawn().await;
    let mut req = named("calls only");
    req.permissions = Some(vec!["calls:read".into()]);
    let key = t.key(req).await;
    let (status, body) = t.get("/v1/contacts", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["required_permission"], "contacts:read");
    assert_eq!(t.get("/v1/me", &key).await.0, StatusCode::OK);
    t.finish().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_very_next_request() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let victim = t.create_key(named("victim")).await;
    let secret = victim.secret.expose_secret().to_owned();
    assert_eq!(t.get("/v1/contacts", &secret).await.0, StatusCode::OK);
    let (status, body) = t
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", victim.key.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "revoked");
    let (status, body) = t.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, unauthorized_body());
    t.finish().await;
}

#[tokio::test]
async fn an_operator_revocation_reaches_the_running_server() {
    let t = TestApp::spawn().await;
    let victim = t.create_key(named("victim")).await;
    let secret = victim.secret.expose_secret().to_owned();
    assert_eq!(t.get("/v1/me", &secret).await.0, StatusCode::OK);
    // Straight on the database, as `dialtone keys revoke` does.
    t.store
        .revoke_key_any_org(&victim.key.id)
        .await
        .expect("revoke");
    let started = std::time::Instant::now();
    loop {
        if t.get("/v1/me", &secret).await.0 == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.finish().await;
}

#[tokio::test]
async fn forty_concurrent_creations_leave_exactly_the_cap() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = t.client.clone();
        let url = format!("{}/v1/api-keys", t.url);
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({ "name": format!("k{i}") }))
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("join") {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // The admin key is one of the 25.
    assert_eq!((created, refused), (24, 16));
    let (_, list) = t.get("/v1/api-keys?limit=100", &admin).await;
    let active = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|k| k["status"] == "active")
        .count();
    assert_eq!(active, 25);
    let (status, body) = t
        .post("/v1/api-keys", &admin, json!({"name": "one more"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "CONFLICT");
    assert_eq!(body["details"]["limit"], 25);
    t.finish().await;
}

#[tokio::test]
async fn test_and_live_data_are_apart() {
    let t = TestApp::spawn().await;
    let live = t.admin_key().await;
    let mut test_req = named("test");
    test_req.mode = Some(Mode::Test);
    let test = t.key(test_req).await;
    assert!(test.starts_with("dt_test_"));
    let (_, live_contact) = t
        .post("/v1/contacts", &live, json!({"first_name": "Live"}))
        .await;
    let (_, test_contact) = t
        .post("/v1/contacts", &test, json!({"first_name": "Test"}))
        .await;
    assert_eq!(live_contact["livemode"], true);
    assert_eq!(test_contact["livemode"], false);
    let live_id = live_contact["id"].as_str().expect("id");
    let test_id = test_contact["id"].as_str().expect("id");
    assert_eq!(
        t.get(&format!("/v1/contacts/{live_id}"), &test).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get(&format!("/v1/contacts/{test_id}"), &live).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, test_list) = t.get("/v1/contacts", &test).await;
    assert_eq!(test_list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(test_list["data"][0]["id"], test_id);
    // A test key cannot create a live key.
    let (status, body) = t
        .post("/v1/api-keys", &test, json!({"name": "x", "mode": "live"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    t.finish().await;
}

#[tokio::test]
async fn workspaces_are_walls() {
    let t = TestApp::spawn().await;
    let org_key = t.admin_key().await;
    let ws2 = t
        .store
        .create_workspace(&t.org.id, "Second")
        .await
        .expect("ws");
    let mut ws2_req = named("ws2");
    ws2_req.workspace_id = Some(ws2.id.clone());
    let ws2_key = t.key(ws2_req).await;

    let (_, default_contact) = t
        .post("/v1/contacts", &org_key, json!({"first_name": "Default"}))
        .await;
    let default_id = default_contact["id"].as_str().expect("id");
    assert_eq!(default_contact["workspace_id"], t.org.default_workspace_id);
    let (status, _) = t.get(&format!("/v1/contacts/{default_id}"), &ws2_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, ws2_contact) = t
        .post("/v1/contacts", &ws2_key, json!({"first_name": "Second"}))
        .await;
    assert_eq!(ws2_contact["workspace_id"], ws2.id);
    // The organization key reaches it by naming the workspace.
    let path = format!("/v1/contacts/{}", ws2_contact["id"].as_str().expect("id"));
    assert_eq!(t.get(&path, &org_key).await.0, StatusCode::NOT_FOUND);
    let resp = t
        .request(
            Method::GET,
            &path,
            Some(&org_key),
            None,
            &[("Dialtone-Workspace", &ws2.id)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A workspace key cannot name another workspace; an unknown workspace is 404.
    let resp = t
        .request(
            Method::GET,
            "/v1/contacts",
            Some(&ws2_key),
            None,
            &[("Dialtone-Workspace", &t.org.default_workspace_id)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = t
        .request(
            Method::GET,
            "/v1/contacts",
            Some(&org_key),
            None,
            &[("Dialtone-Workspace", "ws_nope")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "not a workspace id");
    let resp = t
        .request(
            Method::GET,
            "/v1/contacts",
            Some(&org_key),
            None,
            &[("Dialtone-Workspace", "ws_00000000000000000000000000")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no such workspace");
    // A workspace key sees only its workspace's keys, and only creates keys there.
    let (_, keys) = t.get("/v1/api-keys", &ws2_key).await;
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1));
    let (status, _) = t
        .post(
            "/v1/api-keys",
            &ws2_key,
            json!({"name": "x", "workspace_id": t.org.default_workspace_id}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = t
        .post("/v1/api-keys", &ws2_key, json!({"name": "child"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["workspace_id"], ws2.id);
    t.finish().await;
}

#[tokio::test]
async fn a_scoped_key_cannot_create_a_broader_key() {
    let t = TestApp::spawn().await;
    let mut req = named("scoped");
    req.permissions = Some(vec!["contacts:read".into(), "api_keys:write".into()]);
    let scoped = t.key(req).await;
    let (status, body) = t
        .post("/v1/api-keys", &scoped, json!({"name": "full"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "INSUFFICIENT_PERMISSIONS");
    let (status, body) = t
        .post(
            "/v1/api-keys",
            &scoped,
            json!({"name": "w", "permissions": ["contacts:write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["required_permission"], "contacts:write");
    let (status, body) = t
        .post(
            "/v1/api-keys",
            &scoped,
            json!({"name": "narrow", "permissions": ["contacts:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["permissions"], json!(["contacts:read"]));
    assert_eq!(body["read_only"], true);
    t.finish().await;
}

/// `DELETE /v1/api-keys/{id}` with `key`; the status, and whether `target` still works.
async fn try_revoke(t: &TestApp, key: &str, target: &CreatedKey) -> (StatusCode, Value, bool) {
    let (status, body) = t
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", target.key.id),
            Some(key),
            None,
        )
        .await;
    let alive = t.get("/v1/me", target.secret.expose_secret()).await.0 == StatusCode::OK;
    (status, body, alive)
}

#[tokio::test]
async fn a_key_only_revokes_keys_within_its_reach_or_itself() {
    let t = TestApp::spawn().await;
    let full = t.create_key(named("full")).await;
    let mut req = named("narrow");
    req.permissions = Some(vec![
        "contacts:read".into(),
        "api_keys:read".into(),
        "api_keys:write".into(),
    ]);
    let narrow = t.create_key(req).await;
    let narrow_secret = narrow.secret.expose_secret().to_owned();

    // A narrower permission set cannot revoke the full-access key (issue 13, item 5).
    let (status, body, alive) = try_revoke(&t, &narrow_secret, &full).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "INSUFFICIENT_PERMISSIONS");
    assert!(alive, "the full-access key must keep working");
    // A key holding a permission the caller lacks, even one, is out of reach.
    let mut req = named("writer");
    req.permissions = Some(vec!["contacts:write".into()]);
    let writer = t.create_key(req).await;
    let (status, body, alive) = try_revoke(&t, &narrow_secret, &writer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["required_permission"], "contacts:write");
    assert!(alive);
    // Within its permissions, it can.
    let mut req = named("reader");
    req.permissions = Some(vec!["contacts:read".into()]);
    let reader = t.create_key(req).await;
    let (status, body, alive) = try_revoke(&t, &narrow_secret, &reader).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!alive);

    // A workspace key reaches neither organization keys nor another workspace's.
    let ws2 = t
        .store
        .create_workspace(&t.org.id, "Second")
        .await
        .expect("ws");
    let mut req = named("ws2 full");
    req.workspace_id = Some(ws2.id.clone());
    let ws2_key = t.create_key(req).await;
    let ws2_secret = ws2_key.secret.expose_secret().to_owned();
    let mut req = named("default ws");
    req.workspace_id = Some(t.org.default_workspace_id.clone());
    let default_ws = t.create_key(req).await;
    let mut req = named("org reader");
    req.permissions = Some(vec!["contacts:read".into()]);
    let org_reader = t.create_key(req).await;
    for target in [&full, &org_reader, &default_ws] {
        let (status, body, alive) = try_revoke(&t, &ws2_secret, target).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{} {body}", target.key.name);
        assert!(alive, "{}", target.key.name);
    }
    let mut req = named("ws2 child");
    req.workspace_id = Some(ws2.id.clone());
    let ws2_child = t.create_key(req).await;
    let (status, body, alive) = try_revoke(&t, &ws2_secret, &ws2_child).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!alive);

    // A test key cannot revoke a live key; it can revoke a test key.
    let mut req = named("test full");
    req.mode = Some(Mode::Test);
    let test_key = t.create_key(req).await;
    let test_secret = test_key.secret.expose_secret().to_owned();
    let mut req = named("live reader");
    req.permissions = Some(vec!["contacts:read".into()]);
    let live_reader = t.create_key(req).await;
    let (status, body, alive) = try_revoke(&t, &test_secret, &live_reader).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(alive);
    let mut req = named("test child");
    req.mode = Some(Mode::Test);
    let test_child = t.create_key(req).await;
    let (status, body, alive) = try_revoke(&t, &test_secret, &test_child).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!alive);

    // A key may always revoke itself, however narrow.
    let (status, body, alive) = try_revoke(&t, &narrow_secret, &narrow).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "revoked");
    assert!(!alive);
    // The full-access key revokes anything of its organization.
    let (status, body, alive) = try_revoke(&t, full.secret.expose_secret(), &live_reader).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!alive);
    t.finish().await;
}

#[tokio::test]
async fn creation_shows_the_secret_once_and_validates_input() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let (status, created) = t
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "Claude Desktop", "read_only": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("dt_live_"));
    assert_eq!(created["last_four"], &secret[secret.len() - 4..]);
    assert_eq!(created["read_only"], true);
    let id = created["id"].as_str().expect("id");
    assert!(id.starts_with("key_"));
    let (_, fetched) = t.get(&format!("/v1/api-keys/{id}"), &admin).await;
    assert!(fetched.get("secret").is_none());
    assert!(!fetched.to_string().contains(secret));
    assert_eq!(
        fetched["redacted"],
        format!("dt_live_…{}", &secret[secret.len() - 4..])
    );
    // The two-part form `key_…:token` authenticates too, and must match.
    assert_eq!(
        t.get("/v1/me", &format!("{id}:{secret}")).await.0,
        StatusCode::OK
    );
    let other = dialtone_domain::id::new_id("key");
    assert_eq!(
        t.get("/v1/me", &format!("{other}:{secret}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "permissions": ["contacts:delete"]}),
        json!({"name": "x", "read_only": true, "permissions": ["contacts:write"]}),
        json!({"name": "x", "mode": "prod"}),
        json!({"name": "x", "expires_at": "yesterday"}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "colour": "red"}),
        json!({"name": 5}),
    ] {
        let (status, body) = t.post("/v1/api-keys", &admin, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert_eq!(body["error"], "VALIDATION_ERROR", "{bad}");
    }
    t.finish().await;
}

#[tokio::test]
async fn a_brand_is_configurable() {
    let t = TestApp::spawn_with(|c| c.key_brand = "dnx".into()).await;
    let key = t.admin_key().await;
    assert!(key.starts_with("dnx_live_"), "{key}");
    assert_eq!(t.get("/v1/me", &key).await.0, StatusCode::OK);
    t.finish().await;
}

#[tokio::test]
async fn rotation_issues_a_twin_and_retires_the_old_key_when_asked() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let mut req = named("CRM");
    req.permissions = Some(vec!["contacts:write".into()]);
    let old = t.create_key(req).await;
    let old_secret = old.secret.expose_secret().to_owned();

    // Without an expiry, both keys work (deploy, verify, then revoke).
    let (status, first) = t
        .call(
            Method::POST,
            &format!("/v1/api-keys/{}/rotate", old.key.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["name"], "CRM");
    assert_eq!(
        first["permissions"],
        json!(["contacts:read", "contacts:write"])
    );
    assert_eq!(first["rotated_from"], old.key.id);
    let first_secret = first["secret"].as_str().expect("secret").to_owned();
    assert_eq!(t.get("/v1/contacts", &old_secret).await.0, StatusCode::OK);
    assert_eq!(t.get("/v1/contacts", &first_secret).await.0, StatusCode::OK);

    // With `now`, the rotated key stops at once.
    let first_id = first["id"].as_str().expect("id");
    let (status, second) = t
        .post(
            &format!("/v1/api-keys/{first_id}/rotate"),
            &admin,
            json!({"old_key_expires_at": "now"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        t.get("/v1/contacts", &first_secret).await.0,
        StatusCode::UNAUTHORIZED
    );
    let second_secret = second["secret"].as_str().expect("secret");
    assert_eq!(t.get("/v1/contacts", second_secret).await.0, StatusCode::OK);
    let (_, first_now) = t.get(&format!("/v1/api-keys/{first_id}"), &admin).await;
    assert_eq!(first_now["status"], "expired");

    // A retired key cannot be rotated again; a bad expiry is a 400.
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/v1/api-keys/{first_id}/rotate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = t
        .post(
            &format!("/v1/api-keys/{}/rotate", old.key.id),
            &admin,
            json!({"old_key_expires_at": "soon"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.finish().await;
}

#[tokio::test]
async fn usage_is_counted_without_a_write_per_request() {
    let t = TestApp::spawn().await;
    let admin = t.admin_key().await;
    let worker = t.create_key(named("worker")).await;
    let secret = worker.secret.expose_secret().to_owned();
    for _ in 0..3 {
        assert_eq!(t.get("/v1/contacts", &secret).await.0, StatusCode::OK);
    }
    // Nothing has been written yet (the flush interval is an hour in tests) …
    let stored = t
        .store
        .get_key(&t.org.id, &worker.key.id)
        .await
        .expect("key");
    assert_eq!((stored.requests_30d, stored.last_used_at), (0, None));
    // … but the API already shows this node's counts.
    let path = format!("/v1/api-keys/{}", worker.key.id);
    let (_, shown) = t.get(&path, &admin).await;
    assert_eq!(shown["requests_30d"], 3);
    assert_eq!(shown["last_ip"], "127.0.0.1");
    // After a flush, the database holds them.
    t.app().state.flush_usage().await.expect("flush");
    let stored = t
        .store
        .get_key(&t.org.id, &worker.key.id)
        .await
        .expect("key");
    assert_eq!(stored.requests_30d, 3);
    assert_eq!(stored.last_ip.as_deref(), Some("127.0.0.1"));
    assert!(stored.last_used_at.is_some());
    let (_, shown) = t.get(&path, &admin).await;
    assert_eq!(shown["requests_30d"], 3);
    t.finish().await;
}

#[tokio::test]
async fn me_describes_the_calling_key() {
    let t = TestApp::spawn().await;
    let mut req = named("reader");
    req.read_only = true;
    req.mode = Some(Mode::Test);
    let created = t.create_key(req).await;
    let (status, me) = t.get("/v1/me", created.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["key_id"], created.key.id);
    assert_eq!(me["organization_id"], t.org.id);
    assert_eq!(me["mode"], "test");
    assert_eq!(me["read_only"], true);
    assert_eq!(me["scope"], "organization");
    assert_eq!(me["default_workspace_id"], t.org.default_workspace_id);
    assert!(
        me["permissions"]
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p.as_str().is_some_and(|p| p.ends_with(":read")))
    );
    t.finish().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_its_headers() {
    let t = TestApp::spawn_with(|c| c.rate_limit_per_key = 2).await;
    let key = t.admin_key().await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let resp = t
            .request(Method::GET, "/v1/me", Some(&key), None, &[])
            .await;
        assert!(resp.headers().contains_key("ratelimit-limit"));
        assert!(resp.headers().contains_key("ratelimit-remaining"));
        statuses.push(resp.status());
        last = Some(resp);
    }
    assert_eq!(&statuses[..4], &[StatusCode::OK; 4]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    let last = last.expect("response");
    assert!(last.headers().contains_key("retry-after"));
    let body: Value = last.json().await.expect("json");
    assert_eq!(body["error"], "RATE_LIMITED");
    assert_eq!(body["statusCode"], 429);
    t.finish().await;
}
