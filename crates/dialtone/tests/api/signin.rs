//! Sign-in under attack (issue 13, items 6 and 7): guesses on an email slow down
//! every browser but the ones that signed in to that account before (a device cookie
//! signed with the server secret), never lock the owner out for the window, and are
//! counted in the database (so across nodes); the pre-session CSRF token is signed
//! with the server secret, so a pair the sender chose is refused; over HTTPS the
//! cookies are `__Host-` cookies.

use std::collections::BTreeMap;
use std::time::Duration;

use dialtone_domain::keys::KeyDigester;
use dialtone_domain::users::{self, Role};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::SecretString;

use crate::common::{SECRET, TestApp};
use crate::dashboard::{FormExt, PASSWORD, browser, csrf_field, set_cookie, user};

const WRONG: &str = "wrong password!";

/// A browser: its cookie jar, its address (`X-Forwarded-For`, for servers run with
/// `--trust-proxy`), and whether a TLS proxy forwards it (`X-Forwarded-Proto`).
struct Browser {
    url: String,
    ip: Option<String>,
    tls_proxy: bool,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn new(url: &str) -> Browser {
        Browser {
            url: url.to_owned(),
            ip: None,
            tls_proxy: false,
            jar: BTreeMap::new(),
        }
    }

    fn from(url: &str, ip: &str) -> Browser {
        Browser {
            ip: Some(ip.to_owned()),
            ..Browser::new(url)
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = browser().request(method, format!("{}{path}", self.url));
        if let Some(ip) = &self.ip {
            r = r.header("x-forwarded-for", ip);
        }
        if self.tls_proxy {
            r = r.header("x-forwarded-proto", "https");
        }
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r = r.header(COOKIE, cookies.join("; "));
        }
        r
    }

    /// Keeps the response's cookies (`Max-Age=0` deletes).
    fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let v = v.to_str().expect("ascii cookie");
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("get");
        self.absorb(&resp);
        resp
    }

    /// Opens the sign-in page and submits it (a session this browser has is dropped
    /// first, as if it had expired: the page would redirect to the dashboard).
    async fn login(&mut self, email: &str, password: &str) -> reqwest::Response {
        self.jar.retain(|k, _| !k.ends_with("dt_session"));
        let page = self.get("/login").await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_field(&page.text().await.expect("html"));
        let resp = self
            .request(reqwest::Method::POST, "/login")
            .form(&[("csrf", &csrf), ("email", email), ("password", password)])
            .send()
            .await
            .expect("login");
        self.absorb(&resp);
        resp
    }
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 says how long to wait")
}

/// Guesses on `email`, each from a new browser at a new address; returns how many
/// had their password checked and the last refusal's wait.
async fn guess_from_everywhere(url: &str, email: &str, n: usize, net: u8) -> (usize, Option<u64>) {
    let mut checked = 0;
    let mut wait = None;
    for i in 0..n {
        let mut b = Browser::from(url, &format!("198.51.{net}.{i}"));
        let resp = b.login(email, WRONG).await;
        match resp.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let w = retry_after(&resp);
                assert!(
                    w <= users::MAX_SIGN_IN_DELAY_SECS as u64,
                    "a delay, never the window: {w}"
                );
                wait = Some(w);
            }
            other => panic!("guess {i}: {other}"),
        }
    }
    (checked, wait)
}

/// Failed guesses on `email` recorded now from `n` addresses, as every node records
/// them (`record_login_attempt` before the password is checked).
async fn seed_failures(app: &TestApp, email: &str, n: usize) {
    let now = dialtone_domain::time::now();
    for i in 0..n {
        app.store
            .record_login_attempt(
                email,
                &format!("192.0.2.{i}"),
                None,
                users::throttle_window_start(now),
            )
            .await
            .expect("record");
    }
}

