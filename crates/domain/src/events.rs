//! Events: what happened, in one envelope for every type, as webhooks will send it.
//!
//! `{"id":"evt_…","object":"event","type":"call.completed","created_at":…,"livemode":…,
//! "data":{"object":{…the resource as the API returns it…}}}`. The storage crate writes
//! an event in the same transaction as the change that causes it.
//!
//! Everything an event type needs is said here once, in [`EventType`]: its name, what
//! it means, the schema of its `data.object` ([`Payload`]), and the resource whose
//! `:read` permission lets a key see it in the event log ([`EventType::visible_to`],
//! [`plan_log_read`]). Webhook subscriptions, `GET /v1/event-types`, `GET /v1/events`
//! and the OpenAPI `webhooks` section all read this list.

use chrono::TimeDelta;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::permissions::{Permission, Permissions, Resource};
use crate::time::{Timestamp, rfc3339};

/// How far back the event log reads (`GET /v1/events`): older events are not returned.
pub const LOG_RETENTION_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    #[schema(example = "evt_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "event")]
    pub object: &'static str,
    #[serde(rename = "type")]
    #[schema(value_type = EventTypeName)]
    pub event_type: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub livemode: bool,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EventData {
    /// The resource as the API returns it; its schema depends on the event type (see
    /// `GET /v1/event-types` and the document's `webhooks`).
    #[schema(value_type = Object)]
    pub object: Value,
}

/// The name of an event type in the document: a string, one of [`EventType::ALL`]
/// (the schema `EventTypeName`, used by `Event.type` and `GET /v1/events?type=`).
pub struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An event type, as `GET /v1/event-types` lists them (`data.object` differs by type).",
            ))
            .enum_values(Some(EventType::ALL.iter().map(|e| e.as_str())))
            .examples(["call.completed"])
            .into()
    }
}

impl utoipa::ToSchema for EventTypeName {}

/// The `data.object` of a `webhook.test` event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookTest {
    #[schema(example = "webhook_test")]
    pub object: &'static str,
    /// The endpoint the test was sent to.
    #[schema(example = "whk_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub endpoint_id: String,
}

/// The `data.object` of an `api_key.leaked` event: the key, and where a secret
/// scanner found it. Never the token itself.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyLeak {
    #[schema(example = "api_key_leak")]
    pub object: &'static str,
    /// The key as the API returns it, after the report was acted on.
    pub key: crate::auth::ApiKeyView,
    /// `revoked` (the key stopped working at once) or `flagged` (still active:
    /// test keys, or a server set to flag only). Revoke or rotate a flagged key.
    #[schema(example = "revoked")]
    pub action: &'static str,
    /// Who reported it.
    #[schema(example = "github_secret_scanning")]
    pub reporter: String,
    /// Where it was found, as the scanner says (e.g. a commit's URL).
    #[schema(example = "https://github.com/octo/repo/blob/abc123/config.env")]
    pub url: String,
    /// What kind of place (`content`, `commit`, `issue`, `gist`, …), as the scanner says.
    #[schema(example = "content")]
    pub source: String,
}

/// The `data.object` of an `api_key.limit_reached` event: the key, and the limit that
/// refused a call or message for the first time today (UTC).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyLimitHit {
    #[schema(example = "api_key_limit")]
    pub object: &'static str,
    /// The key as the API returns it, with its limits.
    pub key: crate::auth::ApiKeyView,
    /// The limit that refused (`max_concurrent_calls`, …).
    #[schema(example = "max_concurrent_calls")]
    pub limit: String,
    /// The limit's value.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// The key's figure when it was refused (a count, or the destination's country).
    #[schema(value_type = Object)]
    pub current: serde_json::Value,
    /// The UTC day, `YYYY-MM-DD`.
    #[schema(example = "2026-11-28")]
    pub day: String,
}

/// What an event's `data.object` is: each names the schema the API documents it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    Contact,
    Note,
    Message,
    Call,
    Transcript,
    Recording,
    Campaign,
    ApiKey,
    ApiKeyLeak,
    ApiKeyLimitHit,
    WebhookTest,
}

