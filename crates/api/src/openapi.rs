//! The OpenAPI 3.1 document (`/v1/openapi.json`), generated from the handlers'
//! annotations. (`reference.rs` renders it at `/docs`.)
//!
//! What every `/v1` operation shares is added here once rather than on each handler:
//! its operation id (from [`OPERATION_IDS`]), the bearer security requirement, the
//! `Dialtone-Workspace` header, the error answers (400, 401, 403, 404, 409, 429, 500,
//! 503) with their bodies, the headers every answer carries (`X-Request-Id`,
//! `RateLimit-*`, `Retry-After`, `Idempotent-Replayed`) and the `limit` bounds. A copy
//! is committed at `docs/openapi.json`; a test fails when it drifts
//! (`DIALTONE_UPDATE_OPENAPI=1` rewrites it), and `tests/contract/run` checks the
//! served document against the server's answers.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{
    ArrayItems, Components, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::openapi::{Header, Required};

use crate::error::{ErrorBody, UnauthorizedBody};
use crate::{
    agents, analytics, billing, calls, campaigns, contacts, keys, messages, phone_numbers, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dialtone API",
        description = "The public API of a self-hosted calling platform: contacts, calls and the API keys that guard them. Authenticate every request with `Authorization: Bearer <key>`.",
    ),
    paths(
        keys::me, keys::list, keys::create, keys::get, keys::update, keys::revoke, keys::rotate,
        keys::usage,
        contacts::list, contacts::create, contacts::get, contacts::update, contacts::replace,
        contacts::delete, contacts::list_notes, contacts::create_note,
        agents::list, agents::create, agents::get, agents::update, agents::delete,
        phone_numbers::list, phone_numbers::available, phone_numbers::purchase, phone_numbers::import, phone_numbers::get,
        phone_numbers::configure, phone_numbers::release, billing::wallet, billing::invoices, billing::invoice, analytics::usage,
        campaigns::list, campaigns::create, campaigns::get, campaigns::update, campaigns::calls,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::deliveries, webhooks::subscribe, webhooks::unsubscribe,
        webhooks::redeliver, webhooks::recover, webhooks::test, webhooks::rotate_secret,
        crate::events::event_types, crate::events::list, crate::events::get,
        calls::list, calls::place, calls::get, calls::hangup, calls::transcript, calls::list_logs,
        calls::get_log, calls::list_recordings, calls::get_recording, calls::list_conversations,
        calls::get_conversation, messages::conversation_messages, messages::list_notes,
        messages::create_note, messages::list, messages::send, messages::get,
    ),
    components(schemas(ErrorBody, UnauthorizedBody)),
    tags(
        (name = "api_keys", description = "Create, list, rotate and revoke API keys"),
        (name = "contacts", description = "Contacts and their notes"),
        (name = "agents", description = "Voice agents: prompt, voice, language, greeting"),
        (name = "phone_numbers", description = "Search, buy, configure and release numbers"),
        (name = "billing", description = "The wallet live usage is paid from"),
        (name = "analytics", description = "Usage over time"),
        (name = "campaigns", description = "An agent calling a list of numbers"),
        (name = "webhooks", description = "Signed event deliveries, and Zapier-style REST hooks"),
        (name = "events", description = "Event types and the event log of the last 30 days; each type's delivery is in the document's `webhooks` section"),
        (name = "calls", description = "Calls (call logs), transcripts and recordings; test keys simulate"),
        (name = "conversations", description = "Threads of calls and messages with one number, and their notes"),
        (name = "messages", description = "SMS: send, list, retrieve"),
    )
)]
struct ApiDoc;

fn error_response(description: &str, schema: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
            .build(),
    )
}