#[tokio::test]
async fn a_known_browser_signs_in_while_its_email_is_guessed_from_many_addresses() {
    let app = TestApp::spawn_with(|c| c.trust_proxy = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "other@example.com", Role::Member).await;
    let mut owner = Browser::from(&app.url, "203.0.113.7");
    let resp = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, header) = set_cookie(&resp, "dt_device").expect("a device cookie");
    assert!(header.contains("HttpOnly") && header.contains("SameSite=Lax"));
    let resp = owner
        .request(reqwest::Method::POST, "/logout")
        .form(&[(
            "csrf",
            csrf_field(
                &owner
                    .get("/dashboard/keys")
                    .await
                    .text()
                    .await
                    .expect("html"),
            )
            .as_str(),
        )])
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    owner.absorb(&resp);
    assert!(!owner.jar.contains_key("dt_session"));
    assert!(owner.jar.contains_key("dt_device"), "kept after sign-out");

    // The attack of the issue: 25 wrong passwords from 25 addresses. The first ten
    // are checked over HTTP; the rest arrive (as if) at once on other nodes, so the
    // email's delay is long whatever the machine's speed.
    let free = users::FREE_FAILURES_PER_EMAIL as usize;
    let (checked, _) = guess_from_everywhere(&app.url, "owner@example.com", free, 100).await;
    assert_eq!(checked, free);
    seed_failures(&app, "owner@example.com", 15).await;
    let (checked, wait) = guess_from_everywhere(&app.url, "owner@example.com", 3, 101).await;
    assert_eq!(checked, 0);
    assert!(
        wait.is_some_and(|w| w > 60),
        "guessing is throttled: {wait:?}"
    );

    // A new browser with the right password waits (briefly), with a message.
    let mut fresh = Browser::from(&app.url, "203.0.113.99");
    let resp = fresh.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&resp) <= users::MAX_SIGN_IN_DELAY_SECS as u64);
    assert!(set_cookie(&resp, "dt_session").is_none());
    assert!(resp.text().await.expect("html").contains("Wait "));

    // The browser that signed in before is not slowed down at all.
    let resp = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "known browser");
    assert!(set_cookie(&resp, "dt_session").is_some());
    assert_eq!(owner.get("/dashboard/keys").await.status(), StatusCode::OK);
    // … from another address too (the cookie names the browser, not the network).
    owner.ip = Some("192.0.2.44".into());
    assert_eq!(
        owner.login("owner@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    // A device cookie helps only the account it names, and only as signed.
    let mut colleague = Browser::from(&app.url, "203.0.113.7");
    assert_eq!(
        colleague
            .login("other@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let resp = colleague.login("owner@example.com", WRONG).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "another account's device"
    );
    let mut forger = Browser::from(&app.url, "203.0.113.8");
    let real = owner.jar["dt_device"].clone();
    let forged = format!("{}0", &real[..real.len() - 1]);
    let forged = if forged == real {
        format!("{}1", &real[..real.len() - 1])
    } else {
        forged
    };
    forger.jar.insert("dt_device".into(), forged);
    let resp = forger.login("owner@example.com", WRONG).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "forged device"
    );

    // A known browser guessing is throttled on its own: five, then a delay.
    for i in 0..users::FREE_FAILURES_PER_EMAIL_AND_IP {
        let resp = owner.login("owner@example.com", WRONG).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "device guess {i}");
    }
    let resp = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let w = retry_after(&resp);
    assert!((1..=2).contains(&w), "{w}");
    tokio::time::sleep(Duration::from_secs(w)).await;
    let resp = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    app.finish().await;
}

