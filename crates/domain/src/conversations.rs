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

impl Conversation {
    /// The cursor key of a conversation in activity order: `{millis}_{id}`.
    pub fn activity_key(&self) -> String {
        format!("{}_{}", self.last_activity_at.timestamp_millis(), self.id)
    }
}

/// Splits an activity cursor back into its time and id.
pub fn parse_activity_key(key: &str) -> crate::Result<(Timestamp, String)> {
    crate::timeline::Position::parse(key).map(|p| (p.at, p.id))
}

#[cfg(test)]
mod tests {
    #[test]
    fn activity_keys_round_trip_through_a_cursor() {
        let key = format!("{}_{}", 1_795_000_000_123i64, crate::id::new_id("conv"));
        let cursor = crate::page::encode_cursor(&key);
        let page = crate::page::PageRequest::new(Some(1), Some(&cursor)).expect("cursor");
        let (at, id) =
            super::parse_activity_key(page.before_id.as_deref().unwrap_or("")).expect("key");
        assert_eq!(at.timestamp_millis(), 1_795_000_000_123);
        assert!(id.starts_with("conv_"));
    }
}
