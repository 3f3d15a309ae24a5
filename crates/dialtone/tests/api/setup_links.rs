//! The first-run setup link: one valid link at a time. Each restart without users
//! issues a new link, and a new link voids every earlier one.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};

use crate::common::TestApp;

const PASSWORD: &str = "correct horse battery staple";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn urlencoded(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
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

async fn issue(t: &TestApp) -> SecretString {
    dialtone_api::dashboard::issue_setup_token(&t.app().state)
        .await
        .expect("issue")
        .expect("no user yet")
}

/// `GET /setup/{token}`: its status, and (when it answers) the cookies and the form's
/// CSRF field to post it with.
async fn open(t: &TestApp, token: &SecretString) -> (StatusCode, String, String) {
    let resp = browser()
        .get(format!("{}/setup/{}", t.url, token.expose_secret()))
        .send()
        .await
        .expect("setup page");
    let status = resp.status();
    let cookies = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let html = resp.text().await.expect("html");
    let marker = "name=\"csrf\" value=\"";
    let csrf = html
        .find(marker)
        .map(|i| html[i + marker.len()..].split('"').next().unwrap_or(""))
        .unwrap_or("")
        .to_owned();
    (status, cookies, csrf)
}

/// Posts the setup form of `token` with the cookies and CSRF field of a page.
async fn complete(
    t: &TestApp,
    token: &SecretString,
    cookies: &str,
    csrf: &str,
    email: &str,
) -> StatusCode {
    browser()
        .post(format!("{}/setup/{}", t.url, token.expose_secret()))
        .header(COOKIE, cookies)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[
            ("csrf", csrf),
            ("org_name", "Acme"),
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ]))
        .send()
        .await
        .expect("post")
        .status()
}

#[tokio::test]
async fn a_new_setup_link_voids_the_earlier_ones() {
    let t = TestApp::spawn().await;
    // Three restarts without a user: three links printed, only the last one works.
    let first = issue(&t).await;
    let (status, _, _) = open(&t, &first).await;
    assert_eq!(status, StatusCode::OK, "the only link works");
    let second = issue(&t).await;
    let third = issue(&t).await;
    for (what, old) in [("first", &first), ("second", &second)] {
        let (status, _, _) = open(&t, old).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the {what} link is void");
    }
    let (status, cookies, csrf) = open(&t, &third).await;
    assert_eq!(status, StatusCode::OK, "the newest link works");
    assert!(!csrf.is_empty(), "a csrf field");

    // A void link cannot create an owner, even with a valid form.
    let status = complete(&t, &second, &cookies, &csrf, "mallory@example.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        t.store
            .user_by_email("mallory@example.com")
            .await
            .expect("lookup")
            .is_none()
    );
    // The newest one can, once; then no link is issued and none works.
    let status = complete(&t, &third, &cookies, &csrf, "founder@example.com").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        t.store
            .user_by_email("founder@example.com")
            .await
            .expect("lookup")
            .is_some()
    );
    for old in [&first, &second, &third] {
        assert_eq!(open(&t, old).await.0, StatusCode::NOT_FOUND);
    }
    assert!(
        dialtone_api::dashboard::issue_setup_token(&t.app().state)
            .await
            .expect("issue")
            .is_none()
    );
    t.finish().await;
}

#[tokio::test]
async fn setup_links_issued_at_once_leave_one_valid() {
    let t = TestApp::spawn().await;
    // Several servers starting together on one database: however the issues
    // interleave, exactly one of the links works.
    let state = t.app().state.clone();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move {
                dialtone_api::dashboard::issue_setup_token(&state)
                    .await
                    .expect("issue")
                    .expect("no user yet")
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("join"));
    }
    let mut valid = 0;
    for token in &tokens {
        if open(&t, token).await.0 == StatusCode::OK {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "one valid link at a time");
    t.finish().await;
}
