//! Conversations: the thread of calls (and messages) between one of our numbers and
//! one outside number, sorted by last activity.

use crate::time::{Timestamp, rfc3339};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Conversation {
    #[schema(example = "conv_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "conversation")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    /// Our side (E.164).
    pub phone_number: String,
    pub phone_number_id: Option<String>,
    /// Their side (E.164).
    pub participant: String,
    pub contact_id: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}
