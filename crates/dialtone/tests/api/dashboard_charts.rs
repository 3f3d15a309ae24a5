//! The dashboard's pictures over HTTP: each key's requests per day (30 slots, today's
//! bar carrying the requests just made, flushed days included), calls and minutes per
//! day on the calls page, and the Analytics page, whose table holds exactly what
//! `GET /v1/analytics/usage` answers for the same range. Bad ranges are a 4xx page,
//! and another workspace's or mode's data never shows.

use chrono::{NaiveDate, TimeDelta, Utc};
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Role;
use dialtone_store::UsageDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, is_terminal, wait_for_call};
use crate::dashboard::{Signed, page, sign_in, submit, user};

fn test_key() -> KeyRequest {
    KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    }
}

/// How a chart writes a day of the current year ("Nov 28").
fn day_text(d: NaiveDate) -> String {
    d.format("%b %-d").to_string()
}

/// The `<svg …>…</svg>` whose accessible name starts with `name`.
fn svg_named<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("aria-label=\"{name}"))
        .unwrap_or_else(|| panic!("no chart named {name:?} in {html}"));
    let start = html[..at].rfind("<svg").expect("svg start");
    let end = at + html[at..].find("</svg>").expect("svg end") + "</svg>".len();
    &html[start..end]
}

/// The accessible name of a chart.
fn aria_label(svg: &str) -> &str {
    let v = svg.find("aria-label=\"").expect("aria-label") + "aria-label=\"".len();
    svg[v..].split('"').next().expect("label")
}

/// The text of each day's `<title>` in a chart, oldest first.
fn bar_titles(svg: &str) -> Vec<String> {
    svg.split("<g class=\"slot\"><title>")
        .skip(1)
        .map(|s| s.split("</title>").next().expect("title").to_owned())
        .collect()
}

/// The row of a key on the keys page.
fn key_row<'a>(html: &'a str, key_id: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-key-id=\"{key_id}\""))
        .expect("the key's row");
    let end = start + html[start..].find("</tr>").expect("row end");
    &html[start..end]
}

