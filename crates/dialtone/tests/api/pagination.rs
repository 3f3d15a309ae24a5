//! Every list walks its pages with no duplicate and no gap while rows are being
//! added, and shows nothing of another workspace.

use std::collections::BTreeSet;

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::tenancy::Mode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

/// Creates `n` objects with `make(i)`, then walks `list` two at a time, creating a new
/// object before each page: the walk must return exactly the first `n`, once each.
async fn walk_while_inserting(
    t: &TestApp,
    key: &str,
    list: &str,
    create: &str,
    make: impl Fn(usize) -> Value,
    n: usize,
) {
    let mut originals = BTreeSet::new();
    for i in 0..n {
        let (status, o) = t.post(create, key, make(i)).await;
        assert_eq!(status, StatusCode::CREATED, "{create}: {o}");
        originals.insert(o["id"].as_str().expect("id").to_owned());
    }
    let sep = if list.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut path = format!("{list}{sep}limit=2");
    let mut extra = n;
    loop {
        let (status, page) = t.get(&path, key).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        for o in page["data"].as_array().expect("data") {
            seen.push(o["id"].as_str().expect("id").to_owned());
        }
        // Something new arrives between two pages.
        let (status, _) = t.post(create, key, make(extra)).await;
        assert_eq!(status, StatusCode::CREATED);
        extra += 1;
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => path = format!("{list}{sep}limit=2&cursor={c}"),
            None => break,
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "{list}: duplicates in {seen:?}");
    assert!(
        originals.is_subset(&unique),
        "{list}: gaps: {:?}",
        originals.difference(&unique).collect::<Vec<_>>()
    );
    assert_eq!(
        unique, originals,
        "{list}: only what existed when the walk began"
    );
}

#[tokio::test]
async fn every_list_pages_without_duplicates_or_gaps_while_rows_are_added() {
    let t = TestApp::spawn().await;
    let key = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(Mode::Test),
            ..Default::default()
        })
        .await;
    let phone = |i: usize| format!("+1415555{:04}", 1000 + i);
    walk_while_inserting(
        &t,
        &key,
        "/v1/contacts",
        "/v1/contacts",
        |i| json!({"first_name": format!("P{i}")}),
        5,
    )
    .await;
    walk_while_inserting(
        &t,
        &key,
        "/v1/agents",
        "/v1/agents",
        |i| json!({"name": format!("A{i}")}),
        5,
    )
    .await;
    walk_while_inserting(
        &t,
        &key,
        "/v1/calls",
        "/v1/calls",
        move |i| json!({"to": phone(i)}),
        5,
    )
    .await;
    walk_while_inserting(
        &t,
        &key,
        "/v1/messages",
        "/v1/messages",
        move |i| json!({"to": phone(i), "body": "hi"}),
        5,
    )
    .await;
    walk_while_inserting(
        &t,
        &key,
        "/v1/phone-numbers",
        "/v1/phone-numbers",
        |_| json!({}),
        5,
    )
    .await;
    let (_, agent) = t
        .post("/v1/agents", &key, json!({"name": "Campaigner"}))
        .await;
    let agent_id = agent["id"].as_str().expect("id").to_owned();
    walk_while_inserting(&t, &key, "/v1/campaigns", "/v1/campaigns", move |i| json!({"name": format!("C{i}"), "agent_id": agent_id, "recipients": [format!("+1212555{:04}", 1000 + i)]}), 5).await;
    let (_, contact) = t
        .post("/v1/contacts", &key, json!({"first_name": "Noted"}))
        .await;
    let notes = format!("/v1/contacts/{}/notes", contact["id"].as_str().expect("id"));
    walk_while_inserting(
        &t,
        &key,
        &notes,
        &notes,
        |i| json!({"content": format!("note {i}")}),
        5,
    )
    .await;

    // Conversations (sorted by activity): new ones land before the cursor, never after.
    let mut seen = Vec::new();
    let mut path = "/v1/conversations?limit=2".to_owned();
    let mut i = 0;
    loop {
        let (_, page) = t.get(&path, &key).await;
        for c in page["data"].as_array().expect("data") {
            seen.push(c["id"].as_str().expect("id").to_owned());
        }
        t.post(
            "/v1/calls",
            &key,
            json!({"to": format!("+1646555{:04}", 1000 + i)}),
        )
        .await;
        i += 1;
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/conversations?limit=2&cursor={c}"),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "conversations: duplicates");
    assert!(
        seen.len() >= 10,
        "every conversation of the walk's start: {}",
        seen.len()
    );

    // Another workspace sees none of it.
    let ws = t
        .store
        .create_workspace(&t.org.id, "Other")
        .await
        .expect("workspace");
    let other = t
        .key(KeyRequest {
            name: "other".into(),
            mode: Some(Mode::Test),
            workspace_id: Some(ws.id),
            ..Default::default()
        })
        .await;
    for list in [
        "/v1/contacts",
        "/v1/agents",
        "/v1/calls",
        "/v1/messages",
        "/v1/phone-numbers",
        "/v1/campaigns",
        "/v1/conversations",
        "/v1/recordings",
    ] {
        let (status, page) = t.get(list, &other).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["data"], json!([]), "{list} leaks across workspaces");
    }
    t.finish().await;
}