impl Payload {
    /// The name of the schema in the OpenAPI document's components.
    pub const fn schema_name(self) -> &'static str {
        match self {
            Payload::Contact => "Contact",
            Payload::Note => "Note",
            Payload::Message => "Message",
            Payload::Call => "Call",
            Payload::Transcript => "Transcript",
            Payload::Recording => "Recording",
            Payload::Campaign => "Campaign",
            Payload::ApiKey => "ApiKeyView",
            Payload::ApiKeyLeak => "ApiKeyLeak",
            Payload::ApiKeyLimitHit => "ApiKeyLimitHit",
            Payload::WebhookTest => "WebhookTest",
        }
    }
}

/// Every type of event, once. Webhook subscriptions, `GET /v1/events?type=` and the
/// storage layer all name events through this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    NoteCreated,
    MessageReceived,
    MessageSent,
    MessageDelivered,
    MessageFailed,
    CallQueued,
    CallRinging,
    CallStarted,
    CallCompleted,
    CallFailed,
    CallTranscriptReady,
    CallRecordingReady,
    CampaignCompleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyLeaked,
    ApiKeyLimitReached,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 21] = [
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::ContactDeleted,
        EventType::NoteCreated,
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageDelivered,
        EventType::MessageFailed,
        EventType::CallQueued,
        EventType::CallRinging,
        EventType::CallStarted,
        EventType::CallCompleted,
        EventType::CallFailed,
        EventType::CallTranscriptReady,
        EventType::CallRecordingReady,
        EventType::CampaignCompleted,
        EventType::ApiKeyCreated,
        EventType::ApiKeyRevoked,
        EventType::ApiKeyLeaked,
        EventType::ApiKeyLimitReached,
        EventType::WebhookTest,
    ];

    /// The name on the wire (`call.completed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
            EventType::ContactDeleted => "contact.deleted",
            EventType::NoteCreated => "note.created",
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageDelivered => "message.delivered",
            EventType::MessageFailed => "message.failed",
            EventType::CallQueued => "call.queued",
            EventType::CallRinging => "call.ringing",
            EventType::CallStarted => "call.started",
            EventType::CallCompleted => "call.completed",
            EventType::CallFailed => "call.failed",
            EventType::CallTranscriptReady => "call.transcript.ready",
            EventType::CallRecordingReady => "call.recording.ready",
            EventType::CampaignCompleted => "campaign.completed",
            EventType::ApiKeyCreated => "api_key.created",
            EventType::ApiKeyRevoked => "api_key.revoked",
            EventType::ApiKeyLeaked => "api_key.leaked",
            EventType::ApiKeyLimitReached => "api_key.limit_reached",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// What happened, in a sentence (`GET /v1/event-types`, the OpenAPI `webhooks`).
    pub const fn description(self) -> &'static str {
        match self {
            EventType::ContactCreated => "A contact was created. The object is the new contact.",
            EventType::ContactUpdated => {
                "A contact was changed (PATCH or PUT). The object is the contact after the change."
            }
            EventType::ContactDeleted => {
                "A contact was deleted, with its notes. The object is the contact as it was."
            }
            EventType::NoteCreated => {
                "A note was added to a contact or to a conversation. The object is the note."
            }
            EventType::MessageReceived => {
                "An inbound text message arrived. The object is the message."
            }
            EventType::MessageSent => {
                "An outbound text message was handed to the carrier. The object is the message."
            }
            EventType::MessageDelivered => {
                "The carrier reports an outbound message delivered. The object is the message."
            }
            EventType::MessageFailed => {
                "An outbound message could not be sent or delivered (see `error_code`); a failed message is not charged."
            }
            EventType::CallQueued => "A call was placed and is queued. The object is the call.",
            EventType::CallRinging => "The called number is ringing. The object is the call.",
            EventType::CallStarted => {
                "The call was answered (status `in_progress`). The object is the call."
            }
            EventType::CallCompleted => {
                "The call ended after it was answered, or was canceled; its duration and cost are final. The object is the call."
            }
            EventType::CallFailed => {
                "The call ended unanswered: `busy`, `no_answer` or `failed` (see `end_reason`). The object is the call."
            }
            EventType::CallTranscriptReady => {
                "The transcript of a call is available. The object is the transcript."
            }
            EventType::CallRecordingReady => {
                "The recording of a call is available (its audio through `GET /v1/recordings/{id}`). The object is the recording."
            }
            EventType::CampaignCompleted => {
                "A campaign called every recipient. The object is the campaign with its final progress."
            }
            EventType::ApiKeyCreated => {
                "An API key was created or rotated in. The object is the key, never its secret."
            }
            EventType::ApiKeyRevoked => {
                "An API key was revoked (or rotated out). The object is the key, never its secret."
            }
            EventType::ApiKeyLeaked => {
                "A secret scanner (GitHub secret scanning) reported an API key found in public. A live key is revoked at once (unless the server only flags); a test key is flagged. The object says where it was found and what was done, never the secret."
            }
            EventType::ApiKeyLimitReached => {
                "A limit of an API key refused a call or message (403 `KEY_LIMIT_EXCEEDED`) for the first time this UTC day. Sent once per key and day, for the first limit that refused. The object names the limit, its value and the key's figure."
            }
            EventType::WebhookTest => {
                "A test ping sent to one endpoint by `POST /v1/webhooks/{id}/test`."
            }
        }
    }

    /// The resource whose `:read` permission lets a key see this event in the log:
    /// what the key could read through the resource's own routes.
    pub const fn resource(self) -> Resource {
        match self {
            EventType::ContactCreated | EventType::ContactUpdated | EventType::ContactDeleted => {
                Resource::Contacts
            }
            // Notes (of contacts and of conversations) have a permission of their own:
            // `GET /v1/contacts/{id}/notes` needs `notes:read`.
            EventType::NoteCreated => Resource::Notes,
            EventType::MessageReceived
            | EventType::MessageSent
            | EventType::MessageDelivered
            | EventType::MessageFailed => Resource::Messages,
            // Transcripts and recordings are read with `calls:read`.
            EventType::CallQueued
            | EventType::CallRinging
            | EventType::CallStarted
            | EventType::CallCompleted
            | EventType::CallFailed
            | EventType::CallTranscriptReady
            | EventType::CallRecordingReady => Resource::Calls,
            EventType::CampaignCompleted => Resource::Campaigns,
            EventType::ApiKeyCreated
            | EventType::ApiKeyRevoked
            | EventType::ApiKeyLeaked
            | EventType::ApiKeyLimitReached => Resource::ApiKeys,
            EventType::WebhookTest => Resource::Webhooks,
        }
    }

    /// The permission that lets a key see this event in the log.
    pub const fn read_permission(self) -> Permission {
        Permission::read(self.resource())
    }

    /// What `data.object` is for this type.
    pub const fn payload(self) -> Payload {
        match self {
            EventType::ContactCreated | EventType::ContactUpdated | EventType::ContactDeleted => {
                Payload::Contact
            }
            EventType::NoteCreated => Payload::Note,
            EventType::MessageReceived
            | EventType::MessageSent
            | EventType::MessageDelivered
            | EventType::MessageFailed => Payload::Message,
            EventType::CallQueued
            | EventType::CallRinging
            | EventType::CallStarted
            | EventType::CallCompleted
            | EventType::CallFailed => Payload::Call,
            EventType::CallTranscriptReady => Payload::Transcript,
            EventType::CallRecordingReady => Payload::Recording,
            EventType::CampaignCompleted => Payload::Campaign,
            EventType::ApiKeyCreated | EventType::ApiKeyRevoked => Payload::ApiKey,
            EventType::ApiKeyLeaked => Payload::ApiKeyLeak,
            EventType::ApiKeyLimitReached => Payload::ApiKeyLimitHit,
            EventType::WebhookTest => Payload::WebhookTest,
        }
    }

    /// The event types a key with `permissions` may see, in [`EventType::ALL`] order:
    /// those whose resource it can read (`write` implies `read`).
    pub fn visible_to(permissions: &Permissions) -> Vec<EventType> {
        Self::ALL
            .into_iter()
            .filter(|e| permissions.allows(e.read_permission()))
            .collect()
    }

    /// Every name, comma-separated, for messages that must name the valid types.
    pub fn valid_names() -> String {
        Self::ALL.map(EventType::as_str).join(", ")
    }

    /// Parses a name, or answers 400 naming `field` and every valid type.
    pub fn parse_named(field: &str, name: &str) -> Result<EventType> {
        Self::parse(name).ok_or_else(|| Error::validation(field, unknown_type_message(name)))
    }
}