/// Every operation's id, once: the names generated clients give their methods.
/// A test checks that every operation of the document has one here.
pub const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("get", "/v1/me", "getMe"),
    ("get", "/v1/api-keys", "listApiKeys"),
    ("post", "/v1/api-keys", "createApiKey"),
    ("get", "/v1/api-keys/{id}", "getApiKey"),
    ("delete", "/v1/api-keys/{id}", "revokeApiKey"),
    ("patch", "/v1/api-keys/{id}", "updateApiKey"),
    ("post", "/v1/api-keys/{id}/rotate", "rotateApiKey"),
    ("get", "/v1/api-keys/{id}/usage", "getApiKeyUsage"),
    ("get", "/v1/contacts", "listContacts"),
    ("post", "/v1/contacts", "createContact"),
    ("get", "/v1/contacts/{id}", "getContact"),
    ("patch", "/v1/contacts/{id}", "updateContact"),
    ("put", "/v1/contacts/{id}", "replaceContact"),
    ("delete", "/v1/contacts/{id}", "deleteContact"),
    ("get", "/v1/contacts/{id}/notes", "listContactNotes"),
    ("post", "/v1/contacts/{id}/notes", "createContactNote"),
    ("get", "/v1/calls", "listCalls"),
    ("post", "/v1/calls", "createCall"),
    ("get", "/v1/calls/{id}", "getCall"),
    ("post", "/v1/calls/{id}/hangup", "hangUpCall"),
    ("get", "/v1/calls/{id}/transcript", "getCallTranscript"),
    ("get", "/v1/call-logs", "listCallLogs"),
    ("get", "/v1/call-logs/{id}", "getCallLog"),
    ("get", "/v1/recordings", "listRecordings"),
    ("get", "/v1/recordings/{id}", "getRecording"),
    ("get", "/v1/conversations", "listConversations"),
    ("get", "/v1/conversations/{id}", "getConversation"),
    (
        "get",
        "/v1/conversations/{id}/messages",
        "listConversationMessages",
    ),
    (
        "get",
        "/v1/conversations/{id}/notes",
        "listConversationNotes",
    ),
    (
        "post",
        "/v1/conversations/{id}/notes",
        "createConversationNote",
    ),
    ("get", "/v1/messages", "listMessages"),
    ("post", "/v1/messages", "createMessage"),
    ("get", "/v1/messages/{id}", "getMessage"),
    ("get", "/v1/agents", "listAgents"),
    ("post", "/v1/agents", "createAgent"),
    ("get", "/v1/agents/{id}", "getAgent"),
    ("patch", "/v1/agents/{id}", "updateAgent"),
    ("delete", "/v1/agents/{id}", "deleteAgent"),
    ("get", "/v1/phone-numbers", "listPhoneNumbers"),
    ("post", "/v1/phone-numbers", "buyPhoneNumber"),
    (
        "get",
        "/v1/phone-numbers/available",
        "searchAvailablePhoneNumbers",
    ),
    ("post", "/v1/phone-numbers/import", "importPhoneNumber"),
    ("get", "/v1/phone-numbers/{id}", "getPhoneNumber"),
    ("patch", "/v1/phone-numbers/{id}", "updatePhoneNumber"),
    ("delete", "/v1/phone-numbers/{id}", "releasePhoneNumber"),
    ("get", "/v1/campaigns", "listCampaigns"),
    ("post", "/v1/campaigns", "createCampaign"),
    ("get", "/v1/campaigns/{id}", "getCampaign"),
    ("patch", "/v1/campaigns/{id}", "updateCampaign"),
    ("get", "/v1/campaigns/{id}/calls", "listCampaignCalls"),
    ("get", "/v1/webhooks", "listWebhookEndpoints"),
    ("post", "/v1/webhooks", "createWebhookEndpoint"),
    ("get", "/v1/webhooks/{id}", "getWebhookEndpoint"),
    ("patch", "/v1/webhooks/{id}", "updateWebhookEndpoint"),
    ("delete", "/v1/webhooks/{id}", "deleteWebhookEndpoint"),
    (
        "get",
        "/v1/webhooks/{id}/deliveries",
        "listWebhookDeliveries",
    ),
    (
        "post",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        "redeliverWebhookDelivery",
    ),
    (
        "post",
        "/v1/webhooks/{id}/recover",
        "recoverWebhookDeliveries",
    ),
    ("post", "/v1/webhooks/{id}/test", "testWebhookEndpoint"),
    (
        "post",
        "/v1/webhooks/{id}/rotate-secret",
        "rotateWebhookSecret",
    ),
    ("post", "/v1/hooks", "subscribeRestHook"),
    ("delete", "/v1/hooks/{id}", "unsubscribeRestHook"),
    ("get", "/v1/event-types", "listEventTypes"),
    ("get", "/v1/events", "listEvents"),
    ("get", "/v1/events/{id}", "getEvent"),
    ("get", "/v1/billing/wallet", "getWallet"),
    ("get", "/v1/billing/invoices", "listInvoices"),
    ("get", "/v1/billing/invoices/{id}", "getInvoice"),
    ("get", "/v1/analytics/usage", "getUsage"),
];