async fn switch(app: &TestApp, s: &Signed, fields: &[(&str, &str)]) {
    let resp = submit(app, s, "/dashboard/context", fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn dashboard_key_rows_chart_30_days_of_requests_including_unflushed_ones() {
    let app = TestApp::spawn().await;
    user(&app, "member@example.com", Role::Member).await;
    let created = app.create_key(test_key()).await;
    let key = secrecy::ExposeSecret::expose_secret(&created.secret).to_owned();
    let id = created.key.id.clone();
    // Three days ago, as another node flushed it; today, counted in memory only.
    let now = Utc::now();
    let today = now.date_naive();
    let epoch_today = dialtone_domain::time::epoch_day(now);
    app.store
        .flush_usage(&[UsageDelta {
            key_id: id.clone(),
            day: epoch_today - 3,
            count: 5,
            last_used_at: now - TimeDelta::days(3),
            last_ip: None,
            permissions: Vec::new(),
        }])
        .await
        .expect("flush");
    // Outside the window (30 days ago): counted nowhere.
    app.store
        .flush_usage(&[UsageDelta {
            key_id: id.clone(),
            day: epoch_today - 30,
            count: 40,
            last_used_at: now - TimeDelta::days(30),
            last_ip: None,
            permissions: Vec::new(),
        }])
        .await
        .expect("flush");
    for _ in 0..7 {
        let (status, _) = app.get("/v1/contacts", &key).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Another organization's busy key changes nothing here.
    let other_org = app.store.create_org("Other").await.expect("org");
    let digester = dialtone_domain::keys::KeyDigester::new(&app.config.server_secret);
    let other = dialtone_api::keys::KeyIssuer {
        store: &app.store,
        digester: &digester,
        brand: &app.config.key_brand,
        cap: app.config.key_cap,
        ip: None,
    }
    .create(
        dialtone_domain::auth::Actor::Operator,
        &other_org.id,
        KeyRequest {
            name: "other".into(),
            ..Default::default()
        },
    )
    .await
    .expect("other key");
    app.store
        .flush_usage(&[UsageDelta {
            key_id: other.key.id.clone(),
            day: epoch_today,
            count: 999,
            last_used_at: now,
            last_ip: None,
            permissions: Vec::new(),
        }])
        .await
        .expect("flush");

    // Members see it (it is the keys page, read-only for them).
    let s = sign_in(&app, "member@example.com").await;
    let (status, html) = page(&app, &s.cookie, "/dashboard/keys").await;
    assert_eq!(status, StatusCode::OK);
    let row = key_row(&html, &id);
    let svg = svg_named(row, "Requests per day, last 30 days");
    let titles = bar_titles(svg);
    assert_eq!(titles.len(), 30, "30 slots: {svg}");
    assert_eq!(svg.matches("class=\"bar").count(), 30);
    let first = today - TimeDelta::days(29);
    if first.format("%Y").to_string() == today.format("%Y").to_string() {
        assert_eq!(titles[29], format!("{}: 7 requests", day_text(today)));
        assert_eq!(
            titles[26],
            format!("{}: 5 requests", day_text(today - TimeDelta::days(3)))
        );
        assert_eq!(titles[0], format!("{}: 0 requests", day_text(first)));
        assert_eq!(
            aria_label(svg),
            format!(
                "Requests per day, last 30 days: 12 requests in total, peak 7 on {}",
                day_text(today)
            )
        );
    }
    let counts: Vec<i64> = titles
        .iter()
        .map(|t| {
            t.rsplit(": ")
                .next()
                .expect("count")
                .split(' ')
                .next()
                .expect("n")
                .replace(',', "")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 12, "{titles:?}");
    assert_eq!(counts[29], 7);
    assert_eq!(counts[26], 5);
    // The number next to it is the same 30 days.
    assert!(row.contains(">12<div class=\"spark\">"), "{row}");
    assert!(
        !html.contains("999 requests"),
        "another organization's usage"
    );
    assert!(!svg.contains("style="), "no inline style (CSP)");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_calls_page_charts_calls_and_minutes_per_day_of_its_mode() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let key = app.key(test_key()).await;
    let mut minutes = 0;
    for to in ["+14155550123", "+14155550124"] {
        let (status, call) = app.post("/v1/calls", &key, json!({"to": to})).await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
        let done = wait_for_call(&app, &key, call["id"].as_str().expect("id"), is_terminal).await;
        minutes += (done["duration_seconds"].as_i64().expect("duration") + 59) / 60;
    }
    assert!(minutes > 0, "the simulator's calls last");
    let today = day_text(Utc::now().date_naive());
    let s = sign_in(&app, "owner@example.com").await;
    // Live mode: the test calls are not there.
    let (_, html) = page(&app, &s.cookie, "/dashboard/calls").await;
    assert_eq!(
        aria_label(svg_named(&html, "Calls per day")),
        "Calls per day, last 30 days: no calls"
    );
    switch(&app, &s, &[("mode", "test"), ("back", "/dashboard/calls")]).await;
    // The charts ignore the log's filters: they are the last 30 days.
    let (status, html) = page(&app, &s.cookie, "/dashboard/calls?status=failed").await;
    assert_eq!(status, StatusCode::OK);
    let calls = svg_named(&html, "Calls per day");
    assert_eq!(bar_titles(calls).len(), 30);
    assert_eq!(
        bar_titles(calls).last().expect("today"),
        &format!("{today}: 2 calls")
    );
    assert_eq!(
        aria_label(calls),
        format!("Calls per day, last 30 days: 2 calls in total, peak 2 on {today}")
    );
    let mins = svg_named(&html, "Billable minutes per day");
    assert_eq!(
        bar_titles(mins).last().expect("today"),
        &format!(
            "{today}: {minutes} minute{}",
            if minutes == 1 { "" } else { "s" }
        )
    );
    app.finish().await;
}

/// The cells of the rows of the `#usage` table: tbody rows, then the totals row.
fn usage_table(html: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let start = html.find("id=\"usage\"").expect("the usage table");
    let table = &html[start..start + html[start..].find("</table>").expect("table end")];
    let cells = |row: &str| -> Vec<String> {
        row.split("<t")
            .skip(1)
            .filter(|c| c.starts_with('d') || c.starts_with("h scope=\"row\""))
            .map(|c| {
                let v = c.find('>').expect("cell") + 1;
                c[v..].split('<').next().expect("text").trim().to_owned()
            })
            .collect()
    };
    let body = table
        .split("<tbody>")
        .nth(1)
        .and_then(|b| b.split("</tbody>").next())
        .expect("tbody");
    let rows = body.split("<tr>").skip(1).map(cells).collect::<Vec<_>>();
    let foot = table
        .split("<tfoot>")
        .nth(1)
        .map(cells)
        .expect("the totals row");
    (rows, foot)
}

fn money(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// A REST bucket as the dashboard table writes it.
fn as_cells(b: &Value, day: Option<String>, group: Option<String>) -> Vec<String> {
    let mut cells = Vec::new();
    cells.extend(day);
    cells.extend(group);
    for f in [
        "calls",
        "answered",
        "missed",
        "minutes",
        "messages_in",
        "messages_out",
    ] {
        cells.push(b[f].as_i64().expect(f).to_string());
    }
    cells.push(money(b["cost"].as_i64().expect("cost")));
    cells
}

#[tokio::test]
async fn dashboard_analytics_table_equals_the_rest_report_for_the_same_range() {
    let app = TestApp::spawn().await;
    user(&app, "member@example.com", Role::Member).await;
    let key = app.key(test_key()).await;
    for to in ["+14155550123", "+14155550124", "+15005550001"] {
        let (_, call) = app.post("/v1/calls", &key, json!({"to": to})).await;
        wait_for_call(&app, &key, call["id"].as_str().expect("id"), is_terminal).await;
    }
    let (status, _) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+14155550123", "body": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let today = Utc::now().date_naive();
    let from = today - TimeDelta::days(6);
    let s = sign_in(&app, "member@example.com").await;
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/analytics")],
    )
    .await;
    for group in ["", "direction"] {
        let path = format!("/dashboard/analytics?from={from}&to={today}&group_by={group}");
        let (status, html) = page(&app, &s.cookie, &path).await;
        assert_eq!(status, StatusCode::OK, "a member may look: {html}");
        let mut rest = format!(
            "/v1/analytics/usage?from={from}T00:00:00Z&to={}T00:00:00Z",
            today + TimeDelta::days(1)
        );
        if !group.is_empty() {
            rest.push_str(&format!("&group_by={group}"));
        }
        let (status, report) = app.get(&rest, &key).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let (rows, totals) = usage_table(&html);
        let expected: Vec<Vec<String>> = report["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|b| {
                as_cells(
                    b,
                    Some(b["period_start"].as_str().expect("period")[..10].to_owned()),
                    (!group.is_empty()).then(|| b["group"].as_str().unwrap_or("(none)").to_owned()),
                )
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(rows, expected, "{group}");
        let mut want_totals = as_cells(&report["totals"], Some("Total".into()), None);
        if !group.is_empty() {
            want_totals.insert(1, String::new());
        }
        assert_eq!(totals, want_totals);
        assert_eq!(report["totals"]["calls"], 3);
        // The charts: one slot per day of the range, today's bars carry the totals.
        let calls = svg_named(&html, "Calls per day,");
        let titles = bar_titles(calls);
        assert_eq!(titles.len(), 7);
        assert_eq!(titles[6], format!("{}: 3 calls", day_text(today)));
        let messages = svg_named(&html, "Messages per day");
        assert_eq!(
            bar_titles(messages)[6],
            format!("{}: 1 message", day_text(today))
        );
        assert!(svg_named(&html, "Answered calls per day").contains("role=\"img\""));
        assert!(svg_named(&html, "Billable minutes per day").contains("role=\"img\""));
    }
    // The default is the last 30 days, ending today.
    let (status, html) = page(&app, &s.cookie, "/dashboard/analytics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("value=\"{}\"", today - TimeDelta::days(29))));
    assert!(html.contains(&format!("value=\"{today}\"")));
    assert_eq!(bar_titles(svg_named(&html, "Calls per day,")).len(), 30);
    assert!(html.contains("aria-current=\"page\">Analytics<"));

    // Live mode of the same workspace, then another workspace: none of it shows.
    switch(
        &app,
        &s,
        &[("mode", "live"), ("back", "/dashboard/analytics")],
    )
    .await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/analytics").await;
    assert!(html.contains("id=\"no-usage\""), "test data in live mode");
    assert!(usage_table(&html).0.is_empty());
    let ws = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    switch(
        &app,
        &s,
        &[
            ("workspace_id", ws.id.as_str()),
            ("mode", "test"),
            ("back", "/dashboard/analytics"),
        ],
    )
    .await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/analytics").await;
    assert!(html.contains("id=\"no-usage\""), "another workspace's data");
    assert!(usage_table(&html).0.is_empty());
    assert_eq!(
        aria_label(svg_named(&html, "Calls per day,")),
        format!(
            "Calls per day, {} to {today}: no calls",
            today - TimeDelta::days(29)
        )
    );
    app.finish().await;
}

#[tokio::test]
async fn dashboard_analytics_answers_bad_ranges_with_a_4xx_page_never_a_500() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let today = Utc::now().date_naive();
    for (query, words) in [
        ("from=yesterday", "dates look like"),
        ("from=2026-02-30", "dates look like"),
        ("to=%00", "dates look like"),
        ("from=2026-11-01%00", "dates look like"),
        ("from=2026-11-10&to=2026-11-09", "from must be before to"),
        ("from=2000-01-01&to=2026-01-01", "at most 366 days"),
        ("to=%2B262142-12-31", ""),
        ("from=-262143-01-01&to=-262143-01-02", ""),
        ("from=0001-01-01&to=0001-01-02", "from 1970-01-01"),
        ("from=9999-12-30&to=9999-12-31", "to 9999-12-30"),
        ("group_by=colour", "group_by must be"),
        ("group_by=%00", "group_by must be"),
        ("from=2026-11-01&from=2026-11-02", ""),
        ("from=%F0%28%8C%BC", ""),
    ] {
        let (status, html) = page(&app, &s.cookie, &format!("/dashboard/analytics?{query}")).await;
        assert!(status.is_client_error(), "{query}: {status}");
        assert!(html.contains(words), "{query}: {html}");
        assert!(!html.contains("<svg class=\"chart"), "{query}: no chart");
    }
    // The form keeps the range asked for, on one day.
    let (status, html) = page(
        &app,
        &s.cookie,
        &format!("/dashboard/analytics?from={today}&to={today}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bar_titles(svg_named(&html, "Calls per day,")).len(), 1);
    // Signed out: to the sign-in page.
    let (status, _) = page(&app, "", "/dashboard/analytics").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.finish().await;
}