/// `unknown event type "x"; valid types: contact.created, …`
pub fn unknown_type_message(name: &str) -> String {
    format!(
        "unknown event type {name:?}; valid types: {}",
        EventType::valid_names()
    )
}

/// A read of the event log, decided: which types, and which creation times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// `None`: every type (no filter to apply). `Some(empty)`: nothing to read.
    pub types: Option<Vec<EventType>>,
    /// Created at or after (never before the retention window).
    pub created_from: Timestamp,
    /// Created before, when asked.
    pub created_before: Option<Timestamp>,
}

impl LogRead {
    /// True when no event can match (the key may see none of the types asked for).
    pub fn is_empty(&self) -> bool {
        self.types.as_ref().is_some_and(Vec::is_empty)
    }

    /// The start of the retention window for a read at `now`.
    pub fn window_start(now: Timestamp) -> Timestamp {
        now - TimeDelta::days(LOG_RETENTION_DAYS)
    }

    /// An id below every event created since `created_from`: ids sort by creation
    /// time, so a read may stop there instead of walking all older events. A minute of
    /// slack covers an id and its timestamp taken on either side of a clock step; the
    /// times themselves are still compared.
    pub fn id_floor(&self) -> String {
        let from = self.created_from - TimeDelta::minutes(1);
        crate::id::new_id_at("evt", from.timestamp_millis())
    }
}

