//! OAuth sign-in for remote MCP clients, over real HTTP: discovery from the 401,
//! dynamic registration, the consent page (signed-in session, CSRF), the code flow
//! with PKCE, tokens bound to `/mcp`, refresh rotation, revocation on the keys page,
//! Client ID Metadata Documents, and the refusals (another resource, a wrong
//! verifier, plain PKCE, an unregistered redirect, a code used twice or expired, a
//! metadata document on a private address, a forged consent).

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
    assert_eq!(challenge, format!("Bearer resource_metadata=\"{prm_url}\""));
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

/// Runs `tests/mcp/oauth_drive.py` (the Python SDK's OAuth client) with a plan.
async fn sdk(plan: Value) -> Value {
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

/// What both scenarios check: discovery from the 401, dynamic registration, a
/// read-only consent, only read tools, a read that works, a write refused.
fn assert_signed_in_read_only(r: &Value) {
    let seen: Vec<(String, String, u64)> = r["seen"]
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
        .collect();
    let step = |path: &str| {
        seen.iter()
            .position(|(_, p, _)| p == path)
            .unwrap_or_else(|| panic!("no request to {path}: {seen:?}"))
    };
    assert_eq!(seen[0].1, "/mcp");
    assert_eq!(seen[0].2, 401);
    let order = [
        step("/.well-known/oauth-protected-resource/mcp"),
        step("/.well-known/oauth-authorization-server"),
        step("/oauth/register"),
        step("/oauth/token"),
    ];
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
    assert_eq!(r["write"]["is_error"], true, "{r}");
}

#[tokio::test]
async fn the_python_sdk_signs_in_reads_and_is_cut_off_by_revocation_or_refresh_reuse() {
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
    assert_signed_in_read_only(&r);
    assert_eq!(r["grant"]["read_only"], true);
    assert_eq!(r["revoke_status"], 303);
    assert_eq!(r["after_statuses"][0], 401, "{r}");
    assert_eq!(r["sign_in_asked_again"], true);
    assert_eq!(
        mcp_status(&t, r["access_token"].as_str().expect("a")).await,
        StatusCode::UNAUTHORIZED
    );

    let r = sdk(plan("refresh", "SDK refresh")).await;
    assert_signed_in_read_only(&r);
    assert_eq!(r["after_refresh"]["is_error"], false, "{r}");
    assert_eq!(r["refresh_rotated"], true);
    assert_eq!(r["access_rotated"], true);
    assert_eq!(r["reuse"]["status"], 400);
    assert_eq!(r["reuse"]["body"]["error"], "invalid_grant");
    assert_eq!(r["after_statuses"][0], 401, "{r}");
    assert_eq!(r["sign_in_asked_again"], true);
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
