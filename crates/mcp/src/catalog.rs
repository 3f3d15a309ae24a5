//! The tool catalog: one row per tool, naming the permission it needs (the same
//! [`Permission`] the REST route it calls is guarded by), its flat arguments and
//! what it does. Which tools a key is offered is decided here, once, from the key's
//! permissions as `GET /v1/me` reports them.

use dialtone_domain::permissions::{Permission, Permissions, Resource};
use serde_json::{Map, Value, json};

/// What a tool does with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `GET /v1/me`.
    WhoAmI,
    /// A `GET` of one object: `{name}` in the path is filled from the argument.
    Get(&'static str),
    /// A `GET` of a list: path arguments filled, the others become the query.
    List(&'static str),
    /// A call's transcript, paged by segment.
    Transcript,
    /// A contact's calls, messages, notes and transcript excerpts in time order.
    Timeline,
    /// A `POST` behind a preview and a confirmation token.
    Write(WriteKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    SendMessage,
    PlaceCall,
    ContactNote,
    ConversationNote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
}

/// One argument. Every schema is flat: strings and integers, no `$ref`.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    pub required: bool,
}

const fn req(name: &'static str, description: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Str,
        description,
        required: true,
    }
}

const fn opt(name: &'static str, description: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Str,
        description,
        required: false,
    }
}

const fn int(name: &'static str, description: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Int,
        description,
        required: false,
    }
}

const LIMIT: Arg = Arg {
    name: "limit",
    kind: Kind::Int,
    description: "1-50, default 10",
    required: false,
};
const CURSOR: Arg = opt("cursor", "next_cursor of the previous page");
const CONFIRM: Arg = opt(
    "confirmation_token",
    "Omit to preview; pass the token the preview returned to do it",
);

#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// `None`: any valid key.
    pub permission: Option<Permission>,
    pub args: &'static [Arg],
    pub action: Action,
}

impl ToolSpec {
    pub fn is_write(&self) -> bool {
        matches!(self.action, Action::Write(_))
    }

    /// Whether a key holding `permissions` may use this tool: the domain's
    /// [`Permissions::allows`], the rule REST's `Principal::require` applies.
    pub fn allowed(&self, permissions: Permissions) -> bool {
        self.permission.is_none_or(|p| permissions.allows(p))
    }

    /// The flat JSON Schema of the arguments.
    pub fn input_schema(&self) -> Map<String, Value> {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for a in self.args {
            let ty = match a.kind {
                Kind::Str => "string",
                Kind::Int => "integer",
            };
            properties.insert(
                a.name.to_owned(),
                json!({"type": ty, "description": a.description}),
            );
            if a.required {
                required.push(Value::from(a.name));
            }
        }
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), properties.into());
        if !required.is_empty() {
            schema.insert("required".into(), required.into());
        }
        schema.insert("additionalProperties".into(), false.into());
        schema
    }
}

const fn read(r: Resource) -> Option<Permission> {
    Some(Permission::read(r))
}

const fn write(r: Resource) -> Option<Permission> {
    Some(Permission::write(r))
}

use Resource::*;

