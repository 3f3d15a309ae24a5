//! OAuth sign-in for remote MCP clients, over real HTTP: discovery from the 401,
//! dynamic registration, the consent page (signed-in session, CSRF), the code flow
//! with PKCE, tokens bound to `/mcp`, refresh rotation, revocation on the keys page,
//! Client ID Metadata Documents (one over https, used by the Python SDK), and the
//! refusals (another resource, a wrong verifier, plain PKCE, an unregistered
//! redirect, a code used twice or expired, a metadata document on a private address
//! or under an untrusted certificate, a forged consent).

use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, WWW_AUTHENTICATE};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::dashboard::{FormExt, Signed, browser, page, sign_in, submit, user};

/// A PKCE pair computed independently (Python's hashlib + base64).
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92IQhuXNQ5mnkzeJeHk5g1Py4e3k";
const CHALLENGE: &str = "gBfo70xM_t6SP6sXWV37fP__JRwRvX2KamTHICcE1Qc";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn register(t: &TestApp, name: &str, redirect: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/register", t.url))
        .json(&json!({"client_name": name, "redirect_uris": [redirect],
                      "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    body["client_id"].as_str().expect("client_id").to_owned()
}

/// The authorization request's parameters; `extra` replaces or adds some.
fn params(t: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let resource = format!("{}/mcp", t.url);
    let mut p: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("scope", "read write"),
        ("resource", resource.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        p.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            p.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    p
}

fn query(p: &[(String, String)]) -> String {
    crate::dashboard::urlencoded(
        &p.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
}

/// Posts the consent form as the page would, with `fields` (decision, access, …).
async fn consent(
    t: &TestApp,
    s: &Signed,
    p: &[(String, String)],
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut all: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(fields);
    submit(t, s, "/dashboard/oauth/authorize", &all).await
}

/// The query parameters of a redirect's `Location`.
fn location(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .expect("a redirect")
        .to_str()
        .expect("ascii");
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = loc.split_once('?').map_or("", |(_, q)| q);
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn token(t: &TestApp, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/token", t.url))
        .form(fields)
        .send()
        .await
        .expect("token");
    let status = resp.status();
    (status, resp.json().await.expect("json"))
}

async fn exchange(t: &TestApp, client_id: &str, code: &str) -> (StatusCode, Value) {
    let resource = format!("{}/mcp", t.url);
    token(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
            ("resource", &resource),
        ],
    )
    .await
}

/// An owner signed in, a registered client, an approved read-only consent: the code.
struct Approved {
    signed: Signed,
    client_id: String,
    code: String,
}

async fn approved(t: &TestApp, access: &[(&str, &str)]) -> Approved {
    user(t, "owner@example.com", Role::Owner).await;
    let signed = sign_in(t, "owner@example.com").await;
    let client_id = register(t, "Claude", REDIRECT).await;
    let p = params(t, &client_id, &[]);
    let mut fields = vec![("decision", "approve")];
    fields.extend_from_slice(access);
    let resp = consent(t, &signed, &p, &fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = location(&resp);
    assert_eq!(get(&back, "state"), Some("st-123"));
    assert_eq!(get(&back, "iss"), Some(t.url.as_str()));
    let code = get(&back, "code").expect("a code").to_owned();
    Approved {
        signed,
        client_id,
        code,
    }
}

/// The status of an MCP `initialize` with `bearer`: 200 when the token is good.
async fn mcp_status(t: &TestApp, bearer: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/mcp", t.url))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "by-hand", "version": "1"}}}),
        )
        .send()
        .await
        .expect("mcp")
        .status()
}

async fn tool_names(t: &TestApp, bearer: &str) -> Vec<String> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", t.url)).auth_header(bearer),
    );
    let client = ().serve(transport).await.expect("connect rmcp client");
    let tools = client.list_all_tools().await.expect("tools/list");
    let _ = client.cancel().await;
    tools.into_iter().map(|t| t.name.to_string()).collect()
}

#[tokio::test]
async fn a_401_from_mcp_leads_to_the_metadata() {
    let t = TestApp::spawn().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", t.url))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("mcp");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .expect("ascii")
        .to_owned();
    let prm_url = format!("{}/.well-known/oauth-protected-resource/mcp", t.url);
    // It names the first scope to ask for: read-only (a write steps up later).
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{prm_url}\", scope=\"read\"")
    );
    // A wrong token is challenged the same way.
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", t.url))
        .bearer_auth("dt_oat_nope")
        .send()
        .await
        .expect("mcp");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(WWW_AUTHENTICATE).is_some());

    let prm: Value = reqwest::get(&prm_url)
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], format!("{}/mcp", t.url));
    assert_eq!(prm["authorization_servers"], json!([t.url]));
    let root: Value = reqwest::get(format!("{}/.well-known/oauth-protected-resource", t.url))
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(root, prm);
    let asm: Value = reqwest::get(format!("{}/.well-known/oauth-authorization-server", t.url))
        .await
        .expect("asm")
        .json()
        .await
        .expect("json");
    assert_eq!(asm["issuer"], t.url);
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    // Every scope a step-up may ask for is listed, in both documents.
    for doc in [&asm, &prm] {
        let scopes = doc["scopes_supported"].as_array().expect("scopes");
        for s in [
            "read",
            "write",
            "contacts:read",
            "messages:write",
            "calls:write",
        ] {
            assert!(scopes.contains(&json!(s)), "{s} missing from {doc}");
        }
    }
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        asm["registration_endpoint"],
        format!("{}/oauth/register", t.url)
    );
    t.finish().await;
}