/// The order a reader meets the tags in: the data first, then what acts on it, then
/// the plumbing (events, keys, money).
const TAG_ORDER: &[&str] = &[
    "contacts",
    "calls",
    "conversations",
    "messages",
    "agents",
    "phone_numbers",
    "campaigns",
    "webhooks",
    "events",
    "api_keys",
    "billing",
    "analytics",
];

pub fn operation_id(method: &str, path: &str) -> Option<&'static str> {
    OPERATION_IDS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, id)| *id)
}

fn response_header(description: &str, schema: Type) -> RefOr<Header> {
    let mut h = Header::new(ObjectBuilder::new().schema_type(schema));
    h.description = Some(description.to_owned());
    RefOr::T(h)
}

/// The headers every answer of an operation may carry, by status.
fn add_response_headers(op: &mut Operation, idempotent: bool) {
    for (code, resp) in op.responses.responses.iter_mut() {
        let RefOr::T(resp) = resp else { continue };
        resp.headers.insert(
            "X-Request-Id".to_owned(),
            response_header(
                "This request's id (`req_…`), also in the server's logs",
                Type::String,
            ),
        );
        if code != "401" {
            for (name, description) in [
                ("RateLimit-Limit", "Requests this key may make in a burst"),
                ("RateLimit-Remaining", "Requests left in the current window"),
                ("RateLimit-Reset", "Seconds until the window resets"),
            ] {
                resp.headers
                    .insert(name.to_owned(), response_header(description, Type::Integer));
            }
        }
        if code == "429" {
            resp.headers.insert(
                "Retry-After".to_owned(),
                response_header("Seconds to wait before retrying", Type::Integer),
            );
        }
        if code == "401" {
            resp.headers.insert(
                "WWW-Authenticate".to_owned(),
                response_header("`Bearer`", Type::String),
            );
        }
        if idempotent && code.starts_with('2') {
            resp.headers.insert(
                "Idempotent-Replayed".to_owned(),
                response_header(
                    "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`",
                    Type::String,
                ),
            );
        }
    }
}

/// `limit` is 1 to 100 everywhere; the schema says so, so generators send what the
/// server accepts.
fn constrain_parameters(op: &mut Operation, path: &str) {
    for p in op.parameters.iter_mut().flatten() {
        let RefOr::T(p) = p else { continue };
        if p.name == "limit" && matches!(p.parameter_in, ParameterIn::Query) {
            // The inventory search pages less: 1 to 50, 10 by default.
            let (max, default) = if path == "/v1/phone-numbers/available" {
                (50, 10)
            } else {
                (100, 20)
            };
            p.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(1))
                    .maximum(Some(max))
                    .default(Some(serde_json::json!(default)))
                    .into(),
            );
        }
    }
}

/// Operations whose data is a workspace's: an organization key picks the workspace
/// with `Dialtone-Workspace`. Keys and the caller's identity are not workspace data.
fn takes_workspace(path: &str) -> bool {
    !(path == "/v1/me" || path.starts_with("/v1/api-keys") || path == "/v1/event-types")
}

fn add_shared(op: &mut Operation, method: &str, path: &str) {
    op.operation_id = Some(operation_id(method, path).map_or_else(
        || {
            format!(
                "{method}_{}",
                path.trim_start_matches("/v1/")
                    .replace(['/', '-'], "_")
                    .replace(['{', '}'], "")
            )
        },
        str::to_owned,
    ));
    op.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    if takes_workspace(path) {
        let mut p = Parameter::new("Dialtone-Workspace");
        p.parameter_in = ParameterIn::Header;
        p.required = Required::False;
        p.description = Some(
            "With an organization key: the workspace to act in (`ws_…`); without it, the organization's default workspace. A workspace key may only name its own."
                .to_owned(),
        );
        p.schema = Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^ws_[0-9a-hjkmnp-tv-z]{26}$"))
                .into(),
        );
        op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(p));
    }
    constrain_parameters(op, path);
    let idempotent = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("Idempotency-Key")));
    let mut shared = vec![
        (
            "401",
            "Missing, malformed, unknown, revoked or expired key",
            "UnauthorizedBody",
        ),
        (
            "403",
            "The key lacks the permission this operation needs (INSUFFICIENT_PERMISSIONS)",
            "ErrorBody",
        ),
        (
            "429",
            "Rate limit exceeded; see Retry-After (RATE_LIMITED)",
            "ErrorBody",
        ),
        ("500", "Internal error (INTERNAL_ERROR)", "ErrorBody"),
        (
            "503",
            "The database is unavailable or a heavy read ran out of time; retry shortly (UNAVAILABLE, QUERY_TIMEOUT)",
            "ErrorBody",
        ),
    ];
    if path.contains('{') || takes_workspace(path) {
        shared.push((
            "404",
            "No such object in this workspace and mode, or no such workspace (NOT_FOUND)",
            "ErrorBody",
        ));
    }
    if op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        shared.push(("400", "Invalid input (VALIDATION_ERROR)", "ErrorBody"));
    }
    if op.request_body.is_some() {
        shared.push(("413", "Body too large (PAYLOAD_TOO_LARGE)", "ErrorBody"));
        shared.push((
            "415",
            "Body is not JSON (UNSUPPORTED_MEDIA_TYPE)",
            "ErrorBody",
        ));
    }
    if idempotent {
        shared.push((
            "409",
            "The Idempotency-Key was used with another request (CONFLICT)",
            "ErrorBody",
        ));
    }
    for (code, description, schema) in shared {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| error_response(description, schema));
    }
    add_response_headers(op, idempotent);
}

