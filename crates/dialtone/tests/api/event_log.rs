//! Events as part of the contract: `GET /v1/event-types` is the document's `webhooks`
//! section, the 30-day event log (`GET /v1/events`, `GET /v1/events/{id}`) is scoped
//! by workspace, mode and the key's permissions, pages with a cursor and filters by
//! type and time; an unknown type is refused naming the valid ones.

use chrono::{TimeDelta, Utc};
use dialtone_domain::auth::KeyRequest;
use dialtone_domain::events::EventType;
use dialtone_domain::tenancy::{Mode, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, is_terminal, wait_for_call};

fn key_request(name: &str, mode: Mode, permissions: Option<&[&str]>) -> KeyRequest {
    KeyRequest {
        name: name.into(),
        mode: Some(mode),
        permissions: permissions.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    }
}

fn data(page: &Value) -> Vec<Value> {
    page["data"].as_array().expect("data").clone()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

/// Every event of `query` (`""` or `type=…&…`), page by page with `limit`.
async fn all_events(t: &TestApp, key: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/events?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = t.get(&path, key).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let batch = data(&page);
        assert!(batch.len() <= limit as usize);
        out.extend(batch);
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["meta"]["has_more"], true);
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(page["meta"]["has_more"], false);
                return out;
            }
        }
    }
    panic!("more than 100 pages");
}

async fn openapi(t: &TestApp) -> Value {
    let (status, doc) = t.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// The component a `{"$ref": "#/components/schemas/X"}` names.
fn resolve<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a component reference: {reference}"));
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "{name} is not in components.schemas");
    schema
}

/// A light check of `object` against an object schema: every required property is
/// there, and every property it has is documented.
fn conforms(schema: &Value, object: &Value, what: &str) {
    let props = schema["properties"].as_object().expect("properties");
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().expect("name");
        assert!(
            object.get(r).is_some(),
            "{what}: required {r} missing in {object}"
        );
    }
    for k in object.as_object().expect("object").keys() {
        assert!(props.contains_key(k), "{what}: {k} is not documented");
    }
}