#[tokio::test]
async fn read_only_consent_gives_read_tools_on_mcp_and_nothing_on_v1() {
    let t = TestApp::spawn().await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let client_id = register(&t, "Claude", REDIRECT).await;
    let p = params(&t, &client_id, &[]);
    // The authorization endpoint hands over to the consent page.
    let resp = browser()
        .get(format!("{}/oauth/authorize?{}", t.url, query(&p)))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[LOCATION].to_str().expect("ascii").to_owned();
    assert!(to.starts_with("/dashboard/oauth/authorize?"), "{to}");
    // Not signed in: the sign-in page, which comes back here.
    let resp = browser()
        .get(format!("{}{to}", t.url))
        .send()
        .await
        .expect("consent");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()[LOCATION]
            .to_str()
            .expect("ascii")
            .starts_with("/login?next=%2Fdashboard%2Foauth%2Fauthorize")
    );
    let (status, html) = page(&t, &s.cookie, &to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"client-name\">Claude<"), "{html}");
    assert!(html.contains("id=\"redirect-host\">127.0.0.1<"));
    assert!(html.contains("id=\"access-read\" name=\"access\" value=\"read\" checked"));
    assert!(!html.contains("asked-writes"));

    let resp = consent(&t, &s, &p, &[("decision", "approve")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = location(&resp);
    let code = get(&back, "code").expect("code");
    let (status, tokens) = exchange(&t, &client_id, code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "read");
    let access = tokens["access_token"].as_str().expect("access");

    let names = tool_names(&t, access).await;
    assert!(names.iter().any(|n| n == "list_contacts"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("send_") || n.starts_with("create_") || n.starts_with("place_")),
        "{names:?}"
    );
    // Bound to /mcp: the same token on /v1 is refused.
    let (status, _) = t.get("/v1/contacts", access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The grant is a key on the keys page; revoking it there ends the token.
    let admin = t.admin_key().await;
    let (_, keys) = t.get("/v1/api-keys", &admin).await;
    let grant = keys["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["name"] == "Claude")
        .expect("the grant is listed")
        .clone();
    assert_eq!(grant["read_only"], true);
    let (_, html) = page(&t, &s.cookie, "/dashboard/keys").await;
    assert!(html.contains("OAuth app"));
    assert_eq!(mcp_status(&t, access).await, StatusCode::OK);
    let id = grant["id"].as_str().expect("id");
    let resp = submit(&t, &s, &format!("/dashboard/keys/{id}/revoke"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(mcp_status(&t, access).await, StatusCode::UNAUTHORIZED);
    t.finish().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    let t = TestApp::spawn().await;
    let a = approved(&t, &[("access", "full")]).await;
    let (_, first) = exchange(&t, &a.client_id, &a.code).await;
    assert_eq!(first["scope"], "write");
    let old_refresh = first["refresh_token"].as_str().expect("refresh");
    let (status, second) = token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh),
            ("client_id", &a.client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().expect("access");
    assert_eq!(mcp_status(&t, access).await, StatusCode::OK);
    // The spent refresh token again: refused, and the whole grant goes.
    let (status, err) = token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh),
            ("client_id", &a.client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(mcp_status(&t, access).await, StatusCode::UNAUTHORIZED);
    let (status, _) = token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                second["refresh_token"].as_str().expect("r"),
            ),
            ("client_id", &a.client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let _ = a.signed;
    t.finish().await;
}

#[tokio::test]
async fn a_code_works_once_with_its_verifier_and_never_after_expiry() {
    let t = TestApp::spawn().await;
    let a = approved(&t, &[]).await;
    // Wrong verifier: refused (and the code is spent).
    let resource = format!("{}/mcp", t.url);
    let (status, err) = token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", REDIRECT),
            ("client_id", &a.client_id),
            (
                "code_verifier",
                "dBjftJeZ4CVP-mJ92IQhuXNQ5mnkzeJeHk5g1Py4eXX",
            ),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");

    // A fresh code: works once; the second use is refused and revokes the grant.
    let p = params(&t, &a.client_id, &[]);
    let resp = consent(&t, &a.signed, &p, &[("decision", "approve")]).await;
    let code = get(&location(&resp), "code").expect("code").to_owned();
    // For another resource: refused.
    let (status, err) = token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &a.client_id),
            ("code_verifier", VERIFIER),
            ("resource", "https://other.example.com/mcp"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_target");
    let (status, tokens) = exchange(&t, &a.client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(mcp_status(&t, access).await, StatusCode::OK);
    let (status, err) = exchange(&t, &a.client_id, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(mcp_status(&t, access).await, StatusCode::UNAUTHORIZED);

    // A code past its ten minutes: stored as it would be then.
    let resp = consent(&t, &a.signed, &p, &[("decision", "approve")]).await;
    let _ = location(&resp);
    let admin = t.admin_key().await;
    let (_, keys) = t.get("/v1/api-keys", &admin).await;
    let grant_id = keys["data"][0]["id"].as_str().expect("id").to_owned();
    let digester = dialtone_domain::keys::KeyDigester::new(&t.config.server_secret);
    let old = dialtone_domain::oauth::generate_token("dt", dialtone_domain::oauth::TokenKind::Code);
    t.store
        .insert_oauth_code(dialtone_store::oauth::NewCode {
            digest: &digester.digest(&old),
            key_id: &grant_id,
            client_id: &a.client_id,
            redirect_uri: REDIRECT,
            code_challenge: CHALLENGE,
            resource: &resource,
            expires_at: dialtone_domain::time::now() - chrono::TimeDelta::seconds(1),
        })
        .await
        .expect("insert");
    let (status, err) = exchange(&t, &a.client_id, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert!(
        err["error_description"]
            .as_str()
            .expect("d")
            .contains("expired")
    );
    t.finish().await;
}

#[tokio::test]
async fn bad_authorization_requests_are_refused() {
    let t = TestApp::spawn().await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let client_id = register(&t, "Claude", REDIRECT).await;
    let show = |extra: Vec<(&'static str, &'static str)>| {
        let p = params(&t, &client_id, &extra);
        format!("/dashboard/oauth/authorize?{}", query(&p))
    };
    // Plain PKCE: back to the client with invalid_request.
    let resp = browser()
        .get(format!(
            "{}{}",
            t.url,
            show(vec![("code_challenge_method", "plain")])
        ))
        .header(COOKIE, &s.cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(get(&location(&resp), "error"), Some("invalid_request"));
    // Another resource: invalid_target.
    let resp = browser()
        .get(format!(
            "{}{}",
            t.url,
            show(vec![("resource", "https://other.example.com/mcp")])
        ))
        .header(COOKIE, &s.cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(get(&location(&resp), "error"), Some("invalid_target"));
    // A redirect URI the client did not register: a page, never a redirect.
    let (status, html) = page(
        &t,
        &s.cookie,
        &show(vec![("redirect_uri", "https://evil.example.com/cb")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("not one this client registered"), "{html}");
    // A loopback redirect with another port is the same registration (RFC 8252).
    let (status, _) = page(
        &t,
        &s.cookie,
        &show(vec![("redirect_uri", "http://127.0.0.1:53682/callback")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Registration refuses a non-loopback http redirect.
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/register", t.url))
        .json(&json!({"client_name": "x", "redirect_uris": ["http://evil.example.com/cb"]}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"], "invalid_redirect_uri");
    // A consent posted without the session's CSRF token: 403, no code.
    let p = params(&t, &client_id, &[]);
    let mut fields: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fields.push(("decision", "approve"));
    let resp = browser()
        .post(format!("{}/dashboard/oauth/authorize", t.url))
        .header(COOKIE, &s.cookie)
        .form(&fields)
        .send()
        .await
        .expect("forged");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Deny: access_denied back to the client.
    let resp = consent(&t, &s, &p, &[("decision", "deny")]).await;
    assert_eq!(get(&location(&resp), "error"), Some("access_denied"));
    // Nothing above made a grant.
    let admin = t.admin_key().await;
    let (_, keys) = t.get("/v1/api-keys", &admin).await;
    assert!(
        keys["data"]
            .as_array()
            .expect("list")
            .iter()
            .all(|k| k["name"] != "Claude")
    );
    // A member may look but not allow.
    user(&t, "member@example.com", Role::Member).await;
    let m = sign_in(&t, "member@example.com").await;
    let resp = consent(&t, &m, &p, &[("decision", "approve")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    t.finish().await;
}

/// Serves one HTTP answer body at any path, on loopback.
async fn serve_document(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([("content-type", "application/json")], body) }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn client_metadata_documents_are_fetched_through_the_ssrf_guard() {
    // The guard: an https client_id on a private address is refused.
    let t = TestApp::spawn().await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let private = "https://127.0.0.1:9/oauth/client.json";
    let p = params(&t, private, &[]);
    let (status, html) = page(
        &t,
        &s.cookie,
        &format!("/dashboard/oauth/authorize?{}", query(&p)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("loopback, private or reserved"), "{html}");
    // Plain http is refused too.
    let p = params(&t, "http://127.0.0.1:9/oauth/client.json", &[]);
    let (status, _) = page(
        &t,
        &s.cookie,
        &format!("/dashboard/oauth/authorize?{}", query(&p)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.finish().await;

    // With the test-only loopback allowance: fetched, named, used.
    let t = TestApp::spawn_with(|c| c.oauth_metadata_allow_http_loopback = true).await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    // The document names its own URL, known once its server is bound.
    let doc_url = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("http://{addr}/oauth/client.json");
        let body = json!({"client_id": url, "client_name": "Metadata App",
                          "redirect_uris": [REDIRECT]})
        .to_string();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url
    };
    let p = params(&t, &doc_url, &[]);
    let (status, html) = page(
        &t,
        &s.cookie,
        &format!("/dashboard/oauth/authorize?{}", query(&p)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"client-name\">Metadata App<"));
    let resp = consent(&t, &s, &p, &[("decision", "approve")]).await;
    let code = get(&location(&resp), "code").expect("code").to_owned();
    let (status, tokens) = exchange(&t, &doc_url, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // A document naming another client_id is refused.
    let other = serve_document(
        json!({"client_id": "http://127.0.0.1:1/else.json", "redirect_uris": [REDIRECT]})
            .to_string(),
    )
    .await;
    let p = params(&t, &format!("{other}/doc.json"), &[]);
    let (status, _) = page(
        &t,
        &s.cookie,
        &format!("/dashboard/oauth/authorize?{}", query(&p)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.finish().await;
}

/// `tests/mcp/oauth_drive.py` and the Python that runs it (with the MCP SDK).
async fn oauth_drive() -> (std::path::PathBuf, std::path::PathBuf) {
    let script = crate::common::workspace_root().join("tests/mcp/oauth_drive.py");
    let python = tokio::task::spawn_blocking(|| {
        crate::common::python_venv(
            "DIALTONE_TEST_MCP_PYTHON",
            "mcp-venv",
            "tests/mcp/requirements.txt",
        )
    })
    .await
    .expect("python setup");
    (python, script)
}

/// Runs `tests/mcp/oauth_drive.py` (the Python SDK's OAuth client) with a plan.
async fn sdk(plan: Value) -> Value {
    let (python, script) = oauth_drive().await;
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg(plan.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the Python OAuth client did not finish within 2 minutes")
        .expect("run the Python OAuth client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Python OAuth client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A Client ID Metadata Document served over https on 127.0.0.1 by
/// `oauth_drive.py serve-document`, under a self-signed certificate it makes; the
/// server stops when this is dropped.
struct HttpsDocument {
    url: String,
    root_pem: String,
    _server: tokio::process::Child,
}

async fn https_document(client_name: &str, redirect: &str) -> HttpsDocument {
    use tokio::io::AsyncBufReadExt;
    let (python, script) = oauth_drive().await;
    let doc = json!({"client_name": client_name, "redirect_uri": redirect});
    let mut server = tokio::process::Command::new(python)
        .arg(script)
        .arg("serve-document")
        .arg(doc.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the metadata document server");
    let out = server.stdout.take().expect("its stdout");
    let mut line = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::BufReader::new(out).read_line(&mut line),
    )
    .await
    .expect("the metadata document server did not start within 30 s")
    .expect("read its address");
    let started: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    HttpsDocument {
        url: started["url"].as_str().expect("url").to_owned(),
        root_pem: started["root_pem"].as_str().expect("root_pem").to_owned(),
        _server: server,
    }
}

/// How the SDK's client came to exist at dialtone.
#[derive(PartialEq)]
enum Registration {
    /// `POST /oauth/register` (RFC 7591).
    Dynamic,
    /// None: its client_id is the URL of its metadata document.
    Document,
}

/// The SDK's requests as (method, path, status).
fn seen(r: &Value) -> Vec<(String, String, u64)> {
    r["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .map(|s| {
            (
                s[0].as_str().expect("m").to_owned(),
                s[1].as_str().expect("p").to_owned(),
                s[2].as_u64().expect("s"),
            )
        })
        .collect()
}

/// What every scenario checks: discovery from the 401, registration (dynamic, or none
/// with a metadata document), a read-only consent, only read tools, a read that works.
fn assert_signed_in_read_only(r: &Value, registration: Registration) {
    let seen = seen(r);
    let step = |path: &str| {
        seen.iter()
            .position(|(_, p, _)| p == path)
            .unwrap_or_else(|| panic!("no request to {path}: {seen:?}"))
    };
    assert_eq!(seen[0].1, "/mcp");
    assert_eq!(seen[0].2, 401);
    let mut order = vec![
        step("/.well-known/oauth-protected-resource/mcp"),
        step("/.well-known/oauth-authorization-server"),
    ];
    if registration == Registration::Dynamic {
        order.push(step("/oauth/register"));
    } else {
        assert!(
            seen.iter().all(|(_, p, _)| p != "/oauth/register"),
            "{seen:?}"
        );
    }
    order.push(step("/oauth/token"));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(r["consent_asked"], 1);
    assert_eq!(r["page_client_name"], true);
    assert_eq!(r["scope"], "read");
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"list_contacts"), "{tools:?}");
    assert!(!tools.contains(&"send_message"), "{tools:?}");
    assert_eq!(r["read"]["is_error"], false, "{r}");
    assert!(
        r["read"]["text"]
            .as_str()
            .expect("t")
            .contains("untrusted-data")
    );
}

#[tokio::test]
async fn the_python_sdk_signs_in_reads_steps_up_and_is_cut_off_by_revocation_or_refresh_reuse() {
    let t = TestApp::spawn_with(|c| c.mcp_allow_writes = true).await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let admin = t.admin_key().await;
    let plan = |scenario: &str, name: &str| {
        json!({"url": format!("{}/mcp", t.url), "base": t.url, "cookie": s.cookie,
               "csrf": s.csrf, "admin_key": admin, "redirect_uri": "http://127.0.0.1:9/callback",
               "client_name": name, "scenario": scenario})
    };

    let r = sdk(plan("revoke", "SDK revoke")).await;
    assert_signed_in_read_only(&r, Registration::Dynamic);
    assert_eq!(r["grant"]["read_only"], true);
    assert_eq!(r["revoke_status"], 303);
    assert_eq!(r["after_statuses"][0], 401, "{r}");
    assert_eq!(r["sign_in_asked_again"], true);
    assert_eq!(
        mcp_status(&t, r["access_token"].as_str().expect("a")).await,
        StatusCode::UNAUTHORIZED
    );

    let r = sdk(plan("refresh", "SDK refresh")).await;
    assert_signed_in_read_only(&r, Registration::Dynamic);
    assert_eq!(r["after_refresh"]["is_error"], false, "{r}");
    assert_eq!(r["refresh_rotated"], true);
    assert_eq!(r["access_rotated"], true);
    assert_eq!(r["reuse"]["status"], 400);
    assert_eq!(r["reuse"]["body"]["error"], "invalid_grant");
    assert_eq!(r["after_statuses"][0], 401, "{r}");
    assert_eq!(r["sign_in_asked_again"], true);

    // A write the read-only grant lacks: 403 insufficient_scope, the SDK asks the
    // person again for exactly the missing scope, and the retried write works.
    let r = sdk(plan("stepup", "SDK stepup")).await;
    assert_signed_in_read_only(&r, Registration::Dynamic);
    // The first sign-in asked for what the 401 named: read.
    assert_eq!(r["first_scope"], "read", "{r}");
    assert_eq!(r["consent_asked_after_write"], 2, "{r}");
    let asked: Vec<&str> = r["step_up_scope"].as_str().expect("s").split(' ').collect();
    assert!(asked.contains(&"messages:write"), "{r}");
    assert!(!asked.contains(&"calls:write"), "{r}");
    assert!(!asked.contains(&"write"), "{r}");
    let chosen = &r["preselected"];
    assert!(
        chosen
            .as_array()
            .expect("fields")
            .contains(&json!(["access", "custom"])),
        "{r}"
    );
    assert!(
        chosen
            .as_array()
            .expect("fields")
            .contains(&json!(["perm_messages", "write"])),
        "{r}"
    );
    let seen = r["seen"].as_array().expect("seen");
    let refused = seen
        .iter()
        .position(|s| s[1] == "/mcp" && s[2] == 403)
        .unwrap_or_else(|| panic!("no 403 from /mcp: {r}"));
    assert!(
        seen[refused..]
            .iter()
            .any(|s| s[1] == "/oauth/token" && s[2] == 200),
        "{r}"
    );
    assert_eq!(r["write"]["is_error"], false, "{r}");
    assert!(
        r["write"]["text"]
            .as_str()
            .expect("t")
            .contains("confirmation_token")
    );
    assert!(
        r["stepped_scope"]
            .as_str()
            .expect("scope")
            .split(' ')
            .any(|s| s == "messages:write"),
        "{r}"
    );
    let tools = r["tools_after"].as_array().expect("tools");
    assert!(tools.contains(&json!("send_message")), "{r}");
    assert!(!tools.contains(&json!("place_call")), "{r}");
    t.finish().await;
}

#[tokio::test]
async fn the_python_sdk_signs_in_with_a_client_id_metadata_document_over_https() {
    let sdk_redirect = "http://127.0.0.1:9/callback";
    let doc = https_document("Metadata Assistant", sdk_redirect).await;
    // Without the test's root certificate the same live document is refused: the
    // guard allows no loopback address, whatever the certificate.
    let t = TestApp::spawn().await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let p = params(&t, &doc.url, &[]);
    let to = format!("/dashboard/oauth/authorize?{}", query(&p));
    let (status, html) = page(&t, &s.cookie, &to).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("loopback, private or reserved"), "{html}");
    assert!(
        t.store
            .get_oauth_client(&doc.url)
            .await
            .expect("get")
            .is_none()
    );
    t.finish().await;
    // Trusting another certificate: the fetch is made, and fails verification.
    let other_root = https_document("Another", sdk_redirect).await.root_pem;
    let t = TestApp::spawn_with(|c| c.oauth_metadata_test_root = Some(other_root)).await;
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let p = params(&t, &doc.url, &[]);
    let to = format!("/dashboard/oauth/authorize?{}", query(&p));
    let (status, html) = page(&t, &s.cookie, &to).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("could not be fetched"), "{html}");
    t.finish().await;

    // The test's server trusts the document's certificate for loopback documents.
    let root = doc.root_pem.clone();
    let t = TestApp::spawn_with(move |c| {
        c.mcp_allow_writes = true;
        c.oauth_metadata_test_root = Some(root);
    })
    .await;
    // The metadata says the SDK may use a document instead of registering.
    let asm: Value = reqwest::get(format!("{}/.well-known/oauth-authorization-server", t.url))
        .await
        .expect("asm")
        .json()
        .await
        .expect("json");
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let admin = t.admin_key().await;
    let r = sdk(
        json!({"url": format!("{}/mcp", t.url), "base": t.url, "cookie": s.cookie,
                       "csrf": s.csrf, "admin_key": admin, "redirect_uri": sdk_redirect,
                       "client_name": "Metadata Assistant", "scenario": "cimd",
                       "client_metadata_url": doc.url}),
    )
    .await;
    // No registration; the document's URL is the client_id, and the consent page
    // showed the document's name (the SDK sent none).
    assert_signed_in_read_only(&r, Registration::Document);
    assert_eq!(r["client_id"], doc.url.as_str());
    let client = t
        .store
        .get_oauth_client(&doc.url)
        .await
        .expect("get")
        .expect("dialtone fetched the document");
    assert_eq!(client.registration, "metadata_document");
    assert_eq!(client.name, "Metadata Assistant");
    assert_eq!(client.redirect_uris, [sdk_redirect]);
    assert!(client.fetched_at.is_some());
    assert_eq!(
        t.store.count_unused_oauth_clients().await.expect("count"),
        0
    );
    // A write: 403 insufficient_scope, the SDK asks the person again, who refuses.
    assert_eq!(r["after_statuses"], json!([403]), "{r}");
    assert_eq!(r["sign_in_asked_again"], true, "{r}");
    // The write never came back: the refused sign-in ended the session.
    assert!(r["write"].is_null(), "{r}");
    assert!(
        r["after"]
            .as_str()
            .is_some_and(|w| w.starts_with("refused")),
        "{r}"
    );
    // The grant is on the keys page under the document's name.
    let (_, keys) = t.get("/v1/api-keys", &admin).await;
    let grant = keys["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["name"] == "Metadata Assistant")
        .unwrap_or_else(|| panic!("the grant is listed: {keys}"))
        .clone();
    assert_eq!(grant["read_only"], true);
    let key = t
        .store
        .oauth_grant(grant["id"].as_str().expect("id"))
        .await
        .expect("grant")
        .expect("an OAuth grant");
    assert_eq!(key.oauth_client_id.as_deref(), Some(doc.url.as_str()));
    let (status, html) = page(&t, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Metadata Assistant"), "{html}");
    assert!(html.contains("OAuth app"));
    t.finish().await;
}

/// A live grant is a new live key: it gets the organization's default limits.
#[tokio::test]
async fn a_live_grant_gets_the_organizations_default_key_limits() {
    let t = TestApp::spawn().await;
    let defaults: dialtone_domain::limits::KeyLimits = serde_json::from_value(
        json!({"max_concurrent_calls": 2, "allowed_destination_countries": ["US"]}),
    )
    .expect("limits");
    t.store
        .set_org_key_limits(&t.org.id, &defaults, "cli")
        .await
        .expect("set");
    let _ = approved(&t, &[("access", "full"), ("mode", "live")]).await;
    let admin = t.admin_key().await;
    let (_, keys) = t
        .call(
            reqwest::Method::GET,
            "/v1/api-keys?limit=100",
            Some(&admin),
            None,
        )
        .await;
    let grant = keys["data"]
        .as_array()
        .and_then(|d| d.iter().find(|k| k["name"] == "Claude"))
        .expect("the grant is listed")
        .clone();
    assert_eq!(grant["mode"], "live", "{grant}");
    assert_eq!(grant["limits"]["max_concurrent_calls"], 2, "{grant}");
    assert_eq!(
        grant["limits"]["allowed_destination_countries"],
        json!(["US"])
    );
    t.finish().await;
}

/// An MCP session over raw HTTP with `bearer`: `initialize`, `notifications/initialized`,
/// then `call` posts one `tools/call` and returns the whole answer.
struct RawSession<'a> {
    t: &'a TestApp,
    bearer: String,
    session: Option<String>,
}

impl<'a> RawSession<'a> {
    async fn open(t: &'a TestApp, bearer: &str) -> RawSession<'a> {
        let mut s = RawSession {
            t,
            bearer: bearer.to_owned(),
            session: None,
        };
        let init = s
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "by-hand", "version": "1"}}}),
            )
            .await;
        assert_eq!(init.status(), StatusCode::OK);
        s.session = init
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ready = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(ready.status(), StatusCode::ACCEPTED);
        s
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        let mut rb = reqwest::Client::new()
            .post(format!("{}/mcp", self.t.url))
            .bearer_auth(&self.bearer)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(id) = &self.session {
            rb = rb.header("mcp-session-id", id);
        }
        rb.send().await.expect("mcp")
    }

    async fn call(&self, tool: &str, arguments: Value) -> reqwest::Response {
        self.post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}))
            .await
    }
}

/// The JSON-RPC result of a tool call answered 200 (JSON or a one-event SSE stream).
async fn tool_result(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .rfind(|d| !d.trim().is_empty())
        .unwrap_or(&text)
        .trim()
        .to_owned();
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["result"].clone()
}

/// The parameters of a `Bearer` challenge, each quoted value unquoted (RFC 7235
/// auth-params; dialtone never puts `"` or `\` inside one).
fn challenge_params(header: &str) -> Vec<(String, String)> {
    let rest = header.strip_prefix("Bearer ").expect("a Bearer challenge");
    let mut out = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        let (name, after) = s.split_once("=\"").expect("name=\"value\"");
        let (value, after) = after.split_once('"').expect("closing quote");
        out.push((name.trim().to_owned(), value.to_owned()));
        s = after.trim_start_matches(',').trim_start();
    }
    out
}

const SEND: &str = "send_message";

fn send_args() -> Value {
    json!({"to": "+14155550142", "body": "hello"})
}

#[tokio::test]
async fn a_grant_without_the_tools_permission_gets_403_insufficient_scope_and_steps_up() {
    let t = TestApp::spawn_with(|c| c.mcp_allow_writes = true).await;
    let a = approved(&t, &[("mode", "test")]).await;
    let (_, tokens) = exchange(&t, &a.client_id, &a.code).await;
    assert_eq!(tokens["scope"], "read");
    let read_only = tokens["access_token"].as_str().expect("access").to_owned();

    let s = RawSession::open(&t, &read_only).await;
    // A read works as before.
    let listed = tool_result(s.call("list_contacts", json!({})).await).await;
    assert_eq!(listed["isError"], false, "{listed}");
    // The write tool (not offered to this grant) is refused before it runs: 403 with
    // the scope to ask for, the grant's own plus messages:write.
    let resp = s.call(SEND, send_args()).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let header = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .to_owned();
    let wanted = "contacts:read conversations:read messages:read messages:write notes:read \
                  calls:read agents:read campaigns:read phone_numbers:read webhooks:read \
                  api_keys:read analytics:read billing:read";
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", t.url);
    assert_eq!(
        challenge_params(&header),
        [
            ("error", "insufficient_scope"),
            ("scope", wanted),
            ("resource_metadata", prm.as_str()),
            (
                "error_description",
                "The tool send_message needs the messages:write permission, which this \
                 authorization does not include"
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["statusCode"], 403);
    assert_eq!(body["error"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(body["required_permission"], "messages:write");
    // An unknown tool is no step-up: the MCP server answers it.
    let unknown = s.call("no_such_tool", json!({})).await;
    assert_eq!(unknown.status(), StatusCode::OK);

    // The re-authorization the client makes with that scope: the consent page
    // pre-selects exactly it, resource by resource.
    let p = params(&t, &a.client_id, &[("scope", wanted)]);
    let to = format!("/dashboard/oauth/authorize?{}", query(&p));
    let (status, html) = page(&t, &a.signed.cookie, &to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"access-custom\" name=\"access\" value=\"custom\" checked"));
    assert!(!html.contains("id=\"access-read\" name=\"access\" value=\"read\" checked"));
    assert!(html.contains("<option value=\"write\" selected>"), "{html}");
    assert!(
        html.contains("This app asks to change: <strong>Messages</strong>"),
        "{html}"
    );
    assert_eq!(html.matches("<option value=\"write\"").count(), 1, "{html}");
    // The person allows what is pre-selected.
    let mut fields = vec![
        ("decision", "approve"),
        ("mode", "test"),
        ("access", "custom"),
    ];
    let perms: Vec<String> = wanted
        .split(' ')
        .filter(|p| *p != "messages:read")
        .map(|p| p.replace(':', "="))
        .collect();
    let pairs: Vec<(String, String)> = perms
        .iter()
        .map(|p| {
            let (r, a) = p.split_once('=').expect("=");
            (format!("perm_{r}"), a.to_owned())
        })
        .collect();
    fields.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let resp = consent(&t, &a.signed, &p, &fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = get(&location(&resp), "code").expect("code").to_owned();
    let (status, stepped) = exchange(&t, &a.client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    let scope = stepped["scope"].as_str().expect("scope");
    assert!(scope.split(' ').any(|s| s == "messages:write"), "{scope}");
    assert!(!scope.split(' ').any(|s| s == "calls:write"), "{scope}");
    let s = RawSession::open(&t, stepped["access_token"].as_str().expect("a")).await;
    let preview = tool_result(s.call(SEND, send_args()).await).await;
    assert_eq!(preview["isError"], false, "{preview}");
    assert!(
        preview.to_string().contains("confirmation_token"),
        "{preview}"
    );
    // Another write the new grant lacks steps up again, from the new scope.
    let resp = s.call("place_call", json!({"to": "+14155550142"})).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let params = challenge_params(resp.headers()[WWW_AUTHENTICATE].to_str().expect("a"));
    let scope = &params[1].1;
    assert!(scope.contains("messages:write") && scope.contains("calls:write"));
    t.finish().await;
}

#[tokio::test]
async fn api_keys_and_disabled_write_tools_keep_the_tool_error_and_full_grants_pass() {
    let t = TestApp::spawn_with(|c| c.mcp_allow_writes = true).await;
    // A pasted read-only API key: nobody to ask, SPEC §6's tool error.
    let key = t
        .key(dialtone_domain::auth::KeyRequest {
            name: "assistant".into(),
            read_only: true,
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    let s = RawSession::open(&t, &key).await;
    let refused = tool_result(s.call(SEND, send_args()).await).await;
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused.to_string();
    assert!(text.contains("INSUFFICIENT_PERMISSIONS"), "{text}");
    assert!(text.contains("403"), "{text}");
    // A full-access grant is not stepped up: its preview runs.
    let a = approved(&t, &[("access", "full"), ("mode", "test")]).await;
    let (_, tokens) = exchange(&t, &a.client_id, &a.code).await;
    assert_eq!(tokens["scope"], "write");
    let s = RawSession::open(&t, tokens["access_token"].as_str().expect("a")).await;
    let preview = tool_result(s.call(SEND, send_args()).await).await;
    assert_eq!(preview["isError"], false, "{preview}");
    t.finish().await;

    // Write tools the operator did not enable: a grant asking for more could not
    // use them either, so it gets the tool error (200), not a step-up.
    let t = TestApp::spawn().await;
    let a = approved(&t, &[("mode", "test")]).await;
    let (_, tokens) = exchange(&t, &a.client_id, &a.code).await;
    let s = RawSession::open(&t, tokens["access_token"].as_str().expect("a")).await;
    let refused = tool_result(s.call(SEND, send_args()).await).await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(refused.to_string().contains("INSUFFICIENT_PERMISSIONS"));
    // And with full access, the operator's switch is what refuses.
    let p = params(&t, &a.client_id, &[]);
    let fields = [
        ("decision", "approve"),
        ("access", "full"),
        ("mode", "test"),
    ];
    let resp = consent(&t, &a.signed, &p, &fields).await;
    let code = get(&location(&resp), "code").expect("code").to_owned();
    let (_, tokens) = exchange(&t, &a.client_id, &code).await;
    assert_eq!(tokens["scope"], "write");
    let s = RawSession::open(&t, tokens["access_token"].as_str().expect("a")).await;
    let refused = tool_result(s.call(SEND, send_args()).await).await;
    assert!(
        refused.to_string().contains("WRITE_TOOLS_DISABLED"),
        "{refused}"
    );
    t.finish().await;
}

async fn register_status(t: &TestApp) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/oauth/register", t.url))
        .json(&json!({"client_name": "Bulk", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .expect("register")
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let t = TestApp::spawn_with(|c| c.oauth_registrations_per_hour = 3).await;
    for _ in 0..3 {
        assert_eq!(register_status(&t).await.status(), StatusCode::CREATED);
    }
    let resp = register_status(&t).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // One registration every 20 minutes after the burst.
    assert!((1..=1200).contains(&retry), "{retry}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .expect("d")
            .contains("at most 3 an hour")
    );
    // A malformed registration counts too (it is refused by the limit first).
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/register", t.url))
        .body("not json")
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    t.finish().await;
}

#[tokio::test]
async fn unused_registrations_are_capped_and_pruned_after_a_day() {
    let t = TestApp::spawn_with(|c| c.oauth_max_unused_clients = 3).await;
    // One client is authorized (its grant exists): it never counts and is never pruned.
    let a = approved(&t, &[("mode", "test")]).await;
    for _ in 0..3 {
        assert_eq!(register_status(&t).await.status(), StatusCode::CREATED);
    }
    let resp = register_status(&t).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3600");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    // The hourly sweep deletes registrations nobody authorized within a day.
    let day_later = dialtone_domain::time::now() + chrono::TimeDelta::days(1);
    assert_eq!(
        t.store
            .prune_unused_oauth_clients(day_later)
            .await
            .expect("prune"),
        3
    );
    assert!(
        t.store
            .get_oauth_client(&a.client_id)
            .await
            .expect("get")
            .is_some()
    );
    let fresh = register(&t, "After the sweep", REDIRECT).await;
    // Younger than a day: kept.
    assert_eq!(
        t.store
            .prune_unused_oauth_clients(dialtone_domain::time::now() - chrono::TimeDelta::days(1))
            .await
            .expect("prune"),
        0
    );
    assert!(
        t.store
            .get_oauth_client(&fresh)
            .await
            .expect("get")
            .is_some()
    );
    t.finish().await;
}

/// A browser's preflight for `method` with `headers` from another origin.
async fn preflight(t: &TestApp, path: &str, method: &str, headers: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", t.url))
        .header("origin", "https://inspector.example")
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("preflight")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn browser_clients_may_fetch_the_oauth_endpoints_and_mcp_but_not_the_dashboard() {
    let t = TestApp::spawn().await;
    for (path, method, headers) in [
        (
            "/.well-known/oauth-protected-resource/mcp",
            "GET",
            "mcp-protocol-version",
        ),
        (
            "/.well-known/oauth-protected-resource",
            "GET",
            "mcp-protocol-version",
        ),
        (
            "/.well-known/oauth-authorization-server",
            "GET",
            "mcp-protocol-version",
        ),
        ("/oauth/register", "POST", "content-type"),
        ("/oauth/token", "POST", "content-type"),
        (
            "/mcp",
            "POST",
            "authorization,content-type,mcp-protocol-version,mcp-session-id",
        ),
    ] {
        let resp = preflight(&t, path, method, headers).await;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert!(
            header(&resp, "access-control-allow-methods").is_some_and(|m| m.contains(method)),
            "{path}"
        );
        let allowed = header(&resp, "access-control-allow-headers")
            .expect("allow-headers")
            .to_ascii_lowercase();
        for h in headers.split(',') {
            assert!(allowed.contains(h), "{path}: {h} not in {allowed}");
        }
        assert!(header(&resp, "access-control-allow-credentials").is_none());
    }
    // The answers themselves carry the origin grant.
    let resp = reqwest::Client::new()
        .get(format!("{}/.well-known/oauth-authorization-server", t.url))
        .header("origin", "https://inspector.example")
        .send()
        .await
        .expect("metadata");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/register", t.url))
        .header("origin", "https://inspector.example")
        .json(&json!({"client_name": "Inspector", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    // /mcp's 401: the page may read the challenge that starts discovery.
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", t.url))
        .header("origin", "https://inspector.example")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("mcp");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    let exposed = header(&resp, "access-control-expose-headers")
        .expect("expose")
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate") && exposed.contains("mcp-session-id"));
    // Not the authorization endpoint (a navigation), not the dashboard (cookies).
    for path in ["/oauth/authorize", "/dashboard/oauth/authorize", "/login"] {
        let resp = preflight(&t, path, "POST", "content-type").await;
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{path}"
        );
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{}{path}", t.url))
            .header("origin", "https://inspector.example")
            .send()
            .await
            .expect("get");
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    t.finish().await;
}

#[tokio::test]
async fn without_mcp_over_http_there_is_no_oauth() {
    let t = TestApp::spawn_with(|c| c.mcp_enabled = false).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ] {
        let resp = reqwest::get(format!("{}{path}", t.url)).await.expect("get");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/oauth/register", "/oauth/token", "/mcp"] {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", t.url))
            .json(&json!({}))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The consent page refuses to give access that could not be used.
    user(&t, "owner@example.com", Role::Owner).await;
    let s = sign_in(&t, "owner@example.com").await;
    let p = params(&t, "oacl_whatever", &[]);
    let (status, html) = page(
        &t,
        &s.cookie,
        &format!("/dashboard/oauth/authorize?{}", query(&p)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("does not serve MCP over HTTP"), "{html}");
    t.finish().await;
}