/// `Page_Contact.data` lists `Contact`s by reference, not a copy of its schema (utoipa
/// inlines a generic's argument), so generated clients get one `Contact` type.
fn page_items_by_reference(components: &mut Components) {
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for (name, schema) in components.schemas.iter_mut() {
        let Some(item) = name.strip_prefix("Page_") else {
            continue;
        };
        if !names.iter().any(|n| n == item) {
            continue;
        }
        if let RefOr::T(Schema::Object(page)) = schema
            && let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data")
        {
            data.items = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(item))));
        }
    }
}

/// The document, complete.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![
        ServerBuilder::new()
            .url("http://127.0.0.1:8080")
            .description(Some(
                "`dialtone serve` with its defaults; use your own server's address",
            ))
            .build(),
    ]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ] {
            if let Some(op) = op {
                add_shared(op, method, path);
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        page_items_by_reference(components);
    }
    if let Some(tags) = doc.tags.as_mut() {
        tags.sort_by_key(|t| {
            TAG_ORDER
                .iter()
                .position(|n| *n == t.name)
                .unwrap_or(TAG_ORDER.len())
        });
    }
    crate::events::add_webhooks(&mut doc);
    doc
}

/// The document as served and committed.
pub fn document_json() -> String {
    let mut doc = match serde_json::to_value(document()) {
        Ok(doc) => doc,
        Err(e) => return format!("{{\"error\":\"{e}\"}}"),
    };
    open_free_objects(&mut doc);
    share_headers(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The headers every answer carries are described once, in `components/headers`,
/// and referenced from each response (utoipa has no shared headers of its own).
fn share_headers(doc: &mut serde_json::Value) {
    let mut shared = serde_json::Map::new();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let responses = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|ops| ops.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut());
        for response in responses {
            let Some(headers) = response.get_mut("headers").and_then(|h| h.as_object_mut()) else {
                continue;
            };
            for (name, header) in headers.iter_mut() {
                let reference =
                    serde_json::json!({ "$ref": format!("#/components/headers/{name}") });
                let header = std::mem::replace(header, reference);
                shared.entry(name.clone()).or_insert(header);
            }
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(|c| c.as_object_mut()) {
        components.insert("headers".to_owned(), serde_json::Value::Object(shared));
    }
}

/// A schema `{"type": "object"}` with neither `properties` nor `additionalProperties`
/// (utoipa's `Object`: an event's payload, an event type's JSON Schema) says
/// `additionalProperties: true` outright: JSON Schema allows any member there anyway,
/// but generators read the silence as "no members" (TypeScript's `Record<string, never>`).
fn open_free_objects(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let free = map.get("type").and_then(|t| t.as_str()) == Some("object")
                && !map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !map.contains_key("$ref");
            if free {
                map.insert(
                    "additionalProperties".to_owned(),
                    serde_json::Value::Bool(true),
                );
            }
            map.values_mut().for_each(open_free_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(open_free_objects),
        _ => {}
    }
}

/// `GET /v1/openapi.json`: the document never changes while the server runs, so it is
/// built once, on the first request.
pub async fn json() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(document_json).as_str(),
    )
}