/// Every tool. Descriptions are short on purpose: the whole list is sent to the
/// model on every turn.
pub static TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "whoami",
        description: "This API key: mode (live/test), workspace, scope, permissions, and whether write tools are enabled.",
        permission: None,
        args: &[],
        action: Action::WhoAmI,
    },
    ToolSpec {
        name: "list_contacts",
        description: "List contacts, newest first.",
        permission: read(Contacts),
        args: &[
            opt("search", "Text in name, email, phone or company"),
            opt("phone_number", "Exact E.164"),
            opt("email", "Exact email"),
            opt("external_id", "Your own id"),
            LIMIT,
            CURSOR,
        ],
        action: Action::List("/v1/contacts"),
    },
    ToolSpec {
        name: "get_contact",
        description: "One contact.",
        permission: read(Contacts),
        args: &[req("contact_id", "ct_…")],
        action: Action::Get("/v1/contacts/{contact_id}"),
    },
    ToolSpec {
        name: "get_contact_timeline",
        description: "Everything with one contact in time order, newest first: calls (with transcript excerpts), messages and notes, within a size budget; counts what was left out.",
        permission: read(Contacts),
        args: &[req("contact_id", "ct_…"), CURSOR],
        action: Action::Timeline,
    },
    ToolSpec {
        name: "list_contact_notes",
        description: "Notes on a contact, newest first.",
        permission: read(Notes),
        args: &[req("contact_id", "ct_…"), LIMIT, CURSOR],
        action: Action::List("/v1/contacts/{contact_id}/notes"),
    },
    ToolSpec {
        name: "list_calls",
        description: "The call log, newest first.",
        permission: read(Calls),
        args: &[
            opt(
                "status",
                "queued|ringing|in_progress|completed|busy|no_answer|failed|canceled",
            ),
            opt("direction", "inbound|outbound"),
            opt("contact_id", "ct_…"),
            opt("agent_id", "agent_…"),
            opt("phone_number_id", "pn_…"),
            opt("campaign_id", "cmp_…"),
            opt("from", "E.164"),
            opt("to", "E.164"),
            opt("created_after", "RFC 3339"),
            opt("created_before", "RFC 3339"),
            opt("started_after", "RFC 3339"),
            opt("started_before", "RFC 3339"),
            int("duration_min", "Seconds"),
            int("duration_max", "Seconds"),
            LIMIT,
            CURSOR,
        ],
        action: Action::List("/v1/calls"),
    },
    ToolSpec {
        name: "get_call",
        description: "One call: status, parties, duration, cost.",
        permission: read(Calls),
        args: &[req("call_id", "call_…")],
        action: Action::Get("/v1/calls/{call_id}"),
    },
    ToolSpec {
        name: "get_call_transcript",
        description: "A call's transcript, paged by segment.",
        permission: read(Calls),
        args: &[req("call_id", "call_…"), CURSOR],
        action: Action::Transcript,
    },
    ToolSpec {
        name: "list_recordings",
        description: "Call recordings (metadata and a signed media URL), newest first.",
        permission: read(Calls),
        args: &[opt("call_id", "call_…"), LIMIT, CURSOR],
        action: Action::List("/v1/recordings"),
    },
    ToolSpec {
        name: "get_recording",
        description: "One recording with a fresh signed media URL.",
        permission: read(Calls),
        args: &[req("recording_id", "rec_…")],
        action: Action::Get("/v1/recordings/{recording_id}"),
    },
    ToolSpec {
        name: "list_conversations",
        description: "Conversations (one per pair of numbers), most recently active first.",
        permission: read(Conversations),
        args: &[opt("contact_id", "ct_…"), LIMIT, CURSOR],
        action: Action::List("/v1/conversations"),
    },
    ToolSpec {
        name: "get_conversation",
        description: "One conversation.",
        permission: read(Conversations),
        args: &[req("conversation_id", "conv_…")],
        action: Action::Get("/v1/conversations/{conversation_id}"),
    },
    ToolSpec {
        name: "list_messages",
        description: "SMS messages, newest first.",
        permission: read(Messages),
        args: &[
            opt("conversation_id", "conv_…"),
            opt("direction", "inbound|outbound"),
            LIMIT,
            CURSOR,
        ],
        action: Action::List("/v1/messages"),
    },
    ToolSpec {
        name: "list_conversation_notes",
        description: "Notes on a conversation, newest first.",
        permission: read(Notes),
        args: &[req("conversation_id", "conv_…"), LIMIT, CURSOR],
        action: Action::List("/v1/conversations/{conversation_id}/notes"),
    },
    ToolSpec {
        name: "list_agents",
        description: "Voice agents.",
        permission: read(Agents),
        args: &[LIMIT, CURSOR],
        action: Action::List("/v1/agents"),
    },
    ToolSpec {
        name: "list_phone_numbers",
        description: "The workspace's phone numbers and their routing.",
        permission: read(PhoneNumbers),
        args: &[
            opt("status", "active (default)|released|all"),
            LIMIT,
            CURSOR,
        ],
        action: Action::List("/v1/phone-numbers"),
    },
    ToolSpec {
        name: "get_usage_analytics",
        description: "Calls, answered, missed, minutes, messages and cost per day or hour.",
        permission: read(Analytics),
        args: &[
            opt("from", "RFC 3339, default 30 days ago"),
            opt("to", "RFC 3339, default now"),
            opt("granularity", "day|hour"),
            opt("group_by", "direction|agent|phone_number"),
        ],
        action: Action::Get("/v1/analytics/usage"),
    },
    ToolSpec {
        name: "get_wallet",
        description: "Wallet balance (cents).",
        permission: read(Billing),
        args: &[],
        action: Action::Get("/v1/billing/wallet"),
    },
    ToolSpec {
        name: "list_invoices",
        description: "Monthly invoices.",
        permission: read(Billing),
        args: &[LIMIT, CURSOR],
        action: Action::List("/v1/billing/invoices"),
    },
    ToolSpec {
        name: "send_message",
        description: "Send an SMS. Two steps: call without confirmation_token for a preview and a token, then again with the same arguments and the token.",
        permission: write(Messages),
        args: &[
            req("to", "E.164"),
            req("body", "1-1600 characters"),
            opt("from", "One of your numbers"),
            CONFIRM,
        ],
        action: Action::Write(WriteKind::SendMessage),
    },
    ToolSpec {
        name: "place_call",
        description: "Place an outbound call. Two steps, as send_message.",
        permission: write(Calls),
        args: &[
            req("to", "E.164"),
            opt("from", "One of your numbers"),
            opt("agent_id", "agent_…"),
            CONFIRM,
        ],
        action: Action::Write(WriteKind::PlaceCall),
    },
    ToolSpec {
        name: "create_contact_note",
        description: "Add a note to a contact. Two steps, as send_message.",
        permission: write(Notes),
        args: &[
            req("contact_id", "ct_…"),
            req("content", "1-5000 characters"),
            CONFIRM,
        ],
        action: Action::Write(WriteKind::ContactNote),
    },
    ToolSpec {
        name: "create_conversation_note",
        description: "Add a note to a conversation. Two steps, as send_message.",
        permission: write(Notes),
        args: &[
            req("conversation_id", "conv_…"),
            req("content", "1-5000 characters"),
            CONFIRM,
        ],
        action: Action::Write(WriteKind::ConversationNote),
    },
];

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The tools a key holding `permissions` is offered; write tools only when the
/// operator enabled them.
pub fn offered(
    permissions: Permissions,
    writes_enabled: bool,
) -> impl Iterator<Item = &'static ToolSpec> {
    TOOLS
        .iter()
        .filter(move |t| t.allowed(permissions) && (writes_enabled || !t.is_write()))
}

