//! Events: what happened, in one envelope for every type, as webhooks will send it.
//!
//! `{"id":"evt_…","object":"event","type":"call.completed","created_at":…,"livemode":…,
//! "data":{"object":{…the resource as the API returns it…}}}`. The storage crate writes
//! an event in the same transaction as the change that causes it.

use serde_json::Value;

use crate::time::{Timestamp, rfc3339};

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    #[schema(example = "evt_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "event")]
    pub object: &'static str,
    #[serde(rename = "type")]
    #[schema(example = "call.completed")]
    pub event_type: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub livemode: bool,
    #[schema(value_type = Object)]
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EventData {
    #[schema(value_type = Object)]
    pub object: Value,
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
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 19] = [
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
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

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
}
