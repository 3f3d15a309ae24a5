//! The dashboard's resource pages over HTTP, as a browser without JavaScript uses
//! them: contacts (search, timeline, notes, edit, confirmed delete), conversations
//! (send in test mode; 402 and 503 explained in live mode), phone numbers (search,
//! buy, route, confirmed release), agents, billing and the audit log. Members are
//! refused every form, every form needs its CSRF token, bad input never answers 500,
//! and every page shows the workspace and mode chosen, nothing else.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;

use crate::common::TestApp;
use crate::dashboard::{FormExt, Signed, browser, page, sign_in, submit, user};

/// Where a form's 303 points.
fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn switch(app: &TestApp, s: &Signed, fields: &[(&str, &str)]) {
    let resp = submit(app, s, "/dashboard/context", fields).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

fn test_key() -> KeyRequest {
    KeyRequest {
        name: "test".into(),
        mode: Some(Mode::Test),
        ..Default::default()
    }
}

#[tokio::test]
async fn dashboard_contacts_search_timeline_note_edit_and_confirmed_delete() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    let resp = submit(
        &app,
        &s,
        "/dashboard/contacts",
        &[
            ("first_name", "Ada"),
            ("last_name", "Lovelace"),
            ("phone_number", "+14155550111"),
            ("email", "ada@example.com"),
            ("company", "Analytical Engines"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    let id = to
        .strip_prefix("/dashboard/contacts/")
        .expect("to the contact")
        .to_owned();
    // The API sees the same contact, in live mode of the default workspace.
    let key = app.admin_key().await;
    let (status, c) = app.get(&format!("/v1/contacts/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["company"], "Analytical Engines");
    assert_eq!(c["livemode"], true);
    // Search finds it (any case, part of the company); another term does not.
    let (_, html) = page(&app, &s.cookie, "/dashboard/contacts?search=ANALYTICAL").await;
    assert!(html.contains(&id));
    let (_, html) = page(&app, &s.cookie, "/dashboard/contacts?search=babbage").await;
    assert!(!html.contains(&id));
    assert!(html.contains("No contacts match."));
    // A note, then a call to the contact: the timeline shows both, newest first.
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/contacts/{id}/notes"),
        &[("content", "Prefers mornings <b>not</b> evenings")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &s.cookie, &format!("/dashboard/contacts/{id}")).await;
    assert!(
        html.contains("Prefers mornings &#60;b&#62;not&#60;/b&#62; evenings")
            || html.contains("Prefers mornings &lt;b&gt;not&lt;/b&gt; evenings"),
        "the note, escaped"
    );
    assert!(html.contains("Note by owner@example.com"));
    // An edit: the form's fields change, the rest (external_id) stays.
    let (_, patched) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(&key),
            Some(json!({"external_id": "crm-1"})),
        )
        .await;
    assert_eq!(patched["external_id"], "crm-1");
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/contacts/{id}"),
        &[
            ("first_name", "Augusta Ada"),
            ("last_name", "King"),
            ("phone_number", "+14155550111"),
            ("email", ""),
            ("company", "Analytical Engines"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, c) = app.get(&format!("/v1/contacts/{id}"), &key).await;
    assert_eq!(c["first_name"], "Augusta Ada");
    assert_eq!(c["email"], serde_json::Value::Null, "an empty field clears");
    assert_eq!(c["external_id"], "crm-1", "fields the form lacks stay");
    // A bad edit is explained next to the form, nothing changes.
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/contacts/{id}"),
        &[("first_name", "X"), ("phone_number", "555-0100")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.expect("html");
    assert!(html.contains("id=\"form-error\""));
    assert!(html.contains("E.164"));
    assert!(html.contains("555-0100"), "the form keeps what was typed");
    // Delete: a confirmation page first (no JavaScript needed), then the delete.
    let (status, html) = page(&app, &s.cookie, &format!("/dashboard/contacts/{id}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("action=\"/dashboard/contacts/{id}/delete\"")));
    assert!(html.contains("Delete contact"));
    let (status, _) = app.get(&format!("/v1/contacts/{id}"), &key).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "viewing the confirmation deletes nothing"
    );
    let resp = submit(&app, &s, &format!("/dashboard/contacts/{id}/delete"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dashboard/contacts");
    let (status, _) = app.get(&format!("/v1/contacts/{id}"), &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Every change is in the audit log, which filters by action and actor.
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit?action=contact.").await;
    for words in ["Created contact", "Edited contact", "Deleted contact"] {
        assert!(html.contains(words), "{words}");
    }
    assert!(!html.contains("Signed in"));
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit?action=note.").await;
    assert!(html.contains("Added note"));
    assert!(!html.contains("Created contact"));
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit?actor=user_nobody").await;
    assert!(html.contains("No entries match."));
    app.finish().await;
}

#[tokio::test]
async fn dashboard_conversations_send_in_test_mode_and_explain_402_and_503_in_live() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/conversations")],
    )
    .await;
    let resp = submit(
        &app,
        &s,
        "/dashboard/messages",
        &[("to", "+14155550123"), ("body", "Your table is ready")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let conv = location(&resp)
        .strip_prefix("/dashboard/conversations/")
        .expect("to the conversation")
        .to_owned();
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/conversations/{conv}/messages"),
        &[("body", "See you at 8")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/conversations/{conv}/notes"),
        &[("content", "VIP guest")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, html) = page(&app, &s.cookie, &format!("/dashboard/conversations/{conv}")).await;
    assert_eq!(status, StatusCode::OK);
    let first = html.find("Your table is ready").expect("first message");
    let second = html.find("See you at 8").expect("reply");
    assert!(first < second, "a thread reads oldest first");
    assert!(html.contains("VIP guest"));
    let key = app.key(test_key()).await;
    let (_, msgs) = app
        .get(&format!("/v1/conversations/{conv}/messages"), &key)
        .await;
    assert_eq!(msgs["data"].as_array().map(Vec::len), Some(2));
    let (_, html) = page(&app, &s.cookie, "/dashboard/conversations").await;
    assert!(html.contains(&conv));

    // Live mode: an empty wallet is a 402 explained on the page, nothing sent.
    switch(
        &app,
        &s,
        &[("mode", "live"), ("back", "/dashboard/conversations")],
    )
    .await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/conversations").await;
    assert!(
        !html.contains(&conv),
        "test conversations stay in test mode"
    );
    let resp = submit(
        &app,
        &s,
        "/dashboard/messages",
        &[("to", "+14155550123"), ("body", "Hello")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let html = resp.text().await.expect("html");
    assert!(html.contains("id=\"form-error\""));
    assert!(html.contains("wallet cannot pay"), "{html}");
    // Funded, with a live number, but no live carrier configured: 503 explained.
    app.store
        .credit_wallet(&app.org.id, true, 10_000, "test funds")
        .await
        .expect("credit");
    let (_, html) = page(&app, &s.cookie, "/dashboard/numbers?country=US&type=local").await;
    assert!(
        html.contains("$1.15/mo"),
        "the price is shown before buying"
    );
    let resp = submit(
        &app,
        &s,
        "/dashboard/numbers",
        &[("country", "US"), ("type", "local")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = submit(
        &app,
        &s,
        "/dashboard/messages",
        &[("to", "+14155550123"), ("body", "Hello")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = resp.text().await.expect("html");
    assert!(html.contains("no carrier configured"), "{html}");
    assert!(html.contains("Hello"), "the message is kept to retry");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_numbers_buy_route_release_agents_and_billing() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    // An agent: create, edit, and it becomes a routing choice.
    let resp = submit(
        &app,
        &s,
        "/dashboard/agents",
        &[("name", "Front desk"), ("prompt", "Be brief.")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let agent = location(&resp)
        .strip_prefix("/dashboard/agents/")
        .expect("to the agent")
        .to_owned();
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/agents/{agent}"),
        &[("name", "Front desk (evenings)"), ("language", "en-GB")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let key = app.admin_key().await;
    let (_, a) = app.get(&format!("/v1/agents/{agent}"), &key).await;
    assert_eq!(a["name"], "Front desk (evenings)");
    assert_eq!(a["language"], "en-GB");
    assert_eq!(
        a["prompt"],
        serde_json::Value::Null,
        "an emptied field clears"
    );
    let resp = submit(&app, &s, "/dashboard/agents", &[("name", "  ")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("id=\"form-error\"")
    );

    // Buying in live mode with an empty wallet: 402 on the page, nothing bought.
    let resp = submit(
        &app,
        &s,
        "/dashboard/numbers",
        &[
            ("number", "+14155550142"),
            ("country", "US"),
            ("type", "local"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("wallet cannot pay")
    );
    app.store
        .credit_wallet(&app.org.id, true, 1_000, "test funds")
        .await
        .expect("credit");
    let resp = submit(
        &app,
        &s,
        "/dashboard/numbers",
        &[
            ("number", "+14155550142"),
            ("country", "US"),
            ("type", "local"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let number = location(&resp)
        .strip_prefix("/dashboard/numbers/")
        .expect("to the number")
        .to_owned();
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/numbers/{number}"),
        &[
            ("name", "Main line"),
            ("agent_id", &agent),
            ("forward_to", ""),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, n) = app.get(&format!("/v1/phone-numbers/{number}"), &key).await;
    assert_eq!(n["agent_id"], agent.as_str());
    assert_eq!(n["name"], "Main line");
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/numbers/{number}"),
        &[("agent_id", "agt_01jd5x7c2m8n4p6q8r0s2t4v6w")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "no such agent");
    // Billing: the balance after the charge, the ledger line, this month's invoice.
    let (status, html) = page(&app, &s.cookie, "/dashboard/billing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("$8.85"), "10.00 - 1.15");
    assert!(html.contains(&number), "the ledger names what was paid for");
    assert!(html.contains("Phone numbers (monthly)"));
    assert!(html.contains(&format!(
        "inv_{}",
        dialtone_domain::time::now().format("%Y%m")
    )));
    // Test mode has its own wallet, which nothing charged.
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/billing")],
    )
    .await;
    let (_, html) = page(&app, &s.cookie, "/dashboard/billing").await;
    assert!(html.contains("$0.00"));
    assert!(!html.contains(&number), "no live ledger entry in test mode");
    let (status, _) = page(&app, &s.cookie, &format!("/dashboard/numbers/{number}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a live number is not found in test mode"
    );
    switch(
        &app,
        &s,
        &[("mode", "live"), ("back", "/dashboard/billing")],
    )
    .await;
    // Release, confirmed on a page of its own.
    let (status, html) = page(
        &app,
        &s.cookie,
        &format!("/dashboard/numbers/{number}/release"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Release number"));
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/numbers/{number}/release"),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, n) = app.get(&format!("/v1/phone-numbers/{number}"), &key).await;
    assert_eq!(n["status"], "released");
    let (_, html) = page(&app, &s.cookie, &format!("/dashboard/numbers/{number}")).await;
    assert!(html.contains("badge-released"));
    assert!(
        !html.contains("Release number"),
        "a released number offers no release"
    );
    assert!(!html.contains("Save routing"), "nor routing");
    // Delete the agent, confirmed.
    let (status, _) = page(
        &app,
        &s.cookie,
        &format!("/dashboard/agents/{agent}/delete"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let resp = submit(&app, &s, &format!("/dashboard/agents/{agent}/delete"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _) = app.get(&format!("/v1/agents/{agent}"), &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit").await;
    for words in [
        "Created agent",
        "Edited agent",
        "Deleted agent",
        "Bought number",
        "Routed number",
        "Released number",
    ] {
        assert!(html.contains(words), "{words}");
    }
    app.finish().await;
}

/// One object of each kind in test mode of the default workspace, made over REST:
/// (contact, conversation, number, agent).
async fn objects(app: &TestApp) -> (String, String, String, String) {
    let key = app.key(test_key()).await;
    let (status, c) = app
        .post("/v1/contacts", &key, json!({"first_name": "Grace"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let (status, m) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+14155550123", "body": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let (status, n) = app.post("/v1/phone-numbers", &key, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    let (status, a) = app.post("/v1/agents", &key, json!({"name": "Ops"})).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let id = |v: &serde_json::Value, f: &str| v[f].as_str().expect("id").to_owned();
    (
        id(&c, "id"),
        id(&m, "conversation_id"),
        id(&n, "id"),
        id(&a, "id"),
    )
}

/// Every new form, with fields that would succeed for an owner.
fn forms(
    contact: &str,
    conv: &str,
    number: &str,
    agent: &str,
) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/dashboard/contacts".into(),
            vec![("first_name", "Mallory")],
        ),
        (
            format!("/dashboard/contacts/{contact}"),
            vec![("first_name", "Mallory")],
        ),
        (
            format!("/dashboard/contacts/{contact}/notes"),
            vec![("content", "hi")],
        ),
        (format!("/dashboard/contacts/{contact}/delete"), vec![]),
        (
            "/dashboard/messages".into(),
            vec![("to", "+14155550123"), ("body", "hi")],
        ),
        (
            format!("/dashboard/conversations/{conv}/messages"),
            vec![("body", "hi")],
        ),
        (
            format!("/dashboard/conversations/{conv}/notes"),
            vec![("content", "hi")],
        ),
        (
            "/dashboard/numbers".into(),
            vec![("country", "US"), ("type", "local")],
        ),
        (
            format!("/dashboard/numbers/{number}"),
            vec![("name", "Mine")],
        ),
        (format!("/dashboard/numbers/{number}/release"), vec![]),
        ("/dashboard/agents".into(), vec![("name", "Mallory")]),
        (
            format!("/dashboard/agents/{agent}"),
            vec![("name", "Mallory")],
        ),
        (format!("/dashboard/agents/{agent}/delete"), vec![]),
    ]
}

/// What the forms could have changed, as the API sees it.
async fn snapshot(app: &TestApp) -> Vec<serde_json::Value> {
    let key = app.key(test_key()).await;
    let mut out = Vec::new();
    for path in [
        "/v1/contacts",
        "/v1/messages",
        "/v1/phone-numbers",
        "/v1/agents",
    ] {
        let (_, v) = app.get(path, &key).await;
        out.push(v["data"].clone());
    }
    out
}

#[tokio::test]
async fn dashboard_members_see_the_new_pages_but_every_new_form_refuses_them() {
    let app = TestApp::spawn().await;
    user(&app, "member@example.com", Role::Member).await;
    let (contact, conv, number, agent) = objects(&app).await;
    let s = sign_in(&app, "member@example.com").await;
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/contacts")],
    )
    .await;
    for path in [
        "/dashboard/contacts".to_owned(),
        format!("/dashboard/contacts/{contact}"),
        "/dashboard/conversations".to_owned(),
        format!("/dashboard/conversations/{conv}"),
        "/dashboard/numbers?country=US&type=local".to_owned(),
        format!("/dashboard/numbers/{number}"),
        "/dashboard/agents".to_owned(),
        format!("/dashboard/agents/{agent}"),
        "/dashboard/billing".to_owned(),
        "/dashboard/audit".to_owned(),
    ] {
        let (status, html) = page(&app, &s.cookie, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        // Only the layout's forms (workspace, mode, sign out): none of the page's.
        assert_eq!(
            html.matches("method=\"post\"").count(),
            3,
            "{path}: a member is offered no form"
        );
    }
    let before = snapshot(&app).await;
    for (path, fields) in forms(&contact, &conv, &number, &agent) {
        let resp = submit(&app, &s, &path, &fields).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            resp.text()
                .await
                .expect("html")
                .contains("can view this page but not change it")
        );
    }
    for path in [
        format!("/dashboard/contacts/{contact}/delete"),
        format!("/dashboard/numbers/{number}/release"),
        format!("/dashboard/agents/{agent}/delete"),
    ] {
        let (status, _) = page(&app, &s.cookie, &path).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path}: no confirmation page"
        );
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_new_forms_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let (contact, conv, number, agent) = objects(&app).await;
    let s = sign_in(&app, "owner@example.com").await;
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/contacts")],
    )
    .await;
    let before = snapshot(&app).await;
    for (path, fields) in forms(&contact, &conv, &number, &agent) {
        for csrf in [None, Some("forged"), Some("")] {
            let mut form: Vec<(&str, &str)> = fields.clone();
            if let Some(t) = csrf {
                form.push(("csrf", t));
            }
            let resp = browser()
                .post(format!("{}{path}", app.url))
                .header(COOKIE, &s.cookie)
                .form(&form)
                .send()
                .await
                .expect("post");
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path} {csrf:?}");
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    app.finish().await;
}

#[tokio::test]
async fn dashboard_new_pages_answer_bad_input_without_a_500_and_other_workspaces_are_404() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    // Objects of another workspace (same organization and mode) are not found here.
    let other = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let other_key = app
        .key(KeyRequest {
            name: "other".into(),
            mode: Some(Mode::Live),
            workspace_id: Some(other.id.clone()),
            ..Default::default()
        })
        .await;
    let (_, c) = app
        .post(
            "/v1/contacts",
            &other_key,
            json!({"first_name": "Elsewhere"}),
        )
        .await;
    let (_, a) = app
        .post("/v1/agents", &other_key, json!({"name": "Elsewhere"}))
        .await;
    let scope = Scope {
        org_id: app.org.id.clone(),
        workspace_id: other.id.clone(),
        mode: Mode::Test,
    };
    let test_contact = app
        .store
        .scoped(&scope)
        .create_contact(
            dialtone_domain::contacts::ContactInput {
                first_name: Some("Test twin".into()),
                ..Default::default()
            }
            .normalize()
            .expect("input"),
        )
        .await
        .expect("contact");
    let foreign = [
        format!("/dashboard/contacts/{}", c["id"].as_str().expect("id")),
        format!("/dashboard/agents/{}", a["id"].as_str().expect("id")),
        format!("/dashboard/contacts/{}", test_contact.id),
    ];
    for path in &foreign {
        let (status, _) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let resp = submit(&app, &s, path, &[("first_name", "x"), ("name", "x")]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let resp = submit(&app, &s, &format!("{path}/delete"), &[]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}/delete");
    }
    // Unknown and malformed ids.
    for path in [
        "/dashboard/contacts/ct_01jd5x7c2m8n4p6q8r0s2t4v6w",
        "/dashboard/contacts/nonsense",
        "/dashboard/contacts/%00",
        "/dashboard/conversations/conv_01jd5x7c2m8n4p6q8r0s2t4v6w",
        "/dashboard/conversations/..%2F..",
        "/dashboard/numbers/pn_nope",
        "/dashboard/numbers/pn_01jd5x7c2m8n4p6q8r0s2t4v6w/release",
        "/dashboard/agents/agt_nope/delete",
    ] {
        let (status, _) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/dashboard/contacts/ct_nope/notes",
        "/dashboard/conversations/conv_nope/messages",
        "/dashboard/conversations/conv_nope/notes",
        "/dashboard/numbers/pn_nope",
        "/dashboard/numbers/pn_nope/release",
        "/dashboard/agents/agt_nope",
    ] {
        let resp = submit(&app, &s, path, &[("content", "x"), ("body", "x")]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Odd queries: a 400 (as the API answers bad input) with the page and the problem
    // said on it, never a 500.
    for path in [
        "/dashboard/contacts?cursor=%%%",
        &format!("/dashboard/contacts?search={}", "x".repeat(5000)),
        "/dashboard/conversations?cursor=bm9wZQ",
        "/dashboard/conversations?cursor=%F0%9F%98%80",
        "/dashboard/numbers?country=XX&type=local",
        "/dashboard/numbers?country=US&type=satellite",
        "/dashboard/numbers?country=US&type=local&contains=abc",
        "/dashboard/numbers?country=US&type=local&area_code=%00",
        "/dashboard/billing?cursor=@@",
        "/dashboard/audit?from_date=yesterday&to_date=2026-13-45",
        "/dashboard/audit?action=DROP%20TABLE",
        "/dashboard/audit?cursor=%E2%80%AE",
    ] {
        let (status, html) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(html.contains("alert-error"), "{path}: the problem is said");
    }
    // Odd form input: oversized, NUL bytes, odd Unicode — refused or stored, never a 500.
    let long = "ä".repeat(10_000);
    let rtl = "\u{202e}evil\u{200b}\u{0301}🙂";
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/dashboard/contacts", vec![("first_name", long.as_str())]),
        ("/dashboard/contacts", vec![("first_name", "\0\0")]),
        ("/dashboard/contacts", vec![("email", "a\0b")]),
        (
            "/dashboard/contacts",
            vec![("phone_number", "+1\u{0661}\u{0662}")],
        ),
        ("/dashboard/agents", vec![("name", long.as_str())]),
        (
            "/dashboard/agents",
            vec![("name", "x"), ("stream_url", "http://127.0.0.1/")],
        ),
        (
            "/dashboard/messages",
            vec![("to", "not a number"), ("body", "hi")],
        ),
        (
            "/dashboard/messages",
            vec![("to", "+14155550123"), ("body", long.as_str())],
        ),
        (
            "/dashboard/messages",
            vec![("to", "+14155550123"), ("body", "")],
        ),
        (
            "/dashboard/numbers",
            vec![("number", "+1"), ("country", "ZZ")],
        ),
        ("/dashboard/numbers", vec![("number", rtl), ("type", rtl)]),
    ];
    for (path, fields) in &cases {
        let resp = submit(&app, &s, path, fields).await;
        let status = resp.status();
        assert!(status.is_client_error(), "{path} {fields:?}: {status}");
        let html = resp.text().await.expect("html");
        assert!(
            html.contains("id=\"form-error\""),
            "{path} {fields:?}: explained"
        );
    }
    for path in [
        "/dashboard/contacts?search=%25_%5C%27%22",
        "/dashboard/contacts?search=%E2%80%AE",
    ] {
        let (status, _) = page(&app, &s.cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Odd but valid text is stored as typed (NULs dropped, as the other forms do).
    let resp = submit(
        &app,
        &s,
        "/dashboard/contacts",
        &[("first_name", rtl), ("last_name", "O\0'Brien")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let id = location(&resp)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let key = app.admin_key().await;
    let (_, c) = app.get(&format!("/v1/contacts/{id}"), &key).await;
    assert_eq!(c["first_name"], rtl);
    assert_eq!(c["last_name"], "O'Brien");
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/contacts/{id}/notes"),
        &[("content", long.as_str())],
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "a note over 5,000 characters"
    );
    app.finish().await;
}

#[tokio::test]
async fn dashboard_new_pages_show_only_the_chosen_workspace_and_mode() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let other = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let live = app.admin_key().await;
    let test = app.key(test_key()).await;
    let other_live = app
        .key(KeyRequest {
            name: "other".into(),
            mode: Some(Mode::Live),
            workspace_id: Some(other.id.clone()),
            ..Default::default()
        })
        .await;
    let name = |v: &serde_json::Value| v["id"].as_str().expect("id").to_owned();
    let (_, c_live) = app
        .post("/v1/contacts", &live, json!({"first_name": "Livia"}))
        .await;
    let (_, c_test) = app
        .post("/v1/contacts", &test, json!({"first_name": "Tessa"}))
        .await;
    let (_, c_other) = app
        .post("/v1/contacts", &other_live, json!({"first_name": "Otto"}))
        .await;
    let (_, a_test) = app
        .post("/v1/agents", &test, json!({"name": "Test agent"}))
        .await;
    let (_, a_other) = app
        .post("/v1/agents", &other_live, json!({"name": "Other agent"}))
        .await;
    let (_, m_test) = app
        .post(
            "/v1/messages",
            &test,
            json!({"to": "+14155550123", "body": "hi"}),
        )
        .await;
    let (_, n_test) = app.post("/v1/phone-numbers", &test, json!({})).await;
    let (c_live, c_test, c_other) = (name(&c_live), name(&c_test), name(&c_other));
    let (a_test, a_other, n_test) = (name(&a_test), name(&a_other), name(&n_test));
    let conv = m_test["conversation_id"].as_str().expect("conv").to_owned();
    let s = sign_in(&app, "owner@example.com").await;
    let all = [
        &c_live, &c_test, &c_other, &a_test, &a_other, &conv, &n_test,
    ];
    let seen = |html: &str| -> Vec<String> {
        all.iter()
            .filter(|id| html.contains(id.as_str()))
            .map(|id| (*id).clone())
            .collect()
    };
    // Live, default workspace.
    assert_eq!(seen(&gather(&app, &s).await), vec![c_live.clone()]);
    // Test mode, default workspace.
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/contacts")],
    )
    .await;
    assert_eq!(
        seen(&gather(&app, &s).await),
        vec![c_test.clone(), a_test.clone(), conv.clone(), n_test.clone()]
    );
    // Live, the other workspace.
    switch(
        &app,
        &s,
        &[
            ("mode", "live"),
            ("workspace_id", &other.id),
            ("back", "/dashboard/contacts"),
        ],
    )
    .await;
    assert_eq!(
        seen(&gather(&app, &s).await),
        vec![c_other.clone(), a_other.clone()]
    );
    // A form acts in the chosen workspace and mode too.
    let resp = submit(&app, &s, "/dashboard/contacts", &[("first_name", "Olga")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.get("/v1/contacts?search=olga", &other_live).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    let (_, list) = app.get("/v1/contacts?search=olga", &live).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    app.finish().await;
}

/// The four list pages of the chosen workspace and mode, as one text.
async fn gather(app: &TestApp, s: &Signed) -> String {
    let mut html = String::new();
    for p in [
        "/dashboard/contacts",
        "/dashboard/agents",
        "/dashboard/conversations",
        "/dashboard/numbers",
    ] {
        html.push_str(&page(app, &s.cookie, p).await.1);
    }
    html
}

/// The `href` of the "older" link of a page, unescaped.
fn older(html: &str) -> Option<String> {
    let at = html.find("class=\"pager\"")?;
    let rest = &html[at..];
    let start = rest.find("href=\"")? + 6;
    let href = rest[start..].split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#38;", "&"))
}

#[tokio::test]
async fn dashboard_contacts_and_the_audit_log_come_in_pages_with_their_filters_kept() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let s = sign_in(&app, "owner@example.com").await;
    for i in 0..27 {
        let resp = submit(
            &app,
            &s,
            "/dashboard/contacts",
            &[("first_name", &format!("Pager{i:02}"))],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    }
    let rows = |html: &str| html.matches("href=\"/dashboard/contacts/ct_").count();
    let (_, first) = page(&app, &s.cookie, "/dashboard/contacts?search=pager").await;
    assert_eq!(rows(&first), 25);
    assert!(first.contains("Pager26"), "newest first");
    let next = older(&first).expect("an older page");
    assert!(next.contains("search=pager"), "{next}");
    let (status, second) = page(&app, &s.cookie, &next).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&second), 2);
    assert!(second.contains("Pager00") && second.contains("Pager01"));
    assert!(older(&second).is_none());
    // The audit log: 27 creations (and a sign-in) in pages of 25, the filter kept.
    let (_, first) = page(&app, &s.cookie, "/dashboard/audit?action=contact.").await;
    assert_eq!(first.matches("Created contact Pager").count(), 25);
    let next = older(&first).expect("an older page");
    assert!(next.contains("action=contact."), "{next}");
    let (_, second) = page(&app, &s.cookie, &next).await;
    assert_eq!(second.matches("Created contact Pager").count(), 2);
    assert!(
        !second.contains("Signed in"),
        "the filter holds on every page"
    );
    // Dates: nothing before today, everything through today.
    let today = dialtone_domain::time::now().format("%Y-%m-%d").to_string();
    let (_, html) = page(&app, &s.cookie, "/dashboard/audit?to_date=2000-01-01").await;
    assert!(html.contains("No entries match."));
    let (_, html) = page(
        &app,
        &s.cookie,
        &format!("/dashboard/audit?from_date={today}&to_date={today}&action=user."),
    )
    .await;
    assert!(html.contains("Signed in"));
    app.finish().await;
}

#[tokio::test]
async fn dashboard_contact_timeline_shows_calls_messages_and_notes_newest_first() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    let key = app.key(test_key()).await;
    let (_, contact) = app
        .post(
            "/v1/contacts",
            &key,
            json!({"first_name": "Tim", "phone_number": "+14155550188"}),
        )
        .await;
    let id = contact["id"].as_str().expect("id").to_owned();
    let (status, call) = app
        .post("/v1/calls", &key, json!({"to": "+14155550188"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    // Distinct times, so "newest first" has one answer.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, msg) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+14155550188", "body": "Running late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{msg}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let s = sign_in(&app, "owner@example.com").await;
    switch(
        &app,
        &s,
        &[("mode", "test"), ("back", "/dashboard/contacts")],
    )
    .await;
    let resp = submit(
        &app,
        &s,
        &format!("/dashboard/contacts/{id}/notes"),
        &[("content", "Called back")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, html) = page(&app, &s.cookie, &format!("/dashboard/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
    let note = at("Called back");
    let message = at("Running late");
    let placed = at(&format!(
        "/dashboard/calls/{}",
        call["id"].as_str().expect("id")
    ));
    assert!(note < message && message < placed, "newest first");
    assert!(html.contains(&format!(
        "/dashboard/conversations/{}",
        msg["conversation_id"].as_str().expect("conv")
    )));
    app.finish().await;
}
