//! Calls (call logs): their lifecycle, the simulator's script, transcripts, recordings.
//!
//! Lifecycle: `queued → ringing → in_progress → completed`, or from `ringing` to
//! `busy`, `no_answer` or `failed`; `canceled` when hung up before an answer. The
//! built-in carrier is a simulator (always for test keys; for live keys only when the
//! operator enables it). Its magic numbers: `+15005550001` busy, `+15005550002` no
//! answer, `+15005550003` failed; any other number answers and completes.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::contacts::{check_custom_fields, is_e164};
use crate::error::{Error, Result, Validator};
use crate::events::EventType;
use crate::time::{Timestamp, rfc3339};

pub const BUSY_NUMBER: &str = "+15005550001";
pub const NO_ANSWER_NUMBER: &str = "+15005550002";
pub const FAILED_NUMBER: &str = "+15005550003";
/// The number a test workspace calls from when no `from` is given.
pub const TEST_FROM_NUMBER: &str = "+15005550006";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 8] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::validation("status", "status must be one of queued, ringing, in_progress, completed, busy, no_answer, failed, canceled"))
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress
        )
    }

    /// The event a call entering this status emits.
    pub fn event_type(self) -> EventType {
        match self {
            CallStatus::Queued => EventType::CallQueued,
            CallStatus::Ringing => EventType::CallRinging,
            CallStatus::InProgress => EventType::CallStarted,
            CallStatus::Completed | CallStatus::Canceled => EventType::CallCompleted,
            CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed => EventType::CallFailed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "outbound" => Ok(Direction::Outbound),
            "inbound" => Ok(Direction::Inbound),
            _ => Err(Error::validation(
                "direction",
                "direction must be outbound or inbound",
            )),
        }
    }
}

/// A call log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Call {
    #[schema(example = "call_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "call")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    pub direction: Direction,
    pub status: CallStatus,
    /// Why it ended: `completed`, `busy`, `no_answer`, `failed`, `hangup_api`.
    pub end_reason: Option<String>,
    #[schema(example = "+15005550006")]
    pub from: String,
    #[schema(example = "+14155550123")]
    pub to: String,
    pub contact_id: Option<String>,
    pub conversation_id: String,
    pub phone_number_id: Option<String>,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: i64,
    /// In cents; always 0 in test mode.
    pub cost: i64,
    pub currency: &'static str,
    #[schema(value_type = crate::contacts::FlatObject)]
    pub metadata: Map<String, Value>,
    /// When the carrier failed the call: its error code (Twilio's, e.g. `21211`).
    pub error_code: Option<String>,
    /// When the carrier failed the call: what it said.
    pub error_message: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// `POST /v1/calls`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCall {
    /// E.164.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$", example = "+14155550123")]
    pub to: String,
    /// One of your numbers (E.164); test keys default to a built-in test number.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub from: Option<String>,
    /// The agent that talks (`agt_…`).
    #[schema(pattern = "^agt_[0-9a-hjkmnp-tv-z]{26}$")]
    pub agent_id: Option<String>,
    /// Up to 50 flat key/value pairs, returned on the call and its events.
    #[schema(value_type = Option<crate::contacts::FlatObject>)]
    pub metadata: Option<Map<String, Value>>,
}

impl PlaceCall {
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
        if let Some(a) = &self.agent_id {
            v.check(
                crate::id::looks_like("agt", a),
                "agent_id",
                format!("no such agent: {a}"),
            );
        }
        if let Some(m) = &self.metadata {
            check_custom_fields(&mut v, m);
        }
        v.finish()
    }
}

/// What a carrier reports about a call: a status callback from Twilio, a step of the
/// simulator. Every carrier's reports go through one state machine, [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallProgress {
    Ringing,
    Answered,
    /// Ended after an answer, with the talk time the carrier measured.
    Completed {
        duration_seconds: i64,
    },
    Busy,
    NoAnswer,
    /// The carrier could not place or carry the call; its own code and words.
    Failed {
        code: Option<String>,
        message: Option<String>,
    },
    /// Ended before an answer.
    Canceled,
}

impl CallProgress {
    /// The status this report moves a call to.
    pub fn status(&self) -> CallStatus {
        match self {
            CallProgress::Ringing => CallStatus::Ringing,
            CallProgress::Answered => CallStatus::InProgress,
            CallProgress::Completed { .. } => CallStatus::Completed,
            CallProgress::Busy => CallStatus::Busy,
            CallProgress::NoAnswer => CallStatus::NoAnswer,
            CallProgress::Failed { .. } => CallStatus::Failed,
            CallProgress::Canceled => CallStatus::Canceled,
        }
    }
}

impl CallStatus {
    /// How far along the lifecycle a status is; states only move to a higher rank.
    fn rank(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            _ => 3,
        }
    }
}