#[tokio::test]
async fn guesses_wait_longer_and_longer_and_refusals_do_not_add_to_the_wait() {
    let app = TestApp::spawn_with(|c| c.trust_proxy = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let free = users::FREE_FAILURES_PER_EMAIL as usize;
    let (checked, _) = guess_from_everywhere(&app.url, "owner@example.com", free, 0).await;
    assert_eq!(checked, free);
    // The next guess waits about a second (unless this machine is slow enough that a
    // second went by: then it is checked, and the one after it waits).
    let mut extra = 0;
    let first = loop {
        let (checked, wait) = guess_from_everywhere(&app.url, "owner@example.com", 1, 1).await;
        match wait {
            Some(w) => break w,
            None => extra += checked,
        }
        assert!(extra < 3, "guesses are not slowed down");
    };
    assert!(first <= 1 << (extra + 1), "{first} after {extra}");
    // Hammering meanwhile changes nothing: refusals are not guesses, so after the
    // wait a guess is checked again.
    guess_from_everywhere(&app.url, "owner@example.com", 3, 2).await;
    tokio::time::sleep(Duration::from_secs(first)).await;
    let mut checked = 0;
    for round in 0..2 {
        let (c, wait) = guess_from_everywhere(&app.url, "owner@example.com", 1, 3).await;
        checked += c;
        match wait {
            None => break,
            Some(w) => {
                // Only if this machine let a hammering guess through after its wait.
                assert!(round == 0 && w <= 1 << (extra + 2), "{w}");
                tokio::time::sleep(Duration::from_secs(w)).await;
            }
        }
    }
    assert_eq!(checked, 1, "checked after the wait");
    // Each further failure doubles the wait.
    seed_failures(&app, "owner@example.com", 1).await;
    let (_, after_one) = guess_from_everywhere(&app.url, "owner@example.com", 1, 4).await;
    seed_failures(&app, "owner@example.com", 1).await;
    let (_, after_two) = guess_from_everywhere(&app.url, "owner@example.com", 1, 5).await;
    let (after_one, after_two) = (after_one.expect("refused"), after_two.expect("refused"));
    assert!(
        after_one >= 3 && after_two > after_one,
        "{after_one} then {after_two}"
    );

    // Many guesses in parallel from many addresses: none gets past the delay.
    let url = app.url.clone();
    let guesses = (0..10)
        .map(|i| {
            let url = url.clone();
            async move {
                Browser::from(&url, &format!("198.51.4.{i}"))
                    .login("owner@example.com", WRONG)
                    .await
                    .status()
            }
        })
        .collect();
    let statuses = crate::dashboard::join_all(guesses).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    app.finish().await;
}

/// Failed sign-ins are in the database: guesses on one node slow the next on another.
#[tokio::test]
async fn sign_in_throttling_holds_across_nodes() {
    let Some((t, b, _b_store, b_url)) = crate::nodes::two_nodes(|c| c.trust_proxy = true).await
    else {
        return;
    };
    user(&t, "owner@example.com", Role::Owner).await;
    let free = users::FREE_FAILURES_PER_EMAIL as usize;
    let (checked, _) = guess_from_everywhere(&t.url, "owner@example.com", free, 0).await;
    assert_eq!(checked, free);
    seed_failures(&t, "owner@example.com", 3).await;
    let (checked, wait) = guess_from_everywhere(&b_url, "owner@example.com", 3, 1).await;
    assert_eq!(
        checked, 0,
        "the other node counts the first node's failures"
    );
    assert!(wait.is_some());
    // A device cookie signed on one node is honoured by the other (same secret).
    user(&t, "admin@example.com", Role::Admin).await;
    let mut admin = Browser::from(&t.url, "203.0.113.7");
    assert_eq!(
        admin.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    guess_from_everywhere(&t.url, "admin@example.com", free, 5).await;
    seed_failures(&t, "admin@example.com", 5).await;
    assert_eq!(
        Browser::from(&b_url, "203.0.113.8")
            .login("admin@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    admin.url = b_url.clone();
    assert_eq!(
        admin.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    b.shutdown().await;
    t.finish().await;
}

/// A sign-in form post with the given pre-session cookie and field.
async fn post_login(app: &TestApp, cookie: &str, field: &str) -> reqwest::Response {
    browser()
        .post(format!("{}/login", app.url))
        .header(COOKIE, cookie)
        .form(&[
            ("csrf", field),
            ("email", "owner@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login")
}

#[tokio::test]
async fn login_csrf_refuses_a_token_pair_the_sender_chose() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;

    // The pair, and look-alikes: refused, no session.
    let digester = KeyDigester::new(&SecretString::from(SECRET));
    let other = KeyDigester::new(&SecretString::from("another server's secret"));
    let now = dialtone_domain::time::now();
    let expired = users::pre_session_token(&digester, now - chrono::TimeDelta::hours(2));
    let foreign = users::pre_session_token(&other, now);
    for token in ["abc", "", "1800000000.abc.def", &expired, &foreign] {
        let resp = post_login(&app, &format!("dt_csrf={token}"), token).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{token:?}");
        assert!(set_cookie(&resp, "dt_session").is_none());
    }

    // A real token, but the field differs from the cookie (or is missing).
    let mut b = Browser::new(&app.url);
    let page = b.get("/login").await;
    let field = csrf_field(&page.text().await.expect("html"));
    let cookie = b.jar["dt_csrf"].clone();
    assert_eq!(cookie, field);
    let fresh = users::pre_session_token(&digester, now);
    let resp = post_login(&app, &format!("dt_csrf={cookie}"), &fresh).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post_login(&app, "", &field).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The real round trip: page, then post.
    let resp = post_login(&app, &format!("dt_csrf={cookie}"), &field).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, header) = set_cookie(&resp, "dt_csrf").expect("the form cookie is cleared");
    assert!(header.contains("Max-Age=0"));
    assert!(set_cookie(&resp, "dt_session").is_some());
    app.finish().await;
}

/// Over HTTPS (a public `https://` URL, or `X-Forwarded-Proto: https` from a trusted
/// proxy) every dashboard cookie is a `__Host-` cookie, and only that name is read.
#[tokio::test]
async fn dashboard_cookies_are_host_prefixed_over_https() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://dash.example.com".into())).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let mut b = Browser::new(&app.url);
    let page = b.get("/login").await;
    let (_, header) = set_cookie(&page, "__Host-dt_csrf").expect("prefixed form cookie");
    assert!(
        header.contains("; Secure") && header.contains("Path=/") && !header.contains("Domain"),
        "{header}"
    );
    assert!(set_cookie(&page, "dt_csrf").is_none());
    let field = csrf_field(&page.text().await.expect("html"));
    // The bare name is not read over HTTPS (a sibling subdomain or a plain-HTTP
    // response could have set it).
    let resp = post_login(&app, &format!("dt_csrf={field}"), &field).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post_login(&app, &format!("__Host-dt_csrf={field}"), &field).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for name in ["__Host-dt_session", "__Host-dt_device"] {
        let (_, header) = set_cookie(&resp, name).unwrap_or_else(|| panic!("{name}"));
        assert!(
            header.contains("; Secure") && header.contains("Path=/") && !header.contains("Domain"),
            "{header}"
        );
    }
    assert!(set_cookie(&resp, "dt_session").is_none());
    let (session, _) = set_cookie(&resp, "__Host-dt_session").expect("session");
    let resp = browser()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, format!("dt_session={session}"))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "bare name ignored");
    assert!(
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.starts_with("/login"))
    );
    let resp = browser()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, format!("__Host-dt_session={session}"))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::OK);
    app.finish().await;

    // Behind a TLS-terminating proxy: prefixed when it says https, bare otherwise.
    let app = TestApp::spawn_with(|c| c.trust_proxy = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let mut tls = Browser::new(&app.url);
    tls.tls_proxy = true;
    let resp = tls.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(tls.jar.contains_key("__Host-dt_session"));
    assert!(tls.jar.contains_key("__Host-dt_device"));
    assert_eq!(tls.get("/dashboard/keys").await.status(), StatusCode::OK);
    let mut plain = Browser::new(&app.url);
    let resp = plain.login("owner@example.com", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(plain.jar.contains_key("dt_session"));
    assert!(!plain.jar.keys().any(|k| k.starts_with("__Host-")));
    app.finish().await;
}
