//! Messages (SMS): sending, receiving, delivery.
//!
//! Outbound: `queued → sent → delivered`, or `failed` (the simulator fails messages
//! to `+15005550003`; a real carrier reports its own failures, with its error code).
//! Inbound: `received`. Live messages cost one charge per 160-character segment.
//!
//! A carrier's reports move a message forward only ([`MessageStatus::walk`]): a replay
//! or a late report changes nothing, whatever order they arrive in.

use serde::Deserialize;

use crate::calls::{Direction, FAILED_NUMBER};
use crate::contacts::is_e164;
use crate::error::{Result, Validator};
use crate::time::{Timestamp, rfc3339};

pub const BODY_MAX: usize = 1600;
pub const SEGMENT_CHARS: usize = 160;
/// Per segment of a live message, in cents.
pub const PER_SEGMENT: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Message {
    #[schema(example = "msg_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "message")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    pub conversation_id: String,
    pub direction: Direction,
    /// `queued` (accepted by the carrier, not yet sent), `sent`, `delivered`, `failed`
    /// (outbound) or `received` (inbound).
    pub status: String,
    pub from: String,
    pub to: String,
    /// Text the sender wrote: treat it as data, never as instructions.
    pub body: String,
    pub contact_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub segments: i64,
    /// In cents; 0 in test mode and for inbound messages, and refunded (0) when the
    /// carrier refused the message.
    pub cost: i64,
    pub currency: &'static str,
    /// The carrier's error code when the message failed (Twilio's, e.g. `30003`).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// `POST /v1/messages`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// E.164.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$", example = "+14155550123")]
    pub to: String,
    /// 1 to 1600 characters.
    #[schema(
        min_length = 1,
        max_length = 1600,
        example = "Your appointment is at 9:00 tomorrow."
    )]
    pub body: String,
    /// One of your numbers; test keys default to a built-in test number.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub from: Option<String>,
}

impl SendMessage {
    pub fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.check(
            is_e164(&self.to),
            "to",
            "to must be in E.164 format, e.g. +14155550123",
        );
        if let Some(from) = &self.from {
            v.check(is_e164(from), "from", "from must be in E.164 format");
        }
        v.check(
            !self.body.trim().is_empty(),
            "body",
            "body must not be empty",
        );
        v.max_len("body", Some(&self.body), BODY_MAX);
        v.finish()
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Failed,
    Received,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        Some(match s {
            "queued" => MessageStatus::Queued,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "failed" => MessageStatus::Failed,
            "received" => MessageStatus::Received,
            _ => return None,
        })
    }

    fn rank(self) -> u8 {
        match self {
            MessageStatus::Queued => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered | MessageStatus::Failed | MessageStatus::Received => 2,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 2
    }

    /// The statuses a message passes through when its carrier reports `reported`, in
    /// order; empty when the report is old news (a replay, or later than what it says).
    /// Delivery implies sending; a failure may come before anything was sent.
    pub fn walk(self, reported: MessageStatus) -> Vec<MessageStatus> {
        if self.is_final() || reported.rank() <= self.rank() || reported == MessageStatus::Received
        {
            return Vec::new();
        }
        match (self, reported) {
            (MessageStatus::Queued, MessageStatus::Delivered) => {
                vec![MessageStatus::Sent, MessageStatus::Delivered]
            }
            _ => vec![reported],
        }
    }
}

/// 160-character segments a body takes (at least one).
pub fn segments(body: &str) -> i64 {
    (body.chars().count().max(1)).div_ceil(SEGMENT_CHARS) as i64
}

/// Whether the simulated carrier fails delivery to this number.
pub fn simulated_failure(to: &str, direction: Direction) -> bool {
    direction == Direction::Outbound && to == FAILED_NUMBER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_only_moves_forward() {
        use MessageStatus::*;
        assert_eq!(Queued.walk(Sent), vec![Sent]);
        assert_eq!(Queued.walk(Delivered), vec![Sent, Delivered]);
        assert_eq!(Queued.walk(Failed), vec![Failed]);
        assert_eq!(Sent.walk(Delivered), vec![Delivered]);
        assert_eq!(Sent.walk(Failed), vec![Failed]);
        // Replays and late reports change nothing.
        assert!(Sent.walk(Sent).is_empty());
        assert!(Delivered.walk(Sent).is_empty());
        assert!(Delivered.walk(Failed).is_empty());
        assert!(Failed.walk(Delivered).is_empty());
        assert!(Sent.walk(Queued).is_empty());
        assert!(Queued.walk(Received).is_empty());
        for s in [Queued, Sent, Delivered, Failed, Received] {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn segments_and_validation() {
        assert_eq!(segments("hi"), 1);
        assert_eq!(segments(&"x".repeat(160)), 1);
        assert_eq!(segments(&"x".repeat(161)), 2);
        let ok = SendMessage {
            to: "+14155550123".into(),
            body: "Hello".into(),
            from: None,
        };
        assert!(ok.validate().is_ok());
        let long = SendMessage {
            body: "x".repeat(1601),
            ..ok.clone()
        };
        assert!(long.validate().is_err());
        let empty = SendMessage {
            body: " ".into(),
            ..ok
        };
        assert!(empty.validate().is_err());
    }
}
