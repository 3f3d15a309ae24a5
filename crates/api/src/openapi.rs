//! The OpenAPI 3.1 document (`/v1/openapi.json`), generated from the handlers'
//! annotations, and the offline docs page (`/docs`) rendered from it on the server.
//!
//! What every `/v1` operation shares is added here once rather than on each handler:
//! the bearer security requirement and the error answers (400, 401, 403, 404, 429,
//! 500) with their bodies. A copy is committed at `docs/openapi.json`; a test fails
//! when it drifts (`DIALTONE_UPDATE_OPENAPI=1` rewrites it).

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
        keys::me, keys::list, keys::create, keys::get, keys::revoke, keys::rotate,
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

fn add_shared(op: &mut Operation, method: &str, path: &str) {
    // Unique, stable operation ids (handler names repeat across resources).
    op.operation_id = Some(format!(
        "{method}_{}",
        path.trim_start_matches("/v1/")
            .replace(['/', '-'], "_")
            .replace(['{', '}'], "")
    ));
    op.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
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
    ];
    if path.contains('{') {
        shared.push((
            "404",
            "No such object in this workspace and mode (NOT_FOUND)",
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
    for (code, description, schema) in shared {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| error_response(description, schema));
    }
}

/// The document, complete.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
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
    crate::events::add_webhooks(&mut doc);
    doc
}

/// The document as served and committed.
pub fn document_json() -> String {
    document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub async fn json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
