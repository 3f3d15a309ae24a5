//! Leaked keys reported by secret scanners (`POST /v1/secret-scanning/report`, issue
//! 15 part 3): GitHub's partner-program format, signed with ECDSA P-256 keys made here
//! and configured the way an operator does (a public-keys file).

use std::sync::Arc;

use base64::Engine;
use dialtone_api::ServerConfig;
use dialtone_api::secret_scanning::{LeakAction, ReporterKeys};
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::keys::generate;
use dialtone_domain::tenancy::Mode;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{TestApp, unauthorized_body};

const PATH: &str = "/v1/secret-scanning/report";
const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// A reporter: its signing key and the identifier it signs under.
struct Reporter {
    signing: SigningKey,
    id: String,
}

impl Reporter {
    fn new(id: &str) -> Reporter {
        Reporter {
            signing: SigningKey::generate(),
            id: id.to_owned(),
        }
    }

    /// Its entry of a public-keys file.
    fn entry(&self) -> Value {
        let pem = self
            .signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        json!({"key_identifier": self.id, "key": pem, "is_current": true})
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig: Signature = self.signing.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

/// Writes the keys file of `reporters` and loads it as `--secret-scanning-keys` does.
fn configure(config: &mut ServerConfig, reporters: &[&Reporter], action: LeakAction) {
    let file = json!({"public_keys": reporters.iter().map(|r| r.entry()).collect::<Vec<_>>()});
    let path = std::env::temp_dir().join(format!(
        "{}.json",
        dialtone_domain::id::new_id("scanning-keys")
    ));
    std::fs::write(&path, file.to_string()).expect("write keys file");
    let keys = ReporterKeys::load(&path).expect("keys file loads");
    let _ = std::fs::remove_file(&path);
    config.secret_scanning_keys = Some(Arc::new(keys));
    config.secret_scanning_action = action;
}

fn body(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"token": t, "type": "dialtone_api_key",
                   "url": "https://github.com/octo/leaky/blob/abc123/.env", "source": "content"})
        })
        .collect();
    serde_json::to_vec(&items).expect("json")
}

/// Posts `body` with the given signature headers; the status and JSON answer.
async fn post(t: &TestApp, body: Vec<u8>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut rb = t
        .client
        .post(format!("{}{PATH}", t.url))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let json = resp.json().await.unwrap_or(Value::Null);
    (status, json)
}

async fn report(t: &TestApp, by: &Reporter, tokens: &[&str]) -> (StatusCode, Value) {
    let body = body(tokens);
    let sig = by.sign(&body);
    post(
        t,
        body,
        &[
            ("Github-Public-Key-Identifier", &by.id),
            ("Github-Public-Key-Signature", &sig),
        ],
    )
    .await
}

fn labels(answer: &Value) -> Vec<&str> {
    answer
        .as_array()
        .expect("an array")
        .iter()
        .map(|l| l["label"].as_str().expect("label"))
        .collect()
}

/// The events of `type` a key sees in the log.
async fn events(t: &TestApp, key: &str, event_type: &str) -> Vec<Value> {
    let (status, page) = t
        .get(&format!("/v1/events?type={event_type}&limit=100"), key)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().expect("data").clone()
}

async fn audit_count(t: &TestApp, action: &str, target: &str) -> usize {
    t.store
        .list_audit(&t.org.id, 100)
        .await
        .expect("audit")
        .iter()
        .filter(|e| e.action == action && e.target == target)
        .count()
}

fn key(name: &str, mode: Mode) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        mode: Some(mode),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_signed_report_revokes_a_live_key_at_once_and_a_replay_changes_nothing() {
    let github = Reporter::new(KEY_ID);
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Revoke)).await;
    let owner = t.admin_key().await;
    let leaked = t.create_key(key("CI deploy", Mode::Live)).await;
    let token = leaked.secret.expose_secret().to_owned();
    // In this node's cache before the report: the revocation must evict it.
    assert_eq!(t.get("/v1/me", &token).await.0, StatusCode::OK);

    let (status, answer) = report(&t, &github, &[&token]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!([{"token_raw": token, "token_type": "dialtone_api_key", "label": "true_positive"}])
    );
    let (status, body) = t.get("/v1/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, unauthorized_body());
    let (_, view) = t
        .get(&format!("/v1/api-keys/{}", leaked.key.id), &owner)
        .await;
    assert_eq!(view["status"], "revoked");

    let leaks = events(&t, &owner, "api_key.leaked").await;
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    let object = &leaks[0]["data"]["object"];
    assert_eq!(object["object"], "api_key_leak");
    assert_eq!(object["action"], "revoked");
    assert_eq!(object["reporter"], "github_secret_scanning");
    assert_eq!(
        object["url"],
        "https://github.com/octo/leaky/blob/abc123/.env"
    );
    assert_eq!(object["source"], "content");
    assert_eq!(object["key"]["id"], leaked.key.id.as_str());
    assert_eq!(object["key"]["status"], "revoked");
    assert!(
        !leaks[0].to_string().contains(&token),
        "no secret in events"
    );
    assert_eq!(events(&t, &owner, "api_key.revoked").await.len(), 1);
    assert_eq!(audit_count(&t, "api_key.leaked", &leaked.key.id).await, 1);
    assert_eq!(audit_count(&t, "api_key.revoked", &leaked.key.id).await, 1);
    let entries = t.store.list_audit(&t.org.id, 100).await.expect("audit");
    let entry = entries
        .iter()
        .find(|e| e.action == "api_key.leaked")
        .expect("leak audited");
    assert_eq!(entry.actor, "github_secret_scanning");
    assert!(
        entry
            .detail
            .contains("https://github.com/octo/leaky/blob/abc123/.env")
    );
    assert!(!entry.detail.contains(&token));

    // The same report again (GitHub retries): the same answer, nothing more written.
    let (status, again) = report(&t, &github, &[&token]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, answer);
    assert_eq!(events(&t, &owner, "api_key.leaked").await.len(), 1);
    assert_eq!(events(&t, &owner, "api_key.revoked").await.len(), 1);
    assert_eq!(audit_count(&t, "api_key.leaked", &leaked.key.id).await, 1);
    assert_eq!(audit_count(&t, "api_key.revoked", &leaked.key.id).await, 1);
    // The owner still works.
    assert_eq!(t.get("/v1/me", &owner).await.0, StatusCode::OK);
    t.finish().await;
}

