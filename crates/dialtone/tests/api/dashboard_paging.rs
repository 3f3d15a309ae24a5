//! Paging of the dashboard's campaigns list and of a contact's timeline, over HTTP as
//! a browser without JavaScript follows the "older" links: every page in exact
//! newest-first order with no repeats and nothing skipped (the timeline merged across
//! calls, messages and notes, ties of creation time broken by id), members see the
//! same pages, a cursor that is not one the page gave is a 400 page (never a 500), and
//! another workspace's items never appear.

use std::time::Duration;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::page::encode_cursor;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::Timestamp;
use dialtone_domain::timeline::Position;
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, with_database};
use crate::dashboard::{Signed, page, sign_in, submit, user};

fn test_key(name: &str, workspace_id: Option<String>) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        mode: Some(Mode::Test),
        workspace_id,
        ..Default::default()
    }
}

async fn to_test_mode(app: &TestApp, s: &Signed) {
    let resp = submit(app, s, "/dashboard/context", &[("mode", "test")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

/// Every value of `attr="…"` in `html` that starts with `prefix`, in page order.
fn attrs(html: &str, attr: &str, prefix: &str) -> Vec<String> {
    let needle = format!("{attr}=\"{prefix}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        let start = i + attr.len() + 2;
        let end = rest[start..].find('"').map_or(rest.len(), |e| start + e);
        out.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    out
}

/// The "older" link of a page: the one link carrying a cursor.
fn older(html: &str, base: &str) -> Option<String> {
    let links = attrs(html, "href", &format!("{base}?cursor="));
    assert!(links.len() <= 1, "one older link: {links:?}");
    links.into_iter().next()
}

/// Sets the creation time of a row, so items of different sources share one
/// millisecond: the server never writes that on purpose, a busy contact does.
async fn set_created_at(app: &TestApp, table: &str, id: &str, at: Timestamp) {
    assert!(["calls", "messages", "notes"].contains(&table));
    match &app.db {
        TestDb::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.join("dialtone.db")).expect("open sqlite");
            conn.busy_timeout(Duration::from_secs(10))
                .expect("busy timeout");
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let n = conn
                .execute(
                    &format!("UPDATE {table} SET created_at = ?1 WHERE id = ?2"),
                    (at, id),
                )
                .expect("update");
            assert_eq!(n, 1, "{table} {id}");
        }
        TestDb::Postgres { admin_url, name } => {
            let pool = sqlx::PgPool::connect(&with_database(admin_url, name))
                .await
                .expect("connect");
            let sql = match table {
                "calls" => "UPDATE calls SET created_at = $1 WHERE id = $2",
                "messages" => "UPDATE messages SET created_at = $1 WHERE id = $2",
                _ => "UPDATE notes SET created_at = $1 WHERE id = $2",
            };
            let done = sqlx::query(sql)
                .bind(at)
                .bind(id)
                .execute(&pool)
                .await
                .expect("update");
            assert_eq!(done.rows_affected(), 1, "{table} {id}");
            pool.close().await;
        }
    }
}

/// Bad cursors: not base64, not an id, not a timeline position, a time out of range.
fn bad_cursors() -> Vec<String> {
    vec![
        "!!!".to_owned(),
        "%00".to_owned(),
        encode_cursor("no spaces allowed"),
        "a".repeat(500),
    ]
}

#[tokio::test]
async fn dashboard_campaigns_page_two_shows_the_older_ones_without_repeats() {
    let app = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "member@example.com", Role::Member).await;
    let other = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let key = app.key(test_key("here", None)).await;
    let other_key = app.key(test_key("there", Some(other.id.clone()))).await;
    let (_, agent) = app.post("/v1/agents", &key, json!({"name": "A"})).await;
    let (_, other_agent) = app
        .post("/v1/agents", &other_key, json!({"name": "B"}))
        .await;
    let mut ids = Vec::new();
    let mut elsewhere = Vec::new();
    for i in 0..32 {
        // Another workspace's campaigns are made in between, so they would show on
        // either page if the scope leaked.
        let (k, a, name) = if i % 8 == 3 {
            (&other_key, &other_agent, format!("Elsewhere {i}"))
        } else {
            (&key, &agent, format!("Batch {i}"))
        };
        let (status, c) = app
            .post(
                "/v1/campaigns",
                k,
                json!({"name": name, "agent_id": a["id"], "recipients": ["+14155550123"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        let id = c["id"].as_str().expect("id").to_owned();
        if i % 8 == 3 {
            elsewhere.push(id);
        } else {
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 28);
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let ids_of = |html: &str| {
        let mut seen = attrs(html, "href", "/dashboard/campaigns/cmp_");
        seen.dedup();
        seen.into_iter()
            .map(|h| h.trim_start_matches("/dashboard/campaigns/").to_owned())
            .collect::<Vec<_>>()
    };
    for email in ["owner@example.com", "member@example.com"] {
        let s = sign_in(&app, email).await;
        to_test_mode(&app, &s).await;
        let (status, first) = page(&app, &s.cookie, "/dashboard/campaigns").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids_of(&first), ids[..25], "{email}: the newest 25");
        let next = older(&first, "/dashboard/campaigns").expect("an older link");
        let (status, second) = page(&app, &s.cookie, &next).await;
        assert_eq!(status, StatusCode::OK, "{email}");
        assert_eq!(
            ids_of(&second),
            ids[25..],
            "{email}: the 3 older ones, once"
        );
        assert!(
            older(&second, "/dashboard/campaigns").is_none(),
            "the last page"
        );
        assert!(second.contains("← Newest"));
        for html in [&first, &second] {
            assert!(!html.contains("Elsewhere"), "{email}");
            assert!(elsewhere.iter().all(|id| !html.contains(id.as_str())));
        }
        // A well-formed cursor past the end: an empty page, said so.
        let past = format!(
            "/dashboard/campaigns?cursor={}",
            encode_cursor(ids.last().expect("ids"))
        );
        let (status, html) = page(&app, &s.cookie, &past).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ids_of(&html).is_empty() && html.contains("No older campaigns."));
        // Another workspace's campaign as the cursor pages this workspace only.
        let (status, html) = page(
            &app,
            &s.cookie,
            &format!(
                "/dashboard/campaigns?cursor={}",
                encode_cursor(&elsewhere[3])
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let shown = ids_of(&html);
        assert!(!shown.is_empty() && shown.iter().all(|id| ids.contains(id)));
        for bad in bad_cursors() {
            let (status, html) = page(
                &app,
                &s.cookie,
                &format!("/dashboard/campaigns?cursor={bad}"),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(html.contains("cursor is invalid"), "{bad}: {html}");
            assert!(ids_of(&html).is_empty());
        }
    }
    app.finish().await;
}

/// One item of a contact's timeline: its table and id.
struct Item {
    table: &'static str,
    id: String,
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn dashboard_contact_timeline_pages_across_sources_newest_first_with_ties() {
    let app = TestApp::spawn_with(|c| c.simulator_step = Duration::from_secs(30)).await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "member@example.com", Role::Member).await;
    let other = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let key = app.key(test_key("here", None)).await;
    let other_key = app.key(test_key("there", Some(other.id.clone()))).await;
    const PHONE: &str = "+14155550150";
    let (_, contact) = app
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "Ada", "phone_number": PHONE}),
        )
        .await;
    let contact = id_of(&contact);
    // Another contact of this workspace and one with the same number elsewhere: their
    // calls, messages and notes are never on this timeline.
    let (_, neighbour) = app
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "Bob", "phone_number": "+14155550151"}),
        )
        .await;
    let (_, twin) = app
        .post(
            "/v1/contacts",
            &other_key,
            json!({"first_name": "Twin", "phone_number": PHONE}),
        )
        .await;
    let mut foreign = Vec::new();
    for (k, c, to) in [
        (&key, &neighbour, "+14155550151"),
        (&other_key, &twin, PHONE),
    ] {
        let (_, call) = app.post("/v1/calls", k, json!({"to": to})).await;
        let (_, msg) = app
            .post("/v1/messages", k, json!({"to": to, "body": "not-ada"}))
            .await;
        let (_, note) = app
            .post(
                &format!("/v1/contacts/{}/notes", id_of(c)),
                k,
                json!({"content": "not-ada"}),
            )
            .await;
        foreign.extend([id_of(&call), id_of(&msg), id_of(&note)]);
    }

    let mut items = Vec::new();
    for i in 0..11 {
        let (status, call) = app.post("/v1/calls", &key, json!({"to": PHONE})).await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
        assert_eq!(call["contact_id"], contact.as_str());
        items.push(Item {
            table: "calls",
            id: id_of(&call),
        });
        let (status, msg) = app
            .post(
                "/v1/messages",
                &key,
                json!({"to": PHONE, "body": format!("message {i}")}),
            )
            .await;
        assert!(status.is_success(), "{msg}");
        items.push(Item {
            table: "messages",
            id: id_of(&msg),
        });
        let (status, note) = app
            .post(
                &format!("/v1/contacts/{contact}/notes"),
                &key,
                json!({"content": format!("note {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{note}");
        items.push(Item {
            table: "notes",
            id: id_of(&note),
        });
    }
    let (_, convs) = app
        .get(&format!("/v1/conversations?contact_id={contact}"), &key)
        .await;
    let conv = id_of(&convs["data"][0]);
    for i in 0..3 {
        let (status, note) = app
            .post(
                &format!("/v1/conversations/{conv}/notes"),
                &key,
                json!({"content": format!("thread note {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{note}");
        items.push(Item {
            table: "notes",
            id: id_of(&note),
        });
    }
    // Every message of the thread is on the timeline (replies included, if any).
    let (_, msgs) = app
        .get(
            &format!("/v1/messages?conversation_id={conv}&limit=100"),
            &key,
        )
        .await;
    for m in msgs["data"].as_array().expect("messages") {
        if !items.iter().any(|i| i.id == id_of(m)) {
            items.push(Item {
                table: "messages",
                id: id_of(m),
            });
        }
    }
    assert!(items.len() > 25 + 10, "more than a page: {}", items.len());

    // Groups of four items (calls, messages and notes mixed) share a millisecond, so
    // ties fall across the page boundary; older groups first in `items` order, to be
    // unlike the order the rows were written in.
    let base = dialtone_domain::time::now() - chrono::TimeDelta::hours(1);
    let mut expected = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let at = base - chrono::TimeDelta::milliseconds((n / 4) as i64 * 7);
        set_created_at(&app, item.table, &item.id, at).await;
        expected.push(Position::new(at, &item.id));
    }
    expected.sort_by(|a, b| a.timeline_cmp(b));
    let expected: Vec<String> = expected.into_iter().map(|p| p.id).collect();

    let path = format!("/dashboard/contacts/{contact}");
    for email in ["owner@example.com", "member@example.com"] {
        let s = sign_in(&app, email).await;
        to_test_mode(&app, &s).await;
        let mut shown = Vec::new();
        let mut pages = 0;
        let mut next = Some(path.clone());
        while let Some(p) = next {
            let (status, html) = page(&app, &s.cookie, &p).await;
            assert_eq!(status, StatusCode::OK, "{email} {p}");
            assert!(
                !html.contains("not-ada"),
                "{email}: another contact's on {p}"
            );
            for id in &foreign {
                assert!(!html.contains(id.as_str()), "{email}: {id} on {p}");
            }
            let ids: Vec<String> = ["call_", "msg_", "note_"]
                .iter()
                .flat_map(|prefix| attrs(&html, "id", prefix))
                .collect();
            assert!(ids.len() <= 25, "{email}: a page holds 25");
            // In page order (attrs per prefix lost it): re-read by position.
            let mut ids = ids;
            ids.sort_by_key(|id| html.find(&format!("id=\"{id}\"")));
            shown.extend(ids);
            pages += 1;
            next = older(&html, &path);
            if let Some(l) = &next {
                assert!(l.ends_with("#timeline"), "{l}: back at the timeline");
            }
            assert!(pages < 10, "paging ends");
        }
        assert_eq!(shown, expected, "{email}: every item once, newest first");
        assert_eq!(pages, expected.len().div_ceil(25), "{email}");

        for bad in bad_cursors().into_iter().chain([
            encode_cursor("nounderscore"),
            encode_cursor("12_"),
            encode_cursor("99999999999999999_call_x"),
        ]) {
            let (status, html) = page(&app, &s.cookie, &format!("{path}?cursor={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(html.contains("cursor is invalid"), "{bad}");
            assert!(html.contains("Ada"), "still the contact's page");
        }
        // The twin in the other workspace is not found from this one.
        let (status, _) = page(
            &app,
            &s.cookie,
            &format!("/dashboard/contacts/{}", id_of(&twin)),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    app.finish().await;
}

/// A query a dashboard page cannot take (here a repeated parameter) is the dashboard's
/// 400 page, in HTML, saying what was wrong — never axum's plain-text rejection — on
/// every page that reads its query string; the same page with one value still works.
#[tokio::test]
async fn a_repeated_query_parameter_is_the_dashboards_400_page_on_every_list() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let key = app.admin_key().await;
    let (status, contact) = app
        .post(
            "/v1/contacts",
            &key,
            json!({"phone_number": "+14155550123"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact = contact["id"].as_str().expect("id");
    let contact_page = format!("/dashboard/contacts/{contact}");
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/dashboard/calls", "status", "completed"),
        ("/dashboard/campaigns", "cursor", ""),
        ("/dashboard/contacts", "search", "ada"),
        (&contact_page, "cursor", ""),
        ("/dashboard/conversations", "cursor", ""),
        ("/dashboard/billing", "cursor", ""),
        ("/dashboard/audit", "from_date", "2026-11-01"),
        ("/dashboard/analytics", "group_by", "direction"),
        ("/dashboard/numbers", "country", "US"),
        ("/dashboard/keys", "new", "x"),
    ];
    for (path, name, value) in cases {
        let (status, _) = page(&app, &s.cookie, &format!("{path}?{name}={value}")).await;
        assert_eq!(status, StatusCode::OK, "{path} with one {name}");
        let url = format!("{}{path}?{name}={value}&{name}={value}", app.url);
        let resp = crate::dashboard::browser()
            .get(&url)
            .header(reqwest::header::COOKIE, &s.cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{url}");
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/html; charset=utf-8", "{url}");
        let html = resp.text().await.expect("html");
        assert!(html.starts_with("<!doctype html>"), "{url}: {html}");
        assert!(html.contains(r#"<p class="status-code">400</p>"#), "{url}");
        assert!(
            html.contains(&format!("duplicate field `{name}`")),
            "{url} names the parameter: {html}"
        );
    }
    // Before sign-in too: the sign-in page's `next`.
    let resp = crate::dashboard::browser()
        .get(format!("{}/login?next=/a&next=/b", app.url))
        .send()
        .await
        .expect("login page");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains(r#"<p class="status-code">400</p>"#)
    );
    app.finish().await;
}
