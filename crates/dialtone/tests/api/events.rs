//! Events written with the changes that cause them, in one envelope.

use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn contacts_notes_and_keys_record_their_events() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    let (_, c) = t
        .post("/v1/contacts", &key, json!({"first_name": "Ada"}))
        .await;
    let path = format!("/v1/contacts/{}", c["id"].as_str().expect("id"));
    t.call(
        Method::PATCH,
        &path,
        Some(&key),
        Some(json!({"last_name": "Lovelace"})),
    )
    .await;
    t.post(&format!("{path}/notes"), &key, json!({"content": "VIP"}))
        .await;
    t.call(Method::DELETE, &path, Some(&key), None).await;
    let (_, created) = t
        .post("/v1/api-keys", &key, json!({"name": "for events"}))
        .await;
    let secret = created["secret"].as_str().expect("secret").to_owned();
    t.call(
        Method::DELETE,
        &format!("/v1/api-keys/{}", created["id"].as_str().expect("id")),
        Some(&key),
        None,
    )
    .await;
    // A refused change records nothing.
    t.post("/v1/contacts", &key, json!({"phone_number": "bad"}))
        .await;

    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Live,
    };
    let page = PageRequest::new(Some(100), None).expect("page");
    let mut events = t
        .store
        .scoped(&scope)
        .list_events(None, &page)
        .await
        .expect("events");
    events.reverse();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "api_key.created",
            "contact.created",
            "contact.updated",
            "note.created",
            "contact.deleted",
            "api_key.created",
            "api_key.revoked"
        ]
    );
    assert_eq!(events[2].data.object["last_name"], "Lovelace");
    assert_eq!(events[4].data.object["id"], c["id"]);
    assert_eq!(events[6].data.object["status"], "revoked");
    let envelope = serde_json::to_value(&events[1]).expect("json");
    assert!(
        envelope["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_"))
    );
    assert_eq!(envelope["type"], "contact.created");
    assert_eq!(envelope["livemode"], true);
    assert_eq!(envelope["data"]["object"]["object"], "contact");
    for e in &events {
        assert!(
            !e.data.object.to_string().contains(&secret),
            "a secret in an event"
        );
    }
    t.finish().await;
}