/// The statuses a call in `current` passes through when `progress` is reported, in
/// order; empty when the report changes nothing.
///
/// States only move forward: a replayed report, or one that arrives after a later one
/// (carriers do not order their callbacks), is ignored. A report that arrives before
/// the ones it implies walks the states it implies (an answer implies a ring; a
/// completion, an answer; no answer, a ring), so a call's events always read in
/// lifecycle order, each status once.
pub fn walk(current: CallStatus, progress: &CallProgress) -> Vec<CallStatus> {
    let target = progress.status();
    if current.is_terminal() || target.rank() <= current.rank() {
        return Vec::new();
    }
    let implied: &[CallStatus] = match target {
        CallStatus::InProgress | CallStatus::NoAnswer => &[CallStatus::Ringing],
        CallStatus::Completed => &[CallStatus::Ringing, CallStatus::InProgress],
        _ => &[],
    };
    implied
        .iter()
        .copied()
        .filter(|s| s.rank() > current.rank())
        .chain(std::iter::once(target))
        .collect()
}

/// The seconds of a call that are charged: what the carrier reports, never more than
/// what was reserved when the call was placed (what the wallet covered then).
pub fn billable_seconds(reported: i64, reserved: Option<i64>) -> i64 {
    let reported = reported.max(0);
    reserved.map_or(reported, |r| reported.min(r.max(0)))
}

/// How a simulated call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedOutcome {
    Busy,
    NoAnswer,
    Failed,
    /// Answered, talks this many (simulated) seconds, completes.
    Answered {
        duration_seconds: i64,
    },
}

impl SimulatedOutcome {
    /// The outcome for a number: the magic numbers, else answered for 20–240 s,
    /// capped at `max_seconds` (what the wallet can pay for in live mode).
    pub fn for_number(to: &str, max_seconds: Option<i64>) -> Self {
        match to {
            BUSY_NUMBER => SimulatedOutcome::Busy,
            NO_ANSWER_NUMBER => SimulatedOutcome::NoAnswer,
            FAILED_NUMBER => SimulatedOutcome::Failed,
            _ => {
                let d = rand::random_range(20..=240i64);
                SimulatedOutcome::Answered {
                    duration_seconds: max_seconds.map_or(d, |m| d.min(m.max(1))),
                }
            }
        }
    }

    /// The same outcome, an answered call talking at most `max_seconds`.
    pub fn capped(self, max_seconds: i64) -> Self {
        match self {
            SimulatedOutcome::Answered { duration_seconds } => SimulatedOutcome::Answered {
                duration_seconds: duration_seconds.min(max_seconds.max(1)),
            },
            other => other,
        }
    }

    /// The status a ringing call moves to.
    pub fn after_ringing(self) -> CallStatus {
        match self {
            SimulatedOutcome::Busy => CallStatus::Busy,
            SimulatedOutcome::NoAnswer => CallStatus::NoAnswer,
            SimulatedOutcome::Failed => CallStatus::Failed,
            SimulatedOutcome::Answered { .. } => CallStatus::InProgress,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SimulatedOutcome::Busy => "busy",
            SimulatedOutcome::NoAnswer => "no_answer",
            SimulatedOutcome::Failed => "failed",
            SimulatedOutcome::Answered { .. } => "answered",
        }
    }

    pub fn from_parts(kind: &str, duration_seconds: i64) -> Self {
        match kind {
            "busy" => SimulatedOutcome::Busy,
            "no_answer" => SimulatedOutcome::NoAnswer,
            "failed" => SimulatedOutcome::Failed,
            _ => SimulatedOutcome::Answered { duration_seconds },
        }
    }

    pub fn duration_seconds(self) -> i64 {
        match self {
            SimulatedOutcome::Answered { duration_seconds } => duration_seconds,
            _ => 0,
        }
    }
}

