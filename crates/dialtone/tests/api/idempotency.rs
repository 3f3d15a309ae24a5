//! `Idempotency-Key` on every POST that creates something (and on the other POSTs a
//! retry would repeat): the same key and request give one object, the second answer
//! is a replay (`Idempotent-Replayed: true`, same id); the key with another body, or
//! on another route, is a 409 `CONFLICT`. Creations that show a secret once replay
//! without it, and no secret reaches the idempotency table. The route table is checked
//! so that a new POST must be listed here, as idempotent or exempt with a reason.

use std::collections::BTreeSet;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::idempotency::IdempotencyKey;
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, is_terminal, wait_for_call, with_database};

/// Every POST route that takes `Idempotency-Key`: a retry replays the first answer.
const IDEMPOTENT: &[&str] = &[
    "/v1/api-keys",
    "/v1/api-keys/{id}/rotate",
    "/v1/contacts",
    "/v1/contacts/{id}/notes",
    "/v1/agents",
    "/v1/phone-numbers",
    "/v1/phone-numbers/import",
    "/v1/campaigns",
    "/v1/calls",
    "/v1/conversations/{id}/notes",
    "/v1/messages",
    "/v1/webhooks",
    "/v1/hooks",
    "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    "/v1/webhooks/{id}/recover",
    "/v1/webhooks/{id}/test",
    "/v1/webhooks/{id}/rotate-secret",
];

/// POST routes that do not take `Idempotency-Key`, and why a retry is harmless.
const EXEMPT: &[(&str, &str)] = &[(
    "/v1/calls/{id}/hangup",
    "idempotent by nature: a second hang-up changes nothing and answers 409 (the call already ended)",
)];

#[test]
fn every_post_route_is_idempotent_or_exempt_with_a_reason() {
    let doc: Value =
        serde_json::from_str(&dialtone_api::openapi::document_json()).expect("document");
    let posts: BTreeSet<&str> = dialtone_api::router::table()
        .iter()
        .filter(|r| r.method == Method::POST)
        .map(|r| r.path)
        .collect();
    for path in &posts {
        let idempotent = IDEMPOTENT.contains(path);
        let exempt = EXEMPT
            .iter()
            .any(|(p, reason)| p == path && !reason.is_empty());
        assert!(
            idempotent ^ exempt,
            "POST {path}: list it in IDEMPOTENT (and honour Idempotency-Key) or in EXEMPT with a reason"
        );
        let op = &doc["paths"][*path]["post"];
        let declares_header = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        let declares_409 = op["responses"]["409"].is_object();
        if idempotent {
            assert!(
                declares_header,
                "POST {path} does not declare Idempotency-Key"
            );
            assert!(declares_409, "POST {path} does not declare 409");
        } else {
            assert!(
                !declares_header,
                "POST {path} is exempt but declares Idempotency-Key"
            );
        }
    }
    for path in IDEMPOTENT {
        assert!(posts.contains(path), "{path} is no POST route");
    }
}

/// How to count what a case creates.
enum Count {
    /// `data` of a list endpoint (one page of 100 is plenty here).
    List(String),
    /// REST hooks have no list route; the store counts them.
    Hooks,
}

struct Case {
    /// The route template (an entry of [`IDEMPOTENT`]).
    route: &'static str,
    path: String,
    /// `None`: the route takes no body.
    body: Option<Value>,
    /// Another body for the same path (a 409 with the same key).
    other: Option<Value>,
    count: Count,
    /// How many objects one request adds (`None`: the answer's `queued`).
    adds: Option<usize>,
    fresh: StatusCode,
    replayed: StatusCode,
    /// The answer's field that holds the new object's id.
    id: &'static str,
    /// The field holding a secret shown once: present fresh, absent replayed.
    secret: Option<&'static str>,
}

impl Case {
    fn new(route: &'static str, path: impl Into<String>, body: Value, other: Value) -> Case {
        Case {
            route,
            path: path.into(),
            body: Some(body),
            other: Some(other),
            count: Count::List(String::new()),
            adds: Some(1),
            fresh: StatusCode::CREATED,
            replayed: StatusCode::CREATED,
            id: "id",
            secret: None,
        }
    }