#[tokio::test]
async fn test_keys_and_a_flagging_server_only_flag() {
    let github = Reporter::new(KEY_ID);
    // Revoking server: a test key is flagged, not revoked.
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Revoke)).await;
    let test_owner = t.key(key("test admin", Mode::Test)).await;
    let leaked = t.key(key("test CI", Mode::Test)).await;
    let (status, answer) = report(&t, &github, &[&leaked]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(labels(&answer), ["true_positive"]);
    assert_eq!(t.get("/v1/me", &leaked).await.0, StatusCode::OK);
    let leaks = events(&t, &test_owner, "api_key.leaked").await;
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0]["data"]["object"]["action"], "flagged");
    assert_eq!(leaks[0]["livemode"], false);
    assert_eq!(leaks[0]["data"]["object"]["key"]["status"], "active");
    report(&t, &github, &[&leaked]).await;
    assert_eq!(events(&t, &test_owner, "api_key.leaked").await.len(), 1);
    t.finish().await;

    // Flagging server: a live key keeps working, its owners are told.
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Flag)).await;
    let owner = t.admin_key().await;
    let leaked = t.create_key(key("CRM", Mode::Live)).await;
    let token = leaked.secret.expose_secret().to_owned();
    let (status, answer) = report(&t, &github, &[&token]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(labels(&answer), ["true_positive"]);
    assert_eq!(t.get("/v1/me", &token).await.0, StatusCode::OK);
    let leaks = events(&t, &owner, "api_key.leaked").await;
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0]["data"]["object"]["action"], "flagged");
    assert!(events(&t, &owner, "api_key.revoked").await.is_empty());
    assert_eq!(audit_count(&t, "api_key.leaked", &leaked.key.id).await, 1);
    assert_eq!(audit_count(&t, "api_key.revoked", &leaked.key.id).await, 0);
    t.finish().await;
}