/// Decides what a key reads of the event log: the types it asked for (`requested`,
/// empty: every type) limited to those it may see, in the last
/// [`LOG_RETENTION_DAYS`] days, within `created_after` (inclusive) and
/// `created_before` (exclusive).
///
/// Asking by name for a type the key may not see is refused (403 naming the
/// permission); without a type filter, the key simply sees the types it may read.
pub fn plan_log_read(
    permissions: &Permissions,
    requested: &[EventType],
    created_after: Option<Timestamp>,
    created_before: Option<Timestamp>,
    now: Timestamp,
) -> Result<LogRead> {
    let visible = EventType::visible_to(permissions);
    let types = if requested.is_empty() {
        visible
    } else {
        if let Some(hidden) = requested.iter().find(|t| !visible.contains(t)) {
            return Err(Error::forbidden(hidden.read_permission()));
        }
        EventType::ALL
            .into_iter()
            .filter(|t| requested.contains(t))
            .collect()
    };
    let window = LogRead::window_start(now);
    Ok(LogRead {
        types: (types.len() != EventType::ALL.len()).then_some(types),
        created_from: created_after.map_or(window, |a| a.max(window)),
        created_before,
    })
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_and_is_unique() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("call.unknown"), None);
    }

    fn perms(list: &[&str]) -> Permissions {
        Permissions::parse_list(list.iter().copied()).expect("permissions")
    }

    #[test]
    fn a_key_sees_the_events_of_what_it_can_read() {
        let contacts = EventType::visible_to(&perms(&["contacts:read"]));
        assert_eq!(
            contacts,
            [
                EventType::ContactCreated,
                EventType::ContactUpdated,
                EventType::ContactDeleted
            ]
        );
        // write implies read; notes have their own permission.
        let notes = EventType::visible_to(&perms(&["contacts:write", "notes:read"]));
        assert!(notes.contains(&EventType::NoteCreated));
        assert!(!notes.iter().any(|e| e.as_str().starts_with("call.")));
        let calls = EventType::visible_to(&perms(&["calls:read"]));
        assert!(calls.contains(&EventType::CallTranscriptReady));
        assert!(calls.contains(&EventType::CallRecordingReady));
        assert!(calls.iter().all(|e| e.as_str().starts_with("call.")));
        assert_eq!(EventType::visible_to(&Permissions::full()), EventType::ALL);
        assert_eq!(
            EventType::visible_to(&Permissions::read_only()),
            EventType::ALL
        );
        assert!(EventType::visible_to(&perms(&["analytics:read", "billing:read"])).is_empty());
    }

    #[test]
    fn every_type_is_described_and_names_its_payload() {
        for e in EventType::ALL {
            assert!(e.description().ends_with('.'), "{e}");
            assert!(!e.payload().schema_name().is_empty());
            // The resource a type belongs to is the prefix of its name.
            let family = e.as_str().split('.').next().unwrap_or_default();
            let expected = match family {
                "contact" => "contacts",
                "note" => "notes",
                "message" => "messages",
                "call" => "calls",
                "campaign" => "campaigns",
                "api_key" => "api_keys",
                "webhook" => "webhooks",
                other => panic!("new family {other}: give it a resource"),
            };
            assert_eq!(e.resource().as_str(), expected, "{e}");
        }
    }

    #[test]
    fn an_unknown_name_is_refused_naming_every_valid_one() {
        let Err(Error::Validation { message, details }) = EventType::parse_named("type", "call.x")
        else {
            panic!("refused");
        };
        assert_eq!(details[0].field, "type");
        for e in EventType::ALL {
            assert!(message.contains(e.as_str()), "{message}");
        }
        assert!(message.starts_with("unknown event type \"call.x\""));
    }

    #[test]
    fn a_log_read_keeps_to_the_window_and_the_visible_types() {
        let now = crate::time::now();
        let window = now - TimeDelta::days(LOG_RETENTION_DAYS);
        let full = plan_log_read(&Permissions::full(), &[], None, None, now).expect("plan");
        assert_eq!(full.types, None, "every type: no filter");
        assert_eq!(full.created_from, window);
        let old = now - TimeDelta::days(90);
        let asked =
            plan_log_read(&Permissions::full(), &[], Some(old), Some(now), now).expect("plan");
        assert_eq!(asked.created_from, window, "never before the window");
        assert_eq!(asked.created_before, Some(now));
        let recent = now - TimeDelta::hours(1);
        let asked =
            plan_log_read(&Permissions::full(), &[], Some(recent), None, now).expect("plan");
        assert_eq!(asked.created_from, recent);

        let contacts = perms(&["contacts:read"]);
        let own = plan_log_read(&contacts, &[], None, None, now).expect("plan");
        assert_eq!(own.types, Some(EventType::visible_to(&contacts)));
        let one =
            plan_log_read(&contacts, &[EventType::ContactDeleted], None, None, now).expect("plan");
        assert_eq!(one.types, Some(vec![EventType::ContactDeleted]));
        let Err(Error::Forbidden {
            required_permission,
            ..
        }) = plan_log_read(&contacts, &[EventType::CallCompleted], None, None, now)
        else {
            panic!("a hidden type asked for by name is refused");
        };
        assert_eq!(required_permission, Some(Permission::read(Resource::Calls)));
        let none = plan_log_read(&perms(&["billing:read"]), &[], None, None, now).expect("plan");
        assert!(none.is_empty());
        assert!(!own.is_empty());
    }

    #[test]
    fn the_id_floor_is_below_every_id_of_the_window() {
        let now = crate::time::now();
        let read = plan_log_read(&Permissions::full(), &[], None, None, now).expect("plan");
        let at_start = crate::id::new_id_at("evt", read.created_from.timestamp_millis());
        assert!(read.id_floor() < at_start);
        assert!(read.id_floor() < crate::id::new_id("evt"));
        let older = crate::id::new_id_at(
            "evt",
            (read.created_from - TimeDelta::minutes(2)).timestamp_millis(),
        );
        assert!(read.id_floor() > older);
    }
}