#[tokio::test]
async fn event_types_are_the_webhooks_section_of_the_document() {
    let t = TestApp::spawn().await;
    // Any key may read the list: it is documentation.
    let key = t
        .key(key_request("agents", Mode::Live, Some(&["agents:read"])))
        .await;
    let (status, list) = t.get("/v1/event-types", &key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = data(&list);
    let doc = openapi(&t).await;
    let hooks = doc["webhooks"].as_object().expect("a webhooks section");

    let names: Vec<&str> = list
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    let all: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(names, all, "every type, in the domain's order");
    let mut hook_names: Vec<&str> = hooks.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    hook_names.sort_unstable();
    sorted.sort_unstable();
    assert_eq!(hook_names, sorted, "the same names as the webhooks section");

    for view in &list {
        let name = view["name"].as_str().expect("name");
        let event_type = EventType::parse(name).expect("known");
        assert_eq!(view["object"], "event_type");
        assert_eq!(view["description"], event_type.description());
        assert_eq!(view["permission"], event_type.read_permission().to_string());
        let op = &hooks[name]["post"];
        assert_eq!(op["summary"], name);
        assert!(
            op["description"]
                .as_str()
                .is_some_and(|d| d.starts_with(event_type.description())),
            "{op}"
        );
        let envelope = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(envelope["allOf"][0]["$ref"], "#/components/schemas/Event");
        let fixed = &envelope["allOf"][1];
        assert_eq!(fixed["properties"]["type"]["enum"], json!([name]));
        assert_eq!(
            fixed["properties"]["data"]["properties"]["object"], view["schema"],
            "{name}: the same payload schema in both places"
        );
        resolve(&doc, &view["schema"]);
        for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            assert!(
                op["parameters"]
                    .as_array()
                    .expect("parameters")
                    .iter()
                    .any(|p| p["name"] == header && p["in"] == "header"),
                "{name} lacks {header}"
            );
        }
    }
    let event = &doc["components"]["schemas"]["Event"];
    let names = resolve(&doc, &event["properties"]["type"]);
    assert_eq!(names["enum"], json!(all), "Event.type is one of the types");
    let filter = doc["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "type")
        .expect("a type filter");
    assert_eq!(filter["schema"]["items"], event["properties"]["type"]);
    for path in ["/v1/event-types", "/v1/events", "/v1/events/{id}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
    }
    t.finish().await;
}

#[tokio::test]
async fn the_event_log_is_scoped_by_workspace_and_mode() {
    let t = TestApp::spawn().await;
    let live = t.admin_key().await;
    let test = t.key(key_request("test", Mode::Test, None)).await;
    let ws = t
        .store
        .create_workspace(&t.org.id, "Other")
        .await
        .expect("workspace");
    let other = t
        .key(KeyRequest {
            name: "other workspace".into(),
            workspace_id: Some(ws.id),
            ..Default::default()
        })
        .await;
    let keys = [
        ("live", &live, true),
        ("test", &test, false),
        ("other", &other, true),
    ];
    for (name, key, _) in keys {
        let (status, c) = t
            .post("/v1/contacts", key, json!({"first_name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
    }
    let mut seen = Vec::new();
    for (name, key, livemode) in keys {
        let events = all_events(&t, key, "type=contact.created", 100).await;
        assert_eq!(events.len(), 1, "{name} sees {events:?}");
        assert_eq!(events[0]["data"]["object"]["first_name"], name);
        assert_eq!(events[0]["livemode"], livemode);
        assert_eq!(events[0]["object"], "event");
        for e in all_events(&t, key, "", 100).await {
            assert_eq!(e["livemode"], livemode, "{name} sees {e}");
        }
        let id = events[0]["id"].as_str().expect("id").to_owned();
        let (status, one) = t.get(&format!("/v1/events/{id}"), key).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(one, events[0]);
        seen.push(id);
    }
    // Another workspace's or mode's event is missing, as an unknown one is.
    for (i, (name, key, _)) in keys.iter().enumerate() {
        for (j, id) in seen.iter().enumerate() {
            if i != j {
                let (status, body) = t.get(&format!("/v1/events/{id}"), key).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{name} reads {id}: {body}");
                assert_eq!(body["error"], "NOT_FOUND");
            }
        }
    }
    for bad in ["evt_nope", "ct_01jd5x7c2m8n4p6q8r0s2t4v6w"] {
        let (status, _) = t.get(&format!("/v1/events/{bad}"), &live).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    t.finish().await;
}

#[tokio::test]
async fn the_cursor_pages_through_every_event_once_and_the_filters_hold() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    for i in 0..5 {
        let (status, c) = t
            .post("/v1/contacts", &key, json!({"first_name": format!("C{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (status, one_page) = t.get("/v1/events?limit=100", &key).await;
    assert_eq!(status, StatusCode::OK);
    let everything = data(&one_page);
    // The admin key's own creation, then five contacts.
    assert_eq!(
        types(&everything),
        [
            "contact.created",
            "contact.created",
            "contact.created",
            "contact.created",
            "contact.created",
            "api_key.created"
        ]
    );
    let all_ids = ids(&everything);
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let paged = all_events(&t, &key, "", 2).await;
    assert_eq!(ids(&paged), all_ids, "every event once, in order, by twos");
    let contacts = all_events(&t, &key, "type=contact.created", 2).await;
    assert_eq!(ids(&contacts), all_ids[..5]);
    for both in [
        "type=contact.created&type=api_key.created",
        "type=contact.created,api_key.created",
    ] {
        assert_eq!(ids(&all_events(&t, &key, both, 2).await), all_ids, "{both}");
    }
    assert!(
        all_events(&t, &key, "type=call.completed", 2)
            .await
            .is_empty()
    );

    // created_after is inclusive, created_before exclusive.
    let pivot = everything[2]["created_at"]
        .as_str()
        .expect("time")
        .to_owned();
    let at = |e: &Value| e["created_at"].as_str().expect("time").to_owned();
    let after: Vec<String> = ids(&everything
        .iter()
        .filter(|e| at(e) >= pivot)
        .cloned()
        .collect::<Vec<_>>());
    let before: Vec<String> = ids(&everything
        .iter()
        .filter(|e| at(e) < pivot)
        .cloned()
        .collect::<Vec<_>>());
    assert!(after.contains(&all_ids[2]) && !before.is_empty());
    assert_eq!(
        ids(&all_events(&t, &key, &format!("created_after={pivot}"), 2).await),
        after
    );
    assert_eq!(
        ids(&all_events(&t, &key, &format!("created_before={pivot}"), 2).await),
        before
    );
    let first = at(&everything[5]);
    let last = at(&everything[0]);
    assert_eq!(
        ids(&all_events(
            &t,
            &key,
            &format!("type=contact.created&created_after={first}&created_before={last}"),
            2
        )
        .await),
        ids(&everything[1..5]),
    );

    // Bad input: 400 in the error shape, naming the valid types when a type is unknown.
    let (status, err) = t.get("/v1/events?type=call.exploded", &key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"], "VALIDATION_ERROR");
    let message = err["message"].as_str().expect("message");
    assert!(message.contains("\"call.exploded\""), "{message}");
    for e in EventType::ALL {
        assert!(message.contains(e.as_str()), "{message} does not name {e}");
    }
    for bad in [
        "created_after=yesterday",
        "created_before=2026-13-01T00:00:00Z",
        "limit=0",
        "limit=101",
        "limit=2&limit=3",
        "cursor=!!!",
        "status=completed",
    ] {
        let (status, err) = t.get(&format!("/v1/events?{bad}"), &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"], "VALIDATION_ERROR", "{bad}");
    }
    t.finish().await;
}

#[tokio::test]
async fn a_key_sees_only_the_events_of_what_it_may_read() {
    let t = TestApp::spawn().await;
    let full = t.key(key_request("full", Mode::Test, None)).await;
    let contacts_only = t
        .key(key_request(
            "contacts",
            Mode::Test,
            Some(&["contacts:read"]),
        ))
        .await;
    let calls_only = t
        .key(key_request("calls", Mode::Test, Some(&["calls:read"])))
        .await;
    let (_, contact) = t
        .post(
            "/v1/contacts",
            &full,
            json!({"first_name": "Ada", "phone_number": "+14155550123"}),
        )
        .await;
    t.post(
        &format!("/v1/contacts/{}/notes", contact["id"].as_str().expect("id")),
        &full,
        json!({"content": "VIP"}),
    )
    .await;
    let (status, call) = t
        .post("/v1/calls", &full, json!({"to": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let call_id = call["id"].as_str().expect("id").to_owned();
    wait_for_call(&t, &full, &call_id, is_terminal).await;

    let everything = all_events(&t, &full, "", 100).await;
    let seen = types(&everything);
    for expected in [
        "contact.created",
        "note.created",
        "call.queued",
        "call.completed",
        "call.transcript.ready",
        "call.recording.ready",
        "api_key.created",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
    // Each payload is what the document says it is.
    let doc = openapi(&t).await;
    for e in &everything {
        let name = e["type"].as_str().expect("type");
        let schema = EventType::parse(name)
            .expect("known")
            .payload()
            .schema_name();
        let reference = json!({ "$ref": format!("#/components/schemas/{schema}") });
        conforms(resolve(&doc, &reference), &e["data"]["object"], name);
    }

    let contact_events = types(&all_events(&t, &contacts_only, "", 100).await);
    assert_eq!(
        contact_events,
        ["contact.created"],
        "no call, note or key events"
    );
    let call_events = types(&all_events(&t, &calls_only, "", 100).await);
    assert!(!call_events.is_empty());
    assert!(
        call_events.iter().all(|e| e.starts_with("call.")),
        "{call_events:?}"
    );

    // Asking by name for what the key may not see is refused, naming the permission.
    let (status, err) = t
        .get("/v1/events?type=call.completed", &contacts_only)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(err["required_permission"], "calls:read");
    // And an event of that kind is missing, not forbidden.
    let completed = everything
        .iter()
        .find(|e| e["type"] == "call.completed")
        .expect("call.completed");
    let path = format!("/v1/events/{}", completed["id"].as_str().expect("id"));
    assert_eq!(t.get(&path, &contacts_only).await.0, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&path, &calls_only).await.0, StatusCode::OK);
    // A key that reads nothing with events sees an empty log.
    let agents = t
        .key(key_request("agents", Mode::Test, Some(&["agents:read"])))
        .await;
    assert!(all_events(&t, &agents, "", 100).await.is_empty());
    t.finish().await;
}

#[tokio::test]
async fn events_older_than_thirty_days_are_not_returned() {
    let t = TestApp::spawn().await;
    let key = t.admin_key().await;
    for name in ["old", "recent", "new"] {
        t.post("/v1/contacts", &key, json!({"first_name": name}))
            .await;
    }
    let created = all_events(&t, &key, "type=contact.created", 100).await;
    assert_eq!(created.len(), 3);
    let scope = Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: Mode::Live,
    };
    let store = t.store.scoped(&scope);
    let old = store
        .backdate_event(
            created[2]["id"].as_str().expect("id"),
            Utc::now() - TimeDelta::days(31),
        )
        .await
        .expect("backdate");
    let recent = store
        .backdate_event(
            created[1]["id"].as_str().expect("id"),
            Utc::now() - TimeDelta::days(29),
        )
        .await
        .expect("backdate");
    let left = all_events(&t, &key, "type=contact.created", 2).await;
    let names: Vec<&Value> = left
        .iter()
        .map(|e| &e["data"]["object"]["first_name"])
        .collect();
    assert_eq!(names, ["new", "recent"]);
    assert_eq!(left[1]["id"], recent.as_str());
    let long_ago = (Utc::now() - TimeDelta::days(90))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let asked = all_events(&t, &key, &format!("created_after={long_ago}"), 100).await;
    assert!(
        !ids(&asked).contains(&old),
        "the window holds whatever is asked"
    );
    assert_eq!(
        t.get(&format!("/v1/events/{old}"), &key).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get(&format!("/v1/events/{recent}"), &key).await.0,
        StatusCode::OK
    );
    t.finish().await;
}

#[tokio::test]
async fn a_webhook_for_an_unknown_event_type_is_refused_naming_the_valid_ones() {
    let t = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    let key = t.admin_key().await;
    let url = "http://127.0.0.1:9/hook";
    let check = |status: StatusCode, err: &Value, field: &str| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["error"], "VALIDATION_ERROR");
        let message = err["message"].as_str().expect("message");
        assert!(message.contains("\"call.exploded\""), "{message}");
        for e in EventType::ALL {
            assert!(message.contains(e.as_str()), "{message} does not name {e}");
        }
        assert_eq!(err["details"][0]["field"], field, "{err}");
    };
    let (status, err) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["call.completed", "call.exploded"]}),
        )
        .await;
    check(status, &err, "events");
    let (status, err) = t
        .post(
            "/v1/hooks",
            &key,
            json!({"url": url, "event": "call.exploded"}),
        )
        .await;
    check(status, &err, "events");
    let (status, hook) = t
        .post("/v1/webhooks", &key, json!({"url": url, "events": ["*"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let (status, err) = t
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", hook["id"].as_str().expect("id")),
            Some(&key),
            Some(json!({"events": ["call.exploded"]})),
        )
        .await;
    check(status, &err, "events");
    t.finish().await;
}
