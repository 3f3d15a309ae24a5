//! The dashboard's campaign pages over HTTP, as a browser without JavaScript uses
//! them: a CSV uploaded as `multipart/form-data` (BOM, `;`, quotes) is previewed —
//! the column of numbers and the first rows — before the confirm form starts it, its
//! progress fragment reaches `completed`, and pause, resume and a confirmed cancel go
//! through the same store operations as `PATCH /v1/campaigns/{id}`. Members are refused
//! every form, every form needs its CSRF token, bad input never answers 500, and pages
//! show only the workspace and mode chosen.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;

use crate::common::TestApp;
use crate::dashboard::{FormExt, Signed, browser, page, sign_in, submit, user};

const BOUNDARY: &str = "----dialtone-test-boundary";

/// A multipart body as a browser sends the new-campaign form.
fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some(file) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"recipients_csv\"; \
                 filename=\"list.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &TestApp, cookie: &str, body: Vec<u8>) -> (StatusCode, String) {
    let resp = browser()
        .post(format!("{}/dashboard/campaigns/preview", app.url))
        .header(COOKIE, cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    (status, resp.text().await.expect("html"))
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn test_key() -> KeyRequest {
    KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    }
}

async fn to_test_mode(app: &TestApp, s: &Signed) {
    let resp = submit(app, s, "/dashboard/context", &[("mode", "test")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

/// Excel's "CSV UTF-8" with `;` separators: a BOM, quoted cells, the number in the
/// third column under a "Mobile" header.
const EXCEL: &[u8] = b"\xef\xbb\xbfName;\"Company; Inc\";Mobile\r\n\"Lovelace, Ada\";\"Engines \"\"Ltd\"\"\";+14155550123\r\nBob;Acme;\"+14155550124\"\r\nCy;;+15005550001\r\n";

async fn campaign_in_test_mode(app: &TestApp, s: &Signed, agent_id: &str, csv: &str) -> String {
    let resp = submit(
        app,
        s,
        "/dashboard/campaigns",
        &[
            ("name", "Renewals"),
            ("agent_id", agent_id),
            ("from", "+15005550006"),
            ("recipients_csv", csv),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    location(&resp)
        .strip_prefix("/dashboard/campaigns/")
        .expect("to the campaign")
        .to_owned()
}

#[tokio::test]
async fn dashboard_campaign_from_an_excel_csv_is_previewed_then_started_and_completes() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    to_test_mode(&app, &s).await;
    let key = app.key(test_key()).await;
    let (_, agent) = app
        .post("/v1/agents", &key, json!({"name": "Renewals agent"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    let (status, html) = page(&app, &s.cookie, "/dashboard/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("enctype=\"multipart/form-data\""));
    assert!(html.contains("Renewals agent"));

    // The preview reads the file as the campaign will and creates nothing.
    let body = multipart(
        &[
            ("csrf", &s.csrf),
            ("name", "Renewals"),
            ("agent_id", &agent_id),
            ("from", "+15005550006"),
        ],
        Some(EXCEL),
    );
    let (status, html) = upload(&app, &s.cookie, body).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<strong id=\"chosen-column\">Mobile</strong> (column 3)"));
    assert!(html.contains("semicolon (;)"));
    assert!(html.contains("Company; Inc"), "the header, quotes read");
    assert!(html.contains("line 2</td><td class=\"mono\">+14155550123"));
    assert!(html.contains("line 3</td><td class=\"mono\">+14155550124"));
    assert!(html.contains("<dd id=\"recipient-count\">3 "));
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "not yet");

    // The confirm form (the file carried as text) starts it.
    let csv = std::str::from_utf8(EXCEL).expect("utf-8");
    let id = campaign_in_test_mode(&app, &s, &agent_id, csv).await;
    let (_, c) = app.get(&format!("/v1/campaigns/{id}"), &key).await;
    assert_eq!(c["progress"]["total"], 3);
    assert_eq!(c["agent_id"], agent_id.as_str());
    assert_eq!(c["from"], "+15005550006");
    let (status, html) = page(&app, &s.cookie, &format!("/dashboard/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("hx-get=\"/dashboard/campaigns/{id}/progress\""))
            || html.contains("completed")
    );

    // The fragment htmx polls reaches completion; then it stops asking to be polled.
    let started = std::time::Instant::now();
    let fragment = loop {
        let (status, html) = page(
            &app,
            &s.cookie,
            &format!("/dashboard/campaigns/{id}/progress"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        if html.contains("id=\"campaign-status\">completed") {
            break html;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(fragment.contains("3 of 3"));
    assert!(!fragment.contains("hx-trigger"));
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    let (_, html) = page(&app, &s.cookie, &format!("/dashboard/campaigns/{id}")).await;
    assert_eq!(
        html.matches("/dashboard/calls/call_").count(),
        3,
        "its calls"
    );
    assert!(html.contains("+14155550124"));
    let (_, audit) = page(&app, &s.cookie, "/dashboard/audit").await;
    assert!(audit.contains("campaign.created"));
}

#[tokio::test]
async fn dashboard_campaign_pause_resume_and_confirmed_cancel() {
    let app = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    to_test_mode(&app, &s).await;
    let key = app.key(test_key()).await;
    let (_, agent) = app.post("/v1/agents", &key, json!({"name": "A"})).await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    let id = campaign_in_test_mode(
        &app,
        &s,
        &agent_id,
        "phone\n+14155550123\n+14155550124\n+14155550125\n",
    )
    .await;
    let path = format!("/dashboard/campaigns/{id}");
    let status_of = || async {
        let (_, c) = app.get(&format!("/v1/campaigns/{id}"), &key).await;
        c["status"].as_str().unwrap_or_default().to_owned()
    };
    let resp = submit(&app, &s, &format!("{path}/status"), &[("status", "paused")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of().await, "paused");
    let (_, html) = page(&app, &s.cookie, &path).await;
    assert!(html.contains(">Resume</button>"));
    let resp = submit(
        &app,
        &s,
        &format!("{path}/status"),
        &[("status", "running")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of().await, "running");
    // Cancel is asked once more on a page of its own.
    let (status, html) = page(&app, &s.cookie, &format!("{path}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Cancel campaign Renewals?"));
    assert_eq!(status_of().await, "running", "asking changes nothing");
    let resp = submit(&app, &s, &format!("{path}/cancel"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of().await, "canceled");
    // A canceled campaign cannot be resumed: 409, explained on the page.
    let resp = submit(
        &app,
        &s,
        &format!("{path}/status"),
        &[("status", "running")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("id=\"form-error\"")
    );
    let resp = submit(&app, &s, &format!("{path}/status"), &[("status", "done")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, audit) = page(&app, &s.cookie, "/dashboard/audit").await;
    for action in ["campaign.paused", "campaign.resumed", "campaign.canceled"] {
        assert!(audit.contains(action), "{action}");
    }
}

#[tokio::test]
async fn dashboard_campaign_forms_refuse_members_and_missing_csrf_and_bad_input_is_4xx() {
    let app = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "member@example.com", Role::Member).await;
    let owner = sign_in(&app, "owner@example.com").await;
    let member = sign_in(&app, "member@example.com").await;
    to_test_mode(&app, &owner).await;
    to_test_mode(&app, &member).await;
    let key = app.key(test_key()).await;
    let (_, agent) = app.post("/v1/agents", &key, json!({"name": "A"})).await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    let id = campaign_in_test_mode(
        &app,
        &owner,
        &agent_id,
        "+14155550123\n+14155550124\n+14155550125\n",
    )
    .await;
    let fields = [
        ("name", "X"),
        ("agent_id", agent_id.as_str()),
        ("recipients_csv", "+14155550123"),
    ];

    // Members see the pages, without the forms, and every form refuses them.
    let (status, html) = page(&app, &member.cookie, "/dashboard/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Renewals"));
    assert!(!html.contains("/dashboard/campaigns/preview"));
    let (_, html) = page(&app, &member.cookie, &format!("/dashboard/campaigns/{id}")).await;
    assert!(!html.contains("/status\""));
    let body = multipart(
        &[
            ("csrf", &member.csrf),
            ("name", "X"),
            ("agent_id", &agent_id),
        ],
        Some(b"+14155550123"),
    );
    assert_eq!(
        upload(&app, &member.cookie, body).await.0,
        StatusCode::FORBIDDEN
    );
    for (path, f) in [
        ("/dashboard/campaigns".to_owned(), &fields[..]),
        (
            format!("/dashboard/campaigns/{id}/status"),
            &[("status", "paused")][..],
        ),
        (format!("/dashboard/campaigns/{id}/cancel"), &[][..]),
    ] {
        let resp = submit(&app, &member, &path, f).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = page(
        &app,
        &member.cookie,
        &format!("/dashboard/campaigns/{id}/cancel"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Without the CSRF token (or a wrong one), every form is refused.
    let body = multipart(
        &[("name", "X"), ("agent_id", &agent_id)],
        Some(b"+14155550123"),
    );
    assert_eq!(
        upload(&app, &owner.cookie, body).await.0,
        StatusCode::FORBIDDEN
    );
    for path in [
        "/dashboard/campaigns".to_owned(),
        format!("/dashboard/campaigns/{id}/status"),
        format!("/dashboard/campaigns/{id}/cancel"),
    ] {
        let resp = browser()
            .post(format!("{}{path}", app.url))
            .header(COOKIE, &owner.cookie)
            .form(&[("csrf", "forged"), ("status", "paused")])
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (_, c) = app.get(&format!("/v1/campaigns/{id}"), &key).await;
    assert_eq!(c["status"], "running", "nothing changed");
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

    // Bad uploads are explained next to the form: 4xx, never 500.
    let csrf = owner.csrf.as_str();
    for (fields, file, words) in [
        (
            vec![
                ("csrf", csrf),
                ("name", "X"),
                ("agent_id", agent_id.as_str()),
            ],
            Some(&b"phone\n555-0100\n"[..]),
            "is not an E.164 number",
        ),
        (
            vec![
                ("csrf", csrf),
                ("name", "X"),
                ("agent_id", agent_id.as_str()),
            ],
            Some(&b"\xff\xfe+1415"[..]),
            "not UTF-8",
        ),
        (
            vec![
                ("csrf", csrf),
                ("name", "X"),
                ("agent_id", agent_id.as_str()),
            ],
            Some(&b""[..]),
            "at least one recipient",
        ),
        (
            vec![
                ("csrf", csrf),
                ("name", ""),
                ("agent_id", agent_id.as_str()),
            ],
            Some(&b"+14155550123"[..]),
            "name must be",
        ),
        (
            vec![("csrf", csrf), ("name", "X"), ("agent_id", "agt_nope")],
            Some(&b"+14155550123"[..]),
            "no such agent",
        ),
        (
            vec![
                ("csrf", csrf),
                ("name", "X"),
                ("agent_id", agent_id.as_str()),
                ("from", "+14155559999"),
            ],
            Some(&b"+14155550123"[..]),
            "not one of your numbers",
        ),
        (
            vec![
                ("csrf", csrf),
                ("name", "X"),
                ("agent_id", agent_id.as_str()),
            ],
            Some(&b"\"unclosed\n+14155550123"[..]),
            "",
        ),
    ] {
        let (status, html) = upload(&app, &owner.cookie, multipart(&fields, file)).await;
        assert!(status.is_client_error(), "{status} {words}: {html}");
        if !words.is_empty() {
            assert!(
                matches!(
                    status,
                    StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "{words}: {status}"
            );
            assert!(html.contains("id=\"form-error\""), "{words}");
            assert!(html.contains(words), "{words}: {html}");
        }
    }
    // A body that is not multipart at all, or truncated: 4xx.
    for (ct, body) in [
        ("text/plain", b"hello".to_vec()),
        ("multipart/form-data", b"x".to_vec()),
        (
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc".to_vec(),
        ),
    ] {
        let resp = browser()
            .post(format!("{}/dashboard/campaigns/preview", app.url))
            .header(COOKIE, &owner.cookie)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(resp.status().is_client_error(), "{ct}: {}", resp.status());
    }
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(1),
        "none created"
    );
    for path in [
        "/dashboard/campaigns/nope",
        "/dashboard/campaigns/cmp_01jd5x7c2m8n4p6q8r0s2t4v6w",
        "/dashboard/campaigns/x/progress",
        "/dashboard/campaigns/%00/cancel",
    ] {
        let (status, _) = page(&app, &owner.cookie, path).await;
        assert!(status.is_client_error(), "{path}: {status}");
    }
}

#[tokio::test]
async fn dashboard_campaigns_show_only_the_chosen_workspace_and_mode() {
    let app = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let other = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let test = app.key(test_key()).await;
    let other_test = app
        .key(KeyRequest {
            name: "other".into(),
            mode: Some(Mode::Test),
            workspace_id: Some(other.id.clone()),
            ..Default::default()
        })
        .await;
    let mut ids = Vec::new();
    for (key, name) in [(&test, "Here"), (&other_test, "Elsewhere")] {
        let (_, agent) = app.post("/v1/agents", key, json!({"name": "A"})).await;
        let (status, c) = app
            .post(
                "/v1/campaigns",
                key,
                json!({"name": name, "agent_id": agent["id"], "recipients": ["+14155550123"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        ids.push(c["id"].as_str().expect("id").to_owned());
    }
    // Live mode of the default workspace: neither.
    let (_, html) = page(&app, &s.cookie, "/dashboard/campaigns").await;
    assert!(!html.contains("Here") && !html.contains("Elsewhere"));
    let (status, _) = page(&app, &s.cookie, &format!("/dashboard/campaigns/{}", ids[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Test mode: this workspace's only; the other's is 404 to every page and form.
    to_test_mode(&app, &s).await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/campaigns").await;
    assert!(html.contains("Here") && !html.contains("Elsewhere"));
    for path in ["", "/progress", "/cancel"] {
        let (status, _) = page(
            &app,
            &s.cookie,
            &format!("/dashboard/campaigns/{}{path}", ids[1]),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/campaigns/{}/cancel", ids[1]),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (_, c) = app
        .get(&format!("/v1/campaigns/{}", ids[1]), &other_test)
        .await;
    assert_eq!(c["status"], "running");
}
