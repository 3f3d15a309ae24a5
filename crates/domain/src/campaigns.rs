//! Campaigns: one agent calling a list of numbers, a few at a time.
//!
//! `running → paused → running`, `running|paused → canceled`, and `completed` once
//! every recipient's call has ended (`campaign.completed`). Recipients come as a JSON
//! list or as CSV (one number per line, an optional `phone_number` header).

use serde::Deserialize;

use crate::contacts::is_e164;
use crate::error::{Error, FieldError, Result};
use crate::time::{Timestamp, rfc3339};

pub const RECIPIENTS_MAX: usize = 10_000;
pub const NAME_MAX: usize = 200;
/// Calls a campaign keeps in flight at once.
pub const CONCURRENCY: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: i64,
    /// Not called yet.
    pub pending: i64,
    pub in_progress: i64,
    /// Answered and completed.
    pub completed: i64,
    /// Busy, no answer, failed or canceled.
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Campaign {
    #[schema(example = "cmp_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "campaign")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    pub name: String,
    pub agent_id: String,
    /// The number the calls come from.
    pub from: String,
    /// `running`, `paused`, `canceled` or `completed`.
    pub status: String,
    /// Why a campaign paused by itself (`insufficient_balance`).
    pub status_reason: Option<String>,
    pub progress: Progress,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// `POST /v1/campaigns`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, example = "November reminders")]
    pub name: String,
    /// The agent that calls (`agt_…`).
    #[schema(pattern = "^agt_[0-9a-hjkmnp-tv-z]{26}$")]
    pub agent_id: String,
    /// E.164 numbers; or send `recipients_csv`.
    #[schema(example = json!(["+14155550123", "+14155550124"]))]
    pub recipients: Option<Vec<String>>,
    /// One number per line, optionally under a `phone_number` header (other columns
    /// are ignored; the number is the first column).
    pub recipients_csv: Option<String>,
    /// One of your numbers; test keys default to the built-in test number.
    pub from: Option<String>,
}

/// `PATCH /v1/campaigns/{id}`
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    /// `paused`, `running` (resume) or `canceled`.
    #[schema(example = "paused")]
    pub status: String,
}

impl CreateCampaign {
    /// The checked name and the recipients, deduplicated, in order.
    pub fn checked(&self) -> Result<(String, Vec<String>)> {
        let name = self.name.trim().to_owned();
        let mut details = Vec::new();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            details.push(FieldError {
                field: "name".into(),
                message: format!("name must be 1 to {NAME_MAX} characters"),
            });
        }
        if !crate::id::looks_like("agt", &self.agent_id) {
            details.push(FieldError {
                field: "agent_id".into(),
                message: format!("no such agent: {}", self.agent_id),
            });
        }
        let raw: Vec<(String, String)> = match (&self.recipients, &self.recipients_csv) {
            (Some(list), None) => list
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("recipients[{i}]"), n.trim().to_owned()))
                .collect(),
            (None, Some(csv)) => csv
                .lines()
                .enumerate()
                .filter_map(|(i, line)| {
                    let first = line
                        .split(',')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .trim_matches('"')
                        .to_owned();
                    let header = i == 0 && first.eq_ignore_ascii_case("phone_number");
                    (!first.is_empty() && !header)
                        .then(|| (format!("recipients_csv line {}", i + 1), first))
                })
                .collect(),
            _ => {
                details.push(FieldError {
                    field: "recipients".into(),
                    message: "send either recipients or recipients_csv".into(),
                });
                Vec::new()
            }
        };
        let mut seen = std::collections::HashSet::new();
        let mut recipients = Vec::new();
        for (field, number) in raw {
            if !is_e164(&number) {
                if details.len() < 20 {
                    details.push(FieldError {
                        field,
                        message: format!("{number:?} is not an E.164 number"),
                    });
                }
            } else if seen.insert(number.clone()) {
                recipients.push(number);
            }
        }
        if details.is_empty() && recipients.is_empty() {
            details.push(FieldError {
                field: "recipients".into(),
                message: "a campaign needs at least one recipient".into(),
            });
        }
        if recipients.len() > RECIPIENTS_MAX {
            details.push(FieldError {
                field: "recipients".into(),
                message: format!("at most {RECIPIENTS_MAX} recipients"),
            });
        }
        match details.first() {
            None => Ok((name, recipients)),
            Some(first) => Err(Error::Validation {
                message: first.message.clone(),
                details,
            }),
        }
    }
}

/// The status a `PATCH` moves a campaign to, from `current`; 409 when not allowed.
pub fn next_status(current: &str, asked: &str) -> Result<&'static str> {
    let to = match asked {
        "paused" => "paused",
        "running" => "running",
        "canceled" => "canceled",
        _ => {
            return Err(Error::validation(
                "status",
                "status must be paused, running or canceled",
            ));
        }
    };
    let allowed = matches!(
        (current, to),
        ("running", "paused") | ("paused", "running") | ("running" | "paused", "canceled")
    );
    if current == to || allowed {
        Ok(to)
    } else {
        Err(Error::Conflict {
            message: format!("A {current} campaign cannot become {to}."),
            details: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_from_json_or_csv_are_checked_and_deduplicated() {
        let json = CreateCampaign {
            name: "Renewals".into(),
            agent_id: crate::id::new_id("agt"),
            recipients: Some(vec![
                "+14155550123".into(),
                "+14155550123".into(),
                "+442071838750".into(),
            ]),
            ..Default::default()
        };
        assert_eq!(json.checked().expect("valid").1.len(), 2);
        let csv = CreateCampaign {
            recipients: None,
            recipients_csv: Some(
                "phone_number,name\n+14155550123,Ada\n\n+14155550124,Bob\n".into(),
            ),
            ..json.clone()
        };
        assert_eq!(
            csv.checked().expect("valid").1,
            vec!["+14155550123", "+14155550124"]
        );
        let bad = CreateCampaign {
            recipients: None,
            recipients_csv: Some("555\n+14155550123".into()),
            ..json.clone()
        };
        assert!(bad.checked().is_err());
        let both = CreateCampaign {
            recipients_csv: Some("+14155550123".into()),
            ..json
        };
        assert!(both.checked().is_err());
    }

    #[test]
    fn status_moves() {
        assert_eq!(next_status("running", "paused").ok(), Some("paused"));
        assert_eq!(next_status("paused", "running").ok(), Some("running"));
        assert!(next_status("completed", "running").is_err());
        assert!(next_status("canceled", "paused").is_err());
        assert!(next_status("running", "done").is_err());
    }
}
