//! Notes attached to a contact or to a conversation.

use crate::error::{Result, Validator};
use crate::time::{Timestamp, rfc3339};

pub const CONTENT_MAX: usize = 5000;

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Note {
    #[schema(example = "note_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "note")]
    pub object: &'static str,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub content: String,
    /// The key (or user) that wrote it.
    pub created_by: String,
    pub livemode: bool,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// 1 to 5000 characters.
    #[schema(
        min_length = 1,
        max_length = 5000,
        example = "Prefers a call after 10am."
    )]
    pub content: String,
}

impl NoteInput {
    pub fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.check(
            !self.content.trim().is_empty(),
            "content",
            "content must not be empty",
        );
        v.max_len("content", Some(&self.content), CONTENT_MAX);
        v.finish()
    }
}
