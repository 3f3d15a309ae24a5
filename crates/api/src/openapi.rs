//! The OpenAPI 3.1 document (`/v1/openapi.json`), generated from the handlers'
//! annotations, and the offline docs page (`/docs`) rendered from it on the server.
//!
//! What every `/v1` operation shares is added here once rather than on each handler:
//! the bearer security requirement and the error answers (400, 401, 403, 404, 429,
//! 500) with their bodies. A copy is committed at `docs/openapi.json`; a test fails
//! when it drifts (`DIALTONE_UPDATE_OPENAPI=1` rewrites it).

use axum::http::header;
use axum::response::{Html, IntoResponse};
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained page: no script, no CDN, works offline.
pub async fn docs() -> Html<String> {
    let doc = document();
    let mut nav = String::new();
    let mut body = String::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            let Some(op) = op else { continue };
            let anchor = format!(
                "{}-{}",
                method.to_lowercase(),
                path.replace(['/', '{', '}'], "-")
            );
            let summary = op.summary.clone().unwrap_or_default();
            nav.push_str(&format!(
                "<li><a href=\"#{anchor}\"><span class=\"m {m}\">{method}</span> {p}</a></li>",
                m = method.to_lowercase(),
                p = esc(path)
            ));
            body.push_str(&format!(
                "<section id=\"{anchor}\"><h2><span class=\"m {m}\">{method}</span> <code>{p}</code></h2><p class=\"summary\">{s}</p>",
                m = method.to_lowercase(),
                p = esc(path),
                s = esc(&summary)
            ));
            if let Some(d) = &op.description {
                body.push_str(&format!("<p>{}</p>", esc(d)));
            }
            if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
                body.push_str("<h3>Parameters</h3><ul>");
                for p in params {
                    let RefOr::T(p) = p else { continue };
                    body.push_str(&format!(
                        "<li><code>{}</code> <small>{}</small> {}</li>",
                        esc(&p.name),
                        serde_json::to_string(&p.parameter_in)
                            .unwrap_or_default()
                            .trim_matches('"'),
                        esc(p.description.as_deref().unwrap_or(""))
                    ));
                }
                body.push_str("</ul>");
            }
            if let Some(RefOr::T(rb)) = &op.request_body {
                let schema = serde_json::to_string_pretty(&rb.content).unwrap_or_default();
                body.push_str(&format!("<h3>Request body</h3><pre>{}</pre>", esc(&schema)));
            }
            body.push_str("<h3>Responses</h3><ul>");
            for (code, resp) in &op.responses.responses {
                let text = match resp {
                    RefOr::T(r) => r.description.clone(),
                    RefOr::Ref(r) => r.ref_location.clone(),
                };
                body.push_str(&format!("<li><b>{}</b> {}</li>", esc(code), esc(&text)));
            }
            body.push_str("</ul></section>");
        }
    }
    let schemas = doc
        .components
        .as_ref()
        .map(|c| serde_json::to_string_pretty(&c.schemas).unwrap_or_default())
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — reference</title><style>
body{{font:15px/1.5 system-ui,sans-serif;margin:0;display:flex;color:#1a1a1a}}nav{{width:320px;height:100vh;overflow:auto;position:sticky;top:0;background:#f6f7f9;padding:1rem;box-sizing:border-box}}
nav ul{{list-style:none;padding:0}}nav a{{text-decoration:none;color:inherit;font-size:13px}}main{{flex:1;padding:1rem 2rem;max-width:900px}}
section{{border-bottom:1px solid #e3e5e8;padding:1rem 0}}.m{{display:inline-block;min-width:3.5em;font:600 12px monospace;padding:2px 4px;border-radius:4px;color:#fff;text-align:center}}
.get{{background:#2f7d32}}.post{{background:#1565c0}}.patch,.put{{background:#8a5a00}}.delete{{background:#b3261e}}pre{{background:#f6f7f9;padding:.75rem;overflow:auto;font-size:12px}}
a:focus,a:hover{{outline:2px solid #1565c0}}</style></head><body><nav aria-label="Operations"><h1>{title}</h1><p><a href="/v1/openapi.json">openapi.json</a></p><ul>{nav}</ul></nav>
<main><p>{desc}</p>{body}<h2>Schemas</h2><pre>{schemas}</pre></main></body></html>"#,
        title = esc(&doc.info.title),
        desc = esc(doc.info.description.as_deref().unwrap_or("")),
        schemas = esc(&schemas),
    ))
}
