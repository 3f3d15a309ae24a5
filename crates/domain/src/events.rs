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