    fn counted(mut self, list: impl Into<String>) -> Case {
        self.count = Count::List(list.into());
        self
    }

    fn secret(mut self, field: &'static str, replayed: StatusCode) -> Case {
        self.secret = Some(field);
        self.replayed = replayed;
        self
    }
}

async fn send(
    t: &TestApp,
    key: &str,
    path: &str,
    idem: &str,
    body: Option<&Value>,
) -> (StatusCode, bool, Value) {
    let mut rb = t
        .client
        .post(format!("{}{path}", t.url))
        .bearer_auth(key)
        .header("Idempotency-Key", idem);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status();
    let replayed = match resp.headers().get("idempotent-replayed") {
        None => false,
        Some(v) => {
            assert_eq!(v, "true", "{path}");
            true
        }
    };
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, replayed, body)
}

fn scope(t: &TestApp) -> Scope {
    Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Test,
    }
}

async fn count(t: &TestApp, key: &str, c: &Count) -> usize {
    match c {
        Count::List(path) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            let (status, list) = t.get(&format!("{path}{sep}limit=100"), key).await;
            assert_eq!(status, StatusCode::OK, "{path}: {list}");
            list["data"].as_array().expect("data").len()
        }
        Count::Hooks => {
            let page = PageRequest::new(Some(100), None).expect("page");
            t.store
                .scoped(&scope(t))
                .list_endpoints("hook", &page)
                .await
                .expect("hooks")
                .len()
        }
    }
}

fn assert_conflict(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::CONFLICT, "{what}: {body}");
    assert_eq!(body["statusCode"], 409, "{what}: {body}");
    assert_eq!(body["error"], "CONFLICT", "{what}: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Idempotency-Key")),
        "{what}: {body}"
    );
}

/// Runs one case with `idem`; returns the first answer.
async fn check(t: &TestApp, key: &str, case: &Case, idem: &str) -> Value {
    let what = format!("POST {}", case.path);
    let before = count(t, key, &case.count).await;
    let (status, replayed, first) = send(t, key, &case.path, idem, case.body.as_ref()).await;
    assert_eq!(status, case.fresh, "{what}: {first}");
    assert!(!replayed, "{what}: a first request is no replay");
    let (status, replayed, again) = send(t, key, &case.path, idem, case.body.as_ref()).await;
    assert_eq!(status, case.replayed, "{what} replayed: {again}");
    assert!(
        replayed,
        "{what}: the retry carries Idempotent-Replayed: true"
    );
    assert!(first[case.id].is_string(), "{what}: {first}");
    assert_eq!(again[case.id], first[case.id], "{what}: the same object");
    match case.secret {
        Some(field) => {
            assert!(
                first[field].as_str().is_some_and(|s| s.len() > 8),
                "{what}: {first}"
            );
            assert!(
                again.get(field).is_none(),
                "{what}: a replay never shows the secret: {again}"
            );
        }
        None => assert_eq!(again, first, "{what}: the replay is the first answer"),
    }
    let adds = case
        .adds
        .unwrap_or_else(|| first["queued"].as_u64().expect("queued") as usize);
    let after = count(t, key, &case.count).await;
    assert_eq!(after, before + adds, "{what}: done once");
    if let Some(other) = &case.other {
        let (status, _, err) = send(t, key, &case.path, idem, Some(other)).await;
        assert_conflict(status, &err, &format!("{what} with another body"));
    }
    // The key on another route: keys are kept per workspace and mode, and fingerprinted
    // with method, path and body, so it is another request: 409.
    let (elsewhere, body) = if case.route == "/v1/agents" {
        ("/v1/calls", json!({"to": "+14155550199"}))
    } else {
        ("/v1/agents", json!({"name": "Elsewhere"}))
    };
    let (status, _, err) = send(t, key, elsewhere, idem, Some(&body)).await;
    assert_conflict(status, &err, &format!("{what}'s key on {elsewhere}"));
    assert_eq!(
        count(t, key, &case.count).await,
        after,
        "{what}: nothing more"
    );
    first
}

