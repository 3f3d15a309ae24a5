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
    /// Why a campaign paused by itself (`insufficient_balance`, `carrier_unavailable`,
    /// `key_limit_exceeded`: a daily limit or a destination of the creating key).
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
    /// A CSV file as spreadsheets save it: `,` or `;` (or tab) separated, quoted fields,
    /// a UTF-8 byte order mark allowed. The numbers (E.164) are the column headed
    /// `phone_number`, `phone`, `number`, `mobile` or `tel`; without such a header,
    /// the column whose values are E.164 numbers. Other columns are ignored.
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
            (None, Some(csv)) => match RecipientsCsv::read(csv) {
                Ok(file) => file.numbers,
                Err(e) => {
                    details.push(e);
                    Vec::new()
                }
            },
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

/// Headers that name the column of numbers (compared without case, `_`, `-` or spaces).
const NUMBER_HEADERS: &[&str] = &[
    "phonenumber",
    "phone",
    "number",
    "mobile",
    "mobilenumber",
    "cell",
    "tel",
    "telephone",
    "e164",
    "to",
];

/// A recipients file, read with a real CSV reader: which column holds the numbers, and
/// the numbers with where each was found (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientsCsv {
    /// The separator found on the first line: `,`, `;` or a tab.
    pub delimiter: u8,
    /// The header row, when the file has one.
    pub headers: Option<Vec<String>>,
    /// The column of numbers (from 0).
    pub column: usize,
    /// `("recipients_csv line 3", "+14155550123")`, in file order; blank cells skipped.
    pub numbers: Vec<(String, String)>,
}

impl RecipientsCsv {
    /// Reads the file. A header naming the number column wins. Otherwise the first row
    /// is data when it holds an E.164 number (its column is the one), a header of other
    /// names when it holds words, else data; the column is then the one with the most
    /// E.164 values.
    pub fn read(text: &str) -> std::result::Result<Self, FieldError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let delimiter = sniff_delimiter(text);
        let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
        // Lines counted here: csv's own count differs with `\r\n` endings.
        let (mut seen_byte, mut seen_line) = (0usize, 1usize);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for record in reader.records() {
            let record = record.map_err(|e| FieldError {
                field: "recipients_csv".into(),
                message: format!("recipients_csv is not readable CSV: {e}"),
            })?;
            if record.iter().all(str::is_empty) {
                continue;
            }
            let byte = record
                .position()
                .and_then(|p| usize::try_from(p.byte()).ok())
                .unwrap_or(seen_byte)
                .clamp(seen_byte, text.len());
            // A record after `\r\n` starts, for csv, at the `\n`.
            let byte = byte
                + text.as_bytes()[byte..]
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
            seen_line += text.as_bytes()[seen_byte..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            seen_byte = byte;
            let line = seen_line;
            rows.push((line, record.iter().map(str::to_owned).collect()));
            if rows.len() > RECIPIENTS_MAX + 1 {
                break;
            }
        }
        let Some((_, first)) = rows.first() else {
            return Ok(RecipientsCsv {
                delimiter,
                headers: None,
                column: 0,
                numbers: Vec::new(),
            });
        };
        let named = first.iter().position(|cell| {
            let key: String = cell
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            NUMBER_HEADERS.contains(&key.as_str())
        });
        let (headers, column) = match named {
            Some(column) => (Some(first.clone()), column),
            None => match first.iter().position(|cell| is_e164(cell)) {
                Some(column) => (None, column),
                None => {
                    // Words make a header of other names; anything else is data.
                    let header = first
                        .iter()
                        .any(|cell| cell.chars().any(char::is_alphabetic));
                    let data = &rows[usize::from(header)..];
                    let width = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
                    let column = (0..width)
                        .max_by_key(|&c| {
                            let hits = data
                                .iter()
                                .filter(|(_, r)| r.get(c).is_some_and(|v| is_e164(v)))
                                .count();
                            (hits, std::cmp::Reverse(c))
                        })
                        .unwrap_or(0);
                    (header.then(|| first.clone()), column)
                }
            },
        };
        let skip = usize::from(headers.is_some());
        let numbers = rows
            .iter()
            .skip(skip)
            .filter_map(|(line, r)| {
                let value = r.get(column).filter(|v| !v.is_empty())?;
                Some((format!("recipients_csv line {line}"), value.clone()))
            })
            .collect();
        Ok(RecipientsCsv {
            delimiter,
            headers,
            column,
            numbers,
        })
    }
}

/// The separator of the first line: whichever of `;`, tab and `,` appears most outside
/// quotes (`,` on a tie or when none does).
fn sniff_delimiter(text: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in text.bytes().take_while(|b| *b != b'\n') {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
            c.1 += 1;
        }
    }
    counts
        .iter()
        .max_by_key(|(d, n)| (*n, *d == b','))
        .map_or(b',', |(d, _)| *d)
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

    fn read(text: &str) -> RecipientsCsv {
        RecipientsCsv::read(text).expect("readable")
    }

    fn numbers(file: &RecipientsCsv) -> Vec<&str> {
        file.numbers.iter().map(|(_, n)| n.as_str()).collect()
    }

    #[test]
    fn excel_files_read_with_bom_semicolons_and_quotes() {
        // Excel in a European locale: a BOM, `;`, quoted fields with the separator.
        let file = read(
            "\u{feff}\"Name\";\"Company\";\"Mobile\"\r\n\"Lovelace; Ada\";\"Analytical, Ltd\";\"+442071838750\"\r\n\"Bob\";\"\";\"+14155550124\"\r\n",
        );
        assert_eq!(file.delimiter, b';');
        assert_eq!(file.column, 2);
        assert_eq!(
            file.headers.as_deref(),
            Some(&["Name".to_owned(), "Company".to_owned(), "Mobile".to_owned()][..])
        );
        assert_eq!(numbers(&file), ["+442071838750", "+14155550124"]);
        assert_eq!(file.numbers[1].0, "recipients_csv line 3");
    }

    #[test]
    fn the_number_column_is_found_anywhere() {
        // A header of other names: the column of E.164 values.
        let file = read("name,notes,cell phone\nAda,\"likes, commas\",+14155550123\n");
        assert_eq!((file.column, numbers(&file)), (2, vec!["+14155550123"]));
        // A header naming it, in any case and spelling.
        let file = read("Phone Number,name\n +14155550123 ,Ada\n");
        assert_eq!((file.column, numbers(&file)), (0, vec!["+14155550123"]));
        // No header: the first row is data.
        let file = read("Ada,+14155550123\nBob,+14155550124\n");
        assert_eq!(file.headers, None);
        assert_eq!(numbers(&file), ["+14155550123", "+14155550124"]);
        // Tabs, as a copy from a spreadsheet gives.
        let file = read("name\tphone\nAda\t+14155550123\n");
        assert_eq!(
            (file.delimiter, numbers(&file)),
            (b'\t', vec!["+14155550123"])
        );
        // Rows shorter than the header and blank lines are skipped, not errors.
        let file = read("phone,name\n\n+14155550123,Ada\n,Bob\n");
        assert_eq!(numbers(&file), ["+14155550123"]);
    }

    #[test]
    fn a_bad_number_in_the_column_is_reported_with_its_line() {
        let input = CreateCampaign {
            name: "Renewals".into(),
            agent_id: crate::id::new_id("agt"),
            recipients_csv: Some("phone;name\n+14155550123;Ada\n555-0100;Bob\n".into()),
            ..Default::default()
        };
        match input.checked() {
            Err(Error::Validation { details, .. }) => {
                assert_eq!(details[0].field, "recipients_csv line 3");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
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