#[tokio::test]
async fn unsigned_unknown_or_badly_signed_reports_get_401_and_change_nothing() {
    let github = Reporter::new(KEY_ID);
    let stranger = Reporter::new("someone-else");
    let impostor = Reporter::new(KEY_ID); // GitHub's identifier, another key
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Revoke)).await;
    let owner = t.admin_key().await;
    let leaked = t.key(key("target", Mode::Live)).await;
    let b = body(&[&leaked]);
    let good = github.sign(&b);
    let other_body = github.sign(&body(&["something else"]));
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no headers", vec![]),
        (
            "no signature",
            vec![("Github-Public-Key-Identifier", KEY_ID.to_owned())],
        ),
        (
            "no identifier",
            vec![("Github-Public-Key-Signature", good.clone())],
        ),
        (
            "unknown identifier",
            vec![
                ("Github-Public-Key-Identifier", stranger.id.clone()),
                ("Github-Public-Key-Signature", stranger.sign(&b)),
            ],
        ),
        (
            "signed by another key",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", impostor.sign(&b)),
            ],
        ),
        (
            "signature of another body",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", other_body),
            ],
        ),
        (
            "not base64",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", "%%%not-base64%%%".to_owned()),
            ],
        ),
        (
            "not a signature",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
                ("Github-Public-Key-Signature", "AAAA".to_owned()),
            ],
        ),
    ];
    for (what, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, answer) = post(&t, b.clone(), &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer, unauthorized_body(), "{what}");
    }
    assert_eq!(t.get("/v1/me", &leaked).await.0, StatusCode::OK);
    assert!(events(&t, &owner, "api_key.leaked").await.is_empty());
    assert!(events(&t, &owner, "api_key.revoked").await.is_empty());
    // A correctly signed body that is not a report: 400, nothing done.
    let junk = b"{\"token\": 1}".to_vec();
    let sig = github.sign(&junk);
    let (status, answer) = post(
        &t,
        junk,
        &[
            ("Github-Public-Key-Identifier", KEY_ID),
            ("Github-Public-Key-Signature", &sig),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"], "VALIDATION_ERROR");
    // GitHub's own shape of the good report still works.
    let (status, _) = post(
        &t,
        b,
        &[
            ("Github-Public-Key-Identifier", KEY_ID),
            ("Github-Public-Key-Signature", &good),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.get("/v1/me", &leaked).await.0, StatusCode::UNAUTHORIZED);
    t.finish().await;
}

#[tokio::test]
async fn other_brands_malformed_and_unknown_tokens_are_false_positives() {
    let github = Reporter::new(KEY_ID);
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Revoke)).await;
    let owner = t.admin_key().await;
    let real = t.key(key("real", Mode::Live)).await;
    let other_brand = generate("dnx", Mode::Live)
        .secret
        .expose_secret()
        .to_owned();
    let unknown = generate("dt", Mode::Live).secret.expose_secret().to_owned();
    let mut typo = real.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let tokens = [
        other_brand.as_str(),
        "dt_live_not-a-key",
        "",
        typo.as_str(),
        unknown.as_str(),
        real.as_str(),
    ];
    let (status, answer) = report(&t, &github, &tokens).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        labels(&answer),
        [
            "false_positive",
            "false_positive",
            "false_positive",
            "false_positive",
            "false_positive",
            "true_positive"
        ]
    );
    // GitHub's answer shape: exactly these three fields, the token echoed as reported.
    for (line, token) in answer.as_array().expect("array").iter().zip(tokens) {
        let fields: Vec<&str> = line
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(line["token_raw"], token);
        assert_eq!(line["token_type"], "dialtone_api_key");
    }
    assert_eq!(events(&t, &owner, "api_key.leaked").await.len(), 1);
    assert_eq!(t.get("/v1/me", &owner).await.0, StatusCode::OK);
    // An empty report is answered with an empty list.
    let (status, answer) = report(&t, &github, &[]).await;
    assert_eq!((status, answer), (StatusCode::OK, json!([])));
    t.finish().await;
}

#[tokio::test]
async fn without_configured_keys_the_route_does_not_exist() {
    let github = Reporter::new(KEY_ID);
    let t = TestApp::spawn().await;
    let leaked = t.key(key("k", Mode::Live)).await;
    let (status, answer) = report(&t, &github, &[&leaked]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "NOT_FOUND");
    assert_eq!(t.get("/v1/me", &leaked).await.0, StatusCode::OK);
    // Not behind the bearer layer: a key changes nothing either.
    let (status, _) = t
        .call(Method::POST, PATH, Some(&leaked), Some(json!([])))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.finish().await;
}

#[tokio::test]
async fn the_dashboard_keys_page_names_where_a_key_was_found() {
    let github = Reporter::new(KEY_ID);
    let t = TestApp::spawn_with(|c| configure(c, &[&github], LeakAction::Revoke)).await;
    let leaked = t.key(key("Billing sync", Mode::Live)).await;
    report(&t, &github, &[&leaked]).await;
    let page = keys_page(&t).await;
    assert!(
        page.contains("Leaked key reported by GitHub secret scanning"),
        "{page}"
    );
    assert!(page.contains("Billing sync"));
    assert!(page.contains("https://github.com/octo/leaky/blob/abc123/.env"));
    assert!(!page.contains(&leaked));
    t.finish().await;
}

/// The dashboard's keys page, as an owner signed in with a browser sees it.
async fn keys_page(t: &TestApp) -> String {
    use crate::dashboard::{PASSWORD, browser, csrf_field, set_cookie, user};
    use reqwest::header::COOKIE;
    user(t, "owner@example.com", dialtone_domain::users::Role::Owner).await;
    let resp = browser()
        .get(format!("{}/login", t.url))
        .send()
        .await
        .expect("login page");
    let (csrf_cookie, _) = set_cookie(&resp, "dt_csrf").expect("csrf cookie");
    let csrf = csrf_field(&resp.text().await.expect("html"));
    let resp = browser()
        .post(format!("{}/login", t.url))
        .header(COOKIE, format!("dt_csrf={csrf_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::dashboard::urlencoded(&[
            ("csrf", csrf.as_str()),
            ("email", "owner@example.com"),
            ("password", PASSWORD),
        ]))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (session, _) = set_cookie(&resp, "dt_session").expect("session cookie");
    let resp = browser()
        .get(format!("{}/dashboard/keys", t.url))
        .header(COOKIE, format!("dt_session={session}"))
        .send()
        .await
        .expect("keys page");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.expect("html")
}
