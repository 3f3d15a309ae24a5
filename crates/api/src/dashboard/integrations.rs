//! Integrations: ready-to-paste MCP configuration for Claude Desktop, Cursor and
//! VS Code, filled in with a new read-only key made on the spot (shown once, created
//! by [`crate::keys::KeyIssuer`] like the keys page: the API's rules, cap and audit),
//! the REST hooks (`POST /v1/hooks`, as Zapier subscribes) with a copyable example,
//! and the OpenAPI links.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use dialtone_domain::Error;
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Action;
use secrecy::ExposeSecret;
use serde_json::json;

use super::session::{Nav, Session};
use super::{DashError, DashResult, Form, is_https, render_status};
use crate::keys::issuer;
use crate::state::AppState;

/// The name a key made here gets when the form leaves it empty.
const DEFAULT_NAME: &str = "AI assistant (read-only)";

/// One client's configuration, ready to paste.
struct Snippet {
    id: &'static str,
    client: &'static str,
    /// Where the block goes.
    file: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    nav: Nav,
    base_url: String,
    can_manage: bool,
    /// The key just created (shown this once), its name.
    created: Option<String>,
    name: String,
    form_error: Option<String>,
    snippets: Vec<Snippet>,
    hook_example: String,
    key_placeholder: &'static str,
}

/// The address clients reach this server at: `--public-url`, else the `Host` the
/// browser used.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("127.0.0.1:8080");
    let scheme = if is_https(state, headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn snippets(key: &str, url: &str) -> Vec<Snippet> {
    let env = json!({ "DIALTONE_API_KEY": key, "DIALTONE_API_URL": url });
    let mcp_servers = pretty(&json!({
        "mcpServers": { "dialtone": { "command": "dialtone", "args": ["mcp"], "env": env } }
    }));
    vec![
        Snippet {
            id: "cfg-claude",
            client: "Claude Desktop",
            file: "claude_desktop_config.json (Settings → Developer → Edit Config)",
            text: mcp_servers.clone(),
        },
        Snippet {
            id: "cfg-cursor",
            client: "Cursor",
            file: ".cursor/mcp.json in your project, or ~/.cursor/mcp.json for every project",
            text: mcp_servers,
        },
        Snippet {
            id: "cfg-vscode",
            client: "VS Code",
            file: ".vscode/mcp.json in your workspace",
            text: pretty(&json!({
                "servers": {
                    "dialtone": { "type": "stdio", "command": "dialtone", "args": ["mcp"], "env": env }
                }
            })),
        },
    ]
}

fn hook_example(url: &str) -> String {
    format!(
        "curl -X POST {url}/v1/hooks \\\n  -H \"Authorization: Bearer $DIALTONE_API_KEY\" \\\n  \
         -H \"Content-Type: application/json\" \\\n  \
         -d '{{\"url\": \"https://hooks.zapier.com/hooks/standard/123/abc\", \"event\": \"contact.created\"}}'"
    )
}

fn placeholder(session: &Session) -> &'static str {
    if session.mode == Mode::Test {
        "dt_test_…"
    } else {
        "dt_live_…"
    }
}

fn integrations_page(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    status: StatusCode,
    created: Option<String>,
    name: String,
    form_error: Option<String>,
) -> Response {
    let url = base_url(state, headers);
    let key = created
        .clone()
        .unwrap_or_else(|| placeholder(session).to_owned());
    render_status(
        status,
        &IntegrationsPage {
            nav: session.nav("integrations", "/dashboard/integrations"),
            can_manage: session.can(Action::ManageKeys),
            snippets: snippets(&key, &url),
            hook_example: hook_example(&url),
            key_placeholder: placeholder(session),
            base_url: url,
            created,
            name,
            form_error,
        },
    )
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> DashResult<Response> {
    Ok(integrations_page(
        &state,
        &session,
        &headers,
        StatusCode::OK,
        None,
        DEFAULT_NAME.to_owned(),
        None,
    ))
}

/// `POST /dashboard/integrations`: a read-only key of the current workspace and mode,
/// made as the keys page makes one (cap, rules, audit), shown once in the snippets.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageKeys)?;
    let name = f.text("name").unwrap_or(DEFAULT_NAME).to_owned();
    let req = KeyRequest {
        name: name.clone(),
        read_only: true,
        mode: Some(session.mode),
        permissions: None,
        workspace_id: Some(session.workspace_id.clone()),
        expires_at: None,
        ..KeyRequest::default()
    };
    let created = match issuer(&state, Some(&session.ip))
        .create(Actor::User(&session.user.id), &session.org.id, req)
        .await
    {
        Ok(c) => c,
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. } | Error::Forbidden { .. })) => {
            let status = crate::error::status_of(&e);
            let message = match &e {
                Error::Validation { details, .. } if !details.is_empty() => details
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            return Ok(integrations_page(
                &state,
                &session,
                &headers,
                status,
                None,
                name,
                Some(message),
            ));
        }
        Err(e) => return Err(DashError(e)),
    };
    tracing::info!(key_id = %created.key.id, by = %session.user.id, "read-only key created on the integrations page");
    Ok(integrations_page(
        &state,
        &session,
        &headers,
        StatusCode::OK,
        Some(created.secret.expose_secret().to_owned()),
        created.key.name.clone(),
        None,
    ))
}