/// The REST route each tool reads or writes through (method, path template), for
/// the test that checks a tool's permission is the route's.
pub fn rest_routes(spec: &ToolSpec) -> Vec<(&'static str, &'static str)> {
    match spec.action {
        Action::WhoAmI => vec![("GET", "/v1/me")],
        Action::Get(p) | Action::List(p) => vec![("GET", p)],
        Action::Transcript => vec![("GET", "/v1/calls/{call_id}/transcript")],
        Action::Timeline => vec![("GET", "/v1/contacts/{contact_id}")],
        Action::Write(WriteKind::SendMessage) => vec![("POST", "/v1/messages")],
        Action::Write(WriteKind::PlaceCall) => vec![("POST", "/v1/calls")],
        Action::Write(WriteKind::ContactNote) => vec![("POST", "/v1/contacts/{contact_id}/notes")],
        Action::Write(WriteKind::ConversationNote) => {
            vec![("POST", "/v1/conversations/{conversation_id}/notes")]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_key_is_offered_no_write_tool_even_with_writes_enabled() {
        let tools: Vec<_> = offered(Permissions::read_only(), true).collect();
        assert!(tools.iter().all(|t| !t.is_write()));
        assert_eq!(tools.len(), TOOLS.iter().filter(|t| !t.is_write()).count());
    }

    #[test]
    fn write_tools_need_the_operator_and_the_permission() {
        let full = Permissions::full();
        assert!(offered(full, false).all(|t| !t.is_write()));
        assert_eq!(offered(full, true).filter(|t| t.is_write()).count(), 4);
        let only_contacts = Permissions::parse_list(["contacts:read"]).expect("valid");
        let names: Vec<_> = offered(only_contacts, true).map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "whoami",
                "list_contacts",
                "get_contact",
                "get_contact_timeline"
            ]
        );
    }

    #[test]
    fn names_are_unique_and_schemas_flat() {
        let mut names: Vec<_> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len());
        for t in TOOLS {
            let schema = Value::Object(t.input_schema()).to_string();
            assert!(!schema.contains("$ref"), "{}", t.name);
            assert_eq!(
                schema.matches("\"properties\"").count(),
                1,
                "{} is not flat",
                t.name
            );
            for a in t.args {
                if let Some((_, path)) = rest_routes(t).first()
                    && path.contains(&format!("{{{}}}", a.name))
                {
                    assert!(
                        a.required,
                        "{}: path argument {} must be required",
                        t.name, a.name
                    );
                }
            }
        }
    }
}
