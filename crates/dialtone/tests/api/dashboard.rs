//! The dashboard over HTTP, as a browser without JavaScript would use it: sign-in,
//! CSRF refusals, roles, throttling, cookies, the first-run link, and the key flow
//! (create read-only, reveal once, the API's answers, revoke → 401).

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::users::Role;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;

use crate::common::TestApp;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// `application/x-www-form-urlencoded`, as a browser sends a form.
pub(crate) fn urlencoded(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) trait FormExt {
    fn form(self, fields: &[(&str, &str)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form(self, fields: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(fields))
    }
}

pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of `name` in a response's `Set-Cookie` headers.
pub(crate) fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap_or("");
            (value.to_owned(), v.to_owned())
        })
}

/// The `value` of the first hidden `csrf` field of a page.
pub(crate) fn csrf_field(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

pub(crate) fn secret_in(html: &str) -> Option<String> {
    let start = html.find("id=\"new-secret\"")?;
    let rest = &html[start..];
    let v = rest.find("value=\"")? + 7;
    Some(rest[v..].split('"').next()?.to_owned())
}

pub(crate) struct Signed {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) async fn user(app: &TestApp, email: &str, role: Role) {
    dialtone_api::dashboard::create_user(&app.store, &app.org.id, email, PASSWORD, role)
        .await
        .expect("create user");
}

/// The login form: its double-submit cookie and field.
async fn login_form(app: &TestApp) -> (String, String) {
    let resp = browser()
        .get(format!("{}/login", app.url))
        .send()
        .await
        .expect("login page");
    assert_eq!(resp.status(), StatusCode::OK);
    let (cookie, _) = set_cookie(&resp, "dt_csrf").expect("csrf cookie");
    let html = resp.text().await.expect("html");
    (cookie, csrf_field(&html))
}

async fn try_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let (cookie, csrf) = login_form(app).await;
    browser()
        .post(format!("{}/login", app.url))
        .header(COOKIE, format!("dt_csrf={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("login")
}

pub(crate) async fn sign_in(app: &TestApp, email: &str) -> Signed {
    let resp = try_login(app, email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (token, _) = set_cookie(&resp, "dt_session").expect("session cookie");
    let cookie = format!("dt_session={token}");
    let html = page(app, &cookie, "/dashboard/keys").await.1;
    Signed {
        csrf: csrf_field(&html),
        cookie,
    }
}

pub(crate) async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = browser()
        .get(format!("{}{path}", app.url))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("page");
    let status = resp.status();
    (status, resp.text().await.expect("html"))
}

pub(crate) async fn submit(
    app: &TestApp,
    s: &Signed,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("csrf", s.csrf.as_str())];
    form.extend_from_slice(fields);
    browser()
        .post(format!("{}{path}", app.url))
        .header(COOKIE, &s.cookie)
        .form(&form)
        .send()
        .await
        .expect("submit")
}

async fn key_count(app: &TestApp) -> usize {
    let page = dialtone_domain::page::PageRequest::new(Some(100), None).expect("page");
    app.store
        .list_keys(&app.org.id, None, None, &page)
        .await
        .expect("keys")
        .len()
}

#[tokio::test]
async fn dashboard_read_only_key_is_shown_once_works_for_reads_and_dies_on_revoke() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;

    let resp = submit(
        &app,
        &s,
        "/dashboard/keys",
        &[
            ("name", "Claude Desktop"),
            ("mode", "live"),
            ("read_only", "1"),
            ("workspace_id", ""),
            ("expires_in", "never"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let html = resp.text().await.expect("html");
    let secret = secret_in(&html).expect("the secret is revealed");
    assert!(secret.starts_with("dt_live_"), "{secret}");
    assert!(html.contains("cannot be shown again"));
    assert!(html.contains("badge-ro\">Read-only"));

    let (status, _) = app.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/v1/contacts",
            &secret,
            serde_json::json!({"first_name": "Ada"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "INSUFFICIENT_PERMISSIONS");

    // Afterwards: only the last four, the badge, and the audit entry.
    let (status, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&secret));
    assert!(html.contains(&format!("dt_live_…{}", &secret[secret.len() - 4..])));
    assert!(html.contains("Read-only"));
    assert!(html.contains("Created key"));
    assert!(html.contains("owner@example.com"));

    let keys = app
        .store
        .list_keys(
            &app.org.id,
            None,
            None,
            &dialtone_domain::page::PageRequest::new(None, None).expect("page"),
        )
        .await
        .expect("keys");
    let id = keys[0].id.clone();
    assert!(keys[0].created_by.starts_with("user_"));
    let resp = submit(&app, &s, &format!("/dashboard/keys/{id}/revoke"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert_eq!(location, format!("/dashboard/keys?revoked={id}"));
    let (status, _) = app.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, html) = page(&app, &s.cookie, &location).await;
    assert!(html.contains("Revoked key"));
    assert!(html.contains("The key “Claude Desktop” is revoked"));
    // The notice names only a key of this organization that really is revoked: the
    // URL cannot put words on the page.
    let (_, html) = page(
        &app,
        &s.cookie,
        "/dashboard/keys?revoked=Call%20support%20now",
    )
    .await;
    assert!(!html.contains("is revoked"));
    app.finish().await;
}

#[tokio::test]
async fn dashboard_refuses_forms_without_a_valid_csrf_token() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let victim = app
        .create_key(KeyRequest {
            name: "prod".into(),
            ..Default::default()
        })
        .await;
    let before = key_count(&app).await;
    for csrf in [None, Some("forged"), Some("")] {
        let mut form = vec![("name", "sneaky")];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let resp = browser()
            .post(format!("{}/dashboard/keys", app.url))
            .header(COOKIE, &s.cookie)
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
        let resp = browser()
            .post(format!(
                "{}/dashboard/keys/{}/revoke",
                app.url, victim.key.id
            ))
            .header(COOKIE, &s.cookie)
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(key_count(&app).await, before);
    let (status, _) = app.get("/v1/me", victim.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::OK);

    // Sign-in and sign-out forms too.
    let resp = browser()
        .post(format!("{}/login", app.url))
        .form(&[("email", "owner@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser()
        .post(format!("{}/logout", app.url))
        .header(COOKIE, &s.cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (status, _) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::OK, "still signed in");

    // A real sign-out ends the session.
    let resp = submit(&app, &s, "/logout", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.finish().await;
}

#[tokio::test]
async fn dashboard_member_sees_keys_but_cannot_create_rotate_or_revoke() {
    let app = TestApp::spawn().await;
    user(&app, "member@example.com", Role::Member).await;
    let key = app
        .create_key(KeyRequest {
            name: "billing export".into(),
            ..Default::default()
        })
        .await;
    let s = sign_in(&app, "member@example.com").await;
    let (status, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("billing export"));
    assert!(
        !html.contains("New API Key"),
        "no create button for members"
    );
    assert!(!html.contains("/revoke\""), "no revoke form for members");

    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/keys/{}/revoke", key.key.id),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/keys/{}/rotate", key.key.id),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let before = key_count(&app).await;
    let resp = submit(&app, &s, "/dashboard/keys", &[("name", "mine")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(key_count(&app).await, before);
    let (status, _) = app.get("/v1/me", key.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::OK, "the key still works");
    for path in [
        "/dashboard/webhooks/whk_01jd5x7c2m8n4p6q8r0s2t4v6w/test",
        "/dashboard/webhooks/whk_01jd5x7c2m8n4p6q8r0s2t4v6w/rotate-secret",
    ] {
        let resp = submit(&app, &s, path, &[]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/dashboard/webhooks", "/dashboard/calls"] {
        let (status, _) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::OK, "members see {path}");
    }
    app.finish().await;
}

#[tokio::test]
async fn dashboard_admin_rotates_and_the_replacement_is_shown_once() {
    let app = TestApp::spawn().await;
    user(&app, "admin@example.com", Role::Admin).await;
    let old = app
        .create_key(KeyRequest {
            name: "worker".into(),
            read_only: true,
            ..Default::default()
        })
        .await;
    let s = sign_in(&app, "admin@example.com").await;
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/keys/{}/rotate", old.key.id),
        &[("old_key_expires", "now")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let new = secret_in(&html).expect("replacement shown");
    assert!(html.contains("Replacement key created"));
    let (status, _) = app.get("/v1/contacts", &new).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1/contacts", old.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert!(html.contains("Rotated key"));
    assert!(!html.contains(&new));
    app.finish().await;
}

#[tokio::test]
async fn dashboard_throttles_sign_in_after_five_failures() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    for _ in 0..5 {
        let resp = try_login(&app, "owner@example.com", "wrong password!").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.text()
                .await
                .expect("html")
                .contains("Incorrect email or password")
        );
    }
    // Even the right password waits now, with a clear message: seconds, not the
    // whole window.
    let resp = try_login(&app, "Owner@Example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(set_cookie(&resp, "dt_session").is_none());
    let html = resp.text().await.expect("html");
    assert!(html.contains("Too many failed sign-ins"), "{html}");
    assert!(html.contains("Wait 1 second") || html.contains("Wait 2 seconds"));
    // Another account from the same address is not slowed down.
    user(&app, "other@example.com", Role::Member).await;
    sign_in(&app, "other@example.com").await;
    // After the wait, the owner signs in.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    sign_in(&app, "owner@example.com").await;
    app.finish().await;
}

#[tokio::test]
async fn dashboard_session_cookie_is_http_only_lax_and_secure_behind_https() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let resp = try_login(&app, "owner@example.com", PASSWORD).await;
    let (_, header) = set_cookie(&resp, "dt_session").expect("cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    assert!(!header.contains("Secure"), "plain http: {header}");
    app.finish().await;

    // Over HTTPS the cookies are `__Host-` cookies (see signin.rs for the rest).
    let app = TestApp::spawn_with(|c| c.trust_proxy = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let resp = browser()
        .get(format!("{}/login", app.url))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("login page");
    let (cookie, _) = set_cookie(&resp, "__Host-dt_csrf").expect("csrf cookie");
    let csrf = csrf_field(&resp.text().await.expect("html"));
    let resp = browser()
        .post(format!("{}/login", app.url))
        .header(COOKIE, format!("__Host-dt_csrf={cookie}"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "owner@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    let (_, header) = set_cookie(&resp, "__Host-dt_session").expect("cookie");
    assert!(header.contains("; Secure"), "behind a TLS proxy: {header}");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_pages_need_a_session_and_assets_are_served_offline() {
    let app = TestApp::spawn().await;
    for path in ["/dashboard/keys", "/dashboard/webhooks", "/dashboard/calls"] {
        let resp = browser()
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        assert!(to.is_some_and(|t| t.starts_with("/login?next=")), "{to:?}");
    }
    let resp = browser()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, "dt_session=made-up")
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for (path, kind) in [
        ("/assets/htmx.min.js", "text/javascript"),
        ("/assets/dashboard.css", "text/css"),
        ("/assets/dashboard.js", "text/javascript"),
    ] {
        let resp = browser()
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .expect("asset");
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert!(ct.is_some_and(|c| c.starts_with(kind)), "{path}: {ct:?}");
    }
    let htmx = browser()
        .get(format!("{}/assets/htmx.min.js", app.url))
        .send()
        .await
        .expect("htmx")
        .text()
        .await
        .expect("js");
    assert!(htmx.contains("version:\"2.0."), "htmx pinned to 2.0.x");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_cap_is_shown_and_enforced_with_a_clear_message() {
    let app = TestApp::spawn_with(|c| c.key_cap = 2).await;
    user(&app, "owner@example.com", Role::Owner).await;
    for name in ["a", "b"] {
        app.create_key(KeyRequest {
            name: name.into(),
            ..Default::default()
        })
        .await;
    }
    let s = sign_in(&app, "owner@example.com").await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert!(html.contains("2 of 2 active keys"));
    assert!(html.contains("The limit is reached"));
    let resp = submit(
        &app,
        &s,
        "/dashboard/keys",
        &[("name", "c"), ("mode", "live")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let html = resp.text().await.expect("html");
    assert!(html.contains("the limit is 2"), "{html}");
    assert!(secret_in(&html).is_none());
    app.finish().await;
}

#[tokio::test]
async fn dashboard_setup_link_makes_the_first_owner_once() {
    let app = TestApp::spawn().await;
    let token = dialtone_api::dashboard::issue_setup_token(&app.app().state)
        .await
        .expect("issue")
        .expect("no user yet");
    let path = format!("/setup/{}", token.expose_secret());
    let resp = browser()
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .expect("setup page");
    assert_eq!(resp.status(), StatusCode::OK);
    let (cookie, _) = set_cookie(&resp, "dt_csrf").expect("csrf cookie");
    let csrf = csrf_field(&resp.text().await.expect("html"));
    let post = |password: &'static str| {
        browser()
            .post(format!("{}{path}", app.url))
            .header(COOKIE, format!("dt_csrf={cookie}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "founder@example.com"),
                ("password", password),
                ("password_confirm", password),
            ])
            .send()
    };
    let resp = post("short").await.expect("post");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = post(PASSWORD).await.expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&resp, "dt_session").is_some());
    let (user, _) = app
        .store
        .user_by_email("founder@example.com")
        .await
        .expect("lookup")
        .expect("created");
    assert_eq!(user.role, Role::Owner);
    assert_eq!(user.org_id, app.org.id, "joins the existing organization");
    let resp = browser()
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .expect("again");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        dialtone_api::dashboard::issue_setup_token(&app.app().state)
            .await
            .expect("issue")
            .is_none()
    );
    app.finish().await;
}

#[tokio::test]
async fn dashboard_answers_bad_input_without_a_500() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let cases: &[&[(&str, &str)]] = &[
        &[("name", "")],
        &[("name", "x"), ("expires_in", "-3")],
        &[("name", "x"), ("workspace_id", "ws_nope")],
        &[("name", &"n".repeat(300))],
    ];
    for fields in cases {
        let resp = submit(&app, &s, "/dashboard/keys", fields).await;
        assert!(
            resp.status().is_client_error(),
            "{fields:?}: {}",
            resp.status()
        );
        assert!(
            resp.text()
                .await
                .expect("html")
                .contains("id=\"form-error\"")
        );
    }
    for path in [
        "/dashboard/keys/key_nope/revoke",
        "/dashboard/keys/nonsense/rotate",
        "/dashboard/webhooks/whk_nope/test",
    ] {
        let resp = submit(&app, &s, path, &[]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for (path, want) in [
        (
            "/dashboard/calls?from_date=yesterday&status=bogus",
            StatusCode::BAD_REQUEST,
        ),
        ("/dashboard/calls/nonsense", StatusCode::NOT_FOUND),
        ("/dashboard/webhooks/whk_nope", StatusCode::NOT_FOUND),
        ("/dashboard/webhooks", StatusCode::OK),
        ("/dashboard/calls", StatusCode::OK),
    ] {
        let (status, _) = page(&app, &s.cookie, path).await;
        assert_eq!(status, want, "{path}");
    }
    let resp = browser()
        .post(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, &s.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'%', b'z'])
        .send()
        .await
        .expect("garbage");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    for back in [
        "/dashboard/calls\r\nSet-Cookie: x=y",
        "https://evil.example",
        "//evil.example",
    ] {
        let resp = submit(&app, &s, "/dashboard/context", &[("back", back)]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        assert_eq!(to, Some("/dashboard/keys"), "{back:?}");
    }
    let resp = app
        .request(Method::POST, "/dashboard/context", None, None, &[])
        .await;
    assert_ne!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    app.finish().await;
}

#[tokio::test]
async fn dashboard_calls_and_webhooks_pages_show_the_workspace_data() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let key = app
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    let (status, call) = app
        .post("/v1/calls", &key, serde_json::json!({"to": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let call_id = call["id"].as_str().expect("id").to_owned();
    let s = sign_in(&app, "owner@example.com").await;
    // Live mode shows no test call; switching to test mode does.
    let (_, html) = page(&app, &s.cookie, "/dashboard/calls").await;
    assert!(!html.contains(&call_id));
    let resp = submit(
        &app,
        &s,
        "/dashboard/context",
        &[("mode", "test"), ("back", "/dashboard/calls")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &s.cookie, "/dashboard/calls").await;
    assert!(html.contains(&call_id));
    assert!(html.contains("test-banner"));
    // Wait for the simulated call to finish, then read it with its transcript.
    for _ in 0..100 {
        let (_, c) = app.get(&format!("/v1/calls/{call_id}"), &key).await;
        if c["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, html) = page(&app, &s.cookie, &format!("/dashboard/calls/{call_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<audio"), "a recording player");
    assert!(html.contains("class=\"transcript\""));
    let (_, html) = page(
        &app,
        &s.cookie,
        "/dashboard/calls?status=completed&direction=outbound",
    )
    .await;
    assert!(html.contains(&call_id));
    let (_, html) = page(&app, &s.cookie, "/dashboard/calls?status=failed").await;
    assert!(!html.contains(&call_id));
    let (status, _) = page(&app, &s.cookie, "/dashboard/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    app.finish().await;
}

/// The real binary at debug level: the setup link is printed once on the terminal and
/// never logged; passwords, session cookies and keys made in the dashboard reach
/// neither the logs nor (on SQLite) the database file.
#[tokio::test]
async fn dashboard_secrets_stay_out_of_logs_and_storage() {
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;

    use crate::common::{TestDb, drop_db, fresh_db, with_database};

    dialtone_api::webhooks::install_tls_provider();
    let (store, db) = fresh_db().await;
    store.close().await;
    let mut env: Vec<(&str, String)> = vec![
        ("RUST_LOG", "debug".into()),
        ("DIALTONE_SECRET_KEY", crate::common::SECRET.into()),
    ];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = Vec::new();
    let out: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
        Box::new(server.stdout.take().expect("stdout")),
        Box::new(server.stderr.take().expect("stderr")),
    ];
    for mut pipe in out {
        let logs = logs.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                logs.lock().expect("logs").extend_from_slice(&buf[..n]);
            }
        }));
    }
    let text = || String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    let mut link = None;
    for _ in 0..200 {
        if let Some(i) = text().find("/setup/") {
            let rest = text()[i + 7..].to_owned();
            link = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let token = link.expect("the setup link is printed");
    let base = format!("http://127.0.0.1:{port}");
    let resp = browser()
        .get(format!("{base}/setup/{token}"))
        .send()
        .await
        .expect("setup page");
    assert_eq!(resp.status(), StatusCode::OK);
    let (pre, _) = set_cookie(&resp, "dt_csrf").expect("csrf cookie");
    let csrf = csrf_field(&resp.text().await.expect("html"));
    let resp = browser()
        .post(format!("{base}/setup/{token}"))
        .header(COOKIE, format!("dt_csrf={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("org_name", "Logs Inc"),
            ("email", "founder@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (session, _) = set_cookie(&resp, "dt_session").expect("session");
    let cookie = format!("dt_session={session}");
    let html = browser()
        .get(format!("{base}/dashboard/keys"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("keys")
        .text()
        .await
        .expect("html");
    let csrf = csrf_field(&html);
    let html = browser()
        .post(format!("{base}/dashboard/keys"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("name", "from the dashboard")])
        .send()
        .await
        .expect("create")
        .text()
        .await
        .expect("html");
    let secret = secret_in(&html).expect("revealed");
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("me");
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.start_kill().expect("kill");
    let _ = server.wait().await;
    for r in readers {
        let _ = r.await;
    }
    let logs = text();
    assert!(
        logs.contains("/setup/…"),
        "setup requests are logged, redacted"
    );
    assert!(logs.contains("/dashboard/keys"), "requests were logged");
    assert_eq!(
        logs.matches(token.as_str()).count(),
        1,
        "the link is printed once, never logged"
    );
    for s in [
        PASSWORD,
        session.as_str(),
        secret.as_str(),
        &secret[8..secret.len() - 6],
    ] {
        assert!(!logs.contains(s), "a secret reached the logs");
    }
    if let TestDb::Sqlite(dir) = &db {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).expect("data dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                bytes.extend(std::fs::read(&path).expect("read"));
            }
        }
        let stored = String::from_utf8_lossy(&bytes);
        for s in [PASSWORD, session.as_str(), token.as_str(), secret.as_str()] {
            assert!(!stored.contains(s), "a secret is stored in the clear");
        }
        assert!(
            stored.contains("$argon2id$"),
            "passwords are argon2id hashes"
        );
    }
    drop_db(&db).await;
}

#[tokio::test]
async fn dialtone_user_create_reads_the_password_from_stdin() {
    use std::io::Write;

    use crate::common::{TestDb, with_database};

    let app = TestApp::spawn().await;
    let mut env: Vec<(&str, String)> = vec![("DIALTONE_SECRET_KEY", crate::common::SECRET.into())];
    match &app.db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let run = |email: &str, role: &str, password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(["user", "create", "--org", &app.org.id, "--email", email])
            .args(["--password-stdin", "--role", role])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("user create");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let out = run("Admin@Example.com", "admin", PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin@example.com"));
    let out = run("admin@example.com", "member", PASSWORD);
    assert!(!out.status.success(), "the email is taken");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run("short@example.com", "member", "short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10"));
    let out = run("x@example.com", "root", PASSWORD);
    assert!(!out.status.success(), "unknown role");
    let s = sign_in(&app, "admin@example.com").await;
    let resp = submit(&app, &s, "/dashboard/keys", &[("name", "by an admin")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.finish().await;
}

/// Guesses sent in parallel all count: each attempt is recorded before its password
/// is checked, so twenty at once still get at most five tries.
#[tokio::test]
async fn dashboard_throttle_holds_against_parallel_guesses_and_spoofed_addresses() {
    let app = TestApp::spawn_with(|c| c.trust_proxy = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let guesses = (0..20)
        .map(|_| try_login(&app, "owner@example.com", "wrong password!"))
        .collect();
    let statuses: Vec<StatusCode> = join_all(guesses).await.iter().map(|r| r.status()).collect();
    let tried = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(tried <= 5, "{tried} passwords were checked: {statuses:?}");
    assert_eq!(tried + refused, 20);

    // A new X-Forwarded-For per guess does not buy more guesses on one account.
    user(&app, "admin@example.com", Role::Admin).await;
    let mut checked = 0;
    for i in 0..30 {
        let (cookie, csrf) = login_form(&app).await;
        let resp = browser()
            .post(format!("{}/login", app.url))
            .header(COOKIE, format!("dt_csrf={cookie}"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "admin@example.com"),
                ("password", "wrong password!"),
            ])
            .send()
            .await
            .expect("login");
        if resp.status() == StatusCode::UNAUTHORIZED {
            checked += 1;
        }
    }
    // Ten are free; then each guess waits 1 s, 2 s, … after the last (the loop may
    // outlast the first second).
    assert!((10..=12).contains(&checked), "per-email limit: {checked}");
    app.finish().await;
}

/// Runs the futures concurrently on this task.
pub(crate) async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Key changes made over REST and at the command line land in the same audit log
/// as the dashboard's, written with the change.
#[tokio::test]
async fn key_changes_over_rest_are_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let admin = app.admin_key().await;
    let (s, created) = app
        .post(
            "/v1/api-keys",
            &admin,
            serde_json::json!({"name": "CRM sync", "read_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = created["id"].as_str().expect("id");
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Revoking again changes nothing and records nothing.
    app.call(
        Method::DELETE,
        &format!("/v1/api-keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    let log = app.store.list_audit(&app.org.id, 25).await.expect("audit");
    let mine: Vec<_> = log.iter().filter(|e| e.target == id).collect();
    assert_eq!(mine.len(), 2, "{log:?}");
    assert_eq!(mine[0].action, "api_key.revoked");
    assert_eq!(mine[1].action, "api_key.created");
    assert!(
        mine[1].detail.contains("read-only live key “CRM sync”"),
        "{}",
        mine[1].detail
    );
    for e in &mine {
        assert!(e.actor.starts_with("key_"), "{}", e.actor);
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    }
    app.finish().await;
}

#[tokio::test]
async fn dashboard_admins_set_key_limits_and_see_todays_consumption_members_cannot() {
    let app = TestApp::spawn().await;
    user(&app, "admin@example.com", Role::Admin).await;
    user(&app, "member@example.com", Role::Member).await;
    let key = app
        .create_key(KeyRequest {
            name: "dialer".into(),
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    let path = format!("/dashboard/keys/{}/limits", key.key.id);
    let s = sign_in(&app, "admin@example.com").await;
    let resp = submit(
        &app,
        &s,
        &path,
        &[
            ("max_concurrent_calls", "2"),
            ("max_call_minutes_per_day", ""),
            ("max_messages_per_day", "5"),
            ("max_spend_cents_per_day", ""),
            ("allowed_destination_countries", "us, ca"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("2 calls at once · 5 messages/day · to CA, US"),
        "{html}"
    );
    let secret = key.secret.expose_secret();
    let (_, shown) = app
        .get(&format!("/v1/api-keys/{}", key.key.id), secret)
        .await;
    assert_eq!(shown["limits"]["max_concurrent_calls"], 2);
    assert_eq!(
        shown["limits"]["allowed_destination_countries"],
        serde_json::json!(["CA", "US"])
    );
    // Today's consumption, after a message.
    let (status, _) = app
        .post(
            "/v1/messages",
            secret,
            serde_json::json!({"to": "+14155550123", "body": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert!(
        html.contains("Today: 0 running · 0 min · 1 msgs · $0.01"),
        "{html}"
    );
    assert!(html.contains("Changed key"), "audited");

    // Bad input: 400 on the page, nothing changed.
    let resp = submit(&app, &s, &path, &[("max_concurrent_calls", "-1")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = submit(
        &app,
        &s,
        &path,
        &[("allowed_destination_countries", "Narnia")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, shown) = app
        .get(&format!("/v1/api-keys/{}", key.key.id), secret)
        .await;
    assert_eq!(shown["limits"]["max_concurrent_calls"], 2);
    // Without the CSRF token: 403.
    let resp = browser()
        .post(format!("{}{path}", app.url))
        .header(COOKIE, &s.cookie)
        .form(&[("max_concurrent_calls", "9")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Members: 403, nothing changed.
    let m = sign_in(&app, "member@example.com").await;
    let resp = submit(&app, &m, &path, &[("max_concurrent_calls", "9")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, html) = page(&app, &m.cookie, "/dashboard/keys").await;
    assert!(!html.contains("/limits\""), "no limits form for members");
    assert!(html.contains("2 calls at once"), "members see the limits");
    let (_, shown) = app
        .get(&format!("/v1/api-keys/{}", key.key.id), secret)
        .await;
    assert_eq!(shown["limits"]["max_concurrent_calls"], 2);
    app.finish().await;
}