/// Cost in cents of a live call of this length: each started minute.
pub fn call_cost(duration_seconds: i64) -> i64 {
    ((duration_seconds + 59) / 60) * crate::billing::CALL_PER_MINUTE
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    /// `agent` or `caller`.
    pub speaker: String,
    /// Seconds from the answer.
    pub start_seconds: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Transcript {
    #[schema(example = "transcript")]
    pub object: &'static str,
    pub call_id: String,
    pub livemode: bool,
    pub segments: Vec<Segment>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The simulator's conversation, spread over the call's duration.
pub fn simulated_transcript(greeting: Option<&str>, duration_seconds: i64) -> Vec<Segment> {
    let lines = [
        (
            "agent",
            greeting.unwrap_or("Hello, thanks for taking my call. Is now a good time?"),
        ),
        ("caller", "Yes, go ahead."),
        (
            "agent",
            "I'm calling to confirm your appointment for Thursday at 10 am.",
        ),
        (
            "caller",
            "Thursday works. Can you send me a reminder the day before?",
        ),
        (
            "agent",
            "Of course, you'll get a text message on Wednesday.",
        ),
        ("caller", "Great, thank you."),
        ("agent", "Thank you, goodbye."),
    ];
    let step = (duration_seconds / lines.len() as i64).max(1);
    lines
        .iter()
        .enumerate()
        .map(|(i, (speaker, text))| Segment {
            speaker: (*speaker).to_owned(),
            start_seconds: (i as i64 * step).min(duration_seconds.max(0)),
            text: (*text).to_owned(),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Recording {
    #[schema(example = "rec_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "recording")]
    pub object: &'static str,
    pub call_id: String,
    pub livemode: bool,
    pub duration_seconds: i64,
    #[schema(example = "audio/wav")]
    pub content_type: &'static str,
    /// Where to download the audio; signed, valid until `media_url_expires_at`.
    pub media_url: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub media_url_expires_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// Audio for a simulated recording: 8 kHz 16-bit mono WAV, two voices taking turns
/// (tones of different pitch with pauses), as long as the call.
pub fn simulated_wav(duration_seconds: i64) -> Vec<u8> {
    const RATE: u32 = 8_000;
    let samples = RATE as usize * duration_seconds.clamp(1, 3_600) as usize;
    let data_len = (samples * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let t = n as f64 / f64::from(RATE);
        let turn = (t / 3.0) as u64;
        let in_turn = t % 3.0;
        let freq = if turn.is_multiple_of(2) { 220.0 } else { 330.0 };
        let amp = if in_turn < 2.4 {
            6_000.0 * (1.0 + (t * 3.0).sin()) / 2.0
        } else {
            0.0
        };
        let v = (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_and_outcomes() {
        assert_eq!(
            SimulatedOutcome::for_number(BUSY_NUMBER, None).after_ringing(),
            CallStatus::Busy
        );
        assert_eq!(
            SimulatedOutcome::for_number(NO_ANSWER_NUMBER, None).after_ringing(),
            CallStatus::NoAnswer
        );
        assert_eq!(
            SimulatedOutcome::for_number(FAILED_NUMBER, None).after_ringing(),
            CallStatus::Failed
        );
        match SimulatedOutcome::for_number("+14155550123", Some(30)) {
            SimulatedOutcome::Answered { duration_seconds } => {
                assert!((1..=30).contains(&duration_seconds))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(call_cost(0), 0);
        assert_eq!(call_cost(1), 2);
        assert_eq!(call_cost(60), 2);
        assert_eq!(call_cost(61), 4);
    }

    #[test]
    fn wav_has_a_valid_header_and_length() {
        let wav = simulated_wav(2);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(wav.len(), 44 + 2 * 8_000 * 2);
        let riff_len = u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize;
        assert_eq!(riff_len + 8, wav.len());
    }

    #[test]
    fn statuses_round_trip_and_map_to_events() {
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::parse(s.as_str()).ok(), Some(s));
        }
        assert_eq!(CallStatus::Busy.event_type(), EventType::CallFailed);
        assert!(CallStatus::Canceled.is_terminal() && !CallStatus::Ringing.is_terminal());
    }

    #[test]
    fn states_only_move_forward_and_late_reports_change_nothing() {
        use CallStatus::*;
        let done = CallProgress::Completed {
            duration_seconds: 62,
        };
        assert_eq!(walk(Queued, &CallProgress::Ringing), vec![Ringing]);
        assert_eq!(walk(Ringing, &CallProgress::Answered), vec![InProgress]);
        assert_eq!(walk(InProgress, &done), vec![Completed]);
        // Out of order: the completion first walks the states it implies…
        assert_eq!(walk(Queued, &done), vec![Ringing, InProgress, Completed]);
        assert_eq!(
            walk(Queued, &CallProgress::NoAnswer),
            vec![Ringing, NoAnswer]
        );
        assert_eq!(walk(Queued, &CallProgress::Busy), vec![Busy]);
        // …and the reports that arrive after it change nothing; nor do replays.
        for late in [CallProgress::Ringing, CallProgress::Answered, done.clone()] {
            assert!(walk(Completed, &late).is_empty(), "{late:?}");
        }
        assert!(walk(InProgress, &CallProgress::Ringing).is_empty());
        assert!(walk(Ringing, &CallProgress::Ringing).is_empty());
        assert!(walk(Canceled, &CallProgress::Answered).is_empty());
        assert!(walk(Busy, &CallProgress::Canceled).is_empty());
    }

    #[test]
    fn the_charge_never_exceeds_the_reservation() {
        assert_eq!(billable_seconds(62, Some(600)), 62);
        assert_eq!(billable_seconds(900, Some(600)), 600);
        assert_eq!(billable_seconds(62, None), 62);
        assert_eq!(billable_seconds(-3, Some(60)), 0);
    }
}