/// The stored answers of the idempotency table, as the database holds them.
async fn idempotency_rows(t: &TestApp) -> Vec<u8> {
    match &t.db {
        TestDb::Sqlite(dir) => {
            // Everything SQLite keeps: the database, its WAL and shared memory.
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir).expect("data dir") {
                bytes.extend(std::fs::read(entry.expect("entry").path()).unwrap_or_default());
            }
            bytes
        }
        TestDb::Postgres { admin_url, name } => {
            let pool = sqlx::PgPool::connect(&with_database(admin_url, name))
                .await
                .expect("connect");
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT idem_key || ' ' || fingerprint || ' ' || body FROM idempotency_keys",
            )
            .fetch_all(&pool)
            .await
            .expect("rows");
            pool.close().await;
            assert!(!rows.is_empty());
            rows.join("\n").into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn every_creating_post_honours_idempotency_key() {
    let t = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let hook_url = "http://127.0.0.1:9/hook";
    let mut covered = BTreeSet::new();
    let mut secrets: Vec<(String, String, String)> = Vec::new();
    let mut run = async |case: Case, idem: &str| {
        covered.insert(case.route);
        let first = check(&t, &key, &case, idem).await;
        if let Some(field) = case.secret {
            secrets.push((
                idem.to_owned(),
                case.path.clone(),
                first[field].as_str().expect("secret").to_owned(),
            ));
        }
        first
    };

    let contacts = Case::new(
        "/v1/contacts",
        "/v1/contacts",
        json!({"first_name": "Ada"}),
        json!({"first_name": "Bob"}),
    )
    .counted("/v1/contacts");
    let contact = run(contacts, "contact-1").await;
    let notes = format!("/v1/contacts/{}/notes", contact["id"].as_str().expect("id"));
    run(
        Case::new(
            "/v1/contacts/{id}/notes",
            &notes,
            json!({"content": "Prefers mornings."}),
            json!({"content": "Prefers evenings."}),
        )
        .counted(&notes),
        "contact-note-1",
    )
    .await;
    let agent = run(
        Case::new(
            "/v1/agents",
            "/v1/agents",
            json!({"name": "Renewals"}),
            json!({"name": "Support"}),
        )
        .counted("/v1/agents"),
        "agent-1",
    )
    .await;
    run(
        Case::new(
            "/v1/phone-numbers",
            "/v1/phone-numbers",
            json!({}),
            json!({"type": "toll_free"}),
        )
        .counted("/v1/phone-numbers"),
        "number-1",
    )
    .await;
    run(
        Case::new(
            "/v1/messages",
            "/v1/messages",
            json!({"to": "+14155550123", "body": "See you Thursday."}),
            json!({"to": "+14155550123", "body": "See you Friday."}),
        )
        .counted("/v1/messages"),
        "message-1",
    )
    .await;
    let call = run(
        Case::new(
            "/v1/calls",
            "/v1/calls",
            json!({"to": "+14155550123"}),
            json!({"to": "+14155550124"}),
        )
        .counted("/v1/calls"),
        "call-1",
    )
    .await;
    let call = wait_for_call(&t, &key, call["id"].as_str().expect("id"), is_terminal).await;
    let notes = format!(
        "/v1/conversations/{}/notes",
        call["conversation_id"].as_str().expect("conversation")
    );
    run(
        Case::new(
            "/v1/conversations/{id}/notes",
            &notes,
            json!({"content": "Call back Monday."}),
            json!({"content": "Call back Tuesday."}),
        )
        .counted(&notes),
        "conversation-note-1",
    )
    .await;
    run(
        Case::new(
            "/v1/campaigns",
            "/v1/campaigns",
            json!({"name": "November", "agent_id": agent["id"], "recipients": ["+14155550125"]}),
            json!({"name": "December", "agent_id": agent["id"], "recipients": ["+14155550125"]}),
        )
        .counted("/v1/campaigns"),
        "campaign-1",
    )
    .await;
    let webhook = run(
        Case::new(
            "/v1/webhooks",
            "/v1/webhooks",
            json!({"url": hook_url, "events": ["contact.deleted"]}),
            json!({"url": hook_url, "events": ["contact.updated"]}),
        )
        .counted("/v1/webhooks")
        .secret("secret", StatusCode::OK),
        "webhook-1",
    )
    .await;
    let mut hook = Case::new(
        "/v1/hooks",
        "/v1/hooks",
        json!({"url": hook_url, "event": "contact.deleted"}),
        json!({"url": hook_url, "event": "contact.updated"}),
    )
    .secret("secret", StatusCode::OK);
    hook.count = Count::Hooks;
    run(hook, "hook-1").await;
    let created_key = run(
        Case::new(
            "/v1/api-keys",
            "/v1/api-keys",
            json!({"name": "Reporting"}),
            json!({"name": "Billing"}),
        )
        .counted("/v1/api-keys")
        .secret("secret", StatusCode::OK),
        "api-key-1",
    )
    .await;
    let mut rotate = Case::new(
        "/v1/api-keys/{id}/rotate",
        format!(
            "/v1/api-keys/{}/rotate",
            created_key["id"].as_str().expect("id")
        ),
        json!({}),
        json!({"old_key_expires_at": "now"}),
    )
    .counted("/v1/api-keys")
    .secret("secret", StatusCode::OK);
    rotate.fresh = StatusCode::CREATED;
    run(rotate, "api-key-rotate-1").await;

    let whk = webhook["id"].as_str().expect("id").to_owned();
    let deliveries = format!("/v1/webhooks/{whk}/deliveries");
    let mut test = Case::new(
        "/v1/webhooks/{id}/test",
        format!("/v1/webhooks/{whk}/test"),
        json!({}),
        json!({}),
    )
    .counted(&deliveries);
    test.body = None;
    test.other = None;
    test.fresh = StatusCode::ACCEPTED;
    test.replayed = StatusCode::ACCEPTED;
    run(test, "test-event-1").await;
    let (_, list) = t.get(&deliveries, &key).await;
    let delivery = list["data"][0]["id"].as_str().expect("delivery").to_owned();
    let mut redeliver = Case::new(
        "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        format!("/v1/webhooks/{whk}/deliveries/{delivery}/redeliver"),
        json!({}),
        json!({}),
    )
    .counted(&deliveries);
    redeliver.body = None;
    redeliver.other = None;
    redeliver.fresh = StatusCode::ACCEPTED;
    redeliver.replayed = StatusCode::ACCEPTED;
    run(redeliver, "redeliver-1").await;
    let mut recover = Case::new(
        "/v1/webhooks/{id}/recover",
        format!("/v1/webhooks/{whk}/recover"),
        json!({"since": "2026-01-01T00:00:00Z"}),
        json!({"since": "2026-01-02T00:00:00Z"}),
    )
    .counted(&deliveries);
    recover.adds = None;
    recover.fresh = StatusCode::ACCEPTED;
    recover.replayed = StatusCode::ACCEPTED;
    recover.id = "object";
    run(recover, "recover-1").await;
    let mut rotate_secret = Case::new(
        "/v1/webhooks/{id}/rotate-secret",
        format!("/v1/webhooks/{whk}/rotate-secret"),
        json!({}),
        json!({}),
    )
    .counted("/v1/webhooks")
    .secret("secret", StatusCode::OK);
    rotate_secret.body = None;
    rotate_secret.other = None;
    rotate_secret.fresh = StatusCode::OK;
    rotate_secret.adds = Some(0);
    run(rotate_secret, "rotate-secret-1").await;

    // Importing needs a live carrier account; the key of another request is refused
    // before anything else.
    covered.insert("/v1/phone-numbers/import");
    let (status, _, err) = send(
        &t,
        &key,
        "/v1/phone-numbers/import",
        "agent-1",
        Some(&json!({"phone_number": "+14155550188"})),
    )
    .await;
    assert_conflict(status, &err, "import with a used key");

    let listed: BTreeSet<&str> = IDEMPOTENT.iter().copied().collect();
    assert_eq!(covered, listed, "every idempotent route has a case here");

    // Secrets are shown once and never stored: not in the stored answers (read back
    // through the store), not anywhere in the table.
    assert_eq!(secrets.len(), 5);
    let test_scope = scope(&t);
    let store = t.store.scoped(&test_scope);
    let rows = idempotency_rows(&t).await;
    for (idem, path, secret) in &secrets {
        let lookup = IdempotencyKey::new(idem, "POST", path, b"").expect("key");
        let stored = store
            .idempotent_response(&lookup)
            .await
            .expect("read")
            .expect("stored");
        assert!(
            !stored.body.contains(secret.as_str()),
            "{path}: {}",
            stored.body
        );
        assert!(
            !stored.body.contains("\"secret\""),
            "{path}: {}",
            stored.body
        );
        assert!(!contains(&rows, secret), "{path}: its secret is stored");
    }
    t.finish().await;
}

/// Two keys of one workspace and mode share the key space; another mode does not.
#[tokio::test]
async fn keys_are_kept_per_workspace_and_mode() {
    let t = TestApp::spawn().await;
    let test_key = |name: &str| KeyRequest {
        name: name.into(),
        mode: Some(Mode::Test),
        ..Default::default()
    };
    let a = t.key(test_key("a")).await;
    let b = t.key(test_key("b")).await;
    let live = t.admin_key().await;
    let body = json!({"name": "Renewals"});
    let (status, _, first) = send(&t, &a, "/v1/agents", "shared", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, replayed, again) = send(&t, &b, "/v1/agents", "shared", Some(&body)).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, replayed, other) = send(&t, &live, "/v1/agents", "shared", Some(&body)).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{other}");
    assert_ne!(other["id"], first["id"]);
    // An invalid key is a 400 in the error shape, and creates nothing.
    let (status, _, err) = send(&t, &a, "/v1/agents", " ", Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["statusCode"], 400);
    let (_, list) = t.call(Method::GET, "/v1/agents", Some(&a), None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    t.finish().await;
}

/// Concurrent requests with one key (a client retrying before the first answer): one
/// object, one fresh answer, the others replays of it.
#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_object() {
    let t = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let (_, target) = t
        .post("/v1/api-keys", &key, json!({"name": "To rotate"}))
        .await;
    let rotate = format!("/v1/api-keys/{}/rotate", target["id"].as_str().expect("id"));
    let cases = [
        ("/v1/agents", json!({"name": "Renewals"}), "/v1/agents"),
        ("/v1/api-keys", json!({"name": "Reporting"}), "/v1/api-keys"),
        (rotate.as_str(), json!({}), "/v1/api-keys"),
        (
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["contact.deleted"]}),
            "/v1/webhooks",
        ),
    ];
    for (i, (path, body, list)) in cases.into_iter().enumerate() {
        let before = count(&t, &key, &Count::List(list.to_owned())).await;
        let idem = format!("race-{i}");
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let rb = t
                    .client
                    .post(format!("{}{path}", t.url))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", &idem)
                    .json(&body);
                tokio::spawn(async move {
                    let resp = rb.send().await.expect("send");
                    let status = resp.status();
                    let replayed = resp.headers().contains_key("idempotent-replayed");
                    let body: Value = resp.json().await.expect("json");
                    (status, replayed, body)
                })
            })
            .collect();
        let mut ids = BTreeSet::new();
        let mut fresh = 0;
        for h in handles {
            let (status, replayed, body) = h.await.expect("join");
            assert!(status.is_success(), "{path}: {body}");
            if !replayed {
                fresh += 1;
            }
            ids.insert(body["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(fresh, 1, "{path}: one fresh answer");
        assert_eq!(ids.len(), 1, "{path}: one object");
        let after = count(&t, &key, &Count::List(list.to_owned())).await;
        assert_eq!(after, before + 1, "{path}");
    }
    t.finish().await;
}
