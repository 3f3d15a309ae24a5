//! Write tools: a call without `confirmation_token` only previews what would happen
//! and hands out a token; the same call with the token does it, once.

use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};

use crate::backend::{ApiRequest, Backend, Caller};
use crate::catalog::{ToolSpec, WriteKind};
use crate::confirm::{Refusal, TTL_SECONDS};
use crate::output;
use crate::server::{DialtoneMcp, Failure, Me, fill_path};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The arguments that define the action, in the catalog's order: what a token signs.
fn canonical(spec: &ToolSpec, args: &Map<String, Value>) -> String {
    spec.args
        .iter()
        .filter(|a| a.name != "confirmation_token")
        .map(|a| format!("{}={}", a.name, args.get(a.name).unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join("&")
}

fn body_of(args: &Map<String, Value>, fields: &[&str]) -> Value {
    let mut m = Map::new();
    for f in fields {
        if let Some(v) = args.get(*f).filter(|v| !v.is_null()) {
            m.insert((*f).to_owned(), v.clone());
        }
    }
    Value::Object(m)
}

pub(crate) async fn run<B: Backend>(
    mcp: &DialtoneMcp<B>,
    spec: &ToolSpec,
    kind: WriteKind,
    args: &Map<String, Value>,
    caller: &Caller,
    me: &Me,
) -> Result<CallToolResult, Failure> {
    let live = me.mode == "live";
    let (path, body, effect) = match kind {
        WriteKind::SendMessage => (
            "/v1/messages".to_owned(),
            body_of(args, &["to", "body", "from"]),
            if live {
                "Sends a real SMS, charged to the wallet per 160-character segment."
            } else {
                "Test mode: the SMS is simulated; nothing is sent or charged."
            },
        ),
        WriteKind::PlaceCall => (
            "/v1/calls".to_owned(),
            body_of(args, &["to", "from", "agent_id"]),
            if live {
                "Places a real phone call, charged to the wallet per minute."
            } else {
                "Test mode: the call is simulated; nobody is called and nothing is charged."
            },
        ),
        WriteKind::ContactNote => (
            fill_path("/v1/contacts/{contact_id}/notes", args)?.0,
            body_of(args, &["content"]),
            "Adds a note to the contact, visible to everyone in the workspace.",
        ),
        WriteKind::ConversationNote => (
            fill_path("/v1/conversations/{conversation_id}/notes", args)?.0,
            body_of(args, &["content"]),
            "Adds a note to the conversation, visible to everyone in the workspace.",
        ),
    };
    // The token also binds where the write lands: an organization key cannot preview
    // in one workspace and confirm in another.
    let workspace = me.effective_workspace(caller);
    let signed = format!("workspace={workspace}&{}", canonical(spec, args));
    let now = unix_now();
    let confirmations = &mcp.shared().confirmations;

    let Some(token) = args.get("confirmation_token").and_then(Value::as_str) else {
        // Notes go to an existing object: check it now (through the notes route, which
        // `notes:write` may read) rather than at confirmation.
        if matches!(kind, WriteKind::ContactNote | WriteKind::ConversationNote) {
            mcp.get(caller, format!("{path}?limit=1")).await?;
        }
        let token = confirmations.issue(&me.key_id, spec.name, &signed, now);
        let value = json!({
            "object": "preview",
            "tool": spec.name,
            "livemode": live,
            "workspace_id": workspace,
            "request": {"method": "POST", "path": path, "body": body},
            "effect": effect,
            "confirmation_token": token,
            "expires_in_seconds": TTL_SECONDS,
        });
        let before = format!(
            "{tool} preview only: nothing has been done yet.\n{effect}\nWorkspace: {workspace}. The request it would make:",
            tool = spec.name,
        );
        let after = format!(
            "Show this to the user. If they agree, call {tool} again with the same arguments and \
confirmation_token=\"{token}\" (valid {TTL_SECONDS} seconds, once).",
            tool = spec.name,
        );
        return Ok(output::preview(&before, value, &after));
    };

    if let Err(refusal) = confirmations.redeem(token, &me.key_id, spec.name, &signed, now) {
        return Err(refused(&refusal));
    }
    let response = mcp
        .shared()
        .backend
        .send(
            caller,
            ApiRequest {
                method: http::Method::POST,
                path,
                body: Some(body),
                idempotency_key: Some(token.to_owned()),
            },
        )
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    if response.replayed {
        // Confirmed before, on another node.
        return Err(refused(&Refusal::Used));
    }
    if !response.is_success() {
        return Err(Failure::Api(response.body()));
    }
    Ok(output::data(
        spec.name,
        response.body(),
        Some("Done.".to_owned()),
    ))
}

fn refused(r: &Refusal) -> Failure {
    let (status, code) = match r {
        Refusal::Used => (409, "CONFIRMATION_USED"),
        Refusal::Expired => (400, "CONFIRMATION_EXPIRED"),
        Refusal::Invalid => (400, "INVALID_CONFIRMATION"),
    };
    Failure::Api(json!({"statusCode": status, "error": code, "message": r.message()}))
}
